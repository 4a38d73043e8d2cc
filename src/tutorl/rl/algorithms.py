"""The three students (DQN, PPO, A2C) with tutorl's default hyper-parameters.

SB3's defaults for DQN are tuned for Atari (1M buffer, target update every 10k steps) and learn
nothing in a few tens of thousands of steps on small games; the values below are the usual
small-task settings (RL Zoo style), identical for tutored and untutored arms. Any of them can be
overridden per run (``hyperparams``).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from tutorl.envs.base import Game
from tutorl.rl.hooks import (
    AdvisedActorCriticPolicy,
    AdvisedMaskablePolicy,
    TutoredA2C,
    TutoredDQN,
    TutoredMaskablePPO,
    TutoredPPO,
)
from tutorl.specs import ALGOS

DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "dqn": {
        "learning_rate": 1e-3,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "batch_size": 64,
        "gamma": 0.99,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 500,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.05,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 4,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "a2c": {
        "learning_rate": 7e-4,
        "n_steps": 8,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
}


def uses_action_masks(algo: str, env: VecEnv) -> bool:
    """PPO becomes MaskablePPO when the env exposes ``action_masks`` (Connect Four). SB3 has no
    masked DQN or A2C: there an illegal move is the student's mistake and the env scores it."""
    return algo == "ppo" and env.has_attr("action_masks")


def make_model(
    algo: str,
    game: Game,
    env: VecEnv,
    seed: int,
    hyperparams: dict[str, Any] | None = None,
    tensorboard_log: str | None = None,
):
    """A tutored SB3 model for ``algo`` on ``env`` (advisor attached separately)."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of: {', '.join(ALGOS)}")
    game.check_algo(algo)
    params = {**DEFAULT_HYPERPARAMS[algo], **(hyperparams or {})}
    common = {"seed": seed, "verbose": 0, "tensorboard_log": tensorboard_log, "device": "cpu"}
    if algo == "dqn":
        return TutoredDQN("MlpPolicy", env, **params, **common)
    if algo == "a2c":
        return TutoredA2C(AdvisedActorCriticPolicy, env, **params, **common)
    if uses_action_masks(algo, env):
        return TutoredMaskablePPO(AdvisedMaskablePolicy, env, **params, **common)
    return TutoredPPO(AdvisedActorCriticPolicy, env, **params, **common)
