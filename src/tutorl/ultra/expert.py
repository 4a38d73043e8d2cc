"""The expert as a critical-step identifier: the reference that LLM identifications are scored by.

ULTRA calls a step *critical* when the action taken there strongly changes the return that
follows. With a game's :attr:`~tutorl.envs.base.Game.action_values` (the value of each action
when the expert plays on afterwards) that is measurable: step ``t`` of an episode really was
critical when the agent's action differs from the expert's and the value it lost,
``max(values) - values[action]``, exceeds a threshold in the game's return units.

* :func:`expert_critical_steps` finds those steps (the ground truth of an identification);
* :func:`expert_suggestions` turns steps into what an LLM is asked for: the action to take and
  an implicit reward judging the agent's action, from the expert (a strong LLM's stand-in);
* :func:`precision_recall` scores a set of named steps against the true ones;
* :func:`suggestion_soundness` scores the actions suggested there.

.. code-block:: python

    from tutorl.envs import get_game
    from tutorl.ultra.expert import expert_critical_steps, precision_recall

    game = get_game("blackjack")
    views = [s.view for s in episode.steps]
    actions = [s.action for s in episode.steps]
    true = expert_critical_steps(game, views, actions, game.ultra_threshold)
    scores = precision_recall({c.step for c in result.critical}, set(true))
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from tutorl.envs.base import Game, View

#: The value lost (in the game's return units) above which a deviation from the expert is a
#: critical step.
#: The value given to an illegal action (NaN in ``action_values``): every game here treats an
#: illegal move as a loss (Connect Four ends the game at -1), and no legal value is below -1.
ILLEGAL_VALUE = -1.0


def _values(game: Game, view: View) -> np.ndarray:
    if game.action_values is None:
        raise ValueError(f"game {game.name!r} defines no action_values")
    values = np.asarray(game.action_values(view), dtype=float)
    if values.shape != (game.n_actions,) or np.isnan(values).all():
        raise ValueError(f"{game.name} action_values gave {values} for a state with no legal move")
    return values


def value_lost(game: Game, view: View, action: int) -> float:
    """How much return ``action`` loses against the best action, the expert playing on after.

    :param game: a game with ``action_values``.
    :param view: the state, as the game's functions take it.
    :param action: the action taken; an illegal one is worth :data:`ILLEGAL_VALUE`.
    :return: ``max(values) - values[action]`` (0 for a best action), in the game's return units.
    :raises ValueError: an action outside the action space, or no action values for ``game``.
    """
    values = _values(game, view)
    action = int(action)
    if not 0 <= action < len(values):
        raise ValueError(f"action {action} is not one of {game.name}'s {len(values)} actions")
    taken = values[action]
    if np.isnan(taken):
        taken = ILLEGAL_VALUE
    return max(0.0, float(np.nanmax(values) - taken))


def expert_critical_steps(
    game: Game, views: Sequence[View], actions: Sequence[int], threshold: float
) -> list[int]:
    """The steps of an episode that really were critical.

    Step ``t`` is critical when ``actions[t] != game.expert(views[t])`` and the value the agent's
    action lost (:func:`value_lost`) exceeds ``threshold``. Both conditions matter: an action
    tied with the expert's loses nothing, and with a threshold of 0 only the first one is left.

    :param game: a game with ``action_values``.
    :param views: the state of each step (``Step.view``).
    :param actions: the action the agent took at each step.
    :param threshold: value lost, in the game's return units, above which a deviation counts
        (each game's :attr:`~tutorl.envs.base.Game.ultra_threshold`).
    :return: the critical step indices, increasing.
    :raises ValueError: ``views`` and ``actions`` of different lengths, or a negative threshold.
    """
    if len(views) != len(actions):
        raise ValueError(f"{len(views)} views but {len(actions)} actions")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return [
        t
        for t, (view, action) in enumerate(zip(views, actions, strict=True))
        if int(action) != int(game.expert(view)) and value_lost(game, view, action) > threshold
    ]


def expert_suggestions(
    game: Game, views: Sequence[View], steps: Collection[int], *, actions: Sequence[int]
) -> list[tuple[int, int, float]]:
    """What the expert, standing in for a strong LLM, says about the given steps.

    For each step: the expert's action and an *implicit reward* judging the agent's action,
    ``-value_lost / 2`` clipped to ``[-1, 1]``. Every game's action values lie in ``[-1, 1]``,
    so the value lost lies in ``[0, 2]`` and the reward in ``[-1, 0]``: 0 when the agent's action
    is as good as the best, -1 when it turns a certain win into a certain loss; it is
    proportional to the value lost, in half return units, the same scale in every game.

    :param game: a game with ``action_values``.
    :param views: the state of each step of the episode.
    :param steps: the step indices to judge (e.g. :func:`expert_critical_steps`' answer).
    :param actions: keyword-only: the agent's action at each step (the reward judges it).
    :return: ``(step, expert action, implicit reward)`` per step, by increasing step.
    :raises ValueError: a step outside the episode, or ``views`` and ``actions`` of different
        lengths.
    """
    if len(views) != len(actions):
        raise ValueError(f"{len(views)} views but {len(actions)} actions")
    out = []
    for t in sorted({int(s) for s in steps}):
        if not 0 <= t < len(views):
            raise ValueError(f"step {t} is outside the episode's {len(views)} steps")
        lost = value_lost(game, views[t], actions[t])
        reward = min(1.0, max(-1.0, -lost / 2)) + 0.0  # + 0.0: no -0.0
        out.append((t, int(game.expert(views[t])), reward))
    return out


def suggestion_soundness(
    game: Game,
    views: Sequence[Sequence[View]],
    named: Sequence[Sequence[Any]],
    threshold: float,
) -> dict[str, Any]:
    """How many of an identifier's suggested actions are themselves sound: they lose at most
    ``threshold`` of value against the best action (:func:`value_lost`).

    Precision scores *where* an identifier intervenes; this scores *what* it would make the
    agent do there, which is what ULTRA-A executes and RA rewards. The expert's suggestions are
    sound by construction; a constant or random answer is sound about as often as a random
    action is near-best.

    :param game: a game with ``action_values``.
    :param views: per episode, the state of each step.
    :param named: ``(episode, step, action, ...)`` per named critical step.
    :param threshold: value lost above which a suggestion is unsound (the identification's).
    :return: ``sound``, ``suggestions`` (ints), ``soundness`` (their ratio) and ``chance``
        (the soundness a uniformly random legal action would have at the same steps); the
        ratios are ``None`` when nothing was named.
    """
    suggestions = {(int(e), int(t), int(a)) for e, t, a, *_ in named}
    sound = sum(value_lost(game, views[e][t], a) <= threshold for e, t, a in suggestions)
    chance = []
    for e, t, _ in suggestions:
        values = _values(game, views[e][t])
        legal = values[~np.isnan(values)]
        chance.append(float(np.mean(legal.max() - legal <= threshold)))
    return {
        "sound": int(sound),
        "suggestions": len(suggestions),
        "soundness": sound / len(suggestions) if suggestions else None,
        "chance": float(np.mean(chance)) if chance else None,
    }


def _item(step: Any) -> Any:
    # Steps are ints (numpy ints included), or (episode, step) pairs when pooling episodes.
    return tuple(int(x) for x in step) if isinstance(step, tuple | list) else int(step)


def precision_recall(predicted: Collection[int], true: Collection[int]) -> dict[str, Any]:
    """Precision, recall and F1 of the steps an identifier named against the true critical steps.

    Empty sets get explicit conventions: precision is undefined (``None``) when nothing was
    predicted and recall is undefined (``None``) when nothing was truly critical. F1, the
    harmonic mean ``2 tp / (2 tp + fp + fn)``, is then 0 when exactly one set is empty and 1
    when both are (the identifier rightly named nothing). To pool episodes, sum the counts
    rather than averaging the ratios.

    :param predicted: the steps named (e.g. by an LLM): ints, or ``(episode, step)`` pairs.
    :param true: the truly critical steps (:func:`expert_critical_steps`).
    :return: ``precision``, ``recall``, ``f1`` (floats or ``None``), ``tp``, ``fp``, ``fn``,
        ``n_predicted`` and ``n_true`` (ints).
    """
    pred, real = {_item(s) for s in predicted}, {_item(s) for s in true}
    tp = len(pred & real)
    fp, fn = len(pred) - tp, len(real) - tp
    return {
        "precision": tp / len(pred) if pred else None,
        "recall": tp / len(real) if real else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if pred or real else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "n_predicted": len(pred),
        "n_true": len(real),
    }


__all__ = [
    "ILLEGAL_VALUE",
    "expert_critical_steps",
    "expert_suggestions",
    "precision_recall",
    "suggestion_soundness",
    "value_lost",
]
