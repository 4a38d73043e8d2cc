"""Tests of the games' action values and of the expert critical-step identifier."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tutorl.envs import blackjack as bj
from tutorl.envs import connect_four as cf
from tutorl.envs import get_game
from tutorl.envs import snake as sn
from tutorl.ultra.expert import (
    expert_critical_steps,
    expert_suggestions,
    precision_recall,
    suggestion_soundness,
    value_lost,
)

STICK, HIT = bj.STICK, bj.HIT
STRAIGHT, TURN_LEFT, TURN_RIGHT = range(3)
UP, RIGHT, DOWN, LEFT = range(4)
# Card probabilities of the infinite deck (1 = ace, 10 = any ten-valued card).
P_CARD = {c: (4 if c == 10 else 1) / 13 for c in range(1, 11)}


@pytest.mark.parametrize("name", ["blackjack", "snake", "connect_four"])
def test_every_game_registers_action_values(name):
    game = get_game(name)
    assert game.action_values is not None
    assert get_game(name).ultra_threshold is not None


# ----------------------------------------------------------------------------- Blackjack


def test_blackjack_action_values_match_the_exact_values():
    # Sticking on 20 against a ten: win unless the dealer makes 20 (draw) or 21 (loss).
    bust, d17, d18, d19, _d20, d21 = bj.dealer_distribution(10, exact=True)
    stick_20 = bust + d17 + d18 + d19 - d21
    assert isinstance(stick_20, Fraction)
    values = bj.action_values(np.array([20, 10, 0]))
    assert values.dtype == float and values.shape == (2,)
    assert values[STICK] == pytest.approx(float(stick_20), abs=1e-12)
    assert values[HIT] < values[STICK]
    # 12 against a 2, infinite-deck basic-strategy tables: stand -0.2928, hit -0.2534.
    stick_12, hit_12 = bj.action_values([12, 2, 0])
    assert stick_12 == pytest.approx(-0.2928, abs=5e-5)
    assert hit_12 == pytest.approx(-0.2534, abs=5e-5)


def _after_hit(total, usable, card):
    """Independent hand arithmetic: (total, usable) after a card, or None on a bust."""
    total += card
    if card == 1 and total + 10 <= 21:
        return total + 10, 1
    if total > 21 and usable:
        return total - 10, 0
    return None if total > 21 else (total, usable)


def test_blackjack_values_satisfy_bellman_and_the_expert_is_their_argmax():
    rows = bj.decision_observations()
    values = {tuple(int(x) for x in row): bj.action_values(row) for row in rows}
    for (total, dealer, usable), (_stick, hit) in values.items():
        expected = 0.0
        for card, p in P_CARD.items():
            nxt = _after_hit(total, usable, card)
            expected += p * (-1.0 if nxt is None else values[nxt[0], dealer, nxt[1]].max())
        assert hit == pytest.approx(expected, abs=1e-12)
    for row in rows:
        assert bj.expert(row) == int(np.argmax(bj.action_values(row)))
    # Optimal play from the initial deal is worth the best action value of each first state.
    deal = 0.0
    for c1, p1 in P_CARD.items():
        for c2, p2 in P_CARD.items():
            raw = c1 + c2
            total, usable = (raw + 10, 1) if 1 in (c1, c2) else (raw, 0)
            for up, p in P_CARD.items():
                deal += p1 * p2 * p * values[total, up, usable].max()
    assert deal == pytest.approx(bj.optimal_value(), abs=1e-12)


def test_blackjack_values_outside_the_decision_states():
    assert list(bj.action_values([24, 10, 0])) == [-1.0, -1.0]  # already bust
    with pytest.raises(ValueError, match="not a Blackjack decision state"):
        bj.action_values([5, 10, 1])  # a soft 5 cannot occur


# ----------------------------------------------------------------------------- Connect Four


def _c4(rows):
    """Rows top to bottom, 'X' = agent (to move), 'O' = opponent, '.' = empty."""
    board = np.array([[{".": 0, "X": 1, "O": 2}[ch] for ch in row] for row in rows])
    return np.stack([board == 1, board == 2], axis=2).reshape(-1).astype(np.float32)


def test_connect_four_win_in_one_is_worth_one():
    view = _c4([".......", ".......", ".......", ".......", "O......", "XXX.OO."])
    values = cf.action_values(view)
    assert values[3] == 1.0
    assert np.all(np.abs(np.delete(values, 3)) < 1)  # nothing else is forced either way
    assert cf.expert(view) == 3


def test_connect_four_moves_that_let_the_opponent_win_are_worth_minus_one():
    # O threatens row 4 of column 4: filling the cell below it hands O the win.
    view = _c4([".......", ".......", ".......", ".......", "XOOO...", "XXOX.O."])
    values = cf.action_values(view)
    assert values[4] == -1.0 and np.all(np.delete(values, 4) > -1)
    # O threatens row 4 of columns 0 and 4: filling the cell below either one hands O the win.
    view = _c4([".......", ".......", ".......", ".......", ".OOO.XX", ".XOX.OX"])
    values = cf.action_values(view)
    assert values[0] == values[4] == -1.0
    assert np.all(np.delete(values, [0, 4]) > -1)
    # Not blocking an immediate threat loses at once; blocking it does not.
    view = _c4([".......", ".......", ".......", "O......", "O......", "OXX...."])
    values = cf.action_values(view)
    assert values[0] > -1 and np.all(values[1:] == -1.0)


def test_connect_four_full_columns_are_nan_and_illegal_moves_lose():
    view = _c4(["X......", "O......", "X......", "O......", "X......", "O......"])
    values = cf.action_values(view)
    assert np.isnan(values[0]) and not np.isnan(values[1:]).any()
    assert value_lost(get_game("connect_four"), view, 0) == pytest.approx(np.nanmax(values) + 1)


def test_connect_four_best_values_are_the_experts_best_columns():
    env = cf.ConnectFourEnv(opponent="greedy", agent_first="random")
    rng = np.random.default_rng(1)
    checked = inconclusive = 0
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            pos, mask = cf._bitboards(obs)
            best = set(cf._best_columns(pos, mask, cf._expert_depth(mask)))
            values = cf.action_values(obs)
            top = np.nanmax(values)
            argmax_set = set(np.flatnonzero(values == top).tolist())
            assert cf.expert(obs) in best and values[cf.expert(obs)] == top
            assert best <= argmax_set
            if abs(top) < 1:  # no forced result: the same columns, argmax included
                assert argmax_set == best and int(np.nanargmax(values)) in best
                inconclusive += 1
            assert np.all((np.abs(values) < 1) | (np.abs(values) == 1) | np.isnan(values))
            checked += 1
            legal = cf.legal_actions(obs)
            action = int(rng.choice(legal)) if rng.random() < 0.5 else cf.expert(obs)
            obs, _, done, _, _ = env.step(action)
    assert checked > 80 and inconclusive > 40


# ----------------------------------------------------------------------------- Snake


def _snake_view(snake, heading, food, size=10):
    return {"size": size, "snake": list(snake), "heading": heading, "food": food}


def _deadly(view):
    size, snake, heading = view["size"], view["snake"], view["heading"]
    (hr, hc), out = snake[0], set()
    for action, turn in ((STRAIGHT, 0), (TURN_LEFT, -1), (TURN_RIGHT, 1)):
        dr, dc = ((-1, 0), (0, 1), (1, 0), (0, -1))[(heading + turn) % 4]
        cell = (hr + dr, hc + dc)
        if not (0 <= cell[0] < size and 0 <= cell[1] < size) or cell in snake[:-1]:
            out.add(action)
    return out


def test_snake_deadly_and_trapping_moves_are_worth_minus_one():
    # Top-left corner heading up: straight and left hit the wall.
    values = sn.action_values(_snake_view([(0, 0), (1, 0), (2, 0)], UP, food=(5, 0)))
    assert values[STRAIGHT] == values[TURN_LEFT] == -1.0 and values[TURN_RIGHT] > 0.5
    # A one-wide pocket (column 0) walled by a long body, the food at its end: turning right
    # (north) into it is not immediately deadly but traps the snake; left leads to open board.
    wall = [(5, 0), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1), (0, 1), (0, 2), (1, 2)]
    tail = [(2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)]
    view = _snake_view(wall + tail, LEFT, food=(0, 0))
    assert _deadly(view) == {STRAIGHT}
    values = sn.action_values(view)
    assert values[STRAIGHT] == values[TURN_RIGHT] == -1.0 and values[TURN_LEFT] > 0.5
    # A short snake: the wall will have moved by then, so the pocket is the best move.
    values = sn.action_values(_snake_view(wall, LEFT, food=(0, 0)))
    assert int(np.argmax(values)) == TURN_RIGHT == sn.expert(_snake_view(wall, LEFT, (0, 0)))


def test_snake_shorter_safe_paths_are_worth_more():
    # Head (5, 5) heading up, food 3 cells ahead: straight takes 3 moves, a turn 5.
    values = sn.action_values(_snake_view([(5, 5), (6, 5), (7, 5)], UP, food=(2, 5)))
    assert values[STRAIGHT] == pytest.approx(1 - 3 / 400)
    assert values[TURN_LEFT] == values[TURN_RIGHT] == pytest.approx(1 - 5 / 400)


def test_snake_expert_move_has_the_maximal_value_on_varied_states():
    rng = np.random.default_rng(0)
    checked, deadly_seen = 0, 0
    for seed in range(8):
        env = sn.SnakeEnv(size=(6, 8)[seed % 2])
        env.reset(seed=seed)
        for _ in range(250):
            view = env.tutor_view()
            values = sn.action_values(view)
            assert values[sn.expert(view)] == values.max()
            deadly = _deadly(view)
            assert all(values[a] == -1.0 for a in deadly)
            assert np.all((values == -1.0) | ((values > 0.5) & (values < 1)))
            deadly_seen += bool(deadly)
            checked += 1
            safe = [a for a in range(3) if a not in deadly]
            eps = (0.1, 0.5)[seed % 2]
            action = int(rng.choice(safe)) if safe and rng.random() < eps else sn.expert(view)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    assert checked > 500 and deadly_seen > 100


# ----------------------------------------------------------------------------- identifier


# A Blackjack episode-like list of decisions with known exact value gaps.
_BJ_STEPS = [
    ([12, 10, 0], STICK),  # expert hits; sticking loses 0.155 -> critical
    ([12, 2, 0], STICK),  # expert hits; sticking loses 0.039 -> a close call
    ([16, 10, 0], STICK),  # expert hits; sticking loses 0.006 -> a close call
    ([20, 10, 0], HIT),  # expert sticks; hitting loses 1.29 -> critical
    ([11, 6, 0], HIT),  # the expert's own action
    ([18, 9, 1], STICK),  # soft 18 vs 9: expert hits; sticking loses 0.082 -> close call
]


def test_blackjack_gaps_of_the_hand_built_steps():
    game = get_game("blackjack")
    gaps = [value_lost(game, np.array(v), a) for v, a in _BJ_STEPS]
    assert gaps == pytest.approx([0.1551, 0.0394, 0.0065, 1.2897, 0.0, 0.0824], abs=1e-4)


def test_expert_critical_steps_on_a_blackjack_trajectory():
    game = get_game("blackjack")
    views = [np.array(v) for v, _ in _BJ_STEPS]
    actions = [a for _, a in _BJ_STEPS]
    assert expert_critical_steps(game, views, actions, game.ultra_threshold) == [0, 3]
    assert expert_critical_steps(game, views, actions, 0.0) == [0, 1, 2, 3, 5]
    assert expert_critical_steps(game, views, actions, 0.05) == [0, 3, 5]
    assert expert_critical_steps(game, views, actions, 2.0) == []
    assert expert_critical_steps(game, [], [], 0.1) == []
    with pytest.raises(ValueError, match="views but"):
        expert_critical_steps(game, views, actions[:-1], 0.1)


def test_expert_critical_steps_on_snake_and_connect_four():
    snake = get_game("snake")
    corner = _snake_view([(0, 0), (1, 0), (2, 0)], UP, food=(5, 0))
    open_board = _snake_view([(5, 5), (6, 5), (7, 5)], UP, food=(2, 5))
    # Into the wall: critical at any threshold. A detour on an open board loses a few moves
    # (0.005): critical under the default (every detour, the failure of a circling agent), not
    # when only deaths count (0.5). Straight at the food loses nothing.
    views, actions = [corner, open_board, open_board], [STRAIGHT, TURN_LEFT, STRAIGHT]
    assert value_lost(snake, open_board, TURN_LEFT) == pytest.approx(0.005)
    assert expert_critical_steps(snake, views, actions, snake.ultra_threshold) == [0, 1]
    assert expert_critical_steps(snake, views, actions, 0.5) == [0]

    c4 = get_game("connect_four")
    win = _c4([".......", ".......", ".......", ".......", "O......", "XXX.OO."])
    # Column 4 lets O complete row 4; the best moves keep a small heuristic deficit (-0.24).
    below = _c4([".......", ".......", ".......", ".......", "XOOO...", "XXOX.O."])
    # The same mistake in a position already judged bad (best -0.51) loses less than 0.5.
    worse = _c4([".......", ".......", ".......", ".......", ".OOO.XX", ".XOX.OX"])
    views = [win, below, below, worse, win]
    actions = [0, 4, cf.expert(below), 4, 3]
    assert [round(value_lost(c4, v, a), 2) for v, a in zip(views, actions, strict=True)] == [
        1.2,
        0.76,
        0.0,
        0.49,
        0.0,
    ]
    assert expert_critical_steps(c4, views, actions, c4.ultra_threshold) == [0, 1]


def test_expert_suggestions_give_the_expert_action_and_half_the_value_lost():
    game = get_game("blackjack")
    views = [np.array(v) for v, _ in _BJ_STEPS]
    actions = [a for _, a in _BJ_STEPS]
    out = expert_suggestions(game, views, {3, 0, 4}, actions=actions)
    assert [(t, a) for t, a, _ in out] == [(0, HIT), (3, STICK), (4, HIT)]
    rewards = [r for _, _, r in out]
    assert rewards == pytest.approx([-0.1551 / 2, -1.2897 / 2, 0.0], abs=1e-4)
    assert all(-1 <= r <= 0 for r in rewards) and str(rewards[2]) == "0.0"
    # Connect Four: missing a win in one (value 1) for a -0.2 column loses 1.2 -> -0.6.
    c4 = get_game("connect_four")
    win = _c4([".......", ".......", ".......", ".......", "O......", "XXX.OO."])
    assert expert_suggestions(c4, [win], [0], actions=[0]) == [(0, 3, pytest.approx(-0.6))]
    with pytest.raises(ValueError, match="outside the episode"):
        expert_suggestions(game, views, [6], actions=actions)
    with pytest.raises(TypeError):
        expert_suggestions(game, views, [0], actions)  # type: ignore[misc]


def test_suggestion_soundness_scores_the_suggested_actions():
    game = get_game("blackjack")
    # Episode 0: 20 vs 10, then 16 vs 10 (a close call: both actions within 0.1);
    # episode 1: 12 vs 2.
    views = [[np.array([20, 10, 0]), np.array([16, 10, 0])], [np.array([12, 2, 0])]]
    named = [
        (0, 0, HIT, -0.5, "hitting 20 loses 1.29: unsound"),
        (0, 0, STICK, 0.5, "sticking on 20: sound"),
        (0, 1, STICK, 0.0, "16 vs 10: either is sound"),
        (0, 1, STICK, 0.0, "a repeat counts once"),
        (1, 0, STICK, -0.2, "12 vs 2 stick loses 0.039 < 0.1: sound"),
    ]
    result = suggestion_soundness(game, views, named, threshold=0.1)
    # Chance: a random action is sound at 20 vs 10 half the time (stick only), at 16 vs 10 and
    # 12 vs 2 always (both within 0.1); over the 4 distinct suggestions: (1/2+1/2+1+1)/4.
    assert result == {"sound": 3, "suggestions": 4, "soundness": 0.75, "chance": 0.75}
    # A stricter threshold makes 12-vs-2 stick unsound (loses 0.039); the 16-vs-10 gap is 0.006.
    assert suggestion_soundness(game, views, named, threshold=0.01)["sound"] == 2
    assert suggestion_soundness(game, views, [], threshold=0.1)["soundness"] is None


def test_precision_recall_on_hand_examples():
    r = precision_recall({1, 2, 3}, {2, 3, 4, 5})
    assert (r["tp"], r["fp"], r["fn"], r["n_predicted"], r["n_true"]) == (2, 1, 2, 3, 4)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(1 / 2)
    assert r["f1"] == pytest.approx(4 / 7)
    assert precision_recall([7], [7]) == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "n_predicted": 1,
        "n_true": 1,
    }
    nothing_named = precision_recall(set(), {4})
    assert nothing_named["precision"] is None
    assert nothing_named["recall"] == 0.0 and nothing_named["f1"] == 0.0
    nothing_critical = precision_recall({4}, set())
    assert nothing_critical["precision"] == 0.0
    assert nothing_critical["recall"] is None and nothing_critical["f1"] == 0.0
    both_empty = precision_recall(set(), set())
    assert both_empty["precision"] is None and both_empty["recall"] is None
    assert both_empty["f1"] == 1.0 and both_empty["tp"] == both_empty["fp"] == 0
