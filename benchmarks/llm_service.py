"""What sharing one embedded model across a sweep's workers costs and saves.

Two worker processes score the same number of distinct states (uncached) with SmolLM2, either
each with its own in-process copy of the model (what runs did before sweeps) or both through one
:class:`~tutorl.llm.service.LLMService`. Reports the resident memory of the model copies, the
wall time for both workers' requests, and the median seconds per request. Writes
``benchmarks/results/llm_service.json``.

    python benchmarks/llm_service.py [--states 40] [--model smollm2-135m]

Measured on whatever else the machine is doing: read times as upper bounds on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from llm_latency import CHOICES, PREFIX, _state  # the same prompts as the latency benchmark


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _worker(mode: str, model: str, handle, offset: int, states: int, out) -> None:
    from tutorl.llm import ScoreRequest, make_llm

    llm = make_llm(model, cache=False, service=handle if mode == "service" else None)
    times = []
    for i in range(offset, offset + states):
        start = time.perf_counter()
        llm.score([ScoreRequest(PREFIX, _state(i), CHOICES)])
        times.append(time.perf_counter() - start)
    out.put((os.getpid(), _rss_mb(os.getpid()), times))


def _run(mode: str, model: str, states: int) -> dict:
    from tutorl.llm.service import LLMService

    context = multiprocessing.get_context("spawn")
    service = LLMService(model).start() if mode == "service" else None
    handle = service.handle() if service else None
    queue = context.Queue()
    start = time.perf_counter()
    workers = [
        context.Process(target=_worker, args=(mode, model, handle, k * states, states, queue))
        for k in range(2)
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    wall = time.perf_counter() - start
    for w in workers:
        w.join()
    memory = sum(rss for _, rss, _ in results)
    if service is not None:
        memory += _rss_mb(service._manager._process.pid)  # the one model copy
        service.stop()
    times = [t for _, _, ts in results for t in ts]
    return {
        "mode": mode,
        "resident_mb_workers_and_model": round(memory, 1),
        "wall_seconds": round(wall, 2),
        "median_seconds_per_request": round(statistics.median(times), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=40, help="distinct states per worker")
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    rows = [_run(mode, args.model, args.states) for mode in ("copies", "service")]
    record = {
        "benchmark": "llm_service",
        "model": args.model,
        "states_per_worker": args.states,
        "workers": 2,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": rows,
    }
    path = Path(__file__).parent / "results" / "llm_service.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    for row in rows:
        print(row)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
