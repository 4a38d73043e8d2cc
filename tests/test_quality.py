"""Measuring a tutor: sampled states are reproducible and agreement is measured correctly."""

from __future__ import annotations

import numpy as np
import pytest

from tutorl.envs import get_game
from tutorl.tutor import ExpertTutor, NoisyExpertTutor, RandomTutor
from tutorl.tutor.quality import evaluate_tutor, sample_states


@pytest.mark.parametrize("name", ["blackjack", "snake", "connect_four"])
def test_state_sample_is_reproducible_and_varied(name):
    game = get_game(name)
    first = sample_states(game, 60, seed=3)
    again = sample_states(game, 60, seed=3)
    other = sample_states(game, 60, seed=4)
    assert len(first) == 60
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))
    assert len({game.state_key(obs) for obs, _ in first}) > 10


@pytest.mark.parametrize("name", ["blackjack", "snake", "connect_four"])
def test_agreement_of_tutors_of_known_quality(name):
    game = get_game(name)
    expert = evaluate_tutor(game, ExpertTutor(game), 400, seed=0)
    assert expert.agreement == 1.0
    noisy = evaluate_tutor(game, NoisyExpertTutor(game, 0.6, seed=5), 400, seed=0)
    low, high = noisy.agreement_ci95
    assert low - 0.03 <= 0.6 <= high + 0.03
    random = evaluate_tutor(game, RandomTutor(game, seed=0), 400, seed=0)
    assert random.agreement < 0.6
    assert 0 < random.base_rate < 1
