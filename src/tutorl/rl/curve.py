"""A run's learning curve: the columns of ``curve.csv`` and the metrics of the curve alone.

One definition, used where a run ends (``summary.json``), where ``compare`` re-reads curves
for another threshold, and beneath the report's metrics (:mod:`tutorl.experiments.metrics`).
Imports no PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CURVE_COLUMNS = (
    "step",
    "mean_return",
    "std_return",
    "success_rate",
    "tutor_asks",
    "tutor_calls",
    "advised_steps",
    "reuse_hits",
    "wall_time",
)


def area_under_curve(steps: Sequence[float], returns: Sequence[float]) -> float:
    """The mean return over training: trapezoids over the evaluation steps, divided by the
    span (one evaluation: its return)."""
    steps, returns = np.asarray(steps, dtype=float), np.asarray(returns, dtype=float)
    span = steps[-1] - steps[0]
    return float(np.trapezoid(returns, steps) / span) if span > 0 else float(returns[-1])


def curve_metrics(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """:func:`metrics_of_curve` of ``curve.csv``'s rows."""
    return metrics_of_curve([r["step"] for r in rows], [r["mean_return"] for r in rows], threshold)


def metrics_of_curve(
    steps: Sequence[float], returns: Sequence[float], threshold: float
) -> dict[str, Any]:
    """Per-run curve metrics: steps to the success threshold (first evaluation at or above it;
    ``None``: never), final and best return, and the area under the curve
    (:func:`area_under_curve`)."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(returns, dtype=float)
    reached = np.nonzero(values >= threshold)[0]
    return {
        "steps_to_threshold": int(steps[reached[0]]) if len(reached) else None,
        "final_return": float(values[-1]),
        "best_return": float(values.max()),
        "auc": area_under_curve(steps, values),
    }


__all__ = ["CURVE_COLUMNS", "area_under_curve", "curve_metrics", "metrics_of_curve"]
