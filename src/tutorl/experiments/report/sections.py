"""The report's sections, from the statistics tables of :mod:`tutorl.experiments.tables`:
per game × algorithm the learning speed, performance, stability, cost, tutored-vs-none and
reuse tables, then tutor quality and the answers at a glance, each cell with a footnote that
says why a number is missing or only a bound; and the whole report as blocks (:func:`_document`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from tutorl.experiments.metrics import HEADLINE, LEVEL_FRACTIONS, REFERENCES, level_column
from tutorl.experiments.report.document import Block, Table
from tutorl.experiments.report.figures import MAX_ARMS_PER_PANEL
from tutorl.experiments.report.formatting import (
    _agreement_of,
    _cell,
    _count,
    _diff,
    _missing,
    _one_line,
    _prob,
    _pvalue,
    _ratio,
    _ret,
    _seconds,
    _steps,
)
from tutorl.experiments.tables import (
    CENSORED,
    LEVEL_OF,
    STATISTICS_DEFINITIONS,
    pairs,
    speedup_column,
)

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


def _censored_cell(table: Table, row: Any, metric: str, statistic: str) -> str:
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


def _plain_cell(table: Table, row: Any, name: str, fmt: Callable[[float], str]) -> str:
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


def _level_table(config: pd.DataFrame, reference: str) -> Table:
    name = _REFERENCE_NAMES[reference]
    table = Table(
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


def _speed_tables(config: pd.DataFrame) -> list[Table]:
    return [_level_table(config, reference) for reference in REFERENCES]


def _performance_table(config: pd.DataFrame) -> Table:
    table = Table(pd.DataFrame(), title="Performance")
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


def _stability_table(config: pd.DataFrame) -> Table:
    table = Table(
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


def _cost_table(config: pd.DataFrame) -> Table:
    table = Table(pd.DataFrame(), title="Tutoring cost (mean per run)")
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
    table: Table,
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


def _speedup_cell(table: Table, row: Any, metric: str, arms: tuple[str, str]) -> str:
    """The speed-up to a level (``speedup_<ref>_<pct>``) of a tutored-vs-none row."""
    reached = metric.removeprefix("steps_to_")
    counts = ("baseline_seeds", "tutored_seeds", f"baseline_reached_{reached}",
              f"tutored_reached_{reached}")  # fmt: skip
    return _ratio_cell(
        table, row, speedup_column(metric), counts, _what(metric), arms, metric=metric
    )


def _stat_cell(table: Table, row: Any, name: str, fmt: Callable[[float], str]) -> str:
    if _missing(row[name]):
        return "—" + table.note("an arm has no finished runs (or the number is undefined)")
    return _cell(row, name, fmt)


def _agreement(row: Any) -> str:
    return "—" if _missing(row.get("agreement")) else _ret(float(row["agreement"]))


def _acceleration_table(acc: pd.DataFrame) -> Table:
    table = Table(
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


def _reuse_table(reuse: pd.DataFrame) -> Table:
    table = Table(
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


def _quality_table(quality: pd.DataFrame) -> Table:
    table = Table(
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


def _status_line(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    done, failed = int(counts.get("done", 0)), int(counts.get("failed", 0))
    unfinished = len(runs) - done - failed
    line = f"{len(runs)} runs: {done} done, {failed} failed, {unfinished} unfinished." + (
        " The sweep is incomplete: numbers will change." if unfinished else ""
    )
    not_started = int(runs.attrs.get("not_started", 0))
    if not_started:
        line += (
            f" Left out: {not_started} more runs of the sweep file whose configurations "
            "(game × algorithm × arm) have no run started."
        )
    return line


def _summary_table(t: dict[str, pd.DataFrame]) -> Table:
    """The study's three questions in one table, one row per (game, algorithm, tutored arm
    without reuse) with finished runs in every arm involved: does tutoring reach the untutored
    final level sooner (at what cost in final return), does reuse speed it further, is reuse
    less stable; and the tutor's quality beside every number."""
    table = Table(
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


def _document(
    runs: pd.DataFrame,
    t: dict[str, pd.DataFrame],
    meta: dict[str, Any],
    images: dict[tuple[str, str], str],
    reps: int,
) -> list[Block]:
    name = str(meta.get("name") or "sweep")
    blocks = [Block("h1", f"tutorl report: {name}")]
    blocks.append(Block("p", "Produced by:"))
    blocks.append(Block("code", str(meta.get("command") or "tutorl report")))
    blocks.append(Block("h2", "Summary"))
    blocks.append(Block("ul", _summary(runs, reps)))
    summary = _summary_table(t)
    if len(summary.frame):
        blocks.append(Block("table", summary))
    if ("", "answers") in images:
        blocks.append(Block("img", (images[("", "answers")], "The answers at a glance")))
        blocks.append(
            Block(
                "p",
                "The table as a figure: points with 95% bootstrap intervals over seeds; open "
                "markers are bounds pointing where the true ratio lies (some runs never reached "
                "the untutored final level); unknown ratios are left out; agreement with the "
                "expert in parentheses.",
            )
        )
    config = t["configurations"]
    for env, algo in pairs(runs):
        blocks.append(Block("h2", f"{env} · {algo}"))
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
            blocks.append(Block("p", text[0].upper() + text[1:] + "."))
        if (env, algo) in images:
            blocks.append(Block("img", (images[(env, algo)], f"Learning curves, {env} {algo}")))
            blocks.append(
                Block(
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
            blocks.append(Block("p", "No evaluation curves available for this pair."))
        for table in (
            *_speed_tables(sub),
            _performance_table(sub),
            _stability_table(sub),
            _cost_table(sub),
        ):
            blocks.append(Block("table", table))
        acc = t["acceleration"]
        acc = acc[(acc["env"] == env) & (acc["algo"] == algo)]
        if len(acc):
            blocks.append(Block("table", _acceleration_table(acc)))
        reuse = t["reuse"]
        reuse = reuse[(reuse["env"] == env) & (reuse["algo"] == algo)]
        if len(reuse):
            blocks.append(Block("table", _reuse_table(reuse)))
    if len(t["tutor_quality"]):
        blocks.append(Block("h2", "Tutor quality"))
        blocks.append(Block("table", _quality_table(t["tutor_quality"])))
    failed = runs[runs["status"] == "failed"]
    blocks.append(Block("h2", "Failed runs"))
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
        blocks.append(Block("table", Table(frame, caption="Left out of every statistic above.")))
    else:
        blocks.append(Block("p", "None."))
    unfinished = runs[~runs["status"].isin(["done", "failed"])]
    if len(unfinished):
        blocks.append(Block("h2", "Unfinished runs"))
        frame = pd.DataFrame(
            {
                "game": unfinished["env"],
                "algo": unfinished["algo"],
                "arm": unfinished["arm"],
                "seed": unfinished["seed"].astype(str),
                "status": unfinished["status"],
            }
        )
        blocks.append(Block("table", Table(frame)))
    blocks.append(Block("h2", "Definitions"))
    definitions = dict(meta.get("metric_definitions") or {})
    if definitions:
        blocks.append(Block("h3", "Metrics (per run)"))
        blocks.append(Block("dl", list(definitions.items())))
    blocks.append(Block("h3", "Statistics (over seeds)"))
    blocks.append(Block("dl", list(STATISTICS_DEFINITIONS.items())))
    return blocks
