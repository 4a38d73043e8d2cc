"""``tutorl report DIR``: the tables, curves and self-contained report of a sweep.

The input is the sweep's per-run table (one row per run, as built by
:mod:`tutorl.experiments.metrics`), its per-seed evaluation curves and a little metadata; this
module never reads run folders itself. :mod:`tutorl.experiments.tables` turns the runs into four
tables of numbers (statistics over seeds); :func:`write_report` renders them as Markdown and as
one HTML file that opens offline, with learning-curve images and a CSV of every number.

Honesty rules: an interval needs two seeds or more; a mean over runs some of which never got
somewhere (never converged, never reached the threshold) counts those runs at their full length
and is shown as a bound (``≥``); when no run got there, no number is shown ("—") and a footnote
says why.
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
from tutorl.experiments.tables import (
    BASELINE,
    CENSORED,
    STATISTICS_DEFINITIONS,
    pairs,
    prepare_runs,
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


def plot_curves(
    curves: dict[tuple[str, str, str], list[pd.DataFrame]],
    env: str,
    algo: str,
    path: Path,
    threshold: float | None = None,
) -> Path:
    """Mean evaluation return per arm over seeds, with a 95% t-interval band, as a PNG.

    Seeds are aligned on the shortest curve (evaluations happen at the same steps in every
    seed). The untutored baseline is black and dashed, reuse arms dash-dotted in their tutor's
    colour, the success threshold a dotted grey line. One seed draws no band. Written
    atomically; uses the Agg canvas directly (no pyplot state).

    :param curves: Per-seed curves keyed by (env, algo, arm); other (env, algo) are ignored.
    :param env: Game to plot.
    :param algo: Algorithm to plot.
    :param path: Where to write the PNG.
    :param threshold: The success threshold, drawn if given.
    :return: ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from scipy import stats as sps

    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    arms = [arm for (e, a, arm) in curves if e == env and a == algo]
    arms = sorted(arms, key=lambda arm: (arm != BASELINE, arms.index(arm)))
    palette = _PALETTE
    colours: dict[str, str] = {}
    for arm in arms:
        frames = [f for f in curves[(env, algo, arm)] if len(f)]
        if not frames:
            continue
        n = min(len(f) for f in frames)
        steps = frames[0]["step"].to_numpy(dtype=float)[:n]
        values = np.stack([f["mean_return"].to_numpy(dtype=float)[:n] for f in frames])
        mean = values.mean(axis=0)
        tutor = arm.removesuffix("+reuse")
        if arm == BASELINE:
            colour, style = "black", "--"
        else:
            colour = colours.setdefault(tutor, palette[len(colours) % len(palette)])
            style = "-." if arm.endswith("+reuse") else "-"
        ax.plot(steps, mean, color=colour, linestyle=style, label=f"{arm} (n={len(frames)})")
        if len(frames) > 1:
            sem = values.std(axis=0, ddof=1) / math.sqrt(len(frames))
            half = sps.t.ppf(0.975, len(frames) - 1) * sem
            ax.fill_between(steps, mean - half, mean + half, color=colour, alpha=0.15, lw=0)
    if threshold is not None and not math.isnan(threshold):
        ax.axhline(threshold, color="grey", linestyle=":", linewidth=1.2, label="threshold")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean evaluation return")
    ax.set_title(f"{env} · {algo}")
    ax.grid(alpha=0.3)
    if arms:
        ax.legend(fontsize=8)
    fig.tight_layout()
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


def _censored_cell(table: _Table, row: Any, metric: str, statistic: str) -> str:
    n, k = row["seeds_done"], row[CENSORED[metric]]
    what = "converged" if metric == "convergence_step" else "reached the threshold"
    if n == 0:
        return "—" + table.note(_NO_RUNS)
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
        return "—" + table.note("not measured in any finished run (e.g. none converged)")
    return _cell(row, name, fmt)


def _seeds(row: Any) -> str:
    text = str(int(row["seeds_done"]))
    if row["seeds_failed"]:
        text += f" (+{int(row['seeds_failed'])} failed)"
    if row["seeds_unfinished"]:
        text += f" (+{int(row['seeds_unfinished'])} unfinished)"
    return text


def _speed_table(config: pd.DataFrame) -> _Table:
    table = _Table(pd.DataFrame(), title="Learning speed")
    rows = []
    for _, row in config.iterrows():
        n = int(row["seeds_done"])
        rows.append(
            {
                "arm": row["arm"],
                "seeds": _seeds(row),
                "converged": f"{int(row['converged'])}/{n}",
                "convergence step: mean": _censored_cell(table, row, "convergence_step", "mean"),
                "convergence step: IQM": _censored_cell(table, row, "convergence_step", "iqm"),
                "reached threshold": f"{int(row['reached'])}/{n}",
                "steps to threshold: mean": _censored_cell(
                    table, row, "steps_to_threshold", "mean"
                ),
                "steps to threshold: IQM": _censored_cell(table, row, "steps_to_threshold", "iqm"),
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


def _performance_table(config: pd.DataFrame) -> _Table:
    table = _Table(pd.DataFrame(), title="Performance")
    rows = []
    for _, row in config.iterrows():
        cells = {"arm": row["arm"]}
        for metric, label, fmt in (
            ("final_return", "final return", _ret),
            ("auc", "AUC", _ret),
            ("stability_std", "stability std", _ret),
            ("drops", "drops", _count),
        ):
            cells[f"{label}: mean"] = _plain_cell(table, row, f"{metric}_mean", fmt)
            cells[f"{label}: IQM"] = _plain_cell(table, row, f"{metric}_iqm", fmt)
        rows.append(cells)
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
) -> str:
    """A ratio (``arms[0]``'s mean steps over ``arms[1]``'s) with its bound, or ``—`` and the
    reason."""
    seeds_a, seeds_b, got_a, got_b = (int(row[c]) for c in counts)
    if _missing(row[name]):
        if seeds_a == 0 or seeds_b == 0:
            return "—" + table.note("an arm has no finished runs")
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
            "ratio an upper bound"
        )
    return text


def _stat_cell(table: _Table, row: Any, name: str, fmt: Callable[[float], str]) -> str:
    if _missing(row[name]):
        return "—" + table.note("an arm has no finished runs")
    return _cell(row, name, fmt)


def _acceleration_table(acc: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        title="Tutored vs no tutor",
        caption="Ratios: baseline mean steps / tutored mean steps (above 1: the tutor helps). "
        "P(…): probability that a tutored seed beats a baseline seed. p: Mann–Whitney.",
    )
    rows = []
    for _, row in acc.iterrows():
        rows.append(
            {
                "arm": row["arm"],
                "seeds (tutored vs none)": f"{int(row['tutored_seeds'])} vs "
                f"{int(row['baseline_seeds'])}",
                "acceleration to threshold": _ratio_cell(
                    table,
                    row,
                    "acceleration",
                    ("baseline_seeds", "tutored_seeds", "baseline_reached", "tutored_reached"),
                    "reached the threshold",
                    ("baseline", "tutored"),
                ),
                "convergence-step ratio": _ratio_cell(
                    table,
                    row,
                    "convergence_ratio",
                    ("baseline_seeds", "tutored_seeds", "baseline_converged", "tutored_converged"),
                    "converged",
                    ("baseline", "tutored"),
                ),
                "P(converges sooner)": _stat_cell(table, row, "p_converges_sooner", _prob),
                "p (convergence)": _stat_cell(table, row, "convergence_p_value", _pvalue),
                "Δ final return": _stat_cell(table, row, "final_return_diff", _diff),
                "P(final return higher)": _stat_cell(table, row, "p_final_better", _prob),
                "p (final return)": _stat_cell(table, row, "final_return_p_value", _pvalue),
            }
        )
    table.frame = pd.DataFrame(rows)
    return table


def _reuse_table(reuse: pd.DataFrame) -> _Table:
    table = _Table(
        pd.DataFrame(),
        title="Advice reuse: on vs off",
        caption="Ratio: mean convergence step without reuse / with reuse (above 1: reuse "
        "converges sooner). P(…): probability that a seed with reuse beats one without.",
    )
    rows = []
    for _, row in reuse.iterrows():
        rows.append(
            {
                "tutor": row["tutor"],
                "seeds (on vs off)": f"{int(row['seeds_on'])} vs {int(row['seeds_off'])}",
                "convergence-step ratio (off/on)": _ratio_cell(
                    table,
                    row,
                    "convergence_ratio",
                    ("seeds_off", "seeds_on", "converged_off", "converged_on"),
                    "converged",
                    ("no-reuse", "reuse"),
                ),
                "P(reuse converges sooner)": _stat_cell(table, row, "p_on_sooner", _prob),
                "p": _stat_cell(table, row, "p_value", _pvalue),
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
    """The study's three questions in one table, one row per (game, algorithm, tutor) with
    finished runs in every arm involved: does tutoring speed convergence (at what cost in final
    return), does reuse speed it further, is reuse less stable; and the tutor's quality."""
    table = _Table(
        pd.DataFrame(),
        title="Answers at a glance",
        caption="Convergence ratios: mean convergence step without the tutor / with it, and "
        "without reuse / with it (above 1: sooner). Δ final: tutored minus untutored final "
        "return. Stability: std of evaluation returns after convergence, "
        "without → with reuse. [low, high]: 95% bootstrap intervals over seeds.",
    )
    acc, reuse, quality = t["acceleration"], t["reuse"], t["tutor_quality"]
    rows = []
    for _, row in acc[~acc["reuse"].astype(bool)].iterrows():
        if not (row["tutored_seeds"] and row["baseline_seeds"]):
            continue
        match = reuse[
            (reuse["env"] == row["env"])
            & (reuse["algo"] == row["algo"])
            & (reuse["tutor"] == row["tutor"])
        ]
        other = match.iloc[0] if len(match) else None
        q = quality[(quality["env"] == row["env"]) & (quality["tutor"] == row["tutor"])]
        agreement = (
            _ret(float(q.iloc[0]["training_agreement"]))
            if len(q) and not _missing(q.iloc[0]["training_agreement"])
            else "—"
        )
        counts = ("baseline_seeds", "tutored_seeds", "baseline_converged", "tutored_converged")
        entry = {
            "game": row["env"],
            "algo": row["algo"],
            "tutor": row["tutor"],
            "agreement": agreement,
            "seeds": f"{int(row['tutored_seeds'])}/{int(row['baseline_seeds'])}",
            "tutor vs none: convergence": _ratio_cell(
                table, row, "convergence_ratio", counts, "converged", ("untutored", "tutored")
            ),
            "Δ final": _cell(row, "final_return_diff", _diff),
        }
        has_reuse = other is not None and other["seeds_on"] and other["seeds_off"]
        entry["reuse vs off: convergence"] = (
            _ratio_cell(
                table,
                other,
                "convergence_ratio",
                ("seeds_off", "seeds_on", "converged_off", "converged_on"),
                "converged",
                ("no-reuse", "reuse"),
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


def _summary(runs: pd.DataFrame, reps: int) -> list[str]:
    return [
        _status_line(runs),
        f"Intervals: 95% percentile bootstrap over seeds ({reps:,} resamples). Ratios above 1 "
        "favour the tutor (or reuse); ≥/≤ mark bounds due to runs that never got there; — is a "
        "number that cannot be given (see the footnotes). A fast convergence with a lower final "
        "return is convergence to a worse policy: read the two together.",
    ]


def plot_answers(t: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """The summary table as a figure: per game (rows), each tutor × algorithm's convergence
    ratio against no tutor, its difference in final return, and reuse's convergence ratio
    against no reuse, with 95% bootstrap intervals. A bound (some runs never converged) is an
    open marker pointing the way the true value lies; an unknown ratio is left out. Labels
    carry the tutor's agreement with the expert, so speed is never read without quality.

    :param t: The tables of :func:`tutorl.experiments.tables.tables`.
    :param path: Where to write the PNG.
    :return: ``path``, or None when no comparison has finished runs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    acc, reuse, quality = t["acceleration"], t["reuse"], t["tutor_quality"]
    acc = acc[~acc["reuse"].astype(bool) & (acc["tutored_seeds"] > 0) & (acc["baseline_seeds"] > 0)]
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
            [point], [y], marker=marker, markersize=7, color=colour,
            markerfacecolor=colour if filled else "white", markeredgewidth=1.5,
        )  # fmt: skip

    for g, game in enumerate(games):
        rows = acc[acc["env"] == game]
        axes = [fig.add_subplot(grid[g, c]) for c in range(3)]
        labels = []
        for y, (_, row) in enumerate(rows.iterrows()):
            colour = colours[row["tutor"]]
            q = quality[(quality["env"] == game) & (quality["tutor"] == row["tutor"])]
            agreement = q.iloc[0]["training_agreement"] if len(q) else float("nan")
            labels.append(
                f"{row['algo']} · {row['tutor']}"
                + ("" if _missing(agreement) else f" ({float(agreement):.2f})")
            )
            draw(
                axes[0], y, row["convergence_ratio"], row["convergence_ratio_low"],
                row["convergence_ratio_high"], row["convergence_ratio_bound"], colour,
            )  # fmt: skip
            draw(
                axes[1], y, row["final_return_diff"], row["final_return_diff_low"],
                row["final_return_diff_high"], None, colour,
            )  # fmt: skip
            other = reuse[
                (reuse["env"] == game) & (reuse["algo"] == row["algo"])
                & (reuse["tutor"] == row["tutor"])
            ]  # fmt: skip
            if len(other) and other.iloc[0]["seeds_on"] and other.iloc[0]["seeds_off"]:
                o = other.iloc[0]
                draw(
                    axes[2], y, o["convergence_ratio"], o["convergence_ratio_low"],
                    o["convergence_ratio_high"], o["convergence_ratio_bound"], colour,
                )  # fmt: skip
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
            axes[0].set_title("tutor vs none: convergence ratio (>1 sooner)", fontsize=9)
            axes[1].set_title("Δ final return, tutored − none", fontsize=9)
            axes[2].set_title("reuse vs off: convergence ratio (>1 sooner)", fontsize=9)
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
                "markers are bounds pointing where the true ratio lies (some runs never "
                "converged); unknown ratios are left out; agreement with the expert in "
                "parentheses.",
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
            if not _missing(first["tolerance"]):
                facts.append(f"convergence tolerance {_ret(float(first['tolerance']))}")
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
                    "Mean evaluation return over seeds; band: 95% t-interval over seeds; "
                    "dashed black: no tutor; dash-dotted: with advice reuse; dotted: threshold.",
                )
            )
        else:
            blocks.append(_Block("p", "No evaluation curves available for this pair."))
        for make in (_speed_table, _performance_table, _cost_table):
            blocks.append(_Block("table", make(sub)))
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
        path = plot_curves(curves, env, algo, folder / rel, threshold=threshold)
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
