"""Tutors of known quality: the expert, a noisy expert, and a random tutor.

They exist to measure the *mechanism* of tutoring with a tutor whose quality is known exactly,
independently of how good any language model is.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from tutorl.envs.base import Game, View
from tutorl.tutor.base import Advice

if TYPE_CHECKING:
    from tutorl.llm.spec import LLMTutorSpec


class ExpertTutor:
    """Advises the game's expert action (exact for Blackjack, strong for Snake and Connect Four)."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.name = "expert"

    def advise(self, views: list[View]) -> list[Advice]:
        advice = []
        for view in views:
            start = time.perf_counter()
            action = int(self.game.expert(view))
            advice.append(Advice(action, "expert", latency=time.perf_counter() - start))
        return advice


class NoisyExpertTutor:
    """Advises the expert's action with probability ``accuracy``, else a uniformly random *other*
    legal action, so ``accuracy`` is exactly the expected agreement with the expert.

    :param accuracy: probability in [0, 1] of advising the expert's action.
    :param seed: seed of the tutor's own random generator.
    """

    def __init__(self, game: Game, accuracy: float, seed: int | None = None) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"tutor accuracy must be in [0, 1], got {accuracy}")
        self.game = game
        self.accuracy = accuracy
        self.rng = np.random.default_rng(seed)
        self.name = f"noisy-expert({accuracy:g})"

    def advise(self, views: list[View]) -> list[Advice]:
        advice = []
        for view in views:
            start = time.perf_counter()
            best = int(self.game.expert(view))
            others = [a for a in self.game.legal_actions(view) if a != best]
            action = best
            if others and self.rng.random() >= self.accuracy:
                action = int(self.rng.choice(others))
            probs = np.zeros(self.game.n_actions)
            probs[best] = self.accuracy if others else 1.0
            for a in others:
                probs[a] = (1.0 - self.accuracy) / len(others)
            advice.append(
                Advice(
                    action,
                    "tutor",
                    probs=probs.tolist(),
                    latency=time.perf_counter() - start,
                    extra={"expert_action": best},
                )
            )
        return advice


class RuleTutor:
    """Advises the game's rule of thumb (:attr:`tutorl.envs.base.Game.rule`): the baseline an
    LLM tutor is measured beside — an LLM that only matches it has learned nothing beyond it."""

    def __init__(self, game: Game) -> None:
        if game.rule is None:
            raise ValueError(f"{game.name} has no rule baseline: --tutor rule is not available")
        self.game = game
        self.name = "rule"

    def advise(self, views: list[View]) -> list[Advice]:
        return [Advice(int(self.game.rule(view)), "tutor") for view in views]


class RandomTutor:
    """Advises a uniformly random legal action: the floor any useful tutor must beat."""

    def __init__(self, game: Game, seed: int | None = None) -> None:
        self.game = game
        self.rng = np.random.default_rng(seed)
        self.name = "random"

    def advise(self, views: list[View]) -> list[Advice]:
        advice = []
        for view in views:
            legal = self.game.legal_actions(view)
            probs = np.zeros(self.game.n_actions)
            probs[legal] = 1.0 / len(legal)
            advice.append(Advice(int(self.rng.choice(legal)), "tutor", probs=probs.tolist()))
        return advice


class FunctionTutor:
    """Advises ``policy(view)``: any function of the tutor's view (a hand-written heuristic, a
    trained policy, a lookup table) as a tutor, e.g. ``TutoredPPO(..., tutor=my_policy)``.

    :param policy: ``policy(view) -> int``, the advised action.
    :param name: how runs and logs name this tutor.
    """

    def __init__(self, policy, name: str = "function") -> None:
        self.policy = policy
        self.name = name

    def advise(self, views: list[View]) -> list[Advice]:
        return [Advice(int(self.policy(view)), "tutor") for view in views]


class ConstantTutor:
    """Always advises the same action and costs nothing: used to measure the advice hook's own
    overhead (benchmarks) and in tests where the advised action must be recognisable."""

    def __init__(self, action: int = 0) -> None:
        self.action = action
        self.name = f"constant({action})"

    def advise(self, views: list[View]) -> list[Advice]:
        return [Advice(self.action, "tutor") for _ in views]


TUTOR_KINDS = ("none", "expert", "noisy-expert", "rule", "random", "llm")


def make_tutor(
    kind: str,
    game: Game,
    accuracy: float = 0.8,
    seed: int | None = None,
    llm: LLMTutorSpec | None = None,
    service: tuple[str, int, str] | None = None,
):
    """Build a tutor by CLI name. ``none`` returns ``None`` (an untutored run).

    :param llm: for ``llm``: the model and its prompt (:class:`~tutorl.llm.spec.LLMTutorSpec`;
        default: the default embedded model, the game's prompt, score mode).
    :param service: for an embedded ``llm``: the handle of a shared
        :class:`~tutorl.llm.service.LLMService` serving that model.
    """
    if kind == "none":
        return None
    if kind == "llm":
        from tutorl.llm.spec import LLMTutorSpec

        return (llm or LLMTutorSpec()).make(game, service)
    if kind == "expert":
        return ExpertTutor(game)
    if kind == "noisy-expert":
        return NoisyExpertTutor(game, accuracy, seed=seed)
    if kind == "random":
        return RandomTutor(game, seed=seed)
    if kind == "rule":
        return RuleTutor(game)
    raise ValueError(f"unknown tutor {kind!r}; choose one of: {', '.join(TUTOR_KINDS)}")
