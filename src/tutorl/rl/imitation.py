"""Imitation of the tutor: advice that enters the student's *update*, not only its behaviour.

Executing the tutor's action alone teaches little: while nearly every step is advised, PPO/A2C's
critic learns the tutor's own returns (the advised action's advantage is ~0) and DQN's replay
buffer holds almost only the tutor's actions (the other actions' values are extrapolated). So
every piece of advice — executed (``replace``), only labelled (``label``) or replacing an
exploration step (``explore``) — is kept in an :class:`AdviceStore`, and a supervised term pulls
the student towards it in each of its gradient steps:

* DQN: DQfD's large-margin loss (Hester et al. 2018)
  ``max_a [Q(s,a) + m·1(a ≠ a_T)] − Q(s,a_T)`` over the legal actions;
* PPO, A2C, MaskablePPO: ``−log π(a_T|s)`` through SB3's own ``evaluate_actions`` (action masks
  applied), or with ``target="distribution"`` the cross-entropy to the tutor's distribution where
  the tutor has one (LLM scoring), its action elsewhere.

The term is added to SB3's own gradient, in SB3's own loop: a step pre-hook on the policy's
optimizer (:meth:`torch.optim.Optimizer.register_step_pre_hook`) back-propagates
``λ · term`` on an advice minibatch just before every optimizer step, on top of the TD or
policy-gradient loss SB3 has already back-propagated, then clips the total gradient norm as SB3
does. The result equals one combined loss ``SB3 loss + λ·term`` per step (up to SB3's clipping
of its own part first) without copying any of SB3's training loops, and λ keeps its meaning
relative to SB3's loss (two separate Adam steps would make λ nearly meaningless).

**Guard for untrusted tutors** (``guard=True``): imitation also copies bad advice. The guard
imitates only while the tutor is better than the student: the tutor's own return is evaluated
once before training (greedy play of the tutor on the run's evaluation episodes, or exactly for
Blackjack), the student's return is the latest greedy evaluation, and the weight is 0 whenever
the student's return is at or above the tutor's. A random tutor is overtaken within a few
evaluations and stops being imitated; an expert keeps teaching until the student matches it.
With ``guard_z > 0`` the tutor must lead by ``guard_z`` standard errors of the difference of
the two evaluations: a bad tutor barely above a weak student (random play on Connect Four)
is not imitated on noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback

from tutorl.specs import ImitationSettings


class AdviceStore:
    """A ring buffer of advice: the observation the student's network sees, the advised action,
    the legal actions of that state and the tutor's distribution (NaN where it has none)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, capacity: int) -> None:
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.masks = np.zeros((capacity, n_actions), dtype=bool)
        self.probs = np.full((capacity, n_actions), np.nan, dtype=np.float32)
        self.capacity, self.size, self._next = capacity, 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, actions: np.ndarray, masks: np.ndarray, probs: np.ndarray):
        """Append rows (one per advised state), overwriting the oldest when full."""
        n = len(actions)
        if n == 0:
            return
        index = (self._next + np.arange(n)) % self.capacity
        self.obs[index] = np.asarray(obs).reshape(n, *self.obs.shape[1:])
        self.actions[index] = actions
        self.masks[index] = masks
        self.probs[index] = probs
        self._next = int((self._next + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        index = rng.integers(0, self.size, size=min(batch_size, self.size))
        return {
            "obs": self.obs[index],
            "actions": self.actions[index],
            "masks": self.masks[index],
            "probs": self.probs[index],
        }


def margin_loss(q: th.Tensor, actions: th.Tensor, masks: th.Tensor, margin: float) -> th.Tensor:
    """DQfD's large-margin loss per sample: ``max_a [Q(s,a) + m·1(a≠a_T)] − Q(s,a_T)``, the max
    over legal actions (``masks``). Zero exactly when ``a_T`` beats every other legal action by
    at least ``margin``."""
    bonus = th.full_like(q, margin)
    bonus.scatter_(1, actions.view(-1, 1), 0.0)
    shifted = (q + bonus).masked_fill(~masks, -th.inf)
    return shifted.max(dim=1).values - q.gather(1, actions.view(-1, 1)).squeeze(1)


def standard_error(result: Any) -> float:
    """The standard error of an evaluation's mean return (0 for an exact evaluation)."""
    if getattr(result, "exact", False) or result.episodes <= 1:
        return 0.0
    return float(result.std_return) / float(np.sqrt(result.episodes))


class Imitation:
    """The advice store and the supervised term of one tutored model (see the module docstring).

    :param model: a tutored SB3 model (DQN, PPO, A2C or MaskablePPO).
    :param settings: the term's settings.
    :param total_steps: the run's length (for annealing).
    :param seed: seed of the minibatch sampling.
    """

    def __init__(
        self, model: Any, settings: ImitationSettings, total_steps: int, seed: int = 0
    ) -> None:
        self.model, self.settings, self.total_steps = model, settings, max(1, total_steps)
        space = model.observation_space
        self.store = AdviceStore(space.shape, int(model.action_space.n), settings.capacity)
        self.rng = np.random.default_rng(seed)
        self.is_dqn = hasattr(model, "q_net")
        self.maskable = isinstance(model.policy, MaskableActorCriticPolicy)
        self.tutor_return: float | None = None
        self.student_return: float | None = None
        # Standard errors of those evaluations (0 for an exact one), for the guard's test.
        self.tutor_se = 0.0
        self.student_se = 0.0
        self.losses: list[float] = []
        self.weights: list[float] = []
        self.applied_steps = 0
        self._handle = model.policy.optimizer.register_step_pre_hook(self._before_step)

    def remove(self) -> None:
        self._handle.remove()

    def record(self, policy_obs: np.ndarray, advisor: Any) -> None:
        """Keep the advice of the last advisor call (``policy_obs``: what the network sees)."""
        labels = getattr(advisor, "last_labels", None)
        if labels is None:
            return
        rows = np.nonzero(labels >= 0)[0]
        if len(rows):
            self.store.add(
                np.asarray(policy_obs)[rows], labels[rows], advisor.last_masks[rows],
                advisor.last_probs[rows],
            )  # fmt: skip

    def set_tutor_return(self, result: Any) -> None:
        """The tutor's own evaluation (an :class:`~tutorl.rl.evaluation.EvalResult`)."""
        self.tutor_return, self.tutor_se = result.mean_return, standard_error(result)

    def set_student_return(self, result: Any) -> None:
        """The student's latest evaluation (an :class:`~tutorl.rl.evaluation.EvalResult`)."""
        self.student_return, self.student_se = result.mean_return, standard_error(result)

    def weight(self) -> float:
        """λ now: the schedule's value, times 0 while the guard says the student has caught up
        (or, with ``guard_z``, while the tutor's lead is within its evaluation noise)."""
        s = self.settings
        lam = s.coef
        if s.anneal is not None:
            lam *= max(0.0, 1.0 - self.model.num_timesteps / (s.anneal * self.total_steps))
        tutor, student = self.tutor_return, self.student_return
        if s.guard and tutor is not None and student is not None:
            noise = s.guard_z * float(np.hypot(self.tutor_se, self.student_se))
            if tutor - student <= noise:  # noise 0: the student is at or above the tutor
                lam = 0.0
        return lam

    def term(self, batch: dict[str, np.ndarray]) -> th.Tensor:
        """The supervised term (mean over the batch), differentiable in the policy."""
        device = self.model.device
        obs = th.as_tensor(batch["obs"], device=device)
        actions = th.as_tensor(batch["actions"], device=device)
        masks = th.as_tensor(batch["masks"], device=device)
        policy = self.model.policy
        if self.is_dqn:
            q = self.model.q_net(obs)
            return margin_loss(q, actions, masks, self.settings.margin).mean()
        extra = {"action_masks": batch["masks"]} if self.maskable else {}
        if self.settings.target == "distribution":
            probs = th.as_tensor(batch["probs"], device=device)
            has = ~th.isnan(probs).any(dim=1)
            if has.any():
                distribution = policy.get_distribution(obs, **extra).distribution
                log_pi = distribution.logits.log_softmax(dim=1)
                # Rows without a distribution: a one-hot of the tutor's action.
                target = th.where(
                    has.view(-1, 1),
                    th.nan_to_num(probs),
                    th.nn.functional.one_hot(actions, probs.shape[1]).float(),
                )
                target = target / target.sum(dim=1, keepdim=True).clamp_min(1e-8)
                safe = log_pi.masked_fill(target == 0, 0.0)
                return -(target * safe).sum(dim=1).mean()
        _, log_prob, _ = policy.evaluate_actions(obs, actions, **extra)
        return -log_prob.mean()

    def _before_step(self, optimizer: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        weight = self.weight()
        if weight <= 0 or len(self.store) == 0:
            return
        with th.enable_grad():
            loss = self.term(self.store.sample(self.settings.batch_size, self.rng))
            (weight * loss).backward()
        max_norm = getattr(self.model, "max_grad_norm", None)
        if max_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            th.nn.utils.clip_grad_norm_(params, max_norm)
        self.losses.append(float(loss.detach()))
        self.weights.append(weight)
        self.applied_steps += 1

    def log(self, logger: Any) -> None:
        """Record the term's mean value and weight since the last call (TensorBoard)."""
        if self.losses:
            logger.record("train/imitation_loss", float(np.mean(self.losses)))
            logger.record("train/imitation_weight", float(np.mean(self.weights)))
        logger.record("train/advice_store", len(self.store))
        self.losses.clear()
        self.weights.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "advice_stored": len(self.store),
            "imitation_steps": self.applied_steps,
            "tutor_return": self.tutor_return,
        }


class ImitationGuard(BaseCallback):
    """The guard (``imitation=ImitationSettings(coef, guard=True)``) in your own
    ``model.learn`` loop.

    At the start it measures the tutor's own greedy return once; every ``eval_freq`` steps the
    student's, on the same protocol (exact for Blackjack, else ``n_eval_episodes`` seeded
    episodes) — :func:`tutorl.rl.train.train` does the same with its evaluation curve. While
    the student's return is at or above the tutor's, the imitation weight is 0.

    :param eval_freq: environment steps between evaluations of the student.
    :param n_eval_episodes: episodes per evaluation (where it is not exact).
    :param eval_seed: seed of the evaluation episodes (the same for tutor and student).
    """

    def __init__(
        self, eval_freq: int = 2_500, n_eval_episodes: int = 20, eval_seed: int = 10_000
    ) -> None:
        super().__init__()
        if eval_freq <= 0 or n_eval_episodes <= 0:
            raise ValueError("eval_freq and n_eval_episodes must be positive")
        self.eval_freq, self.n_eval_episodes, self.eval_seed = (
            eval_freq, n_eval_episodes, eval_seed
        )  # fmt: skip
        self.next_eval = 0

    def _on_training_start(self) -> None:
        from tutorl.rl.evaluation import evaluate_actor, tutor_actor

        imitation = getattr(self.model, "imitation", None)
        if imitation is None or not imitation.settings.guard:
            raise ValueError(
                "ImitationGuard needs a tutored model with "
                "imitation=ImitationSettings(coef > 0, guard=True)"
            )
        game = self.model.game
        imitation.set_tutor_return(evaluate_actor(
            game, tutor_actor(game, self.model.advisor.tutor), self.n_eval_episodes,
            self.eval_seed,
        ))  # fmt: skip
        self.logger.record("imitation/tutor_return", imitation.tutor_return)
        self._evaluate()

    def _evaluate(self) -> None:
        from tutorl.rl.evaluation import evaluate_model

        imitation = self.model.imitation
        result = evaluate_model(self.model, self.model.game, self.n_eval_episodes, self.eval_seed)
        imitation.set_student_return(result)
        self.logger.record("imitation/student_return", result.mean_return)
        self.next_eval = self.num_timesteps + self.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self._evaluate()
        return True
