"""The persistent response cache: hits and misses, keys, several processes at once."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import sqlite3

import pytest

from tutorl.llm import CachedLLM, GenerateRequest, ResponseCache, ScoreRequest
from tutorl.llm.cache import default_cache_path, request_key


class CountingLLM:
    """A deterministic stand-in model that counts what reaches it."""

    def __init__(self, identity: str = "fake:model") -> None:
        self.identity = identity
        self.score_calls: list[int] = []  # batch sizes
        self.generate_calls: list[int] = []

    def score(self, requests):
        self.score_calls.append(len(requests))
        return [[-float(len(r.text) + i) for i in range(len(r.choices))] for r in requests]

    def generate(self, requests):
        self.generate_calls.append(len(requests))
        return [f"{r.text}|{r.seed}|{r.temperature}" for r in requests]


def _req(text: str = "state", choices=("a", "b")) -> ScoreRequest:
    return ScoreRequest("instructions\n", text, tuple(choices))


def test_hit_and_miss(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    llm = CountingLLM()
    cached = CachedLLM(llm, cache)
    first = cached.score([_req("s1"), _req("s2")])
    assert (cache.hits, cache.misses) == (0, 2)
    second = cached.score([_req("s1"), _req("s2")])
    assert second == first
    assert (cache.hits, cache.misses) == (2, 2)
    assert llm.score_calls == [2]  # the repeat never reached the model
    gen = cached.generate([GenerateRequest("p", "t")])
    assert cached.generate([GenerateRequest("p", "t")]) == gen
    assert llm.generate_calls == [1]
    assert cached.identity == llm.identity


def test_batch_duplicates_reach_the_model_once(tmp_path):
    llm = CountingLLM()
    cached = CachedLLM(llm, ResponseCache(tmp_path / "c.sqlite"))
    out = cached.score([_req("x"), _req("y"), _req("x")])
    assert out[0] == out[2]
    assert llm.score_calls == [2]


def test_persistent_across_instances(tmp_path):
    path = tmp_path / "c.sqlite"
    CachedLLM(CountingLLM(), ResponseCache(path)).score([_req("s")])
    llm = CountingLLM()
    cache = ResponseCache(path)
    CachedLLM(llm, cache).score([_req("s")])
    assert llm.score_calls == []
    assert cache.hits == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_keys_differ_by_model_prompt_and_settings():
    base = _req("s").cache_payload()
    k = request_key("score", "m1", base)
    assert k == request_key("score", "m1", dict(base))
    assert k != request_key("score", "m2", base)  # model identity
    assert k != request_key("generate", "m1", base)  # kind
    assert k != request_key("score", "m1", _req("t").cache_payload())  # state text
    assert k != request_key("score", "m1", ScoreRequest("other\n", "s", ("a", "b")).cache_payload())
    assert k != request_key("score", "m1", _req("s", ("a", "c")).cache_payload())  # choices
    assert k != request_key("score", "m1", _req("s", ("b", "a")).cache_payload())  # order
    g = GenerateRequest("p", "t")
    keys = {
        request_key("generate", "m1", r.cache_payload())
        for r in (
            g,
            GenerateRequest("p", "t", temperature=0.7),
            GenerateRequest("p", "t", seed=1),
            GenerateRequest("p", "t", max_tokens=65),
            GenerateRequest("p", "t", stop=("\n",)),
            GenerateRequest("p", "t", response_prefix="<action>"),
        )
    }
    assert len(keys) == 6


def test_different_models_do_not_share_entries(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    a, b = CountingLLM("fake:a"), CountingLLM("fake:b")
    CachedLLM(a, cache).score([_req()])
    CachedLLM(b, cache).score([_req()])
    assert a.score_calls == [1] and b.score_calls == [1]


def test_request_validation():
    with pytest.raises(ValueError):
        ScoreRequest("p", "t", ())
    with pytest.raises(ValueError):
        ScoreRequest("p", "t", ("a", "a"))
    with pytest.raises(ValueError):
        ScoreRequest("p", "t", ("a", ""))
    with pytest.raises(ValueError):
        GenerateRequest("p", "t", max_tokens=0)
    with pytest.raises(ValueError):
        GenerateRequest("p", "t", temperature=-1.0)
    assert ScoreRequest("p", "t", ["a", "b"]).choices == ("a", "b")  # lists are accepted


def test_default_path_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TUTORL_CACHE", str(tmp_path / "x.sqlite"))
    assert default_cache_path() == tmp_path / "x.sqlite"
    assert ResponseCache().path == str(tmp_path / "x.sqlite")


def test_picklable(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("k", [1.0, 2.0])
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.get("k") == [1.0, 2.0]


def _writer(path: str, worker: int, n: int) -> None:
    llm = CountingLLM()
    cached = CachedLLM(llm, ResponseCache(path))
    for i in range(n):
        # Half the keys are private to this worker, half are shared with the other one.
        cached.score([_req(f"w{worker}-{i}"), _req(f"shared-{i}")])


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ResponseCache(path)  # create the schema first
    n = 150
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():  # pragma: no cover - bounded: never hang the suite
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    cache = ResponseCache(path)
    assert len(cache) == 3 * n  # 2n private + n shared: nothing lost
    llm = CountingLLM()
    again = CachedLLM(llm, cache)
    for w in range(2):
        for i in range(0, n, 17):
            again.score([_req(f"w{w}-{i}"), _req(f"shared-{i}")])
    assert llm.score_calls == []
