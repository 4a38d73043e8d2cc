"""``tutorl report DIR``: the tables, curves and self-contained report of a sweep.

The input is the sweep's per-run table (one row per run, as built by
:mod:`tutorl.experiments.metrics`), its per-seed evaluation curves and a little metadata; this
package never reads run folders itself. :mod:`tutorl.experiments.tables` turns the runs into four
tables of numbers (statistics over seeds); :func:`write_report` renders them as Markdown and as
one HTML file that opens offline, with learning-curve images and a CSV of every number.

Honesty rules: an interval needs two seeds or more; a mean over runs some of which never got
somewhere (never reached a level or the threshold, never settled) counts those runs at their
full length and is shown as a bound (``≥``); when no run got there, no number is shown ("—") and
a footnote says why. Learning speed is the steps to levels common to every arm of a game ×
algorithm (the headline: 100% of the untutored final level); each run's own plateau step is
shown only as stability, beside the plateau return it settled at.

Modules: :mod:`~tutorl.experiments.report.document` (the document model: :class:`Block`,
:class:`Table`, :func:`render_markdown`, :func:`render_html`),
:mod:`~tutorl.experiments.report.formatting` (how a number is written),
:mod:`~tutorl.experiments.report.figures` (learning curves, the answers figure),
:mod:`~tutorl.experiments.report.sections` (the tables and the document of a sweep); this
module writes the files (:func:`write_report`, :func:`numbers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tutorl._io import atomic_write_text
from tutorl.experiments.report.document import Block, Table, render_html, render_markdown
from tutorl.experiments.report.figures import (
    MAX_ARMS_PER_PANEL,
    curve_band,
    curves_figure,
    panel_arms,
    plot_answers,
    plot_curves,
)
from tutorl.experiments.report.formatting import _missing
from tutorl.experiments.report.sections import _document
from tutorl.experiments.tables import LEVELS, pairs, prepare_runs, tables

__all__ = [
    "LONG_COLUMNS",
    "MAX_ARMS_PER_PANEL",
    "Block",
    "Table",
    "curve_band",
    "curves_figure",
    "numbers",
    "panel_arms",
    "plot_answers",
    "plot_curves",
    "render_html",
    "render_markdown",
    "write_report",
]

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
        ("report.md", render_markdown(blocks)),
        ("report.html", render_html(blocks, title, image_data)),
        ("numbers.csv", numbers(runs, t).to_csv(index=False)),
    ):
        atomic_write_text(folder / rel, text)
        written[rel] = folder / rel
    return written
