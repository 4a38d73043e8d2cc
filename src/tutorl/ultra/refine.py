"""Refinement: continue training an agent with the critical-state table applied.

Variants (ULTRA, arXiv 2505.20671, and its baselines):

- ``none``: continued training without modulation (the baseline every variant must beat).
- ``A`` (ULTRA-A): at a critical state the table's suggested action is executed instead of the
  agent's. It goes through tutorl's advice hook, so the replay/rollout buffer stores the
  executed action and, for PPO/A2C, its log-probability under the current policy.
- ``R`` (ULTRA-R): the implicit reward judges the action the agent took at a critical state
  (−1: a clear mistake … +1: clearly right). When the agent takes that judged action there
  again, the implicit reward times ``reward_scale`` is added to the step's reward; every other
  reward is untouched. (An entry without a judged action applies to any action.) With
  continuous actions (Hopper) a sampled action never equals the judged one exactly: the judged
  action counts as taken again when every component lies within :data:`ACTION_TOLERANCE` of
  the action range (0.25 × 2 = 0.5 for torques in ``[-1, 1]``) of the judged component, a box
  around it, and the action is no farther from the judged action than from the suggested one
  (Euclidean), so that executing the suggestion (``RA``) never collects the judgement of the
  agent's own action when the two are close. The bonus still judges *that* action, not the
  state: a bonus paid at the state whatever the action would shift the state's value and
  leave the choice there unchanged (advantages cancel it), so it could not correct the judged
  action. A greedy policy that has not moved takes the judged action exactly; a freshly
  trained Gaussian policy (standard deviation ~1 per torque) lands in the box about 5% of the
  time.
  Symmetrically, taking the *suggested* action there (when it differs from the judged one)
  earns the opposite, ``−reward_scale × implicit reward``: if the agent's action was a mistake
  (r < 0) the suggestion is rewarded, if it was right (r > 0) the suggestion is penalised.
  A *positive* bonus (the judged action's ``r > 0``, or the suggestion's ``−r`` when
  ``r < 0``) is paid at most once per critical state per episode (counted in
  ``bonuses_withheld``): a state the agent can return to (DoorKey's turn-left cycle) would
  otherwise pay a bonus on every lap, and the agent learns to farm the loop instead of the
  task — measured on DoorKey, where unbounded bonuses left ULTRA-R at return 0 while plain
  continued training reached 0.35. Penalties are paid every time: repeating them cannot be
  farmed.
- ``RA`` (ULTRA-RA): both: the suggestion is executed and, being the suggestion, earns
  ``−reward_scale × r``, so the buffer holds the suggested action with a shaped reward.
- ``random``: the random-critical-states ablation: ``RA`` with a table of as many states drawn
  at random from the same episodes, random legal actions other than the agent's (vectors
  uniform in the action box for continuous games) and rewards drawn from the real table's.

A suggestion forced :data:`MAX_REPEATS` times in a row on an unchanged observation (a no-op
such as walking into a wall in DoorKey) is not forced again in that env until the observation
changes (counted in ``repeats_skipped``): otherwise one no-op suggestion would loop until the
episode's time limit.

No extra network is trained; the agent's own algorithm does the learning.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from tutorl.envs.base import Game

Variant = Literal["none", "A", "R", "RA", "random"]
VARIANTS: tuple[str, ...] = ("none", "A", "R", "RA", "random")
#: Continuous actions: how close, per component and as a fraction of ``high - low``, an action
#: must be to the judged action to count as the judged action (see the module docstring).
ACTION_TOLERANCE = 0.25


def takes_judged_action(game: Game, entry: Any, action: Any) -> bool:
    """Whether ``action`` is the action ``entry``'s implicit reward judges.

    An entry without a judged action judges every action. Discrete games: the same action.
    Continuous games: every component within ``ACTION_TOLERANCE × (high - low)`` of the judged
    one (inclusive), and no farther from the judged action than from the entry's suggested
    action (if any).

    :param game: the game (continuous or not, its action bounds).
    :param entry: a table entry (``judged_action`` is read).
    :param action: the action taken.
    """
    judged = entry.judged_action
    if judged is None:
        return True
    if not game.continuous:
        return int(judged) == int(action)
    low, high = game.action_bounds
    taken = np.asarray(action, dtype=np.float64).reshape(-1)
    gap = taken - np.asarray(judged, dtype=np.float64)
    if not np.all(np.abs(gap) <= ACTION_TOLERANCE * (high - low)):
        return False
    if entry.action is None:
        return True
    to_suggested = taken - np.asarray(entry.action, dtype=np.float64)
    return bool(np.linalg.norm(gap) <= np.linalg.norm(to_suggested))


def takes_suggested_action(game: Game, entry: Any, action: Any) -> bool:
    """Whether ``action`` is ``entry``'s suggested action, when that differs from the judged
    one (then it earns the opposite of the judged action's implicit reward). Continuous games:
    within the tolerance box of the suggestion and strictly nearer to it than to the judged
    action."""
    if entry.action is None or entry.judged_action is None:
        return False
    if not game.continuous:
        return int(action) == int(entry.action) != int(entry.judged_action)
    low, high = game.action_bounds
    taken = np.asarray(action, dtype=np.float64).reshape(-1)
    gap = taken - np.asarray(entry.action, dtype=np.float64)
    if not np.all(np.abs(gap) <= ACTION_TOLERANCE * (high - low)):
        return False
    to_judged = taken - np.asarray(entry.judged_action, dtype=np.float64)
    return bool(np.linalg.norm(gap) < np.linalg.norm(to_judged))


#: Consecutive forced actions on one unchanged observation before the advisor lets the agent act.
MAX_REPEATS = 3


class TableAdvisor:
    """Executes the table's suggested action at critical states; the agent's own elsewhere.

    It has the call signature of :class:`tutorl.tutor.advisor.Advisor`, so the advice hooks of
    :mod:`tutorl.rl.hooks` use it unchanged. A suggestion that is not legal in the state is
    never executed (counted in ``illegal``). In a continuous game the suggested vector is
    clipped to ``game.action_bounds`` and executed in the dtype of the agent's actions (float32
    for SB3), so the rollout buffer stores exactly what the env received.

    :param game: the game (legal actions).
    :param table: a :class:`~tutorl.ultra.table.CriticalTable`.
    """

    def __init__(self, game: Game, table: Any) -> None:
        self.game = game
        self.table = table
        self.last_advised = np.zeros(0, dtype=bool)
        self.steps = 0
        self.advised = 0
        self.illegal = 0
        self.repeats_skipped = 0
        # env -> (observation at its last forced action, how many times in a row)
        self._forced: dict[int, tuple[bytes, int]] = {}

    def __call__(self, obs: np.ndarray, student_actions: np.ndarray, views) -> np.ndarray:
        n_envs = len(student_actions)
        if self.game.continuous:
            executed = np.array(student_actions, copy=True).reshape(n_envs, self.game.n_actions)
        else:
            executed = np.array(student_actions, copy=True).reshape(n_envs)
        advised = np.zeros(n_envs, dtype=bool)
        entries = self.table.lookup_batch(obs)
        critical = []
        for i, entry in enumerate(entries):
            if entry is None or entry.action is None:
                self._forced.pop(i, None)
                continue
            here = np.asarray(obs[i]).tobytes()
            last, times = self._forced.get(i, (b"", 0))
            times = times + 1 if last == here else 1
            self._forced[i] = (here, times)
            if times > MAX_REPEATS:  # the forced action keeps changing nothing
                self.repeats_skipped += 1
                continue
            critical.append(i)
        if critical and self.game.continuous:
            for i in critical:
                executed[i] = self.game.clip(entries[i].action)
                advised[i] = True
        elif critical:
            for i, view in zip(critical, views(critical), strict=True):
                action = int(entries[i].action)
                if action not in self.game.legal_actions(view):
                    self.illegal += 1
                    continue
                executed[i] = action
                advised[i] = True
        self.steps += n_envs
        self.advised += int(advised.sum())
        self.last_advised = advised
        return executed


class ImplicitRewardWrapper(gym.Wrapper):
    """Adds ``reward_scale × implicit reward`` to the reward of a step taken from a critical
    state (looked up by the observation the agent acted on) with the judged action, and its
    opposite when the suggested action is taken there instead (see the module docstring,
    :func:`takes_judged_action` and :func:`takes_suggested_action`); a positive bonus is paid
    at most once per critical state per episode; other rewards are unchanged.

    ``info["implicit_reward"]`` holds the added amount (0.0 off critical states, for other
    actions, and for a withheld bonus). ``hits`` counts the bonuses paid (non-zero),
    ``withheld`` the positive ones withheld as repeats.

    :param env: the env.
    :param table: the critical-state table.
    :param reward_scale: multiplier of the implicit reward.
    :param game: the game, for continuous actions (compared within a tolerance); default the
        table's game, else discrete.
    """

    def __init__(
        self, env: gym.Env, table: Any, reward_scale: float = 1.0, game: Game | None = None
    ) -> None:
        super().__init__(env)
        self.table = table
        self.game = game if game is not None else getattr(table, "game", None)
        self.reward_scale = float(reward_scale)
        self._obs: Any = None
        self.hits = 0
        self.withheld = 0
        # Entries whose positive bonus this episode has already paid (by identity: the table
        # owns its entries for the wrapper's lifetime).
        self._paid: set[int] = set()

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        self._paid.clear()
        return obs, info

    def step(self, action):
        entry = self.table.lookup(self._obs)
        obs, reward, terminated, truncated, info = self.env.step(action)
        bonus = 0.0
        if entry is None:
            judged = False
        elif self.game is not None:
            judged = takes_judged_action(self.game, entry, action)
        else:
            judged = entry.judged_action in (None, int(action))
        if judged:
            bonus = self.reward_scale * float(entry.reward)
        elif (
            entry is not None
            and self.game is not None
            and takes_suggested_action(self.game, entry, action)
        ):
            bonus = -self.reward_scale * float(entry.reward)
        if bonus > 0.0 and id(entry) in self._paid:
            bonus = 0.0
            self.withheld += 1
        elif bonus != 0.0:
            self.hits += 1
            if bonus > 0.0:
                self._paid.add(id(entry))
        self._obs = obs
        return obs, float(reward) + bonus, terminated, truncated, {**info, "implicit_reward": bonus}


def refine(
    model: Any,
    game: Game,
    table: Any,
    variant: Variant,
    steps: int,
    seed: int = 0,
    reward_scale: float = 1.0,
    env_options: dict[str, Any] | None = None,
    eval_episodes: int = 100,
    eval_seed: int = 10_000,
) -> dict[str, Any]:
    """Continue training ``model`` for ``steps`` environment steps under ``variant``; return the
    evaluation return before and after, and the modulation's counters.

    :param model: a model from :func:`tutorl.rl.evaluation.load_model` (a tutored algorithm
        class, so the advice hook is present); it is trained in place.
    :param game: the game.
    :param table: the critical-state table (for ``random``: the random table already built).
    :param variant: ``none``, ``A``, ``R``, ``RA`` or ``random`` (see the module docstring).
    :param steps: environment steps of continued training.
    :param seed: seed of the training envs and the model's randomness.
    :param reward_scale: multiplier of the implicit reward (``R``, ``RA``, ``random``).
    :param env_options: the game's env options (as in training).
    :param eval_episodes: greedy evaluation episodes before and after (exact where the game
        has an exact evaluator).
    :param eval_seed: seed of the evaluation episodes (the same before and after).
    """
    from stable_baselines3.common.env_util import make_vec_env

    from tutorl.rl.evaluation import evaluate_model
    from tutorl.rl.hooks import attach_advisor
    from tutorl.rl.train import configure_threads

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    configure_threads()
    start = time.perf_counter()
    options = {**game.options, **(env_options or {})}
    before = evaluate_model(model, game, eval_episodes, eval_seed, env_options or {})
    uses_rewards = variant in ("R", "RA", "random")
    uses_actions = variant in ("A", "RA", "random")
    wrappers: list[ImplicitRewardWrapper] = []

    def make_env(**_: Any) -> gym.Env:
        env = game.make(**options)
        if uses_rewards:
            env = ImplicitRewardWrapper(env, table, reward_scale, game=game)
            wrappers.append(env)
        return env

    # The same number of envs as in training: on-policy buffers are sized by it.
    env = make_vec_env(make_env, n_envs=model.n_envs, seed=seed)
    model.set_env(env)
    model.set_random_seed(seed)
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None and buffer.size() == 0:
        # A loaded DQN has no replay buffer: refill it before learning, as in training, rather
        # than taking gradient steps on a handful of transitions.
        model.learning_starts = model.num_timesteps + model.learning_starts
    advisor = TableAdvisor(game, table) if uses_actions else None
    attach_advisor(model, game, advisor)
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    attach_advisor(model, game, None)
    env.close()
    after = evaluate_model(model, game, eval_episodes, eval_seed, env_options or {})
    return {
        "variant": variant,
        "steps": steps,
        "seed": seed,
        "return_before": before.mean_return,
        "return_after": after.mean_return,
        "improvement": after.mean_return - before.mean_return,
        "actions_replaced": advisor.advised if advisor else 0,
        "illegal_suggestions": advisor.illegal if advisor else 0,
        "repeats_skipped": advisor.repeats_skipped if advisor else 0,
        "reward_bonuses": sum(w.hits for w in wrappers),
        "bonuses_withheld": sum(w.withheld for w in wrappers),
        "critical_states": len(table) if table is not None else 0,
        "seconds": round(time.perf_counter() - start, 2),
    }


def variants(names: Sequence[str]) -> list[str]:
    """Validate variant names (case-insensitive ``a``/``r``/``ra`` accepted)."""
    canonical = {v.lower(): v for v in VARIANTS}
    out = []
    for name in names:
        if name.lower() not in canonical:
            raise ValueError(f"unknown variant {name!r}; choose from: {', '.join(VARIANTS)}")
        out.append(canonical[name.lower()])
    return out
