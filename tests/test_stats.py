"""Statistics over seeds on hand-made numbers, and agreement with rliable's definitions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as sps

from tutorl.experiments.stats import (
    acceleration,
    difference,
    interval,
    iqm,
    probability_of_improvement,
    rank_test,
)


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 scores: drop the 2 lowest and the 2 highest; the outlier does not move the IQM.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)
    # 5 scores: floor(5/4) = 1 cut from each end -> mean(2, 3, 4).
    assert iqm([10, 2, 3, 4, 1]) == pytest.approx(3.0)
    # Fewer than 4 seeds: nothing is trimmed, the IQM is the mean; NaN is dropped.
    assert iqm([1.0, 2.0, 9.0, np.nan]) == pytest.approx(4.0)
    assert np.isnan(iqm([np.nan]))


def rliable():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rliable import library, metrics
    return library, metrics


def test_point_estimates_match_rliable():
    _, metrics = rliable()
    x = np.array([3.0, 7, 1, 9, 4, 12, 5])
    y = np.array([2.0, 5, 1, 4, 4])
    assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x[:, None]))
    expected = metrics.probability_of_improvement(x[:, None], y[:, None])
    assert probability_of_improvement(x, y)[0] == pytest.approx(expected)


def test_intervals_match_rliable_bootstrap():
    library, _ = rliable()
    x = np.array([3.0, 7, 1, 9, 4, 12, 5])
    # rliable 1.2.0 draws from the global NumPy generator (it ignores random_state).
    state = np.random.get_state()
    try:
        np.random.seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, ci = library.get_interval_estimates(
                {"x": x[:, None]}, lambda s: np.array([np.mean(s)]), reps=5000
            )
    finally:
        np.random.set_state(state)
    point, low, high = interval(x, "mean", reps=5000)
    assert point == pytest.approx(x.mean())
    assert low == pytest.approx(ci["x"][0, 0], abs=0.3)
    assert high == pytest.approx(ci["x"][1, 0], abs=0.3)


def test_interval_contains_the_point_and_narrows_with_more_seeds():
    few = [0.0, 1.0, 2.0, 3.0, 4.0]
    many = few * 10  # same spread, ten times the seeds
    for statistic in ("mean", "iqm"):
        point, low, high = interval(few, statistic)
        assert low < point < high
        p_many, l_many, h_many = interval(many, statistic)
        assert p_many == pytest.approx(point)
        assert (h_many - l_many) < 0.6 * (high - low)


def test_iqm_interval_resists_an_outlier():
    x = [*range(1, 20), 1000.0]  # 20 seeds, one wild
    point, low, high = interval(x, "iqm")
    assert point == pytest.approx(10.5)  # mean of 6..15
    assert low <= point <= high < 20  # resamples trim the outlier too...
    assert interval(x, "mean")[2] > 100  # ...while the mean's interval is dragged up by it


def test_interval_is_deterministic_given_the_seed():
    x = np.random.default_rng(0).normal(size=10)
    assert interval(x, seed=3) == interval(x, seed=3)
    assert interval(x, seed=3) != interval(x, seed=4)


def test_no_interval_from_one_seed_and_nothing_from_none():
    assert interval([2.5, np.nan]) == (2.5, None, None)
    assert interval([np.nan, None]) == (None, None, None)
    assert interval([], "iqm") == (None, None, None)
    with pytest.raises(ValueError):
        interval([1.0, 2.0], "median")  # type: ignore[arg-type]


def test_probability_of_improvement():
    assert probability_of_improvement([5, 6, 7], [1, 2, 3]) == (1.0, 1.0, 1.0)
    assert probability_of_improvement([1, 2, 3], [5, 6, 7])[0] == 0.0
    assert probability_of_improvement([1, 2, 3], [1, 2, 3])[0] == pytest.approx(0.5)
    # Ties count half: 1 beats nothing and ties 1 -> 0.5; 3 beats both -> 2; of 4 pairs.
    assert probability_of_improvement([1, 3], [1, 2])[0] == pytest.approx(2.5 / 4)
    # Steps, lower is better: pass negatives. Fewer steps in X -> X improves.
    p, low, high = probability_of_improvement(-np.array([100, 200, 300]), -np.array([250, 400]))
    assert p == pytest.approx(5 / 6)
    assert low <= p <= high
    # One seed on a side: a point, no interval.
    assert probability_of_improvement([2.0], [1.0, 3.0]) == (0.5, None, None)
    assert probability_of_improvement([], [1.0]) == (None, None, None)


def test_difference_of_means():
    d, low, high = difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert d == pytest.approx(2.0)
    assert low < 2.0 < high


def test_rank_test():
    # 3 vs 3 fully separated: the smallest attainable two-sided p, 2 / C(6, 3).
    assert rank_test([4, 5, 6], [1, 2, 3]) == pytest.approx(0.1)
    assert rank_test([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert rank_test([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert rank_test([1.0], []) is None
    assert rank_test([np.nan], [1.0]) is None
    # With ties: the exact permutation p (scipy's permutation method agrees).
    x, y = [1.0, 1.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0]
    expected = sps.mannwhitneyu(x, y, method=sps.PermutationMethod(n_resamples=np.inf)).pvalue
    assert rank_test(x, y) == pytest.approx(expected)
    # A side of one seed with ties works too (scipy's permutation method refuses it).
    assert rank_test([2.0], [2.0, 3.0]) == pytest.approx(1.0)


def test_acceleration_ratio_and_bounds():
    # Baseline runs: 8000 and a censored one at its full length 10000; tutored: 3000, 6000.
    result = acceleration([8000, 10000], [3000, 6000], [False, True], [False, False])
    assert result["ratio"] == pytest.approx(9000 / 4500)
    assert result["bound"] == "≥"
    assert result["low"] <= result["ratio"] <= result["high"]

    neither = acceleration([8000, 9000, 10000], [4000, 5000, 6000], [False] * 3, [False] * 3)
    assert neither["ratio"] == pytest.approx(1.8)
    assert neither["bound"] is None

    tutored_only = acceleration([8000, 9000], [4000, 10000], [False, False], [False, True])
    assert tutored_only["ratio"] == pytest.approx(8500 / 7000)
    assert tutored_only["bound"] == "≤"

    both = acceleration([8000, 10000], [4000, 10000], [False, True], [False, True])
    assert both == {"ratio": None, "low": None, "high": None, "bound": None}


def test_acceleration_edge_cases():
    # One seed per arm: a ratio, no interval.
    single = acceleration([9000], [3000], [False], [False])
    assert single["ratio"] == pytest.approx(3.0)
    assert single["low"] is None and single["high"] is None
    # NaN steps are missing runs, dropped with their flags.
    dropped = acceleration([8000, np.nan], [4000, 4000], [False, True], [False, False])
    assert dropped["ratio"] == pytest.approx(2.0)
    assert dropped["bound"] is None
    assert acceleration([], [1000], [], [False])["ratio"] is None
    with pytest.raises(ValueError):
        acceleration([1000, 2000], [1000], [False], [False])
