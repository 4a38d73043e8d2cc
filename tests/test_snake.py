"""Tests of the Snake environment, its view functions and its expert."""

from __future__ import annotations

import re

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from tutorl.envs.snake import (
    GAME,
    SnakeEnv,
    describe,
    expert,
    features,
    legal_actions,
    state_key,
)

UP, RIGHT, DOWN, LEFT = range(4)
STRAIGHT, TURN_LEFT, TURN_RIGHT = range(3)
_DELTAS = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}


def _view(snake, heading, food, size=10, steps_since_food=0):
    return {
        "size": size,
        "snake": list(snake),
        "heading": heading,
        "food": food,
        "steps_since_food": steps_since_food,
    }


def _env_at(view, **kw):
    env = SnakeEnv(size=view["size"], **kw)
    env.reset(seed=0)
    env.set_state(view)
    return env


def _deadly_actions(view):
    """Which relative moves kill the snake, derived independently of the module's helpers."""
    size, snake, heading = view["size"], view["snake"], view["heading"]
    (hr, hc), deadly = snake[0], set()
    for action, turn in ((STRAIGHT, 0), (TURN_LEFT, -1), (TURN_RIGHT, 1)):
        dr, dc = _DELTAS[(heading + turn) % 4]
        cell = (hr + dr, hc + dc)
        outside = not (0 <= cell[0] < size and 0 <= cell[1] < size)
        if outside or cell in snake[:-1]:
            deadly.add(action)
    return deadly


def _play(env, policy, seed, max_steps=5000):
    """One episode; returns (total reward, info at the end, number of steps)."""
    obs, info = env.reset(seed=seed)
    total, done, steps = 0.0, False, 0
    while not done and steps < max_steps:
        obs, reward, terminated, truncated, info = env.step(policy(env, obs))
        total += reward
        done = terminated or truncated
        steps += 1
    return total, info, steps


# ----------------------------------------------------------------------------- environment


@pytest.mark.parametrize("obs", ["features", "grid"])
def test_check_env_passes(obs):
    check_env(SnakeEnv(obs=obs, size=6), warn=True)
    check_env(SnakeEnv(obs=obs, render_mode="ansi"), warn=True)


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="size"):
        SnakeEnv(size=4)
    with pytest.raises(ValueError, match="observation"):
        SnakeEnv(obs="pixels")


def test_start_state_is_a_length_three_snake_in_the_middle():
    headings = set()
    for seed in range(20):
        env = SnakeEnv(size=7)
        _, info = env.reset(seed=seed)
        view = env.tutor_view()
        head, neck, tail = view["snake"]
        assert head == (3, 3)
        dr, dc = _DELTAS[view["heading"]]
        assert neck == (3 - dr, 3 - dc) and tail == (3 - 2 * dr, 3 - 2 * dc)
        assert view["food"] not in view["snake"]
        assert info == {"food": 0, "length": 3}
        headings.add(view["heading"])
    assert headings == {UP, RIGHT, DOWN, LEFT}


def _record_expert_game(seed, steps=300):
    env = SnakeEnv()
    obs, _ = env.reset(seed=seed)
    trace, actions = [(obs, 0.0, env.tutor_view()["food"])], []
    for _ in range(steps):
        action = expert(env.tutor_view())
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action)
        trace.append((obs, reward, env.tutor_view()["food"]))
        if terminated or truncated:
            break
    return trace, actions


def test_same_seed_and_actions_replay_the_same_game():
    trace, actions = _record_expert_game(seed=7)
    assert sum(r for _, r, _ in trace) >= 5  # several food placements were exercised
    env = SnakeEnv()
    obs, _ = env.reset(seed=7)
    assert np.array_equal(obs, trace[0][0]) and env.tutor_view()["food"] == trace[0][2]
    for action, (obs_a, reward_a, food_a) in zip(actions, trace[1:], strict=True):
        obs, reward, *_ = env.step(action)
        assert np.array_equal(obs, obs_a)
        assert reward == reward_a
        assert env.tutor_view()["food"] == food_a


def test_different_seeds_give_different_games():
    starts = set()
    for seed in range(10):
        env = SnakeEnv()
        env.reset(seed=seed)
        view = env.tutor_view()
        starts.add((view["heading"], view["food"]))
    assert len(starts) >= 8
    food_sequences = {tuple(f for _, _, f in _record_expert_game(seed, 100)[0]) for seed in (1, 2)}
    assert len(food_sequences) == 2


def test_eating_food_scores_and_grows():
    env = _env_at(_view([(5, 5), (6, 5), (7, 5)], UP, food=(4, 5)))
    _, reward, terminated, truncated, info = env.step(STRAIGHT)
    view = env.tutor_view()
    assert reward == 1.0 and not terminated and not truncated
    assert view["snake"] == [(4, 5), (5, 5), (6, 5), (7, 5)]
    assert info == {"food": 1, "length": 4}
    assert view["food"] is not None and view["food"] not in view["snake"]
    assert view["steps_since_food"] == 0


def test_plain_move_keeps_length_and_turns_relative_to_heading():
    env = _env_at(_view([(5, 5), (6, 5), (7, 5)], UP, food=(0, 0)))
    _, reward, *_ = env.step(TURN_RIGHT)  # heading up, so right means east
    assert reward == 0.0
    assert env.tutor_view()["snake"] == [(5, 6), (5, 5), (6, 5)]
    assert env.tutor_view()["heading"] == RIGHT
    env.step(TURN_LEFT)  # heading east, so left means north
    assert env.tutor_view()["snake"][0] == (4, 6)


def test_hitting_a_wall_is_terminal_and_costs_one():
    env = _env_at(_view([(0, 5), (1, 5), (2, 5)], UP, food=(9, 9)))
    _, reward, terminated, truncated, info = env.step(STRAIGHT)
    assert reward == -1.0 and terminated and not truncated
    assert info["is_success"] is False


def test_hitting_the_body_is_terminal_but_the_leaving_tail_is_not():
    # Heading west at (4, 5); turning left (south) runs into the body segment at (5, 5).
    hook = [(4, 5), (4, 6), (5, 6), (5, 5), (6, 5)]
    env = _env_at(_view(hook, LEFT, food=(0, 0)))
    _, reward, terminated, truncated, info = env.step(TURN_LEFT)
    assert reward == -1.0 and terminated and not truncated
    assert info["is_success"] is False
    # A 2x2 loop of length 4: (5, 5) is now the tail, which empties on the same step.
    loop = [(4, 5), (4, 6), (5, 6), (5, 5)]
    env = _env_at(_view(loop, LEFT, food=(0, 0)))
    _, reward, terminated, *_ = env.step(TURN_LEFT)
    assert reward == 0.0 and not terminated
    assert env.tutor_view()["snake"] == [(5, 5), (4, 5), (4, 6), (5, 6)]


def test_steps_without_food_truncate():
    # Turning right forever circles a 2x2 square, which is always safe for a length-3 snake.
    env = _env_at(_view([(5, 5), (6, 5), (6, 4)], UP, food=(0, 0)), max_steps_without_food=6)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(TURN_RIGHT)
        assert not terminated and not truncated and "is_success" not in info
    _, reward, terminated, truncated, info = env.step(TURN_RIGHT)
    assert reward == 0.0 and truncated and not terminated
    assert info["is_success"] is False


def test_filling_the_board_wins():
    size = 5
    # Boustrophedon order covers the board; the snake holds all cells but the last one.
    order = [(r, c if r % 2 == 0 else size - 1 - c) for r in range(size) for c in range(size)]
    env = _env_at(_view(order[-2::-1], RIGHT, food=order[-1], size=size))
    _, reward, terminated, truncated, info = env.step(STRAIGHT)
    assert reward == 1.0 and terminated and not truncated
    assert info["length"] == size * size and info["is_success"] is True


@pytest.mark.parametrize(("success_food", "expected"), [(1, True), (2, False)])
def test_success_flag_counts_food(success_food, expected):
    view = _view([(0, 4), (0, 3), (0, 2)], RIGHT, food=(0, 5))
    env = _env_at(view, success_food=success_food)
    _, reward, *_ = env.step(STRAIGHT)  # eat one
    assert reward == 1.0
    _, reward, terminated, _, info = env.step(TURN_LEFT)  # north, into the wall
    assert reward == -1.0 and terminated
    assert info["is_success"] is expected and info["food"] == 1


def test_observations_match_the_state():
    view = _view([(0, 5), (0, 4), (1, 4)], RIGHT, food=(3, 2))
    obs = _env_at(view).set_state(view)
    # straight (east) is free, left (north) is the wall, right (south) is free; food down-left.
    expected = [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert obs.tolist() == expected and np.array_equal(features(view), obs)
    # Food in the head's column is neither left nor right; food in its row neither up nor down.
    assert features({**view, "food": (3, 5)})[7:].tolist() == [0, 0, 0, 1]
    assert features({**view, "food": (0, 9)})[7:].tolist() == [0, 1, 0, 0]
    grid = _env_at(view, obs="grid").set_state(view).reshape(3, 10, 10)
    assert grid[0].sum() == 1 and grid[0, 0, 5] == 1
    assert grid[1].sum() == 2 and grid[1, 0, 4] == 1 and grid[1, 1, 4] == 1
    assert grid[2].sum() == 1 and grid[2, 3, 2] == 1


def test_tutor_view_is_a_copy_and_render_shows_the_grid():
    env = SnakeEnv(render_mode="ansi")
    env.reset(seed=3)
    view = env.tutor_view()
    view["snake"].append((0, 0))
    assert len(env.tutor_view()["snake"]) == 3
    rows = env.render().splitlines()
    assert len(rows) == 10 and all(len(row) == 10 for row in rows)
    text = "".join(rows)
    assert text.count("o") == 2 and text.count("*") == 1
    hr, hc = env.tutor_view()["snake"][0]
    assert rows[hr][hc] == "^>v<"[env.tutor_view()["heading"]]


# ----------------------------------------------------------------------------- expert


def _varied_states(n_games=20, steps=300):
    """Varied states (short and long snakes, close to walls and to their own body): the expert
    mixed with random *non-deadly* moves, so that games last and the snake coils."""
    rng = np.random.default_rng(0)
    for seed in range(n_games):
        env = SnakeEnv(size=8)
        env.reset(seed=seed)
        eps = (0.2, 0.5, 0.8)[seed % 3]
        for _ in range(steps):
            view = env.tutor_view()
            yield view
            safe = [a for a in range(3) if a not in _deadly_actions(view)]
            action = int(rng.choice(safe)) if safe and rng.random() < eps else expert(view)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break


def test_expert_never_moves_into_immediate_death_when_it_can_avoid_it():
    constrained = 0
    for view in _varied_states():
        deadly = _deadly_actions(view)
        if len(deadly) < 3:
            assert expert(view) not in deadly, describe(view)
            constrained += bool(deadly)
    assert constrained > 500  # many states had a deadly move to avoid


def test_danger_features_predict_death_exactly():
    # The danger bits, the describe() verdicts and the environment's step must agree.
    env = SnakeEnv(size=8)
    env.reset(seed=0)
    for i, view in enumerate(_varied_states(n_games=6, steps=100)):
        obs = features(view)
        text = describe(view)
        for action, name in enumerate(("straight", "left", "right")):
            env.set_state(view)
            _, reward, terminated, *_ = env.step(action)
            dies = reward == -1.0
            assert bool(obs[action]) is dies and terminated is dies, (i, action, text)
            verdict = re.search(rf"{name} \(\w+\) -> -?\d+,-?\d+ (\w+)", text)
            assert verdict and verdict.group(1) == ("DEADLY" if dies else "safe"), text


@pytest.mark.parametrize(
    ("snake", "heading", "safe"),
    [
        ([(0, 0), (1, 0), (2, 0)], UP, TURN_RIGHT),  # top-left corner: walls ahead and left
        ([(9, 9), (8, 9), (7, 9)], DOWN, TURN_RIGHT),  # bottom-right corner
        ([(0, 5), (0, 6), (1, 6), (1, 5), (2, 5)], LEFT, STRAIGHT),  # wall right, body left
    ],
)
def test_expert_takes_the_only_safe_move(snake, heading, safe):
    view = _view(snake, heading, food=(5, 0) if snake[0] != (5, 0) else (9, 0))
    assert _deadly_actions(view) == {0, 1, 2} - {safe}
    assert expert(view) == safe


def test_expert_takes_a_shortest_path_on_an_open_board():
    # Head at (5, 5) heading up with the body below it: every food cell is reachable along a
    # Manhattan path, except those straight behind the body, which need a detour of 2.
    snake = [(5, 5), (6, 5), (7, 5)]
    for r in range(10):
        for c in range(10):
            if (r, c) in snake:
                continue
            expected = abs(r - 5) + abs(c - 5) + (2 if c == 5 and r > 5 else 0)
            env = _env_at(_view(snake, UP, food=(r, c)))
            steps, reward, terminated = 0, 0.0, False
            while not (reward or terminated) and steps < 30:
                _, reward, terminated, *_ = env.step(expert(env.tutor_view()))
                steps += 1
            assert reward == 1.0 and steps == expected, (r, c, steps, expected)


# A pocket of width 1 (column 0, rows 0-4) walled by the body along column 1, with the food at
# its far end (0, 0). The head is at (5, 0) heading west: right (north) enters the pocket along the
# shortest path, left (south) leads to the open board.
_POCKET_WALL = [(5, 0), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1), (0, 1), (0, 2), (1, 2)]
_LONG_TAIL = [(2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)]


def test_expert_refuses_food_in_a_dead_end_that_would_trap_it():
    # Long snake: after eating at (0, 0) the wall at (0, 1) is still body, so the head is stuck.
    view = _view(_POCKET_WALL + _LONG_TAIL, LEFT, food=(0, 0))
    assert _deadly_actions(view) == {STRAIGHT}
    assert expert(view) == TURN_LEFT


def test_expert_enters_the_same_pocket_when_the_wall_will_have_moved():
    # Short snake: by the time it eats, the wall segments have become tail and moved away.
    view = _view(_POCKET_WALL, LEFT, food=(0, 0))
    assert expert(view) == TURN_RIGHT


def test_expert_eats_far_more_than_random():
    rng = np.random.default_rng(0)
    seeds = range(10)
    expert_food = [
        _play(SnakeEnv(size=8), lambda e, o: expert(e.tutor_view()), s)[1]["food"] for s in seeds
    ]
    random_food = [
        _play(SnakeEnv(size=8), lambda e, o: int(rng.integers(3)), s)[1]["food"] for s in seeds
    ]
    assert np.mean(random_food) < 1.0
    assert np.mean(expert_food) > 25  # an 8x8 board holds 61 pieces of food


# ----------------------------------------------------------------------------- view functions


def test_describe_names_head_food_and_deadly_moves():
    view = _view([(0, 5), (1, 5), (2, 5)], UP, food=(3, 7))
    text = describe(view)
    assert "(0, 5)" in text and "(3, 7)" in text
    assert "3 down and 2 right" in text
    assert "straight (up) -> -1,5 DEADLY" in text
    assert "left (left) -> 0,4 safe" in text and "right (right) -> 0,6 safe" in text
    # A different state changes which move is flagged.
    text = describe(_view([(5, 0), (5, 1), (5, 2)], LEFT, food=(3, 7)))
    assert "straight (left) -> 5,-1 DEADLY" in text and text.count("DEADLY") == 1


def test_describe_stays_short_for_a_long_snake():
    order = [(r, c if r % 2 == 0 else 9 - c) for r in range(10) for c in range(10)]
    view = _view(order[79::-1], LEFT, food=order[90])  # an 80-cell snake, head at (7, 0)
    text = describe(view)
    assert len(text) < 600
    assert "Head at (7, 0)" in text and "Food at (9, 9)" in text
    assert "0,0. Moves" in text  # the tail, the escape route, is always named


def test_legal_actions_and_state_key():
    env = SnakeEnv()
    obs, _ = env.reset(seed=0)
    assert legal_actions(env.tutor_view()) == [0, 1, 2]
    key = state_key(obs)
    assert hash(key) == hash(state_key(obs.copy()))
    assert state_key(obs + np.float32(1e-3)) == key  # rounding absorbs float noise
    other = obs.copy()
    other[0] = 1.0 - other[0]
    assert state_key(other) != key
    assert {key: 1}[state_key(np.array(obs.tolist(), dtype=np.float64))] == 1


def test_game_object_builds_the_env():
    env = GAME.make(size=6, obs="grid")
    assert isinstance(env, SnakeEnv) and env.observation_space.shape == (108,)
    assert GAME.view_from_env and GAME.n_actions == 3
