"""Refinement: ULTRA-A executes the table's action at critical states and the agent's own
elsewhere; ULTRA-R changes the rewards of critical states only; real envs, real SB3."""

from __future__ import annotations

import numpy as np
import pytest

from tutorl.envs import get_game
from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import make_views_fn
from tutorl.ultra.refine import ImplicitRewardWrapper, TableAdvisor, refine, variants
from tutorl.ultra.table import CriticalTable, Entry
from tutorl.ultra.trajectories import collect, random_policy


def blackjack_table(n: int = 12, seed: int = 0):
    """A table over states random play visits: suggested action 'stick' (0) or 'hit' (1)."""
    game = get_game("blackjack")
    episodes = collect(game, random_policy(game, seed), 60, seed=seed)
    table = CriticalTable(game=game)
    states = [s for e in episodes for s in e.steps]
    rng = np.random.default_rng(seed)
    for step in rng.permutation(len(states)):
        if len(table) >= n:
            break
        s = states[step]
        entry = Entry(int(rng.integers(2)), reward=-0.5, source="expert", judged_action=s.action)
        table.add(s.obs, entry)
    return game, table, episodes


def test_table_advisor_replaces_exactly_the_critical_states():
    game, table, episodes = blackjack_table()
    obs = np.stack([s.obs for e in episodes for s in e.steps][:64])
    student = np.array([(i % 2) for i in range(len(obs))])
    advisor = TableAdvisor(game, table)
    executed = advisor(obs, student, make_views_fn(game, None, obs))
    for i, o in enumerate(obs):
        entry = table.lookup(o)
        expected = entry.action if entry is not None else student[i]
        assert executed[i] == expected
        assert advisor.last_advised[i] == (entry is not None)
    assert 0 < advisor.advised < len(obs)


def test_ultra_a_stores_the_tables_actions_in_the_replay_buffer():
    """DQN refinement under ULTRA-A: every transition from a critical state carries the
    table's action; the others carry the agent's own (not all the same action)."""
    from stable_baselines3.common.env_util import make_vec_env

    game, table, _ = blackjack_table(n=20)
    env = make_vec_env(lambda: game.make(**game.options), n_envs=1, seed=0)
    model = make_model("dqn", game, env, seed=0, hyperparams={"learning_starts": 0})
    model.learn(200)
    result = refine(model, game, table, "A", steps=800, seed=1, eval_episodes=10)
    buffer = model.replay_buffer
    size = buffer.size()
    obs, actions = buffer.observations[:size, 0], buffer.actions[:size, 0, 0]
    # SB3 keeps the replay buffer across set_env: the refinement's transitions follow the
    # first 200.
    critical = [i for i in range(200, size) if table.lookup(obs[i]) is not None]
    others = [i for i in range(200, size) if table.lookup(obs[i]) is None]
    assert critical and others
    wrong = [i for i in critical if actions[i] != table.lookup(obs[i]).action]
    # Only the documented loop breaker (a suggestion forced MAX_REPEATS times in a row on an
    # unchanged observation) may leave a critical state to the agent.
    assert len(wrong) == result["repeats_skipped"]
    assert len(set(actions[others].tolist())) == 2  # the agent's own choices, both actions
    assert result["actions_replaced"] == len(critical) - len(wrong)
    assert result["reward_bonuses"] == 0  # ULTRA-A leaves rewards alone


def test_ultra_r_changes_only_the_rewards_of_judged_actions_at_critical_states():
    game, table, _ = blackjack_table(n=15)
    plain = game.make(**game.options)
    shaped = ImplicitRewardWrapper(game.make(**game.options), table, reward_scale=0.4)
    rng = np.random.default_rng(3)
    changed = suggested = unchanged = 0
    for episode in range(150):
        obs, _ = plain.reset(seed=episode)
        obs2, _ = shaped.reset(seed=episode)
        done = False
        while not done:
            np.testing.assert_array_equal(obs, obs2)
            action = int(rng.integers(2))
            entry = table.lookup(obs)
            obs, r, term, trunc, _ = plain.step(action)
            obs2, r2, term2, trunc2, info = shaped.step(action)
            done = term or trunc
            assert (term, trunc) == (term2, trunc2)
            if entry is None:
                assert r2 == r and info["implicit_reward"] == 0.0
            elif action == entry.judged_action:  # the judged action: its implicit reward
                assert r2 == pytest.approx(r + 0.4 * entry.reward)
                changed += 1
            elif action == entry.action:  # the suggestion, when it differs: the opposite
                assert r2 == pytest.approx(r - 0.4 * entry.reward)
                suggested += 1
            else:
                assert r2 == r
                unchanged += 1
    assert changed > 0 and suggested > 0  # both shaped outcomes occurred


def test_a_positive_implicit_reward_is_paid_once_per_state_per_episode():
    """DoorKey: turning left four times returns to the same state. A suggestion ('turn left')
    that earns a bonus there pays it on the first lap only, so the loop cannot be farmed;
    the judged action's penalty is paid every time; a new episode pays again."""
    game = get_game("doorkey")
    env = game.make(**game.options)
    obs, _ = env.reset(seed=0)
    table = CriticalTable(game=game)
    table.add(obs, Entry(0, reward=-0.5, source="expert", judged_action=2))
    shaped = ImplicitRewardWrapper(env, table, reward_scale=1.0)
    for _episode in range(2):
        shaped.reset(seed=0)
        bonuses = []
        for _ in range(3):  # three laps of four left turns, back to the start state each time
            for _ in range(4):
                bonuses.append(shaped.step(0)[4]["implicit_reward"])
        assert bonuses[0] == pytest.approx(0.5)
        assert bonuses[4] == 0.0 and bonuses[8] == 0.0  # the later laps pay nothing
        assert sum(bonuses) == pytest.approx(0.5)
    assert shaped.withheld == 4
    # The judged action 'done' (6) is a no-op: the state stays critical, and its penalty is
    # paid on every repeat.
    noop = CriticalTable(game=game)
    noop.add(obs, Entry(0, reward=-0.5, source="expert", judged_action=6))
    shaped = ImplicitRewardWrapper(env, noop, reward_scale=1.0)
    shaped.reset(seed=0)
    penalties = [shaped.step(6)[4]["implicit_reward"] for _ in range(3)]
    assert penalties == pytest.approx([-0.5, -0.5, -0.5])


def test_refine_variants_and_bad_names():
    assert variants(["none", "a", "R", "ra", "random"]) == ["none", "A", "R", "RA", "random"]
    with pytest.raises(ValueError, match="unknown variant"):
        variants(["B"])


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_ultra_ra_on_policy_log_probs_are_the_executed_actions(algo):
    """PPO/A2C under ULTRA-RA: the rollout buffer's actions at critical states are the
    table's, with log-probabilities equal to the policy's evaluation of those actions."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    game, table, _ = blackjack_table(n=20)
    env = make_vec_env(lambda: game.make(**game.options), n_envs=2, seed=0)
    # Learning rate 0: the policy after refinement is the one that collected the rollout, so
    # the stored log-probabilities can be checked against it.
    model = make_model(algo, game, env, seed=0, hyperparams={"learning_rate": 0.0})
    refine(model, game, table, "RA", steps=256, seed=2, eval_episodes=5)
    buffer = model.rollout_buffer
    obs = buffer.observations.reshape(-1, *buffer.obs_shape)
    actions = buffer.actions.reshape(-1)
    stored = buffer.log_probs.reshape(-1)
    hits = [i for i in range(len(obs)) if table.lookup(obs[i]) is not None]
    assert hits
    for i in hits:
        assert actions[i] == table.lookup(obs[i]).action
    with th.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(
            th.as_tensor(obs), th.as_tensor(actions).long()
        )
    np.testing.assert_allclose(stored, log_prob.numpy(), rtol=1e-5, atol=1e-5)
