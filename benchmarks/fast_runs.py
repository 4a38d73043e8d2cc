"""Fast runs: Connect Four off PettingZoo's hot path, the compiled expert, concurrent endpoints.

Measured side by side in one run, as ratios:

1. **Connect Four env steps/s and the expert's cost per ask**: today's bitboard env and
   compiled expert against the code they replaced (commit f70bb99: PettingZoo's AEC game and
   the pure-Python search, loaded from git into this process) and against
   ``backend=pettingzoo``.
2. **Training steps/s**: Connect Four PPO (MaskablePPO), untutored and expert-tutored, before
   (f70bb99's game) and after; then every game x algorithm, untutored and expert-tutored,
   after. The student, schedule and advisor are what ``tutorl train`` builds; only
   ``model.learn`` is timed. Repeats are interleaved so that load on the machine hits every
   arm alike.
3. **Endpoint seconds per vectorised step** against a local fake OpenAI-compatible endpoint
   that answers every request after a fixed delay and serves requests in parallel, for 1, 4,
   8 and 16 asking envs, with ``--llm-concurrency 1`` (one request after another, as before)
   and the default 8.

Run (from a git checkout: part 1 and 2 read commit f70bb99 with ``git show``):

    python benchmarks/fast_runs.py [--steps 10000] [--repeats 2] [--delay 0.1]

Writes benchmarks/results/fast_runs.json and prints the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs import connect_four as cf
from tutorl.envs import get_game, register
from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import attach_advisor
from tutorl.rl.train import configure_threads
from tutorl.specs import DEFAULT_N_ENVS
from tutorl.tutor import AdviceSchedule, Advisor
from tutorl.tutor.tutors import make_tutor

BEFORE = "f70bb99"
ROOT = Path(__file__).resolve().parents[1]


def load_before() -> object:
    """The Connect Four module of commit f70bb99 (PettingZoo env, pure-Python search)."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:src/tutorl/envs/connect_four.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "connect_four_f70bb99.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("connect_four_f70bb99", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register(dataclasses.replace(module.GAME, name="connect_four_f70bb99"))
    return module


# ------------------------------------------------------------------------------------------
# 1. env steps and expert asks
# ------------------------------------------------------------------------------------------


def env_us_per_step(make, games: int = 300) -> float:
    env, n = make(), 0
    start = time.perf_counter()
    for seed in range(games):
        env.reset(seed=seed)
        done = False
        while not done:
            legal = np.flatnonzero(env.action_masks())
            _, _, done, _, _ = env.step(int(legal[(n * 5) % len(legal)]))
            n += 1
    return (time.perf_counter() - start) / n * 1e6


def positions(games: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    env, out = cf.ConnectFourEnv(), []
    for seed in range(games):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            out.append(obs)
            obs, _, done, _, _ = env.step(int(rng.choice(cf.legal_actions(obs))))
    return out


def expert_us_per_ask(expert, clear, views: list[np.ndarray]) -> float:
    clear()  # no position cache: every ask searches
    start = time.perf_counter()
    for view in views:
        expert(view)
    return (time.perf_counter() - start) / len(views) * 1e6


# ------------------------------------------------------------------------------------------
# 2. training steps/s
# ------------------------------------------------------------------------------------------


def training_steps_per_second(env_name: str, algo: str, tutored: bool, steps: int) -> float:
    game = get_game(env_name)
    env = make_vec_env(lambda: game.make(**game.options), n_envs=DEFAULT_N_ENVS[algo], seed=0)
    model = make_model(algo, game, env, 0)
    if tutored:
        tutor = make_tutor("expert", game, seed=1)
        schedule = AdviceSchedule(1.0, 0.1, max(1, steps // 5))  # tutorl train's default
        attach_advisor(model, game, Advisor(game, tutor, schedule, seed=2), None)
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------------
# 3. endpoint seconds per vectorised step
# ------------------------------------------------------------------------------------------


class FakeEndpoint:
    """OpenAI-compatible completions that answer " hit" after ``delay`` s, in parallel."""

    def __init__(self, delay: float) -> None:
        answer = {"choices": [{"text": " hit", "logprobs": {"top_logprobs": [{" hit": -0.2}]}}]}
        data = json.dumps(answer).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def endpoint_seconds_per_step(url: str, n_envs: int, concurrency: int, repeats: int) -> float:
    from tutorl.llm.spec import LLMSpec, LLMTutorSpec

    game = get_game("blackjack")
    llm = LLMSpec(model="fake", url=url, cache=False, concurrency=concurrency)
    tutor = LLMTutorSpec(llm=llm).make(game)
    views = [np.array([12 + i % 9, 2 + i % 9, i % 2]) for i in range(n_envs)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        advice = tutor.advise(views)
        times.append(time.perf_counter() - start)
        assert all(a.source == "llm" for a in advice), advice
    tutor.llm.close() if hasattr(tutor.llm, "close") else None
    return statistics.median(times)


# ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="training steps per arm")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.1, help="fake endpoint delay, s")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results/fast_runs.json"))
    args = parser.parse_args()
    configure_threads()
    before = load_before()
    result: dict = {
        "command": "python benchmarks/fast_runs.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "before": BEFORE,
    }

    # 1.
    cf.expert(cf.ConnectFourEnv().reset(seed=0)[0])  # compile / load the search first
    env_rows = {
        "before (f70bb99: PettingZoo)": env_us_per_step(lambda: before.ConnectFourEnv()),
        "backend=pettingzoo": env_us_per_step(lambda: cf.ConnectFourEnv(backend="pettingzoo")),
        "bitboard (default)": env_us_per_step(lambda: cf.ConnectFourEnv()),
    }
    views = positions()
    ask_rows = {
        "before (f70bb99: Python)": expert_us_per_ask(
            before.expert, before._expert_move.cache_clear, views
        ),
        "compiled": expert_us_per_ask(cf.expert, cf._expert_move.cache_clear, views),
    }
    result["env_us_per_step"] = env_rows
    result["expert_us_per_ask"] = {"positions": len(views), **ask_rows}
    print("Connect Four env, µs per agent step (greedy opponent):")
    for name, value in env_rows.items():
        print(f"  {name:32s} {value:8.1f}")
    print(f"Connect Four expert, µs per ask ({len(views)} positions, no position cache):")
    for name, value in ask_rows.items():
        print(f"  {name:32s} {value:8.1f}")

    # 2. Connect Four PPO before/after, interleaved
    cells = [
        (env, tutored)
        for env in ("connect_four_f70bb99", "connect_four")
        for tutored in (False, True)
    ]
    runs: dict = {cell: [] for cell in cells}
    for _ in range(args.repeats):
        for cell in cells:
            runs[cell].append(training_steps_per_second(cell[0], "ppo", cell[1], args.steps))
    sps = {
        f"{env} {'expert' if tutored else 'none'}": statistics.median(values)
        for (env, tutored), values in runs.items()
    }
    untutored_before = sps["connect_four_f70bb99 none"]
    cf_table = {
        "steps": args.steps,
        "steps_per_second": sps,
        "untutored_after_over_before": sps["connect_four none"] / untutored_before,
        "tutored_over_untutored_before": sps["connect_four_f70bb99 expert"] / untutored_before,
        "tutored_over_untutored_after": sps["connect_four expert"] / sps["connect_four none"],
    }
    result["connect_four_ppo"] = cf_table
    print(f"Connect Four PPO, training steps/s ({args.steps} steps, median of {args.repeats}):")
    for name, value in sps.items():
        print(f"  {name:32s} {value:8.1f}")
    for key in ("untutored_after_over_before", "tutored_over_untutored_before"):
        print(f"  {key:32s} {cf_table[key]:8.2f}")
    print(f"  {'tutored_over_untutored_after':32s} {cf_table['tutored_over_untutored_after']:8.2f}")

    matrix = {}
    for env in ("blackjack", "snake", "connect_four"):
        for algo in ("dqn", "ppo", "a2c"):
            none = training_steps_per_second(env, algo, False, args.steps // 2)
            expert = training_steps_per_second(env, algo, True, args.steps // 2)
            matrix[f"{env} {algo}"] = {"none": none, "expert": expert, "ratio": expert / none}
    result["training_steps_per_second"] = {"steps": args.steps // 2, "arms": matrix}
    print(f"Training steps/s after ({args.steps // 2} steps each), untutored vs expert-tutored:")
    for name, row in matrix.items():
        print(f"  {name:20s} {row['none']:8.1f} {row['expert']:8.1f}  ratio {row['ratio']:.2f}")

    # 3.
    endpoint = FakeEndpoint(args.delay)
    rows = []
    for n_envs in (1, 4, 8, 16):
        row = {"asking_envs": n_envs}
        for concurrency in (1, 8):
            row[f"concurrency_{concurrency}"] = endpoint_seconds_per_step(
                endpoint.url, n_envs, concurrency, repeats=3
            )
        rows.append(row)
    endpoint.close()
    result["endpoint_seconds_per_step"] = {"delay": args.delay, "rows": rows}
    print(f"Endpoint seconds per vectorised step ({args.delay:g} s parallel fake endpoint):")
    print("  asking envs  concurrency 1  concurrency 8")
    for row in rows:
        one, eight = row["concurrency_1"], row["concurrency_8"]
        print(f"  {row['asking_envs']:11d}  {one:13.3f}  {eight:13.3f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
