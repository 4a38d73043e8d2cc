"""Connect Four on bitboards: the rules, the expert's search and the opponents' tactics, compiled.

Everything here is a function of two integers, ``(pos, mask)``: the pieces of the player to move
and every occupied cell, in the classic 7x(6+1) layout: bit ``7 * column + height`` with height 0
at the bottom, plus one always-empty sentinel bit on top of each column so that shifted lines of
four never wrap from one column into the next. The board uses bits 0..47, so every value fits a
signed 64-bit integer; left shifts may run past bit 63, but only into cells that the final
``& empty`` masks away, and right shifts are only ever applied to non-negative boards.

The functions are compiled with numba (``cache=True``: compiled once per machine, then loaded
from ``__pycache__``) because the expert's alpha-beta search in pure Python cost ~1.5 ms per ask
and was a quarter of a tutored Connect Four run. Their answers are frozen against the pure-Python
search they replace (``tests/data/connect_four_golden.json.gz``, made by
``tests/data/make_connect_four_golden.py`` at commit f70bb99).
"""

from __future__ import annotations

import numpy as np
from numba import njit

ROWS = 6
COLS = 7
EXPERT_DEPTH = 4  # plies the expert searches at least, after its win / block rules
# As columns fill, the expert searches deeper: the largest depth d with legal_columns**d within
# this budget (7 or 6 columns: 4 plies, 5: 5, 4: 6, 3: 7, 2: 12). Endgames are decided by
# zugzwang far beyond 4 plies, and late positions are cheap to search, so this is almost free.
EXPERT_NODE_BUDGET = 5_000

H1 = ROWS + 1  # bits per column, including the sentinel
BOTTOM = sum(1 << (c * H1) for c in range(COLS))  # lowest cell of every column
BOARD = BOTTOM * ((1 << ROWS) - 1)  # every playable cell (sentinels excluded)
COL_MASK = np.array([((1 << ROWS) - 1) << (c * H1) for c in range(COLS)], dtype=np.int64)
TOP_CELL = np.array([1 << (c * H1 + ROWS - 1) for c in range(COLS)], dtype=np.int64)
BOTTOM_CELL = np.array([1 << (c * H1) for c in range(COLS)], dtype=np.int64)
CENTRE = ((1 << ROWS) - 1) << (3 * H1)
# Centre-first: the order in which moves are searched (better alpha-beta cut-offs) and the
# expert's deterministic tie-break (central columns take part in more lines of four).
CENTRE_ORDER = np.array([3, 2, 4, 1, 5, 0, 6], dtype=np.int64)
# Bit of each cell of the (row 0 = top) grid, row-major: the order of the observation's cells.
CELL_BIT = np.array(
    [c * H1 + (ROWS - 1 - r) for r in range(ROWS) for c in range(COLS)], dtype=np.int64
)

WIN = 10_000  # score of a win; far above any heuristic value so search never trades one away
INF = 1_000_000
NO_SCORE = INF + 1  # column_scores' mark for a full column
_THREAT_WEIGHT = 8  # per empty cell that would complete one of my lines of four
_TWO_WEIGHT = 2  # per line of four holding two of my pieces and two empty cells
_CENTRE_WEIGHT = 3  # per piece in the centre column
_PARITY_WEIGHT = 16  # extra per threat on a row of the owner's parity (see heuristic)
# Heights 0, 2, 4 = rows 1, 3, 5 counted from the bottom ("odd" rows).
ODD_ROWS = sum(0b10101 << (c * H1) for c in range(COLS))
EVEN_ROWS = BOARD ^ ODD_ROWS

_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F


@njit(cache=True)
def popcount(x: int) -> int:
    """Set bits of a non-negative board (SWAR; numba has no ``int.bit_count``)."""
    x = x - ((x >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    x += x >> 8
    x += x >> 16
    x += x >> 32
    return x & 0x7F


@njit(cache=True)
def winning_cells(pos: int, mask: int) -> int:
    """Empty cells (playable now or not) where ``pos``'s player would complete four.

    The classic shift trick: a cell wins if three same-player cells lie next to it along a line,
    on one side or split around it. Sentinel bits are never set, so lines never wrap.
    """
    # vertical: only the three cells below can complete it
    r = (pos << 1) & (pos << 2) & (pos << 3)
    for s in (H1, H1 - 1, H1 + 1):  # horizontal and the two diagonals
        p = (pos << s) & (pos << 2 * s)
        r |= p & (pos << 3 * s)
        r |= p & (pos >> s)
        p = (pos >> s) & (pos >> 2 * s)
        r |= p & (pos << s)
        r |= p & (pos >> 3 * s)
    return r & (BOARD ^ mask)


@njit(cache=True)
def has_four(pos: int) -> bool:
    """Whether ``pos`` holds four in a line."""
    for s in (1, H1, H1 - 1, H1 + 1):
        m = pos & (pos >> s)
        if m & (m >> 2 * s):
            return True
    return False


@njit(cache=True)
def playable(mask: int) -> int:
    """The cell each non-full column would receive its next piece in."""
    return (mask + BOTTOM) & BOARD


@njit(cache=True)
def first_column(cells: int) -> int:
    """The most central column holding one of ``cells`` (-1 if none)."""
    for col in CENTRE_ORDER:
        if cells & COL_MASK[col]:
            return col
    return -1


@njit(cache=True)
def _open_twos(pos: int, empty: int) -> int:
    """Lines of four holding exactly two of ``pos``'s pieces and two empty cells."""
    total = 0
    for s in (1, H1, H1 - 1, H1 + 1):
        p0, p1, p2, p3 = pos, pos >> s, pos >> 2 * s, pos >> 3 * s
        e0, e1, e2, e3 = empty, empty >> s, empty >> 2 * s, empty >> 3 * s
        # Each line (identified by its first cell) matches at most one of the six patterns, so
        # OR-ing them and counting bits counts lines.
        total += popcount(
            (p0 & p1 & e2 & e3)
            | (p0 & p2 & e1 & e3)
            | (p0 & p3 & e1 & e2)
            | (p1 & p2 & e0 & e3)
            | (p1 & p3 & e0 & e2)
            | (p2 & p3 & e0 & e1)
        )
    return total


@njit(cache=True)
def heuristic(pos: int, mask: int) -> int:
    """Static score of a position for the player to move (``pos``).

    Counts threats (empty cells that would complete four), lines with two pieces and two empty
    cells, and centre pieces, each mine minus the opponent's. Threats on rows of the owner's
    parity count extra: when the board fills up, the first player can usually claim cells on
    odd rows (from the bottom) and the second player cells on even rows, so those threats are
    the ones that decide endgames.
    """
    opp = pos ^ mask
    empty = BOARD ^ mask
    my_threats, opp_threats = winning_cells(pos, mask), winning_cells(opp, mask)
    # equal piece counts <=> the player to move is the one who moved first
    if popcount(mask) % 2 == 0:
        my_rows, opp_rows = ODD_ROWS, EVEN_ROWS
    else:
        my_rows, opp_rows = EVEN_ROWS, ODD_ROWS
    return (
        _THREAT_WEIGHT * (popcount(my_threats) - popcount(opp_threats))
        + _PARITY_WEIGHT * (popcount(my_threats & my_rows) - popcount(opp_threats & opp_rows))
        + _TWO_WEIGHT * (_open_twos(pos, empty) - _open_twos(opp, empty))
        + _CENTRE_WEIGHT * (popcount(pos & CENTRE) - popcount(opp & CENTRE))
    )


@njit(cache=True)
def expert_depth(mask: int) -> int:
    """Search depth of the expert: at least EXPERT_DEPTH, deeper while the budget allows."""
    n_cols = 0
    for col in range(COLS):
        if not mask & TOP_CELL[col]:
            n_cols += 1
    depth = EXPERT_DEPTH
    while n_cols ** (depth + 1) <= EXPERT_NODE_BUDGET and depth < ROWS * COLS:
        depth += 1
    return depth


@njit("int64(int64, int64, int64, int64, int64, int64)", cache=True)
def negamax(pos: int, mask: int, depth: int, alpha: int, beta: int, ply: int) -> int:
    """Fail-soft alpha-beta score of the position for the player to move, ``depth`` plies deep.

    Wins score ``WIN - plies until the win`` so that faster wins (and slower losses) are
    preferred. A depth-``d`` search sees every win that happens within ``d`` plies and no other.
    """
    possible = (mask + BOTTOM) & BOARD
    if possible == 0:
        return 0  # full board: draw
    if depth == 0:
        return heuristic(pos, mask)
    if winning_cells(pos, mask) & possible:
        return WIN - ply - 1
    allowed = possible
    if depth >= 2:
        # The opponent's playable wins must be blocked; with two of them the game is lost. Only
        # applied when the search would see that reply anyway, so depths keep their meaning.
        threats = winning_cells(pos ^ mask, mask) & possible
        if threats:
            if threats & (threats - 1):
                return -(WIN - ply - 2)
            allowed = threats
    best = -INF
    for col in CENTRE_ORDER:
        if not allowed & COL_MASK[col]:
            continue
        score = -negamax(
            pos ^ mask, mask | (mask + BOTTOM_CELL[col]), depth - 1, -beta, -alpha, ply + 1
        )
        if score > best:
            best = score
            if score > alpha:
                alpha = score
                if alpha >= beta:
                    break
    return best


@njit(cache=True)
def expert_move(pos: int, mask: int) -> int:
    """The expert's column for the player to move.

    It always takes an immediate win; otherwise it always blocks a column where the opponent
    would win next; otherwise it runs the alpha-beta negamax :func:`expert_depth` plies deep.
    Ties go to the more central column. On a full board it returns 3 (nothing is legal; the env
    ends such games anyway).
    """
    possible = (mask + BOTTOM) & BOARD
    if possible == 0:
        return 3
    wins = winning_cells(pos, mask) & possible
    if wins:
        return first_column(wins)
    threats = winning_cells(pos ^ mask, mask) & possible
    # A block is compulsory; with two threats either block loses, the search picks one anyway.
    allowed = threats if threats else possible
    if popcount(allowed) == 1:
        return first_column(allowed)
    depth = expert_depth(mask)
    best_col, best, alpha = -1, -INF, -INF
    for col in CENTRE_ORDER:
        if not allowed & COL_MASK[col]:
            continue
        if best_col < 0:
            best_col = col
        score = -negamax(pos ^ mask, mask | (mask + BOTTOM_CELL[col]), depth - 1, -INF, -alpha, 1)
        # strict: among equal scores the earlier (more central) column stays
        if score > best:
            best_col, best = col, score
            alpha = max(alpha, score)
    return best_col


@njit(cache=True)
def best_columns(pos: int, mask: int, depth: int) -> np.ndarray:
    """All columns with the best depth-``depth`` negamax score, ascending (the search opponent
    breaks these ties at random); the winning columns if there are any."""
    possible = (mask + BOTTOM) & BOARD
    wins = winning_cells(pos, mask) & possible
    out = np.empty(COLS, dtype=np.int64)
    n = 0
    if wins:
        for col in range(COLS):
            if wins & COL_MASK[col]:
                out[n] = col
                n += 1
        return out[:n]
    best = -INF
    for col in CENTRE_ORDER:
        if mask & TOP_CELL[col]:
            continue
        # Window (best - 1, inf): a move worse than the best so far fails low (score < best), a
        # move at least as good gets its exact score, so ties are found without full windows.
        alpha = best - 1 if n else -INF
        score = -negamax(pos ^ mask, mask | (mask + BOTTOM_CELL[col]), depth - 1, -INF, -alpha, 1)
        if score > best:
            best = score
            out[0] = col
            n = 1
        elif score == best:
            out[n] = col
            n += 1
    return np.sort(out[:n])


@njit(cache=True)
def column_scores(pos: int, mask: int) -> np.ndarray:
    """Exact negamax score of playing each column (``NO_SCORE`` if full) for the player to move.

    The search is the expert's: the same depth (:func:`expert_depth`), the same negamax below
    the move, a full window (so every column's score is exact, not a bound) and an immediate win
    scored as in the search (``WIN - 1``). The columns with the best score are
    :func:`best_columns` at that depth, which include the expert's move.
    """
    depth = expert_depth(mask)
    wins = winning_cells(pos, mask) & ((mask + BOTTOM) & BOARD)
    scores = np.empty(COLS, dtype=np.int64)
    for col in range(COLS):
        if mask & TOP_CELL[col]:
            scores[col] = NO_SCORE
        elif wins & COL_MASK[col]:
            scores[col] = WIN - 1
        else:
            child_mask = mask | (mask + BOTTOM_CELL[col])
            scores[col] = -negamax(pos ^ mask, child_mask, depth - 1, -INF, INF, 1)
    return scores


@njit(cache=True)
def bitboards_of_planes(obs: np.ndarray) -> tuple[int, int]:
    """``(agent_bits, occupied_bits)`` of a flat 84-value observation (plane 0 = the agent)."""
    mine = 0
    theirs = 0
    for i in range(ROWS * COLS):
        if obs[2 * i] > 0.5:
            mine |= 1 << CELL_BIT[i]
        if obs[2 * i + 1] > 0.5:
            theirs |= 1 << CELL_BIT[i]
    return mine, mine | theirs


@njit(cache=True)
def planes_of_bitboards(mine: int, mask: int, out: np.ndarray) -> None:
    """Write the flat 84-float observation of ``(mine, mask)`` into ``out`` (plane 0 = mine)."""
    theirs = mine ^ mask
    for i in range(ROWS * COLS):
        out[2 * i] = (mine >> CELL_BIT[i]) & 1
        out[2 * i + 1] = (theirs >> CELL_BIT[i]) & 1
