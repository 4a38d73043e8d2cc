"""The advice mechanism without RL: schedule, reuse memory, advisor, tutors of known quality."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tutorl.envs import get_game
from tutorl.tutor import (
    Advice,
    AdviceMemory,
    AdviceSchedule,
    Advisor,
    ExpertTutor,
    NoisyExpertTutor,
    RandomTutor,
)


class CountingTutor:
    """Advises a fixed action and records every batch it is asked about."""

    name = "counting"

    def __init__(self, action: int = 1) -> None:
        self.action = action
        self.batches: list[int] = []

    def advise(self, views):
        self.batches.append(len(views))
        return [Advice(self.action, "tutor") for _ in views]


def obs_views(obs):
    return lambda indices: [obs[i] for i in indices]


@pytest.fixture(scope="module")
def blackjack():
    return get_game("blackjack")


def test_schedule_decays_linearly_then_stays():
    schedule = AdviceSchedule(start=1.0, end=0.1, decay_steps=1000)
    assert schedule.probability(0) == pytest.approx(1.0)
    assert schedule.probability(500) == pytest.approx(0.55)
    assert schedule.probability(1000) == pytest.approx(0.1)
    assert schedule.probability(10**6) == pytest.approx(0.1)
    probs = [schedule.probability(t) for t in range(0, 1000, 50)]
    assert all(a > b for a, b in itertools.pairwise(probs))


@pytest.mark.parametrize(
    "kwargs", [{"start": 1.5}, {"end": -0.1}, {"decay_steps": -1}, {"budget": -2}]
)
def test_schedule_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        AdviceSchedule(**kwargs)


def test_memory_spends_budget_then_forgets():
    memory = AdviceMemory(budget=3)
    assert memory.reuse("s") is None
    memory.remember("s", 1)
    assert [memory.reuse("s") for _ in range(4)] == [1, 1, 1, None]
    memory.remember("s", 0)  # the tutor was asked again: fresh budget, new answer
    assert memory.reuse("s") == 0
    assert memory.hits == 4


def test_reuse_spends_its_budget_and_re_asks(blackjack):
    tutor = CountingTutor(action=1)
    schedule = AdviceSchedule(start=1.0, end=1.0, decay_steps=0)  # always ask when not reusing
    advisor = Advisor(blackjack, tutor, schedule, AdviceMemory(budget=3), seed=0)
    obs = np.array([[15, 10, 0]])
    calls = []
    for _ in range(9):
        executed = advisor(obs, np.array([0]), obs_views(obs))
        assert executed[0] == 1
        calls.append(advisor.stats.tutor_calls)
    assert calls == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    # ask, reuse x3, ask, reuse x3, ask
    assert advisor.stats.tutor_calls == 3
    assert advisor.stats.reuse_hits == 6
    assert advisor.stats.advised == 9
    assert advisor.stats.sources["reuse"] == 6


def test_no_reuse_asks_every_time(blackjack):
    tutor = CountingTutor()
    advisor = Advisor(blackjack, tutor, AdviceSchedule(1.0, 1.0, 0), None, seed=0)
    obs = np.array([[15, 10, 0]])
    for _ in range(5):
        advisor(obs, np.array([0]), obs_views(obs))
    assert advisor.stats.tutor_calls == 5
    assert advisor.stats.reuse_hits == 0


def test_one_tutor_call_per_step_for_all_asking_envs(blackjack):
    tutor = CountingTutor()
    advisor = Advisor(blackjack, tutor, AdviceSchedule(1.0, 1.0, 0), None, seed=0)
    obs = np.array([[12, 2, 0], [13, 3, 0], [20, 10, 1], [9, 5, 0]])
    executed = advisor(obs, np.zeros(4, dtype=int), obs_views(obs))
    assert tutor.batches == [4]
    assert executed.tolist() == [1, 1, 1, 1]


def test_ask_probability_is_respected(blackjack):
    tutor = CountingTutor()
    advisor = Advisor(blackjack, tutor, AdviceSchedule(0.3, 0.3, 0), None, seed=1)
    obs = np.array([[15, 10, 0]])
    for _ in range(4000):
        advisor(obs, np.array([0]), obs_views(obs))
    assert advisor.stats.asks / 4000 == pytest.approx(0.3, abs=0.03)


def test_advice_budget_caps_asks(blackjack):
    advisor = Advisor(blackjack, CountingTutor(), AdviceSchedule(1.0, 1.0, 0, budget=5), seed=0)
    obs = np.array([[15, 10, 0], [16, 10, 0]])
    for _ in range(10):
        advisor(obs, np.array([0, 0]), obs_views(obs))
    assert advisor.stats.asks == 5
    assert advisor.stats.advised == 5


def test_illegal_advice_falls_back_to_student_and_is_counted():
    game = get_game("connect_four")
    board = np.zeros((6, 7, 2), dtype=np.float32)
    for row in range(6):  # column 3 full, alternating owners
        board[row, 3, row % 2] = 1.0
    obs = board.reshape(-1)
    assert 3 not in game.legal_actions(obs)
    advisor = Advisor(game, CountingTutor(action=3), AdviceSchedule(1.0, 1.0, 0), seed=0)
    executed = advisor(obs[None], np.array([0]), obs_views(obs[None]))
    assert executed[0] == 0  # the student's own move, not the illegal advice
    assert advisor.stats.fallbacks == 1
    assert advisor.stats.advised == 0
    assert advisor.stats.judged == 0


def test_noisy_expert_agreement_matches_its_accuracy(blackjack):
    rng = np.random.default_rng(0)
    states = [np.array([rng.integers(4, 22), rng.integers(1, 11), 0]) for _ in range(3000)]
    tutor = NoisyExpertTutor(blackjack, accuracy=0.7, seed=0)
    advisor = Advisor(blackjack, tutor, AdviceSchedule(1.0, 1.0, 0), seed=0)
    obs = np.stack(states)
    advisor(obs, np.zeros(len(obs), dtype=int), obs_views(obs))
    assert advisor.stats.agreement == pytest.approx(0.7, abs=0.03)


def test_expert_and_random_tutors(blackjack):
    obs = [np.array([20, 10, 0]), np.array([8, 10, 0])]
    assert [a.action for a in ExpertTutor(blackjack).advise(obs)] == [0, 1]  # stick 20, hit 8
    answers = RandomTutor(blackjack, seed=0).advise(obs * 200)
    share = np.mean([a.action for a in answers])
    assert 0.4 < share < 0.6
    with pytest.raises(ValueError, match="accuracy"):
        NoisyExpertTutor(blackjack, accuracy=1.2)


def test_reused_advice_is_judged_against_the_expert(blackjack):
    obs = np.array([[20, 10, 0]])  # the expert sticks on 20
    for tutor, expected in ((ExpertTutor(blackjack), 1.0), (CountingTutor(action=1), 0.0)):
        advisor = Advisor(blackjack, tutor, AdviceSchedule(1.0, 1.0, 0), AdviceMemory(3), seed=0)
        for _ in range(4):
            advisor(obs, np.array([0]), obs_views(obs))
        assert advisor.stats.reuse_judged == 3
        assert advisor.stats.reuse_agreement == expected
        assert advisor.stats.agreement == expected
