"""The study's tables of numbers: a sweep's per-run table turned into statistics over seeds.

:func:`tables` returns four tables — per configuration, tutor vs baseline, reuse on vs off, tutor
quality — computed with :mod:`tutorl.experiments.stats`. Honesty rules: an interval needs two
seeds or more; a mean over runs some of which never got somewhere (never reached a level or the
threshold, never settled) counts those runs at their full length and is marked as a bound; when
no run got there the number is NaN. Learning speed is measured against levels common to every
arm of a game × algorithm (see :mod:`tutorl.experiments.metrics`).
:mod:`tutorl.experiments.report` renders these tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tutorl.experiments import stats
from tutorl.experiments.metrics import (
    HEADLINE,
    LEVEL_COLUMNS,
    LEVEL_FRACTIONS,
    REFERENCES,
    level_column,
    variant_of,
)

BASELINE = "none"
REQUIRED_COLUMNS = ("env", "algo", "arm", "tutor", "reuse", "seed", "status", "steps")


def _reached(metric: str) -> str:
    return "reached_" + metric.removeprefix("steps_to_")


# Metrics with censored runs (NaN: the run never got there) and the name of their "got there"
# count.
CENSORED = {
    **{column: _reached(column) for column in LEVEL_COLUMNS},
    "steps_to_threshold": "reached",
    "plateau_step": "settled",
}
# Steps to a level are censored only where the level is defined: the reference level column
# of each, and the common start.
LEVEL_OF = {
    level_column(reference, fraction): f"{reference}_level"
    for reference in REFERENCES
    for fraction in LEVEL_FRACTIONS
}
LEVELS = ("initial_return", "untutored_level", "expert_level")
RUN_METRICS = (
    *LEVEL_COLUMNS,
    "normalised_auc",
    "steps_to_threshold",
    "final_return",
    "auc",
    "plateau_return",
    "plateau_step",
    "stability_std",
    "drops",
)
COSTS = (
    "tutor_asks",
    "llm_calls",
    "reuse_hits",
    "cache_hits",
    "agreement",
    "reuse_agreement",
    "wall_time",
)
OPTIONAL_COLUMNS = (
    "error",
    "threshold",
    "tolerance",
    "best_return",
    *LEVELS,
    *RUN_METRICS,
    *COSTS,
)

_CI_COLUMNS = ("", "_low", "_high")


def _with_ci(name: str) -> list[str]:
    return [name + suffix for suffix in _CI_COLUMNS]


def speedup_column(metric: str) -> str:
    """``steps_to_untutored_100`` → ``speedup_untutored_100``."""
    return "speedup_" + metric.removeprefix("steps_to_")


CONFIGURATION_COLUMNS = [
    "env",
    "algo",
    "arm",
    "tutor",
    "reuse",
    "seeds_done",
    "seeds_failed",
    "seeds_unfinished",
    "steps",
    "threshold",
    "tolerance",
    *LEVELS,
    *CENSORED.values(),
    *[
        column
        for metric in RUN_METRICS
        for statistic in ("mean", "iqm")
        for column in _with_ci(f"{metric}_{statistic}")
    ],
    *COSTS,
]
ACCELERATION_COLUMNS = [
    "env",
    "algo",
    "arm",
    "tutor",
    "reuse",
    "agreement",
    *LEVELS,
    "baseline_seeds",
    "tutored_seeds",
    *[
        column
        for metric in LEVEL_COLUMNS
        for column in (
            f"baseline_{_reached(metric)}",
            f"tutored_{_reached(metric)}",
            *_with_ci(speedup_column(metric)),
            f"{speedup_column(metric)}_bound",
        )
    ],
    *_with_ci("p_reaches_sooner"),
    "reaches_sooner_p_value",
    "baseline_reached",
    "tutored_reached",
    *_with_ci("acceleration"),
    "acceleration_bound",
    "baseline_final_return",
    "tutored_final_return",
    *_with_ci("final_return_diff"),
    *_with_ci("p_final_better"),
    "final_return_p_value",
    *_with_ci("normalised_auc_diff"),
    "baseline_plateau_return",
    "tutored_plateau_return",
    "baseline_settled",
    "tutored_settled",
]
REUSE_COLUMNS = [
    "env",
    "algo",
    "tutor",
    "variant",
    *LEVELS,
    "seeds_off",
    "seeds_on",
    "reached_off",
    "reached_on",
    *_with_ci(speedup_column(HEADLINE)),
    f"{speedup_column(HEADLINE)}_bound",
    *_with_ci("p_on_sooner"),
    "p_value",
    "plateau_return_off",
    "plateau_return_on",
    "stability_std_off",
    "stability_std_on",
    "drops_off",
    "drops_on",
    *_with_ci("p_on_more_stable"),
    "reuse_hits_on",
    "reuse_agreement_on",
]
TUTOR_QUALITY_COLUMNS = [
    "env",
    "tutor",
    "training_runs",
    *_with_ci("training_agreement"),
    "reuse_agreement",
    "offline_n_states",
    "offline_agreement",
    "offline_low",
    "offline_high",
    "offline_base_rate",
]

STATISTICS_DEFINITIONS: dict[str, str] = {
    "seeds": "finished runs (independent seeds) behind each number; failed and unfinished runs "
    "are left out of every statistic",
    "mean, IQM": "mean over seeds, and interquartile mean (mean of the middle 50% of seeds, "
    "rliable's IQM; with fewer than 4 seeds it equals the mean)",
    "[low, high]": "95% percentile-bootstrap interval over seeds (rliable's method: seeds "
    "resampled with replacement; two arms resampled independently); none with a single seed",
    "≥ (steps)": "some runs never got there: they count as their full training length, so the "
    "mean (or IQM) is a lower bound",
    "speed-up to the untutored final level (the headline: converges sooner)": "mean steps to "
    "100% of the untutored final level of the untutored arm divided by the tutored arm's (same "
    "game and algorithm; for reuse, without / with reuse); above 1 the tutored arm got there "
    "sooner. ≥ when only the untutored (reuse: off) arm has runs that never got there (a lower "
    "bound), ≤ when only the tutored (reuse: on) arm has — a run stalled below the level counts "
    "at its full length, so it can never look faster — and unknown (—) when both have. The same "
    "ratio is given for 50% and 80% of that level and of the expert level",
    "acceleration to threshold": "the same ratio for the steps to the game's success threshold",
    "P(…)": "probability of improvement: the chance that a random seed of the first arm does "
    "better than a random seed of the second, ties counting half (rliable); 0.5 = no difference. "
    "For steps, runs that never got there rank last (tied with each other)",
    "p": "two-sided Mann–Whitney U test p-value over seeds (exact for small samples). With 3 vs "
    "3 seeds the smallest possible p is 0.1 (0.029 for 4 vs 4, 0.008 for 5 vs 5), however large "
    "the difference",
    "Δ final return": "tutored mean final return minus the baseline's",
    "Δ normalised AUC": "tutored mean normalised AUC minus the baseline's (return gathered "
    "during training, in units of the climb from the start to the untutored final level)",
}


# ---------------------------------------------------------------------------------------------
# Tables of numbers


def prepare_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of the runs table: required columns present, optional ones filled (an
    older table's ``convergence_step`` is read as ``plateau_step``)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s): {', '.join(missing)}")
    runs = runs.copy()
    if "plateau_step" not in runs.columns and "convergence_step" in runs.columns:
        runs["plateau_step"] = runs["convergence_step"]
    runs = runs.drop(columns=["convergence_step"], errors="ignore")
    for column in OPTIONAL_COLUMNS:
        if column not in runs.columns:
            runs[column] = np.nan
    if runs["reuse"].dtype == object:
        runs["reuse"] = runs["reuse"].map(
            lambda v: str(v).strip().lower() in ("true", "1", "yes") if isinstance(v, str) else v
        )
    runs["reuse"] = runs["reuse"].astype(bool)
    runs["status"] = runs["status"].astype(str)
    return runs.reset_index(drop=True)


def pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(env, algo) pairs in the order they first appear."""
    return list(dict.fromkeys(zip(runs["env"], runs["algo"], strict=True)))


def _arms(group: pd.DataFrame) -> list[str]:
    """Arms in order of first appearance, the baseline first."""
    arms = list(dict.fromkeys(group["arm"]))
    return sorted(arms, key=lambda arm: (arm != BASELINE, arms.index(arm)))


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _first(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def mean_of(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def level_defined(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per row: is the level behind the steps-to-level ``metric`` defined (its reference known
    and above the common initial return)? All True for other metrics."""
    if metric not in LEVEL_OF:
        return pd.Series(True, index=frame.index)
    reference = pd.to_numeric(frame[LEVEL_OF[metric]], errors="coerce")
    initial = pd.to_numeric(frame["initial_return"], errors="coerce")
    return (reference > initial).fillna(False)


def _values(done: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of ``metric`` over finished runs, and which of them are censored.

    For a censored metric a run that never got there (NaN) takes its training length; steps
    to an undefined level stay NaN (no number, not censored).
    """
    values = pd.to_numeric(done[metric], errors="coerce")
    if metric not in CENSORED:
        return values.to_numpy(dtype=float), np.zeros(len(values), dtype=bool)
    defined = level_defined(done, metric)
    censored = values.isna() & done["steps"].notna() & defined
    filled = values.where(~censored, done["steps"])
    return filled.to_numpy(dtype=float), censored.to_numpy()


def _put(row: dict[str, Any], name: str, estimate: tuple[Any, Any, Any]) -> None:
    row[name], row[name + "_low"], row[name + "_high"] = (_num(v) for v in estimate)


def _configurations(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for env, algo in pairs(runs):
        group = runs[(runs["env"] == env) & (runs["algo"] == algo)]
        for arm in _arms(group):
            g = group[group["arm"] == arm]
            done = g[g["status"] == "done"]
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "arm": arm,
                "tutor": g["tutor"].iloc[0],
                "reuse": bool(g["reuse"].iloc[0]),
                "seeds_done": len(done),
                "seeds_failed": int((g["status"] == "failed").sum()),
                "seeds_unfinished": int((~g["status"].isin(["done", "failed"])).sum()),
                "steps": float(pd.to_numeric(g["steps"], errors="coerce").max()),
                "threshold": _first(g["threshold"]),
                "tolerance": _first(g["tolerance"]),
                # Common to the pair: the same in every arm.
                **{level: _first(group[level]) for level in LEVELS},
            }
            for metric in RUN_METRICS:
                values, censored = _values(done, metric)
                finite = ~np.isnan(values)
                nothing = metric in CENSORED and finite.any() and censored[finite].all()
                if metric in CENSORED:
                    row[CENSORED[metric]] = int((finite & ~censored).sum())
                for statistic in ("mean", "iqm"):
                    # No run got there: a "mean" would only restate the training length.
                    estimate = (
                        (None, None, None)
                        if nothing
                        else stats.interval(values, statistic, reps=reps, seed=seed)
                    )
                    _put(row, f"{metric}_{statistic}", estimate)
            for column in COSTS:
                row[column] = mean_of(done[column])
            rows.append(row)
    return pd.DataFrame(rows, columns=CONFIGURATION_COLUMNS)


def _speedup(
    row: dict[str, Any],
    metric: str,
    a: pd.DataFrame,
    b: pd.DataFrame,
    names: tuple[str, str],
    reps: int,
    seed: int,
) -> None:
    """``speedup_<level>`` of ``a`` over ``b`` (``a``'s mean steps / ``b``'s) into ``row`` with
    interval, bound and each arm's count of runs that got there (``<names>_reached_<level>``)."""
    x, x_cens = _values(a, metric)
    y, y_cens = _values(b, metric)
    for name, v, c in ((names[0], x, x_cens), (names[1], y, y_cens)):
        if name is not None:
            row[name] = int((~np.isnan(v) & ~c).sum())
    result = stats.acceleration(x, y, x_cens, y_cens, reps=reps, seed=seed)
    name = "acceleration" if metric == "steps_to_threshold" else speedup_column(metric)
    _put(row, name, (result["ratio"], result["low"], result["high"]))
    row[f"{name}_bound"] = result["bound"]


def _sooner(
    row: dict[str, Any],
    a: pd.DataFrame,
    b: pd.DataFrame,
    names: tuple[str, str],
    reps: int,
    seed: int,
) -> None:
    """Whether ``b``'s runs reach the headline level sooner than ``a``'s: the probability that
    a ``b`` seed needs fewer steps than an ``a`` seed (with interval) and the Mann–Whitney p
    value, into ``row`` under ``names``."""
    a_steps, _ = _values(a, HEADLINE)
    b_steps, _ = _values(b, HEADLINE)
    _put(row, names[0], stats.probability_of_improvement(-b_steps, -a_steps, reps=reps, seed=seed))
    row[names[1]] = _num(stats.rank_test(b_steps, a_steps))


def _acceleration(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for env, algo in pairs(runs):
        group = runs[(runs["env"] == env) & (runs["algo"] == algo)]
        done = group[group["status"] == "done"]
        base = done[done["arm"] == BASELINE]
        for arm in _arms(group):
            if arm == BASELINE:  # every other arm is tutored
                continue
            first = group[group["arm"] == arm].iloc[0]
            tut = done[done["arm"] == arm]
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "arm": arm,
                "tutor": first["tutor"],
                "reuse": bool(first["reuse"]),
                "agreement": mean_of(tut["agreement"]),
                **{level: _first(group[level]) for level in LEVELS},
                "baseline_seeds": len(base),
                "tutored_seeds": len(tut),
            }
            for metric in LEVEL_COLUMNS:
                counts = (f"baseline_{_reached(metric)}", f"tutored_{_reached(metric)}")
                _speedup(row, metric, base, tut, counts, reps, seed)
            _sooner(row, base, tut, ("p_reaches_sooner", "reaches_sooner_p_value"), reps, seed)
            _speedup(
                row, "steps_to_threshold", base, tut, ("baseline_reached", "tutored_reached"),
                reps, seed,
            )  # fmt: skip
            b_final, _ = _values(base, "final_return")
            t_final, _ = _values(tut, "final_return")
            row["baseline_final_return"] = mean_of(base["final_return"])
            row["tutored_final_return"] = mean_of(tut["final_return"])
            _put(row, "final_return_diff", stats.difference(t_final, b_final, reps, seed))
            _put(
                row,
                "p_final_better",
                stats.probability_of_improvement(t_final, b_final, reps=reps, seed=seed),
            )
            row["final_return_p_value"] = _num(stats.rank_test(t_final, b_final))
            b_auc, _ = _values(base, "normalised_auc")
            t_auc, _ = _values(tut, "normalised_auc")
            _put(row, "normalised_auc_diff", stats.difference(t_auc, b_auc, reps, seed))
            row["baseline_plateau_return"] = mean_of(base["plateau_return"])
            row["tutored_plateau_return"] = mean_of(tut["plateau_return"])
            row["baseline_settled"] = int(pd.to_numeric(base["plateau_step"]).notna().sum())
            row["tutored_settled"] = int(pd.to_numeric(tut["plateau_step"]).notna().sum())
            rows.append(row)
    return pd.DataFrame(rows, columns=ACCELERATION_COLUMNS)


def _reuse(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for env, algo in pairs(runs):
        group = runs[(runs["env"] == env) & (runs["algo"] == algo)]
        group = group.assign(variant=group["arm"].map(variant_of))
        done = group[group["status"] == "done"]
        for variant in dict.fromkeys(group["variant"]):
            arms = group[group["variant"] == variant]
            if variant == BASELINE or arms["reuse"].nunique() < 2:
                continue
            off = done[(done["variant"] == variant) & ~done["reuse"]]
            on = done[(done["variant"] == variant) & done["reuse"]]
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "tutor": arms["tutor"].iloc[0],
                "variant": variant,
                **{level: _first(group[level]) for level in LEVELS},
                "seeds_off": len(off),
                "seeds_on": len(on),
            }
            _speedup(row, HEADLINE, off, on, ("reached_off", "reached_on"), reps, seed)
            _sooner(row, off, on, ("p_on_sooner", "p_value"), reps, seed)
            off_std, _ = _values(off, "stability_std")
            on_std, _ = _values(on, "stability_std")
            for column in ("plateau_return", "stability_std", "drops"):
                row[f"{column}_off"] = mean_of(off[column])
                row[f"{column}_on"] = mean_of(on[column])
            _put(
                row,
                "p_on_more_stable",
                stats.probability_of_improvement(-on_std, -off_std, reps=reps, seed=seed),
            )
            row["reuse_hits_on"] = mean_of(on["reuse_hits"])
            row["reuse_agreement_on"] = mean_of(on["reuse_agreement"])
            rows.append(row)
    return pd.DataFrame(rows, columns=REUSE_COLUMNS)


def _tutor_quality(
    runs: pd.DataFrame, offline: pd.DataFrame | None, reps: int, seed: int
) -> pd.DataFrame:
    rows = []
    done = runs[runs["status"] == "done"]
    for env, tutor in dict.fromkeys(zip(runs["env"], runs["tutor"], strict=True)):
        if tutor == BASELINE:
            continue
        d = done[(done["env"] == env) & (done["tutor"] == tutor)]
        agreement = pd.to_numeric(d["agreement"], errors="coerce").dropna()
        row: dict[str, Any] = {"env": env, "tutor": tutor, "training_runs": len(agreement)}
        _put(row, "training_agreement", stats.interval(agreement, "mean", reps=reps, seed=seed))
        row["reuse_agreement"] = mean_of(d["reuse_agreement"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=TUTOR_QUALITY_COLUMNS[:7])
    if offline is not None and len(offline):
        renamed = offline.rename(
            columns={
                "n_states": "offline_n_states",
                "agreement": "offline_agreement",
                "low": "offline_low",
                "high": "offline_high",
                "base_rate": "offline_base_rate",
            }
        )
        renamed = renamed[[c for c in TUTOR_QUALITY_COLUMNS if c in renamed.columns]]
        table = table.merge(renamed, on=["env", "tutor"], how="outer", sort=False)
        table["training_runs"] = table["training_runs"].fillna(0).astype(int)
    return table.reindex(columns=TUTOR_QUALITY_COLUMNS)


def tables(
    runs: pd.DataFrame,
    reps: int = 2000,
    seed: int = 0,
    tutor_quality: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The sweep's numbers, as four tables. Missing numbers are NaN; bounds are ``"≥"``,
    ``"≤"`` or ``None``; every interval is a 95% bootstrap interval over seeds (``*_low``,
    ``*_high``; NaN with fewer than two seeds).

    * ``configurations`` — one row per (env, algo, arm): ``seeds_done``, ``seeds_failed``,
      ``seeds_unfinished``, ``steps`` (training length), ``threshold``, ``tolerance``, the
      pair's common levels ``initial_return``, ``untutored_level``, ``expert_level``, the
      counts of :data:`CENSORED` (``reached_untutored_100``: finished runs that reached 100% of
      the untutored final level; ``reached``: the threshold; ``settled``: a plateau step), then
      ``<metric>_mean``/``<metric>_iqm`` with ``_low``/``_high`` for each metric of
      :data:`RUN_METRICS` (for censored metrics, runs that never got there count as their
      training length — the estimate is then a lower bound — and all values are NaN when no
      run got there or the level is undefined), and the mean per run of :data:`COSTS`.
    * ``acceleration`` — one row per tutored arm (every arm but ``none``) vs the ``none`` arm
      of the same (env, algo): the tutored arm's mean ``agreement``; for each steps-to-level
      metric ``steps_to_<ref>_<pct>``, ``speedup_<ref>_<pct>`` (baseline mean steps / tutored,
      see :func:`tutorl.experiments.stats.acceleration`) with interval, ``_bound`` and both
      arms' ``reached_<ref>_<pct>`` counts — ``speedup_untutored_100`` is the headline;
      ``p_reaches_sooner`` (P(a tutored seed reaches the untutored final level sooner)) and
      ``reaches_sooner_p_value``; ``acceleration`` (the same ratio for the steps to threshold);
      ``final_return_diff`` (tutored − baseline mean), ``p_final_better``,
      ``final_return_p_value``; ``normalised_auc_diff``; both arms' plateau return and number
      of runs with a plateau step (``*_settled``).
    * ``reuse`` — one row per (env, algo, variant) run both with and without reuse (the
      variant is the arm without its ``+reuse`` part): ``speedup_untutored_100`` (off / on),
      ``p_on_sooner``, ``p_value``, mean ``plateau_return``/``stability_std``/``drops``
      ``_off`` and ``_on``, ``p_on_more_stable`` (P(lower std with reuse)),
      ``reuse_hits_on``, ``reuse_agreement_on``.
    * ``tutor_quality`` — one row per (env, tutor): ``training_agreement`` (mean over finished
      runs, both reuse settings, with interval; ``training_runs`` runs),
      ``reuse_agreement``, and the offline evaluation's ``offline_n_states``,
      ``offline_agreement``, ``offline_low``, ``offline_high``, ``offline_base_rate``.

    :param runs: The per-run table (see :mod:`tutorl.experiments.report`'s input contract).
    :param reps: Bootstrap replicates per interval.
    :param seed: Seed of every bootstrap (each interval is reproducible on its own).
    :param tutor_quality: Optional offline tutor evaluation (columns ``env, tutor, n_states,
        agreement, low, high, base_rate``), merged into ``tutor_quality``.
    :return: ``{"configurations", "acceleration", "reuse", "tutor_quality"}`` → DataFrame.
    """
    runs = prepare_runs(runs)
    return {
        "configurations": _configurations(runs, reps, seed),
        "acceleration": _acceleration(runs, reps, seed),
        "reuse": _reuse(runs, reps, seed),
        "tutor_quality": _tutor_quality(runs, tutor_quality, reps, seed),
    }
