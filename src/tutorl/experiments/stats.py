"""Statistics over seeds, after rliable (Agarwal et al., 2021, "Deep RL at the edge of the
statistical precipice").

Every function takes per-seed scores (one number per run) as array-likes. ``NaN`` (or ``None``)
means "missing": such entries are dropped before anything is computed, so a failed or unfinished
run never counts as a score.

Point estimates follow rliable's definitions (``metrics.aggregate_iqm``,
``metrics.probability_of_improvement``). Intervals are rliable's stratified percentile bootstrap
with one task, i.e. a plain bootstrap over runs: resample the seeds with replacement ``reps``
times, recompute the statistic, and take the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
percentiles (linear interpolation, as ``np.percentile``/arch do). Two arms are resampled
independently of each other. The resampling is done here, vectorised and seeded with
``np.random.default_rng(seed)``, instead of through ``rly.get_interval_estimates``: rliable
1.2.0's ``StratifiedBootstrap`` draws its indices from the global ``np.random`` state and
ignores ``random_state``, so its intervals are not reproducible without reseeding the whole
process, and it calls the statistic once per replicate in Python (about a second per
probability-of-improvement interval). ``tests/test_stats.py`` checks that the intervals agree
with rliable's.

No interval is ever made up from too little data: a statistic of one seed has no interval
(``None``), and one of no seeds is ``None`` altogether.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

# Exact permutation p-values (ties) enumerate C(n + m, n) splits; above this, use the normal
# approximation.
_MAX_EXACT_SPLITS = 50_000


def _scores(x: Any) -> np.ndarray:
    """``x`` as a 1-D float array with missing values (NaN/None) dropped."""
    values = pd.to_numeric(pd.Series(np.ravel(np.asarray(x, dtype=object))))
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    return arr[~np.isnan(arr)]


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` bootstrap resamples of ``x`` (shape ``(reps, len(x))``), seeds drawn with
    replacement."""
    return x[rng.integers(0, len(x), size=(reps, len(x)))]


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """The interquartile mean of each row (``scipy.stats.trim_mean(row, 0.25)``)."""
    n = samples.shape[1]
    cut = int(0.25 * n)
    return np.sort(samples, axis=1)[:, cut : n - cut].mean(axis=1)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    # Linear interpolation between two infinite replicates gives NaN; the bound is infinite.
    return (
        float(low) if not np.isnan(low) else math.inf,
        float(high) if not np.isnan(high) else math.inf,
    )


def iqm(x: Any) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores.

    Exactly rliable's ``metrics.aggregate_iqm`` for one task, i.e.
    ``scipy.stats.trim_mean(x, 0.25)``: sort the ``n`` scores, drop ``floor(n / 4)`` from each
    end and average the rest. So for fewer than four seeds nothing is trimmed and the IQM is the
    plain mean; for 4 seeds it is the mean of the middle two; for 5 (cut 1), of the middle three.

    :param x: Per-seed scores; NaN entries are dropped.
    :return: The IQM, or NaN when no score is left.
    """
    arr = _scores(x)
    if len(arr) == 0:
        return math.nan
    return float(sps.trim_mean(arr, 0.25))


def interval(
    x: Any,
    statistic: Literal["mean", "iqm"] = "mean",
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float | None, float | None, float | None]:
    """A statistic of per-seed scores with its percentile-bootstrap confidence interval.

    The seeds are resampled with replacement ``reps`` times; the interval is the central
    ``confidence`` range of the statistic over the resamples (rliable's percentile stratified
    bootstrap, one task). Deterministic for a given ``seed``.

    :param x: Per-seed scores; NaN entries are dropped.
    :param statistic: ``"mean"`` or ``"iqm"`` (see :func:`iqm`).
    :param reps: Bootstrap replicates.
    :param seed: Seed of the resampling.
    :param confidence: Coverage of the interval (0.95: a 95% interval).
    :return: ``(point, low, high)``; ``(point, None, None)`` for one seed (no interval from one
        seed) and ``(None, None, None)`` for none.
    """
    if statistic not in ("mean", "iqm"):
        raise ValueError(f"statistic must be 'mean' or 'iqm', not {statistic!r}")
    arr = _scores(x)
    if len(arr) == 0:
        return None, None, None
    point = float(arr.mean()) if statistic == "mean" else iqm(arr)
    if len(arr) == 1:
        return point, None, None
    samples = _resample(arr, reps, np.random.default_rng(seed))
    values = samples.mean(axis=1) if statistic == "mean" else _iqm_rows(samples)
    low, high = _percentiles(values, confidence)
    return point, low, high


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) for rows of ``x`` (shape ``(r, n)``) against rows of ``y``."""
    greater = (x[:, :, None] > y[:, None, :]).mean(axis=(1, 2))
    equal = (x[:, :, None] == y[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * equal


def probability_of_improvement(
    x: Any, y: Any, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Probability that a run of arm X scores higher than a run of arm Y, with a bootstrap CI.

    ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of one seed of X and one seed of Y: the
    Mann–Whitney U statistic of X over Y divided by ``len(x) * len(y)`` (rliable's
    ``metrics.probability_of_improvement`` for one task). 1 means every run of X beats every run
    of Y, 0.5 means no difference. Higher scores must be better: to compare steps (lower is
    better), pass their negatives. The interval resamples the seeds of X and of Y independently.

    :param x: Per-seed scores of arm X; NaN entries are dropped.
    :param y: Per-seed scores of arm Y; NaN entries are dropped.
    :param reps: Bootstrap replicates.
    :param seed: Seed of the resampling.
    :param confidence: Coverage of the interval.
    :return: ``(p, low, high)``; no interval (``None``) unless both arms have at least two seeds,
        and ``(None, None, None)`` if either arm has none.
    """
    a, b = _scores(x), _scores(y)
    if len(a) == 0 or len(b) == 0:
        return None, None, None
    point = float(_poi(a[None, :], b[None, :])[0])
    if len(a) < 2 or len(b) < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    values = _poi(_resample(a, reps, rng), _resample(b, reps, rng))
    low, high = _percentiles(values, confidence)
    return point, low, high


def difference(
    x: Any, y: Any, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """``mean(x) - mean(y)`` with a bootstrap CI resampling the seeds of each arm independently.

    :param x: Per-seed scores of arm X; NaN entries are dropped.
    :param y: Per-seed scores of arm Y; NaN entries are dropped.
    :param reps: Bootstrap replicates.
    :param seed: Seed of the resampling.
    :param confidence: Coverage of the interval.
    :return: ``(difference, low, high)``; no interval unless both arms have at least two seeds,
        ``(None, None, None)`` if either arm has none.
    """
    a, b = _scores(x), _scores(y)
    if len(a) == 0 or len(b) == 0:
        return None, None, None
    point = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    values = _resample(a, reps, rng).mean(axis=1) - _resample(b, reps, rng).mean(axis=1)
    low, high = _percentiles(values, confidence)
    return point, low, high


def _u_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Mann–Whitney U of ``a`` over ``b``: pairs with a > b, ties counting half."""
    return float(_poi(a[None, :], b[None, :])[0] * len(a) * len(b))


def _exact_permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of U over all ``C(n + m, n)`` ways to split the pooled scores (ties kept)."""
    pooled = np.concatenate([a, b])
    ranks = sps.rankdata(pooled)  # mid-ranks for ties
    n = len(a)
    splits = np.array(list(itertools.combinations(range(len(pooled)), n)))
    u = ranks[splits].sum(axis=1) - n * (n + 1) / 2
    observed = _u_statistic(a, b)
    eps = 1e-9 * max(1.0, abs(observed))
    greater = np.mean(u >= observed - eps)
    less = np.mean(u <= observed + eps)
    return float(min(1.0, 2 * min(greater, less)))


def rank_test(x: Any, y: Any) -> float | None:
    """Two-sided Mann–Whitney U test of "X and Y come from the same distribution".

    The p-value is exact whenever that is affordable: scipy's exact null distribution when there
    are no ties, else an exact permutation test over all ``C(n + m, n)`` splits of the pooled
    scores (mid-ranks for ties) when there are at most 50,000 splits, else scipy's normal
    approximation with tie and continuity corrections. Two-sided p is twice the smaller
    one-sided p, capped at 1. Rank tests over few seeds cannot give small p-values: the
    smallest attainable is ``2 / C(n + m, n)``, i.e. 0.1 for 3 vs 3 seeds (1.0 for 1 vs 1, 0.33
    for 2 vs 2, 0.029 for 4 vs 4, 0.0079 for 5 vs 5), however large the difference.

    :param x: Per-seed scores of arm X; NaN entries are dropped.
    :param y: Per-seed scores of arm Y; NaN entries are dropped.
    :return: The p-value, or ``None`` if either arm has no score.
    """
    a, b = _scores(x), _scores(y)
    if len(a) == 0 or len(b) == 0:
        return None
    pooled = np.concatenate([a, b])
    if np.all(pooled == pooled[0]):
        return 1.0  # no difference at all (the normal approximation would divide by zero)
    if len(np.unique(pooled)) == len(pooled):
        p = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    elif math.comb(len(pooled), len(a)) <= _MAX_EXACT_SPLITS:
        p = _exact_permutation_p(a, b)
    else:
        p = sps.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    return float(min(1.0, p))


def acceleration(
    baseline_steps: Any,
    tutored_steps: Any,
    baseline_censored: Any,
    tutored_censored: Any,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """How many times sooner the tutored arm gets somewhere than the baseline arm.

    ``ratio = mean(baseline_steps) / mean(tutored_steps)``, where each entry is a run's steps
    to the event (threshold reached, convergence). A run that never got there is *censored*:
    the caller passes its full training length as its steps and marks it in the ``*_censored``
    array. A censored run's true steps are larger than its length, so an arm with censored runs
    has a mean that is only a lower bound, and:

    * only the baseline censored: the true ratio is at least ``ratio`` (``bound = "≥"``);
    * only the tutored arm censored: the true ratio is at most ``ratio`` (``bound = "≤"``);
    * neither: ``ratio`` is an estimate (``bound = None``);
    * both: the true ratio could be anything: ``ratio`` (and the interval) are ``None``.

    The interval is the percentile bootstrap of the same ratio (censored runs at their length),
    resampling the seeds of each arm independently; with a bound it is an interval of the bound.
    Entries whose steps are NaN are dropped with their censoring flag.

    :param baseline_steps: Per-seed steps of the baseline (full length where censored).
    :param tutored_steps: Per-seed steps of the tutored arm (full length where censored).
    :param baseline_censored: Per-seed booleans: the baseline run never got there.
    :param tutored_censored: Per-seed booleans: the tutored run never got there.
    :param reps: Bootstrap replicates.
    :param seed: Seed of the resampling.
    :param confidence: Coverage of the interval.
    :return: ``{"ratio", "low", "high", "bound"}``; ``ratio`` is ``None`` when unknown (both arms
        censored), when an arm has no runs, or when the tutored mean is 0 (no finite ratio); the
        interval is ``None`` unless both arms have at least two seeds.
    """
    arms = []
    for steps, censored in ((baseline_steps, baseline_censored), (tutored_steps, tutored_censored)):
        s = np.asarray(steps, dtype=float).ravel()
        c = np.asarray(censored, dtype=bool).ravel()
        if s.shape != c.shape:
            raise ValueError(f"{len(s)} steps but {len(c)} censoring flags")
        keep = ~np.isnan(s)
        arms.append((s[keep], c[keep]))
    (b, b_cens), (t, t_cens) = arms
    result: dict[str, Any] = {"ratio": None, "low": None, "high": None, "bound": None}
    if len(b) == 0 or len(t) == 0:
        return result
    if b_cens.any() and t_cens.any():
        return result
    if t.mean() <= 0:
        return result
    result["bound"] = "≥" if b_cens.any() else "≤" if t_cens.any() else None
    result["ratio"] = float(b.mean() / t.mean())
    if len(b) >= 2 and len(t) >= 2:
        rng = np.random.default_rng(seed)
        num = _resample(b, reps, rng).mean(axis=1)
        den = _resample(t, reps, rng).mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)
        result["low"], result["high"] = _percentiles(ratios, confidence)
    return result
