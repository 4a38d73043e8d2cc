"""LLM calls saved by advice reuse and by the persistent response cache in a Blackjack run.

Trains tutored DQN on Blackjack with the embedded default LLM (SmolLM2-135M) as tutor, reuse
on, for ``--seeds`` seeds one after the other, all sharing one *fresh* response cache. For each
run: states advised from memory (reuse hits: no tutor call at all), states sent to the tutor
(asks), and of those how many the model really evaluated (cache misses) versus how many the
SQLite cache answered (hits). The first run fills the cache; later runs and seeds reuse it.

    python benchmarks/llm_calls_saved.py [--steps 20000] [--seeds 2]

Writes benchmarks/results/llm_calls_saved.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results/llm_calls_saved.json")
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # A fresh cache, so the first run pays for every distinct state.
        os.environ["TUTORL_CACHE"] = str(Path(tmp) / "responses.sqlite")
        from tutorl.rl.train import RunConfig, train

        rows = []
        for seed in range(args.seeds):
            config = RunConfig(
                env="blackjack",
                algo="dqn",
                tutor="llm",
                llm=args.model,
                reuse=True,
                steps=args.steps,
                seed=seed,
            )
            start = time.perf_counter()
            summary, _ = train(config)
            advice, llm = summary["advice"], summary["llm"]
            advised = advice["advised_steps"] + advice["fallbacks"]
            row = {
                "seed": seed,
                "env_steps": advice["env_steps"],
                "advised_states": advised,
                "reuse_hits": advice["reuse_hits"],
                "tutor_asks": advice["tutor_asks"],
                "cache_hits": llm["cache_hits"],
                "model_evaluations": llm["cache_misses"],
                "calls_saved_share": round(1 - llm["cache_misses"] / max(advised, 1), 4),
                "agreement": advice["agreement"],
                "tutor_seconds": advice["tutor_seconds"],
                "wall_seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(json.dumps(row))
    result = {
        "benchmark": "llm_calls_saved",
        "model": args.model,
        "steps": args.steps,
        "runs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
