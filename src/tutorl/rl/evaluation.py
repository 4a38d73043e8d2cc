"""Greedy evaluation of a policy on fixed seeds, or exactly where the game allows it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tutorl.envs.base import Game

Actor = Callable[[np.ndarray, list[gym.Env]], np.ndarray]
"""``act(observations, envs) -> actions``: one action per env, for a batch of envs."""


@dataclass
class EvalResult:
    """Greedy evaluation of one policy.

    ``exact`` results come from the game's exact evaluator (Blackjack): no sampling noise, the
    interval collapses to the value itself and ``success_rate`` is the exact win probability.
    """

    mean_return: float
    std_return: float
    ci95_low: float
    ci95_high: float
    episodes: int
    success_rate: float
    wins: int | None = None
    draws: int | None = None
    losses: int | None = None
    illegal_moves: int = 0
    exact: bool = False
    #: whether the env reports ``info["is_success"]`` at all (else ``success_rate`` is 0)
    success_reported: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def view_of(game: Game, obs: np.ndarray, env: gym.Env):
    """What a tutor (or the expert) is shown in ``env``'s current state."""
    return env.get_wrapper_attr("tutor_view")() if game.view_from_env else obs


def expert_actor(game: Game) -> Actor:
    def act(obs: np.ndarray, envs: list[gym.Env]) -> np.ndarray:
        return np.array([game.expert(view_of(game, o, e)) for o, e in zip(obs, envs, strict=True)])

    return act


def tutor_actor(game: Game, tutor: Any) -> Actor:
    """The tutor playing greedily: its advised action in every state (a legal action of its
    own choosing is required; an answer that is not legal plays the first legal action, as a
    failed answer would leave the student's action in training)."""

    def act(obs: np.ndarray, envs: list[gym.Env] | None) -> np.ndarray:
        views = (
            [view_of(game, o, e) for o, e in zip(obs, envs, strict=True)]
            if envs is not None
            else list(obs)
        )
        actions = []
        for view, advice in zip(views, tutor.advise(views), strict=True):
            legal = game.legal_actions(view)
            ok = advice.source != "fallback" and advice.action in legal
            actions.append(advice.action if ok else legal[0])
        return np.array(actions)

    return act


def random_actor(game: Game, seed: int = 0) -> Actor:
    """Uniformly random legal actions, or vectors uniform in the action box (continuous)."""
    rng = np.random.default_rng(seed)
    if game.continuous:
        return lambda obs, envs: np.stack([game.random_action(rng) for _ in envs])

    def act(obs: np.ndarray, envs: list[gym.Env]) -> np.ndarray:
        legal = [game.legal_actions(view_of(game, o, e)) for o, e in zip(obs, envs, strict=True)]
        return np.array([rng.choice(actions) for actions in legal])

    return act


def model_actor(model) -> Actor:
    """Greedy actions of an SB3 model; MaskablePPO is given the envs' action masks. For a
    ``Box`` action space the actions are vectors, shape ``(n_envs, *action_shape)`` (SB3's
    ``predict`` clips them to the box)."""
    from gymnasium import spaces
    from sb3_contrib import MaskablePPO

    masked = isinstance(model, MaskablePPO)
    space = getattr(model, "action_space", None)
    shape = tuple(space.shape) if isinstance(space, spaces.Box) else ()

    def act(obs: np.ndarray, envs: list[gym.Env]) -> np.ndarray:
        kwargs = {}
        if masked:
            kwargs["action_masks"] = np.stack([e.get_wrapper_attr("action_masks")() for e in envs])
        actions, _ = model.predict(obs, deterministic=True, **kwargs)
        return np.asarray(actions).reshape(len(envs), *shape)

    return act


def evaluate_episodes(
    game: Game,
    act: Actor,
    episodes: int,
    seed: int,
    env_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes with seeds ``seed, seed+1, ...`` and summarise the returns.

    All episodes run side by side so that a neural policy is queried once per step for all of
    them (one batched forward pass instead of one per episode). Each episode runs until the env
    ends it (Hopper: a fall, or its 1,000-step limit; ``env_options`` such as
    ``max_episode_steps`` shorten it).
    """
    options = {**game.options, **(env_options or {})}
    envs = [game.make(**options) for _ in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes)
    final_info: list[dict] = [{} for _ in range(episodes)]
    active = list(range(episodes))
    while active:
        actions = act(np.stack([obs[i] for i in active]), [envs[i] for i in active])
        still = []
        for i, action in zip(active, actions, strict=True):
            obs[i], reward, terminated, truncated, info = envs[i].step(game.as_action(action))
            returns[i] += float(reward)
            if terminated or truncated:
                final_info[i] = info
            else:
                still.append(i)
        active = still
    for env in envs:
        env.close()
    mean = float(returns.mean())
    std = float(returns.std(ddof=1)) if episodes > 1 else 0.0
    half = 1.96 * std / math.sqrt(episodes) if episodes > 1 else 0.0
    result = EvalResult(
        mean_return=mean,
        std_return=std,
        ci95_low=mean - half,
        ci95_high=mean + half,
        episodes=episodes,
        success_rate=float(np.mean([bool(i.get("is_success", False)) for i in final_info])),
        illegal_moves=sum(bool(i.get("illegal_move", False)) for i in final_info),
        success_reported=any("is_success" in i for i in final_info),
    )
    if game.has_outcomes:
        outcomes = [i.get("outcome") for i in final_info]
        result.wins = outcomes.count("win")
        result.draws = outcomes.count("draw")
        result.losses = outcomes.count("loss")
    return result


def evaluate_exact(game: Game, predict: Callable[[np.ndarray], np.ndarray]) -> EvalResult:
    """Exact expected return of a deterministic policy (games with an exact evaluator)."""
    assert game.exact_evaluator is not None
    mean, win = game.exact_evaluator(predict)
    return EvalResult(float(mean), 0.0, float(mean), float(mean), 0, float(win), exact=True)


def evaluate_model(
    model,
    game: Game,
    episodes: int,
    seed: int,
    env_options: dict[str, Any] | None = None,
    exact: bool = True,
) -> EvalResult:
    """Greedy evaluation of an SB3 model: exact where the game allows it, else sampled."""
    if exact and game.exact_evaluator is not None and not env_options:
        return evaluate_exact(game, lambda batch: model.predict(batch, deterministic=True)[0])
    return evaluate_episodes(game, model_actor(model), episodes, seed, env_options)


def evaluate_actor(
    game: Game,
    act: Actor,
    episodes: int,
    seed: int,
    env_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Greedy evaluation of any actor on the same protocol as :func:`evaluate_model`: exact where
    the game allows it (observation-only actors), else ``episodes`` seeded episodes."""
    if game.exact_evaluator is not None and not env_options and not game.view_from_env:
        return evaluate_exact(game, lambda batch: act(np.asarray(batch), None))
    return evaluate_episodes(game, act, episodes, seed, env_options)


def load_model(path: str | Path):
    """Load a model saved by ``tutorl train`` (any of the tutored algorithms)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from tutorl.rl.hooks import TutoredA2C, TutoredDQN, TutoredMaskablePPO, TutoredPPO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        data, _, _ = load_from_zip_file(path, device="cpu")
    except Exception as error:
        raise ValueError(f"{path} is not a model saved by tutorl/SB3: {error}") from None
    if not data or "policy_class" not in data:
        raise ValueError(f"{path} is not a model saved by tutorl/SB3")
    policy = data.get("policy_class")
    name = getattr(policy, "__name__", str(policy))
    if "DQN" in name:
        cls = TutoredDQN
    elif "Maskable" in name:
        cls = TutoredMaskablePPO
    elif "clip_range" in data:
        cls = TutoredPPO
    else:
        cls = TutoredA2C
    return cls.load(path, device="cpu")
