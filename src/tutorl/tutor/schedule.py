"""When the student asks: the paper's linearly decaying probability of asking for advice."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdviceSchedule:
    """Probability of asking the tutor at environment step ``t``.

    Toral & Lazebnik (2025): the probability decays linearly from ``start`` to ``end`` over
    ``decay_steps`` (θ) steps and then stays at ``end``. An optional ``budget`` caps the total
    number of states the tutor is asked about during the whole run (the action-advising
    literature's usual constraint); once spent, the student is on its own.

    :param start: probability of asking at step 0.
    :param end: probability of asking from step ``decay_steps`` on.
    :param decay_steps: θ, the number of environment steps over which the probability decays.
    :param budget: maximum number of tutor asks in the run, or ``None`` for no limit.
    """

    start: float = 1.0
    end: float = 0.1
    decay_steps: int = 10_000
    budget: int | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"advice probability {name} must be in [0, 1], got {value}")
        if self.decay_steps < 0:
            raise ValueError(f"advice decay steps must be >= 0, got {self.decay_steps}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"advice budget must be >= 0, got {self.budget}")

    def probability(self, step: int) -> float:
        """The probability of asking at environment step ``step``."""
        if self.decay_steps == 0 or step >= self.decay_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.decay_steps
