"""Tests of the Connect Four game: the env around PettingZoo, its opponents and the expert."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from tutorl.envs import connect_four as cf
from tutorl.envs.connect_four import (
    GAME,
    ConnectFourEnv,
    board_from_obs,
    describe,
    expert,
    legal_actions,
    state_key,
)

# ------------------------------------------------------------------------------------------
# Independent helpers: a plain 6x7 grid (row 0 = top, 1 = agent, 2 = opponent), no bitboards.
# ------------------------------------------------------------------------------------------


def obs_from_board(board: np.ndarray) -> np.ndarray:
    board = np.asarray(board)
    return np.stack([board == 1, board == 2], axis=2).reshape(-1).astype(np.float32)


def parse_board(rows: list[str]) -> np.ndarray:
    """Rows top to bottom, 'X' = agent, 'O' = opponent, '.' = empty."""
    assert len(rows) == 6 and all(len(r) == 7 for r in rows)
    return np.array([[{".": 0, "X": 1, "O": 2}[ch] for ch in row] for row in rows])


def drop(board: np.ndarray, col: int, piece: int) -> np.ndarray | None:
    """The board after ``piece`` falls into ``col``, or None if the column is full."""
    rows = np.flatnonzero(board[:, col] == 0)
    if rows.size == 0:
        return None
    out = board.copy()
    out[rows.max(), col] = piece
    return out


def has_four(board: np.ndarray, piece: int) -> bool:
    b = np.asarray(board) == piece
    lines = (
        b[:, :-3] & b[:, 1:-2] & b[:, 2:-1] & b[:, 3:],  # horizontal
        b[:-3] & b[1:-2] & b[2:-1] & b[3:],  # vertical
        b[:-3, :-3] & b[1:-2, 1:-2] & b[2:-1, 2:-1] & b[3:, 3:],  # falling (top-left down)
        b[3:, :-3] & b[2:-1, 1:-2] & b[1:-2, 2:-1] & b[:-3, 3:],  # rising (bottom-left up)
    )
    return any(line.any() for line in lines)


def immediate_wins(board: np.ndarray, piece: int) -> set[int]:
    return {
        c
        for c in range(7)
        if (after := drop(board, c, piece)) is not None and has_four(after, piece)
    }


def play_random_games(opponent: str, n_games: int, seed: int = 0):
    """Yield (obs, env) at every agent decision of games where the agent plays at random."""
    env = ConnectFourEnv(opponent=opponent, agent_first="random")
    rng = np.random.default_rng(seed)
    for g in range(n_games):
        obs, _ = env.reset(seed=seed + g)
        done = False
        while not done:
            yield obs, env
            obs, _, done, _, _ = env.step(int(rng.choice(legal_actions(obs))))


def run_policy(policy, opponent: str, n_games: int, seed0: int = 0) -> dict[str, int]:
    env = ConnectFourEnv(opponent=opponent)
    counts = {"win": 0, "draw": 0, "loss": 0}
    for g in range(n_games):
        obs, _ = env.reset(seed=seed0 + g)
        done = False
        while not done:
            obs, _, done, _, info = env.step(policy(obs))
        counts[info["outcome"]] += 1
    return counts


# ------------------------------------------------------------------------------------------
# The environment
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opponent", ["random", "greedy", "negamax:2"])
def test_check_env_passes(opponent: str) -> None:
    check_env(ConnectFourEnv(opponent=opponent), warn=True)


def test_default_options_make_a_working_env() -> None:
    env = GAME.make(**GAME.options)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84,) and obs.dtype == np.float32
    assert env.action_space.n == len(GAME.action_names) == 7


def _trajectory(opponent: str, seed: int, agent_first: str = "random") -> list:
    """Observations, rewards and opponent moves when the agent plays a fixed rule."""
    env = ConnectFourEnv(opponent=opponent, agent_first=agent_first)
    obs, info = env.reset(seed=seed)
    traj = [obs.tobytes(), info.get("opponent_action")]
    done, t = False, 0
    while not done:
        legal = legal_actions(obs)
        action = legal[(3 * t + 1) % len(legal)]  # fixed, seed-independent agent behaviour
        obs, reward, done, _, info = env.step(action)
        traj += [obs.tobytes(), reward, info.get("opponent_action")]
        t += 1
    return traj


@pytest.mark.parametrize("opponent", ["random", "greedy", "negamax:2"])
def test_same_seed_same_trajectory(opponent: str) -> None:
    for seed in range(5):
        assert _trajectory(opponent, seed) == _trajectory(opponent, seed)


def test_different_seeds_differ_with_random_opponent() -> None:
    trajectories = {tuple(_trajectory("random", seed, "always")) for seed in range(10)}
    assert len(trajectories) > 5


def test_negamax_opponent_breaks_ties_at_random() -> None:
    trajectories = {tuple(_trajectory("negamax:3", seed, "always")) for seed in range(10)}
    assert len(trajectories) > 1


def test_agent_first_option() -> None:
    for seed in range(5):
        obs, info = ConnectFourEnv(agent_first="always").reset(seed=seed)
        assert info["agent_first"] and not obs.any()
        obs, info = ConnectFourEnv(agent_first="never").reset(seed=seed)
        assert not info["agent_first"] and board_from_obs(obs).sum() == 2  # one opponent piece
    firsts = [
        ConnectFourEnv(agent_first="random").reset(seed=s)[1]["agent_first"] for s in range(40)
    ]
    assert 5 < sum(firsts) < 35


@pytest.mark.parametrize("backend", ["bitboard", "pettingzoo"])
def test_board_orientation_matches_pettingzoo(backend: str) -> None:
    env = ConnectFourEnv(opponent="random", agent_first="always", backend=backend)
    obs, _ = env.reset(seed=3)
    obs, *_ = env.step(3)
    board = board_from_obs(obs)
    assert board[5, 3] == 1  # row 0 is the top, so the first piece lands in row 5
    # our 1/2 coding against PettingZoo's own board (player_0 = 1 = the agent when first)
    reference = ConnectFourEnv(opponent="random", agent_first="always", backend="pettingzoo")
    reference.reset(seed=3)
    reference.step(3)
    raw = np.array(reference._game._game.unwrapped.board).reshape(6, 7)
    np.testing.assert_array_equal(board, raw)


def test_rewards_and_outcome_info() -> None:
    outcomes = set()
    for seed in range(30):
        env = ConnectFourEnv(opponent="random")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        done, rewards = False, []
        while not done:
            obs, reward, done, truncated, info = env.step(int(rng.choice(legal_actions(obs))))
            rewards.append(reward)
            assert not truncated
        assert all(r == 0 for r in rewards[:-1])
        expected = {1.0: "win", 0.0: "draw", -1.0: "loss"}[rewards[-1]]
        assert info["outcome"] == expected and info["is_success"] == (expected == "win")
        assert info["illegal_move"] is False
        board = board_from_obs(obs)
        assert has_four(board, 1) == (expected == "win")
        assert has_four(board, 2) == (expected == "loss")
        outcomes.add(expected)
    assert outcomes >= {"win", "loss"}


def test_illegal_move_is_a_loss_not_remapped() -> None:
    for seed in range(50):
        env = ConnectFourEnv(opponent="random", agent_first="always")
        obs, _ = env.reset(seed=seed)
        done = False
        while not done and 0 in legal_actions(obs):
            obs, _, done, _, _ = env.step(0)
        if not done:
            break
    else:
        pytest.fail("no seed filled column 0 without ending the game")
    assert not env.action_masks()[0]
    before = obs.copy()
    obs, reward, terminated, truncated, info = env.step(0)
    assert (reward, terminated, truncated) == (-1.0, True, False)
    assert info["illegal_move"] is True and info["outcome"] == "loss"
    assert info["is_success"] is False
    np.testing.assert_array_equal(obs, before)  # nothing was played in its place
    with pytest.raises(RuntimeError):
        env.step(1)


def test_action_masks_and_describe_match_legal_actions() -> None:
    saw_full_column = False
    for obs, env in play_random_games("random", 15):
        legal = legal_actions(obs)
        assert np.flatnonzero(env.action_masks()).tolist() == legal
        assert legal == [c for c in range(7) if board_from_obs(obs)[0, c] == 0]
        text = describe(obs)
        line = next(ln for ln in text.splitlines() if ln.startswith("Legal columns:"))
        assert line == "Legal columns: " + ", ".join(map(str, legal)) + "."
        saw_full_column |= len(legal) < 7
    assert saw_full_column


def test_describe_mentions_wins_and_blocks() -> None:
    board = parse_board([".......", ".......", ".......", "O......", "O......", "OXXX..."])
    text = describe(obs_from_board(board))
    assert "Columns where you win immediately: 4." in text
    assert "Columns that block the opponent's immediate win: 0." in text
    assert "| O X X X . . . |" in text.splitlines()  # bottom row, printed last
    # two threats: the description says only one can be blocked
    board = parse_board([".......", ".......", ".......", "O.....O", "OX...XO", "OX.X.XO"])
    text = describe(obs_from_board(board))
    assert "Columns where you win immediately: none." in text
    assert "threatens to win next in columns 0, 6; you can block only one" in text


@pytest.mark.parametrize(
    "bad", ["minimax:3", "negamax", "negamax:0", "negamax:-1", "negamax:x", "", "Greedy!"]
)
def test_bad_opponent_strings_raise(bad: str) -> None:
    with pytest.raises(ValueError, match=r"unknown opponent .*; use random, greedy or negamax:D"):
        ConnectFourEnv(opponent=bad)


def test_bad_agent_first_raises() -> None:
    with pytest.raises(ValueError, match="agent_first"):
        ConnectFourEnv(agent_first="sometimes")


def test_state_key_is_exact() -> None:
    keys = {}
    for obs, _ in play_random_games("random", 10):
        key = state_key(obs)
        assert state_key(obs.copy()) == key
        board = board_from_obs(obs)
        if key in keys:
            np.testing.assert_array_equal(keys[key], board)
        keys[key] = board
    assert len(keys) > 40  # distinct boards got distinct keys


# ------------------------------------------------------------------------------------------
# Opponents
# ------------------------------------------------------------------------------------------


def _opponent_tactics(opponent: str, n_games: int) -> tuple[int, int, int]:
    """(chances to win or block, chances taken, wins missed) over the opponent's replies."""
    env = ConnectFourEnv(opponent=opponent)
    rng = np.random.default_rng(100)
    chances = taken = missed_wins = 0
    for g in range(n_games):
        obs, _ = env.reset(seed=100 + g)
        done = False
        while not done:
            action = int(rng.choice(legal_actions(obs)))
            after = drop(board_from_obs(obs), action, 1)  # what the opponent replies to
            obs, _, done, _, info = env.step(action)
            if "opponent_action" not in info:
                continue  # the agent's move ended the game
            reply = info["opponent_action"]
            own_wins, to_block = immediate_wins(after, 2), immediate_wins(after, 1)
            if own_wins:
                chances += 1
                taken += reply in own_wins
                missed_wins += reply not in own_wins
            elif to_block:
                chances += 1
                taken += reply in to_block
    return chances, taken, missed_wins


@pytest.mark.parametrize("opponent", ["greedy", "negamax:2"])
def test_tactical_opponents_take_wins_and_block(opponent: str) -> None:
    chances, taken, _ = _opponent_tactics(opponent, 40)
    assert chances >= 10
    assert taken == chances


def test_random_opponent_misses_wins() -> None:
    # the check above can fail: a random opponent does not pass it
    chances, taken, missed = _opponent_tactics("random", 40)
    assert chances >= 10 and taken < chances and missed > 0


# ------------------------------------------------------------------------------------------
# The expert
# ------------------------------------------------------------------------------------------


def test_expert_takes_wins_and_blocks_on_reachable_positions() -> None:
    n_wins = n_blocks = 0
    for opponent in ("random", "greedy"):
        for obs, _ in play_random_games(opponent, 100, seed=7):
            board = board_from_obs(obs)
            action = expert(obs)
            assert action in legal_actions(obs)
            wins, threats = immediate_wins(board, 1), immediate_wins(board, 2)
            assert sorted(wins) == cf.winning_columns(obs)
            assert sorted(threats) == cf.threatened_columns(obs)
            if wins:
                assert action in wins, describe(obs)
                n_wins += 1
            elif threats:
                assert action in threats, describe(obs)
                n_blocks += 1
    assert n_wins >= 20 and n_blocks >= 20  # the check really was exercised


# name: (rows top to bottom, columns the expert must choose from); X (the agent) is to move
HAND_MADE: dict[str, tuple[list[str], set[int]]] = {
    "horizontal win": ([".......", ".......", ".......", ".......", "....O..", "XXX.OO."], {3}),
    "vertical win": ([".......", ".......", ".......", "......X", "O.....X", "OO....X"], {6}),
    "rising diagonal win": (
        [".......", ".......", ".......", "..XO...", ".XOO...", "XOOX..."],
        {3},
    ),
    "falling diagonal win": (
        [".......", ".......", ".......", "...OX..", "...OOX.", "...XOOX"],
        {3},
    ),
    "horizontal block": ([".......", ".......", ".......", ".......", "....X..", ".XX.OOO"], {3}),
    "vertical block": ([".......", ".......", ".......", ".O.....", ".OX....", "XOX...."], {1}),
    "rising diagonal block": (
        [".......", ".......", ".......", "....OX.", "...OXX.", "O.OXXO."],
        {5},
    ),
    "falling diagonal block": (
        [".......", ".......", ".......", ".XO....", ".XXO...", ".OXXO.O"],
        {1},
    ),
    # a win at either end of an open three comes before blocking O's vertical threat
    "win despite a threat": (
        [".......", ".......", ".......", "O......", "O......", "O.XXX.."],
        {1, 5},
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_expert_on_hand_made_positions(name: str) -> None:
    rows, expected = HAND_MADE[name]
    board = parse_board(rows)
    # the position is reachable: X moved first (equal counts) or second (O one ahead), no four,
    # and no piece floats above an empty cell
    assert (board == 2).sum() - (board == 1).sum() in (0, 1)
    assert not has_four(board, 1) and not has_four(board, 2)
    assert all((np.diff(board[:, c] > 0) >= 0).all() for c in range(7))
    obs = obs_from_board(board)
    if name.endswith("block"):
        assert immediate_wins(board, 2) == expected and not immediate_wins(board, 1)
        assert cf.threatened_columns(obs) == sorted(expected) and not cf.winning_columns(obs)
    else:
        assert immediate_wins(board, 1) == expected
        assert cf.winning_columns(obs) == sorted(expected)
        assert bool(immediate_wins(board, 2)) == name.endswith("threat")
    assert expert(obs) in expected


def test_expert_is_deterministic_and_prefers_centre_on_empty_board() -> None:
    empty = np.zeros(84, dtype=np.float32)
    assert expert(empty) == 3
    cf._expert_move.cache_clear()
    assert expert(empty) == 3


def test_expert_beats_random_opponent() -> None:
    counts = run_policy(expert, "random", 50)
    assert counts["win"] >= 45, counts


def test_success_threshold_separates_expert_from_random_play() -> None:
    # expert and random agent against the default opponent, scored as the threshold is
    n = 40
    options = GAME.options
    rng = np.random.default_rng(0)

    def mean_return(policy) -> float:
        env = GAME.make(**options)
        total = 0.0
        for g in range(n):
            obs, _ = env.reset(seed=1_000 + g)
            done = False
            while not done:
                obs, reward, done, _, _ = env.step(policy(obs))
            total += reward
        return total / n

    assert mean_return(expert) > GAME.success_threshold
    assert mean_return(lambda o: int(rng.choice(legal_actions(o)))) < GAME.success_threshold
