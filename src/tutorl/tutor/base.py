"""What a tutor is: something that, shown a batch of states, advises one action for each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tutorl.envs.base import View

# Where an executed piece of advice came from. Counted separately in every run's statistics.
SOURCES = ("tutor", "llm", "cache", "reuse", "expert", "fallback")


@dataclass
class Advice:
    """One tutor answer for one state.

    :param action: the advised action index.
    :param source: where it came from: ``expert``, ``llm``, ``cache``, ``reuse`` or ``fallback``
        (the tutor failed and the student's own action was kept).
    :param probs: the tutor's probability over all actions, when it has one (LLM scoring, noisy
        expert); ``None`` otherwise.
    :param latency: seconds spent producing this answer (0 for cached/reused answers).
    """

    action: int
    source: str = "tutor"
    probs: list[float] | None = None
    latency: float = 0.0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Tutor(Protocol):
    """A tutor advises one action per state, for a whole batch of states in one call.

    Batching matters: with vectorised environments every env that asks in a step is answered by a
    single call, so an LLM backend can share one prompt prefix and one model invocation.
    """

    name: str

    def advise(self, views: list[View]) -> list[Advice]:
        """Advise an action for each view (the state as the game shows it to a tutor)."""
        ...
