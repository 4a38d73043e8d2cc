"""Games that tutorl can tutor, by name. Each module defines one ``GAME``."""

from __future__ import annotations

from tutorl.envs.base import Game

_REGISTRY: dict[str, Game] = {}


def register(game: Game) -> Game:
    """Make ``game`` available by name to the CLI, sweeps and tutors."""
    _REGISTRY[game.name] = game
    return game


def get_game(name: str) -> Game:
    """The game registered as ``name``; a clear error naming the known games otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown env {name!r}; known envs: {known}")
    return _REGISTRY[name]


def game_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Imported lazily so that `import tutorl` stays fast and PettingZoo loads only when needed.
    if {"blackjack", "snake", "connect_four", "doorkey", "hopper"} <= set(_REGISTRY):
        return
    from tutorl.envs import blackjack, connect_four, doorkey, hopper, snake

    for module in (blackjack, connect_four, snake, doorkey, hopper):
        register(module.GAME)


__all__ = ["Game", "game_names", "get_game", "register"]
