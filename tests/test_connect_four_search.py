"""The compiled Connect Four search against the pure-Python search it replaced, and the fast
bitboard env against PettingZoo's game (the reference)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tutorl.envs import connect_four as cf
from tutorl.envs import connect_four_search as search

GOLDEN = Path(__file__).parent / "data" / "connect_four_golden.json.gz"


@pytest.fixture(scope="module")
def golden() -> list[list]:
    with gzip.open(GOLDEN, "rt") as f:
        data = json.load(f)
    assert data["commit"] == "f70bb99"
    return data["positions"]


def test_golden_set_is_large_and_spans_the_game(golden):
    pieces = [bin(mask).count("1") for _, mask, *_ in golden]
    assert len(golden) >= 5000
    assert min(pieces) == 0 and max(pieces) >= 38  # openings to near-full boards


def test_compiled_expert_plays_the_python_experts_moves(golden):
    for pos, mask, move, *_ in golden:
        assert search.expert_move(pos, mask) == move, (pos, mask)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_compiled_search_opponent_ties_match(golden, depth):
    for pos, mask, _move, *rest in golden:
        assert list(search.best_columns(pos, mask, depth)) == rest[depth - 1], (pos, mask, depth)


def test_compiled_column_scores_match(golden):
    for pos, mask, *rest in golden:
        scores = [None if s == search.NO_SCORE else int(s) for s in search.column_scores(pos, mask)]
        assert scores == rest[-1], (pos, mask)


def test_popcount_and_bitboard_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        cells = rng.random(84) < 0.3
        cells[1::2] &= ~cells[0::2]  # one piece per cell
        obs = cells.astype(np.float32)
        mine, mask = search.bitboards_of_planes(obs)
        assert search.popcount(mask) == int(cells.sum())
        back = np.zeros(84, dtype=np.float32)
        search.planes_of_bitboards(mine, mask, back)
        np.testing.assert_array_equal(back, obs)


def _play_both(seed: int, opponent: str, agent_first: str = "random") -> int:
    """Play one seeded game through both backends with the same agent moves; assert that every
    step's observation, reward, termination, info and mask agree. Returns the plies played."""
    envs = [
        cf.ConnectFourEnv(opponent=opponent, agent_first=agent_first, backend=b)
        for b in ("pettingzoo", "bitboard")
    ]
    results = [env.reset(seed=seed) for env in envs]
    (obs_p, info_p), (obs_b, info_b) = results
    np.testing.assert_array_equal(obs_p, obs_b)
    assert info_p == info_b
    rng = np.random.default_rng(seed)
    style = rng.choice(["random", "expert", "mixed", "illegal"])
    plies = 0
    while True:
        np.testing.assert_array_equal(envs[0].action_masks(), envs[1].action_masks())
        legal = cf.legal_actions(obs_b)
        if style == "expert" or (style == "mixed" and rng.random() < 0.5):
            action = cf.expert(obs_b)
        elif style == "illegal" and rng.random() < 0.05:
            action = int(rng.integers(7))  # maybe a full column: an illegal move loses
        else:
            action = int(rng.choice(legal))
        step_p, step_b = (env.step(action) for env in envs)
        plies += 1
        np.testing.assert_array_equal(step_p[0], step_b[0])
        assert step_p[1:] == step_b[1:], (seed, opponent, plies)
        obs_b = step_b[0]
        if step_b[2] or step_b[3]:
            return plies


@pytest.mark.parametrize("opponent", ["random", "greedy", "negamax:1", "negamax:2"])
def test_bitboard_backend_plays_the_same_games_as_pettingzoo(opponent):
    plies = [_play_both(seed, opponent) for seed in range(150)]
    assert max(plies) >= 15 and sum(plies) > 150 * 5  # real games, not only instant losses


def test_backends_agree_in_both_seats():
    for agent_first in ("always", "never"):
        for seed in range(40):
            _play_both(seed, "random", agent_first)


def test_backends_agree_on_a_drawn_game():
    """Draws are rare in play: find a random move sequence that fills the board without four
    in a line, then check both backends call every ply of it alike."""
    rng = np.random.default_rng(7)
    for _ in range(20_000):
        game = cf._BitboardGame()
        game.reset(True)
        moves = []
        while game.result() is None:
            legal = [c for c in range(7) if not game._mask & int(search.TOP_CELL[c])]
            moves.append(int(rng.choice(legal)))
            game.play(moves[-1])
        if game.result() == 0.0:
            break
    assert len(moves) == 42 and game.result() == 0.0
    games = [cf._BitboardGame(), cf._PettingZooGame()]
    for game in games:
        game.reset(True)
    obs = [np.zeros(84, np.float32), np.zeros(84, np.float32)]
    for move in moves:
        for game, o in zip(games, obs, strict=True):
            game.play(move)
            game.observe(o)
        np.testing.assert_array_equal(obs[0], obs[1])
        assert games[0].result() == games[1].result()
    assert games[1].result() == 0.0


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        cf.ConnectFourEnv(backend="c")


def test_compiled_search_survives_its_on_disk_cache(tmp_path):
    """numba's cache of a recursive function without a fixed signature crashed the *second*
    process (numba issue #6061): play the search in two fresh processes on one cache."""
    import subprocess
    import sys

    code = (
        "from tutorl.envs.connect_four import ConnectFourEnv, expert\n"
        "import numpy as np\n"
        "out = []\n"
        "for opponent in ('negamax:2', 'greedy'):\n"
        "    env = ConnectFourEnv(opponent=opponent)\n"
        "    for seed in range(20):\n"
        "        obs, _ = env.reset(seed=seed)\n"
        "        done = False\n"
        "        while not done:\n"
        "            a = expert(obs)\n"
        "            out.append(a)\n"
        "            obs, r, done, _, _ = env.step(a)\n"
        "print(sum(out), len(out))\n"
    )
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr[-500:]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()
