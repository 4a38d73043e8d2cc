"""The game contract: what tutorl needs to know about an environment to tutor an agent in it.

A game is a Gymnasium environment plus a handful of plain functions. Everything a tutor sees is a
*view* of the current state: for most games the observation itself; for games whose observation
is deliberately partial (Snake's compact features), the environment exposes the full state
through a ``tutor_view()`` method and the game sets ``view_from_env=True``.

To make your own Gymnasium environment tutorable, build a :class:`Game` with the same functions
and register it with :func:`tutorl.envs.register`.

**Continuous actions** (``continuous=True``, MuJoCo Hopper): the env's action space is a ``Box``
of ``len(action_names)`` components, every one within ``action_bounds``; ``action_names`` name
the components (Hopper's three joint torques), an action is a float vector, and
``legal_actions`` returns ``[]`` (no discrete choice). Such games train with PPO and A2C only
(DQN needs discrete actions) and have no tutors (every tutor advises a discrete action).

**No expert** (``expert=None``): the game is trained untutored only. :attr:`Game.has_expert` is
False and calling ``game.expert`` raises :class:`NoExpertError` (a ``ValueError`` naming the game),
so every code path that needs an expert fails with one clear line.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

ExactEvaluator = Callable[[Callable[[np.ndarray], np.ndarray]], tuple[float, float]]
View = Any  # what a tutor is shown for one state: an observation or the env's tutor_view()


class NoExpertError(ValueError):
    """The game has no expert policy (``Game(expert=None)``), and something needed one."""


class _NoExpert:
    """Stands in for ``expert`` when a game has none: calling it raises :class:`NoExpertError`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, view: View) -> int:
        raise NoExpertError(
            f"{self.name} has no expert policy: expert tutors, the expert identifier and "
            "--policy expert are not available for it"
        )


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or fail in one line naming the install that provides it.

    :param module: the module to import (``minigrid``, ``mujoco``, ``pettingzoo``).
    :param extra: tutorl's extra that installs it.
    :param what: what needs it, for the message (``"the doorkey game"``).
    :raises ValueError: the module is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(
            f"{what} needs {module}, which is not installed: pip install 'tutorl[{extra}]'"
        ) from None


@dataclass(frozen=True)
class Game:
    """Everything tutorl needs about one game.

    :param name: registry name (``blackjack``, ``snake``, ``connect_four``, ...).
    :param make: ``make(**options) -> gymnasium.Env`` whose spaces SB3 accepts.
    :param action_names: human-readable name of each discrete action, by index.
    :param describe: ``describe(view) -> str``: the state as a human tutor would be told it.
    :param legal_actions: ``legal_actions(view) -> list[int]``: actions allowed in that state
        (``[]`` for continuous games).
    :param expert: ``expert(view) -> int``: an exact or strong policy, used as a tutor of known
        quality and to measure every other tutor's agreement with it; ``None`` when the game has
        none (then :attr:`has_expert` is False and calling ``expert`` raises
        :class:`NoExpertError`).
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
    :param continuous: the action is a float vector with one component per ``action_names``
        entry, each within ``action_bounds`` (see the module docstring).
    :param action_bounds: ``(low, high)`` of every action component of a continuous game.
    :param table_radius: ULTRA's critical-state table for this game matches states by distance
        rather than by ``state_key`` (continuous observations, where exact repeats are rare):
        the Euclidean distance between observations divided component-wise by ``table_scale``
        (see :class:`tutorl.ultra.table.CriticalTable`). ``None``: exact ``state_key`` matches.
    :param describers: other state texts a tutor may be shown, by name (``--describer``); each
        says in its docstring what it is derived from (the observation, never the expert).
        ``default`` is always :attr:`describe`.
    :param rule: optional ``rule(view) -> int``: a simple, documented rule of thumb over what
        the game's describer tells a tutor (Snake: a safe move toward the food; Connect Four:
        win > block > centre; Blackjack: the best dealer-blind threshold). The baseline an LLM
        tutor must beat to mean anything (``--tutor rule``).
    :param table_scale: the typical scale of each observation component (one positive number
        per component) that distances are measured in; ``None``: each component's standard
        deviation over the agent's episodes (floored at their median).
    :param convergence_tolerance: how far below its final level a smoothed evaluation curve may
        stay and still count as converged (the sweep's ``tolerance``, in return units); ``None``:
        5% of ``max(1, |success_threshold|)``.
    :param ultra_threshold: ULTRA's expert identifier: the value lost (in return units, from
        :attr:`action_values`) above which a step is critical; needed by games with action
        values unless ``tutorl ultra --threshold`` is given.
    :param check_state: optional ``check_state(view) -> None`` raising ``ValueError`` that names
        what makes a hand-written state impossible in play (a floating Connect Four piece, a
        Snake heading into its own neck); ``tutorl ask --state`` refuses such states.
    :param requires: optional modules the game needs, each with the tutorl extra that installs
        it (``(("minigrid", "extra-games"),)``); ``tutorl envs`` names the install of those
        missing (``make`` still fails in one line through :func:`require`).
    """

    name: str
    make: Callable[..., gym.Env]
    action_names: Sequence[str]
    describe: Callable[[View], str]
    legal_actions: Callable[[View], list[int]]
    expert: Callable[[View], int] | None
    state_key: Callable[[np.ndarray], Hashable]
    success_threshold: float
    view_from_env: bool = False
    exact_evaluator: ExactEvaluator | None = None
    default_steps: int = 50_000
    has_outcomes: bool = False
    rules: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    action_values: Callable[[View], np.ndarray] | None = None
    continuous: bool = False
    action_bounds: tuple[float, float] = (-1.0, 1.0)
    table_radius: float | None = None
    table_scale: tuple[float, ...] | None = None
    convergence_tolerance: float | None = None
    ultra_threshold: float | None = None
    check_state: Callable[[View], None] | None = None
    requires: tuple[tuple[str, str], ...] = ()

    def missing_installs(self) -> list[str]:
        """The ``pip install`` of each optional module in :attr:`requires` not installed."""
        import importlib.util

        def installed(module: str) -> bool:
            try:
                return importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):  # a broken or blocked install
                return False

        return [
            f"pip install 'tutorl[{extra}]'"
            for module, extra in self.requires
            if not installed(module)
        ]

    rule: Callable[[View], int] | None = None
    describers: dict[str, Callable[[View], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.expert is None:
            object.__setattr__(self, "expert", _NoExpert(self.name))
        low, high = self.action_bounds
        if not low < high:
            raise ValueError(f"{self.name}: action_bounds must be (low, high), low < high")

    def check_algo(self, algo: str, label: str | None = None) -> None:
        """Refuse a student that cannot act in this game (DQN needs discrete actions).

        :param label: the game as the user named it (default: :attr:`name`)."""
        if self.continuous and algo == "dqn":
            raise ValueError(
                f"{label or self.name} has continuous actions and DQN needs discrete ones: "
                "use ppo or a2c"
            )

    def check_options(self, options: dict[str, Any], label: str | None = None) -> None:
        """Build (and close) the env with ``options`` now, so that a bad option fails with one
        line where it is given, not later in a worker.

        :param label: the game as the user named it (default: :attr:`name`)."""
        if not options:
            return
        try:
            self.make(**{**self.options, **options}).close()
        except Exception as error:
            raise ValueError(f"invalid env option for {label or self.name}: {error}") from None

    def describer(self, name: str = "default") -> Callable[[View], str]:
        """The state text called ``name`` (``default``: :attr:`describe`).

        :raises ValueError: the game has no such describer (the message lists them).
        """
        if name == "default":
            return self.describe
        if name not in self.describers:
            known = ", ".join(["default", *self.describers])
            raise ValueError(f"{self.name} has no describer {name!r}; choose one of: {known}")
        return self.describers[name]

    @property
    def n_actions(self) -> int:
        """The number of discrete actions, or of action components for a continuous game."""
        return len(self.action_names)

    @property
    def has_expert(self) -> bool:
        """False when the game was built with ``expert=None``."""
        return not isinstance(self.expert, _NoExpert)

    def as_action(self, action: Any) -> int | np.ndarray:
        """``action`` as the env takes it: an ``int`` for a discrete game, a float32 vector of
        :attr:`n_actions` components for a continuous one (not clipped; see :meth:`clip`).

        :raises ValueError: a continuous action with the wrong number of components.
        """
        if not self.continuous:
            return int(action)
        vector = np.asarray(action, dtype=np.float32).reshape(-1)
        if vector.shape != (self.n_actions,):
            raise ValueError(
                f"a {self.name} action has {self.n_actions} components, got {vector.shape[0]}"
            )
        return vector

    def clip(self, action: Any) -> int | np.ndarray:
        """:meth:`as_action`, clipped to ``action_bounds`` for a continuous game."""
        action = self.as_action(action)
        if not self.continuous:
            return action
        low, high = self.action_bounds
        return np.clip(action, low, high).astype(np.float32)

    def random_action(self, rng: np.random.Generator, view: View = None) -> int | np.ndarray:
        """A uniformly random action: a legal one of ``view`` (discrete), or a vector drawn
        uniformly in the action box (continuous; ``view`` unused)."""
        if self.continuous:
            low, high = self.action_bounds
            return rng.uniform(low, high, size=self.n_actions).astype(np.float32)
        return int(rng.choice(self.legal_actions(view)))
