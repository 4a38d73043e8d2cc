"""Advice modes and imitation of the tutor inside real SB3 models (see tutorl.rl.imitation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th
from data.make_golden_runs import CONFIGS
from data.make_golden_runs import run as run_golden
from stable_baselines3.common.env_util import make_vec_env
from test_hooks import RecordActions, received

from tutorl.envs import get_game
from tutorl.rl.algorithms import make_model
from tutorl.rl.hooks import attach_advisor
from tutorl.rl.imitation import AdviceStore, Imitation, ImitationSettings, margin_loss
from tutorl.rl.train import RunConfig, configure_threads, train
from tutorl.tutor import AdviceSchedule, Advisor, ConstantTutor

configure_threads()
GOLDEN = Path(__file__).parent / "data" / "golden_runs.json"


def model_on(env_name: str, algo: str, n_envs: int = 2, seed: int = 0, **hyper):
    game = get_game(env_name)
    env = make_vec_env(lambda: RecordActions(game.make()), n_envs=n_envs, seed=seed)
    return game, env, make_model(algo, game, env, seed, hyper)


# The loss itself ---------------------------------------------------------------------------------


def test_margin_loss_is_dqfds_and_respects_masks():
    q = th.tensor([[1.0, 2.0, 0.5], [3.0, 0.0, 9.0]])
    actions = th.tensor([0, 0])
    all_legal = th.ones(2, 3, dtype=th.bool)
    # Row 0: max(1+0, 2+0.8, 0.5+0.8) - 1 = 1.8; row 1: max(3, 0.8, 9.8) - 3 = 6.8.
    np.testing.assert_allclose(margin_loss(q, actions, all_legal, 0.8).numpy(), [1.8, 6.8])
    # Row 1's action 2 is illegal: its huge value must not count.
    masks = th.tensor([[True, True, True], [True, True, False]])
    np.testing.assert_allclose(margin_loss(q, actions, masks, 0.8).numpy(), [1.8, 0.0])


def test_advice_store_is_a_ring_buffer():
    store = AdviceStore((2,), n_actions=3, capacity=4)
    nan = np.full((3, 3), np.nan, dtype=np.float32)
    store.add(np.arange(6).reshape(3, 2), np.array([0, 1, 2]), np.ones((3, 3), bool), nan)
    store.add(np.arange(6, 10).reshape(2, 2), np.array([1, 1]), np.ones((2, 3), bool), nan[:2])
    assert len(store) == 4
    # The fifth row overwrote the oldest (row 0); the others are in place.
    np.testing.assert_array_equal(store.obs, [[8, 9], [2, 3], [4, 5], [6, 7]])
    np.testing.assert_array_equal(store.actions, [1, 1, 2, 1])
    batch = store.sample(64, np.random.default_rng(0))
    assert len(batch["actions"]) == 4  # never more than it holds


# The term's gradient, through the optimizer's own step (the pre-step hook) -----------------------


def fill(imitation: Imitation, obs: np.ndarray, action: int, mask: np.ndarray | None = None):
    n = len(obs)
    masks = np.ones((n, imitation.store.masks.shape[1]), dtype=bool) if mask is None else mask
    probs = np.full(masks.shape, np.nan, dtype=np.float32)
    imitation.store.add(obs, np.full(n, action), masks, probs)


def optimizer_steps(model, k: int) -> None:
    """k optimizer steps with no loss of SB3's own: only the imitation term moves the weights."""
    for _ in range(k):
        model.policy.optimizer.zero_grad()
        model.policy.optimizer.step()


def test_dqn_margin_term_makes_the_tutor_action_greedy():
    game, _, model = model_on("blackjack", "dqn", n_envs=1)
    imitation = Imitation(model, ImitationSettings(coef=1.0), total_steps=1000)
    attach_advisor(model, game, None, imitation)
    obs = np.array([[12, 10, 0], [16, 7, 0], [20, 5, 1], [8, 2, 0]], dtype=np.float32)
    fill(imitation, obs, action=1)
    before = imitation.term(imitation.store.sample(4, np.random.default_rng(0))).item()
    optimizer_steps(model, 60)
    after = imitation.term(imitation.store.sample(4, np.random.default_rng(0))).item()
    assert after < before
    with th.no_grad():
        q = model.q_net(th.as_tensor(obs)).numpy()
    assert (q.argmax(axis=1) == 1).all()
    assert imitation.applied_steps == 60


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_policy_gradient_term_raises_the_tutor_action_probability(algo):
    game, _, model = model_on("blackjack", algo)
    imitation = Imitation(model, ImitationSettings(coef=1.0), total_steps=1000)
    attach_advisor(model, game, None, imitation)
    obs = np.array([[12, 10, 0], [16, 7, 0], [20, 5, 1]], dtype=np.float32)
    fill(imitation, obs, action=0)

    def p_tutor() -> np.ndarray:
        with th.no_grad():
            dist = model.policy.get_distribution(th.as_tensor(obs))
            return dist.distribution.probs[:, 0].numpy()

    start = p_tutor()
    optimizer_steps(model, 150)
    assert (p_tutor() > start + 0.2).all()


def test_maskable_ppo_term_uses_the_masked_distribution():
    game, _, model = model_on("connect_four", "ppo")
    imitation = Imitation(model, ImitationSettings(coef=1.0), total_steps=1000)
    assert imitation.maskable
    obs = np.zeros((2, *model.observation_space.shape), dtype=np.float32)
    mask = np.zeros((2, game.n_actions), dtype=bool)
    mask[:, [2, 3]] = True  # only columns 2 and 3 are legal
    fill(imitation, obs, action=3, mask=mask)
    batch = imitation.store.sample(2, np.random.default_rng(0))
    with th.no_grad():
        term = imitation.term(batch).item()
        logits = model.policy.get_distribution(th.as_tensor(obs)).distribution.logits[0]
    masked = th.log_softmax(logits[[2, 3]], dim=0)[1].item()
    unmasked = th.log_softmax(logits, dim=0)[3].item()
    assert term == pytest.approx(-masked, abs=1e-5)
    assert term != pytest.approx(-unmasked, abs=1e-3)


def test_distribution_target_is_cross_entropy_to_the_tutor():
    _, _, model = model_on("blackjack", "a2c")
    imitation = Imitation(model, ImitationSettings(coef=1.0, target="distribution"), 1000)
    obs = np.array([[12, 10, 0]], dtype=np.float32)
    probs = np.array([[0.25, 0.75]], dtype=np.float32)
    imitation.store.add(obs, np.array([1]), np.ones((1, 2), dtype=bool), probs)
    with th.no_grad():
        term = imitation.term(imitation.store.sample(1, np.random.default_rng(0))).item()
        log_pi = model.policy.get_distribution(th.as_tensor(obs)).distribution.logits
        log_pi = th.log_softmax(log_pi, dim=1)[0].numpy()
    assert term == pytest.approx(-(0.25 * log_pi[0] + 0.75 * log_pi[1]), abs=1e-5)


def test_weight_anneals_and_the_guard_stops_imitation():
    _, _, model = model_on("blackjack", "a2c")
    imitation = Imitation(model, ImitationSettings(coef=2.0, anneal=0.5, guard=True), 1000)
    model.num_timesteps = 250
    assert imitation.weight() == pytest.approx(1.0)  # halfway through the annealing
    imitation.tutor_return, imitation.student_return = -0.05, -0.2
    assert imitation.weight() == pytest.approx(1.0)
    imitation.student_return = -0.05  # the student has caught up: no more imitation
    assert imitation.weight() == 0.0
    model.num_timesteps = 600
    imitation.student_return = -0.2
    assert imitation.weight() == 0.0  # annealed away


def test_the_guards_test_ignores_a_lead_within_the_evaluation_noise():
    from tutorl.rl.evaluation import EvalResult

    def evaluation(mean, std, episodes=100, exact=False):
        return EvalResult(mean, std, mean, mean, episodes, 0.0, exact=exact)

    _, _, model = model_on("blackjack", "a2c")
    strict = Imitation(model, ImitationSettings(coef=1.0, guard=True, guard_z=1.645), 1000)
    loose = Imitation(model, ImitationSettings(coef=1.0, guard=True), 1000)
    for imitation in (strict, loose):
        # Random play on Connect Four a little above a weak student: se 0.03 each.
        imitation.set_tutor_return(evaluation(-0.92, 0.3))
        imitation.set_student_return(evaluation(-0.96, 0.3))
    assert strict.tutor_se == pytest.approx(0.03)
    assert loose.weight() == 1.0 and strict.weight() == 0.0  # a 0.04 lead, noise 0.070
    for imitation in (strict, loose):
        imitation.set_student_return(evaluation(-0.5, 0.3))  # the student is ahead
    assert loose.weight() == 0.0 and strict.weight() == 0.0
    for imitation in (strict, loose):  # a clear lead: 0.5 against noise 0.070
        imitation.set_tutor_return(evaluation(0.6, 0.3))
    assert loose.weight() == 1.0 and strict.weight() == 1.0
    # Exact evaluations have no noise: the test is the plain guard (Blackjack unchanged).
    strict.set_tutor_return(evaluation(-0.05, 0.9, exact=True))
    strict.set_student_return(evaluation(-0.06, 0.9, exact=True))
    assert strict.tutor_se == 0.0 and strict.weight() == 1.0


def test_guard_z_is_a_setting_of_the_guard():
    from tutorl.rl.train import RunConfig

    config = RunConfig(
        env="snake", algo="ppo", tutor="random", advice_mode="label", imitation_coef=1.0,
        imitation_guard=True, imitation_guard_z=1.645,
    )  # fmt: skip
    assert config.arm() == "random+label+im1+guard1.645"
    assert config.imitation().guard_z == 1.645
    plain = config.model_copy(update={"imitation_guard_z": 0.0})
    assert plain.arm() == "random+label+im1+guard"  # today's runs keep their folders
    with pytest.raises(ValueError, match="needs --imitation-guard"):
        RunConfig(env="snake", algo="ppo", tutor="random", imitation_coef=1.0,
                  imitation_guard_z=1.0)  # fmt: skip


# Advice modes in real training -------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_label_mode_executes_the_student_action_and_stores_the_advice(algo):
    hyper = {"learning_starts": 10_000} if algo == "dqn" else {"n_steps": 64}
    game, env, model = model_on("blackjack", algo, **hyper)
    advisor = Advisor(game, ConstantTutor(1), AdviceSchedule(1.0, 1.0, 0), seed=0, mode="label")
    imitation = Imitation(model, ImitationSettings(coef=1.0), total_steps=256)
    attach_advisor(model, game, advisor, imitation)
    model.learn(256)
    executed = received(env)
    # The tutor always says "hit" and is asked every step, yet the student's own mixed choices
    # were executed ...
    assert 0.25 < executed.mean() < 0.75
    # ... while every state was labelled with the advice.
    assert len(imitation.store) == 256
    assert (imitation.store.actions[:256] == 1).all()
    assert advisor.stats.asks == 256


class RecordingAdvisor(Advisor):
    def __call__(self, obs, student_actions, views, eligible=None):
        executed = super().__call__(obs, student_actions, views, eligible)
        self.log.append((np.array(student_actions), executed.copy(), np.array(eligible)))
        return executed


def test_explore_mode_replaces_only_epsilon_random_actions():
    game, env, model = model_on(
        "blackjack",
        "dqn",
        learning_starts=0,
        exploration_initial_eps=0.3,
        exploration_final_eps=0.3,
    )
    advisor = RecordingAdvisor(
        game, ConstantTutor(1), AdviceSchedule(1.0, 1.0, 0), seed=0, mode="explore"
    )
    advisor.log = []
    attach_advisor(model, game, advisor)
    model.learn(600)
    student = np.concatenate([s for s, _, _ in advisor.log])
    executed = np.concatenate([e for _, e, _ in advisor.log])
    explored = np.concatenate([x for _, _, x in advisor.log])
    assert 0.2 < explored.mean() < 0.4  # ε = 0.3 per env
    np.testing.assert_array_equal(executed[~explored], student[~explored])  # greedy kept
    assert (executed[explored] == 1).all()  # every random step replaced by the advice
    np.testing.assert_array_equal(received(env), executed)
    assert advisor.stats.asks == explored.sum()


# Whole runs ---------------------------------------------------------------------------------------


def test_config_validates_modes_and_names_arms():
    base = {"env": "blackjack", "tutor": "expert", "steps": 1000}
    with pytest.raises(ValueError, match="only DQN"):
        RunConfig(algo="ppo", advice_mode="explore", **base)
    with pytest.raises(ValueError, match="no effect"):
        RunConfig(algo="ppo", advice_mode="label", **base)
    with pytest.raises(ValueError, match="need a tutor"):
        RunConfig(env="blackjack", algo="ppo", imitation_coef=1.0)
    with pytest.raises(ValueError, match="imitation-coef > 0"):
        RunConfig(algo="ppo", imitation_guard=True, **base)
    arm = RunConfig(
        algo="ppo", advice_mode="label", imitation_coef=0.5, imitation_guard=True, reuse=True,
        **base,
    ).arm()  # fmt: skip
    assert arm == "expert+label+im0.5+guard+reuse"
    assert RunConfig(algo="dqn", **base).arm() == "expert"


def test_the_guard_imitates_an_expert_and_not_a_tutor_the_student_already_beats(tmp_path):
    def run(tutor: str) -> dict:
        config = RunConfig(
            env="blackjack",
            algo="a2c",
            tutor=tutor,
            steps=3000,
            eval_freq=500,
            advice_mode="label",
            imitation_coef=1.0,
            imitation_guard=True,
        )
        return train(config, tmp_path / tutor)[0]

    expert, random = run("expert"), run("random")
    # The tutor's own greedy return on the student's protocol (exact for Blackjack).
    assert expert["imitation"]["tutor_return"] == pytest.approx(-0.0466, abs=1e-3)
    assert random["imitation"]["tutor_return"] < -0.2
    assert random["arm"] == "random+label+im1+guard"
    # A2C makes 3000 / (4 envs x 8 steps) = 93 updates. The untrained student is below the
    # expert, so the expert is imitated; the random tutor is worse than the student from the
    # first evaluation on and is never (or hardly) imitated.
    assert expert["imitation"]["imitation_steps"] > 20
    assert random["imitation"]["imitation_steps"] < expert["imitation"]["imitation_steps"]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_replace_without_imitation_reproduces_the_stored_runs_bit_for_bit(name, tmp_path):
    """The runs in tests/data/golden_runs.json were made by the code before advice modes and
    imitation existed (commit 1d3986e, tests/data/make_golden_runs.py); the paper's mechanism
    must not have moved: the same curves bit for bit, the same weights up to CPU-kernel bits."""
    stored = json.loads(GOLDEN.read_text())[name]
    record = run_golden(name, tmp_path / name)
    # Every column but the wall time: evaluations, tutor counters, and the trained weights.
    strip = lambda text: [row.rsplit(",", 1)[0] for row in text.splitlines()]  # noqa: E731
    assert strip(record["curve"]) == strip(stored["curve"])
    assert record["params"].keys() == stored["params"].keys()
    for key, sums in stored["params"].items():
        assert record["params"][key] == pytest.approx(sums, rel=1e-6, abs=1e-9), key
