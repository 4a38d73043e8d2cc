"""Do the paper-local Connect Four runs reproduce with the fast env (bitboards, compiled expert)?

The advice study (configs/advice.yaml) runs the paper-local grid's Connect Four ``none`` and
``expert`` arms with the same configuration (150k steps, evaluation every 7,500 steps on 100
games, seeds 0-2 among its 5); this script compares those runs, seed by seed, with the ones
committed in docs/results/paper-local/numbers.csv (PettingZoo env, pure-Python expert), and
the wall time per run.

    python benchmarks/connect_four_rerun.py runs/advice    # -> results/connect_four_rerun.json
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from tutorl.experiments.stats import interval

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "docs/results/paper-local/numbers.csv"
QUANTITIES = ("final_return", "steps_to_threshold", "auc", "wall_time")


def old_runs() -> dict:
    out: dict = defaultdict(dict)
    with OLD.open() as f:
        for row in csv.DictReader(f):
            if row["table"] != "runs" or row["env"] != "connect_four" or row["reuse"] != "False":
                continue
            if row["arm"] in ("none", "expert") and row["quantity"] in QUANTITIES:
                key = (row["algo"], row["arm"], int(row["seed"]))
                out[key][row["quantity"]] = float(row["value"]) if row["value"] else None
    return out


def main() -> None:
    sweep = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/advice")
    before, rows = old_runs(), []
    for (algo, arm, seed), old in sorted(before.items()):
        path = sweep / "runs" / "connect_four" / algo / arm / f"seed{seed}" / "summary.json"
        if not path.exists():
            continue
        new = json.loads(path.read_text())
        rows.append(
            {"algo": algo, "arm": arm, "seed": seed, "old": old,
             "new": {q: new.get(q) for q in QUANTITIES}}
        )  # fmt: skip
    cells = []
    for algo in ("dqn", "ppo", "a2c"):
        for arm in ("none", "expert"):
            mine = [r for r in rows if (r["algo"], r["arm"]) == (algo, arm)]
            if not mine:
                continue
            old_final = np.array([r["old"]["final_return"] for r in mine])
            new_final = np.array([r["new"]["final_return"] for r in mine])
            identical = all(
                r["old"].get(q) == r["new"].get(q)
                for r in mine
                for q in QUANTITIES
                if q != "wall_time"
            )
            cells.append(
                {
                    "algo": algo,
                    "arm": arm,
                    "seeds": len(mine),
                    "old_final": list(interval(old_final)),
                    "new_final": list(interval(new_final)),
                    "identical_curves_metrics": identical,
                    "old_wall_time": float(np.mean([r["old"]["wall_time"] for r in mine])),
                    "new_wall_time": float(np.mean([r["new"]["wall_time"] for r in mine])),
                }
            )

    def show(values: list) -> str:
        mean, low, high = (f"{v:+.3f}" if v is not None else "—" for v in values)
        return f"{mean} [{low}, {high}]"

    for c in cells:
        print(
            f"{c['algo']:4s} {c['arm']:7s} seeds {c['seeds']}  final old {show(c['old_final'])}  "
            f"new {show(c['new_final'])}  identical {c['identical_curves_metrics']}  wall time "
            f"{c['old_wall_time']:.0f} s -> {c['new_wall_time']:.0f} s"
        )
    out = Path(__file__).parent / "results" / "connect_four_rerun.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "cells": cells, "runs": rows},
                              indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
