"""Games that tutorl can tutor, by name.

A game is found, in this order, as:

1. a name given to :func:`register` in this process;
2. a built-in game (``blackjack``, ``snake``, ``connect_four``, ``doorkey``, ``hopper``), each
   imported only when asked for, so that a user game needs none of PettingZoo, MiniGrid or
   MuJoCo;
3. an installed package's game, declared as an entry point of the group ``tutorl.games``
   (``[project.entry-points."tutorl.games"] frozen = "usergame.games:FROZEN"``);
4. ``package.module:ATTRIBUTE``, the import path of a :class:`Game` object
   (``--env usergame.games:FROZEN``): the way to name a game that is not installed as a
   package; sweep workers and Ray workers import it the same way.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tutorl.envs.base import Game

ENTRY_POINT_GROUP = "tutorl.games"
_BUILTIN = {
    "blackjack": "tutorl.envs.blackjack",
    "connect_four": "tutorl.envs.connect_four",
    "doorkey": "tutorl.envs.doorkey",
    "hopper": "tutorl.envs.hopper",
    "snake": "tutorl.envs.snake",
}
_REGISTRY: dict[str, Game] = {}


def register(game: Game) -> Game:
    """Make ``game`` available by name to the CLI, sweeps and tutors of this process."""
    _REGISTRY[game.name] = game
    return game


def get_game(name: str) -> Game:
    """The game called ``name`` (see the module docstring for where it is looked up).

    :raises ValueError: an unknown name (naming the known ones), or an import path that does
        not lead to a :class:`Game`.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BUILTIN:
        return register(importlib.import_module(_BUILTIN[name]).GAME)
    installed = _entry_points()
    if name in installed:
        where = f"entry point {name!r} of {ENTRY_POINT_GROUP}"
        try:
            game = installed[name].load()
        except Exception as error:  # the package's own import error, in one line
            raise ValueError(f"{where}: cannot load {installed[name].value} ({error})") from None
        if not isinstance(game, Game):
            raise ValueError(f"{where}: {installed[name].value} is not a tutorl Game")
    elif ":" in name:
        game = _load(name)
    else:
        known = ", ".join(game_names())
        raise ValueError(
            f"unknown env {name!r}; known envs: {known} (or give a game's import path, "
            "package.module:GAME)"
        )
    _REGISTRY[name] = game  # under the name it was asked by: workers ask the same way
    if game.name not in _BUILTIN and game.name not in installed:  # never shadow another game
        _REGISTRY.setdefault(game.name, game)
    return game


def game_names() -> list[str]:
    """Every game name this process can find: registered, built-in and installed."""
    return sorted({*_REGISTRY, *_BUILTIN, *_entry_points()})


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load(path: str) -> Game:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path}: a game's import path is package.module:GAME")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{path}: cannot import {module_name!r} ({error})") from None
    game = getattr(module, attribute, None)
    if not isinstance(game, Game):
        games = [k for k, v in vars(module).items() if isinstance(v, Game)]
        found = f"a {type(game).__name__}" if hasattr(module, attribute) else "not defined"
        hint = f" ({module_name} has {', '.join(games)})" if games else ""
        raise ValueError(f"{path}: {attribute} is {found}, not a tutorl Game{hint}")
    return game


__all__ = ["ENTRY_POINT_GROUP", "Game", "game_names", "get_game", "register"]
