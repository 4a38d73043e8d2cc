"""The advice hook: exactly one place per algorithm family where advice replaces an action.

* DQN (off-policy): ``_sample_action`` returns the executed action as both the env action and
  the replay-buffer action, so the buffer stores what was really done.
* PPO, A2C, MaskablePPO (on-policy): the policy's ``forward`` is called only while collecting
  rollouts (training uses ``evaluate_actions``, prediction ``_predict``). The advised policy
  replaces the advised actions there and returns their log-probability under the *current*
  policy's distribution (the same distribution object, no second forward pass), so the rollout
  buffer stores the executed action with its correct log-probability.

Everything else is Stable-Baselines3's own code. The advisor is never saved with the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from tutorl.envs.base import Game, View
from tutorl.tutor.advisor import Advisor


def make_views_fn(game: Game, vec_env: VecEnv, obs: np.ndarray):
    """``views(indices)``: what the tutor is shown for the envs at ``indices``."""

    def views(indices: Sequence[int]) -> list[View]:
        if game.view_from_env:
            return vec_env.env_method("tutor_view", indices=list(indices))
        return [obs[i] for i in indices]

    return views


def _original_obs(vec_env: VecEnv, obs: np.ndarray) -> np.ndarray:
    # With VecNormalize the student sees normalised observations; the tutor must see real ones.
    normalizer = unwrap_vec_normalize(vec_env)
    return normalizer.get_original_obs() if normalizer is not None else obs


class _AdvisedModel:
    """Mixin for the model classes: holds the advisor and keeps it out of saved files."""

    advisor: Advisor | None = None
    game: Game | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "advisor", "game"]  # type: ignore[misc]


class TutoredDQN(_AdvisedModel, DQN):
    """SB3 DQN whose behaviour action can be replaced by advice."""

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        if self.advisor is None:
            return action, buffer_action
        obs = self._last_original_obs if self._vec_normalize_env is not None else self._last_obs
        executed = self.advisor(obs, action, make_views_fn(self.game, self.env, obs))
        # The executed action is the one the replay buffer stores.
        return executed, executed.copy()


class _AdvisedPolicy:
    """Mixin for actor-critic policies: replaces advised actions inside ``forward``."""

    advisor: Advisor | None = None
    game: Game | None = None
    vec_env: VecEnv | None = None

    def _get_action_dist_from_latent(self, latent_pi):
        # Remember the distribution forward() built (masked in place by MaskablePPO), so the
        # executed actions' log-probabilities come from the very same distribution.
        self._last_distribution = super()._get_action_dist_from_latent(latent_pi)  # type: ignore[misc]
        return self._last_distribution

    def forward(self, obs: th.Tensor, deterministic: bool = False, **kwargs):
        actions, values, log_prob = super().forward(obs, deterministic, **kwargs)  # type: ignore[misc]
        if self.advisor is None:
            return actions, values, log_prob
        obs_np = _original_obs(self.vec_env, obs.cpu().numpy())
        student = actions.cpu().numpy()
        executed = self.advisor(obs_np, student, make_views_fn(self.game, self.vec_env, obs_np))
        if self.advisor.last_advised.any():
            actions = th.as_tensor(executed, device=actions.device).reshape(actions.shape)
            log_prob = self._last_distribution.log_prob(actions)
        return actions, values, log_prob


class AdvisedActorCriticPolicy(_AdvisedPolicy, ActorCriticPolicy):
    """``MlpPolicy`` for PPO/A2C with the advice hook."""


class AdvisedMaskablePolicy(_AdvisedPolicy, MaskableActorCriticPolicy):
    """sb3-contrib's maskable ``MlpPolicy`` with the advice hook."""


class TutoredPPO(_AdvisedModel, PPO):
    """SB3 PPO with the advice hook in its policy."""


class TutoredA2C(_AdvisedModel, A2C):
    """SB3 A2C with the advice hook in its policy."""


class TutoredMaskablePPO(_AdvisedModel, MaskablePPO):
    """sb3-contrib MaskablePPO with the advice hook in its policy."""


def attach_advisor(model, game: Game, advisor: Advisor | None) -> None:
    """Connect ``advisor`` (or ``None`` to train untutored) to a tutored model."""
    model.advisor = advisor
    model.game = game
    if isinstance(model.policy, _AdvisedPolicy):
        model.policy.advisor = advisor
        model.policy.game = game
        model.policy.vec_env = model.get_env()
