"""How the report writes a number: steps, returns, differences, ratios, probabilities,
p-values, counts and seconds; a statistic with its interval and bound (:func:`_cell`); and
free text on one line."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _steps(v: float) -> str:
    return f"{v:,.0f}"


def _ret(v: float) -> str:
    return f"{v:.3f}"


def _diff(v: float) -> str:
    return f"{v:+.3f}"


def _ratio(v: float) -> str:
    return "∞" if math.isinf(v) else f"{v:.2f}"


def _prob(v: float) -> str:
    return f"{v:.2f}"


def _pvalue(v: float) -> str:
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _count(v: float) -> str:
    return f"{v:,.1f}" if abs(v) < 100 else f"{v:,.0f}"


def _seconds(v: float) -> str:
    return f"{v:,.1f} s" if abs(v) < 100 else f"{v:,.0f} s"


def _cell(
    row: Any, name: str, fmt: Callable[[float], str], bound: str | None = None, ci: bool = True
) -> str:
    """``name`` of ``row`` as ``"≥1.54 [1.20, 2.10]"``; ``"—"`` when missing."""
    point = row[name]
    if _missing(point):
        return "—"
    text = (bound or "") + fmt(float(point))
    if ci:
        low, high = row.get(name + "_low"), row.get(name + "_high")
        if not _missing(low) and not _missing(high):
            text += f" [{fmt(float(low))}, {fmt(float(high))}]"
    return text


def _one_line(text: Any, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else "…" + text[-limit:]


# Here rather than with the tables: the answers figure labels its rows with it too.
def _agreement_of(t: dict[str, pd.DataFrame], row: Any) -> str:
    """The agreement of a tutored arm: its own mean over runs, else its tutor's."""
    if not _missing(row.get("agreement")):
        return _ret(float(row["agreement"]))
    quality = t["tutor_quality"]
    q = quality[(quality["env"] == row["env"]) & (quality["tutor"] == row["tutor"])]
    if len(q) and not _missing(q.iloc[0]["training_agreement"]):
        return _ret(float(q.iloc[0]["training_agreement"]))
    return "—"
