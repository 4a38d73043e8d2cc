"""MuJoCo Hopper: a continuous-action game without an expert. Its description, untutored PPO
and A2C training, clear refusals (DQN, tutors, the expert identifier), and ULTRA with vector
actions: episodes, text, identification, radius tables, refinement and the whole pipeline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tutorl.envs import game_names, register
from tutorl.envs.base import NoExpertError
from tutorl.envs.hopper import GAME, TABLE_RADIUS, TABLE_SCALE, falling_reasons

if "hopper" not in game_names():
    register(GAME)

from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import make_views_fn
from tutorl.rl.train import RunConfig, train
from tutorl.ultra.identify import (
    IdentificationError,
    build_prefix,
    identify,
    parse_identification,
    schema_for,
)
from tutorl.ultra.refine import (
    ACTION_TOLERANCE,
    ImplicitRewardWrapper,
    TableAdvisor,
    refine,
    takes_judged_action,
)
from tutorl.ultra.table import CriticalTable, Entry
from tutorl.ultra.text import chunk_episode, step_line
from tutorl.ultra.trajectories import (
    Step,
    collect,
    load_episodes,
    random_policy,
    save_episodes,
)

NUMBER = re.compile(r"[-+]?\d+\.\d+")


def reset_obs(seed: int = 0) -> np.ndarray:
    env = GAME.make()
    obs, _ = env.reset(seed=seed)
    env.close()
    return obs


def radius_table(entries) -> CriticalTable:
    table = CriticalTable(game=GAME, mode="radius", radius=TABLE_RADIUS, scale=TABLE_SCALE)
    for obs, entry in entries:
        table.add(obs, entry)
    return table


# --------------------------------------------------------------------------------------------
# The game
# --------------------------------------------------------------------------------------------


def test_describe_is_informative_and_numeric():
    start = reset_obs()
    text = GAME.describe(start)
    for word in ("Torso height", "angle", "thigh", "leg", "foot", "forward", "m/s", "rad/s"):
        assert word in text
    assert "Torso height 1.25 m" in text and "Stable." in text
    assert len(NUMBER.findall(text)) == 11  # every observation component, with its unit
    assert "-0.00" not in text

    falling = np.array([0.75, -0.18, 0.1, -0.2, 0.3, 1.5, -2.0, -3.0, 0.5, -0.5, 1.0])
    text = GAME.describe(falling)
    assert "About to fall" in text and "torso low (0.75 m" in text and "tilted back" in text
    assert "+1.50 m/s" in text and "-3.00 rad/s" in text
    tipping = np.array([1.2, 0.1, 0, 0, 0, 0, 0, 1.5, 0, 0, 0])  # 0.1 + 0.1 s × 1.5 rad/s
    assert falling_reasons(tipping) == ["torso tipping forward (+1.50 rad/s, falls at ±0.2 rad)"]
    assert GAME.describe(np.array([1.2, 0.1, 0, 0, 0, 0, 0, 0.5, 0, 0, 0])).endswith("Stable.")


def test_the_game_contract_for_continuous_actions_without_an_expert():
    assert GAME.continuous and GAME.n_actions == 3 and GAME.action_names == ("thigh", "leg", "foot")
    assert not GAME.has_expert and GAME.action_values is None
    with pytest.raises(NoExpertError, match="hopper has no expert policy"):
        GAME.expert(reset_obs())
    assert GAME.legal_actions(reset_obs()) == []
    env = GAME.make()
    assert env.action_space.shape == (3,) and env.observation_space.shape == (11,)
    assert env.action_space.low.min() == GAME.action_bounds[0] == -1.0
    assert env.action_space.high.max() == GAME.action_bounds[1] == 1.0
    env.close()
    assert len(TABLE_SCALE) == 11
    assert GAME.state_key(reset_obs(0)) == GAME.state_key(reset_obs(0))
    np.testing.assert_array_equal(GAME.clip([2.0, -3.0, 0.5]), np.float32([1, -1, 0.5]))
    with pytest.raises(ValueError, match="3 components"):
        GAME.as_action([0.0, 0.0])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"algo": "dqn"}, "hopper has continuous actions and DQN needs discrete ones"),
        ({"algo": "ppo", "tutor": "expert"}, "--tutor expert is not available"),
        ({"algo": "a2c", "tutor": "llm"}, "--tutor llm is not available"),
    ],
)
def test_dqn_and_tutors_are_refused_in_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as info:
        RunConfig(env="hopper", **fields)
    assert "Traceback" not in str(info.value)


def test_ultra_config_refuses_the_expert_identifier_and_dqn():
    from tutorl.ultra.pipeline import UltraConfig

    with pytest.raises(ValueError, match=r"hopper has no expert.*--identifier llm"):
        UltraConfig(env="hopper", algo="ppo", identifiers=["expert", "llm"])
    with pytest.raises(ValueError, match="DQN needs discrete ones"):
        UltraConfig(env="hopper", algo="dqn", identifiers=["llm"])
    UltraConfig(env="hopper", algo="a2c", identifiers=["llm"])


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_a_short_untutored_run_trains_and_evaluates(algo):
    config = RunConfig(
        env="hopper", algo=algo, steps=256, n_envs=1, eval_freq=256, eval_episodes=2, seed=0
    )
    summary, model = train(config)
    assert summary["steps"] == 256 and summary["arm"] == "none"
    assert summary["success_threshold"] == 1000.0
    final = summary["final_eval"]
    assert final["episodes"] == 2 and 0 < final["mean_return"] < 1000
    actions, _ = model.predict(np.stack([reset_obs(0), reset_obs(1)]), deterministic=True)
    assert actions.shape == (2, 3) and np.all(np.abs(actions) <= 1.0)


# --------------------------------------------------------------------------------------------
# Episodes and text
# --------------------------------------------------------------------------------------------


def test_vector_actions_round_trip_through_episode_files(tmp_path):
    episodes = collect(GAME, random_policy(GAME, seed=3), 2, seed=7, max_steps=8)
    assert all(e.length == 8 and e.truncated for e in episodes)  # random play falls later
    step = episodes[0].steps[0]
    assert step.action.dtype == np.float32 and step.action.shape == (3,) and step.legal == []
    path = tmp_path / "episodes.jsonl"
    save_episodes(episodes, path)
    loaded = load_episodes(path, GAME)
    for a, b in zip(episodes, loaded, strict=True):
        assert (a.seed, a.truncated, a.total_return) == (b.seed, b.truncated, b.total_return)
        for s, t in zip(a.steps, b.steps, strict=True):
            np.testing.assert_array_equal(s.obs, t.obs)
            np.testing.assert_array_equal(s.action, t.action)  # exact: float32 -> JSON -> float32
            assert t.action.dtype == np.float32 and t.legal == [] and s.key == t.key
    # Same seeds, same policy seed: the same episodes (actions replayed into the env).
    again = collect(GAME, random_policy(GAME, seed=3), 2, seed=7, max_steps=8)
    np.testing.assert_array_equal(again[1].steps[-1].obs, episodes[1].steps[-1].obs)


def test_a_model_rolls_out_vector_actions_greedy_and_sampled():
    config = RunConfig(env="hopper", algo="a2c", steps=64, n_envs=1, eval_freq=64, eval_episodes=1)
    _, model = train(config)
    greedy = collect(GAME, model, 1, seed=0, max_steps=10)[0]
    sampled = collect(GAME, model, 1, seed=0, max_steps=10, deterministic=False)[0]
    expected, _ = model.predict(greedy.steps[3].obs[None], deterministic=True)
    np.testing.assert_allclose(greedy.steps[3].action, expected[0], rtol=1e-6)
    assert not np.allclose(greedy.steps[0].action, sampled.steps[0].action)
    again = collect(GAME, model, 1, seed=0, max_steps=10, deterministic=False)[0]
    np.testing.assert_array_equal(again.steps[5].action, sampled.steps[5].action)


def test_a_step_line_names_each_torque():
    obs = reset_obs()
    step = Step(4, obs, obs, np.float32([0.31, -0.8, 0.049]), 0.97, GAME.state_key(obs), [])
    line = step_line(GAME, step)
    assert line.startswith("Step 4: Torso height 1.25 m")
    assert line.endswith("Action: thigh +0.31, leg -0.80, foot +0.05. Reward: +0.97.")
    assert "\n" not in line


# --------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------


def _answer(action, step=2, reward=-0.5) -> str:
    item = {"step": step, "action": action, "reward": reward, "rationale": "r"}
    return json.dumps({"critical": [item]})


def test_the_schema_and_prompt_ask_for_three_numbers():
    schema = schema_for(GAME, 0, 9)
    action = schema["properties"]["critical"]["items"]["properties"]["action"]
    assert action == {
        "type": "array",
        "items": {"type": "number", "minimum": -1.0, "maximum": 1.0},
        "minItems": 3,
        "maxItems": 3,
    }
    prefix = build_prefix(GAME)
    assert "an array of 3 numbers from -1 to 1 (thigh, leg, foot)" in prefix
    example = json.loads(prefix.split("like:\n")[1].split("\n")[0])
    assert len(example["critical"][0]["action"]) == 3


def test_identification_accepts_a_valid_vector():
    [item] = parse_identification(_answer([0.3, -0.8, 1]), GAME, 0, 5).critical
    assert item.action == [0.3, -0.8, 1.0] and item.reward == -0.5


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ([0.3, -0.8], "action_length"),
        ([0.3, -0.8, 0.1, 0.0], "action_length"),
        ([], "action_length"),
        ([0.3, -0.8, 1.5], "action_range"),
        ([-1.01, 0, 0], "action_range"),
        ("thigh", "schema"),
        ([True, 0, 0], "schema"),
        (["0.1", 0, 0], "schema"),
    ],
)
def test_identification_rejects_bad_vectors(action, reason):
    with pytest.raises(IdentificationError) as info:
        parse_identification(_answer(action), GAME, 0, 5)
    assert info.value.reason == reason


class ScriptedLLM:
    """Answers each chunk with its first step and a fixed vector; the first ask of every
    chunk gets a two-component vector (invalid), so every chunk is re-asked once."""

    ACTION = (0.5, -0.25, 0.1)

    def __init__(self) -> None:
        self.requests = []

    def generate(self, requests):
        self.requests.extend(requests)
        out = []
        for request in requests:
            first = int(re.search(r"among steps (\d+) to", request.text).group(1))
            action = list(self.ACTION if request.temperature > 0 else self.ACTION[:2])
            out.append(_answer(action, step=first, reward=-0.6))
        return out


def test_identify_re_asks_an_invalid_vector_and_returns_tuples():
    episode = collect(GAME, random_policy(GAME, 1), 1, seed=0, max_steps=12)[0]
    chunks = chunk_episode(GAME, episode, max_tokens=300)
    assert len(chunks) > 1
    llm = ScriptedLLM()
    result = identify(llm, GAME, chunks)
    assert result.valid == len(chunks) and result.reasked == len(chunks)
    assert result.failures_by_reason == {"action_length": len(chunks)}
    assert [c.step for c in result.critical] == [c.first_step for c in chunks]
    assert all(c.action == (0.5, -0.25, 0.1) for c in result.critical)
    assert json.loads(llm.requests[0].json_schema)["title"] == "critical_steps"


# --------------------------------------------------------------------------------------------
# Tables and refinement
# --------------------------------------------------------------------------------------------


def test_a_radius_table_hits_within_the_radius_and_misses_outside(tmp_path):
    obs = reset_obs()
    table = radius_table([(obs, Entry([0.2, -0.4, 0.9], -0.7, "llm", judged_action=[0, 0, 1]))])
    scale = np.asarray(TABLE_SCALE)
    inside = obs + scale * np.array([0.6, 0, 0, 0, 0, 0.6, 0, 0, 0, 0, 0])  # 0.85 units
    outside = obs + scale * np.array([0.8, 0, 0, 0, 0, 0.8, 0, 0, 0, 0, 0])  # 1.13 units
    hit = table.lookup(inside)
    assert hit is not None and hit.action.tolist() == [0.2, -0.4, 0.9]
    assert table.lookup(outside) is None
    # Units matter: 0.2 rad on the torso angle is 2 units (a miss), 0.2 m/s only 0.2 (a hit).
    assert table.lookup(obs + np.eye(11)[1] * 0.2) is None
    assert table.lookup(obs + np.eye(11)[5] * 0.2) is not None
    path = tmp_path / "table.json"
    table.save(path)
    loaded = CriticalTable.load(path, game=GAME)
    np.testing.assert_array_equal(loaded.scale, scale)
    assert loaded.radius == TABLE_RADIUS and loaded.mode == "radius"
    [(_, entry)] = list(loaded)
    np.testing.assert_array_equal(entry.action, [0.2, -0.4, 0.9])
    np.testing.assert_array_equal(entry.judged_action, [0, 0, 1])
    assert loaded.lookup(inside) is not None and loaded.lookup(outside) is None


def test_the_random_ablation_draws_vectors_in_the_action_box():
    episodes = collect(GAME, random_policy(GAME, 2), 3, seed=0, max_steps=30)
    far = [s.obs for e in episodes for s in e.steps][::9]
    table = radius_table([(o, Entry([0, 0, 0], -0.5, "llm")) for o in far])
    shuffled = CriticalTable.random_like(table, episodes, seed=4)
    assert len(shuffled) == len(table) > 1
    for _, entry in shuffled:
        assert entry.source == "random" and entry.action.shape == (3,)
        assert np.all(np.abs(entry.action) <= 1.0) and not np.allclose(entry.action, 0)
        assert entry.judged_action.shape == (3,) and entry.reward == -0.5


def test_the_judged_action_holds_within_a_quarter_of_the_range_per_torque():
    assert ACTION_TOLERANCE == 0.25
    entry = Entry([-1, 0, 0], -1.0, "llm", judged_action=[0.2, -0.4, 0.9])
    assert takes_judged_action(GAME, entry, np.float32([0.2, -0.4, 0.9]))
    assert takes_judged_action(GAME, entry, np.float32([0.69, -0.4, 0.41]))
    assert not takes_judged_action(GAME, entry, np.float32([0.71, -0.4, 0.9]))
    assert takes_judged_action(GAME, Entry(None, 0.5, "llm"), np.float32([1, 1, 1]))
    # Within the box but closer to the suggestion: the suggestion is not judged.
    near = Entry([0.0, -0.2, 0.6], -1.0, "llm", judged_action=[0.2, -0.4, 0.9])
    assert not takes_judged_action(GAME, near, np.float32([0.0, -0.2, 0.6]))
    assert takes_judged_action(GAME, near, np.float32([0.2, -0.35, 0.85]))

    obs = reset_obs(5)
    table = radius_table([(obs, entry)])
    for action, bonus in (([0.3, -0.3, 0.8], -0.5), ([-0.9, -0.4, 0.9], 0.0)):
        env = ImplicitRewardWrapper(GAME.make(), table, reward_scale=0.5)
        plain = GAME.make()
        env.reset(seed=5)
        plain.reset(seed=5)
        _, reward, *_, info = env.step(np.float32(action))
        _, expected, *_ = plain.step(np.float32(action))
        assert info["implicit_reward"] == bonus and reward == pytest.approx(expected + bonus)


def test_table_advisor_executes_the_clipped_vector_at_critical_states():
    obs = reset_obs()
    table = radius_table([(obs, Entry([1.7, -0.4, 0.25], -0.5, "llm"))])
    far = obs + np.eye(11)[0] * 0.5
    batch = np.stack([obs, far])
    student = np.float32([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    advisor = TableAdvisor(GAME, table)
    executed = advisor(batch, student, make_views_fn(GAME, None, batch))
    assert executed.dtype == np.float32
    np.testing.assert_array_equal(executed[0], np.float32([1.0, -0.4, 0.25]))
    np.testing.assert_array_equal(executed[1], student[1])
    assert advisor.last_advised.tolist() == [True, False] and advisor.advised == 1


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_ultra_a_stores_the_tables_vector_with_its_log_probability(algo):
    """Refinement under ULTRA-A: every rollout step from a critical state holds the table's
    (clipped) vector, with the log-probability the unchanged policy gives it."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    # Critical states at the start of every episode (resets differ by at most 0.005): the
    # refinement's rollouts meet them after each fall.
    entry = Entry([0.9, -1.5, 0.3], -0.5, "llm", judged_action=[0, 0, 0])
    table = radius_table([(reset_obs(s), entry) for s in range(3)])
    env = make_vec_env(lambda: GAME.make(), n_envs=2, seed=0)
    # One rollout of 256 steps, so the buffer holds every step of the refinement.
    params = {"learning_rate": 0.0, "n_steps": 128}
    model = make_model(algo, GAME, env, seed=0, hyperparams=params)
    result = refine(model, GAME, table, "A", steps=256, seed=1, eval_episodes=2)
    buffer = model.rollout_buffer
    obs = buffer.observations.reshape(-1, *buffer.obs_shape)
    actions = buffer.actions.reshape(-1, 3)
    hits = [i for i in range(len(obs)) if table.lookup(obs[i]) is not None]
    others = [i for i in range(len(obs)) if i not in hits]
    assert hits and others
    for i in hits:
        np.testing.assert_array_equal(actions[i], np.float32([0.9, -1.0, 0.3]))
    assert not np.any(np.all(actions[others] == np.float32([0.9, -1.0, 0.3]), axis=1))
    assert result["actions_replaced"] >= len(hits) and result["reward_bonuses"] == 0
    with th.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(th.as_tensor(obs), th.as_tensor(actions))
    np.testing.assert_allclose(buffer.log_probs.reshape(-1), log_prob.numpy(), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def test_run_ultra_on_hopper_end_to_end(tmp_path, monkeypatch):
    from tutorl.llm.spec import LLMSpec
    from tutorl.ultra import pipeline

    llm = ScriptedLLM()
    monkeypatch.setattr(LLMSpec, "make", lambda self, service=None: llm)
    config = pipeline.UltraConfig(
        env="hopper",
        algo="ppo",
        train_steps=256,
        episodes=2,
        max_episode_steps=50,
        identifiers=["llm"],
        variants=["none", "A", "RA", "random"],
        refine_steps=256,
        seeds=1,
        eval_episodes=2,
        chunk_tokens=500,
        max_critical=2,
    )
    out = tmp_path / "ultra"
    summary = pipeline.run_ultra(config, out)
    seed = out / "seed0"
    episodes = load_episodes(seed / "episodes.jsonl", GAME)
    assert len(episodes) == 2 and all(e.steps[0].action.shape == (3,) for e in episodes)
    record = json.loads((seed / "llm" / "identification.json").read_text())
    counters = record["counters"]
    assert counters["valid"] == counters["chunks"] > 0 and counters["skipped"] == 0
    assert all(item[2] == list(ScriptedLLM.ACTION) for item in record["critical"])
    assert "quality" not in record  # no expert: no precision or recall
    table = CriticalTable.load(seed / "llm" / "table.json", game=GAME)
    assert table.mode == "radius" and table.radius == TABLE_RADIUS
    assert 0 < len(table) <= counters["critical"]
    for _, entry in table:
        np.testing.assert_allclose(entry.action, ScriptedLLM.ACTION)
    random_table = CriticalTable.load(seed / "llm" / "random-table.json", game=GAME)
    assert 0 < len(random_table) <= len(table)
    assert all(np.all(np.abs(e.action) <= 1) for e in random_table.entries())
    rows = {r["variant"]: r for r in summary["rows"]}
    assert set(rows) == {"none", "A", "RA", "random"}
    assert len({r["before"][0] for r in rows.values()}) == 1  # the same agent before
    assert rows["A"]["precision"] is None and rows["A"]["recall"] is None
    assert "| llm | A | 1 |" in (out / "report" / "ultra.md").read_text()
    results = {v: json.loads((seed / "llm" / f"{v}.json").read_text()) for v in ("A", "RA")}
    assert results["A"]["actions_replaced"] > 0 and results["A"]["reward_bonuses"] == 0
    # RA executes the suggestion at critical states, which then earns the opposite of the
    # judged action's implicit reward: RA pays bonuses where A pays none.
    assert results["RA"]["actions_replaced"] > 0 and results["RA"]["reward_bonuses"] > 0
