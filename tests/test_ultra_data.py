"""ULTRA's data layer on the real games: rollouts, episode files, episode text, the lookup table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs import get_game
from tutorl.rl.algorithms import make_model
from tutorl.rl.train import configure_threads
from tutorl.ultra.table import CriticalTable, Entry
from tutorl.ultra.text import approx_tokens, chunk_episode, episode_lines
from tutorl.ultra.trajectories import (
    Episode,
    collect,
    expert_policy,
    from_jsonable,
    load_episodes,
    random_policy,
    save_episodes,
    to_jsonable,
    train_suboptimal,
)

configure_threads()

GAMES = ("blackjack", "snake", "connect_four")
# Snake's expert plays for over a thousand steps: cut it short to keep the tests fast.
MAX_STEPS = {"blackjack": None, "snake": 80, "connect_four": None}


def tiny_model(name: str, algo: str = "ppo", seed: int = 0):
    """An untrained SB3 model (MaskablePPO for Connect Four's PPO)."""
    game = get_game(name)
    env = make_vec_env(lambda: game.make(**game.options), n_envs=1, seed=seed)
    return make_model(algo, game, env, seed)


def same_episodes(a: list[Episode], b: list[Episode]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.seed, x.length, x.terminated, x.truncated) != (
            y.seed,
            y.length,
            y.terminated,
            y.truncated,
        ):
            return False
        for s, t in zip(x.steps, y.steps, strict=True):
            if (s.t, s.action, s.reward, s.key, s.legal) != (
                t.t,
                t.action,
                t.reward,
                t.key,
                t.legal,
            ):
                return False
            if s.obs.dtype != t.obs.dtype or not np.array_equal(s.obs, t.obs):
                return False
    return True


def check_episodes(game, episodes: list[Episode], n: int, seed: int) -> None:
    assert [e.seed for e in episodes] == list(range(seed, seed + n))
    for episode in episodes:
        assert episode.length == len(episode.steps) > 0
        assert episode.total_return == pytest.approx(sum(s.reward for s in episode.steps))
        assert [s.t for s in episode.steps] == list(range(episode.length))
        for step in episode.steps:
            assert step.action in step.legal
            assert step.legal == game.legal_actions(step.view)
            assert step.key == game.state_key(step.obs)
            if not game.view_from_env:
                assert step.view is step.obs
        assert episode.terminated or episode.truncated


# --------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GAMES)
def test_collect_expert_is_legal_summed_and_deterministic(name):
    game = get_game(name)
    kwargs = {"max_steps": MAX_STEPS[name]}
    episodes = collect(game, expert_policy(game), 4, seed=3, **kwargs)
    check_episodes(game, episodes, 4, 3)
    for episode in episodes:
        assert all(s.action == game.expert(s.view) for s in episode.steps)
    assert same_episodes(episodes, collect(game, expert_policy(game), 4, seed=3, **kwargs))
    # A different seed plays different games (at least one of four differs).
    assert not same_episodes(episodes, collect(game, expert_policy(game), 4, seed=50, **kwargs))
    if name == "snake":
        assert all(e.length == 80 and e.truncated for e in episodes)  # cut by max_steps
        assert isinstance(episodes[0].steps[0].view, dict)


@pytest.mark.parametrize("name", GAMES)
def test_collect_from_an_sb3_model(name):
    game = get_game(name)
    model = tiny_model(name)
    if name == "connect_four":
        from sb3_contrib import MaskablePPO

        assert isinstance(model, MaskablePPO)  # its action masks keep every action legal
    episodes = collect(game, model, 3, seed=0, max_steps=200)
    check_episodes(game, episodes, 3, 0)
    assert same_episodes(episodes, collect(game, model, 3, seed=0, max_steps=200))
    # Greedy actions are the model's own predictions.
    step = episodes[0].steps[0]
    kwargs = {}
    if name == "connect_four":
        kwargs["action_masks"] = np.isin(np.arange(game.n_actions), step.legal)[None]
    predicted = model.predict(step.obs[None], deterministic=True, **kwargs)[0]
    assert int(predicted[0]) == step.action
    # Sampled actions are reproducible too (seeded per episode), and leave global RNGs alone.
    state = np.random.get_state()[1].copy()
    sampled = collect(game, model, 3, seed=0, deterministic=False, max_steps=200)
    assert np.array_equal(state, np.random.get_state()[1])
    check_episodes(game, sampled, 3, 0)
    assert same_episodes(
        sampled, collect(game, model, 3, seed=0, deterministic=False, max_steps=200)
    )


def test_train_suboptimal_returns_a_model_that_collects():
    game = get_game("blackjack")
    model = train_suboptimal(game, "a2c", steps=64, seed=1)
    assert model.num_timesteps >= 64
    episodes = collect(game, model, 5, seed=0)
    check_episodes(game, episodes, 5, 0)


def test_env_options_reach_the_env():
    game = get_game("snake")
    episodes = collect(game, random_policy(game, 0), 2, seed=0, env_options={"size": 6})
    assert all(s.view["size"] == 6 for e in episodes for s in e.steps)


# --------------------------------------------------------------------------------------------
# Episode files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GAMES)
def test_save_load_round_trip_keeps_steps_and_views(name, tmp_path):
    game = get_game(name)
    episodes = collect(game, expert_policy(game), 2, seed=0, max_steps=MAX_STEPS[name])
    episodes += collect(game, random_policy(game, 1), 2, seed=10)
    path = tmp_path / "sub" / "episodes.jsonl"
    save_episodes(episodes, path)
    assert len(path.read_text().splitlines()) == 4
    loaded = load_episodes(path, game)
    assert same_episodes(episodes, loaded)
    for a, b in zip(episodes, loaded, strict=True):
        assert a.info == b.info
        assert a.total_return == b.total_return
        for s, t in zip(a.steps, b.steps, strict=True):
            assert game.describe(s.view) == game.describe(t.view)
            assert game.expert(s.view) == game.expert(t.view)
            assert game.legal_actions(s.view) == game.legal_actions(t.view)
    if name == "snake":
        view = loaded[0].steps[0].view
        assert isinstance(view["snake"][0], tuple) and isinstance(view["food"], tuple)


def test_load_rejects_foreign_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_episodes(path, get_game("blackjack"))


def test_to_jsonable_converts_numpy_and_round_trips_types():
    value = {"a": np.int64(3), "b": (1, 2), "c": np.arange(4, dtype=np.float32).reshape(2, 2)}
    plain = to_jsonable(value)
    assert plain == {"a": 3, "b": [1, 2], "c": [[0.0, 1.0], [2.0, 3.0]]}
    json.dumps(plain)
    tagged = json.loads(json.dumps(to_jsonable(value, keep_types=True)))
    back = from_jsonable(tagged)
    assert back["a"] == 3 and back["b"] == (1, 2)
    assert back["c"].dtype == np.float32 and np.array_equal(back["c"], value["c"])
    with pytest.raises(TypeError):
        to_jsonable(object())


# --------------------------------------------------------------------------------------------
# Episode text
# --------------------------------------------------------------------------------------------


def test_episode_lines_one_numbered_line_per_step():
    game = get_game("connect_four")  # its describer spans several lines
    episode = collect(game, random_policy(game, 0), 1, seed=0)[0]
    lines = episode_lines(game, episode)
    assert len(lines) == episode.length
    for step, line in zip(episode.steps, lines, strict=True):
        assert "\n" not in line and "  " not in line
        assert line.startswith(f"Step {step.t}: Connect Four board")
        assert line.endswith(f"Action: column {step.action}. Reward: {step.reward:+g}.")


@pytest.mark.parametrize("max_tokens", [60, 400, 1500, 100_000])
def test_chunks_hold_every_step_once_in_order_within_budget(max_tokens):
    game = get_game("snake")
    episode = collect(game, expert_policy(game), 1, seed=0, max_steps=120)[0]
    lines = episode_lines(game, episode)
    chunks = chunk_episode(game, episode, max_tokens=max_tokens)
    covered = [t for c in chunks for t in range(c.first_step, c.last_step + 1)]
    assert covered == list(range(episode.length))
    for chunk in chunks:
        header, *body = chunk.text.split("\n")
        assert header == (
            f"Episode (seed 0), steps {chunk.first_step}-{chunk.last_step} of {episode.length}, "
            f"final return {episode.total_return:+g}:"
        )
        assert body == lines[chunk.first_step : chunk.last_step + 1]
        assert chunk.tokens == approx_tokens(chunk.text)
        if len(body) > 1:
            assert chunk.tokens <= max_tokens
    if max_tokens == 60:  # every Snake line is longer than that: one chunk per line
        assert len(chunks) == episode.length
    if max_tokens == 100_000:
        assert len(chunks) == 1


def test_chunks_respect_a_custom_non_additive_counter():
    game = get_game("blackjack")
    episodes = collect(game, random_policy(game, 0), 30, seed=0)
    episode = max(episodes, key=lambda e: e.length)
    assert episode.length >= 3

    def words_squared(text: str) -> int:  # superadditive: summed line counts underestimate it
        return len(text.split()) ** 2 // 50

    for budget in (100, 300, 1000):
        chunks = chunk_episode(game, episode, max_tokens=budget, count_tokens=words_squared)
        covered = [t for c in chunks for t in range(c.first_step, c.last_step + 1)]
        assert covered == list(range(episode.length))
        for c in chunks:
            assert c.first_step == c.last_step or words_squared(c.text) <= budget


# --------------------------------------------------------------------------------------------
# The lookup table
# --------------------------------------------------------------------------------------------


def distinct_steps(game, episodes):
    seen, steps = set(), []
    for step in (s for e in episodes for s in e.steps):
        if step.key not in seen:
            seen.add(step.key)
            steps.append(step)
    return steps


@pytest.mark.parametrize("name", GAMES)
def test_exact_table_hits_stored_states_and_misses_others(name, tmp_path):
    game = get_game(name)
    episodes = collect(game, random_policy(game, 0), 20, seed=0)
    steps = distinct_steps(game, episodes)
    assert len(steps) >= 6
    stored, others = steps[::2], steps[1::2]
    table = CriticalTable(((s.obs, Entry(s.legal[0], 0.5, "expert")) for s in stored), game=game)
    assert len(table) == len(stored) and table.collisions == 0
    assert all(table.lookup(s.obs) is not None for s in stored)
    assert table.lookup_batch(np.stack([s.obs for s in others])) == [None] * len(others)
    assert (table.hits, table.misses) == (len(stored), len(others))
    # save/load keeps every state and entry; counters restart.
    table.save(tmp_path / "table.json")
    loaded = CriticalTable.load(tmp_path / "table.json")
    assert loaded.game is game and len(loaded) == len(table) and loaded.hits == 0
    for s in stored:
        assert loaded.lookup(s.obs) == table.lookup(s.obs)
    assert all(loaded.lookup(s.obs) is None for s in others)


def test_entry_reward_is_clipped_and_nan_refused():
    assert Entry(1, 3.0, "llm").reward == 1.0
    assert Entry(1, -7, "llm").reward == -1.0
    assert Entry(None, 0.25, "llm").reward == 0.25
    with pytest.raises(ValueError):
        Entry(0, float("nan"), "llm")


def test_exact_collisions_keep_the_larger_abs_reward_first_on_ties():
    game = get_game("blackjack")
    obs = np.array([15, 10, 0])
    table = CriticalTable(game=game)
    assert table.add(obs, Entry(1, 0.3, "llm", "first"))
    assert table.add(obs.copy(), Entry(0, -0.8, "llm", "bigger"))  # larger |reward| wins
    assert not table.add(obs, Entry(1, 0.8, "llm", "tie"))  # tie: the older one stays
    assert not table.add(obs, Entry(1, 0.1, "llm", "smaller"))
    assert len(table) == 1 and table.collisions == 3
    assert table.lookup(obs) == Entry(0, -0.8, "llm", "bigger")
    # A custom key function decides what collides: here, the player's total only.
    by_total = CriticalTable(key_fn=lambda o: int(o[0]))
    by_total.add(np.array([15, 10, 0]), Entry(1, 0.2, "llm"))
    by_total.add(np.array([15, 2, 1]), Entry(0, 0.9, "llm"))
    assert len(by_total) == 1 and by_total.lookup(np.array([15, 5, 0])).action == 0


def test_radius_table_hits_inside_and_misses_just_outside(tmp_path):
    a, b = np.zeros(4, dtype=np.float32), np.full(4, 10.0, dtype=np.float32)
    table = CriticalTable(
        [(a, Entry(0, 0.5, "llm")), (b, Entry(1, -0.5, "llm"))], mode="radius", radius=1.0
    )
    step = np.array([1.0, 0, 0, 0])  # a unit direction
    assert table.lookup(a + 0.999 * step).action == 0
    assert table.lookup(a + 1.0 * step).action == 0  # the radius itself is inside
    assert table.lookup(a + 1.001 * step) is None
    assert table.lookup(b - 0.5).action == 1  # distance sqrt(4 * 0.25) = 1.0 exactly
    diag = np.full(4, 0.49)  # distance 0.98
    assert table.lookup_batch([a + diag, b - diag, a + 2 * diag]) == [
        Entry(0, 0.5, "llm"),
        Entry(1, -0.5, "llm"),
        None,
    ]
    assert (table.hits, table.misses) == (5, 2)
    with pytest.raises(ValueError):
        table.lookup(np.zeros(5))
    table.save(tmp_path / "r.json")
    loaded = CriticalTable.load(tmp_path / "r.json")
    assert loaded.mode == "radius" and loaded.radius == 1.0 and len(loaded) == 2
    assert loaded.lookup(a + 1.001 * step) is None and loaded.lookup(b).action == 1


def test_radius_collisions_follow_the_same_rule():
    table = CriticalTable(mode="radius", radius=0.5)
    table.add(np.zeros(2), Entry(0, 0.2, "llm"))
    assert table.add(np.array([0.3, 0.0]), Entry(1, 0.9, "llm"))  # within radius, larger wins
    assert not table.add(np.array([0.0, 0.4]), Entry(2, -0.9, "llm"))  # tie: older stays
    assert table.add(np.array([2.0, 0.0]), Entry(2, 0.1, "llm"))  # far: a new state
    assert len(table) == 2 and table.collisions == 2
    stored = [obs.tolist() for obs, _ in table]
    assert stored == [[0.3, 0.0], [2.0, 0.0]]  # the survivor keeps its own observation
    assert table.lookup(np.array([0.7, 0.0])).action == 1


def test_table_arguments_are_checked():
    with pytest.raises(ValueError):
        CriticalTable()  # exact without a key function
    with pytest.raises(ValueError):
        CriticalTable(mode="radius")
    with pytest.raises(ValueError):
        CriticalTable(mode="nearest", radius=1.0)


@pytest.mark.parametrize("name", ["blackjack", "connect_four"])
def test_random_like_same_size_deterministic_states_from_episodes(name):
    game = get_game(name)
    episodes = collect(game, random_policy(game, 0), 20, seed=0)
    steps = distinct_steps(game, episodes)
    rewards = [0.9, -0.4, 0.1, -1.0]
    table = CriticalTable(
        ((s.obs, Entry(s.legal[-1], rewards[i % 4], "llm")) for i, s in enumerate(steps[:8])),
        game=game,
    )
    assert len(table) == 8
    random_a = CriticalTable.random_like(table, episodes, seed=7)
    random_b = CriticalTable.random_like(table, episodes, seed=7)
    random_c = CriticalTable.random_like(table, episodes, seed=8)
    assert len(random_a) == len(table)
    by_key = {s.key: s for s in steps}
    pairs_a = [(game.state_key(o), e) for o, e in random_a]
    assert pairs_a == [(game.state_key(o), e) for o, e in random_b]
    assert pairs_a != [(game.state_key(o), e) for o, e in random_c]
    for key, entry in pairs_a:
        assert key in by_key  # a state the episodes visited
        assert entry.action in by_key[key].legal
        assert entry.reward in rewards and entry.source == "random"
    assert random_a.mode == table.mode and random_a.key_fn == table.key_fn
    # Fewer distinct states than entries: the random table takes them all and stops there.
    few = collect(game, random_policy(game, 0), 1, seed=0)
    assert len(CriticalTable.random_like(table, few, seed=0)) == len(distinct_steps(game, few))
    assert len(CriticalTable.random_like(table.empty_like(), episodes, seed=0)) == 0


def test_random_like_radius_mode():
    game = get_game("snake")
    episodes = collect(game, random_policy(game, 0), 10, seed=0)
    obs = [s.obs for e in episodes for s in e.steps]
    table = CriticalTable(
        [(obs[0], Entry(0, 0.5, "llm")), (obs[-1], Entry(1, -0.5, "llm"))],
        mode="radius",
        radius=0.0,
    )
    assert len(table) == 2
    random = CriticalTable.random_like(table, episodes, seed=0)
    assert len(random) == 2 and random.radius == 0.0
    for o, entry in random:
        assert any(np.array_equal(o, x) for x in obs) and entry.reward in (0.5, -0.5)


def test_sampled_dqn_actions_are_seeded_and_leave_the_model_alone():
    game = get_game("connect_four")
    model = tiny_model("connect_four", algo="dqn")
    model.exploration_rate = 0.5  # epsilon-greedy draws from the model's action space
    space_state = model.action_space.np_random.bit_generator.state
    greedy = collect(game, model, 4, seed=0)
    sampled = collect(game, model, 4, seed=0, deterministic=False)
    assert same_episodes(sampled, collect(game, model, 4, seed=0, deterministic=False))
    assert not same_episodes(greedy, sampled)
    assert model.action_space.np_random.bit_generator.state == space_state
