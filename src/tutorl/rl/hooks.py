"""The advice hook: exactly one place per algorithm family where advice replaces an action.

* DQN (off-policy): ``_sample_action`` returns the executed action as both the env action and
  the replay-buffer action, so the buffer stores what was really done.
* PPO, A2C, MaskablePPO (on-policy): the policy's ``forward`` is called only while collecting
  rollouts (training uses ``evaluate_actions``, prediction ``_predict``). The advised policy
  replaces the advised actions there and returns their log-probability under the *current*
  policy's distribution (the same distribution object, no second forward pass), so the rollout
  buffer stores the executed action with its correct log-probability.

With imitation on (:mod:`tutorl.rl.imitation`), the same two places also hand every piece of
advice to the model's advice store, and ``train()`` logs the supervised term after SB3's own
update. In ``explore`` mode (DQN) ``_sample_action`` draws ε-greedy per env itself so that it
knows which actions were exploration steps; only those may be replaced.

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
from tutorl.rl.imitation import Imitation
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
    """Mixin for the model classes: holds the advisor (and the imitation term) and keeps them
    out of saved files."""

    advisor: Advisor | None = None
    game: Game | None = None
    imitation: Imitation | None = None

    def _excluded_save_params(self) -> list[str]:
        excluded = super()._excluded_save_params()  # type: ignore[misc]
        return [*excluded, "advisor", "game", "imitation"]

    def train(self, *args, **kwargs) -> None:
        # SB3's own update; the imitation term rides on its optimizer steps (a pre-step hook).
        super().train(*args, **kwargs)  # type: ignore[misc]
        if self.imitation is not None:
            self.imitation.log(self.logger)  # type: ignore[attr-defined]


class TutoredDQN(_AdvisedModel, DQN):
    """SB3 DQN whose behaviour action can be replaced by advice."""

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
        if self.advisor is not None and getattr(self.advisor, "mode", None) == "explore":
            action, explored = self._epsilon_greedy(learning_starts, n_envs)
        else:
            action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
            explored = None
            if self.advisor is None:
                return action, buffer_action
        obs = self._last_original_obs if self._vec_normalize_env is not None else self._last_obs
        views = make_views_fn(self.game, self.env, obs)
        if explored is None:
            executed = self.advisor(obs, action, views)
        else:
            executed = self.advisor(obs, action, views, eligible=explored)
        if self.imitation is not None:
            self.imitation.record(self._last_obs, self.advisor)
        # The executed action is the one the replay buffer stores.
        return executed, executed.copy()

    def _epsilon_greedy(self, learning_starts: int, n_envs: int) -> tuple[np.ndarray, np.ndarray]:
        """ε-greedy per env (SB3 draws one coin for the whole batch), saying which envs
        explored: before ``learning_starts`` every action is random, as in SB3."""
        if self.num_timesteps < learning_starts:
            explored = np.ones(n_envs, dtype=bool)
        else:
            explored = np.random.rand(n_envs) < self.exploration_rate
        greedy, _ = self.policy.predict(self._last_obs, deterministic=True)
        random = np.array([self.action_space.sample() for _ in range(n_envs)])
        return np.where(explored, random, greedy), explored


class _AdvisedPolicy:
    """Mixin for actor-critic policies: replaces advised actions inside ``forward``."""

    advisor: Advisor | None = None
    game: Game | None = None
    vec_env: VecEnv | None = None
    imitation: Imitation | None = None

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
        if self.imitation is not None:
            self.imitation.record(obs.cpu().numpy(), self.advisor)
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


def attach_advisor(
    model, game: Game, advisor: Advisor | None, imitation: Imitation | None = None
) -> None:
    """Connect ``advisor`` (or ``None`` to train untutored) to a tutored model, and optionally
    the imitation term fed by its advice."""
    if model.imitation is not None and model.imitation is not imitation:
        model.imitation.remove()
    model.advisor = advisor
    model.game = game
    model.imitation = imitation
    if isinstance(model.policy, _AdvisedPolicy):
        model.policy.advisor = advisor
        model.policy.game = game
        model.policy.vec_env = model.get_env()
        model.policy.imitation = imitation
