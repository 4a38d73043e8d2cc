"""Cost of imitation: training steps per second of a tutored student with the supervised term
on (``--imitation-coef 1``) against the same student with it off, on the same env, seed, tutor
and advice mode (the paper's ``replace``).

The tutor (``ConstantTutor``) answers instantly and is not judged, so the difference is the
term's own cost: keeping every piece of advice in the advice store, and one extra forward and
backward pass on an advice minibatch in each of SB3's optimizer steps.

Run:  python benchmarks/imitation_cost.py [--env snake] [--steps 20000] [--repeats 3]
Writes benchmarks/results/imitation_cost.json and prints a table (ratio = with / without).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs import get_game
from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import attach_advisor
from tutorl.rl.imitation import Imitation, ImitationSettings
from tutorl.rl.train import configure_threads
from tutorl.specs import DEFAULT_N_ENVS
from tutorl.tutor import AdviceSchedule, Advisor, ConstantTutor


def steps_per_second(algo: str, env_name: str, steps: int, coef: float, seed: int) -> float:
    game = get_game(env_name)
    env = make_vec_env(lambda: game.make(), n_envs=DEFAULT_N_ENVS[algo], seed=seed)
    model = make_model(algo, game, env, seed)
    schedule = AdviceSchedule(1.0, 0.1, steps // 5)
    advisor = Advisor(game, ConstantTutor(0), schedule, seed=seed, judge=False)
    imitation = Imitation(model, ImitationSettings(coef=coef), steps, seed) if coef else None
    attach_advisor(model, game, advisor, imitation)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="snake")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results/imitation_cost.json"))
    args = parser.parse_args()
    configure_threads()

    rows = []
    for algo in ("dqn", "ppo", "a2c"):
        off, on = [], []
        for repeat in range(args.repeats):
            # Interleaved so that background load affects both alike.
            off.append(steps_per_second(algo, args.env, args.steps, 0.0, repeat))
            on.append(steps_per_second(algo, args.env, args.steps, 1.0, repeat))
        ratios = np.array(on) / np.array(off)
        rows.append(
            {
                "algo": algo,
                "without_steps_per_s": round(float(np.median(off)), 1),
                "with_steps_per_s": round(float(np.median(on)), 1),
                "ratio_median": round(float(np.median(ratios)), 3),
                "ratios": [round(float(r), 3) for r in ratios],
            }
        )
        r = rows[-1]
        print(
            f"{algo:4s} without {r['without_steps_per_s']:8.1f} steps/s  "
            f"with {r['with_steps_per_s']:8.1f} steps/s  ratio {r['ratio_median']:.3f}  "
            f"(per repeat {r['ratios']})"
        )
    result = {
        "benchmark": "imitation_cost",
        "command": f"python benchmarks/imitation_cost.py --env {args.env} --steps {args.steps} "
        f"--repeats {args.repeats}",
        "env": args.env,
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
