"""OpenAI-compatible HTTP backend (llama-cpp-python's server, Ollama, vLLM, hosted APIs).

``score`` asks the **completions** endpoint for one token with its top-K log-probabilities
(``max_tokens=1, logprobs=K``; llama.cpp's server supports it) on the raw prompt
(``prompt_format``, default raw text). If that endpoint is missing or returns no
log-probabilities, it falls back to **chat completions** with ``logprobs=true,
top_logprobs=K`` (the server applies the model's chat template).

Over HTTP only token *strings* are visible, so a choice is matched to the longest top-K token
that is a prefix of the choice's remaining text (choices must therefore be written as the
model would continue the prompt, leading space included if the prompt has none). When
several choices match the same token, the completions path extends the prompt by that token
and asks again, as the in-process backend does (see :mod:`tutorl.llm.base`); the chat path
cannot extend, so choices sharing a first token share its probability equally.
A choice missing from the top-K gets a *floor*: the probability mass outside the top-K split
evenly among the missing choices, capped by the smallest top-K probability (the true value
is no larger), so scores stay finite and their exponentials still sum to at most 1.

``generate`` uses chat completions (the server's chat template), or the completions endpoint
with ``prompt_format`` when a request has a ``response_prefix`` (chat cannot portably
pre-fill the assistant's answer).

A request's ``json_schema`` asks the endpoint for structured output, trying in turn:

* chat: ``response_format={"type": "json_schema", "json_schema": {"name", "schema",
  "strict": true}}`` (OpenAI, vLLM, Ollama, llama.cpp's C++ server), then
  ``response_format={"type": "json_object", "schema": ...}`` (llama-cpp-python's server, whose
  request model only knows ``text``/``json_object``: it rejects the first form), then
  nothing;
* completions: ``grammar=<GBNF>``, the schema converted on this side with llama.cpp's own
  converter (both llama.cpp servers constrain decoding with it), then nothing.

A form the endpoint rejects (HTTP 400 or 422, or a 500 whose message names the field: that is
how llama-cpp-python's server reports request-validation errors) is dropped at once, without
the usual retries, and the request sent again with the next form; the first form that works is
remembered in :attr:`OpenAICompatibleLLM.structured_output` for later requests. A form that
fails for another reason (401, a timeout) raises as usual and changes nothing. An endpoint that
silently ignores the field returns unconstrained text, which is why callers validate every
answer.

Every request has a **total deadline** (``timeout`` seconds, retries included): the answer is
read as a stream and the request is cut when the deadline passes, so a server that drips one
byte at a time cannot hold it longer than a silent one (httpx's own timeouts bound each read, not
the whole answer).

The requests of one call (the states of one vectorised step) are sent **concurrently**, up to
``concurrency`` at a time, and the answers returned in order. Servers that handle one request
at a time gain nothing from it; llama-cpp-python's server must get ``concurrency=1`` (it is
meant for one client, see the README).

When the choices share a first token (Connect Four's " column 0" ... " column 6"), the
completions path asks for two tokens: if the model's own first token is that shared one, the
second position's top-K already scores the continuations and no second round trip is needed.

Failures raise :class:`~tutorl.llm.base.LLMError` subclasses: connection errors, timeouts,
HTTP 429 and 5xx are retried a bounded number of times with exponential backoff within the
deadline, then raise :class:`~tutorl.llm.base.LLMUnavailableError`; HTTP 4xx and malformed
answers raise :class:`~tutorl.llm.base.LLMResponseError` at once. The API key is read from an
environment variable (its *name* is configurable), sent only as a Bearer header, and never
appears in a repr, an exception message or a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tutorl.llm.base import (
    GenerateRequest,
    LLMError,
    LLMResponseError,
    LLMUnavailableError,
    PromptFormat,
    RawFormat,
    ScoreRequest,
    safe_log,
)

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
#: Statuses meaning "this request's form is not accepted" (FastAPI-based servers send 422).
_REJECTED_STATUS = {400, 422}
#: Structured-output forms tried in order, per endpoint (see the module docstring).
_STRUCTURED_FORMS = {
    "chat": ("json_schema", "json_object", "none"),
    "completions": ("grammar", "none"),
}


class OpenAICompatibleLLM:
    """A model behind an OpenAI-compatible HTTP API.

    :param base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"`` or
        ``"http://localhost:11434/v1"`` (Ollama).
    :param model: The endpoint's model name (e.g. an Ollama tag, ``"llama3.1:8b"``).
    :param api_key_env: *Name* of the environment variable holding the API key, read at each
        request and never stored; no key is sent if it is unset or empty.
    :param timeout: Total deadline of one request in seconds, its retries included: no
        request, however slowly its answer arrives, takes longer.
    :param connect_timeout: Seconds for opening the connection (per attempt).
    :param max_retries: Retries after the first attempt on connection errors, timeouts,
        429 and 5xx (so at most ``max_retries + 1`` attempts), while the deadline allows.
    :param concurrency: How many requests of one call are in flight at once (1: one after
        another, for servers that serialise requests, such as llama-cpp-python's).
    :param backoff: First retry delay in seconds; doubles each retry, capped at 8 s.
    :param top_logprobs: K, how many alternatives the endpoint returns per position.
    :param score_endpoint: ``"auto"`` (completions, falling back to chat), ``"completions"``
        or ``"chat"``.
    :param prompt_format: How the completions endpoint's prompt is built (default raw
        ``prefix + text``); pass a :class:`~tutorl.llm.base.ChatTemplateFormat` to apply an
        instruct model's template on the client side.
    :param transport: An ``httpx`` transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        top_logprobs: int = 20,
        score_endpoint: str = "auto",
        prompt_format: PromptFormat | None = None,
        concurrency: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
        if score_endpoint not in ("auto", "completions", "chat"):
            raise ValueError(
                f"score_endpoint must be auto|completions|chat, got {score_endpoint!r}"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.score_endpoint = score_endpoint
        self.prompt_format: PromptFormat = prompt_format or RawFormat()
        self.identity = f"openai:{self.base_url}:{model}:{self.prompt_format.name}"
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.concurrency = int(concurrency)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            follow_redirects=False,
            # enough pooled connections for the concurrent requests of one call
            limits=httpx.Limits(max_connections=max(10, self.concurrency)),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        #: Counters: HTTP attempts, retries, failures raised, structured-output forms the
        #: endpoint rejected (each followed by a retry with the next form).
        self.stats = {"requests": 0, "retries": 0, "failures": 0, "structured_rejected": 0}
        #: The structured-output form used for requests with a ``json_schema``, per endpoint:
        #: starts at the most standard one and moves down when the endpoint rejects it (set a
        #: value to ``"none"`` to never send one).
        self.structured_output = {kind: forms[0] for kind, forms in _STRUCTURED_FORMS.items()}

    def _api_key(self) -> str | None:
        # Read at each request and never stored: no attribute, repr, pickle or file can hold it.
        return os.environ.get(self.api_key_env) or None

    def __repr__(self) -> str:
        key = "set" if self._api_key() else "unset"
        return (
            f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r} ({key}))"
        )

    def close(self) -> None:
        """Close the HTTP connection pool (and the threads sending concurrent requests)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._client.close()

    def _count(self, key: str) -> None:
        with self._lock:  # requests of one call run in several threads
            self.stats[key] += 1

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, up to ``concurrency`` at a time, answers in order; the
        first failure (in order) is raised once every request has ended."""
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="tutorl-http")
        futures = [self._pool.submit(fn, x) for x in items]
        for future in futures:
            future.exception()  # wait for all, so no request outlives the call
        return [future.result() for future in futures]

    # ---------------------------------------------------------------- HTTP with retries

    def _redact(self, text: str) -> str:
        key = self._api_key()
        if key:
            text = text.replace(key, "***")
        return text

    def _post(self, path: str, body: dict[str, Any], rejects: str | None = None) -> dict[str, Any]:
        """POST with bounded retries, all within the request's deadline.

        :param rejects: Name of an optional body field being tried: an answer saying the
            request was not accepted (HTTP 400/422, or a 500 that names the field, which is
            how llama-cpp-python's server reports a validation error) raises
            :class:`_FormRejected` at once, without retries.
        """
        url = f"{self.base_url}{path}"
        headers = {"Content-Type": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            self._count("requests")
            problem: str
            try:
                status, text = self._send(url, body, headers, deadline)
            except _DeadlinePassed:
                problem = f"no complete answer within the {self.timeout:g} s deadline"
            except httpx.TimeoutException as exc:
                problem = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                if status < 400:
                    return self._parse_json(text, url)
                message = self._redact(f"POST {url}: HTTP {status}: {_excerpt(text)}")
                if rejects is not None and _rejected(status, text, rejects):
                    self._count("structured_rejected")
                    raise _FormRejected(status, message)
                if status not in _RETRY_STATUS:
                    self._count("failures")
                    raise _HTTPStatus(status, message)
                problem = f"HTTP {status}"
            pause = min(self.backoff * 2**attempt, 8.0)
            if attempt >= self.max_retries or time.monotonic() + pause >= deadline:
                self._count("failures")
                # "from None": the httpx exception holds the request, whose headers hold the key.
                raise LLMUnavailableError(
                    self._redact(f"POST {url}: {problem} after {attempt + 1} attempt(s)")
                ) from None
            time.sleep(pause)
            attempt += 1
            self._count("retries")

    def _send(
        self, url: str, body: dict[str, Any], headers: dict[str, str], deadline: float
    ) -> tuple[int, str]:
        """One attempt: ``(status, body text)``, cut when ``deadline`` passes.

        The answer is read as a stream so that the deadline is checked between chunks; each
        read also times out at the deadline, so a silent server is cut the same way.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed
        timeout = httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining))
        chunks = []
        with self._client.stream("POST", url, json=body, headers=headers, timeout=timeout) as r:
            # A read waits up to the time left when the attempt started; a watchdog closes the
            # stream at the deadline itself, so a byte just before it buys no extra wait.
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (r,))
            watchdog.daemon = True
            watchdog.start()
            try:
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise _DeadlinePassed
            except (httpx.StreamError, httpx.TransportError):
                if time.monotonic() >= deadline:
                    raise _DeadlinePassed from None
                raise
            finally:
                watchdog.cancel()
            return r.status_code, b"".join(chunks).decode("utf-8", errors="replace")

    def _parse_json(self, text: str, url: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except ValueError:
            self._count("failures")
            raise LLMResponseError(
                self._redact(f"POST {url}: answer is not JSON: {_excerpt(text)}")
            ) from None
        if not isinstance(data, dict):
            self._count("failures")
            raise LLMResponseError(f"POST {url}: answer is not a JSON object")
        return data

    # ---------------------------------------------------------------- scoring

    def _completion_tops(self, prompt: str, n_tokens: int) -> list[tuple[str, dict[str, float]]]:
        """The model's greedy tokens after ``prompt`` with the top-K log-probabilities at each
        of their positions: ``[(token, top), ...]``, at least the first position."""
        data = self._post(
            "/completions",
            {
                "model": self.model,
                "prompt": prompt,
                "max_tokens": n_tokens,
                "temperature": 0.0,
                "logprobs": self.top_logprobs,
                "seed": 0,
            },
        )
        try:
            logprobs = data["choices"][0]["logprobs"]
            tops = logprobs["top_logprobs"]
            first = tops[0] if tops else None
            if not isinstance(first, dict) or not first:
                raise TypeError("empty top_logprobs")
            out = [("", _merge({str(t): float(v) for t, v in first.items()}))]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise _NoLogprobs("completions answer has no usable logprobs.top_logprobs") from None
        # Later positions are a bonus (they save a round trip): use them only when well formed.
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        if isinstance(tokens, list) and len(tokens) == len(tops):
            for i in range(1, len(tops)):
                if not (isinstance(tokens[i - 1], str) and isinstance(tops[i], dict)):
                    break
                try:
                    top = _merge({str(t): float(v) for t, v in tops[i].items()})
                except (_NoLogprobs, TypeError, ValueError):
                    break
                out[i - 1] = (tokens[i - 1], out[i - 1][1])
                out.append(("", top))
        return out

    def _chat_top(self, request: ScoreRequest) -> dict[str, float]:
        data = self._post(
            "/chat/completions",
            {
                "model": self.model,
                "messages": [{"role": "user", "content": request.prefix + request.text}],
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
                "seed": 0,
            },
        )
        try:
            entries = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            pairs = [(str(e["token"]), float(e["logprob"])) for e in entries]
            if not pairs:
                raise TypeError("empty top_logprobs")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise _NoLogprobs(
                "chat answer has no usable logprobs.content[0].top_logprobs"
            ) from None
        out: dict[str, list[float]] = {}
        for token, lp in pairs:
            out.setdefault(token, []).append(lp)
        return _merge({t: _logsumexp(v) for t, v in out.items()})

    def _score_completions(self, request: ScoreRequest) -> list[float]:
        prompt = self.prompt_format.render(request.prefix, request.text, request.response_prefix)
        choices = request.choices
        scores = [0.0] * len(choices)
        # Choices whose first word starts alike (" column 0", " column 1") probably share a
        # first token: ask for a second one, which scores the continuation whenever the model's
        # own first token is the shared one (else the walk below asks again).
        shared = len(choices) > 1 and len({c.lstrip()[:1] for c in choices}) == 1
        known: dict[str, dict[str, float]] = {}  # context -> top-K after prompt + context

        def top_after(context: str) -> dict[str, float]:
            if context not in known:
                walked = context
                for token, top in self._completion_tops(prompt + context, 2 if shared else 1):
                    known[walked] = top
                    if not token:
                        break
                    walked += token
            return known[context]

        def walk(context: str, idxs: list[int], ended: list[int], acc: float) -> None:
            top = top_after(context)
            remaining = {i: choices[i][len(context) :] for i in idxs}
            matched, missing = _match(remaining, top)
            if not context and not matched:
                raise _no_label(top, choices)
            if ended:  # see tutorl.llm.base: "stop here" = take none of the continuing tokens
                p_cont = sum(math.exp(top[t]) for t in matched)
                p_stop = max(0.0, 1.0 - p_cont) / len(ended)
                for i in ended:
                    scores[i] = acc + safe_log(p_stop)
            floor = _floor(top, len(missing))
            for i in missing:
                scores[i] = acc + floor
            for token, group in matched.items():
                acc_t = acc + top[token]
                if len(group) == 1:
                    scores[group[0]] = acc_t
                    continue
                done = [i for i in group if remaining[i] == token]
                more = [i for i in group if remaining[i] != token]
                if not more:  # pragma: no cover - distinct choices cannot all equal token
                    for i in done:
                        scores[i] = acc_t - math.log(len(done))
                    continue
                walk(context + token, more, done, acc_t)

        walk("", list(range(len(choices))), [], 0.0)
        return scores

    def _score_chat(self, request: ScoreRequest) -> list[float]:
        if request.response_prefix:
            raise LLMResponseError(
                "this endpoint gives no completions logprobs, and chat completions cannot "
                "score after a response_prefix"
            )
        # An assistant message may or may not start with the leading space a completion prompt
        # continues with: compare tokens and choices without it (merging " hit" and "hit").
        stripped: dict[str, list[float]] = {}
        for token, logprob in self._chat_top(request).items():
            stripped.setdefault(token.lstrip() or token, []).append(logprob)
        top = {token: _logsumexp(values) for token, values in stripped.items()}
        choices = tuple(c.lstrip() or c for c in request.choices)
        matched, missing = _match(dict(enumerate(choices)), top)
        if not matched:
            raise _no_label(top, choices)
        scores = [0.0] * len(choices)
        floor = _floor(top, len(missing))
        for i in missing:
            scores[i] = floor
        for token, group in matched.items():
            for i in group:
                scores[i] = top[token] - math.log(len(group))
        return scores

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Log-probability of each choice (see the module docstring for HTTP specifics)."""
        return self._map(self._score_request, requests)

    def _score_request(self, request: ScoreRequest) -> list[float]:
        if self.score_endpoint in ("auto", "completions"):
            try:
                return self._score_completions(request)
            except (_NoLogprobs, _HTTPStatus) as exc:
                endpoint_missing = isinstance(exc, _NoLogprobs) or exc.status in (404, 405, 501)
                if self.score_endpoint == "completions" or not endpoint_missing:
                    raise LLMResponseError(str(exc)) from None
                # Remember: later requests go straight to chat.
                self.score_endpoint = "chat"
        try:
            return self._score_chat(request)
        except _NoLogprobs as exc:
            raise LLMResponseError(f"{self.base_url}: {exc}; cannot score choices") from None
        except _HTTPStatus as exc:
            raise LLMResponseError(str(exc)) from None

    # ---------------------------------------------------------------- generation

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Generated text per request (chat completions; see the module docstring)."""
        return self._map(self._generate_one, requests)

    def _structured_fields(self, form: str, schema: str) -> dict[str, Any] | None:
        """The body fields of one structured-output form, or None if it cannot be built."""
        if form == "none":
            return {}
        if form == "grammar":
            try:
                from llama_cpp.llama_grammar import json_schema_to_gbnf

                return {"grammar": json_schema_to_gbnf(schema)}
            except Exception:  # no llama-cpp-python, or a schema its converter cannot handle
                return None
        parsed = json.loads(schema)
        if form == "json_object":
            return {"response_format": {"type": "json_object", "schema": parsed}}
        title = parsed.get("title") if isinstance(parsed.get("title"), str) else ""
        name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "response"
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": parsed, "strict": True},
            }
        }

    def _post_structured(
        self, kind: str, path: str, body: dict[str, Any], schema: str | None
    ) -> dict[str, Any]:
        """POST ``body``, with the endpoint's structured-output form when there is a schema."""
        if schema is None:
            return self._post(path, body)
        forms = _STRUCTURED_FORMS[kind]
        current = self.structured_output.get(kind, forms[0])
        start = forms.index(current) if current in forms else len(forms) - 1
        for form in forms[start:]:
            fields = self._structured_fields(form, schema)
            if fields is None:
                continue
            field = next(iter(fields), None)  # the one field this form adds (none: no field)
            try:
                data = self._post(path, {**body, **fields}, rejects=field)
            except _FormRejected:
                continue  # try the next form
            self.structured_output[kind] = form
            return data
        raise AssertionError("unreachable: the last form is 'none'")  # pragma: no cover

    def _generate_one(self, r: GenerateRequest) -> str:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": r.max_tokens,
            "temperature": r.temperature,
            "seed": r.seed,
        }
        if r.stop:
            common["stop"] = list(r.stop)
        try:
            if r.response_prefix:
                prompt = self.prompt_format.render(r.prefix, r.text, r.response_prefix)
                body = {**common, "prompt": prompt}
                data = self._post_structured("completions", "/completions", body, r.json_schema)
                text = data["choices"][0]["text"]
            else:
                messages = [{"role": "user", "content": r.prefix + r.text}]
                body = {**common, "messages": messages}
                data = self._post_structured("chat", "/chat/completions", body, r.json_schema)
                text = data["choices"][0]["message"]["content"]
        except _HTTPStatus as exc:
            raise LLMResponseError(str(exc)) from None
        except (KeyError, IndexError, TypeError, AttributeError):
            self._count("failures")
            raise LLMResponseError(
                f"{self.base_url}: generation answer lacks choices[0] text"
            ) from None
        if text is None:
            text = ""  # e.g. a reasoning model whose whole budget went to hidden thinking
        if not isinstance(text, str):
            self._count("failures")
            raise LLMResponseError(f"{self.base_url}: generated text is not a string")
        return text


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _cut(response: httpx.Response) -> None:
    """Interrupt a response still being read: shutting its socket down wakes a read blocked in
    another thread (closing the response alone does not)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


class _DeadlinePassed(Exception):
    """Internal: the request's total deadline passed while its answer was still arriving."""


class _NoLogprobs(LLMError):
    """Internal: the answer had no usable log-probabilities (maybe try another endpoint)."""


class _HTTPStatus(LLMResponseError):
    """Internal: a non-retryable HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _FormRejected(_HTTPStatus):
    """Internal: the endpoint did not accept an optional field (a structured-output form)."""


def _rejected(status: int, text: str, field: str) -> bool:
    """Whether an error answer says the request's optional ``field`` was not accepted."""
    if status in _REJECTED_STATUS:
        return True
    # llama-cpp-python's server answers a request-validation error with HTTP 500 whose
    # message names the offending field; a genuine server error does not name it.
    return status == 500 and f"'{field}'" in text


def _excerpt(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


def _logsumexp(values: list[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(v - m) for v in values))


def _merge(top: dict[str, float]) -> dict[str, float]:
    """Drop empty or non-finite entries (they cannot match a choice)."""
    # An endpoint's numbers are untrusted too: drop non-finite ones, clamp to log(1) = 0.
    out = {t: min(float(v), 0.0) for t, v in top.items() if t and math.isfinite(v)}
    if not out:
        raise _NoLogprobs("top_logprobs has no usable entry")
    return out


def _match(
    remaining: dict[int, str], top: dict[str, float]
) -> tuple[dict[str, list[int]], list[int]]:
    """Group choices by the longest top token that prefixes their remaining text."""
    matched: dict[str, list[int]] = {}
    missing: list[int] = []
    for i, rest in remaining.items():
        best = max((t for t in top if rest.startswith(t)), key=len, default=None)
        if best is None:
            missing.append(i)
        else:
            matched.setdefault(best, []).append(i)
    return matched, missing


def _no_label(top: dict[str, float], choices: Sequence[str]) -> LLMResponseError:
    """No choice starts any of the endpoint's top tokens: there is no evidence for any legal
    action. Scoring every choice at the floor would fabricate a uniform distribution that the
    tutor then executes as advice (and the cache keeps); instead the request fails, is counted
    and falls back to the student's action, and nothing is cached."""
    shown = ", ".join(repr(t) for t in list(top)[:5])
    return LLMResponseError(
        f"no legal label among the endpoint's {len(top)} most likely tokens "
        f"({shown}{', ...' if len(top) > 5 else ''}); labels: {', '.join(map(repr, choices))}"
    )


def _floor(top: dict[str, float], n_missing: int) -> float:
    """Log-probability given to each of ``n_missing`` choices absent from the top-K."""
    if n_missing == 0:
        return 0.0
    probs = [math.exp(v) for v in top.values()]
    outside = max(0.0, 1.0 - sum(probs))
    return safe_log(min(min(probs), outside / n_missing))
