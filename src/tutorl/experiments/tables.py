"""The study's tables of numbers: a sweep's per-run table turned into statistics over seeds.

:func:`tables` returns four tables — per configuration, tutor vs baseline, reuse on vs off, tutor
quality — computed with :mod:`tutorl.experiments.stats`. Honesty rules: an interval needs two
seeds or more; a mean over runs some of which never got somewhere (never converged, never
reached the threshold) counts those runs at their full length and is marked as a bound; when no
run got there the number is NaN. :mod:`tutorl.experiments.report` renders these tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tutorl.experiments import stats

BASELINE = "none"
REQUIRED_COLUMNS = ("env", "algo", "arm", "tutor", "reuse", "seed", "status", "steps")
# Metrics with censored runs (NaN: the run never got there) and the name of their "got there"
# count.
CENSORED = {"convergence_step": "converged", "steps_to_threshold": "reached"}
RUN_METRICS = (
    "convergence_step",
    "steps_to_threshold",
    "final_return",
    "auc",
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
    "plateau_return",
    *RUN_METRICS,
    *COSTS,
)

_CI_COLUMNS = ("", "_low", "_high")


def _with_ci(name: str) -> list[str]:
    return [name + suffix for suffix in _CI_COLUMNS]


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
    "converged",
    "reached",
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
    "baseline_seeds",
    "tutored_seeds",
    "baseline_reached",
    "tutored_reached",
    "baseline_converged",
    "tutored_converged",
    *_with_ci("acceleration"),
    "acceleration_bound",
    *_with_ci("convergence_ratio"),
    "convergence_ratio_bound",
    *_with_ci("p_converges_sooner"),
    "convergence_p_value",
    "baseline_final_return",
    "tutored_final_return",
    *_with_ci("final_return_diff"),
    *_with_ci("p_final_better"),
    "final_return_p_value",
]
REUSE_COLUMNS = [
    "env",
    "algo",
    "tutor",
    "seeds_off",
    "seeds_on",
    "converged_off",
    "converged_on",
    *_with_ci("convergence_ratio"),
    "convergence_ratio_bound",
    *_with_ci("p_on_sooner"),
    "p_value",
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
    "acceleration": "mean steps to threshold of the untutored baseline divided by the tutored "
    "arm's (same game and algorithm); ≥ when only the baseline has runs that never reached the "
    "threshold (a lower bound), ≤ when only the tutored arm has, unknown (—) when both have",
    "convergence-step ratio": "the same ratio for the convergence step (runs that never "
    "converged count as their full length)",
    "P(…)": "probability of improvement: the chance that a random seed of the first arm does "
    "better than a random seed of the second, ties counting half (rliable); 0.5 = no difference. "
    "For steps, runs that never got there rank last (tied with each other)",
    "p": "two-sided Mann–Whitney U test p-value over seeds (exact for small samples). With 3 vs "
    "3 seeds the smallest possible p is 0.1 (0.029 for 4 vs 4, 0.008 for 5 vs 5), however large "
    "the difference",
    "Δ final return": "tutored mean final return minus the baseline's",
}


# ---------------------------------------------------------------------------------------------
# Tables of numbers


def prepare_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of the runs table: required columns present, optional ones filled."""
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s): {', '.join(missing)}")
    runs = runs.copy()
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
    values = series.dropna()
    return float(values.iloc[0]) if len(values) else math.nan


def mean_of(series: pd.Series) -> float:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _values(done: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of ``metric`` over finished runs, and which of them are censored.

    For a censored metric a run that never got there (NaN) takes its training length.
    """
    values = pd.to_numeric(done[metric], errors="coerce")
    if metric not in CENSORED:
        return values.to_numpy(dtype=float), np.zeros(len(values), dtype=bool)
    censored = values.isna() & done["steps"].notna()
    return values.fillna(done["steps"]).to_numpy(dtype=float), censored.to_numpy()


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


def _acceleration(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for env, algo in pairs(runs):
        group = runs[(runs["env"] == env) & (runs["algo"] == algo)]
        done = group[group["status"] == "done"]
        base = done[done["arm"] == BASELINE]
        for arm in _arms(group):
            first = group[group["arm"] == arm].iloc[0]
            if first["tutor"] == BASELINE:
                continue
            tut = done[done["arm"] == arm]
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "arm": arm,
                "tutor": first["tutor"],
                "reuse": bool(first["reuse"]),
                "baseline_seeds": len(base),
                "tutored_seeds": len(tut),
            }
            for metric, name in (
                ("steps_to_threshold", "acceleration"),
                ("convergence_step", "convergence_ratio"),
            ):
                b, b_cens = _values(base, metric)
                t, t_cens = _values(tut, metric)
                row[f"baseline_{CENSORED[metric]}"] = int((~np.isnan(b) & ~b_cens).sum())
                row[f"tutored_{CENSORED[metric]}"] = int((~np.isnan(t) & ~t_cens).sum())
                result = stats.acceleration(b, t, b_cens, t_cens, reps=reps, seed=seed)
                _put(row, name, (result["ratio"], result["low"], result["high"]))
                row[f"{name}_bound"] = result["bound"]
            b_conv, _ = _values(base, "convergence_step")
            t_conv, _ = _values(tut, "convergence_step")
            _put(
                row,
                "p_converges_sooner",
                stats.probability_of_improvement(-t_conv, -b_conv, reps=reps, seed=seed),
            )
            row["convergence_p_value"] = _num(stats.rank_test(t_conv, b_conv))
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
            rows.append(row)
    return pd.DataFrame(rows, columns=ACCELERATION_COLUMNS)


def _reuse(runs: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for env, algo in pairs(runs):
        group = runs[(runs["env"] == env) & (runs["algo"] == algo)]
        done = group[group["status"] == "done"]
        for tutor in dict.fromkeys(group["tutor"]):
            arms = group[group["tutor"] == tutor]
            if tutor == BASELINE or arms["reuse"].nunique() < 2:
                continue
            off = done[(done["tutor"] == tutor) & ~done["reuse"]]
            on = done[(done["tutor"] == tutor) & done["reuse"]]
            off_conv, off_cens = _values(off, "convergence_step")
            on_conv, on_cens = _values(on, "convergence_step")
            row: dict[str, Any] = {
                "env": env,
                "algo": algo,
                "tutor": tutor,
                "seeds_off": len(off),
                "seeds_on": len(on),
                "converged_off": int((~np.isnan(off_conv) & ~off_cens).sum()),
                "converged_on": int((~np.isnan(on_conv) & ~on_cens).sum()),
            }
            result = stats.acceleration(off_conv, on_conv, off_cens, on_cens, reps, seed)
            _put(row, "convergence_ratio", (result["ratio"], result["low"], result["high"]))
            row["convergence_ratio_bound"] = result["bound"]
            _put(
                row,
                "p_on_sooner",
                stats.probability_of_improvement(-on_conv, -off_conv, reps=reps, seed=seed),
            )
            row["p_value"] = _num(stats.rank_test(on_conv, off_conv))
            off_std, _ = _values(off, "stability_std")
            on_std, _ = _values(on, "stability_std")
            row["stability_std_off"] = mean_of(off["stability_std"])
            row["stability_std_on"] = mean_of(on["stability_std"])
            row["drops_off"] = mean_of(off["drops"])
            row["drops_on"] = mean_of(on["drops"])
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
      ``seeds_unfinished``, ``steps`` (training length), ``threshold``, ``tolerance``,
      ``converged`` and ``reached`` (finished runs that converged / reached the threshold), then
      ``<metric>_mean``/``<metric>_iqm`` with ``_low``/``_high`` for each metric of
      :data:`RUN_METRICS` (for the convergence step and steps to threshold, runs that never got
      there count as their training length — the estimate is then a lower bound — and all
      values are NaN when no run got there), and the mean per run of :data:`COSTS`.
    * ``acceleration`` — one row per tutored arm vs the ``none`` arm of the same (env, algo):
      ``acceleration`` (mean steps to threshold, baseline / tutored; see
      :func:`tutorl.experiments.stats.acceleration`) and ``convergence_ratio`` (same for the
      convergence step), each with interval and ``_bound``; ``p_converges_sooner``
      (P(tutored converges sooner)) and ``convergence_p_value``; ``final_return_diff``
      (tutored − baseline mean), ``p_final_better``, ``final_return_p_value``; seed and
      reached/converged counts of both arms.
    * ``reuse`` — one row per (env, algo, tutor) run both with and without reuse:
      ``convergence_ratio`` (off / on), ``p_on_sooner``, ``p_value``, mean
      ``stability_std``/``drops`` ``_off`` and ``_on``, ``p_on_more_stable`` (P(lower std with
      reuse)), ``reuse_hits_on``, ``reuse_agreement_on``.
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
