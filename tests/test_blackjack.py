"""Blackjack: the exact DP against Monte Carlo on the real Gymnasium env, and the game contract."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
from gymnasium.envs.toy_text.blackjack import BlackjackEnv
from stable_baselines3.common.env_checker import check_env

from tutorl.envs import blackjack
from tutorl.envs.blackjack import GAME, HIT, STICK, exact_policy_value, expert

Policy = Callable[[int, int, int], int]  # (total, dealer card, usable ace) -> action


def _monte_carlo(
    policy: Policy, hands: int, seed: int, **rules: bool
) -> tuple[float, float, float]:
    """Mean reward, its standard error and the win rate of ``policy`` on the raw Gymnasium env.

    The raw env (no checker wrappers) runs about 20k hands per second.
    """
    env = BlackjackEnv(**rules)
    env.reset(seed=seed)
    rewards = np.empty(hands)
    for i in range(hands):
        obs, _ = env.reset()
        terminated = False
        while not terminated:
            obs, reward, terminated, _, _ = env.step(policy(*obs))
        rewards[i] = reward
    return rewards.mean(), rewards.std(ddof=1) / math.sqrt(hands), float((rewards > 0).mean())


def _batch(policy: Policy) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: np.array([policy(int(t), int(d), int(u)) for t, d, u in obs])


# The expert's table, looked up by plain tuples so that Monte Carlo is not slowed by array calls.
_EXPERT_TABLE = {
    (int(t), int(d), int(u)): expert(np.array([t, d, u]))
    for t, d, u in blackjack.decision_observations()
}


def _expert(total: int, dealer: int, usable: int) -> int:
    return _EXPERT_TABLE[total, dealer, usable]


def _mimic_dealer(total: int, dealer: int, usable: int) -> int:
    return HIT if total < 17 else STICK


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def test_dealer_distribution_is_a_distribution_and_known_value() -> None:
    for up in range(1, 11):
        dist = blackjack.dealer_distribution(up, exact=True)
        assert sum(dist) == 1
    # Dealer showing 6 busts about 42% of the time under stand-on-soft-17, infinite deck.
    assert 0.41 < float(blackjack.dealer_distribution(6)[0]) < 0.43
    # With a ten showing and no peek, the dealer ends on 20 most often.
    dist10 = blackjack.dealer_distribution(10)
    assert max(range(6), key=lambda i: dist10[i]) == 4


def test_optimal_value_matches_monte_carlo() -> None:
    exact = blackjack.optimal_value()
    assert -0.05 <= exact <= -0.04
    mean, se, win_rate = _monte_carlo(_expert, 100_000, seed=1)
    assert abs(mean - exact) < 4 * se, (mean, se, exact)
    win = blackjack.optimal_win_probability()
    assert abs(win_rate - win) < 4 * _binomial_se(win, 100_000)


def test_exact_policy_value_of_expert_is_optimal_value() -> None:
    value, win = exact_policy_value(_batch(_expert))
    assert value == pytest.approx(blackjack.optimal_value(), abs=1e-12)
    assert win == pytest.approx(blackjack.optimal_win_probability(), abs=1e-12)


def test_exact_policy_value_of_another_policy_matches_monte_carlo() -> None:
    """Protects the evaluator itself: a policy that busts more and ignores the dealer card."""
    value, win = exact_policy_value(_batch(_mimic_dealer))
    mean, se, win_rate = _monte_carlo(_mimic_dealer, 50_000, seed=2)
    assert abs(mean - value) < 4 * se, (mean, se, value)
    assert abs(win_rate - win) < 4 * _binomial_se(win, 50_000)
    # ...and it is clearly worse than optimal, so the two checks are not the same check.
    assert value < blackjack.optimal_value() - 0.02


def test_natural_rule_is_modelled() -> None:
    """With natural=True a winning natural pays 1.5; always sticking is simple to simulate."""
    stick = _batch(lambda t, d, u: STICK)
    default, _ = exact_policy_value(stick)
    natural, _ = exact_policy_value(stick, natural=True)
    # The bonus is 0.5 on P(natural) * P(dealer does not reach 21) > 0.5 * 8/169 * 0.8.
    assert natural - default > 0.5 * 8 / 169 * 0.8
    mean, se, _ = _monte_carlo(lambda t, d, u: STICK, 20_000, seed=3, natural=True)
    assert abs(mean - natural) < 4 * se, (mean, se, natural)
    assert blackjack.optimal_value(natural=True) > blackjack.optimal_value()
    assert blackjack.optimal_value(sab=True) > blackjack.optimal_value()
    # A policy that hits every soft 21 never collects a natural bonus, so the rules agree on it.
    hit_soft_21 = _batch(lambda t, d, u: HIT if t < 17 or (t == 21 and u) else STICK)
    plain = exact_policy_value(hit_soft_21)
    assert exact_policy_value(hit_soft_21, natural=True) == pytest.approx(plain, abs=1e-12)
    assert exact_policy_value(hit_soft_21, sab=True) == pytest.approx(plain, abs=1e-12)


def test_exact_policy_value_rejects_bad_predictions() -> None:
    with pytest.raises(ValueError):
        exact_policy_value(lambda obs: np.full(len(obs), 2))
    with pytest.raises(ValueError):
        exact_policy_value(lambda obs: np.zeros(3, dtype=int))


def test_decision_observations_are_exactly_the_reachable_states() -> None:
    obs = blackjack.decision_observations()
    assert obs.shape == (280, 3) and obs.dtype == np.int64
    keys = {tuple(map(int, row)) for row in obs}
    assert not any(u == 1 and t < 12 for t, _, u in keys)  # a soft total is at least 12
    # Every state the real env shows the player must be covered by the evaluator's batch.
    env = BlackjackEnv()
    env.reset(seed=4)
    seen = set()
    for _ in range(3_000):
        o, _ = env.reset()
        terminated = False
        while not terminated:
            seen.add(tuple(map(int, o)))
            o, _, terminated, _, _ = env.step(HIT if o[0] < 19 else STICK)
    assert seen <= keys


@pytest.mark.parametrize(
    ("total", "usable", "dealers", "action"),
    [
        (17, 0, range(1, 11), STICK),  # hard 17+ always stands
        (20, 0, range(1, 11), STICK),
        (11, 0, range(1, 11), HIT),  # hard 11 or less cannot bust
        (5, 0, range(1, 11), HIT),
        (12, 0, (2, 3), HIT),  # hard 12: hit against 2 and 3...
        (12, 0, (4, 5, 6), STICK),  # ...stand against the dealer's bust cards 4-6
        (13, 0, range(2, 7), STICK),  # hard 13-16 stand against 2-6...
        (16, 0, range(2, 7), STICK),
        (16, 0, (7, 8, 9, 10, 1), HIT),  # ...and hit against 7 through ace
        (17, 1, range(1, 11), HIT),  # soft 17 always hits (no doubling in this game)
        (18, 1, (9, 10, 1), HIT),  # soft 18 hits against 9, 10 and ace...
        (18, 1, range(2, 9), STICK),  # ...and stands against 2-8
        (19, 1, range(1, 11), STICK),
    ],
)
def test_expert_matches_basic_strategy(total: int, usable: int, dealers, action: int) -> None:
    for dealer in dealers:
        assert expert(np.array([total, dealer, usable])) == action, (total, dealer, usable)


def test_reference_policies_bracket_the_success_threshold() -> None:
    values = blackjack.reference_values()
    assert values["optimal"] > GAME.success_threshold > values["stick on 17+ (mimic the dealer)"]
    # The threshold demands use of the dealer's card: no dealer-blind threshold policy reaches it.
    blind = max(
        blackjack._evaluate_hit_probs(
            blackjack._reference_hit_probs(lambda t, u, d, h=h, s=s: float(t < (s if u else h)))
        )[0]
        for h in range(12, 23)
        for s in range(12, 23)
    )
    assert blind == pytest.approx(values["dealer-blind: stick on hard 15+, soft 18+"])
    assert blind < GAME.success_threshold
    assert values["always stick"] < values["stick on 17+ (mimic the dealer)"]
    assert values["uniform random"] < values["always stick"]


def test_uniform_random_value_matches_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    mean, se, _ = _monte_carlo(lambda t, d, u: int(rng.integers(2)), 15_000, seed=5)
    exact = blackjack.reference_values()["uniform random"]
    assert abs(mean - exact) < 4 * se, (mean, se, exact)


def test_optimal_value_is_exact_rational() -> None:
    value = blackjack._optimal(False, False)[1]
    assert isinstance(value, Fraction)
    assert float(value) == blackjack.optimal_value()


def test_make_passes_sb3_check_and_reports_outcomes() -> None:
    env = GAME.make()
    check_env(env, warn=True)
    assert env.observation_space.contains(env.reset(seed=0)[0])
    outcomes = set()
    for _ in range(300):
        obs, _ = env.reset()
        assert obs.dtype == np.int64 and obs.shape == (3,)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(expert(obs))
        assert info["is_success"] == (reward > 0)
        assert info["outcome"] == {1: "win", 0: "draw", -1: "loss"}[int(np.sign(reward))]
        outcomes.add(info["outcome"])
    assert outcomes == {"win", "draw", "loss"}


def test_make_forwards_options() -> None:
    env = blackjack.make(natural=True)
    assert env.unwrapped.natural is True


def test_describe_mentions_total_and_dealer_card() -> None:
    text = GAME.describe(np.array([15, 10, 0]))
    assert "15" in text and "ten" in text and "no usable ace" in text
    soft = GAME.describe(np.array([17, 1, 1]))
    assert "soft 17" in soft and "ace" in soft
    assert "8" in GAME.describe(np.array([13, 8, 0]))
    # The bust chance quoted for hard 15 (a 7, 8, 9 or ten) is 7/13.
    assert "54%" in text


def test_contract_helpers() -> None:
    obs = np.array([14, 3, 0], dtype=np.int64)
    assert GAME.state_key(obs) == (14, 3, 0)
    assert hash(GAME.state_key(obs)) == hash((14, 3, 0))
    assert GAME.legal_actions(obs) == [0, 1]
    assert list(GAME.action_names) == ["stick", "hit"]
    assert GAME.n_actions == 2
    assert GAME.exact_evaluator is exact_policy_value
    assert GAME.has_outcomes
    assert "17" in GAME.rules
