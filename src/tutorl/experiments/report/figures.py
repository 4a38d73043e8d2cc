"""The report's figures, written as PNG: the learning curves of a game × algorithm
(:func:`curves_figure`, :func:`plot_curves`) and the answers at a glance (:func:`plot_answers`).

Matplotlib is imported inside the functions that draw, so importing the report does not load it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutorl._io import atomic_write_bytes
from tutorl.experiments.metrics import HEADLINE
from tutorl.experiments.report.formatting import _agreement_of, _missing
from tutorl.experiments.tables import BASELINE, speedup_column

_PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
]


def _write_png(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


#: At most this many arms share a panel of the curves figure (the untutored arm included).
MAX_ARMS_PER_PANEL = 5


def _is_reuse(arm: str) -> bool:
    return "reuse" in arm.split("+")


def curve_band(
    frames: list[pd.DataFrame], reps: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Mean return over seeds at each evaluation and its percentile-bootstrap band.

    Seeds are aligned on the shortest curve (evaluations happen at the same steps in every
    seed). At each evaluation the seeds are resampled with replacement ``reps`` times and the
    band is the central ``confidence`` range of the resampled means: the same bootstrap as the
    tables' intervals. A mean of resampled seeds never leaves the range of the seeds, so the
    band stays within the observed returns (a t-band of 3 seeds did not: on Blackjack it spanned
    −1.9 to +0.45, far outside what the return can be).

    :return: ``(steps, mean, low, high)``; ``low``/``high`` are None for a single seed.
    """
    n = min(len(f) for f in frames)
    steps = frames[0]["step"].to_numpy(dtype=float)[:n]
    values = np.stack([f["mean_return"].to_numpy(dtype=float)[:n] for f in frames])
    mean = values.mean(axis=0)
    if len(frames) < 2:
        return steps, mean, None, None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(frames), size=(reps, len(frames)))
    means = values[index].mean(axis=1)  # (reps, evaluations)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return steps, mean, low, high


def panel_arms(arms: list[str], max_arms: int = MAX_ARMS_PER_PANEL) -> list[list[str]]:
    """Arms split into panels of at most ``max_arms``, the untutored arm in every panel."""
    others = [arm for arm in arms if arm != BASELINE]
    head = [BASELINE] if BASELINE in arms else []
    size = max(1, max_arms - len(head))
    chunks = [others[i : i + size] for i in range(0, len(others), size)] or [[]]
    return [head + chunk for chunk in chunks if head + chunk]


def curves_figure(
    curves: dict[tuple[str, str, str], list[pd.DataFrame]],
    env: str,
    algo: str,
    threshold: float | None = None,
    levels: dict[str, Any] | None = None,
    title: str | None = None,
    max_arms: int = MAX_ARMS_PER_PANEL,
) -> tuple[Any, list[dict[str, Any]]]:
    """The learning-curves figure of one game × algorithm and the numbers it draws.

    One row of two panels per group of at most ``max_arms`` arms (the untutored arm in every
    row): the whole curve, and a zoom on the top (from 90% of the untutored final level to the
    highest curve or reference) where arms differ near the optimum. Each arm is its mean return
    over seeds with a 95% percentile-bootstrap band of that mean (:func:`curve_band`), clipped
    to the observed range (min to max over every seed's curve in the panel). The untutored arm
    is thick black, reuse arms dash-dotted in their variant's colour. Reference lines: the
    expert level dashed, the untutored final level dotted, the success threshold thin grey
    dash-dot. The legend sits outside the data, right of the zoom.

    :param levels: ``initial_return``, ``untutored_level``, ``expert_level`` (NaN/None: none).
    :return: ``(figure, panels)``: a Matplotlib figure (Agg canvas, no pyplot state) and one
        record per plotted arm: ``row``, ``arm``, ``steps``, ``mean``, ``low``, ``high`` (the
        drawn band, None for one seed), ``clip`` (the panel's observed range) and ``zoom``
        (the zoom panel's y-range).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tutorl.experiments.metrics import levels as fraction_levels
    from tutorl.experiments.metrics import variant_of

    def number(key: str) -> float:
        value = (levels or {}).get(key)
        return math.nan if _missing(value) else float(value)

    initial, untutored, expert = (
        number("initial_return"),
        number("untutored_level"),
        number("expert_level"),
    )
    # The zoom starts at 90% of the way to the untutored final level: near the top, where the
    # arms differ (Blackjack: the optimum -0.047 against the untutored -0.064).
    half_level = fraction_levels(initial, untutored)[0.5]
    zoom_level = initial + 0.9 * (untutored - initial) if math.isfinite(half_level) else math.nan
    arms = [arm for (e, a, arm) in curves if e == env and a == algo and curves[(e, a, arm)]]
    arms = [arm for arm in arms if any(len(f) for f in curves[(env, algo, arm)])]
    arms = sorted(arms, key=lambda arm: (arm != BASELINE, arms.index(arm)))
    groups = panel_arms(arms, max_arms) if arms else []
    fig = Figure(figsize=(12, 0.6 + 3.4 * max(1, len(groups))), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    variants = list(dict.fromkeys(variant_of(arm) for arm in arms if arm != BASELINE))
    colours = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(variants)}
    records: list[dict[str, Any]] = []
    axes_rows = fig.subplots(max(1, len(groups)), 2, squeeze=False)
    for r, group in enumerate(groups):
        full, zoom = axes_rows[r]
        frames = {arm: [f for f in curves[(env, algo, arm)] if len(f)] for arm in group}
        observed = np.concatenate(
            [f["mean_return"].to_numpy(dtype=float) for fs in frames.values() for f in fs]
        )
        clip = (float(np.nanmin(observed)), float(np.nanmax(observed)))
        tops = [clip[1]]
        for arm in group:
            steps, mean, low, high = curve_band(frames[arm])
            if low is not None:
                low, high = np.clip(low, *clip), np.clip(high, *clip)
            if arm == BASELINE:
                colour, style, width = "black", "-", 2.2
            else:
                colour = colours[variant_of(arm)]
                style, width = ("-." if _is_reuse(arm) else "-"), 1.5
            label = f"{arm} (n={len(frames[arm])})"
            for ax in (full, zoom):
                ax.plot(steps, mean, color=colour, linestyle=style, linewidth=width, label=label)
                if low is not None:
                    ax.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
            records.append(
                {
                    "row": r,
                    "arm": arm,
                    "steps": steps,
                    "mean": mean,
                    "low": low,
                    "high": high,
                    "clip": clip,
                }
            )
        for ax in (full, zoom):
            if math.isfinite(expert):
                ax.axhline(expert, color="#2a9d8f", linestyle="--", linewidth=1.4,
                           label=f"expert level {expert:.3f}")  # fmt: skip
            if math.isfinite(untutored):
                ax.axhline(untutored, color="black", linestyle=":", linewidth=1.3,
                           label=f"untutored final level {untutored:.3f}")  # fmt: skip
            if threshold is not None and not _missing(threshold):
                ax.axhline(float(threshold), color="grey", linestyle=(0, (4, 2, 1, 2)),
                           linewidth=0.9, label=f"threshold {float(threshold):g}")  # fmt: skip
            ax.grid(alpha=0.3)
            ax.set_xlabel("environment steps", fontsize=9)
            ax.tick_params(labelsize=8)
        tops += [v for v in (untutored,) if math.isfinite(v)]
        top = max(tops)
        bottom = zoom_level if math.isfinite(zoom_level) and zoom_level < top else None
        if bottom is None:  # no untutored level: the upper half of the observed range
            bottom = clip[0] + 0.5 * (top - clip[0])
        # The expert level joins the zoom only when it is near the curves (Blackjack's optimum
        # is; Snake's expert, at 93 apples against ~18, would flatten every curve).
        if math.isfinite(expert) and expert - top <= 0.5 * max(top - bottom, 1e-9):
            top = max(top, expert)
        margin = 0.05 * (top - bottom) if top > bottom else 0.05 * max(1.0, abs(top))
        zoom_range = (bottom - margin, top + margin)
        zoom.set_ylim(*zoom_range)
        for record in records:
            if record["row"] == r:
                record["zoom"] = zoom_range
        full.set_ylabel("mean evaluation return", fontsize=9)
        full.set_title(title or f"{env} · {algo}", fontsize=10)
        zoom.set_title("zoom: from 90% of the untutored final level up", fontsize=10)
        zoom.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)
    return fig, records


def plot_curves(
    curves: dict[tuple[str, str, str], list[pd.DataFrame]],
    env: str,
    algo: str,
    path: Path,
    threshold: float | None = None,
    levels: dict[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """The learning-curves figure of :func:`curves_figure` as a PNG, written atomically.

    :param curves: Per-seed curves keyed by (env, algo, arm); other (env, algo) are ignored.
    :param env: Game to plot.
    :param algo: Algorithm to plot.
    :param path: Where to write the PNG.
    :param threshold: The success threshold, drawn if given.
    :param levels: The pair's common levels (``initial_return``, ``untutored_level``,
        ``expert_level``), drawn and used for the zoom if given.
    :param title: Title of the panels (default ``env · algo``).
    :return: ``path``.
    """
    fig, _ = curves_figure(curves, env, algo, threshold, levels, title)
    _write_png(fig, Path(path))
    return Path(path)


def plot_answers(t: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """The summary table as a figure: per game (rows), each tutored arm × algorithm's speed-up
    to the untutored final level (untutored mean steps to it / tutored), its difference in
    final return, and reuse's speed-up to the same level against no reuse, with 95% bootstrap
    intervals. A bound (some runs never reached the level) is an open marker pointing the way
    the true value lies; an unknown ratio is left out. Labels carry the arm's agreement with
    the expert, so speed is never read without quality.

    :param t: The tables of :func:`tutorl.experiments.tables.tables`.
    :param path: Where to write the PNG.
    :return: ``path``, or None when no comparison has finished runs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    acc, reuse = t["acceleration"], t["reuse"]
    acc = acc[~acc["reuse"].astype(bool) & (acc["tutored_seeds"] > 0) & (acc["baseline_seeds"] > 0)]
    ratio = speedup_column(HEADLINE)
    games = list(dict.fromkeys(acc["env"]))
    if not games:
        return None
    heights = [max(2, int((acc["env"] == g).sum())) for g in games]
    fig = Figure(figsize=(13, 1.0 + 0.26 * sum(heights) + 0.4 * len(games)), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(games), 3, height_ratios=heights, wspace=0.08, hspace=0.25)
    tutors = list(dict.fromkeys(acc["tutor"]))
    colours = {tutor: _PALETTE[i % len(_PALETTE)] for i, tutor in enumerate(tutors)}
    markers = {"≥": ">", "≤": "<"}  # the side the true ratio lies on

    def draw(ax: Any, y: int, point: Any, low: Any, high: Any, bound: Any, colour: str) -> None:
        if _missing(point):
            return
        marker = markers.get(bound if isinstance(bound, str) else "", "o")
        filled = marker == "o"
        if not (_missing(low) or _missing(high)):
            ax.plot([low, min(high, 1e6)], [y, y], color=colour, linewidth=1.6, alpha=0.8)
        ax.plot(
            [point],
            [y],
            marker=marker,
            markersize=7,
            color=colour,
            markerfacecolor=colour if filled else "white",
            markeredgewidth=1.5,
        )

    for g, game in enumerate(games):
        rows = acc[acc["env"] == game]
        axes = [fig.add_subplot(grid[g, c]) for c in range(3)]
        labels = []
        for y, (_, row) in enumerate(rows.iterrows()):
            colour = colours[row["tutor"]]
            agreement = _agreement_of(t, row)
            labels.append(
                f"{row['algo']} · {row['arm']}" + ("" if agreement == "—" else f" ({agreement})")
            )
            draw(
                axes[0],
                y,
                row[ratio],
                row[f"{ratio}_low"],
                row[f"{ratio}_high"],
                row[f"{ratio}_bound"],
                colour,
            )
            draw(
                axes[1],
                y,
                row["final_return_diff"],
                row["final_return_diff_low"],
                row["final_return_diff_high"],
                None,
                colour,
            )
            other = reuse[
                (reuse["env"] == game) & (reuse["algo"] == row["algo"])
                & (reuse["variant"] == row["arm"])
            ]  # fmt: skip
            if len(other) and other.iloc[0]["seeds_on"] and other.iloc[0]["seeds_off"]:
                o = other.iloc[0]
                draw(
                    axes[2],
                    y,
                    o[ratio],
                    o[f"{ratio}_low"],
                    o[f"{ratio}_high"],
                    o[f"{ratio}_bound"],
                    colour,
                )
        for c, ax in enumerate(axes):
            ax.axvline(0 if c == 1 else 1, color="grey", linewidth=1, linestyle="--")
            if c != 1:
                ax.set_xscale("log")
                lo, hi = ax.get_xlim()
                lo, hi = max(lo, 0.05), min(hi, 20)  # an unbounded interval stays readable
                ax.set_xlim(lo, hi)
                steps = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20)
                if hi / lo < 8:  # a narrow axis gets finer ticks
                    steps = (0.5, 0.8, 1, 1.25, 2, 5)
                ticks = [v for v in steps if lo <= v <= hi]
                ax.xaxis.set_major_locator(FixedLocator(ticks))
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.xaxis.set_minor_locator(NullLocator())
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels(labels if c == 0 else [], fontsize=8)
            ax.grid(alpha=0.3, axis="x")
            ax.tick_params(axis="x", labelsize=8)
        axes[0].set_ylabel(game, fontsize=10, fontweight="bold")
        if g == 0:
            axes[0].set_title(
                "tutor vs none: speed-up to the untutored final level (>1 sooner)", fontsize=9
            )
            axes[1].set_title("Δ final return, tutored − none", fontsize=9)
            axes[2].set_title("reuse vs off: speed-up to the same level (>1 sooner)", fontsize=9)
    fig.subplots_adjust(left=0.2, right=0.98, top=1 - 0.6 / fig.get_figheight(), bottom=0.04)
    _write_png(fig, Path(path))
    return Path(path)
