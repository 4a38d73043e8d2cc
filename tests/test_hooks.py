"""The advice hooks inside real SB3 training: the buffers hold what was really executed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from tutorl.envs import get_game
from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import attach_advisor
from tutorl.rl.train import configure_threads
from tutorl.tutor import AdviceSchedule, Advisor, ConstantTutor, ExpertTutor

configure_threads()


class RecordActions(gym.Wrapper):
    """Records every action the environment really received."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.received: list[int] = []

    def step(self, action):
        self.received.append(int(action))
        return self.env.step(action)


def tutored_model(env_name, algo, tutor, p_ask, n_envs=2, seed=0, **hyper):
    game = get_game(env_name)
    env = make_vec_env(lambda: RecordActions(game.make()), n_envs=n_envs, seed=seed)
    model = make_model(algo, game, env, seed, hyper)
    advisor = Advisor(game, tutor(game), AdviceSchedule(p_ask, p_ask, 0), seed=seed)
    attach_advisor(model, game, advisor)
    return model, env, advisor


def received(env) -> np.ndarray:
    """Actions received by the envs, in vec-env step order (env 0, env 1, env 0, ...)."""
    per_env = [e.get_wrapper_attr("received") for e in env.envs]
    return np.array(per_env).T.reshape(-1)


def test_dqn_replay_buffer_holds_executed_tutor_actions():
    # Blackjack's student would mostly stick (0) or hit at random; the tutor always says hit (1).
    model, env, advisor = tutored_model(
        "blackjack", "dqn", lambda g: ConstantTutor(1), p_ask=0.5, learning_starts=10_000
    )
    model.learn(400)
    buffer = model.replay_buffer
    stored = buffer.actions[: buffer.pos].reshape(-1)  # (steps, n_envs) flattened like received
    executed = received(env)
    assert len(stored) == len(executed) == 400
    np.testing.assert_array_equal(stored, executed)
    # Advice really changed behaviour: far more hits than the ~50% of a random student.
    assert executed.mean() > 0.65
    assert advisor.stats.advised == pytest.approx(200, abs=40)


class CaptureRollout(BaseCallback):
    """Stops training after the first rollout so the buffer can be checked before any update."""

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        obs = th.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape))
        actions = th.as_tensor(buffer.actions.reshape(-1))
        kwargs = {}
        if isinstance(self.model, MaskablePPO):
            kwargs["action_masks"] = buffer.action_masks.reshape(-1, buffer.mask_dims)
        with th.no_grad():
            _, log_prob, _ = self.model.policy.evaluate_actions(obs, actions, **kwargs)
        self.recomputed = log_prob.numpy()
        self.stored = buffer.log_probs.reshape(-1).copy()
        self.actions = buffer.actions.reshape(-1).copy()

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_rollout_buffer_holds_executed_actions_and_their_log_probs(algo):
    model, env, advisor = tutored_model(
        "blackjack", algo, lambda g: ConstantTutor(1), p_ask=0.5, n_steps=64
    )
    capture = CaptureRollout()
    model.learn(128, callback=capture)
    n = 64 * 2
    np.testing.assert_array_equal(capture.actions[:n], received(env)[:n])
    # The stored log-probability is that of the executed action under the policy that acted.
    np.testing.assert_allclose(capture.stored[:n], capture.recomputed[:n], atol=1e-5)
    assert advisor.stats.advised > 0
    assert capture.actions[:n].mean() > 0.6


def test_maskable_ppo_advice_is_legal_with_finite_log_probs():
    model, env, advisor = tutored_model(
        "connect_four", "ppo", lambda g: ExpertTutor(g), p_ask=1.0, n_steps=64
    )
    assert isinstance(model, MaskablePPO)
    capture = CaptureRollout()
    model.learn(128, callback=capture)
    n = 64 * 2
    np.testing.assert_array_equal(capture.actions[:n], received(env)[:n])
    np.testing.assert_allclose(capture.stored[:n], capture.recomputed[:n], atol=1e-4)
    # A masked (illegal) action would have log-probability around -1e8.
    assert capture.stored[:n].min() > -20
    assert advisor.stats.advised == advisor.stats.asks == n
    assert advisor.stats.fallbacks == 0


def test_untutored_model_is_plain_sb3():
    model, env, _ = tutored_model("blackjack", "ppo", lambda g: ConstantTutor(1), 1.0, n_steps=32)
    attach_advisor(model, get_game("blackjack"), None)
    model.learn(64)
    assert 0.2 < received(env).mean() < 0.8  # the student's own stochastic choices


def test_saved_model_has_no_advisor_and_loads(tmp_path):
    from tutorl.rl.evaluation import load_model

    for algo in ("dqn", "ppo", "a2c"):
        hyper = {"dqn": {}, "ppo": {"n_steps": 16, "batch_size": 32}, "a2c": {"n_steps": 16}}[algo]
        model, _, _ = tutored_model("snake", algo, lambda g: ExpertTutor(g), 1.0, **hyper)
        model.learn(64)
        model.save(tmp_path / f"{algo}.zip")
        loaded = load_model(tmp_path / f"{algo}.zip")
        assert type(loaded).__name__.lower().endswith(algo)
        assert loaded.advisor is None
        obs = np.zeros((1, *loaded.observation_space.shape), dtype=np.float32)
        assert loaded.predict(obs, deterministic=True)[0].shape == (1,)
