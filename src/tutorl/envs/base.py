"""The game contract: what tutorl needs to know about an environment to tutor an agent in it.

A game is a Gymnasium environment plus a handful of plain functions. Everything a tutor sees is a
*view* of the current state: for most games the observation itself; for games whose observation
is deliberately partial (Snake's compact features), the environment exposes the full state
through a ``tutor_view()`` method and the game sets ``view_from_env=True``.

To make your own Gymnasium environment tutorable, build a :class:`Game` with the same functions
and register it with :func:`tutorl.envs.register`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

ExactEvaluator = Callable[[Callable[[np.ndarray], np.ndarray]], tuple[float, float]]
View = Any  # what a tutor is shown for one state: an observation or the env's tutor_view()


@dataclass(frozen=True)
class Game:
    """Everything tutorl needs about one game.

    :param name: registry name (``blackjack``, ``snake``, ``connect_four``, ...).
    :param make: ``make(**options) -> gymnasium.Env`` whose spaces SB3 accepts.
    :param action_names: human-readable name of each discrete action, by index.
    :param describe: ``describe(view) -> str``: the state as a human tutor would be told it.
    :param legal_actions: ``legal_actions(view) -> list[int]``: actions allowed in that state.
    :param expert: ``expert(view) -> int``: an exact or strong policy, used as a tutor of known
        quality and to measure every other tutor's agreement with it.
    :param state_key: ``state_key(obs) -> hashable``: exact key of the *observation* under which
        advice is remembered for reuse.
    :param success_threshold: the evaluation return at which a run counts as having learned the
        game (used for "steps to threshold" and the acceleration ratio).
    :param view_from_env: if True, a tutor's view comes from ``env.tutor_view()`` rather than the
        observation (the observation alone does not determine the expert's action).
    :param exact_evaluator: optional ``f(predict_fn) -> (mean_return, win_rate)`` computing the
        exact expected return of a deterministic policy (Blackjack), replacing sampled episodes.
    :param default_steps: sensible training length for ``tutorl train``/``compare``.
    :param has_outcomes: True when episodes end in win/draw/loss (reported by ``evaluate``).
    :param rules: one paragraph of rules, for prompts and the README.
    :param action_values: optional ``action_values(view) -> np.ndarray`` of shape
        ``(n_actions,)``: the value of taking each action in that state when the expert plays
        on afterwards, in the game's return units (NaN for illegal actions), so that
        ``max(values) - values[a]`` is the value lost by playing ``a``. It is exact where the game
        allows (Blackjack), a search value (Connect Four) or a documented proxy (Snake); each
        game's expert is a maximiser of its values. Used to find an episode's critical steps.
    """

    name: str
    make: Callable[..., gym.Env]
    action_names: Sequence[str]
    describe: Callable[[View], str]
    legal_actions: Callable[[View], list[int]]
    expert: Callable[[View], int]
    state_key: Callable[[np.ndarray], Hashable]
    success_threshold: float
    view_from_env: bool = False
    exact_evaluator: ExactEvaluator | None = None
    default_steps: int = 50_000
    has_outcomes: bool = False
    rules: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    action_values: Callable[[View], np.ndarray] | None = None

    @property
    def n_actions(self) -> int:
        return len(self.action_names)
