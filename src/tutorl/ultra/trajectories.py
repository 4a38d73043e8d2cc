"""Roll out an agent into episodes (ULTRA's raw material), and save or load them as JSON lines.

An :class:`Episode` is a list of :class:`Step` records: what the agent observed, what a tutor
would be shown (the *view*: the observation itself, or for ``view_from_env`` games such as Snake
the env's ``tutor_view()``), the action taken, the reward received and the legal actions. Steps
hold decision states only: the final observation after the last action is not a step. In a
continuous game (``game.continuous``, Hopper) an action is a float32 vector, saved as a list of
numbers, and ``legal`` is empty.

Rollouts use one plain (non-vectorised) environment per call and seed episode ``i`` with
``seed + i``, so the same policy and seeds give the same episodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from tutorl._io import atomic_write_text
from tutorl.envs.base import Game, View
from tutorl.rl.evaluation import model_actor, view_of

FORMAT = "tutorl.ultra.episode/1"

Policy = Callable[[np.ndarray, View], Any]
"""``policy(obs, view) -> action``: any callable that picks an action for one state (an int, or
a vector for continuous games)."""


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Step:
    """One decision of an episode.

    :param t: 0-based index of the step in its episode.
    :param obs: the agent's observation before acting.
    :param view: what a tutor is shown in that state (the observation, or the env's
        ``tutor_view()`` for ``view_from_env`` games); see :func:`to_jsonable`.
    :param action: the action taken: an int, or for a continuous game a float32 vector (the
        action the env received, inside its action box).
    :param reward: the reward received for it.
    :param key: ``game.state_key(obs)``, the exact key of the observation.
    :param legal: the legal actions in that state (``game.legal_actions(view)``; ``[]`` for a
        continuous game).
    """

    t: int
    obs: np.ndarray
    view: Any
    action: int | np.ndarray
    reward: float
    key: Hashable
    legal: list[int]


@dataclass(eq=False)
class Episode:
    """One episode played from ``reset(seed=seed)``.

    :param seed: the seed of the episode's ``reset``.
    :param steps: the decisions, in order.
    :param terminated: the episode ended in a terminal state (rather than truncated or cut).
    :param truncated: the episode was truncated (by the env's time limit or ``max_steps``).
    :param info: the JSON-compatible entries of the final step's ``info`` (``outcome``,
        ``is_success``, ``illegal_move``, ``food``, ... depending on the game).
    """

    seed: int
    steps: list[Step]
    terminated: bool = True
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def total_return(self) -> float:
        """The undiscounted sum of the episode's rewards."""
        return float(sum(step.reward for step in self.steps))

    @property
    def length(self) -> int:
        """The number of steps (decisions) of the episode."""
        return len(self.steps)


# --------------------------------------------------------------------------------------------
# JSON conversion
# --------------------------------------------------------------------------------------------

_TUPLE = "__tuple__"
_ARRAY = "__ndarray__"


def to_jsonable(value: Any, keep_types: bool = False) -> Any:
    """A JSON-serialisable copy of ``value`` (a view, an observation, an info dict...).

    numpy arrays become (nested) lists, numpy scalars Python numbers, tuples lists and dict
    keys strings. With ``keep_types=True`` arrays and tuples are tagged instead
    (``{"__ndarray__": [...], "dtype": ..., "shape": [...]}`` and ``{"__tuple__": [...]}``) so
    that :func:`from_jsonable` restores them exactly; Snake's describer, for one, prints tuples
    and lists differently.

    :param value: nested dicts, lists, tuples, numpy arrays and scalars, str, bool, None.
    :param keep_types: tag arrays and tuples for an exact round trip.
    :return: the converted value.
    :raises TypeError: for anything else (e.g. bytes or arbitrary objects).
    """
    if isinstance(value, np.ndarray):
        data = value.tolist()
        if keep_types:
            return {_ARRAY: data, "dtype": str(value.dtype), "shape": list(value.shape)}
        return data
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, keep_types) for k, v in value.items()}
    if isinstance(value, tuple):
        items = [to_jsonable(v, keep_types) for v in value]
        return {_TUPLE: items} if keep_types else items
    if isinstance(value, list):
        return [to_jsonable(v, keep_types) for v in value]
    raise TypeError(f"cannot convert {type(value).__name__} to JSON: {value!r:.80}")


def from_jsonable(value: Any) -> Any:
    """Invert :func:`to_jsonable` with ``keep_types=True``: tagged arrays and tuples come back.

    :param value: a value loaded from JSON.
    :return: the value with numpy arrays and tuples restored.
    """
    if isinstance(value, dict):
        if _ARRAY in value:
            array = np.asarray(value[_ARRAY], dtype=np.dtype(value["dtype"]))
            return array.reshape(value["shape"])
        if _TUPLE in value and len(value) == 1:
            return tuple(from_jsonable(v) for v in value[_TUPLE])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    """The entries of an ``info`` dict that convert to JSON (others are dropped)."""
    kept = {}
    for k, v in info.items():
        try:
            kept[str(k)] = to_jsonable(v)
        except TypeError:
            continue
    return kept


# --------------------------------------------------------------------------------------------
# Policies and rollouts
# --------------------------------------------------------------------------------------------


def policy_from_model(model: Any, env: gym.Env, deterministic: bool = True) -> Policy:
    """A :data:`Policy` that asks an SB3 model for the action in ``env``'s current state.

    MaskablePPO is given ``env``'s action masks. Greedy actions reuse
    :func:`tutorl.rl.evaluation.model_actor`; sampled ones (``deterministic=False``) draw from
    torch's and numpy's global generators: seed them (``collect`` does, per episode) for
    reproducible rollouts.

    :param model: a Stable-Baselines3 (or sb3-contrib) model.
    :param env: the single environment the policy acts in.
    :param deterministic: greedy actions (True) or sampled ones.
    :return: ``policy(obs, view) -> action``: an int, or a float32 vector for a ``Box`` action
        space (clipped to the box by SB3's ``predict``).
    """
    from gymnasium import spaces

    if isinstance(getattr(model, "action_space", None), spaces.Box):
        return _continuous_policy(model, deterministic)
    if deterministic:
        act = model_actor(model)
        return lambda obs, view: int(act(np.asarray(obs)[None], [env])[0])

    from sb3_contrib import MaskablePPO

    masked = isinstance(model, MaskablePPO)

    def policy(obs: np.ndarray, view: View) -> int:
        kwargs = {}
        if masked:
            kwargs["action_masks"] = env.get_wrapper_attr("action_masks")()[None]
        actions, _ = model.predict(np.asarray(obs)[None], deterministic=False, **kwargs)
        return int(np.asarray(actions).reshape(-1)[0])

    return policy


def _continuous_policy(model: Any, deterministic: bool) -> Policy:
    shape = tuple(model.action_space.shape)

    def policy(obs: np.ndarray, view: View) -> np.ndarray:
        actions, _ = model.predict(np.asarray(obs)[None], deterministic=deterministic)
        return np.asarray(actions, dtype=np.float32).reshape(shape)

    return policy


def expert_policy(game: Game) -> Policy:
    """The game's expert as a :data:`Policy`.

    :param game: the game.
    :return: ``policy(obs, view) = game.expert(view)``.
    """
    return lambda obs, view: int(game.expert(view))


def random_policy(game: Game, seed: int = 0) -> Policy:
    """A uniformly random legal action (a vector uniform in the action box for a continuous
    game), from its own seeded generator.

    :param game: the game (legal actions).
    :param seed: seed of the policy's generator.
    :return: the policy.
    """
    rng = np.random.default_rng(seed)
    if game.continuous:
        return lambda obs, view: game.random_action(rng)
    return lambda obs, view: int(rng.choice(game.legal_actions(view)))


class _SeededGlobalRNG:
    """Seed torch's and numpy's global generators and a model's action space inside a ``with``
    block, and restore all three afterwards: stochastic SB3 predictions then depend on the
    episode's seed only, and nothing else (later training included) sees a difference."""

    def __init__(self, seed: int, model: Any) -> None:
        self.seed, self.model = seed, model

    def __enter__(self) -> None:
        import torch

        self._np_state = np.random.get_state()
        self._torch_state = torch.random.get_rng_state()
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        self._space = getattr(self.model, "action_space", None)
        if self._space is not None:  # DQN's epsilon-greedy samples from it
            self._space_state = self._space.np_random.bit_generator.state
            self._space.seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        import torch

        np.random.set_state(self._np_state)
        torch.random.set_rng_state(self._torch_state)
        if self._space is not None:
            self._space.np_random.bit_generator.state = self._space_state


def collect(
    game: Game,
    policy: Any,
    episodes: int,
    seed: int = 0,
    env_options: dict[str, Any] | None = None,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> list[Episode]:
    """Play ``episodes`` episodes with ``policy`` and record every step.

    :param game: the game.
    :param policy: an SB3 model (anything with ``.predict``; MaskablePPO gets the env's action
        masks) or a callable ``policy(obs, view) -> action``.
    :param episodes: how many episodes; episode ``i`` starts from ``reset(seed=seed + i)``.
    :param seed: seed of the first episode.
    :param env_options: options passed to ``game.make`` on top of ``game.options``.
    :param deterministic: for a model, greedy actions (True) or sampled ones; sampled actions
        are seeded per episode (``seed + i``), so rollouts are reproducible either way. Ignored
        for callables (seed them yourself, e.g. :func:`random_policy`).
    :param max_steps: cut an episode after this many steps (marked ``truncated``); ``None``
        relies on the env ending its episodes.
    :return: the episodes, in seed order.
    """
    if episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    env = game.make(**{**game.options, **(env_options or {})})
    is_model = hasattr(policy, "predict")
    act = policy_from_model(policy, env, deterministic) if is_model else policy
    out: list[Episode] = []
    try:
        for i in range(episodes):
            if is_model and not deterministic:
                with _SeededGlobalRNG(seed + i, policy):
                    out.append(_play(game, env, act, seed + i, max_steps))
            else:
                out.append(_play(game, env, act, seed + i, max_steps))
    finally:
        env.close()
    return out


def _play(game: Game, env: gym.Env, act: Policy, seed: int, max_steps: int | None) -> Episode:
    obs, _ = env.reset(seed=seed)
    steps: list[Step] = []
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        if max_steps is not None and len(steps) >= max_steps:
            truncated = True
            break
        obs = np.array(obs, copy=True)
        view = view_of(game, obs, env)
        legal = [int(a) for a in game.legal_actions(view)]
        action = game.clip(act(obs.copy(), view))  # int(action) for discrete games
        next_obs, reward, terminated, truncated, info = env.step(action)
        steps.append(Step(len(steps), obs, view, action, float(reward), game.state_key(obs), legal))
        obs = next_obs
    return Episode(seed, steps, bool(terminated), bool(truncated), _jsonable_info(info))


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _view_is_obs(step: Step) -> bool:
    view = step.view
    return view is step.obs or (
        isinstance(view, np.ndarray)
        and view.dtype == step.obs.dtype
        and view.shape == step.obs.shape
        and np.array_equal(view, step.obs)
    )


def _action_json(action: Any) -> int | list[float]:
    """An int, or a vector action as a list of numbers (float32 values survive the round trip:
    each is written as the shortest decimal of its float64 value)."""
    if isinstance(action, np.ndarray | list | tuple):
        return [float(x) for x in np.asarray(action).reshape(-1)]
    return int(action)


def _action_from_json(value: Any) -> int | np.ndarray:
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float32)
    return int(value)


def _episode_record(episode: Episode) -> dict[str, Any]:
    first = episode.steps[0].obs if episode.steps else np.zeros(0)
    steps = []
    for step in episode.steps:
        record: dict[str, Any] = {
            "t": step.t,
            "obs": np.asarray(step.obs).tolist(),
            "action": _action_json(step.action),
            "reward": float(step.reward),
            "legal": [int(a) for a in step.legal],
        }
        if not _view_is_obs(step):  # absent: the view is the observation
            record["view"] = to_jsonable(step.view, keep_types=True)
        steps.append(record)
    return {
        "format": FORMAT,
        "seed": int(episode.seed),
        "terminated": bool(episode.terminated),
        "truncated": bool(episode.truncated),
        "info": _jsonable_info(episode.info),
        "obs_dtype": str(first.dtype),
        "obs_shape": list(first.shape),
        "steps": steps,
    }


def save_episodes(episodes: list[Episode], path: str | Path) -> None:
    """Write episodes as JSON lines, one episode per line, atomically.

    Observations are stored as lists (with the episode's dtype and shape), views with their
    numpy arrays and tuples tagged (see :func:`to_jsonable`), or not at all when the view is
    the observation. Keys are not stored: :func:`load_episodes` recomputes them.

    :param episodes: the episodes.
    :param path: the file to write (its folder is created).
    """
    lines = [json.dumps(_episode_record(e), separators=(",", ":")) for e in episodes]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def load_episodes(path: str | Path, game: Game) -> list[Episode]:
    """Read episodes written by :func:`save_episodes`.

    :param path: the JSON-lines file.
    :param game: the game they were played in (recomputes each step's ``state_key``).
    :return: the episodes, in file order.
    :raises ValueError: for a line that is not a saved episode.
    """
    episodes = []
    text = Path(path).read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} record")
            dtype, shape = np.dtype(record["obs_dtype"]), record["obs_shape"]
            steps = []
            for s in record["steps"]:
                obs = np.asarray(s["obs"], dtype=dtype).reshape(shape)
                view = from_jsonable(s["view"]) if "view" in s else obs
                steps.append(
                    Step(
                        int(s["t"]),
                        obs,
                        view,
                        _action_from_json(s["action"]),
                        float(s["reward"]),
                        game.state_key(obs),
                        [int(a) for a in s["legal"]],
                    )
                )
            episodes.append(
                Episode(
                    int(record["seed"]),
                    steps,
                    bool(record["terminated"]),
                    bool(record["truncated"]),
                    dict(record["info"]),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}:{number}: not a saved episode ({error})") from None
    return episodes


# --------------------------------------------------------------------------------------------
# A sub-optimal agent
# --------------------------------------------------------------------------------------------


def train_suboptimal(
    game: Game | str,
    algo: str,
    steps: int,
    seed: int = 0,
    env_options: dict[str, Any] | None = None,
    **config: Any,
) -> Any:
    """Train a deliberately short, untutored run: the sub-optimal agent ULTRA starts from.

    A thin wrapper of :func:`tutorl.rl.train.train` with ``out=None`` (nothing written). It
    evaluates only at the start and the end of the run, on 10 episodes, unless ``config`` says
    otherwise.

    :param game: the game or its registered name.
    :param algo: ``dqn``, ``ppo`` or ``a2c``.
    :param steps: environment steps (on-policy algorithms round up to whole rollouts).
    :param seed: the run's seed.
    :param env_options: options passed to ``game.make`` on top of ``game.options``.
    :param config: further :class:`~tutorl.specs.RunConfig` fields (``hyperparams``,
        ``n_envs``, ``eval_episodes``...).
    :return: the trained model.
    """
    from tutorl.rl.train import RunConfig, train

    name = game if isinstance(game, str) else game.name
    settings = {"eval_freq": steps, "eval_episodes": 10, **config}
    run = RunConfig(
        env=name, algo=algo, steps=steps, seed=seed, env_options=env_options or {}, **settings
    )
    _, model = train(run, out=None)
    return model


__all__ = [
    "Episode",
    "Policy",
    "Step",
    "collect",
    "expert_policy",
    "from_jsonable",
    "load_episodes",
    "policy_from_model",
    "random_policy",
    "save_episodes",
    "to_jsonable",
    "train_suboptimal",
]
