"""The critical-state lookup table: critical states -> (suggested action, implicit reward).

ULTRA's identification step names critical steps of the agent's episodes, each with a suggested
action and an implicit reward; refinement then looks up every state the agent meets in this
table. Two ways to match a state:

* ``exact``: the state's key (``key_fn(obs)``, by default the game's ``state_key``) equals a
  stored key. Right for discrete observations (Blackjack, Snake's features, Connect Four).
* ``radius``: the nearest stored observation (Euclidean distance over the flattened float
  observation, each component divided by ``scale`` when one is given) lies within ``radius``.
  For continuous observations, where exact repeats are rare. Hopper's observation mixes metres,
  radians and (angular) velocities up to 10, so raw distances would be dominated by velocities:
  ULTRA's pipeline passes the game's ``table_scale`` as ``scale`` (Hopper: 0.1 m, 0.1 rad,
  1 m/s, 1 rad/s; for a game without one, each component's standard deviation over the
  agent's episodes, floored at their median) and its ``table_radius`` (Hopper: 1) as
  ``radius``.

**Continuous actions.** An entry's ``action`` and ``judged_action`` may be float vectors (numpy
float64 arrays; saved as lists), for games with ``continuous=True``.

**Collisions.** Two critical states collide when they share a key (``exact``) or when a new one
lies within ``radius`` of one already stored (``radius``; compared with its nearest stored
state). One entry survives: the one with the larger ``|reward|`` (the more decisive judgement);
on a tie, the one stored first. The survivor keeps its own observation, action and reward
together, never a mix of two judgements (averaging rewards while keeping one action would pair
a reward with an action it was not given for). ``collisions`` counts them. In ``radius`` mode a
winner moves its state to its own observation, which may then lie within ``radius`` of another
stored state; lookups always take the nearest stored state, so this only ever matters at ties.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tutorl._io import atomic_write_text
from tutorl.envs.base import Game
from tutorl.ultra.trajectories import Episode

FORMAT = "tutorl.ultra.table/1"
SOURCES = ("llm", "expert", "random")
Mode = Literal["exact", "radius"]


@dataclass
class Entry:
    """What the table holds for one critical state.

    :param action: the suggested action (an int, or a float vector for a continuous game), or
        ``None`` when only a reward was given.
    :param reward: the implicit reward, clipped to ``[-1, 1]``.
    :param source: who identified the state: ``"llm"``, ``"expert"`` or ``"random"`` (the
        ablation); other labels are accepted for other identifiers.
    :param rationale: the identifier's explanation, if any.
    :param judged_action: the action the agent took at this step in its episode, which the
        implicit reward judges (−1: a clear mistake, +1: clearly right); ``None`` if unknown.
    """

    action: int | np.ndarray | None
    reward: float
    source: str
    rationale: str = ""
    judged_action: int | np.ndarray | None = None

    def __post_init__(self) -> None:
        reward = float(self.reward)
        if math.isnan(reward):
            raise ValueError("an entry's reward must be a number, got NaN")
        self.reward = min(1.0, max(-1.0, reward))
        self.action = _action(self.action)
        self.judged_action = _action(self.judged_action)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": _action_json(self.action),
            "reward": self.reward,
            "source": self.source,
            "rationale": self.rationale,
            "judged_action": _action_json(self.judged_action),
        }


def _action(value: Any) -> int | np.ndarray | None:
    """``None``, an int, or a vector (list, tuple, array) as a float64 array."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:  # a numpy scalar action: an index
        return int(value)
    if isinstance(value, np.ndarray | list | tuple):
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
        if not np.isfinite(vector).all():
            raise ValueError(f"an action vector must be finite, got {vector}")
        return vector
    return int(value)


def _action_json(value: int | np.ndarray | None) -> int | list[float] | None:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _wins(new: Entry, old: Entry) -> bool:
    """The collision rule: the larger ``|reward|`` survives; on a tie the older entry stays."""
    return abs(new.reward) > abs(old.reward)


class CriticalTable:
    """Lookup table from critical states to :class:`Entry` (see the module for the modes and
    the collision rule).

    :param pairs: ``(obs, entry)`` pairs, added in order.
    :param game: the game; supplies the default ``key_fn`` (its ``state_key``) and is named in
        saved files.
    :param mode: ``"exact"`` or ``"radius"``.
    :param key_fn: ``key_fn(obs) -> hashable`` for ``exact`` mode; default ``game.state_key``.
    :param radius: the matching distance for ``radius`` mode (inclusive), in ``scale`` units.
    :param scale: ``radius`` mode only: positive divisors, one per observation component,
        applied before distances are computed (e.g. the components' standard deviations, so
        that ``radius`` is in standard deviations); ``None``: raw units.
    """

    def __init__(
        self,
        pairs: Iterable[tuple[np.ndarray, Entry]] = (),
        *,
        game: Game | None = None,
        mode: Mode = "exact",
        key_fn: Callable[[np.ndarray], Hashable] | None = None,
        radius: float | None = None,
        scale: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if mode not in ("exact", "radius"):
            raise ValueError(f"unknown table mode {mode!r}; use exact or radius")
        if mode == "exact":
            if key_fn is None and game is None:
                raise ValueError("an exact table needs key_fn or game (for game.state_key)")
            if radius is not None or scale is not None:
                raise ValueError("radius and scale apply only to mode='radius'")
        elif radius is None or not radius >= 0:
            raise ValueError(f"mode='radius' needs a radius >= 0, got {radius!r}")
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float64).reshape(-1)
            if not (np.isfinite(scale).all() and (scale > 0).all()):
                raise ValueError("scale must hold positive finite numbers")
        self.scale: np.ndarray | None = scale
        self.game = game
        self.mode: Mode = mode
        self.key_fn = key_fn if key_fn is not None else (game.state_key if game else None)
        self.radius = None if radius is None else float(radius)
        self._obs: list[np.ndarray] = []
        self._entries: list[Entry] = []
        self._index: dict[Hashable, int] = {}  # exact mode: key -> position
        self._points: np.ndarray | None = None  # radius mode: (n, d) float64
        self._tree: Any = None  # radius mode: cKDTree over _points, rebuilt lazily
        self.hits = 0
        self.misses = 0
        self.collisions = 0
        for obs, entry in pairs:
            self.add(obs, entry)

    # -- building -------------------------------------------------------------------------

    def add(self, obs: np.ndarray, entry: Entry) -> bool:
        """Store ``entry`` for the state ``obs``, applying the collision rule.

        :param obs: the critical state's observation.
        :param entry: what to do there.
        :return: True if ``entry`` is now in the table (new, or won a collision).
        """
        obs = np.array(obs, copy=True)
        if self.mode == "exact":
            key = self.key_fn(obs)
            position = self._index.get(key)
        else:
            position = self._nearest_within(self._flat(obs))
        if position is None:
            self._index_new(obs, len(self._entries))
            self._obs.append(obs)
            self._entries.append(entry)
            return True
        self.collisions += 1
        if not _wins(entry, self._entries[position]):
            return False
        if self.mode == "radius":
            self._points[position] = self._flat(obs)
            self._tree = None
        self._obs[position], self._entries[position] = obs, entry
        return True

    def _index_new(self, obs: np.ndarray, position: int) -> None:
        if self.mode == "exact":
            self._index[self.key_fn(obs)] = position
            return
        point = self._flat(obs)[None]
        if self._points is not None and self._points.shape[1] != point.shape[1]:
            raise ValueError(
                f"observation has {point.shape[1]} values, the table's have {self._points.shape[1]}"
            )
        self._points = point if self._points is None else np.vstack([self._points, point])
        self._tree = None

    def _flat(self, obs: np.ndarray) -> np.ndarray:
        point = np.asarray(obs, dtype=np.float64).reshape(-1)
        if self.scale is None:
            return point
        if point.shape != self.scale.shape:
            raise ValueError(
                f"observation has {point.shape[0]} values, the table's scale {self.scale.shape[0]}"
            )
        return point / self.scale

    def _nearest_within(self, point: np.ndarray) -> int | None:
        """Position of the nearest stored state within ``radius`` of ``point``, else None.

        Brute force: used while the table is built, when a tree would be rebuilt after every
        add; lookups use the tree (:meth:`_query`).
        """
        if self._points is None or len(self._points) == 0:
            return None
        if point.shape[0] != self._points.shape[1]:
            raise ValueError(
                f"observation has {point.shape[0]} values, the table's have {self._points.shape[1]}"
            )
        distances = np.linalg.norm(self._points - point, axis=1)
        position = int(np.argmin(distances))
        return position if distances[position] <= self.radius else None

    def _query(self, points: np.ndarray) -> list[int | None]:
        from scipy.spatial import cKDTree

        if self._tree is None:
            self._tree = cKDTree(self._points)
        distances, positions = self._tree.query(points, k=1)
        return [
            int(p) if d <= self.radius else None
            for d, p in zip(np.atleast_1d(distances), np.atleast_1d(positions), strict=True)
        ]

    # -- lookups --------------------------------------------------------------------------

    def lookup(self, obs: np.ndarray) -> Entry | None:
        """The entry for ``obs``'s state, or ``None``; counts a hit or a miss.

        :param obs: an observation.
        :return: the matching entry, if any.
        """
        return self.lookup_batch(np.asarray(obs)[None])[0]

    def lookup_batch(self, obs_batch: np.ndarray | Sequence[np.ndarray]) -> list[Entry | None]:
        """:meth:`lookup` for a batch of observations (one vectorised query in radius mode).

        :param obs_batch: observations, shape ``(n, ...)``.
        :return: one entry or ``None`` per observation.
        """
        batch = list(obs_batch) if not isinstance(obs_batch, np.ndarray) else obs_batch
        if len(batch) == 0:
            return []
        if self.mode == "exact":
            positions = [self._index.get(self.key_fn(np.asarray(o))) for o in batch]
        elif self._points is None:
            positions = [None] * len(batch)
        else:
            points = np.stack([self._flat(o) for o in batch])
            if points.shape[1] != self._points.shape[1]:
                raise ValueError(
                    f"observations have {points.shape[1]} values, "
                    f"the table's have {self._points.shape[1]}"
                )
            positions = self._query(points)
        found = [None if p is None else self._entries[p] for p in positions]
        hits = sum(e is not None for e in found)
        self.hits += hits
        self.misses += len(found) - hits
        return found

    def __contains__(self, obs: object) -> bool:
        """Whether ``obs`` matches a stored state (not counted as a hit or miss)."""
        obs = np.asarray(obs)
        if self.mode == "exact":
            return self.key_fn(obs) in self._index
        if self._points is None:
            return False
        return self._nearest_within(self._flat(obs)) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[np.ndarray, Entry]]:
        """The stored ``(obs, entry)`` pairs, in the order their states were first stored."""
        return iter(zip(self._obs, self._entries, strict=True))

    def entries(self) -> list[Entry]:
        """The stored entries, in the order their states were first stored."""
        return list(self._entries)

    def reset_counters(self) -> None:
        """Zero ``hits`` and ``misses``."""
        self.hits = self.misses = 0

    def empty_like(self) -> CriticalTable:
        """An empty table with the same game, mode, key function, radius and scale."""
        return CriticalTable(
            game=self.game, mode=self.mode, key_fn=self.key_fn, radius=self.radius, scale=self.scale
        )

    # -- files ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the table as JSON, atomically: mode, radius, scale, game name and every
        ``(obs, entry)`` (observations as lists with their dtype). Keys are recomputed on load;
        counters are not saved.

        :param path: the file to write (its folder is created).
        """
        data = {
            "format": FORMAT,
            "mode": self.mode,
            "radius": self.radius,
            "scale": self.scale.tolist() if self.scale is not None else None,
            "game": self.game.name if self.game is not None else None,
            "collisions": self.collisions,
            "entries": [
                {
                    "obs": np.asarray(obs).tolist(),
                    "dtype": str(np.asarray(obs).dtype),
                    **entry.as_dict(),
                }
                for obs, entry in self
            ],
        }
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(
        cls,
        path: str | Path,
        game: Game | None = None,
        key_fn: Callable[[np.ndarray], Hashable] | None = None,
    ) -> CriticalTable:
        """Read a table written by :meth:`save`.

        :param path: the JSON file.
        :param game: the game; default the registered game named in the file.
        :param key_fn: the key function of an exact table saved with a custom one (it cannot
            be saved); default ``game.state_key``.
        :return: the table.
        :raises ValueError: for a file that is not a saved table.
        """
        try:
            data = json.loads(Path(path).read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if game is None and data["game"] is not None:
                from tutorl.envs import get_game

                game = get_game(data["game"])
            table = cls(
                game=game,
                mode=data["mode"],
                key_fn=key_fn,
                radius=data["radius"],
                scale=data.get("scale"),
            )
            for item in data["entries"]:
                obs = np.asarray(item["obs"], dtype=np.dtype(item["dtype"]))
                entry = Entry(
                    item["action"],
                    item["reward"],
                    item["source"],
                    item["rationale"],
                    item.get("judged_action"),
                )
                if table.mode == "exact":
                    table.add(obs, entry)
                else:  # already resolved when saved: keep every stored state as it was
                    table._index_new(obs, len(table._entries))
                    table._obs.append(obs)
                    table._entries.append(entry)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a saved critical table ({error})") from None
        table.collisions = int(data.get("collisions", 0))
        return table

    # -- the random ablation --------------------------------------------------------------

    @classmethod
    def random_like(
        cls, table: CriticalTable, episodes: Sequence[Episode], seed: int = 0
    ) -> CriticalTable:
        """The ablation: as many critical states as ``table``, chosen at random.

        The steps of ``episodes`` are visited in a seeded random order and each step whose
        state is not yet in the new table is added, until it is as large as ``table``. So each
        state is picked with probability proportional to how often the episodes visit it, as
        when sampling steps uniformly, but without repeats. Each gets a uniformly random legal
        action of its step (for a continuous game, a vector drawn uniformly in the action box,
        ``game.action_bounds``) and a reward drawn uniformly (with replacement) from the rewards of
        ``table``'s entries, so the random table has the original's reward distribution, judging
        the action the agent took at that step; source ``"random"``. Same mode, key function
        and radius as ``table``. If the episodes hold fewer distinct states than ``table`` has
        entries, the result is smaller.

        :param table: the table to imitate.
        :param episodes: the episodes to draw states from.
        :param seed: seed of every random choice.
        :return: the random table.
        """
        rng = np.random.default_rng(seed)
        out = table.empty_like()
        rewards = [e.reward for e in table.entries()]
        if not rewards:
            return out
        steps = [step for episode in episodes for step in episode.steps]
        game = table.game
        continuous = game.continuous if game is not None else False
        bounds = game.action_bounds if game is not None else (-1.0, 1.0)
        if game is None:  # no game: vector actions in the episodes mean a continuous game
            continuous = any(isinstance(s.action, np.ndarray) for s in steps)
        for i in rng.permutation(len(steps)):
            if len(out) >= len(table):
                break
            step = steps[int(i)]
            if step.obs in out:
                continue
            if continuous:
                low, high = bounds
                action = rng.uniform(low, high, size=np.asarray(step.action).size)
            else:  # a random legal action other than the agent's (which the reward judges)
                others = [a for a in step.legal if a != step.action] or list(step.legal)
                action = int(rng.choice(others)) if others else None
            reward = float(rng.choice(rewards))
            out.add(step.obs, Entry(action, reward, "random", judged_action=step.action))
        return out

    def __repr__(self) -> str:
        extra = f", radius={self.radius:g}" if self.mode == "radius" else ""
        extra += ", scaled" if self.scale is not None else ""
        return (
            f"CriticalTable({len(self)} states, mode={self.mode}{extra}, hits={self.hits}, "
            f"misses={self.misses}, collisions={self.collisions})"
        )


__all__ = ["SOURCES", "CriticalTable", "Entry"]
