"""Curve metrics and the comparison table's arithmetic, on hand-made numbers."""

from __future__ import annotations

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
