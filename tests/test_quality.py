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


def test_tutor_eval_select_chooses_on_one_seed_and_reports_on_another(capsys):
    """The real embedded model: two candidates measured on the states of --select-seed, the
    better one measured again on --seed's states (what is reported)."""
    import json

    import pytest

    from tutorl.cli import main

    args = ["tutor-eval", "--env", "blackjack", "--tutor", "llm", "--states", "12", "--seed",
            "4", "--select", "smollm2-135m", "--select", "smollm2-135m::content-free",
            "--json"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["select_seed"], result["report_seed"]) == (5, 4)
    tried = {c["candidate"]: c["agreement"] for c in result["candidates"]}
    assert set(tried) == {"smollm2-135m", "smollm2-135m::content-free"}
    assert result["chosen"] == max(tried, key=lambda c: (tried[c], c == "smollm2-135m"))
    assert result["chosen_agreement_on_select_seed"] == tried[result["chosen"]]
    report = result["report"]
    assert report["states"] == 12 and 0.0 <= report["agreement"] <= 1.0
    assert "rule_agreement" in report["extra"]  # the rule baseline on the report states
