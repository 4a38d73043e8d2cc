"""Cost of the advice hook: training steps per second of tutored SB3 with a zero-cost tutor,
against plain SB3 on the same env, seed and hyper-parameters.

The tutor (``ConstantTutor``) answers instantly, so any slowdown is the hook's own: the advisor's
per-step bookkeeping, the schedule's coin flips and, for PPO/A2C, replacing actions and taking
their log-probabilities from the already-built distribution. The schedule is the default one
(asking decays from 1.0 to 0.1 over the first 20% of the run), so most early steps are advised.
Agreement with the expert is not judged here (``judge=False``): that is a measurement the run
chooses to pay for, not the hook's cost.

Run:  python benchmarks/hook_overhead.py [--steps 20000] [--repeats 3]
Writes benchmarks/results/hook_overhead.json and prints a table. Target: ratio >= 0.9.
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
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs import get_game
from tutorl.rl.algorithms import DEFAULT_HYPERPARAMS, make_model
from tutorl.rl.hooks import attach_advisor
from tutorl.rl.train import configure_threads
from tutorl.specs import DEFAULT_N_ENVS
from tutorl.tutor import AdviceSchedule, Advisor, ConstantTutor

PLAIN = {"dqn": DQN, "ppo": PPO, "a2c": A2C}


def steps_per_second(
    algo: str, env_name: str, steps: int, tutored: bool, seed: int
) -> tuple[float, float]:
    """Training steps per second, and the share of training time spent inside the advisor."""
    game = get_game(env_name)
    env = make_vec_env(lambda: game.make(), n_envs=DEFAULT_N_ENVS[algo], seed=seed)
    params = DEFAULT_HYPERPARAMS[algo]
    advisor = None
    if tutored:
        model = make_model(algo, game, env, seed)
        schedule = AdviceSchedule(1.0, 0.1, steps // 5)
        advisor = Advisor(game, ConstantTutor(0), schedule, seed=seed, judge=False)
        attach_advisor(model, game, advisor)
    else:
        model = PLAIN[algo]("MlpPolicy", env, seed=seed, device="cpu", **params)
    start = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - start
    share = advisor.stats.advisor_seconds / elapsed if advisor else 0.0
    return steps / elapsed, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="snake")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results/hook_overhead.json"))
    args = parser.parse_args()
    configure_threads()

    rows = []
    for algo in ("dqn", "ppo", "a2c"):
        plain, tutored, shares = [], [], []
        for repeat in range(args.repeats):
            # Interleave the two so that background load affects both alike.
            plain.append(steps_per_second(algo, args.env, args.steps, False, repeat)[0])
            speed, share = steps_per_second(algo, args.env, args.steps, True, repeat)
            tutored.append(speed)
            shares.append(share)
        ratios = np.array(tutored) / np.array(plain)
        rows.append(
            {
                "algo": algo,
                "plain_steps_per_s": round(float(np.median(plain)), 1),
                "tutored_steps_per_s": round(float(np.median(tutored)), 1),
                "ratio_median": round(float(np.median(ratios)), 3),
                "ratios": [round(float(r), 3) for r in ratios],
                # Robust to background load: the hook's own share of the tutored run's time.
                "advisor_time_share": round(float(np.median(shares)), 4),
            }
        )
        print(
            f"{algo:4s} plain {rows[-1]['plain_steps_per_s']:8.1f} steps/s  "
            f"tutored {rows[-1]['tutored_steps_per_s']:8.1f} steps/s  "
            f"ratio {rows[-1]['ratio_median']:.3f}  (per repeat {rows[-1]['ratios']})  "
            f"time in advisor {100 * rows[-1]['advisor_time_share']:.1f}%"
        )
    result = {
        "benchmark": "hook_overhead",
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
