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
from typing import ClassVar

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from tutorl.envs.base import Game, View
from tutorl.rl.imitation import Imitation, ImitationGuard, ImitationSettings
from tutorl.tutor.advisor import Advisor
from tutorl.tutor.memory import AdviceMemory
from tutorl.tutor.schedule import AdviceSchedule


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
    """Mixin for the model classes: SB3's constructor plus the tutor's settings, the advisor
    (and the imitation term) it builds, kept out of saved files.

    ``TutoredPPO("MlpPolicy", env, game="snake", tutor="expert", imitation=1.0)`` is SB3's
    ``PPO("MlpPolicy", env)`` whose student asks ``tutor`` on ``schedule``; every other keyword
    is SB3's own. See :meth:`set_tutor` for the tutor's parameters; ``load`` restores the
    student only (the tutor is never saved): call :meth:`set_tutor` again to keep tutoring.
    """

    advisor: Advisor | None = None
    game: Game | None = None
    imitation: Imitation | None = None

    def __init__(
        self,
        policy,
        env,
        *args,
        tutor=None,
        game: Game | str | None = None,
        schedule: AdviceSchedule | None = None,
        advice_mode: str = "replace",
        reuse_budget: int | None = None,
        imitation: ImitationSettings | float = 0.0,
        **kwargs,
    ) -> None:
        if "imitation_coef" in kwargs or "imitation_kwargs" in kwargs:  # tutorl <= 0.1's names
            raise TypeError(
                "imitation_coef= and imitation_kwargs= are now one argument: imitation=λ or "
                "imitation=ImitationSettings(coef=λ, ...)"
            )
        super().__init__(policy, env, *args, **kwargs)  # type: ignore[call-arg]
        if tutor is not None:
            self.set_tutor(
                tutor,
                game,
                schedule=schedule,
                advice_mode=advice_mode,
                reuse_budget=reuse_budget,
                imitation=imitation,
            )

    def set_tutor(
        self,
        tutor,
        game: Game | str | None,
        schedule: AdviceSchedule | None = None,
        advice_mode: str = "replace",
        reuse_budget: int | None = None,
        imitation: ImitationSettings | float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Tutor this student (or stop, with ``tutor=None``).

        :param tutor: a :class:`~tutorl.tutor.base.Tutor`, a tutor kind (``expert``, ``rule``,
            ``random``, ``noisy-expert``, ``llm`` with the default embedded model), or a
            function ``f(view) -> action``.
        :param game: the :class:`~tutorl.envs.base.Game` (or its registry name, or
            ``package.module:GAME``) whose legal actions, tutor view and expert (to measure the
            tutor's agreement, when the game has one) the advisor uses.
        :param schedule: when to ask (default: the paper's 1.0 → 0.1 over 10,000 steps).
        :param advice_mode: ``replace`` (the paper's), ``label`` (the student acts, the advice
            only teaches) or ``explore`` (DQN: advice replaces ε-random actions only).
        :param reuse_budget: reuse each answer this many times (``None``: no reuse).
        :param imitation: the supervised term towards the advice: λ (a number; 0: none) or
            its full :class:`~tutorl.rl.imitation.ImitationSettings` (``coef``, ``anneal``,
            ``margin``, ``target``, ``guard``, ...); ``guard=True`` needs an
            :class:`~tutorl.rl.imitation.ImitationGuard` callback in ``learn``.
        :param seed: seed of the ask coin flips, the tutor's and the imitation batches'
            generators (default: the model's ``seed``; derived as :func:`tutorl.rl.train.train`
            derives them, so both give the same run).
        """
        from tutorl.envs import get_game
        from tutorl.tutor.tutors import FunctionTutor, make_tutor

        if tutor is None:
            attach_advisor(self, self.game, None, None)
            return
        if game is None:
            raise ValueError("a tutored model needs game= (a Game, its name or module:ATTR)")
        game = get_game(game) if isinstance(game, str) else game
        base = (self.seed if seed is None else seed) or 0  # type: ignore[attr-defined]
        if isinstance(tutor, str):
            tutor = make_tutor(tutor, game, seed=base + 1)
        elif not hasattr(tutor, "advise") and callable(tutor):
            tutor = FunctionTutor(tutor)
        memory = AdviceMemory(reuse_budget) if reuse_budget is not None else None
        advisor = Advisor(
            game,
            tutor,
            schedule or AdviceSchedule(),
            memory,
            seed=base + 2,
            judge=game.has_expert,
            mode=advice_mode,
        )
        if not isinstance(imitation, ImitationSettings):
            imitation = ImitationSettings(coef=float(imitation))
        term = None
        if imitation.active:
            # total_steps is the run's length, known at learn(): see _setup_learn.
            term = Imitation(self, imitation, total_steps=1, seed=base + 3)
        attach_advisor(self, game, advisor, term)

    def _setup_learn(self, total_timesteps, callback=None, *args, **kwargs):
        total, callback = super()._setup_learn(total_timesteps, callback, *args, **kwargs)  # type: ignore[misc]
        if isinstance(self.policy, _AdvisedPolicy):  # type: ignore[attr-defined]
            # The env the tutor's views come from is the one learning runs on (set_env, load).
            self.policy.vec_env = self.env  # type: ignore[attr-defined]
        if self.imitation is not None:
            self.imitation.total_steps = max(1, total)  # what an annealed λ decays over
            if (
                self.imitation.settings.guard
                and self.imitation.tutor_return is None
                and not _has_callback(callback, ImitationGuard)
            ):
                raise ValueError(
                    "the imitation guard compares the tutor's return with the student's: pass "
                    "callback=ImitationGuard(...) to learn()"
                )
        return total, callback

    def _excluded_save_params(self) -> list[str]:
        excluded = super()._excluded_save_params()  # type: ignore[misc]
        return [*excluded, "advisor", "game", "imitation"]

    def train(self, *args, **kwargs) -> None:
        # SB3's own update; the imitation term rides on its optimizer steps (a pre-step hook).
        super().train(*args, **kwargs)  # type: ignore[misc]
        if self.imitation is not None:
            self.imitation.log(self.logger)  # type: ignore[attr-defined]


def _has_callback(callback, kind: type) -> bool:
    if isinstance(callback, kind):
        return True
    return any(_has_callback(c, kind) for c in getattr(callback, "callbacks", ()))


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


class _AdvisedActorCritic(_AdvisedModel):
    """PPO/A2C: the advice hook lives in the policy, so ``MlpPolicy`` means the advised one."""

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.policy, _AdvisedPolicy):  # type: ignore[attr-defined]
            raise ValueError(
                f"{type(self).__name__} advises through its policy: use 'MlpPolicy' or a "
                f"subclass of tutorl.rl.hooks.AdvisedActorCriticPolicy, not "
                f"{type(self.policy).__name__}"  # type: ignore[attr-defined]
            )


class TutoredPPO(_AdvisedActorCritic, PPO):
    """SB3 PPO with the advice hook in its policy."""

    policy_aliases: ClassVar[dict[str, type]] = {
        **PPO.policy_aliases,
        "MlpPolicy": AdvisedActorCriticPolicy,
    }


class TutoredA2C(_AdvisedActorCritic, A2C):
    """SB3 A2C with the advice hook in its policy."""

    policy_aliases: ClassVar[dict[str, type]] = {
        **A2C.policy_aliases,
        "MlpPolicy": AdvisedActorCriticPolicy,
    }


class TutoredMaskablePPO(_AdvisedActorCritic, MaskablePPO):
    """sb3-contrib MaskablePPO (legal-move masks) with the advice hook in its policy."""

    policy_aliases: ClassVar[dict[str, type]] = {
        **MaskablePPO.policy_aliases,
        "MlpPolicy": AdvisedMaskablePolicy,
    }


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
