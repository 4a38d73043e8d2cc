"""ULTRA critical-step identification: parsing untrusted answers, the re-ask pipeline with
scripted models, structured output through the LLM layer, and the real embedded model and
llama.cpp server constrained by the answer's JSON Schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

# The real llama.cpp server fixture, its API key and the scripted HTTP stub live with the HTTP
# backend's tests; importing them here starts this module's own server (module scope).
from test_llm_openai import KEY_ENV, SECRET, real_server, stub  # noqa: F401

from tutorl.envs import get_game
from tutorl.llm import CachedLLM, GenerateRequest, LLMError, LLMUnavailableError, ResponseCache
from tutorl.llm.cache import request_key
from tutorl.llm.openai import OpenAICompatibleLLM
from tutorl.ultra.identify import (
    MAX_RATIONALE,
    Identification,
    IdentificationError,
    build_prefix,
    build_text,
    identify,
    parse_identification,
    schema_for,
)

BLACKJACK = get_game("blackjack")

# A Blackjack episode in the text format of tutorl.ultra.text, written by hand.
CHUNK_TEXT = (
    "Episode 3 of blackjack, steps 1 to 3 (return -1).\n"
    "Step 1: Your hand totals 12 (no usable ace). The dealer shows a 6. Action: hit. Reward: +0.\n"
    "Step 2: Your hand totals 19 (no usable ace). The dealer shows a 6. Action: hit. Reward: +0.\n"
    "Step 3: Your hand totals 26 (no usable ace). The dealer shows a 6. Action: hit. "
    "Reward: -1.\n"
)
CHUNK = {"first_step": 1, "last_step": 3, "text": CHUNK_TEXT}

VALID = json.dumps(
    {
        "critical": [
            {"step": 2, "action": "stick", "reward": -0.9, "rationale": "19 against a 6."},
            {"step": 1, "action": "Hit", "reward": 0.2, "rationale": "12 can take a card."},
        ]
    }
)


def _answer(**item: object) -> str:
    base = {"step": 2, "action": "stick", "reward": -0.5, "rationale": "r"}
    return json.dumps({"critical": [{**base, **item}]})


def _conforms(value: object, schema: dict) -> bool:
    """A small JSON Schema check for the keywords :func:`schema_for` uses."""
    kind = schema.get("type")
    if "enum" in schema and value not in schema["enum"]:
        return False
    if kind == "object":
        if not isinstance(value, dict):
            return False
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(props):
            return False
        return all(_conforms(value[k], props[k]) for k in value if k in props)
    if kind == "array":
        return (
            isinstance(value, list)
            and len(value) <= schema.get("maxItems", len(value))
            and all(_conforms(v, schema["items"]) for v in value)
        )
    if kind == "string":
        return isinstance(value, str) and len(value) <= schema.get("maxLength", len(value))
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if kind == "integer" and not float(value).is_integer():
            return False
        return schema.get("minimum", value) <= value <= schema.get("maximum", value)
    return True


# ------------------------------------------------------------------------------------------
# Schema and request
# ------------------------------------------------------------------------------------------


def test_schema_is_small_and_bounded_to_the_chunk():
    schema = schema_for(BLACKJACK, 12, 20, max_critical=4)
    item = schema["properties"]["critical"]["items"]
    assert item["properties"]["action"]["enum"] == ["stick", "hit"]
    assert item["properties"]["step"]["enum"] == list(range(12, 21))
    assert item["properties"]["rationale"]["maxLength"] == MAX_RATIONALE
    assert schema["properties"]["critical"]["maxItems"] == 4
    assert list(item["properties"]) == ["step", "action", "reward", "rationale"]
    assert item["additionalProperties"] is False and schema["additionalProperties"] is False
    long = schema_for(BLACKJACK, 1, 1000)["properties"]["critical"]["items"]["properties"]
    assert long["step"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    connect = schema_for(get_game("connect_four"), 1, 3)
    assert "column 3" in connect["properties"]["critical"]["items"]["properties"]["action"]["enum"]
    with pytest.raises(ValueError):
        schema_for(BLACKJACK, 5, 4)
    with pytest.raises(ValueError):
        schema_for(BLACKJACK, 1, 4, max_critical=0)


def test_json_schema_is_canonical_and_keys_of_other_requests_do_not_change():
    schema = schema_for(BLACKJACK, 1, 3)
    a = GenerateRequest("p", "t", json_schema=json.dumps(schema, indent=2))
    b = GenerateRequest("p", "t", json_schema=json.dumps(schema))
    assert a.json_schema == b.json_schema and a.cache_payload() == b.cache_payload()
    assert list(json.loads(a.json_schema)) == list(schema)  # key order kept
    assert a.cache_payload()["json_schema"] == a.json_schema
    assert request_key("generate", "id", a.cache_payload()) != request_key(
        "generate", "id", GenerateRequest("p", "t").cache_payload()
    )
    # Keys computed with the code before json_schema existed (git HEAD at the time).
    plain = GenerateRequest("p", "t")
    assert "json_schema" not in plain.cache_payload()
    assert request_key("generate", "id", plain.cache_payload()) == (
        "6e74a0ef16799a1813556013e10c74685d702e38746a8178a7d4410006950490"
    )
    tutor = GenerateRequest(
        "Answer hit or stick.\n",
        "Player 15, dealer 10.",
        max_tokens=24,
        temperature=0.7,
        stop=("</action>",),
        seed=1,
        response_prefix="<action>",
    )
    assert request_key("generate", "llamacpp:smollm2:sha256=abc:raw", tutor.cache_payload()) == (
        "733782539f104351f36b6d983d7a6b73c05b98b2b824722ac0e88c94b4136b27"
    )
    for bad in ("not json", "[1, 2]", '{"a": NaN}'):
        with pytest.raises(ValueError):
            GenerateRequest("p", "t", json_schema=bad)


def test_prefix_is_fixed_and_names_rules_and_actions():
    prefix = build_prefix(BLACKJACK)
    assert prefix == build_prefix(BLACKJACK)
    assert BLACKJACK.rules in prefix and '"stick", "hit"' in prefix
    assert "critical step" in prefix.lower() and "JSON" in prefix
    assert CHUNK_TEXT.rstrip() in build_text(CHUNK_TEXT, 1, 3)


# ------------------------------------------------------------------------------------------
# Parsing untrusted answers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        f"Here are the critical steps:\n```json\n{VALID}\n```\nHope this helps!",
        f"Steps [1] and [2] matter. {VALID} trailing {{ junk",
    ],
)
def test_valid_answers_are_accepted(text):
    answer = parse_identification(text, BLACKJACK, 1, 3)
    assert isinstance(answer, Identification)
    assert [(c.step, c.action, c.reward) for c in answer.critical] == [
        (2, "stick", -0.9),
        (1, "hit", 0.2),  # case-insensitive match, returned in the game's spelling
    ]


def test_repeated_steps_keep_the_first():
    text = json.dumps(
        {
            "critical": [
                {"step": 2, "action": "stick", "reward": -1, "rationale": "first"},
                {"step": 2, "action": "hit", "reward": 1, "rationale": "second"},
            ]
        }
    )
    [only] = parse_identification(text, BLACKJACK, 1, 3).critical
    assert (only.action, only.rationale) == ("stick", "first")


def test_an_empty_list_is_a_valid_answer():
    assert parse_identification('{"critical": []}', BLACKJACK, 1, 3).critical == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_answer(step=7), "step_range"),
        (_answer(step=0), "step_range"),
        (_answer(action="double"), "unknown_action"),
        (_answer(action="hit me"), "unknown_action"),
        (_answer(reward=1.5), "reward_range"),
        (_answer(reward=-1.01), "reward_range"),
        (_answer(reward=True), "schema"),
        (_answer(step=True), "schema"),
        (_answer(step=2.5), "schema"),
        (_answer(rationale="x" * (MAX_RATIONALE + 1)), "schema"),
        (_answer(extra="field"), "schema"),
        (
            '{"critical": [{"step": 2, "action": "stick", "reward": NaN, "rationale": ""}]}',
            "schema",
        ),
        ('{"critical": [{"step": 2, "action": "stick"}]}', "schema"),
        ('{"steps": []}', "schema"),
        ('{"critical": "none"}', "schema"),
        ("I think step 2 was critical: you should stick.", "no_json"),
        ("", "no_json"),
        ('{"critical": [', "no_json"),
        ("[" * 5000 + "]" * 5000, "not_object"),
        ('[{"critical": []}]', "not_object"),
        ('[{"step": 2, "action": "stick", "reward": -0.5, "rationale": "r"}]', "not_object"),
    ],
)
def test_invalid_answers_are_rejected_with_a_reason(text, reason):
    with pytest.raises(IdentificationError) as info:
        parse_identification(text, BLACKJACK, 1, 3)
    assert info.value.reason == reason


def test_too_many_steps_are_rejected():
    items = [{"step": s, "action": "hit", "reward": 0, "rationale": ""} for s in range(1, 5)]
    text = json.dumps({"critical": items})
    assert len(parse_identification(text, BLACKJACK, 1, 9, max_critical=4).critical) == 4
    with pytest.raises(IdentificationError, match="too_many"):
        parse_identification(text, BLACKJACK, 1, 9, max_critical=3)
    many = json.dumps({"critical": items * 3})
    with pytest.raises(IdentificationError, match="too_many"):
        parse_identification(many, BLACKJACK, 1, 9)


def test_code_in_answers_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    calls = []
    monkeypatch.setattr("builtins.eval", lambda *a, **k: calls.append(a))
    monkeypatch.setattr("builtins.exec", lambda *a, **k: calls.append(a))
    attempts = [
        code,
        f'{{"critical": [{{"step": {code}, "action": "hit", "reward": 0, "rationale": ""}}]}}',
        _answer(action=code),
        _answer(rationale=code[:100], step=f"{code}"),
        f"```python\n{code}\n```",
    ]
    for text in attempts:
        with pytest.raises(IdentificationError):
            parse_identification(text, BLACKJACK, 1, 3)
    # A rationale holding code is just text: kept as a string, never run.
    [item] = parse_identification(_answer(rationale=code), BLACKJACK, 1, 3).critical
    assert item.rationale == code
    assert not marker.exists() and not calls


# ------------------------------------------------------------------------------------------
# The pipeline with scripted models
# ------------------------------------------------------------------------------------------


class Scripted:
    """Returns queued answers in order; an exception in the queue is raised instead."""

    identity = "scripted"

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.requests: list[GenerateRequest] = []
        self.calls = 0

    def generate(self, requests):
        self.calls += 1
        out = []
        for request in requests:
            self.requests.append(request)
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            out.append(answer)
        return out

    def score(self, requests):  # pragma: no cover - not used
        raise NotImplementedError


def test_an_invalid_answer_is_reasked_with_another_seed_and_temperature():
    llm = Scripted("no JSON here", VALID)
    result = identify(llm, BLACKJACK, [CHUNK], seed=5)
    assert (result.chunks, result.valid, result.reasked, result.skipped) == (1, 1, 1, 0)
    assert result.failures_by_reason == {"no_json": 1}
    first, again = llm.requests
    assert (first.temperature, first.seed) == (0.0, 5)
    assert again.temperature > 0 and again.seed != first.seed
    assert again.json_schema == first.json_schema is not None
    # Different cache keys: a cached bad answer cannot come back for the re-ask.
    assert request_key("generate", "x", first.cache_payload()) != request_key(
        "generate", "x", again.cache_payload()
    )
    assert [(c.chunk, c.step, c.action, c.reward) for c in result.critical] == [
        (0, 2, 0, -0.9),
        (0, 1, 1, 0.2),
    ]
    [status] = result.statuses
    assert (status.status, status.attempts, status.n_critical, status.reasons) == (
        "valid",
        2,
        2,
        ["no_json"],
    )
    assert result.seconds >= 0
    assert result.counters()["reasked"] == 1


def test_a_chunk_never_answered_well_is_skipped_and_counted():
    other = {"first_step": 4, "last_step": 6, "text": "Step 4: ... Action: stick. Reward: +1."}
    llm = Scripted(_answer(step=9), _answer(step=5), _answer(reward=3), "garbage")
    result = identify(llm, BLACKJACK, [CHUNK, other], max_attempts=3)
    assert llm.calls == 3  # first asks batched, then one re-ask round per attempt
    assert [s.status for s in result.statuses] == ["skipped", "valid"]
    assert (result.valid, result.skipped, result.reasked) == (1, 1, 2)
    assert result.failures_by_reason == {"step_range": 1, "reward_range": 1, "no_json": 1}
    assert [c.step for c in result.critical] == [5]
    assert result.statuses[0].reasons == ["step_range", "reward_range", "no_json"]


def test_backend_errors_count_as_failed_attempts():
    llm = Scripted(LLMError("server said no"), VALID)
    result = identify(llm, BLACKJACK, [CHUNK])
    assert result.valid == 1 and result.failures_by_reason == {"backend:LLMError": 1}
    down = Scripted(*[LLMUnavailableError("connection refused")] * 3)
    result = identify(down, BLACKJACK, [CHUNK, CHUNK], max_attempts=3)
    assert result.skipped == 2 and result.critical == []
    assert result.failures_by_reason == {"backend:LLMUnavailableError": 6}
    assert down.calls == 3  # an unreachable backend is not asked again request by request


def test_a_failing_batch_is_retried_request_by_request():
    class FailsOnLong(Scripted):
        def generate(self, requests):
            if any("too long" in r.text for r in requests):
                self.calls += 1
                raise LLMError("prompt does not fit the context")
            return super().generate(requests)

    long = {"first_step": 1, "last_step": 3, "text": "too long " + CHUNK_TEXT}
    llm = FailsOnLong(VALID)
    result = identify(llm, BLACKJACK, [long, CHUNK], max_attempts=2)
    assert [s.status for s in result.statuses] == ["skipped", "valid"]
    assert result.failures_by_reason == {"backend:LLMError": 2}


def test_wrong_answer_types_and_counts_do_not_crash():
    result = identify(Scripted(None, 42, VALID), BLACKJACK, [CHUNK])
    assert result.valid == 1 and result.failures_by_reason == {"not_text": 2}

    class Short(Scripted):
        def generate(self, requests):
            return []

    result = identify(Short(), BLACKJACK, [CHUNK], max_attempts=2)
    assert result.skipped == 1 and result.failures_by_reason == {"backend:LLMError": 2}


def test_the_response_cache_does_not_replay_a_bad_answer_for_a_reask():
    cache = ResponseCache(":memory:")
    first = Scripted("bad", VALID)
    assert identify(CachedLLM(first, cache), BLACKJACK, [CHUNK]).valid == 1
    # Same run again: everything comes from the cache, including the re-ask's good answer.
    replay = Scripted()
    again = identify(CachedLLM(replay, cache), BLACKJACK, [CHUNK])
    assert again.valid == 1 and again.reasked == 1 and replay.requests == []


@dataclass
class _Chunk:
    first_step: int
    last_step: int
    text: str


def test_chunks_may_be_objects_or_mappings_and_schemas_are_optional():
    llm = Scripted(VALID, VALID)
    result = identify(llm, BLACKJACK, [_Chunk(1, 3, CHUNK_TEXT), CHUNK], structured=False)
    assert result.valid == 2 and all(r.json_schema is None for r in llm.requests)
    assert llm.requests[0].prefix == llm.requests[1].prefix == build_prefix(BLACKJACK)
    with pytest.raises(ValueError):
        identify(llm, BLACKJACK, [_Chunk(3, 1, CHUNK_TEXT)])
    with pytest.raises(ValueError):
        identify(llm, BLACKJACK, [CHUNK], max_attempts=0)
    assert identify(llm, BLACKJACK, []).chunks == 0


# ------------------------------------------------------------------------------------------
# Structured output over HTTP, against the scripted stub
# ------------------------------------------------------------------------------------------


def _chat(text: str) -> str:
    return json.dumps({"choices": [{"message": {"content": text}}]})


def _client(url: str) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(url, "stub-model", timeout=5.0, backoff=0.05, max_retries=1)


def test_http_structured_output_falls_back_through_the_forms(stub):  # noqa: F811
    def reply(path, body):
        form = body.get("response_format", {}).get("type")
        if form == "json_schema":
            return 422, '{"detail": "type must be text or json_object"}', 0.0
        return 200, _chat(VALID), 0.0

    stub.reply = reply
    llm = _client(stub.url)
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    request = GenerateRequest("p", "t", json_schema=schema)
    assert llm.generate([request]) == [VALID]
    sent = [body for *_, body in stub.requests]
    assert sent[0]["response_format"]["type"] == "json_schema"
    spec = sent[0]["response_format"]["json_schema"]
    assert spec["strict"] is True and spec["name"] == "critical_steps"
    assert spec["schema"] == json.loads(schema)
    assert sent[1]["response_format"] == {"type": "json_object", "schema": json.loads(schema)}
    assert llm.structured_output["chat"] == "json_object"
    assert llm.stats["structured_rejected"] == 1 and llm.stats["failures"] == 0
    # Remembered: the next request goes straight to the form that worked.
    llm.generate([request])
    assert stub.requests[-1][2]["response_format"]["type"] == "json_object"
    assert len(stub.requests) == 3
    # Requests without a schema are sent exactly as before.
    llm.generate([GenerateRequest("p", "t")])
    assert "response_format" not in stub.requests[-1][2]


def test_http_endpoint_rejecting_every_form_is_asked_without_one(stub):  # noqa: F811
    def reply(path, body):
        if "response_format" in body or "grammar" in body:
            return 400, '{"error": "unsupported parameter"}', 0.0
        return 200, _chat("plain"), 0.0

    stub.reply = reply
    llm = _client(stub.url)
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    assert llm.generate([GenerateRequest("p", "t", json_schema=schema)]) == ["plain"]
    assert len(stub.requests) == 3 and llm.structured_output["chat"] == "none"
    # The completions path (a response_prefix) sends llama.cpp's GBNF grammar.
    stub.reply = lambda path, body: (
        (400, '{"error": "no"}', 0.0)
        if "grammar" in body
        else (200, json.dumps({"choices": [{"text": "x"}]}), 0.0)
    )
    llm.generate([GenerateRequest("p", "t", response_prefix="{", json_schema=schema)])
    assert "root ::=" in stub.requests[-2][2]["grammar"]
    assert "grammar" not in stub.requests[-1][2]
    assert llm.structured_output["completions"] == "none"


def test_http_500_naming_the_field_is_a_rejection_other_500s_are_retried(stub):  # noqa: F811
    # llama-cpp-python's server reports request-validation errors as HTTP 500.
    detail = "Input should be 'text' or 'json_object'"
    message = (
        f"1 validation error: {{'loc': ('body', 'response_format', 'type'), 'msg': \"{detail}\"}}"
    )
    stub.reply = lambda path, body: (
        (500, json.dumps({"error": {"message": message}}), 0.0)
        if body.get("response_format", {}).get("type") == "json_schema"
        else (200, _chat(VALID), 0.0)
    )
    llm = _client(stub.url)
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    assert llm.generate([GenerateRequest("p", "t", json_schema=schema)]) == [VALID]
    assert len(stub.requests) == 2 and llm.stats["retries"] == 0
    assert llm.structured_output["chat"] == "json_object"
    # A 500 that does not name the field is a server error: retried, then raised.
    stub.reply = lambda path, body: (500, '{"error": "out of memory"}', 0.0)
    other = _client(stub.url)
    with pytest.raises(LLMUnavailableError):
        other.generate([GenerateRequest("p", "t", json_schema=schema)])
    assert other.stats["retries"] == 1 and other.structured_output["chat"] == "json_schema"


def test_http_other_errors_are_not_mistaken_for_a_rejected_form(stub):  # noqa: F811
    stub.reply = lambda path, body: (401, '{"error": "bad key"}', 0.0)
    llm = _client(stub.url)
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    with pytest.raises(LLMError, match="401"):
        llm.generate([GenerateRequest("p", "t", json_schema=schema)])
    assert len(stub.requests) == 1 and llm.structured_output["chat"] == "json_schema"
    # A plain request failing with 400 after a downgrade raises, and is not remembered.
    stub.reply = lambda path, body: (400, '{"error": "prompt too long"}', 0.0)
    with pytest.raises(LLMError, match="400"):
        llm.generate([GenerateRequest("p", "t", json_schema=schema)])
    assert llm.structured_output["chat"] == "json_schema"


# ------------------------------------------------------------------------------------------
# Real models: the embedded SmolLM2 and llama.cpp's server
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm():
    from tutorl.llm import make_llm

    llm = make_llm("smollm2-135m", cache=False)
    yield llm
    llm.close()


def _check_schema_valid(text: str, first: int, last: int) -> None:
    schema = schema_for(BLACKJACK, first, last)
    value = json.loads(text)  # the whole text is JSON: nothing around it
    assert _conforms(value, schema), text
    Identification.model_validate(value)
    parse_identification(text, BLACKJACK, first, last)


def test_embedded_model_output_follows_the_schema(smollm):
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    prefix, text = build_prefix(BLACKJACK), build_text(CHUNK_TEXT, 1, 3)
    greedy = GenerateRequest(prefix, text, max_tokens=150, json_schema=schema)
    sampled = GenerateRequest(
        prefix, text, max_tokens=150, temperature=0.7, seed=3, json_schema=schema
    )
    out = smollm.generate([greedy, sampled])
    for answer in out:
        _check_schema_valid(answer, 1, 3)
    assert smollm.stats["tokens_reused"] > 0  # the instructions' KV cache is still reused
    assert smollm.generate([greedy]) == out[:1]  # and greedy answers stay deterministic
    result = identify(smollm, BLACKJACK, [CHUNK], max_tokens=150)
    assert (result.valid, result.skipped) == (1, 0)
    assert all(1 <= c.step <= 3 and c.action in (0, 1) for c in result.critical)


def test_embedded_model_reports_an_unusable_schema_as_llm_error(smollm):
    bad = json.dumps({"type": "object", "properties": {"x": {"type": "no-such-type"}}})
    with pytest.raises(LLMError, match="grammar"):
        smollm.generate([GenerateRequest("p", "t", max_tokens=4, json_schema=bad)])
    [text] = smollm.generate([GenerateRequest("Say hi.", "", max_tokens=4)])
    assert isinstance(text, str)  # the model still works


def test_real_server_answers_with_schema_valid_json(real_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv(KEY_ENV, SECRET)
    llm = OpenAICompatibleLLM(real_server, "smollm2", api_key_env=KEY_ENV, timeout=120)
    schema = json.dumps(schema_for(BLACKJACK, 1, 3))
    prefix, text = build_prefix(BLACKJACK), build_text(CHUNK_TEXT, 1, 3)
    [chat] = llm.generate([GenerateRequest(prefix, text, max_tokens=150, json_schema=schema)])
    _check_schema_valid(chat, 1, 3)
    # llama-cpp-python's server knows response_format json_object (with a schema), not
    # json_schema: the first form was rejected and the second one remembered.
    assert llm.structured_output["chat"] == "json_object"
    assert llm.stats["structured_rejected"] == 1
    # The completions path (a response_prefix) sends a GBNF grammar.
    [completed] = llm.generate(
        [GenerateRequest(prefix, text, max_tokens=150, response_prefix="\n", json_schema=schema)]
    )
    _check_schema_valid(completed, 1, 3)
    assert llm.structured_output["completions"] == "grammar"
