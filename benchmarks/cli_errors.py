"""How long a user waits for the one-line error of a mistaken command: this tutorl against an
older one, side by side.

Runs each mistaken command as a real subprocess (``python -m tutorl.cli ...``), alternating
between the two source trees (``PYTHONPATH``), ``--repeats`` times each, and reports the median
wall time of each and their ratio. Both must end with exit status 2 and one ``error:`` line.
The older tree is a worktree of the commit before the specs moved out of ``rl/train.py``
(validation then imported PyTorch and Stable-Baselines3):

    git worktree add /tmp/tutorl-before 5bf8c93
    python benchmarks/cli_errors.py --before /tmp/tutorl-before/src

Writes ``benchmarks/results/cli_errors.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISTAKES = {
    "train, a negative λ": ["train", "--env", "blackjack", "--algo", "ppo",
                            "--imitation-coef", "-1"],
    "compare, an unknown tutor": ["compare", "--env", "snake", "--algo", "ppo",
                                  "--tutor", "wizard"],
    "sweep, a bad field": ["sweep", "{sweep}", "--out", "{tmp}/out"],
}  # fmt: skip


def run(src: Path, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tutorl.cli", *argv], capture_output=True,
                            text=True, env=env, timeout=120)  # fmt: skip
    seconds = time.perf_counter() - start
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if result.returncode != 2 or len(errors) != 1:
        raise SystemExit(f"{src}: {argv} gave exit {result.returncode}: {result.stderr[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="src/ of the older tutorl")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cli_errors.json")
    args = parser.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "tutorl-cli-errors"
    tmp.mkdir(exist_ok=True)
    sweep = tmp / "sweep.yaml"
    sweep.write_text("envs: {blackjack: {steps: 100}}\nalgos: [ppo]\ndefaults: {ask_end: 2}\n")
    trees = {"before": args.before.resolve(), "now": (ROOT / "src").resolve()}
    rows = {}
    for name, argv in MISTAKES.items():
        argv = [a.replace("{sweep}", str(sweep)).replace("{tmp}", str(tmp)) for a in argv]
        times: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            for tree, src in trees.items():
                times[tree].append(run(src, argv))
        before, now = (statistics.median(times[t]) for t in trees)
        rows[name] = {"before_s": round(before, 3), "now_s": round(now, 3),
                      "ratio": round(before / now, 2)}  # fmt: skip
        print(f"{name:28s} before {before:5.2f} s   now {now:5.2f} s   {before / now:4.1f}x")
    record = {
        "command": " ".join(["python", "benchmarks/cli_errors.py", *sys.argv[1:]]),
        "what": "median wall time of a mistaken command's one-line error, subprocess",
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
