"""The advisor: schedule (when to ask) + memory (reuse) + tutor (who answers), for a batch of envs.

This is the single piece of logic that every algorithm's advice hook calls. Given the states of
all vectorised envs and the actions the student proposed, it returns the actions to execute and
keeps the run's advice statistics.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tutorl.envs.base import Game, View
from tutorl.tutor.base import Tutor
from tutorl.tutor.memory import AdviceMemory
from tutorl.tutor.schedule import AdviceSchedule
from tutorl.tutor.tutors import ExpertTutor


@dataclass
class AdviceStats:
    """Counters of one tutored run. ``agreement`` is the share of fresh tutor answers that equal
    the expert's action: the tutor's measured quality, reported beside every tutoring result.
    ``advised`` counts the states that received advice (fresh or reused); in ``label`` mode
    that advice labelled the state without being executed."""

    steps: int = 0
    asks: int = 0
    tutor_calls: int = 0
    advised: int = 0
    reuse_hits: int = 0
    fallbacks: int = 0
    agree: int = 0
    judged: int = 0
    reuse_agree: int = 0
    reuse_judged: int = 0
    tutor_seconds: float = 0.0
    advisor_seconds: float = 0.0
    sources: Counter = field(default_factory=Counter)

    @property
    def agreement(self) -> float | None:
        return self.agree / self.judged if self.judged else None

    @property
    def reuse_agreement(self) -> float | None:
        """Share of *reused* actions equal to the expert's action in the state where they were
        reused: below the tutor's agreement when the reuse key does not pin down the state."""
        return self.reuse_agree / self.reuse_judged if self.reuse_judged else None

    def as_dict(self) -> dict:
        return {
            "env_steps": self.steps,
            "tutor_asks": self.asks,
            "tutor_calls": self.tutor_calls,
            "advised_steps": self.advised,
            "reuse_hits": self.reuse_hits,
            "fallbacks": self.fallbacks,
            "agreement": self.agreement,
            "reuse_agreement": self.reuse_agreement,
            "tutor_seconds": round(self.tutor_seconds, 4),
            "advisor_seconds": round(self.advisor_seconds, 4),
            "sources": dict(self.sources),
        }


ViewsFn = Callable[[Sequence[int]], list[View]]

#: How advice enters the student's behaviour (see :class:`Advisor`).
ADVICE_MODES = ("replace", "label", "explore")


class Advisor:
    """Decides, for each env in a vectorised step, whether the executed action is the student's
    own, a remembered piece of advice (reuse), or a fresh answer from the tutor.

    Order per env: (1) with reuse on, a remembered answer with budget left is executed and one
    unit is spent; (2) otherwise the student asks with the schedule's probability (and while the
    ask budget lasts); (3) otherwise the student acts. All envs that ask in one step are
    answered by one batched ``tutor.advise`` call. An answer that is not a legal action falls
    back to the student's action and is counted, never executed.

    The advice ``mode`` says what the advice does to the behaviour:

    * ``replace`` (Toral & Lazebnik's): the advised action is executed instead of the student's.
    * ``label``: the tutor is asked on the same schedule, but the student's own action is
      executed; the advice only labels the state for imitation (LLM4Teach, DAgger).
    * ``explore`` (DQN; Ilhan et al. 2021): only envs whose action was an ε-random exploration
      step may ask (the hook passes ``eligible``); their random action is replaced.

    After each call, :attr:`last_labels` holds the advised action of every env (−1 where none,
    fresh or reused, whatever the mode), :attr:`last_masks` the legal actions of the advised
    states and :attr:`last_probs` the tutor's distribution (NaN rows where it has none): what
    the imitation store keeps.

    :param game: the game (legal actions, expert, state key).
    :param tutor: who answers.
    :param schedule: when to ask.
    :param memory: advice memory for reuse, or ``None`` for no reuse.
    :param seed: seed of the ask/no-ask coin flips.
    :param judge: compare every fresh answer with the expert's action (the tutor's measured
        agreement). Off only to time the hook itself.
    :param mode: ``replace``, ``label`` or ``explore`` (above).
    """

    def __init__(
        self,
        game: Game,
        tutor: Tutor,
        schedule: AdviceSchedule,
        memory: AdviceMemory | None = None,
        seed: int | None = None,
        judge: bool = True,
        mode: str = "replace",
    ) -> None:
        if mode not in ADVICE_MODES:
            known = ", ".join(ADVICE_MODES)
            raise ValueError(f"unknown advice mode {mode!r}; choose one of: {known}")
        self.mode = mode
        self.game = game
        self.judge = judge
        self.tutor = tutor
        self.schedule = schedule
        self.memory = memory
        self.rng = np.random.default_rng(seed)
        self.stats = AdviceStats()
        self.last_advised = np.zeros(0, dtype=bool)
        self.last_labels = np.zeros(0, dtype=np.int64)
        self.last_masks = np.zeros((0, game.n_actions), dtype=bool)
        self.last_probs = np.zeros((0, game.n_actions), dtype=np.float32)
        # The expert tutor agrees with itself by definition; skip recomputing its answer.
        self._tutor_is_expert = isinstance(tutor, ExpertTutor)

    def __call__(
        self,
        obs: np.ndarray,
        student_actions: np.ndarray,
        views: ViewsFn,
        eligible: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the actions to execute for a batch of envs.

        :param obs: the students' observations, shape ``(n_envs, ...)`` (original, not
            normalised).
        :param student_actions: the actions the student proposed, shape ``(n_envs,)``.
        :param views: ``views(indices) -> list of views`` for the envs that ask (called only for
            those, only when any env asks).
        :param eligible: envs that may take advice this step (``explore`` mode: the envs whose
            action was ε-random); ``None``: all.
        """
        entered = time.perf_counter()
        n_envs = len(student_actions)
        student = np.array(student_actions, copy=True).reshape(n_envs)
        executed = student.copy()
        advised = np.zeros(n_envs, dtype=bool)
        labels = np.full(n_envs, -1, dtype=np.int64)
        masks = np.zeros((n_envs, self.game.n_actions), dtype=bool)
        probs = np.full((n_envs, self.game.n_actions), np.nan, dtype=np.float32)
        keys: dict[int, object] = {}
        asking: list[int] = []
        reused: list[int] = []
        p_ask = self.schedule.probability(self.stats.steps)
        for i in range(n_envs):
            if eligible is not None and not eligible[i]:
                continue
            if self.memory is not None:
                keys[i] = self.game.state_key(obs[i])
                remembered = self.memory.reuse(keys[i])
                if remembered is not None:
                    executed[i] = remembered
                    labels[i] = remembered
                    advised[i] = True
                    reused.append(i)
                    self.stats.reuse_hits += 1
                    self.stats.sources["reuse"] += 1
                    continue
            budget_left = self.schedule.budget is None or (
                self.stats.asks + len(asking) < self.schedule.budget
            )
            if budget_left and self.rng.random() < p_ask:
                asking.append(i)

        if asking:
            state_views = views(asking)
            start = time.perf_counter()
            answers = self.tutor.advise(state_views)
            self.stats.tutor_seconds += time.perf_counter() - start
            self.stats.tutor_calls += 1
            self.stats.asks += len(asking)
            for i, view, advice in zip(asking, state_views, answers, strict=True):
                legal = self.game.legal_actions(view)
                if advice.source == "fallback" or advice.action not in legal:
                    self.stats.fallbacks += 1
                    self.stats.sources["fallback"] += 1
                    continue
                executed[i] = advice.action
                labels[i] = advice.action
                masks[i, legal] = True
                if advice.probs is not None:
                    probs[i] = advice.probs
                advised[i] = True
                self.stats.sources[advice.source] += 1
                if self.judge:
                    self.stats.judged += 1
                    if self._tutor_is_expert:
                        self.stats.agree += 1
                    else:
                        # Tutors that consulted the expert anyway say what it advised.
                        best = advice.extra.get("expert_action")
                        best = int(self.game.expert(view)) if best is None else best
                        self.stats.agree += int(advice.action == best)
                if self.memory is not None:
                    self.memory.remember(keys[i], advice.action)

        if reused:
            for i, view in zip(reused, views(reused), strict=True):
                masks[i, self.game.legal_actions(view)] = True
                if self.judge:
                    self.stats.reuse_judged += 1
                    self.stats.reuse_agree += int(executed[i] == int(self.game.expert(view)))

        self.stats.advised += int(advised.sum())
        self.stats.steps += n_envs
        self.last_labels, self.last_masks, self.last_probs = labels, masks, probs
        if self.mode == "label":
            # The advice only teaches: the student's own action is executed.
            executed, advised = student, np.zeros(n_envs, dtype=bool)
        self.last_advised = advised
        self.stats.advisor_seconds += time.perf_counter() - entered
        return executed
