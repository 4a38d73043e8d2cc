"""Seconds per LLM request for each installed embedded model.

For every installed embedded model: seconds per *uncached* ``score`` request with the fixed
instructions reused from the KV cache, the same without reuse (every prompt evaluated from
scratch), per *cached* request (a hit in the SQLite response cache), and per greedy
``generate`` of a few tokens. Writes ``benchmarks/results/llm_latency.json``.

    python benchmarks/llm_latency.py [--states 12] [--threads 2] [--models smollm2-135m ...]

Times are medians over distinct states on whatever else the machine is doing: read them as
upper bounds on a busy shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from tutorl.llm import CachedLLM, GenerateRequest, ResponseCache, ScoreRequest
from tutorl.llm.models import EMBEDDED_MODELS, installed, resolve_model

# About 150 tokens of fixed instructions, like a tutor's prompt.
PREFIX = (
    "You are an expert Blackjack player advising a student. The game follows the standard "
    "rules: the dealer draws until reaching 17 or more, an ace counts as 1 or 11, a natural "
    "pays the same as any other win, and the deck is infinite. The student sees its own sum, "
    "whether it holds a usable ace, and the dealer's face-up card. Its only actions are hit "
    "(take another card) and stick (stop taking cards). Going over 21 loses at once. Think "
    "about the probability that the dealer busts given the card it shows, and about the "
    "probability that another card makes the student bust. Answer with exactly one word.\n\n"
)
CHOICES = ("hit", "stick")


def _state(i: int) -> str:
    # About 40 tokens each, all different so that nothing is cached by accident.
    return (
        f"Game {i}. The student's cards sum to {12 + i % 9}. The dealer shows a "
        f"{2 + (i * 7) % 9}. The student {'holds' if i % 3 == 0 else 'does not hold'} a "
        f"usable ace. After {i % 4} earlier hits in this hand, what should the student do?"
    )


def _median_seconds(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(name: str, n_states: int, threads: int) -> dict[str, object]:
    from tutorl.llm.llamacpp import LlamaCppLLM

    t0 = time.perf_counter()
    path = resolve_model(name)
    resolve_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    llm = LlamaCppLLM(
        path, n_ctx=2048, n_threads=threads, name=name, sha256=EMBEDDED_MODELS[name].sha256
    )
    load_s = time.perf_counter() - t0
    prompt = llm.render(PREFIX, _state(0))
    n_prompt = len(llm.tokenize_prompt(prompt))
    # Tokens shared by two states' prompts: what the KV cache reuse saves per request.
    other = llm.tokenize_prompt(llm.render(PREFIX, _state(1)))
    first = llm.tokenize_prompt(prompt)
    pairs = enumerate(zip(first, other, strict=False))
    n_shared = next((i for i, (a, b) in pairs if a != b), len(first))
    requests = [ScoreRequest(PREFIX, _state(i), CHOICES) for i in range(3 * n_states + 1)]

    llm.score([requests[0]])  # warm-up; leaves the prefix in the KV cache
    reuse = _median_seconds(lambda r: llm.score([r]), requests[1 : n_states + 1])
    llm.reuse_prefix = False
    fresh = _median_seconds(lambda r: llm.score([r]), requests[n_states + 1 : 2 * n_states + 1])
    llm.reuse_prefix = True

    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLLM(llm, ResponseCache(Path(tmp) / "bench.sqlite"))
        batch = requests[2 * n_states + 1 :]
        cached.score(batch)  # fill
        hit = _median_seconds(lambda r: cached.score([r]), batch)
        assert cached.hits == len(batch)
        cached.cache.close()

    gens = [GenerateRequest(PREFIX, _state(i), max_tokens=8) for i in range(3)]
    generate = _median_seconds(lambda r: llm.generate([r]), gens)
    llm.close()
    return {
        "model": name,
        "prompt_format": llm.prompt_format.name,
        "prompt_tokens": n_prompt,
        "shared_prefix_tokens": n_shared,
        "states": n_states,
        "threads": threads,
        "resolve_seconds": round(resolve_s, 3),
        "load_seconds": round(load_s, 3),
        "score_uncached_prefix_reuse_s": round(reuse, 4),
        "score_uncached_no_reuse_s": round(fresh, 4),
        "score_cached_s": round(hit, 6),
        "generate_8_tokens_s": round(generate, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=list(EMBEDDED_MODELS))
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "llm_latency.json")
    )
    args = parser.parse_args()
    rows = []
    for name in args.models:
        if not installed(name):
            print(f"{name}: not installed ({EMBEDDED_MODELS[name].pip_install}), skipped")
            continue
        row = bench_model(name, args.states, args.threads)
        print(json.dumps(row))
        rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "results": rows,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
