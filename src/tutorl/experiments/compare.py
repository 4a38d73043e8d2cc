"""``tutorl compare``: the arms *no tutor*, *tutor* and *tutor + reuse* over several seeds.

Runs go to ``OUT/<arm>/seed<k>/`` as ordinary run folders. A run whose ``summary.json`` exists is
complete and is read back, not redone, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutorl.rl.train import RunConfig


def arm_configs(base: RunConfig, seeds: int) -> list[RunConfig]:
    """The three arms of a comparison for ``seeds`` seeds (0..K-1 offset by ``base.seed``)."""
    arms = [{"tutor": "none", "reuse": False}]
    if base.tutor != "none":
        arms += [{"tutor": base.tutor, "reuse": False}, {"tutor": base.tutor, "reuse": True}]
    configs = []
    for arm in arms:
        for k in range(seeds):
            configs.append(base.model_copy(update={**arm, "seed": base.seed + k}))
    return configs


def run_dir(out: Path, config: RunConfig) -> Path:
    return out / config.arm() / f"seed{config.seed}"


def _run_one(config_json: str, folder: str) -> dict[str, Any]:
    # Runs in a worker process: import here so the parent stays light.
    from tutorl.rl.train import RunConfig, train

    summary, _ = train(RunConfig.model_validate_json(config_json), folder)
    return summary


def load_curve(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "curve.csv")


def run_comparison(
    configs: list[RunConfig],
    out: Path,
    workers: int | None = None,
    on_done: Callable[[RunConfig, dict[str, Any]], None] | None = None,
) -> list[tuple[RunConfig, dict[str, Any]]]:
    """Run every config not already complete under ``out``, ``workers`` processes at a time."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[tuple[RunConfig, dict[str, Any]]] = []
    pending = []
    for config in configs:
        folder = run_dir(out, config)
        stored = folder / "config.json"
        before = RunConfig.model_validate_json(stored.read_text()) if stored.exists() else None
        if before is not None and before != config:
            # Resuming must never mix runs of another configuration into this comparison.
            changed = [k for k, v in config.model_dump().items() if getattr(before, k) != v]
            raise ValueError(
                f"{folder} holds a run with a different configuration "
                f"({', '.join(changed)}); choose another --out or remove it"
            )
        summary_path = folder / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            results.append((config, summary))
            if on_done:
                on_done(config, summary)
        else:
            pending.append(config)
    workers = workers or max(1, min(len(pending), os.cpu_count() or 1))
    if pending:
        # spawn, not fork: forking a process that has loaded torch/OpenMP can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(_run_one, c.model_dump_json(), str(run_dir(out, c))): c for c in pending
            }
            for future in as_completed(futures):
                config = futures[future]
                summary = future.result()
                results.append((config, summary))
                if on_done:
                    on_done(config, summary)
    order = {id(c): i for i, c in enumerate(configs)}
    results.sort(key=lambda item: order.get(id(item[0]), 0))
    return results


def with_threshold(
    results: list[tuple[RunConfig, dict[str, Any]]], out: Path, threshold: float
) -> list[tuple[RunConfig, dict[str, Any]]]:
    """The same runs with steps to threshold recomputed from their curves for ``threshold``."""
    from tutorl.rl.train import curve_metrics

    rethresholded = []
    for config, summary in results:
        rows = load_curve(run_dir(out, config)).to_dict("records")
        rethresholded.append((config, {**summary, **curve_metrics(rows, threshold)}))
    return rethresholded


def _mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of a 95% t-interval over seeds."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return float(arr.mean()), None  # no interval from one seed (and no NaN in JSON)
    half = stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return float(arr.mean()), float(half)


def summarise(results: list[tuple[RunConfig, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per arm: the comparison table's numbers (JSON-ready).

    Steps to threshold: a run that never reached the threshold counts as its full length, so the
    arm's mean is a lower bound (``censored`` says how many such runs there were); the
    acceleration ratio is the untutored arm's mean steps to threshold over this arm's.
    """
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for config, summary in results:
        by_arm.setdefault(config.arm(), []).append(summary)
    rows = []
    for arm, runs in by_arm.items():
        steps = [
            r["steps_to_threshold"] if r["steps_to_threshold"] is not None else r["steps"]
            for r in runs
        ]
        censored = sum(r["steps_to_threshold"] is None for r in runs)
        final, final_ci = _mean_ci([r["final_return"] for r in runs])
        best, _ = _mean_ci([r["best_return"] for r in runs])
        auc, auc_ci = _mean_ci([r["auc"] for r in runs])
        advice = [r["advice"] for r in runs if r.get("advice")]
        agreement = [a["agreement"] for a in advice if a.get("agreement") is not None]
        reuse_agreement = [
            a["reuse_agreement"] for a in advice if a.get("reuse_agreement") is not None
        ]
        rows.append(
            {
                "arm": arm,
                "seeds": len(runs),
                "steps_to_threshold": float(np.mean(steps)),
                "reached": len(runs) - censored,
                "censored": censored,
                "final_return": final,
                "final_return_ci95": final_ci,
                "best_return": best,
                "auc": auc,
                "auc_ci95": auc_ci,
                "tutor_asks": float(np.mean([a["tutor_asks"] for a in advice])) if advice else 0,
                "advised_steps": float(np.mean([a["advised_steps"] for a in advice]))
                if advice
                else 0,
                "reuse_hits": float(np.mean([a["reuse_hits"] for a in advice])) if advice else 0,
                "agreement": float(np.mean(agreement)) if agreement else None,
                "reuse_agreement": float(np.mean(reuse_agreement)) if reuse_agreement else None,
                "wall_time": float(np.mean([r["wall_time"] for r in runs])),
            }
        )
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
    return rows


def format_acceleration(row: dict[str, Any]) -> str:
    """``1.54``, ``≥1.20`` (censored baseline) or ``—`` (unknown)."""
    if row.get("acceleration") is None:
        return "—"
    return f"{row.get('acceleration_bound') or ''}{row['acceleration']:.2f}"


def _ci(half: float | None) -> str:
    return "—" if half is None else f"{half:.3f}"


def markdown_table(rows: list[dict[str, Any]], threshold: float) -> str:
    """The comparison table as Markdown (``comparison.md``), ready to paste into a report."""
    lines = [
        "| arm | seeds | steps to threshold (reached) | acceleration | final return ± 95% CI "
        "| best | AUC | tutor asks | reuse hits | agreement with expert (fresh / reused) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        prefix = "≥" if row["censored"] else ""
        accel = format_acceleration(row)
        agreement = f"{row['agreement']:.2f}" if row["agreement"] is not None else "—"
        if row.get("reuse_agreement") is not None:
            agreement += f" / {row['reuse_agreement']:.2f}"
        lines.append(
            f"| {row['arm']} | {row['seeds']} "
            f"| {prefix}{row['steps_to_threshold']:,.0f} ({row['reached']}/{row['seeds']}) "
            f"| {accel} | {row['final_return']:.3f} ± {_ci(row['final_return_ci95'])} "
            f"| {row['best_return']:.3f} | {row['auc']:.3f} | {row['tutor_asks']:,.0f} "
            f"| {row['reuse_hits']:,.0f} | {agreement} |"
        )
    lines.append(f"\nSuccess threshold: {threshold:g}.")
    return "\n".join(lines) + "\n"


def plot_curves(
    results: list[tuple[RunConfig, dict[str, Any]]],
    out: Path,
    path: Path,
    threshold: float | None = None,
    title: str = "",
) -> Path:
    """Mean greedy-evaluation return per arm with a 95% band over seeds, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    curves: dict[str, list[pd.DataFrame]] = {}
    for config, _ in results:
        curves.setdefault(config.arm(), []).append(load_curve(run_dir(out, config)))
    for arm, frames in curves.items():
        # Evaluations happen at the same steps in every seed; align on the shortest curve.
        n = min(len(f) for f in frames)
        steps = frames[0]["step"].to_numpy()[:n]
        values = np.stack([f["mean_return"].to_numpy()[:n] for f in frames])
        mean = values.mean(axis=0)
        ax.plot(steps, mean, label=f"{arm} (n={len(frames)})")
        if len(frames) > 1:
            sem = values.std(axis=0, ddof=1) / math.sqrt(len(frames))
            half = stats.t.ppf(0.975, len(frames) - 1) * sem
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="success threshold")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
