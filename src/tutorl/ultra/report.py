"""The report of a ``tutorl ultra`` folder: Markdown, offline HTML, a figure and a CSV.

Built from ``OUT/ultra.json`` with the same document model as the sweep report
(:mod:`tutorl.experiments.report`), so ``tutorl report OUT`` works on both kinds of folder.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from tutorl._io import atomic_write_bytes, atomic_write_text
from tutorl.experiments.report.document import Block, Table, render_html, render_markdown

VARIANT_TEXT = {
    "none": "continued training, no modulation",
    "A": "ULTRA-A: the suggested action executed at critical states",
    "R": "ULTRA-R: the implicit reward added when the judged action is taken there again, "
    "its opposite when the suggestion is",
    "RA": "ULTRA-RA: both",
    "random": "RA on random states with random other actions and drawn rewards (ablation)",
}


def _interval(value: Any, digits: int = 3) -> str:
    point, low, high = value if value is not None else (None, None, None)
    if point is None:
        return "—"
    if low is None:
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _with_chance(value: float | None, chance: float | None) -> str:
    if value is None:
        return "—"
    return _number(value) if chance is None else f"{value:.2f} ({chance:.2f})"


def _figure(rows: list[dict[str, Any]], title: str) -> bytes:
    """Return after refinement per variant and identifier, with the 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    identifiers = list(dict.fromkeys(r["identifier"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=120)
    width = 0.8 / max(1, len(identifiers))
    for k, identifier in enumerate(identifiers):
        xs, ys, errs = [], [], [[], []]
        for i, variant in enumerate(variants):
            row = next(r for r in rows if r["identifier"] == identifier and r["variant"] == variant)
            point, low, high = row["after"]
            if point is None:
                continue
            xs.append(i + (k - (len(identifiers) - 1) / 2) * width)
            ys.append(point)
            errs[0].append(point - (low if low is not None else point))
            errs[1].append((high if high is not None else point) - point)
        # Points with intervals, not bars: returns may be negative and bars from 0 mislead.
        ax.errorbar(
            xs, ys, yerr=errs, fmt="o", capsize=4, markersize=6, label=f"{identifier} identifier"
        )
    before = next((r["before"][0] for r in rows if r["before"][0] is not None), None)
    if before is not None:
        ax.axhline(before, color="black", linestyle="--", linewidth=1, label="before refinement")
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel("evaluation return after refinement")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_ultra_report(out: Path) -> dict[str, Path]:
    """Write ``OUT/report/ultra.md``, ``ultra.html`` (self-contained), ``ultra.png`` and
    ``ultra.csv`` from ``OUT/ultra.json``; return name -> path."""
    path = out / "ultra.json"
    if not path.is_file():
        raise FileNotFoundError(f"{out} has no ultra.json: run tutorl ultra first")
    summary = json.loads(path.read_text())
    config, rows = summary["config"], summary["rows"]
    title = f"ULTRA: {config['env']} · {config['algo']}"
    agent = config["model"] or "{:,} training steps".format(config["train_steps"])
    frame = pd.DataFrame(
        [
            {
                "identifier": r["identifier"],
                "variant": r["variant"],
                "seeds": r["seeds"],
                "return before": _interval(r["before"]),
                "return after": _interval(r["after"]),
                "improvement": _interval(r["improvement"]),
                "P(beats none)": _interval(r["p_beats_none"], 2) if r["p_beats_none"] else "—",
                "critical steps / seed": _number(r["critical_steps"], 1),
                "precision (chance)": _with_chance(r["precision"], r.get("precision_chance")),
                "recall": _number(r["recall"]),
                "sound suggestions (chance)": _with_chance(
                    r.get("soundness"), r.get("soundness_chance")
                ),
                "chunks skipped": f"{r['skipped_chunks']}/{r['chunks']}",
            }
            for r in rows
        ]
    )
    table = Table(
        frame,
        title="Return before and after refinement",
        caption="Mean over seeds with 95% bootstrap intervals. P(beats none): probability that "
        "a seed of the variant ends above a seed of continued training. Precision/recall: the "
        "identifier's critical steps against the expert's; chance: the precision of steps "
        "named at random (the share of truly critical steps). Sound suggestions: the share of "
        "its suggested actions that lose at most the threshold of value against the best "
        "action (what A executes and RA rewards); chance: a random legal action's share at "
        "the same steps.",
    )
    blocks = [
        Block("h1", title),
        Block(
            "p",
            f"Sub-optimal agent: {agent}; {config['episodes']} episodes analysed per seed; "
            f"refinement {config['refine_steps']:,} steps; reward scale "
            f"{config['reward_scale']:g}; {_seeds(summary)}; {_evaluation(config)}.",
        ),
        Block("img", ("ultra.png", title)),
        Block("table", table),
        Block("h2", "Variants"),
        Block("dl", list(VARIANT_TEXT.items())),
    ]
    folder = out / "report"
    image = _figure(rows, title)
    atomic_write_bytes(folder / "ultra.png", image)
    written = {"ultra.png": folder / "ultra.png"}
    long = [
        {"identifier": r["identifier"], "variant": r["variant"], "quantity": q + suffix, "value": v}
        for r in rows
        for q in ("before", "after", "improvement", "p_beats_none")
        for v, suffix in zip(r[q] or (None, None, None), ("", "_low", "_high"), strict=True)
        if v is not None
    ]
    for name, text in (
        ("ultra.md", render_markdown(blocks)),
        ("ultra.html", render_html(blocks, title, {"ultra.png": image})),
        ("ultra.csv", pd.DataFrame(long).to_csv(index=False)),
    ):
        atomic_write_text(folder / name, text)
        written[name] = folder / name
    return written


def _evaluation(config: dict[str, Any]) -> str:
    """How returns were measured: exactly where the game has an exact evaluator."""
    from tutorl.envs import get_game

    try:
        exact = get_game(config["env"]).exact_evaluator is not None
    except ValueError:  # a user's game that is not importable where the report is written
        exact = False
    if exact:
        return "returns evaluated exactly (the game's exact evaluator)"
    return f"evaluation on {config['eval_episodes']} episodes"


def _seeds(summary: dict[str, Any]) -> str:
    """How many seeds the table holds; an incomplete run says so."""
    asked = summary["config"]["seeds"]
    finished = summary.get("seeds_finished", asked)  # written before seeds could fail alone
    if finished == asked:
        return f"{asked} seeds"
    return (
        f"**incomplete: {finished} of {asked} seeds finished** (a seed that failed has an "
        "error.json saying why; run the same command again to do the others)"
    )
