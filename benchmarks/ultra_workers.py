"""What doing ULTRA's seeds on the run store's executor buys: one at a time against two workers.

Runs the same ULTRA experiment twice, side by side in one session: the default (``workers=1``:
the seeds one after another in this process) then ``workers=2`` (two worker processes), each
into its own folder with its own (empty) LLM response cache, so neither reads the other's
answers. Reports both wall times, their ratio, and whether the two tables are identical; it
also compares the table with a reference ``ultra.json`` (``--reference``: by default the
committed result; pass one made by an older tutorl on this machine to check that the change
moved no number). Writes ``benchmarks/results/ultra_workers.json``.

    python benchmarks/ultra_workers.py [--reference docs/results/ultra/blackjack-ppo/ultra.json]
    python benchmarks/ultra_workers.py --identifier expert --reference none \
        --out benchmarks/results/ultra_workers_expert.json

The committed ``ultra_workers.json`` was checked against the code before seeds were tasks
(``git worktree add /tmp/old 0554bf5``; ``PYTHONPATH=/tmp/old/src`` and ``run_ultra`` with the
same configuration into ``/tmp/oldref/u``): identical. The committed Blackjack result itself
was made on another machine and differs in the last digits (docs/results.md, "Reproducing").

The default is the committed Blackjack PPO benchmark of docs/ultra.md (3 seeds, the expert and
the embedded SmolLM2 as identifiers). An embedded model is served once to both workers and
answers one request at a time, so its reading does not get faster with workers; training and
refinement do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# Like `tutorl ultra`, this process does not set OMP_NUM_THREADS at import; each seed's task sets
# it (to 1) before training, in this process or in a worker.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def _run(workers: int, out: Path, args: argparse.Namespace) -> tuple[float, dict]:
    from tutorl.ultra.pipeline import UltraConfig, run_ultra

    config = UltraConfig(
        env=args.env,
        algo=args.algo,
        train_steps=args.train_steps,
        episodes=args.episodes,
        refine_steps=args.refine_steps,
        seeds=args.seeds,
        eval_episodes=args.eval_episodes,
        identifiers=args.identifier or ["expert", "llm"],
    )
    os.environ["TUTORL_CACHE"] = str(out.parent / f"cache-{workers}.sqlite")  # cold, own cache
    start = time.perf_counter()
    summary = run_ultra(config, out, workers=workers)
    return time.perf_counter() - start, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="blackjack")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--train-steps", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--refine-steps", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--identifier", action="append", help="expert and/or llm (default both)")
    parser.add_argument(
        "--reference", type=Path, default=Path("docs/results/ultra/blackjack-ppo/ultra.json")
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ultra_workers.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        one_s, one = _run(1, Path(tmp) / "w1", args)
        two_s, two = _run(2, Path(tmp) / "w2", args)
    rows = json.dumps(one["rows"], sort_keys=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "experiment": {k: v for k, v in vars(args).items() if k not in ("out", "reference")},
        "seconds_in_process": round(one_s, 1),
        "seconds_2_workers": round(two_s, 1),
        "speedup": round(one_s / two_s, 2),
        "tables_identical": rows == json.dumps(two["rows"], sort_keys=True),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    if args.reference.exists():
        stored = json.loads(args.reference.read_text())["rows"]
        result["reference"] = str(args.reference)
        result["reference_identical"] = rows == json.dumps(stored, sort_keys=True)
        # Where they differ: the mean return after refinement per row, here and there.
        result["after_here_vs_reference"] = {
            f"{a['identifier']}/{a['variant']}": [a["after"][0], b["after"][0]]
            for a, b in zip(one["rows"], stored, strict=True)
        }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
