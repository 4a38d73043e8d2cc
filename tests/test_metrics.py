"""Curve metrics and the comparison table's arithmetic, on hand-made numbers."""

from __future__ import annotations

import json

import pytest

from tutorl.experiments.compare import markdown_table, summarise
from tutorl.rl.train import RunConfig, curve_metrics


def rows(values, every=1000):
    return [{"step": i * every, "mean_return": v} for i, v in enumerate(values)]


def test_steps_to_threshold_is_the_first_evaluation_at_or_above_it():
    metrics = curve_metrics(rows([-1.0, -0.2, 0.0, -0.5, 0.4]), threshold=0.0)
    assert metrics["steps_to_threshold"] == 2000
    assert metrics["final_return"] == 0.4
    assert metrics["best_return"] == 0.4
    # Trapezoid over [0, 4000]: (-0.6 - 0.1 - 0.25 - 0.05) * 1000 / 4000
    assert metrics["auc"] == pytest.approx(-0.25)


def test_threshold_never_reached_is_none():
    assert curve_metrics(rows([-1.0, -0.5]), threshold=0.0)["steps_to_threshold"] is None


def summary(steps_to_threshold, final, steps=10_000, advice=None):
    return {
        "steps_to_threshold": steps_to_threshold,
        "steps": steps,
        "final_return": final,
        "best_return": final,
        "auc": final / 2,
        "wall_time": 1.0,
        "advice": advice,
    }


def test_acceleration_ratio_and_censoring():
    base = RunConfig(env="snake", algo="ppo", tutor="expert", steps=10_000)
    advice = {"tutor_asks": 10, "advised_steps": 10, "reuse_hits": 0, "agreement": 1.0}
    results = [
        (base.model_copy(update={"tutor": "none", "seed": 0}), summary(8000, 1.0)),
        (base.model_copy(update={"tutor": "none", "seed": 1}), summary(None, 0.5)),
        (base.model_copy(update={"seed": 0}), summary(3000, 2.0, advice=advice)),
        (base.model_copy(update={"seed": 1}), summary(6000, 3.0, advice=advice)),
    ]
    table = {row["arm"]: row for row in summarise(results)}
    # The unreached baseline run counts at its full length (a lower bound): (8000 + 10000) / 2.
    assert table["none"]["steps_to_threshold"] == 9000
    assert table["none"]["censored"] == 1
    assert table["expert"]["steps_to_threshold"] == 4500
    assert table["expert"]["acceleration"] == pytest.approx(2.0)
    assert table["expert"]["final_return"] == pytest.approx(2.5)
    assert table["expert"]["agreement"] == 1.0
    # The baseline is censored: 2.0 is a lower bound on the acceleration.
    assert table["expert"]["acceleration_bound"] == "≥"
    text = markdown_table(list(table.values()), threshold=10)
    assert "≥9,000 (1/2)" in text and "≥2.00" in text


# ---------------------------------------------------------------------------------------------
# Learning speed against common levels (tutorl.experiments.metrics)

import math  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tutorl.experiments import metrics as m  # noqa: E402
from tutorl.experiments.tables import tables  # noqa: E402


def frame(values, every=1000):
    return pd.DataFrame({"step": np.arange(len(values)) * every, "mean_return": values})


def test_crossings_of_50_80_100_percent_are_the_known_steps():
    # Initial 0, reference 10: levels 5, 8, 10; raw crossings at indices 2, 4, 6.
    curve = frame([0, 2, 5, 7, 8, 9, 10, 10, 10])
    out = m.level_metrics(curve, initial=0.0, untutored=10.0, expert=None, smoothing=1)
    assert out["steps_to_untutored_50"] == 2000
    assert out["steps_to_untutored_80"] == 4000
    assert out["steps_to_untutored_100"] == 6000
    # No expert: undefined, not censored.
    assert all(math.isnan(out[f"steps_to_expert_{p}"]) for p in (50, 80, 100))
    # With the centred window of 3 the smoothed curve is 1, 2.33, 4.67, 6.67, 8, 9, 9.67, 10,
    # 10: the 50% level is crossed one evaluation later, 80% at the same one.
    smoothed = m.level_metrics(curve, 0.0, 10.0, 12.0, smoothing=3)
    assert smoothed["steps_to_untutored_50"] == 3000
    assert smoothed["steps_to_untutored_80"] == 4000
    assert smoothed["steps_to_untutored_100"] == 7000
    assert math.isnan(smoothed["steps_to_expert_100"])  # 12 never reached: censored


def test_a_run_that_never_reaches_the_level_is_censored_and_a_bound():
    curve = frame([0, 3, 4, 4, 4])
    assert math.isnan(m.first_crossing(curve, 5.0, smoothing=1))
    assert m.first_crossing(curve, 4.0, smoothing=1) == 2000


def test_reference_at_or_below_the_initial_return_gives_nan():
    curve = frame([0, 1, 2])
    for reference in (0.0, -1.0, math.nan):
        out = m.level_metrics(curve, 0.0, reference, reference, smoothing=1)
        assert all(math.isnan(v) for v in out.values())
    assert all(math.isnan(v) for v in m.levels(1.0, 1.0).values())


def test_the_initial_return_is_the_untutored_step_0_mean_and_common_to_all_arms():
    base = [frame([-1.0, 0, 1, 1, 1]), frame([-3.0, 0, 1, 1, 1])]
    initial, final = m.common_levels(base, smoothing=1)
    assert initial == -2.0 and final == 1.0
    # A tutored arm that starts higher is measured from the same start.
    runs = pd.DataFrame(
        {"env": "g", "algo": "ppo", "arm": ["none", "none", "expert"], "status": "done"}
    )
    table = m.add_level_metrics(runs, [*base, frame([0.0, 1, 1, 1, 1])], {("g", "ppo"): 3.0}, 1)
    assert (table["initial_return"] == -2.0).all() and (table["untutored_level"] == 1.0).all()
    assert (table["expert_level"] == 3.0).all()
    # Level 50% of the untutored climb: -2 + 0.5 * 3 = -0.5; the tutored arm starts above it
    # (its own start, 0, is not the scale) and is there at step 0; 100% (1) at step 1000.
    assert table.loc[2, "steps_to_untutored_50"] == 0
    assert table.loc[2, "steps_to_untutored_100"] == 1000
    assert table.loc[0, "steps_to_untutored_50"] == 1000
    assert table.loc[2, "normalised_auc"] == pytest.approx((0.875 + 2) / 3)


def level_runs(tutored_curve, baseline_curves, steps=8000):
    rows = [{"arm": "none", "seed": i} for i in range(len(baseline_curves))]
    rows += [{"arm": "expert", "seed": i} for i in range(3)]
    runs = pd.DataFrame(rows).assign(
        env="g", algo="ppo", tutor=lambda d: d["arm"], reuse=False, status="done", steps=steps
    )
    curves = [*baseline_curves, *[tutored_curve] * 3]
    runs = m.add_level_metrics(runs, curves, {("g", "ppo"): None}, smoothing=1)
    for i, curve in enumerate(curves):
        runs.loc[i, "final_return"] = curve["mean_return"].iloc[-1]
    return runs


def test_a_run_that_plateaus_early_on_a_bad_level_is_not_counted_as_faster():
    baseline = [frame([0, 2, 4, 6, 8, 10, 10, 10, 10])] * 3  # untutored level 10 at step 5000
    stalled = frame([0, 5, 5, 5, 5, 5, 5, 5, 5])  # settles at once, on a bad policy
    old = m.curve_metrics(stalled, threshold=100, tolerance=0.5, smoothing=1)
    base = m.curve_metrics(baseline[0], threshold=100, tolerance=0.5, smoothing=1)
    assert old["plateau_step"] < base["plateau_step"]  # the old "convergence" said faster
    acc = tables(level_runs(stalled, baseline), reps=200)["acceleration"].iloc[0]
    # Never reaches the untutored level: counted at its length, 8000: at most 5000 / 8000.
    assert acc["speedup_untutored_100"] == pytest.approx(5000 / 8000)
    assert acc["speedup_untutored_100_bound"] == "≤"
    assert acc["tutored_reached_untutored_100"] == 0 and acc["p_reaches_sooner"] == 0.0
    # It does reach 50% sooner (step 1000 vs 3000), which is what the 50% column says.
    assert acc["speedup_untutored_50"] == pytest.approx(3.0)


def test_a_run_that_reaches_the_untutored_level_sooner_but_keeps_improving_is_faster():
    baseline = [frame([0, 2, 4, 6, 8, 10, 10, 10, 10])] * 3
    improving = frame([0, 4, 10, 12, 14, 16, 18, 20, 22])  # never settles on its own plateau
    assert math.isnan(m.curve_metrics(improving, 100, 0.5, 1)["plateau_step"])
    acc = tables(level_runs(improving, baseline), reps=200)["acceleration"].iloc[0]
    assert acc["speedup_untutored_100"] == pytest.approx(5000 / 2000)
    assert acc["speedup_untutored_100_bound"] is None


def test_compare_summarise_measures_against_the_untutored_level_with_bootstrap_intervals():
    base = RunConfig(env="blackjack", algo="ppo", tutor="expert", steps=9000)
    flat = [-0.25] * 6
    baseline = [frame([-1, -0.75, -0.5, -0.25, *flat])] * 2
    tutored = [frame([-1, -0.25, -0.25, -0.25, *flat]), frame([-1, -0.5, -0.25, -0.25, *flat])]
    results = [
        (base.model_copy(update={"tutor": "none", "seed": k}), summary(None, -0.25, 9000))
        for k in range(2)
    ] + [(base.model_copy(update={"seed": k}), summary(None, -0.25, 9000)) for k in range(2)]
    rows = {r["arm"]: r for r in summarise(results, curves={"none": baseline, "expert": tutored})}
    assert rows["none"]["untutored_level"] == -0.25
    assert rows["none"]["initial_return"] == -1
    assert rows["none"]["expert_level"] == pytest.approx(m.BLACKJACK_OPTIMUM, abs=1e-4)
    # Smoothed (window 3) crossings of -0.25: untutored at 4000 (both), tutored 2000 and 3000.
    assert rows["none"]["steps_to_untutored_100"] == 4000
    assert rows["expert"]["steps_to_untutored_100"] == 2500
    assert rows["expert"]["speedup_untutored_100"] == pytest.approx(1.6)
    assert rows["expert"]["speedup_untutored_100_bound"] is None
    assert rows["expert"]["reached_expert_100"] == 0  # -0.0466 never reached
    assert rows["expert"]["speedup_expert_100"] is None  # both arms censored: unknown
    assert rows["expert"]["final_return_low"] == rows["expert"]["final_return_high"] == -0.25
    assert "| 2,500 (2/2) | 1.60 [" in markdown_table(list(rows.values()), threshold=-0.06)
    json.dumps(rows, allow_nan=False)  # comparison.json stays valid JSON


def test_blackjack_expert_level_is_the_optimum_and_cached(tmp_path):
    setting = ("blackjack", {}, 10_000, 50)
    records = m.expert_levels(tmp_path, [setting])
    (record,) = records.values()
    assert record["method"] == "exact"
    assert record["expert_return"] == pytest.approx(m.BLACKJACK_OPTIMUM, abs=5e-5)
    cache = tmp_path / m.REFERENCE_FILE
    assert cache.is_file()
    # A cached value is read back, not recomputed.
    data = json.loads(cache.read_text())
    key = next(iter(data["expert"]))
    data["expert"][key]["expert_return"] = -0.5
    cache.write_text(json.dumps(data))
    assert next(iter(m.expert_levels(tmp_path, [setting]).values()))["expert_return"] == -0.5


def test_a_curve_flat_at_its_plateau_reaches_it_despite_rounding():
    # (-0.1 - 0.1 - 0.1) / 3 is -0.10000000000000002 in floating point.
    curve = frame([-0.5, -0.3, -0.1, -0.1, -0.1, -0.1])
    level = m.plateau_of(curve, 3)
    assert m.first_crossing(curve, level, smoothing=3) == 3000
