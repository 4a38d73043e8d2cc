"""Advice reuse: remember the tutor's answer for a state and replay it a bounded number of times."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    action: int
    remaining: int


class AdviceMemory:
    """Remembered advice under an exact state key, each with a reuse budget.

    Toral & Lazebnik (2025): a state seen again takes the remembered action and spends one unit
    of its budget; at zero the tutor is asked again (and the budget is refilled by the new
    answer). tutorl applies reuse on every step (not only when the schedule says "ask"): this is
    what makes reuse add advice without adding tutor calls. See the README for this choice.

    :param budget: how many times one answer may be reused before the tutor is asked again.
    """

    def __init__(self, budget: int = 3) -> None:
        if budget < 1:
            raise ValueError(f"reuse budget must be >= 1, got {budget}")
        self.budget = budget
        self._entries: dict[Hashable, _Entry] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def reuse(self, key: Hashable) -> int | None:
        """The remembered action for ``key`` (spending one unit of budget), or ``None`` when
        there is none or its budget is spent."""
        entry = self._entries.get(key)
        if entry is None or entry.remaining <= 0:
            return None
        entry.remaining -= 1
        self.hits += 1
        return entry.action

    def remember(self, key: Hashable, action: int) -> None:
        """Store a fresh answer with a full budget (replacing any spent one)."""
        self._entries[key] = _Entry(int(action), self.budget)
