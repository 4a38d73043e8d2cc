"""The rule baseline tutors (``--tutor rule``) match their definitions on constructed states."""

from __future__ import annotations

import numpy as np
import pytest
from test_connect_four import obs_from_board, parse_board

from tutorl.envs import get_game
from tutorl.envs.blackjack import HIT, STICK, exact_policy_value
from tutorl.envs.blackjack import rule as blackjack_rule
from tutorl.envs.connect_four import rule as connect_four_rule
from tutorl.envs.snake import rule as snake_rule
from tutorl.rl.train import RunConfig
from tutorl.tutor import RuleTutor, make_tutor


def test_blackjack_rule_is_the_best_dealer_blind_threshold():
    for dealer in range(1, 11):
        assert blackjack_rule(np.array([14, dealer, 0])) == HIT
        assert blackjack_rule(np.array([15, dealer, 0])) == STICK
        assert blackjack_rule(np.array([17, dealer, 1])) == HIT
        assert blackjack_rule(np.array([18, dealer, 1])) == STICK
    value, _ = exact_policy_value(lambda obs: np.array([blackjack_rule(o) for o in obs]))
    assert value == pytest.approx(-0.0640, abs=1e-4)


def snake_view(snake, heading, food, size=6):
    return {"size": size, "snake": snake, "heading": heading, "food": food, "steps_since_food": 0}


def test_snake_rule_takes_a_safe_move_toward_the_food():
    # Heading right (1) along the top wall: straight is toward food at (0, 5).
    assert snake_rule(snake_view([(0, 2), (0, 1), (0, 0)], 1, (0, 5))) == 0
    # Food below: turning right (heading down) gets closer; left would hit the top wall.
    assert snake_rule(snake_view([(0, 2), (0, 1), (0, 0)], 1, (4, 2))) == 2
    # Food straight ahead but the next cell is the wall: a safe turn instead (right, downward).
    assert snake_rule(snake_view([(0, 5), (0, 4), (0, 3)], 1, (3, 5))) == 2
    # Straight is the wall and no safe move gets closer: the first safe one (left = up).
    view = snake_view([(3, 5), (3, 4), (3, 3)], 1, (3, 0))  # at the wall, food behind
    assert snake_rule(view) == 1
    # Boxed in on all sides: straight.
    boxed = snake_view([(1, 1), (1, 0), (0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0)],
                       1, (5, 5))  # fmt: skip
    assert snake_rule(boxed) == 0


def test_connect_four_rule_wins_then_blocks_then_centre():
    empty = parse_board(["......."] * 6)
    assert connect_four_rule(obs_from_board(empty)) == 3
    win_and_block = parse_board(
        [".......", ".......", ".......", "X......", "XO.....", "XOO...."]
    )  # X = agent: column 0 wins; O threatens nothing yet
    obs = obs_from_board(win_and_block)
    assert connect_four_rule(obs) == 0
    block = parse_board([".......", ".......", ".......", "O......", "O.X....", "O.XX..."])
    assert connect_four_rule(obs_from_board(block)) == 0  # no win for X: block O's column 0
    full_centre = parse_board(["...X...", "...O...", "...X...", "...O...", "...X...", "...O..."])
    assert connect_four_rule(obs_from_board(full_centre)) == 2  # nearest the centre, left first


def test_rule_tutor_in_runs():
    game = get_game("snake")
    tutor = make_tutor("rule", game)
    assert isinstance(tutor, RuleTutor)
    view = snake_view([(0, 2), (0, 1), (0, 0)], 1, (4, 2))
    assert [a.action for a in tutor.advise([view, view])] == [2, 2]
    assert RunConfig(env="blackjack", algo="ppo", tutor="rule").arm() == "rule"
    with pytest.raises(ValueError, match="no rule baseline"):
        RunConfig(env="doorkey", algo="ppo", tutor="rule")


def test_tutor_eval_of_the_rule_covers_exactly_the_games_that_have_one():
    import json

    from test_cli import tutorl

    result = tutorl("tutor-eval", "--tutor", "rule", "--states", "5", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert {r["env"] for r in json.loads(result.stdout)} == {"blackjack", "snake", "connect_four"}
