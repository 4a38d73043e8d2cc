"""Connect Four against a fixed opponent, as a single-agent Gymnasium environment.

The game is played on bitboards (:mod:`tutorl.envs.connect_four_search`, compiled): the agent's
move, the opponent's reply, wins, draws and the observation, ~13x faster than stepping
PettingZoo's ``connect_four_v3`` (AEC API). PettingZoo stays the reference: with
``backend="pettingzoo"`` the same env steps PettingZoo's game instead, and a test plays seeded
random and expert games through both and checks every observation, mask, reward and
termination. Our agent plays one seat and a fixed opponent (``random``, ``greedy`` or a
depth-limited ``negamax:D``) the other; this module adds what tutorl needs to tutor the agent: a
text description of a board, its legal columns and a strong expert.

Board conventions (the same as PettingZoo's): the observation is the (6, 7, 2) plane stack
flattened to 84 floats, plane 0 holding the agent's pieces and plane 1 the opponent's, with row
0 the *top* row of the grid and column 0 the leftmost. :func:`board_from_obs` turns it back into
a 6x7 grid of 0 (empty), 1 (agent) and 2 (opponent).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tutorl.envs import connect_four_search as search
from tutorl.envs.base import Game, View, require
from tutorl.envs.connect_four_search import COLS, EXPERT_DEPTH, EXPERT_NODE_BUDGET, ROWS

__all__ = ["COLS", "EXPERT_DEPTH", "EXPERT_NODE_BUDGET", "GAME", "ROWS", "ConnectFourEnv"]

ACTION_NAMES = [f"column {c}" for c in range(COLS)]
BACKENDS = ("bitboard", "pettingzoo")

RULES = (
    "Connect Four is played on an upright grid of 6 rows and 7 columns, numbered 0 to 6 from "
    "left to right. Two players take turns dropping one of their pieces into a column that is "
    "not yet full; the piece falls to the lowest empty cell of that column. The first player to "
    "line up four of their own pieces in a row, horizontally, vertically or diagonally, wins "
    "(+1); if the grid fills up without such a line the game is a draw (0), and a loss is -1. "
    "You play X against a fixed opponent O, and choosing a full column is illegal and loses the "
    "game at once. Good play takes a winning move whenever there is one, otherwise blocks a "
    "column where the opponent would win next, prefers the central columns, and avoids playing "
    "directly below a cell where the opponent would complete four."
)


# --------------------------------------------------------------------------------------------
# Bitboards (Python-side helpers around the compiled search)
# --------------------------------------------------------------------------------------------


def _bitboards(view: View) -> tuple[int, int]:
    """``(agent_bits, occupied_bits)`` of an observation (flat 84 or (6, 7, 2))."""
    obs = np.asarray(view, dtype=np.float32).reshape(-1)
    if obs.size != ROWS * COLS * 2:
        raise ValueError(f"a Connect Four observation has 84 values, got {obs.size}")
    mine, mask = search.bitboards_of_planes(obs)
    return int(mine), int(mask)


def _columns(cells: int) -> list[int]:
    """Columns (centre-first) that contain at least one of ``cells``."""
    return [int(c) for c in search.CENTRE_ORDER if cells & int(search.COL_MASK[c])]


def _legal_columns(mask: int) -> list[int]:
    return [c for c in range(COLS) if not mask & int(search.TOP_CELL[c])]


def _winning_cells(pos: int, mask: int) -> int:
    return int(search.winning_cells(pos, mask))


def _playable(mask: int) -> int:
    return int(search.playable(mask))


def _expert_depth(mask: int) -> int:
    return int(search.expert_depth(mask))


@lru_cache(maxsize=1 << 16)  # a dictionary look-up is still cheaper than the compiled search
def _expert_move(pos: int, mask: int) -> int:
    """The expert's column for the player to move (see :func:`expert`)."""
    return int(search.expert_move(pos, mask))


@lru_cache(maxsize=1 << 16)
def _best_columns(pos: int, mask: int, depth: int) -> tuple[int, ...]:
    """All columns with the best depth-``depth`` negamax score (the search opponent ties)."""
    return tuple(int(c) for c in search.best_columns(pos, mask, depth))


@lru_cache(maxsize=1 << 14)
def _column_scores(pos: int, mask: int) -> tuple[int | None, ...]:
    """Exact negamax score of playing each column (``None`` if full) for the player to move;
    see :func:`tutorl.envs.connect_four_search.column_scores`."""
    return tuple(None if s == search.NO_SCORE else int(s) for s in search.column_scores(pos, mask))


# Scores at least this large are forced results (a win within the 42 plies a game can last),
# smaller ones are heuristic evaluations (at most a few hundred).
_CONCLUSIVE = search.WIN - ROWS * COLS - 1
# Heuristic scores are squashed into (-1, 1) as h / (|h| + _VALUE_SCALE): a lead worth two
# threats on the owner's parity rows (2 * 24 = 48) maps to 1/2. Over random positions half the
# heuristic scores are within +-9 (values within +-0.16) and 90% within +-27 (+-0.36), so only
# forced results come near +-1.
_VALUE_SCALE = 48


def _score_value(score: int) -> float:
    """A negamax score on the game's return scale: +1 forced win, -1 forced loss, 0 a draw (full
    board), heuristic scores squashed strictly into (-1, 1), keeping their order."""
    if score >= _CONCLUSIVE:
        return 1.0
    if score <= -_CONCLUSIVE:
        return -1.0
    return score / (abs(score) + _VALUE_SCALE)


# --------------------------------------------------------------------------------------------
# Functions of a view (for this game the view is the observation vector)
# --------------------------------------------------------------------------------------------


def board_from_obs(obs: View) -> np.ndarray:
    """The 6x7 grid of an observation: 0 empty, 1 the agent's piece, 2 the opponent's.

    :param obs: the 84-float observation (or the (6, 7, 2) planes).
    :return: int array of shape (6, 7); row 0 is the top row, as in PettingZoo.
    """
    planes = np.asarray(obs).reshape(ROWS, COLS, 2) > 0.5
    return planes[:, :, 0].astype(np.int64) + 2 * planes[:, :, 1].astype(np.int64)


def legal_actions(view: View) -> list[int]:
    """Columns that are not full, left to right.

    :param view: the observation.
    :return: the legal columns.
    """
    return _legal_columns(_bitboards(view)[1])


def winning_columns(view: View) -> list[int]:
    """Columns where the agent completes four with its next piece (left to right).

    :param view: the observation.
    :return: the immediately winning columns.
    """
    pos, mask = _bitboards(view)
    return sorted(_columns(_winning_cells(pos, mask) & _playable(mask)))


def threatened_columns(view: View) -> list[int]:
    """Columns where the opponent would complete four next, i.e. the ones the agent must block.

    :param view: the observation.
    :return: the opponent's immediately winning columns (left to right).
    """
    pos, mask = _bitboards(view)
    return sorted(_columns(_winning_cells(pos ^ mask, mask) & _playable(mask)))


def rule(view: View) -> int:
    """The rule baseline "win > block > centre": a column that wins at once, else one that
    blocks the opponent's immediate win, else the legal column nearest the centre (the left
    one on a tie). Everything it uses is in :func:`describe`'s text; no search.
    """
    for columns in (winning_columns(view), threatened_columns(view)):
        if columns:
            return columns[0]
    centre = (COLS - 1) / 2
    return min(legal_actions(view), key=lambda c: (abs(c - centre), c))


def check_state(view: View) -> None:
    """Refuse a board that cannot arise in play with the agent to move.

    :param view: the observation.
    :raises ValueError: naming the problem: cells that are not exactly 0 or 1 or hold two
        pieces, a piece above an empty cell, piece counts the turn order cannot give (the agent
        moves next, so it has as many pieces as the opponent or one fewer), four in a line
        already (the game is over) or a full board.
    """
    obs = np.asarray(view, dtype=np.float64).reshape(-1)
    if obs.size != ROWS * COLS * 2:
        raise ValueError(f"a Connect Four board has 84 values, got {obs.size}")
    if not np.isin(obs, (0.0, 1.0)).all():
        raise ValueError("every board value must be 0 or 1")
    board = board_from_obs(obs)
    if (obs[0::2] + obs[1::2] > 1).any():
        raise ValueError("a cell holds a piece of both players")
    for col in range(COLS):
        filled = board[:, col] > 0  # row 0 is the top
        if filled.any() and not filled[int(np.argmax(filled)) :].all():
            raise ValueError(f"column {col} has a piece above an empty cell")
    mine, theirs = int((board == 1).sum()), int((board == 2).sum())
    if theirs - mine not in (0, 1):
        raise ValueError(
            f"you have {mine} pieces and the opponent {theirs}: with you to move the opponent "
            "has as many pieces as you or one more"
        )
    pos, mask = _bitboards(obs)
    if search.has_four(pos) or search.has_four(pos ^ mask):
        raise ValueError("the game is already over: four pieces of one player are in a line")
    if mask == search.BOARD:
        raise ValueError("the board is full: the game is over")


def _fmt_columns(cols: list[int]) -> str:
    return ", ".join(str(c) for c in cols) if cols else "none"


def describe(view: View) -> str:
    """The board as a human tutor would be shown it: a text grid plus the tactical facts.

    :param view: the observation.
    :return: several lines of text: the grid (X = the agent, O = the opponent), the legal
        columns, the columns that win at once and the columns that block the opponent's win.
    """
    board = board_from_obs(view)
    symbols = {0: ".", 1: "X", 2: "O"}
    lines = [
        "Connect Four board, top row first (a piece falls to the lowest empty cell of its column):",
        "  " + " ".join(str(c) for c in range(COLS)),
    ]
    lines += ["| " + " ".join(symbols[int(v)] for v in row) + " |" for row in board]
    mine, theirs = int((board == 1).sum()), int((board == 2).sum())
    lines.append(
        f"X = your pieces ({mine}), O = the opponent's pieces ({theirs}), . = empty. "
        "It is your turn."
    )
    legal = legal_actions(view)
    lines.append(f"Legal columns: {_fmt_columns(legal)}.")
    lines.append(f"Columns where you win immediately: {_fmt_columns(winning_columns(view))}.")
    threats = threatened_columns(view)
    if len(threats) > 1:
        lines.append(
            f"The opponent threatens to win next in columns {_fmt_columns(threats)}; "
            "you can block only one of them."
        )
    else:
        lines.append(f"Columns that block the opponent's immediate win: {_fmt_columns(threats)}.")
    return "\n".join(lines)


def expert(view: View) -> int:
    """A strong, deterministic Connect Four policy for the agent (the player to move).

    It always takes an immediate win; otherwise it always blocks a column where the opponent
    would win next; otherwise it runs an alpha-beta negamax at least ``EXPERT_DEPTH`` plies deep
    (deeper as columns fill, within ``EXPERT_NODE_BUDGET``) with a heuristic (empty cells that
    complete a line of three, lines with two pieces and two empty cells, centre pieces). Ties go
    to the more central column. Results are cached per position.

    :param view: the observation.
    :return: the column to play.
    """
    return _expert_move(*_bitboards(view))


def action_values(view: View) -> np.ndarray:
    """Value of each column for the agent (the player to move), on the game's return scale.

    Each legal column gets the negamax score of playing it, searched as deep as the expert
    searches (see :func:`_column_scores`), mapped to +1 when the search proves a win (an
    immediate one included), -1 when it proves a loss, 0 for a draw, and otherwise the
    heuristic score squashed into (-1, 1) by ``h / (|h| + 48)`` (48 = two threats on the
    owner's parity rows; 0 also means "unknown"). Forced wins of different lengths all map to
    +1, so the columns of maximal value include the expert's move and every other best column
    (:func:`_best_columns`); when the maximum is not a forced result, they are exactly the best
    columns.

    :param view: the observation.
    :return: float array of shape (7,), NaN for full columns.
    """
    scores = _column_scores(*_bitboards(view))
    return np.array([np.nan if s is None else _score_value(s) for s in scores])


def state_key(obs: np.ndarray) -> bytes:
    """Exact hashable key of an observation: the 42 cells of the grid as bytes.

    :param obs: the observation.
    :return: 42 bytes, one per cell (0 empty, 1 agent, 2 opponent).
    """
    return board_from_obs(obs).astype(np.int8).tobytes()


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


def parse_opponent(opponent: str) -> tuple[str, int]:
    """Parse an opponent spec into ``(kind, depth)``.

    :param opponent: ``"random"``, ``"greedy"`` or ``"negamax:D"`` with an integer ``D >= 1``.
    :return: the kind and the search depth (0 unless the kind is ``negamax``).
    :raises ValueError: for anything else, naming the accepted forms.
    """
    error = ValueError(f"unknown opponent {opponent!r}; use random, greedy or negamax:D")
    if not isinstance(opponent, str):
        raise error
    spec = opponent.strip().lower()
    if spec in ("random", "greedy"):
        return spec, 0
    kind, sep, depth = spec.partition(":")
    if kind != "negamax" or not sep or not depth.isdigit() or int(depth) < 1:
        raise error
    return kind, int(depth)


class _PettingZooGame:
    """The reference backend: PettingZoo's ``connect_four_v3`` decides moves, wins and draws."""

    def __init__(self) -> None:
        # connect_four_v3.env() itself: importing it through `pettingzoo.classic` is the same
        # function but emits a DeprecationWarning on import in PettingZoo >= 1.26.
        game = require(
            "pettingzoo.classic.connect_four.connect_four", "pettingzoo", "backend=pettingzoo"
        )
        self._game = game.env()
        self._seat = "player_0"

    def reset(self, agent_first: bool) -> None:
        self._seat = "player_0" if agent_first else "player_1"
        self._game.reset()

    def play(self, col: int) -> None:
        self._game.step(col)

    def observe(self, out: np.ndarray) -> None:
        out[:] = self._game.observe(self._seat)["observation"].reshape(-1)

    def result(self) -> float | None:
        """The agent's reward if the game is over, else None."""
        if self._game.terminations[self._seat] or self._game.truncations[self._seat]:
            return float(self._game.rewards[self._seat])
        return None

    def close(self) -> None:
        self._game.close()


class _BitboardGame:
    """The fast backend: the same game on two integers (the agent's pieces, every piece)."""

    def __init__(self) -> None:
        self._agent = 0
        self._mask = 0
        self._agent_to_move = True
        self._result: float | None = None

    def reset(self, agent_first: bool) -> None:
        self._agent, self._mask = 0, 0
        self._agent_to_move = agent_first
        self._result = None

    def play(self, col: int) -> None:
        cell = (self._mask + int(search.BOTTOM_CELL[col])) & int(search.COL_MASK[col])
        self._mask |= cell
        if self._agent_to_move:
            self._agent |= cell
        mover = self._agent if self._agent_to_move else self._agent ^ self._mask
        # as PettingZoo: a line of four wins even if it fills the board; else a full board draws
        if search.has_four(mover):
            self._result = 1.0 if self._agent_to_move else -1.0
        elif self._mask == search.BOARD:
            self._result = 0.0
        self._agent_to_move = not self._agent_to_move

    def observe(self, out: np.ndarray) -> None:
        search.planes_of_bitboards(self._agent, self._mask, out)

    def result(self) -> float | None:
        return self._result

    def close(self) -> None:
        pass


class ConnectFourEnv(gym.Env):
    """Connect Four against a fixed opponent.

    Observation: the agent's view of the grid, 84 floats = the (6, 7, 2) planes flattened
    (plane 0 the agent's pieces, plane 1 the opponent's, row 0 the top). Action: the column to
    drop a piece in. Reward: +1 win, -1 loss, 0 draw, given on the final step. Choosing a full
    column ends the episode as a loss (-1) with ``info["illegal_move"] = True``; it is never
    remapped to a legal column, so algorithms without action masking are honestly penalised.
    Every final step carries ``info["outcome"]`` in ``{"win", "draw", "loss"}`` and
    ``info["is_success"]``.

    :param opponent: ``"random"``; ``"greedy"`` (the default: wins if it can, else blocks the
        agent's immediate win, else plays a uniformly random legal column); or ``"negamax:D"``
        (alpha-beta search ``D`` plies deep with random tie-breaking, which is nearly
        deterministic: few positions have exactly tied scores).
    :param agent_first: who moves first each episode: ``"random"`` (a fair coin from the env's
        RNG), ``"always"`` or ``"never"``.
    :param backend: ``"bitboard"`` (the default, fast) or ``"pettingzoo"`` (PettingZoo's
        ``connect_four_v3``, the reference). Both give the same episodes for the same seed.
    :param render_mode: ``None`` or ``"ansi"`` (``render()`` returns :func:`describe`'s text).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 2}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        opponent: str = "greedy",
        agent_first: str = "random",
        backend: str = "bitboard",
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        self._opp_kind, self._opp_depth = parse_opponent(opponent)
        self.opponent = opponent
        if agent_first not in ("random", "always", "never"):
            raise ValueError(f"unknown agent_first {agent_first!r}; use random, always or never")
        self.agent_first = agent_first
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS)}")
        self.backend = backend
        if render_mode not in (None, "ansi"):
            raise ValueError(f"unsupported render_mode {render_mode!r}; use None or 'ansi'")
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, shape=(ROWS * COLS * 2,), dtype=np.float32)
        self.action_space = spaces.Discrete(COLS)
        self._game = _BitboardGame() if backend == "bitboard" else _PettingZooGame()
        self._obs = np.zeros(ROWS * COLS * 2, dtype=np.float32)
        self._done = True

    # -- helpers --------------------------------------------------------------------------

    def _observe(self) -> None:
        self._game.observe(self._obs)

    def _opponent_action(self) -> int:
        # The opponent is the player to move: its pieces are plane 1 of the agent's observation.
        mine, mask = _bitboards(self._obs)
        pos = mine ^ mask
        legal = _legal_columns(mask)
        if self._opp_kind == "random":
            return int(legal[self.np_random.integers(len(legal))])
        if self._opp_kind == "greedy":
            possible = _playable(mask)
            for cells in (
                _winning_cells(pos, mask) & possible,  # its own wins
                _winning_cells(mine, mask) & possible,  # the agent's wins, to block
            ):
                if cells:
                    choices = sorted(_columns(cells))
                    return int(choices[self.np_random.integers(len(choices))])
            return int(legal[self.np_random.integers(len(legal))])
        choices = _best_columns(pos, mask, self._opp_depth)
        return int(choices[self.np_random.integers(len(choices))])

    def _final_info(self, info: dict[str, Any], reward: float, illegal: bool = False) -> dict:
        outcome = "win" if reward > 0 else "loss" if reward < 0 else "draw"
        info.update(outcome=outcome, is_success=outcome == "win", illegal_move=illegal)
        self._done = True
        return info

    # -- gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.agent_first == "random":
            first = bool(self.np_random.random() < 0.5)
        else:
            first = self.agent_first == "always"
        self._game.reset(first)
        self._done = False
        info: dict[str, Any] = {"agent_first": first}
        self._observe()
        if not first:
            action = self._opponent_action()
            self._game.play(action)  # an opening move can neither win nor fill the board
            info["opponent_action"] = action
            self._observe()
        return self._obs.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished game; call reset() first")
        col = int(action)
        info: dict[str, Any] = {}
        if not 0 <= col < COLS or self._obs[2 * col] + self._obs[2 * col + 1] > 0:
            # Handled here rather than by PettingZoo's TerminateIllegalWrapper, which would end
            # the game the same way but log a warning on every illegal move of a DQN run.
            info = self._final_info(info, -1.0, illegal=True)
            return self._obs.copy(), -1.0, True, False, info
        self._game.play(col)
        self._observe()
        if self._game.result() is None:
            action_opp = self._opponent_action()
            self._game.play(action_opp)
            info["opponent_action"] = action_opp
            self._observe()
        reward = self._game.result()
        if reward is not None:
            info = self._final_info(info, reward)
            return self._obs.copy(), reward, True, False, info
        return self._obs.copy(), 0.0, False, False, info

    def action_masks(self) -> np.ndarray:
        """Legal columns as booleans (what sb3-contrib's MaskablePPO asks the env for).

        :return: bool array of shape (7,). On a full board (a finished draw) every entry is True
            rather than all False, which would make a masked distribution undefined.
        """
        mask = (self._obs[0 : 2 * COLS : 2] + self._obs[1 : 2 * COLS : 2]) == 0
        return mask if mask.any() else np.ones(COLS, dtype=bool)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return describe(self._obs)
        return None

    def close(self) -> None:
        self._game.close()


# Default opponent and threshold, from measurements (200 seeded games per cell, agent_first
# random; mean return = win rate - loss rate):
#   opponent    expert W/D/L   expert return   random agent return
#   random      200/0/0        +1.00           +0.02
#   greedy      200/0/0        +1.00           -0.96
#   negamax:1   200/0/0        +1.00           -0.98
#   negamax:2   150/0/50       +0.50           -1.00
# Untutored MaskablePPO (MlpPolicy, defaults, 4 envs, greedy eval on 50 seeded games) against
# greedy: -0.96 (0 steps), -0.64 (20k), -0.44 (40k), -0.08 (60k), +0.36 (80k), +0.18 (100k):
# it learns steadily without saturating. Against negamax:1 it reached +1.00 by 80k by
# memorising a line: the search opponents barely vary (about 20-30 distinct games in 200
# seeds, against 190 for greedy), so they reward memorisation rather than play. A random
# opponent is beaten ~95% within 32k steps. Hence greedy, with random seats so the agent learns
# both; the threshold 0.0 (wins as often as it loses) is far from both the expert (+1.00) and
# random play (-0.96) and was crossed by untutored PPO between 60k and 80k of 100k steps.
# With tutorl's own PPO settings (n_steps 256, 4 epochs; rl/algorithms.py) untutored PPO
# crossed it at 163k steps on average (3 seeds), DQN at 62k: hence 200k steps by default.
GAME = Game(
    name="connect_four",
    make=lambda **kw: ConnectFourEnv(**kw),
    action_names=ACTION_NAMES,
    describe=describe,
    legal_actions=legal_actions,
    expert=expert,
    rule=rule,
    state_key=state_key,
    success_threshold=0.0,
    view_from_env=False,
    default_steps=200_000,
    has_outcomes=True,
    rules=RULES,
    options={"opponent": "greedy", "agent_first": "random", "backend": "bitboard"},
    action_values=action_values,
    check_state=check_state,
    # ULTRA's expert identifier's threshold (the value lost that makes a step critical).
    # Connect Four values: +1/-1 forced results, heuristic scores squashed into (-1, 1). Losing
    # more than half a game means throwing away a forced win, walking into a forced loss, or a
    # heuristic swing of 32 (+16 to -16) to 48 (0 to -48) points, i.e. one to two threats on
    # the owner's parity rows (24 each). Of 349 random deviations from the expert against the
    # greedy opponent, 81 lost more than 0.5, 69 of them by a forced result.
    ultra_threshold=0.5,
    # Convergence tolerance of the sweep's curve metrics: a few per cent of the range between a
    # random and an expert policy's return, and above the noise of a smoothed evaluation.
    convergence_tolerance=0.1,
)
