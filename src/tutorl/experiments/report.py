"""``tutorl report DIR``: the tables, curves and self-contained report of a sweep.

The input is the sweep's per-run table (one row per run, as built by
:mod:`tutorl.experiments.metrics`), its per-seed evaluation curves and a little metadata; this
module never reads run folders itself. :mod:`tutorl.experiments.tables` turns the runs into four
tables of numbers (statistics over seeds); :func:`write_report` renders them as Markdown and as
one HTML file that opens offline, with learning-curve images and a CSV of every number.

Honesty rules: an interval needs two seeds or more; a mean over runs some of which never got
somewhere (never reached a level or the threshold, never settled) counts those runs at their
full length and is shown as a bound (``≥``); when no run got there, no number is shown ("—") and
a footnote says why. Learning speed is the steps to levels common to every arm of a game ×
algorithm (the headline: 100% of the untutored final level); each run's own plateau step is
shown only as stability, beside the plateau return it settled at.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tutorl._io import atomic_write_bytes, atomic_write_text
from tutorl.experiments.metrics import HEADLINE, LEVEL_FRACTIONS, REFERENCES, level_column
from tutorl.experiments.tables import (
    BASELINE,
    CENSORED,
    LEVEL_OF,
    LEVELS,
    STATISTICS_DEFINITIONS,
    pairs,
    prepare_runs,
    speedup_column,
    tables,
)

LONG_COLUMNS = (
    "table",
    "env",
    "algo",
    "arm",
    "tutor",
    "reuse",
    "seed",
    "quantity",
    "value",
    "text",
)

# ---------------------------------------------------------------------------------------------
# Curves


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


# ---------------------------------------------------------------------------------------------
# Formatting


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


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass
class _Table:
    frame: pd.DataFrame
    title: str = ""
    caption: str = ""
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> str:
        """The footnote mark of ``text`` (added on first use)."""
        if text not in self.notes:
            self.notes.append(text)
        return str(self.notes.index(text) + 1).translate(_SUPERSCRIPTS)


_NO_RUNS = "no finished runs"


_REFERENCE_NAMES = {"untutored": "untutored final level", "expert": "expert level"}


def _what(metric: str) -> str:
    """What a censored metric's runs did not do, in words."""
    if metric == "plateau_step":
        return "settled on a plateau"
    if metric == "steps_to_threshold":
        return "reached the threshold"
    _, reference, percent = metric.rsplit("_", 2)
    return f"reached {percent}% of the {_REFERENCE_NAMES[reference]}"


def _undefined(row: Any, metric: str) -> str | None:
    """Why the level behind a steps-to-level metric is undefined in ``row``, or None."""
    if metric not in LEVEL_OF:
        return None
    reference, initial = row.get(LEVEL_OF[metric]), row.get("initial_return")
    name = _REFERENCE_NAMES[LEVEL_OF[metric].removesuffix("_level")]
    if _missing(initial):
        return "no finished untutored run: there is no common initial return to measure from"
    if _missing(reference):
        if LEVEL_OF[metric] == "expert_level":
            return "this game has no expert policy, so there is no expert level"
        return f"no {name}: no finished untutored run"
    if float(reference) <= float(initial):
        return f"the {name} is at or below the initial return: nothing to learn, no level"
    return None


def _censored_cell(table: _Table, row: Any, metric: str, statistic: str) -> str:
    n, k = row["seeds_done"], row[CENSORED[metric]]
    what = _what(metric)
    if n == 0:
        return "—" + table.note(_NO_RUNS)
    if reason := _undefined(row, metric):
        return "—" + table.note(reason)
    if k == 0:
        return "—" + table.note(
            f"no finished run {what} within its training length, so there is no number: "
            "a mean would only restate the length"
        )
    if k < n:
        mark = table.note(
            f"≥: some runs never {what}; they count as their full training length, so this "
            "is a lower bound"
        )
        return _cell(row, f"{metric}_{statistic}", _steps, bound="≥") + mark
    return _cell(row, f"{metric}_{statistic}", _steps)


def _plain_cell(table: _Table, row: Any, name: str, fmt: Callable[[float], str]) -> str:
    if row["seeds_done"] == 0:
        return "—" + table.note(_NO_RUNS)
    if _missing(row[name]):
        if name.startswith("normalised_auc") and (reason := _undefined(row, HEADLINE)):
            return "—" + table.note(reason)
        return "—" + table.note("not measured in any finished run (e.g. none settled)")
    return _cell(row, name, fmt)


def _seeds(row: Any) -> str:
    text = str(int(row["seeds_done"]))
    if row["seeds_failed"]:
        text += f" (+{int(row['seeds_failed'])} failed)"
    if row["seeds_unfinished"]:
        text += f" (+{int(row['seeds_unfinished'])} unfinished)"
    return text


def _level_caption(config: pd.DataFrame, reference: str) -> str:
    """The levels of a reference in numbers: ``initial −0.400 → 100% −0.080: 50% −0.240, …``."""
    from tutorl.experiments.metrics import levels

    if not len(config):
        return ""
    first = config.iloc[0]
    initial, target = first["initial_return"], first[f"{reference}_level"]
    name = _REFERENCE_NAMES[reference]
    if _missing(initial) or _missing(target):
        return f"No {name} for this game × algorithm (see the footnotes)."
    values = levels(float(initial), float(target))
    if any(math.isnan(v) for v in values.values()):
        return (
            f"The {name} ({_ret(float(target))}) is at or below the initial return "
            f"({_ret(float(initial))}): nothing to learn, so no levels."
        )
    parts = ", ".join(f"{round(100 * f)}% = {_ret(v)}" for f, v in values.items())
    return (
        f"Levels from the common initial return {_ret(float(initial))} to the {name} "
        f"{_ret(float(target))}: {parts}. Steps: first evaluation at which the smoothed return "
        "is at or above the level; runs that never got there count as their training length."
    )


def _level_table(config: pd.DataFrame, reference: str) -> _Table:
    name = _REFERENCE_NAMES[reference]
    table = _Table(
        pd.DataFrame(),
        title=f"Learning speed: steps to the {name}",
        caption=_level_caption(config, reference),
    )
    rows = []
    for _, row in config.iterrows():
        n = int(row["seeds_done"])
        metrics = [level_column(reference, f) for f in LEVEL_FRACTIONS]
        reached = "/".join(str(int(row[CENSORED[m]])) for m in metrics)
        cells = {"arm": row["arm"], "seeds": _seeds(row), "reached 50/80/100%": f"{reached} of {n}"}
        for metric in metrics:
            percent = metric.rsplit("_", 1)[1]
            cells[f"{percent}%: mean"] = _censored_cell(table, row, metric, "mean")
        cells["100%: IQM"] = _censored_cell(table, row, metrics[-1], "iqm")
        if reference == "untutored":
            cells["normalised AUC: mean"] = _plain_cell(table, row, "normalised_auc_mean", _ret)
        rows.append(cells)
    table.frame = pd.DataFrame(rows)
    return table


def _speed_tables(config: pd.DataFrame) -> list[_Table]:
    return [_level_table(config, reference) for reference in REFERENCES]


def _performance_table(config: pd.DataFrame) -> _Table:
    table = _Table(pd.DataFrame(), title="Performance")
    rows = []
    for _, row in config.iterrows():
        n = int(row["seeds_done"])
        cells = {"arm": row["arm"]}
        for metric, label, fmt in (
            ("final_return", "final return", _ret),
            ("auc", "AUC", _ret),
            ("normalised_auc", "normalised AUC", _ret),
        ):
            cells[f"{label}: mean"] = _plain_cell(table, row, f"{metric}_mean", fmt)
            cells[f"{label}: IQM"] = _plain_cell(table, row, f"{metric}_iqm", fmt)
        cells["reached threshold"] = f"{int(row['reached'])}/{n}"
        cells["steps to threshold: mean"] = _censored_cell(table, row, "steps_to_threshold", "mean")
        rows.append(cells)
    table.frame = pd.DataFrame(rows)
    return table


def _stability_table(config: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        title="Stability: each run's own plateau (not learning speed)",
        caption="Plateau step: first evaluation after which the smoothed return stays within "
        "the tolerance of the run's own plateau return. A run stalled on a bad policy settles "
        "early, so read the step with the level it settled at; learning speed is the tables "
        "above.",
    )
    rows = []
    for _, row in config.iterrows():
        n = int(row["seeds_done"])
        rows.append(
            {
                "arm": row["arm"],
                "plateau return: mean": _plain_cell(table, row, "plateau_return_mean", _ret),
                "settled": f"{int(row['settled'])}/{n}",
                "plateau step: mean": _censored_cell(table, row, "plateau_step", "mean"),
                "std after plateau step": _plain_cell(table, row, "stability_std_mean", _ret),
                "drops": _plain_cell(table, row, "drops_mean", _count),
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


def _cost_table(config: pd.DataFrame) -> _Table:
    table = _Table(pd.DataFrame(), title="Tutoring cost (mean per run)")
    rows = []
    for _, row in config.iterrows():
        cells = {"arm": row["arm"]}
        for column, label, fmt in (
            ("tutor_asks", "tutor asks", _count),
            ("llm_calls", "LLM calls", _count),
            ("reuse_hits", "reuse hits", _count),
            ("cache_hits", "cache hits", _count),
            ("agreement", "agreement with expert", _ret),
            ("reuse_agreement", "agreement (reused advice)", _ret),
            ("wall_time", "wall time", _seconds),
        ):
            if row["seeds_done"] == 0:
                cells[label] = "—" + table.note(_NO_RUNS)
            else:
                cells[label] = _cell(row, column, fmt, ci=False)
        rows.append(cells)
    table.frame = pd.DataFrame(rows)
    return table


def _ratio_cell(
    table: _Table,
    row: Any,
    name: str,
    counts: tuple[str, str, str, str],
    what: str,
    arms: tuple[str, str],
    metric: str | None = None,
) -> str:
    """A ratio (``arms[0]``'s mean steps over ``arms[1]``'s) with its bound, or ``—`` and the
    reason. ``metric``: the steps behind the ratio, to say when its level is undefined."""
    seeds_a, seeds_b, got_a, got_b = (int(row[c]) for c in counts)
    if _missing(row[name]):
        if seeds_a == 0 or seeds_b == 0:
            return "—" + table.note("an arm has no finished runs")
        if metric is not None and (reason := _undefined(row, metric)):
            return "—" + table.note(reason)
        if got_a < seeds_a and got_b < seeds_b:
            return "—" + table.note(
                f"runs of both arms never {what}: each mean is only a lower bound, so their "
                "ratio is unknown"
            )
        return "—" + table.note("undefined: the denominator arm got there at step 0")
    bound = row[f"{name}_bound"] if not _missing(row[f"{name}_bound"]) else None
    text = _cell(row, name, _ratio, bound=bound)
    if bound == "≥":
        text += table.note(
            f"≥: some {arms[0]} runs never {what}; counted at their full length they make the "
            "ratio a lower bound"
        )
    elif bound == "≤":
        text += table.note(
            f"≤: some {arms[1]} runs never {what}; counted at their full length they make the "
            "ratio an upper bound (a run stalled below the level is never counted as faster)"
        )
    return text


def _speedup_cell(table: _Table, row: Any, metric: str, arms: tuple[str, str]) -> str:
    """The speed-up to a level (``speedup_<ref>_<pct>``) of a tutored-vs-none row."""
    reached = metric.removeprefix("steps_to_")
    counts = ("baseline_seeds", "tutored_seeds", f"baseline_reached_{reached}",
              f"tutored_reached_{reached}")  # fmt: skip
    return _ratio_cell(
        table, row, speedup_column(metric), counts, _what(metric), arms, metric=metric
    )


def _stat_cell(table: _Table, row: Any, name: str, fmt: Callable[[float], str]) -> str:
    if _missing(row[name]):
        return "—" + table.note("an arm has no finished runs (or the number is undefined)")
    return _cell(row, name, fmt)


def _agreement(row: Any) -> str:
    return "—" if _missing(row.get("agreement")) else _ret(float(row["agreement"]))


def _acceleration_table(acc: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        title="Tutored vs no tutor",
        caption="Speed-ups: untutored mean steps / tutored mean steps to a common level (above "
        "1: the tutor helps); the headline is the speed-up to 100% of the untutored final "
        "level. P(…): probability that a tutored seed beats an untutored one. p: Mann–Whitney. "
        "Agreement: the tutor's agreement with the expert on the advised states.",
    )
    arms = ("untutored", "tutored")
    rows = []
    for _, row in acc.iterrows():
        rows.append(
            {
                "arm": row["arm"],
                "agreement": _agreement(row),
                "seeds (tutored vs none)": f"{int(row['tutored_seeds'])} vs "
                f"{int(row['baseline_seeds'])}",
                "speed-up to untutored final level": _speedup_cell(table, row, HEADLINE, arms),
                "to 50% / 80% of it": " / ".join(
                    _speedup_cell(table, row, level_column("untutored", f), arms)
                    for f in (0.5, 0.8)
                ),
                "speed-up to expert level": _speedup_cell(
                    table, row, level_column("expert", 1.0), arms
                ),
                "P(reaches untutored level sooner)": _stat_cell(
                    table, row, "p_reaches_sooner", _prob
                ),
                "p (untutored level)": _stat_cell(table, row, "reaches_sooner_p_value", _pvalue),
                "acceleration to threshold": _ratio_cell(
                    table,
                    row,
                    "acceleration",
                    ("baseline_seeds", "tutored_seeds", "baseline_reached", "tutored_reached"),
                    "reached the threshold",
                    arms,
                ),
                "Δ final return": _stat_cell(table, row, "final_return_diff", _diff),
                "P(final return higher)": _stat_cell(table, row, "p_final_better", _prob),
                "p (final return)": _stat_cell(table, row, "final_return_p_value", _pvalue),
                "Δ normalised AUC": _stat_cell(table, row, "normalised_auc_diff", _diff),
                "plateau return none → tutored": f"{_cell(row, 'baseline_plateau_return', _ret)}"
                f" → {_cell(row, 'tutored_plateau_return', _ret)}",
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


_REUSE_COUNTS = ("seeds_off", "seeds_on", "reached_off", "reached_on")


def _reuse_table(reuse: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        title="Advice reuse: on vs off",
        caption="Speed-up: mean steps to the untutored final level without reuse / with reuse "
        "(above 1: reuse gets there sooner). P(…): probability that a seed with reuse beats one "
        "without.",
    )
    rows = []
    for _, row in reuse.iterrows():
        rows.append(
            {
                "arm": row["variant"],
                "seeds (on vs off)": f"{int(row['seeds_on'])} vs {int(row['seeds_off'])}",
                "speed-up to untutored final level (off/on)": _ratio_cell(
                    table,
                    row,
                    speedup_column(HEADLINE),
                    _REUSE_COUNTS,
                    _what(HEADLINE),
                    ("no-reuse", "reuse"),
                    metric=HEADLINE,
                ),
                "P(reuse reaches it sooner)": _stat_cell(table, row, "p_on_sooner", _prob),
                "p": _stat_cell(table, row, "p_value", _pvalue),
                "plateau return off → on": f"{_cell(row, 'plateau_return_off', _ret)} → "
                f"{_cell(row, 'plateau_return_on', _ret)}",
                "stability std off": _cell(row, "stability_std_off", _ret),
                "stability std on": _cell(row, "stability_std_on", _ret),
                "drops off": _cell(row, "drops_off", _count),
                "drops on": _cell(row, "drops_on", _count),
                "P(reuse more stable)": _cell(row, "p_on_more_stable", _prob),
                "reuse hits": _cell(row, "reuse_hits_on", _count),
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


def _quality_table(quality: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        caption="Agreement with the expert's action: during training (advised states, mean "
        "over runs) and offline (sampled states, 95% Wilson interval) when measured.",
    )
    rows = []
    for _, row in quality.iterrows():
        n_runs = int(row["training_runs"]) if not _missing(row["training_runs"]) else 0
        training = _cell(row, "training_agreement", _ret)
        if n_runs:
            training += f" ({n_runs} runs)"
        offline = "—"
        if not _missing(row["offline_agreement"]):
            offline = _ret(float(row["offline_agreement"]))
            if not _missing(row["offline_low"]) and not _missing(row["offline_high"]):
                offline += (
                    f" [{_ret(float(row['offline_low']))}, {_ret(float(row['offline_high']))}]"
                )
        rows.append(
            {
                "game": row["env"],
                "tutor": row["tutor"],
                "agreement in training": training,
                "agreement on reused advice": _cell(row, "reuse_agreement", _ret),
                "offline agreement": offline,
                "offline states": "—"
                if _missing(row["offline_n_states"])
                else _steps(float(row["offline_n_states"])),
                "chance agreement": _cell(row, "offline_base_rate", _ret),
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


def _one_line(text: Any, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else "…" + text[-limit:]


def _status_line(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    done, failed = int(counts.get("done", 0)), int(counts.get("failed", 0))
    unfinished = len(runs) - done - failed
    return f"{len(runs)} runs: {done} done, {failed} failed, {unfinished} unfinished." + (
        " The sweep is incomplete: numbers will change." if unfinished else ""
    )


def _summary_table(t: dict[str, pd.DataFrame]) -> _Table:
    """The study's three questions in one table, one row per (game, algorithm, tutored arm
    without reuse) with finished runs in every arm involved: does tutoring reach the untutored
    final level sooner (at what cost in final return), does reuse speed it further, is reuse
    less stable; and the tutor's quality beside every number."""
    table = _Table(
        pd.DataFrame(),
        title="Answers at a glance",
        caption="Speed-ups: mean steps to the untutored final level (100%) without the tutor / "
        "with it, and without reuse / with it (above 1: sooner). Δ final: tutored minus "
        "untutored final return. Stability: std of evaluation returns after each run's own "
        "plateau step, without → with reuse. [low, high]: 95% bootstrap intervals over seeds.",
    )
    acc, reuse = t["acceleration"], t["reuse"]
    rows = []
    for _, row in acc[~acc["reuse"].astype(bool)].iterrows():
        if not (row["tutored_seeds"] and row["baseline_seeds"]):
            continue
        match = reuse[
            (reuse["env"] == row["env"])
            & (reuse["algo"] == row["algo"])
            & (reuse["variant"] == row["arm"])
        ]
        other = match.iloc[0] if len(match) else None
        entry = {
            "game": row["env"],
            "algo": row["algo"],
            "arm": row["arm"],
            "agreement": _agreement_of(t, row),
            "seeds": f"{int(row['tutored_seeds'])}/{int(row['baseline_seeds'])}",
            "tutor vs none: speed-up to untutored level": _speedup_cell(
                table, row, HEADLINE, ("untutored", "tutored")
            ),
            "Δ final": _cell(row, "final_return_diff", _diff),
        }
        has_reuse = other is not None and other["seeds_on"] and other["seeds_off"]
        entry["reuse vs off: speed-up"] = (
            _ratio_cell(
                table,
                other,
                speedup_column(HEADLINE),
                _REUSE_COUNTS,
                _what(HEADLINE),
                ("no-reuse", "reuse"),
                metric=HEADLINE,
            )
            if has_reuse
            else "—"
        )
        entry["stability std off → on"] = (
            f"{_cell(other, 'stability_std_off', _ret)} → {_cell(other, 'stability_std_on', _ret)}"
            if has_reuse
            else "—"
        )
        rows.append(entry)
    table.frame = pd.DataFrame(rows)
    return table


def _agreement_of(t: dict[str, pd.DataFrame], row: Any) -> str:
    """The agreement of a tutored arm: its own mean over runs, else its tutor's."""
    if not _missing(row.get("agreement")):
        return _ret(float(row["agreement"]))
    quality = t["tutor_quality"]
    q = quality[(quality["env"] == row["env"]) & (quality["tutor"] == row["tutor"])]
    if len(q) and not _missing(q.iloc[0]["training_agreement"]):
        return _ret(float(q.iloc[0]["training_agreement"]))
    return "—"


def _summary(runs: pd.DataFrame, reps: int) -> list[str]:
    return [
        _status_line(runs),
        f"Intervals: 95% percentile bootstrap over seeds ({reps:,} resamples). Learning speed is "
        "measured against levels common to every arm of a game × algorithm: the steps to reach "
        "the untutored arm's final level (the headline), to 50% and 80% of the way there, and "
        "to the expert level. Ratios above 1 favour the tutor (or reuse); ≥/≤ mark bounds due "
        "to runs that never got there (a run stalled below a level counts at its full length, "
        "so it never looks faster); — is a number that cannot be given (see the footnotes). "
        "Each run's own plateau step is reported only as stability, beside its plateau return.",
    ]


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


# ---------------------------------------------------------------------------------------------
# Document: built once as blocks, rendered as Markdown and as HTML


@dataclass
class _Block:
    kind: str  # h1 h2 h3 p code ul dl table img
    content: Any


def _document(
    runs: pd.DataFrame,
    t: dict[str, pd.DataFrame],
    meta: dict[str, Any],
    images: dict[tuple[str, str], str],
    reps: int,
) -> list[_Block]:
    name = str(meta.get("name") or "sweep")
    blocks = [_Block("h1", f"tutorl report: {name}")]
    blocks.append(_Block("p", "Produced by:"))
    blocks.append(_Block("code", str(meta.get("command") or "tutorl report")))
    blocks.append(_Block("h2", "Summary"))
    blocks.append(_Block("ul", _summary(runs, reps)))
    summary = _summary_table(t)
    if len(summary.frame):
        blocks.append(_Block("table", summary))
    if ("", "answers") in images:
        blocks.append(_Block("img", (images[("", "answers")], "The answers at a glance")))
        blocks.append(
            _Block(
                "p",
                "The table as a figure: points with 95% bootstrap intervals over seeds; open "
                "markers are bounds pointing where the true ratio lies (some runs never reached "
                "the untutored final level); unknown ratios are left out; agreement with the "
                "expert in parentheses.",
            )
        )
    config = t["configurations"]
    for env, algo in pairs(runs):
        blocks.append(_Block("h2", f"{env} · {algo}"))
        sub = config[(config["env"] == env) & (config["algo"] == algo)]
        facts = []
        if len(sub):
            first = sub.iloc[0]
            if not _missing(first["threshold"]):
                facts.append(f"success threshold {_ret(float(first['threshold']))}")
            if not _missing(first["initial_return"]):
                facts.append(f"common initial return {_ret(float(first['initial_return']))}")
            if not _missing(first["untutored_level"]):
                facts.append(f"untutored final level {_ret(float(first['untutored_level']))}")
            facts.append(
                "no expert level"
                if _missing(first["expert_level"])
                else f"expert level {_ret(float(first['expert_level']))}"
            )
            if not _missing(first["tolerance"]):
                facts.append(f"plateau tolerance {_ret(float(first['tolerance']))}")
            if not _missing(first["steps"]):
                facts.append(f"training length {_steps(float(sub['steps'].max()))} steps")
        if facts:
            text = "; ".join(facts)
            blocks.append(_Block("p", text[0].upper() + text[1:] + "."))
        if (env, algo) in images:
            blocks.append(_Block("img", (images[(env, algo)], f"Learning curves, {env} {algo}")))
            blocks.append(
                _Block(
                    "p",
                    "Mean evaluation return over seeds; band: 95% percentile bootstrap of that "
                    "mean over seeds, clipped to the observed returns; thick black: no tutor; "
                    "dash-dotted: with advice reuse; dashed: the expert level; dotted: the "
                    "untutored final level; thin dash-dot grey: the success threshold. Right: "
                    "the same curves from 90% of the untutored final level up. At most "
                    f"{MAX_ARMS_PER_PANEL} arms per row, the untutored arm in every row.",
                )
            )
        else:
            blocks.append(_Block("p", "No evaluation curves available for this pair."))
        for table in (
            *_speed_tables(sub),
            _performance_table(sub),
            _stability_table(sub),
            _cost_table(sub),
        ):
            blocks.append(_Block("table", table))
        acc = t["acceleration"]
        acc = acc[(acc["env"] == env) & (acc["algo"] == algo)]
        if len(acc):
            blocks.append(_Block("table", _acceleration_table(acc)))
        reuse = t["reuse"]
        reuse = reuse[(reuse["env"] == env) & (reuse["algo"] == algo)]
        if len(reuse):
            blocks.append(_Block("table", _reuse_table(reuse)))
    if len(t["tutor_quality"]):
        blocks.append(_Block("h2", "Tutor quality"))
        blocks.append(_Block("table", _quality_table(t["tutor_quality"])))
    failed = runs[runs["status"] == "failed"]
    blocks.append(_Block("h2", "Failed runs"))
    if len(failed):
        frame = pd.DataFrame(
            {
                "game": failed["env"],
                "algo": failed["algo"],
                "arm": failed["arm"],
                "seed": failed["seed"].astype(str),
                "error": [
                    _one_line(e) if not _missing(e) else "(no error recorded)"
                    for e in failed["error"]
                ],
            }
        )
        blocks.append(_Block("table", _Table(frame, caption="Left out of every statistic above.")))
    else:
        blocks.append(_Block("p", "None."))
    unfinished = runs[~runs["status"].isin(["done", "failed"])]
    if len(unfinished):
        blocks.append(_Block("h2", "Unfinished runs"))
        frame = pd.DataFrame(
            {
                "game": unfinished["env"],
                "algo": unfinished["algo"],
                "arm": unfinished["arm"],
                "seed": unfinished["seed"].astype(str),
                "status": unfinished["status"],
            }
        )
        blocks.append(_Block("table", _Table(frame)))
    blocks.append(_Block("h2", "Definitions"))
    definitions = dict(meta.get("metric_definitions") or {})
    if definitions:
        blocks.append(_Block("h3", "Metrics (per run)"))
        blocks.append(_Block("dl", list(definitions.items())))
    blocks.append(_Block("h3", "Statistics (over seeds)"))
    blocks.append(_Block("dl", list(STATISTICS_DEFINITIONS.items())))
    return blocks


def _md_text(text: Any) -> str:
    """``text`` safe in Markdown: no raw HTML tags or autolinks (``<`` before a letter)."""
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", str(text))


def _md_cell(text: Any) -> str:
    return _md_text(" ".join(str(text).split())).replace("|", "\\|")


def _markdown(blocks: list[_Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append("#" * int(block.kind[1]) + " " + _md_text(block.content))
        elif block.kind == "p":
            out.append(_md_text(block.content))
        elif block.kind == "code":
            out.append("```\n" + block.content + "\n```")
        elif block.kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in block.content))
        elif block.kind == "dl":
            out.append("\n".join(f"- **{_md_text(k)}**: {_md_text(v)}" for k, v in block.content))
        elif block.kind == "img":
            src, alt = block.content
            out.append(f"![{alt}]({src})")
        elif block.kind == "table":
            table: _Table = block.content
            lines = []
            if table.title:
                lines.append(f"**{table.title}**\n")
            header = [_md_cell(c) for c in table.frame.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for values in table.frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
            if table.caption:
                lines.append("\n" + table.caption)
            if table.notes:
                lines.append("")
                lines.extend(
                    f"{str(i).translate(_SUPERSCRIPTS)} {note}  "
                    for i, note in enumerate(table.notes, 1)
                )
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 78em; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 0.3em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right;
         vertical-align: top; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 0.3em; }
.notes, .caption { font-size: 0.85em; color: #555; margin: 0.2em 0 1.2em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; height: auto; }
dt { font-weight: bold; } dd { margin: 0 0 0.5em 1.5em; }
"""


def _html(blocks: list[_Block], title: str, image_data: dict[str, bytes]) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append(f"<{block.kind}>{esc(block.content)}</{block.kind}>")
        elif block.kind == "p":
            out.append(f"<p>{esc(block.content)}</p>")
        elif block.kind == "code":
            out.append(f"<pre><code>{esc(block.content)}</code></pre>")
        elif block.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.content) + "</ul>")
        elif block.kind == "dl":
            items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in block.content)
            out.append(f"<dl>{items}</dl>")
        elif block.kind == "img":
            src, alt = block.content
            data = base64.b64encode(image_data[src]).decode("ascii")
            out.append(f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></p>')
        elif block.kind == "table":
            table: _Table = block.content
            parts = ["<table>"]
            if table.title:
                parts.append(f"<caption>{esc(table.title)}</caption>")
            parts.append(
                "<thead><tr>"
                + "".join(f"<th>{esc(str(c))}</th>" for c in table.frame.columns)
                + "</tr></thead><tbody>"
            )
            for values in table.frame.itertuples(index=False):
                parts.append("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in values) + "</tr>")
            parts.append("</tbody></table>")
            if table.caption:
                parts.append(f'<p class="caption">{esc(table.caption)}</p>')
            if table.notes:
                notes = "<br>".join(
                    f"{str(i).translate(_SUPERSCRIPTS)} {esc(note)}"
                    for i, note in enumerate(table.notes, 1)
                )
                parts.append(f'<p class="notes">{notes}</p>')
            out.append("\n".join(parts))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# numbers.csv


def _long(name: str, frame: pd.DataFrame, ids: Iterable[str]) -> list[dict[str, Any]]:
    ids = [c for c in ids if c in frame.columns]
    records = []
    for record in frame.to_dict("records"):
        base = {c: "" for c in LONG_COLUMNS}
        base["table"] = name
        base.update({c: record[c] for c in ids})
        for quantity, value in record.items():
            if quantity in ids or _missing(value):
                continue
            entry = {**base, "quantity": quantity, "value": math.nan, "text": ""}
            if isinstance(value, str):
                entry["text"] = value
            else:
                entry["value"] = float(value)
            records.append(entry)
    return records


def numbers(runs: pd.DataFrame, table_frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every number of the tables and of the runs in long form.

    :param runs: The per-run table.
    :param table_frames: :func:`tables`' output.
    :return: Columns :data:`LONG_COLUMNS`: ``table`` (a table name or ``runs``), the
        identifying columns that apply (others empty), ``quantity`` (a column name), ``value``
        (numbers) or ``text`` (bounds, run status and error). Missing numbers are left out.
    """
    ids = ("env", "algo", "arm", "tutor", "reuse")
    records = []
    for name, frame in table_frames.items():
        records += _long(name, frame, ids)
    records += _long("runs", prepare_runs(runs), (*ids, "seed"))
    return pd.DataFrame(records, columns=LONG_COLUMNS)


# ---------------------------------------------------------------------------------------------


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def write_report(
    out_dir: Path,
    runs: pd.DataFrame,
    curves: dict[tuple[str, str, str], list[pd.DataFrame]],
    meta: dict[str, Any],
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the sweep's report into ``out_dir/report/``.

    Files: ``report.md`` (links the curve images), ``report.html`` (the same content, one
    self-contained file: inline CSS, images as ``data:`` URIs, no scripts or external links),
    ``numbers.csv`` (every number of every table and every run, see :func:`numbers`) and
    ``curves/<env>-<algo>.png``. Each file is written atomically.

    :param out_dir: The sweep folder.
    :param runs: One row per run (see the module's input contract).
    :param curves: Per-seed evaluation curves keyed by (env, algo, arm).
    :param meta: ``name``, ``command``, ``metric_definitions`` (name → definition) and
        optionally ``tutor_quality`` (the offline tutor evaluation, a DataFrame or None).
    :param reps: Bootstrap replicates per interval.
    :param seed: Seed of the bootstraps.
    :return: Relative file name (``report.md``, ``curves/snake-ppo.png``, …) → path.
    """
    runs = prepare_runs(runs)
    t = tables(runs, reps=reps, seed=seed, tutor_quality=meta.get("tutor_quality"))
    folder = Path(out_dir) / "report"
    written: dict[str, Path] = {}
    images: dict[tuple[str, str], str] = {}
    image_data: dict[str, bytes] = {}
    config = t["configurations"]
    for env, algo in pairs(runs):
        if not any(e == env and a == algo and frames for (e, a, _), frames in curves.items()):
            continue
        rel = f"curves/{_file_name(env)}-{_file_name(algo)}.png"
        sub = config[(config["env"] == env) & (config["algo"] == algo)]
        threshold = float(sub["threshold"].iloc[0]) if len(sub) else None
        levels = {level: sub[level].iloc[0] for level in LEVELS} if len(sub) else None
        path = plot_curves(curves, env, algo, folder / rel, threshold=threshold, levels=levels)
        images[(env, algo)] = rel
        image_data[rel] = path.read_bytes()
        written[rel] = path
    answers = plot_answers(t, folder / "answers.png")
    if answers is not None:
        images[("", "answers")] = "answers.png"
        image_data["answers.png"] = answers.read_bytes()
        written["answers.png"] = answers
    blocks = _document(runs, t, meta, images, reps)
    title = f"tutorl report: {meta.get('name') or 'sweep'}"
    for rel, text in (
        ("report.md", _markdown(blocks)),
        ("report.html", _html(blocks, title, image_data)),
        ("numbers.csv", numbers(runs, t).to_csv(index=False)),
    ):
        atomic_write_text(folder / rel, text)
        written[rel] = folder / rel
    return written


# Public names of the document model, for other reports built from the same blocks
# (``tutorl.ultra.report``): a block list renders to the same Markdown and offline HTML.
Block = _Block
Table = _Table
render_markdown = _markdown
render_html = _html
