"""``tutorl compare``: the arms *no tutor*, *tutor* and *tutor + reuse* over several seeds.

Runs go to ``OUT/<arm>/seed<k>/`` as ordinary run folders, trained by the sweep's executor and
run store: a run whose ``summary.json`` exists is complete and is read back, not redone, so an
interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutorl.specs import AdviceFields, RunConfig


def arm_configs(base: RunConfig, seeds: int) -> list[RunConfig]:
    """The three arms of a comparison for ``seeds`` seeds (0..K-1 offset by ``base.seed``)."""
    # The untutored arm takes none of the advice settings (a tutorless run refuses them).
    untutored = {name: field.default for name, field in AdviceFields.model_fields.items()}
    arms = [{"tutor": "none", "reuse": False, **untutored}]
    if base.tutor != "none":
        arms += [{"tutor": base.tutor, "reuse": False}, {"tutor": base.tutor, "reuse": True}]
    configs = []
    for arm in arms:
        for k in range(seeds):
            configs.append(base.model_copy(update={**arm, "seed": base.seed + k}))
    return configs


def run_dir(out: Path, config: RunConfig) -> Path:
    return out / config.arm() / f"seed{config.seed}"


def load_curve(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "curve.csv")


class ComparisonError(ValueError):
    """Runs of a comparison that did not finish, with a one-line reason."""


def run_comparison(
    configs: list[RunConfig],
    out: Path,
    workers: int | None = None,
    on_progress: Callable[[Any, Any, dict[str, Any] | None], None] | None = None,
) -> list[tuple[RunConfig, dict[str, Any]]]:
    """Run every config not already complete under ``out``, ``workers`` processes at a time.

    The runs go through the sweep's executor and run store
    (:func:`tutorl.experiments.executors.run_sweep`), in this command's folders
    ``out/<arm>/seed<k>/``: the same resume, locking, failure records and full-disk stop.

    :param on_progress: called with the sweep's counts after each start and result.
    :raises ComparisonError: a run failed (the others still ran; ``error.json`` says why).
    """
    from tutorl.experiments.executors import run_sweep

    out = out.resolve()
    progress = run_sweep(
        configs, out, "local", workers, on_progress=on_progress, folder_of=lambda c: run_dir(out, c)
    )
    results, failed = [], []
    for config in configs:
        folder = run_dir(out, config)
        summary = folder / "summary.json"
        if summary.exists():
            results.append((config, json.loads(summary.read_text())))
            continue
        error = folder / "error.json"
        failed.append(json.loads(error.read_text())["error"] if error.exists() else folder.name)
    if progress.disk_full:
        raise ComparisonError(
            f"the disk holding {out} is full (No space left on device): {len(results)} finished "
            f"runs are kept; free some space and run the same command again to do the other "
            f"{len(failed)}"
        )
    if failed:
        raise ComparisonError(
            f"{len(failed)} of {len(configs)} runs failed (first: {failed[0]}); their error.json "
            f"under {out} says why; run the same command again to retry them"
        )
    return results


def with_threshold(
    results: list[tuple[RunConfig, dict[str, Any]]], out: Path, threshold: float
) -> list[tuple[RunConfig, dict[str, Any]]]:
    """The same runs with steps to threshold recomputed from their curves for ``threshold``."""
    from tutorl.rl.curve import curve_metrics

    rethresholded = []
    for config, summary in results:
        rows = load_curve(run_dir(out, config)).to_dict("records")
        rethresholded.append((config, {**summary, **curve_metrics(rows, threshold)}))
    return rethresholded


def _number(value: Any) -> float | None:
    """JSON-ready: NaN, infinity (an unbounded interval end) and None become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _bootstrap(values: list[float], reps: int) -> tuple[float, float | None, float | None]:
    """Mean and its 95% percentile-bootstrap interval over seeds (one interval convention
    with the sweep report: :func:`tutorl.experiments.stats.interval`)."""
    from tutorl.experiments.stats import interval

    point, low, high = interval(values, "mean", reps=reps)
    return (math.nan if point is None else point), _number(low), _number(high)


def _half_width(point: float, low: float | None, high: float | None) -> float | None:
    """The larger distance from the mean to an end of its interval (the CLI's ``±``)."""
    if low is None or high is None:
        return None
    return float(max(point - low, high - point))


def comparison_levels(
    results: list[tuple[RunConfig, dict[str, Any]]],
    curves: dict[str, list[pd.DataFrame]],
    out: Path | None = None,
    smoothing: int = 3,
) -> dict[str, float]:
    """The common levels of a comparison: the untutored arm's initial return and final level,
    and the expert level (cached in ``out/reference.json``); NaN where unknown."""
    from tutorl.experiments.metrics import common_levels, expert_levels

    initial, untutored = common_levels(curves.get("none", []), smoothing)
    expert = math.nan
    if results:
        config = next((c for c, _ in results if c.arm() == "none"), results[0][0])
        setting = (config.env, dict(config.env_options), config.eval_seed, config.eval_episodes)
        record = next(iter(expert_levels(out, [setting]).values()))
        if record["expert_return"] is not None:
            expert = float(record["expert_return"])
    return {"initial_return": initial, "untutored_level": untutored, "expert_level": expert}


def _curves_of(
    results: list[tuple[RunConfig, dict[str, Any]]], out: Path | None
) -> dict[str, list[pd.DataFrame]] | None:
    if out is None:
        return None
    curves: dict[str, list[pd.DataFrame]] = {}
    for config, _ in results:
        curves.setdefault(config.arm(), []).append(load_curve(run_dir(out, config)))
    return curves


def summarise(
    results: list[tuple[RunConfig, dict[str, Any]]],
    out: Path | None = None,
    curves: dict[str, list[pd.DataFrame]] | None = None,
    smoothing: int = 3,
    reps: int = 2000,
) -> list[dict[str, Any]]:
    """One row per arm: the comparison table's numbers (JSON-ready: no NaN).

    Intervals are 95% percentile-bootstrap intervals over seeds, as in the sweep report
    (``final_return_low``/``_high``, ``auc_low``/``_high``); ``final_return_ci95`` and
    ``auc_ci95`` are the larger distance from the mean to an end of that interval, for a
    ``±`` display. None with one seed.

    Steps to threshold: a run that never reached the threshold counts as its full length, so the
    arm's mean is a lower bound (``censored`` says how many such runs there were); the
    acceleration ratio is the untutored arm's mean steps to threshold over this arm's.

    With the runs' curves (``curves``: arm → per-seed curves in the order of ``results``, or
    read from the run folders under ``out``), also the common levels (``initial_return``,
    ``untutored_level``, ``expert_level``; see :mod:`tutorl.experiments.metrics`) and per arm
    ``steps_to_<ref>_<pct>`` (mean, runs that never got there at their full length),
    ``reached_<ref>_<pct>``, ``speedup_<ref>_<pct>`` with ``_low``/``_high``/``_bound`` (the
    untutored arm's mean steps / this arm's; ``speedup_untutored_100`` answers "converges
    sooner"), ``normalised_auc`` and ``plateau_return``. Without curves these are None.
    """
    from tutorl.experiments.metrics import LEVEL_COLUMNS, level_metrics, plateau_of
    from tutorl.experiments.stats import acceleration

    curves = curves if curves is not None else _curves_of(results, out)
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for config, summary in results:
        by_arm.setdefault(config.arm(), []).append(summary)
    levels = comparison_levels(results, curves, out, smoothing) if curves else {}
    # Per arm, per seed: steps to each level (NaN: never), and whether the level is defined.
    per_run: dict[str, list[dict[str, float]]] = {}
    if curves:
        for arm, frames in curves.items():
            per_run[arm] = [
                {
                    **level_metrics(
                        frame,
                        levels["initial_return"],
                        levels["untutored_level"],
                        levels["expert_level"],
                        smoothing,
                    ),
                    "plateau_return": plateau_of(frame, smoothing),
                }
                for frame in frames
            ]
    rows = []
    for arm, runs in by_arm.items():
        steps = [
            r["steps_to_threshold"] if r["steps_to_threshold"] is not None else r["steps"]
            for r in runs
        ]
        censored = sum(r["steps_to_threshold"] is None for r in runs)
        final, final_low, final_high = _bootstrap([r["final_return"] for r in runs], reps)
        auc, auc_low, auc_high = _bootstrap([r["auc"] for r in runs], reps)
        advice = [r["advice"] for r in runs if r.get("advice")]
        agreement = [a["agreement"] for a in advice if a.get("agreement") is not None]
        reuse_agreement = [
            a["reuse_agreement"] for a in advice if a.get("reuse_agreement") is not None
        ]
        row: dict[str, Any] = {
            "arm": arm,
            "seeds": len(runs),
            "steps_to_threshold": float(np.mean(steps)),
            "reached": len(runs) - censored,
            "censored": censored,
            "final_return": final,
            "final_return_low": final_low,
            "final_return_high": final_high,
            "final_return_ci95": _half_width(final, final_low, final_high),
            "best_return": float(np.mean([r["best_return"] for r in runs])),
            "auc": auc,
            "auc_low": auc_low,
            "auc_high": auc_high,
            "auc_ci95": _half_width(auc, auc_low, auc_high),
            "tutor_asks": float(np.mean([a["tutor_asks"] for a in advice])) if advice else 0,
            "advised_steps": float(np.mean([a["advised_steps"] for a in advice])) if advice else 0,
            "reuse_hits": float(np.mean([a["reuse_hits"] for a in advice])) if advice else 0,
            "agreement": float(np.mean(agreement)) if agreement else None,
            "reuse_agreement": float(np.mean(reuse_agreement)) if reuse_agreement else None,
            "wall_time": float(np.mean([r["wall_time"] for r in runs])),
        }
        for key in ("initial_return", "untutored_level", "expert_level"):
            row[key] = _number(levels.get(key))
        metrics = per_run.get(arm, [])
        lengths = np.array([r["steps"] for r in runs], dtype=float)
        for column in LEVEL_COLUMNS:
            name = column.removeprefix("steps_to_")
            row[column], row[f"reached_{name}"] = None, None
            values = np.array([m[column] for m in metrics], dtype=float)
            if len(values) != len(lengths) or not _level_defined(levels, column):
                continue
            row[column] = float(np.where(np.isnan(values), lengths, values).mean())
            row[f"reached_{name}"] = int((~np.isnan(values)).sum())
        row["normalised_auc"] = (
            _number(np.mean([m["normalised_auc"] for m in metrics])) if metrics else None
        )
        row["plateau_return"] = (
            _number(np.mean([m["plateau_return"] for m in metrics])) if metrics else None
        )
        rows.append(row)
    baseline = next((r for r in rows if r["arm"] == "none"), None)
    for row in rows:
        row["acceleration"] = None
        row["acceleration_bound"] = None
        if not baseline or row["steps_to_threshold"] <= 0:
            continue
        if row is not baseline and baseline["censored"] and row["censored"]:
            continue  # both arms partly never reached the threshold: the ratio is unknown
        row["acceleration"] = baseline["steps_to_threshold"] / row["steps_to_threshold"]
        if row is not baseline and baseline["censored"]:
            row["acceleration_bound"] = "≥"  # the baseline's mean is itself a lower bound
        elif row is not baseline and row["censored"]:
            row["acceleration_bound"] = "≤"
    for row in rows:
        for column in LEVEL_COLUMNS:
            name = "speedup_" + column.removeprefix("steps_to_")
            for suffix in ("", "_low", "_high", "_bound"):
                row[name + suffix] = None
            if baseline is None or row is baseline or row[column] is None:
                continue
            b, t = _steps_and_censoring(baseline["arm"], column, by_arm, per_run)
            x, y = _steps_and_censoring(row["arm"], column, by_arm, per_run)
            result = acceleration(b, x, t, y, reps=reps)
            row[name] = result["ratio"]
            row[name + "_low"] = _number(result["low"])
            row[name + "_high"] = _number(result["high"])
            row[name + "_bound"] = result["bound"]
    return rows


def _level_defined(levels: dict[str, float], column: str) -> bool:
    reference = "untutored_level" if "_untutored_" in column else "expert_level"
    initial, target = levels.get("initial_return", math.nan), levels.get(reference, math.nan)
    return bool(np.isfinite(initial) and np.isfinite(target) and target > initial)


def _steps_and_censoring(
    arm: str,
    column: str,
    by_arm: dict[str, list[dict[str, Any]]],
    per_run: dict[str, list[dict[str, float]]],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed steps to a level (never: the run's length) and which seeds never got there."""
    values = np.array([m[column] for m in per_run[arm]], dtype=float)
    lengths = np.array([r["steps"] for r in by_arm[arm]], dtype=float)
    censored = np.isnan(values)
    return np.where(censored, lengths, values), censored


def format_acceleration(row: dict[str, Any]) -> str:
    """``1.54``, ``≥1.20`` (censored baseline) or ``—`` (unknown)."""
    if row.get("acceleration") is None:
        return "—"
    return f"{row.get('acceleration_bound') or ''}{row['acceleration']:.2f}"


def _ci(half: float | None) -> str:
    return "—" if half is None else f"{half:.3f}"


def format_speedup(row: dict[str, Any], name: str = "speedup_untutored_100") -> str:
    """``2.10 [1.40, 3.00]``, ``≤0.80`` (some tutored runs never got there) or ``—``."""
    if row.get(name) is None:
        return "—"
    text = f"{row.get(name + '_bound') or ''}{row[name]:.2f}"
    if row.get(name + "_low") is not None and row.get(name + "_high") is not None:
        high = row[name + "_high"]
        text += f" [{row[name + '_low']:.2f}, {'∞' if math.isinf(high) else f'{high:.2f}'}]"
    return text


def steps_to_level(row: dict[str, Any], column: str = "steps_to_untutored_100") -> str:
    name = column.removeprefix("steps_to_")
    if row.get(column) is None:
        return "—"
    prefix = "≥" if row[f"reached_{name}"] < row["seeds"] else ""
    return f"{prefix}{row[column]:,.0f} ({row[f'reached_{name}']}/{row['seeds']})"


def interval_text(row: dict[str, Any], name: str) -> str:
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    return "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"


def markdown_table(rows: list[dict[str, Any]], threshold: float) -> str:
    """The comparison table as Markdown (``comparison.md``), ready to paste into a report."""
    lines = [
        "| arm | seeds | steps to untutored final level (reached) | speed-up to it "
        "| speed-up to expert level | steps to threshold (reached) | acceleration "
        "| final return [95% CI] | best | AUC | normalised AUC | tutor asks | reuse hits "
        "| agreement with expert (fresh / reused) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        prefix = "≥" if row["censored"] else ""
        accel = format_acceleration(row)
        agreement = f"{row['agreement']:.2f}" if row["agreement"] is not None else "—"
        if row.get("reuse_agreement") is not None:
            agreement += f" / {row['reuse_agreement']:.2f}"
        normalised = row.get("normalised_auc")
        lines.append(
            f"| {row['arm']} | {row['seeds']} | {steps_to_level(row)} "
            f"| {format_speedup(row)} | {format_speedup(row, 'speedup_expert_100')} "
            f"| {prefix}{row['steps_to_threshold']:,.0f} ({row['reached']}/{row['seeds']}) "
            f"| {accel} | {row['final_return']:.3f}{interval_text(row, 'final_return')} "
            f"| {row['best_return']:.3f} | {row['auc']:.3f} "
            f"| {'—' if normalised is None else f'{normalised:.3f}'} | {row['tutor_asks']:,.0f} "
            f"| {row['reuse_hits']:,.0f} | {agreement} |"
        )
    first = rows[0] if rows else {}
    levels = [f"Success threshold: {threshold:g}."]
    if first.get("untutored_level") is not None and first.get("initial_return") is not None:
        levels.append(
            f"Common initial return {first['initial_return']:.3f}; untutored final level "
            f"{first['untutored_level']:.3f}"
            + (
                f"; expert level {first['expert_level']:.3f}."
                if first.get("expert_level") is not None
                else "; no expert level."
            )
        )
    levels.append(
        "Speed-up: untutored mean steps to the level / this arm's (smoothed first crossing; "
        "runs that never got there count at their full length: ≥/≤ bounds, — unknown). "
        "Intervals: 95% bootstrap over seeds."
    )
    return "\n".join(lines) + "\n\n" + " ".join(levels) + "\n"


def plot_curves(
    results: list[tuple[RunConfig, dict[str, Any]]],
    out: Path,
    path: Path,
    threshold: float | None = None,
    title: str = "",
) -> Path:
    """The comparison's learning curves, drawn by the sweep report's
    :func:`tutorl.experiments.report.plot_curves` (one plotting path): bootstrap bands clipped
    to the observed returns, the expert and untutored final levels, a zoom on the top."""
    from tutorl.experiments import report

    arms = _curves_of(results, out) or {}
    if not results:
        raise ValueError("no runs to plot")
    env, algo = results[0][0].env, results[0][0].algo
    curves = {(env, algo, arm): frames for arm, frames in arms.items()}
    levels = comparison_levels(results, arms, out)
    return report.plot_curves(curves, env, algo, Path(path), threshold, levels, title or None)
