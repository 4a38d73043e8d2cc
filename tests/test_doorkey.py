"""MiniGrid DoorKey: the flat observation, the exact planner and its action values against the
real MiniGrid environment, and the game contract (SB3 training, the registry)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs.doorkey import (
    ACTION_NAMES,
    DROP,
    GAME,
    PICKUP,
    TOGGLE,
    FlatDoorKeyEnv,
    action_values,
    describe,
    expert,
    legal_actions,
    shortest_plan_length,
    state_key,
    view_from_observation,
)

Policy = Callable[[dict[str, Any], np.random.Generator], int]


def _expert_policy(view: dict[str, Any], rng: np.random.Generator) -> int:
    return expert(view)


def _random_policy(view: dict[str, Any], rng: np.random.Generator) -> int:
    return int(rng.integers(len(ACTION_NAMES)))


def _mixed_policy(view: dict[str, Any], rng: np.random.Generator) -> int:
    """Half expert, half random: reaches carried keys, dropped keys, open and closed doors."""
    return expert(view) if rng.random() < 0.5 else _random_policy(view, rng)


def _fumbling_policy(view: dict[str, Any], rng: np.random.Generator) -> int:
    """Half expert, half random with drop twice as likely: the key moves around."""
    if rng.random() < 0.5:
        return expert(view)
    return int(rng.choice([0, 1, 2, PICKUP, DROP, DROP, TOGGLE]))


def _trajectory(
    env: FlatDoorKeyEnv, seed: int, policy: Policy, limit: int = 10_000
) -> tuple[list[np.ndarray], list[dict[str, Any]], list[int], float, bool]:
    """One episode from ``reset(seed=seed)``, cut after ``limit`` steps: observations and views
    of the decision states, actions, the return and whether the goal was reached."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    observations, views, actions, total = [], [], [], 0.0
    for _ in range(limit):
        view = env.tutor_view()
        action = policy(view, rng)
        observations.append(obs)
        views.append(view)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            return observations, views, actions, total, bool(info["is_success"])
    return observations, views, actions, total, False  # cut at ``limit`` steps


def _grid_of_view(view: dict[str, Any]) -> dict[tuple[int, int], str]:
    """The objects of the grid implied by a view: wall/door/key/goal per cell."""
    size, wall_x = view["size"], view["wall_x"]
    cells = {}
    for x in range(size):
        for y in range(size):
            if x in (0, size - 1) or y in (0, size - 1) or x == wall_x:
                cells[x, y] = "wall"
    cells[tuple(view["door"])] = "door"
    cells[tuple(view["goal"])] = "goal"
    if view["key"] is not None:
        cells[tuple(view["key"])] = "key"
    return cells


def _minigrid_grid(env: FlatDoorKeyEnv) -> dict[tuple[int, int], str]:
    grid = env.unwrapped.grid
    return {
        (x, y): grid.get(x, y).type
        for x in range(grid.width)
        for y in range(grid.height)
        if grid.get(x, y) is not None
    }


# ----------------------------------------------------------------------------- environment


def test_check_env_passes() -> None:
    check_env(FlatDoorKeyEnv(), warn=True)


def test_invalid_options_raise() -> None:
    with pytest.raises(ValueError, match="size"):
        FlatDoorKeyEnv(size=7)
    with pytest.raises(ValueError, match="max_steps"):
        FlatDoorKeyEnv(max_steps=0)


@pytest.mark.parametrize("size", [5, 8])
def test_reset_is_deterministic_and_layouts_vary(size: int) -> None:
    env_a, env_b = FlatDoorKeyEnv(size=size), FlatDoorKeyEnv(size=size)
    layouts = set()
    for seed in range(20):
        obs_a, _ = env_a.reset(seed=seed)
        obs_b, _ = env_b.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert env_a.tutor_view() == env_b.tutor_view()
        assert env_a.observation_space.contains(obs_a)
        layouts.add(tuple(obs_a[[0, 1, 2, 5, 6, 7, 8]]))  # agent, key, door
    assert len(layouts) > 10


@pytest.mark.parametrize("size", [5, 6, 8])
def test_observation_determines_the_state(size: int) -> None:
    """Along mixed trajectories (keys carried and dropped, doors opened and closed) the
    observation gives the whole view but the step count, and the view gives MiniGrid's grid."""
    env = FlatDoorKeyEnv(size=size, max_steps=60)
    seen_carried = seen_dropped = 0
    for seed in range(6):
        observations, views, *_ = _trajectory(env, seed, _fumbling_policy)
        start_key = views[0]["key"]
        for obs, view in zip(observations, views, strict=True):
            assert view_from_observation(obs, size, view["step"], view["max_steps"]) == view
            seen_carried += view["carrying_key"]
            seen_dropped += view["key"] is not None and view["key"] != start_key
        # The last view is the live env's: its grid is MiniGrid's grid.
        assert _grid_of_view(env.tutor_view()) == _minigrid_grid(env)
    assert seen_carried
    # On 5x5 the key's side is a single column: the key is only ever put back where it was.
    assert seen_dropped or size == 5


def test_tutor_view_is_the_live_minigrid_state() -> None:
    env = FlatDoorKeyEnv()
    obs, _ = env.reset(seed=3)
    view = env.tutor_view()
    minigrid = env.unwrapped
    assert view["agent"] == list(minigrid.agent_pos)
    assert view["direction"] == minigrid.agent_dir
    assert view["step"] == 0 and view["max_steps"] == 250 == minigrid.max_steps
    assert view["door_state"] == "locked" and not view["carrying_key"]
    assert _grid_of_view(view) == _minigrid_grid(env)
    assert state_key(obs) == tuple(int(v) for v in obs)
    assert all(isinstance(v, int) for v in state_key(obs))


# ----------------------------------------------------------------------------- expert


@pytest.mark.parametrize("size", [5, 6, 8])
def test_expert_solves_every_seed_with_its_planned_return(size: int) -> None:
    env = FlatDoorKeyEnv(size=size)
    for seed in range(20 if size == 5 else 8):
        _, views, actions, total, success = _trajectory(env, seed, _expert_policy)
        assert success
        assert len(actions) == shortest_plan_length(views[0])
        first = action_values(views[0])
        assert total == pytest.approx(first.max(), abs=1e-12)
        assert total == pytest.approx(1 - 0.9 * len(actions) / env.max_steps, abs=1e-12)


def test_expert_plan_on_a_known_layout() -> None:
    """Seed 0 on 5x5: agent at (1, 3) facing left, key just above it, locked door at (2, 1)."""
    env = FlatDoorKeyEnv()
    env.reset(seed=0)
    view = env.tutor_view()
    assert (view["agent"], view["direction"], view["key"], view["door"]) == (
        [1, 3],
        2,
        [1, 2],
        [2, 1],
    )
    _, _, actions, _, success = _trajectory(env, 0, _expert_policy)
    names = [ACTION_NAMES[a] for a in actions]
    assert success
    # Turn to face the key, take it, walk up, face the door, unlock it, go through, turn down.
    assert names == [
        "right",
        "pickup",
        "forward",
        "forward",
        "right",
        "toggle",
        "forward",
        "forward",
        "right",
        "forward",
        "forward",
    ]


@pytest.mark.parametrize(
    ("size", "max_steps", "policy"),
    [(5, None, _random_policy), (5, 18, _mixed_policy), (6, 40, _mixed_policy)],
)
def test_action_values_are_the_returns_of_acting_then_following_the_expert(
    size: int, max_steps: int | None, policy: Policy
) -> None:
    """Exact check on the real env: copy it, take each action, let the expert finish."""
    env = FlatDoorKeyEnv(size=size, max_steps=max_steps)
    checked = zeros = 0
    for seed in range(3):
        _, views, actions, _, _ = _trajectory(env, seed, policy, limit=40)
        # Replay to every 4th state, checking all 7 actions there on copies of the env.
        env.reset(seed=seed)
        for t, (view, action) in enumerate(zip(views, actions, strict=True)):
            if t % 4 == 0:
                values = action_values(view)
                for a in range(len(ACTION_NAMES)):
                    branch = copy.deepcopy(env)
                    _, total, done, truncated, _ = branch.step(a)
                    while not (done or truncated):
                        _, reward, done, truncated, _ = branch.step(expert(branch.tutor_view()))
                        total += reward
                    assert total == pytest.approx(values[a], abs=1e-12), (seed, t, a)
                    zeros += values[a] == 0
                checked += 1
            env.step(action)
    assert checked >= 9
    if max_steps is not None:
        assert zeros  # some states were too late to reach the goal in time


@pytest.mark.parametrize("policy", [_expert_policy, _random_policy, _mixed_policy])
def test_expert_action_is_an_argmax_of_the_values(policy: Policy) -> None:
    env = FlatDoorKeyEnv(max_steps=100)
    late = 0
    for seed in range(5):
        _, views, *_ = _trajectory(env, seed, policy)
        for view in views:
            values = action_values(view)
            assert values.shape == (7,) and not np.isnan(values).any()
            assert ((values >= 0) & (values < 1)).all()
            assert values[expert(view)] == values.max()
            if values.max() > 0:  # equal values: the lowest action, as the expert breaks ties
                assert int(np.argmax(values)) == expert(view)
            late += values.max() == 0
    if policy is _random_policy:  # too late for the goal: all 0, the expert still plans
        assert late


def test_values_price_wasted_steps() -> None:
    env = FlatDoorKeyEnv()
    env.reset(seed=0)  # facing a wall: every action but a turn towards the key wastes a step
    view = env.tutor_view()
    values = action_values(view)
    step_cost = 0.9 / view["max_steps"]
    best = values.max()
    assert best == pytest.approx(1 - 0.9 * 11 / 250)
    # drop (no key), done, pickup (a wall ahead), toggle (a wall): each one wasted step.
    for a in (PICKUP, DROP, TOGGLE, 6):
        assert values[a] == pytest.approx(best - step_cost)
    # Turning left faces down, two turns away from facing the key: two steps lost.
    assert values[0] == pytest.approx(best - 2 * step_cost)


def test_invalid_views_raise() -> None:
    env = FlatDoorKeyEnv()
    env.reset(seed=0)
    view = env.tutor_view()
    with pytest.raises(ValueError, match="possible"):
        expert({**view, "agent": [0, 0]})  # inside a wall
    with pytest.raises(ValueError, match="possible"):
        expert({**view, "key": [1, 3]})  # on the agent's cell
    with pytest.raises(ValueError, match="layout"):
        action_values({**view, "door": [1, 1], "wall_x": 1})


# ----------------------------------------------------------------------------- views


def test_describe_names_the_objects_and_what_is_ahead() -> None:
    env = FlatDoorKeyEnv()
    env.reset(seed=0)
    text = describe(env.tutor_view())
    for word in ("key", "door", "goal", "locked", "facing left", "a wall", "250 left"):
        assert word in text
    env.step(1)  # turn right: now facing up, the key directly in front
    text = describe(env.tutor_view())
    assert "facing up" in text and "(1, 2): the key" in text
    env.step(PICKUP)
    text = describe(env.tutor_view())
    assert "carrying the key" in text and "248 left" in text
    assert len(text.splitlines()) <= 8


def test_legal_actions_are_all_seven() -> None:
    env = FlatDoorKeyEnv()
    env.reset(seed=0)
    assert legal_actions(env.tutor_view()) == list(range(7))
    assert GAME.n_actions == 7 and list(GAME.action_names) == ACTION_NAMES


def test_views_survive_a_json_round_trip() -> None:
    import json

    env = FlatDoorKeyEnv()
    env.reset(seed=1)
    view = env.tutor_view()
    again = json.loads(json.dumps(view))
    assert again == view
    assert expert(again) == expert(view)
    np.testing.assert_array_equal(action_values(again), action_values(view))


# ----------------------------------------------------------------------------- contract


def test_short_ppo_run_with_expert_advice() -> None:
    from tutorl.rl.algorithms import make_model
    from tutorl.rl.hooks import attach_advisor
    from tutorl.tutor import AdviceSchedule, Advisor, ExpertTutor

    vec_env = make_vec_env(lambda: GAME.make(), n_envs=2, seed=0)
    model = make_model("ppo", GAME, vec_env, seed=0, hyperparams={"n_steps": 64})
    advisor = Advisor(GAME, ExpertTutor(GAME), AdviceSchedule(0.5, 0.5, 0), seed=0)
    attach_advisor(model, GAME, advisor)
    model.learn(256)
    assert model.num_timesteps == 256
    assert advisor.stats.advised > 0
    views = vec_env.env_method("tutor_view")
    assert all(GAME.expert(v) in range(7) for v in views)


def test_registry_accepts_the_game() -> None:
    from tutorl.envs import get_game, register

    register(GAME)
    register(GAME)  # registering again just replaces the entry
    assert get_game("doorkey") is GAME
