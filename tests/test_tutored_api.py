"""The SB3-style public classes: ``TutoredPPO("MlpPolicy", env, game=..., tutor=...)`` tutors a
user's own SB3 code, is the very path ``tutorl train`` takes, and saves/loads like SB3."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from tutorl import (
    AdviceSchedule,
    ImitationGuard,
    ImitationSettings,
    RunConfig,
    TutoredA2C,
    TutoredDQN,
    TutoredMaskablePPO,
    TutoredPPO,
    train,
)
from tutorl.envs import get_game
from tutorl.rl.algorithms import DEFAULT_HYPERPARAMS
from tutorl.rl.evaluation import evaluate_model
from tutorl.rl.train import configure_threads

configure_threads()


def vec_env(name: str, n_envs: int, seed: int):
    game = get_game(name)
    return make_vec_env(lambda **_: game.make(**game.options), n_envs=n_envs, seed=seed)


def exact_return(model) -> float:
    return evaluate_model(model, get_game("blackjack"), episodes=1, seed=0).mean_return


def test_public_class_is_the_path_train_takes():
    # Same seed, same settings: the weights after learning are identical to `train`'s.
    config = RunConfig(
        env="snake", algo="ppo", tutor="expert", advice_mode="label", imitation_coef=1.0,
        steps=2048, seed=3,
    )  # fmt: skip
    summary, trained = train(config)
    model = TutoredPPO(
        "MlpPolicy", vec_env("snake", 4, 3), **DEFAULT_HYPERPARAMS["ppo"], seed=3,
        device="cpu", game="snake", tutor="expert", advice_mode="label", imitation=1.0,
        schedule=AdviceSchedule(1.0, 0.1, config.ask_decay_steps),
    )  # fmt: skip
    model.learn(2048)
    ours, theirs = model.policy.state_dict(), trained.policy.state_dict()
    assert all(th.equal(ours[k], theirs[k]) for k in theirs)
    assert model.advisor.stats.asks == summary["advice"]["tutor_asks"] > 0


def test_imitating_the_expert_beats_learning_alone_in_your_own_loop():
    # Blackjack A2C, 3,000 steps, exact evaluation: imitation of the exact expert is near the
    # optimum (-0.047) while the untutored student is still far from it.
    common = {"seed": 0, "device": "cpu", "n_steps": 8, "policy_kwargs": {"net_arch": [64, 64]}}
    alone = TutoredA2C("MlpPolicy", vec_env("blackjack", 4, 0), **common).learn(3000)
    tutored = TutoredA2C(
        "MlpPolicy", vec_env("blackjack", 4, 0), **common, game="blackjack", tutor="expert",
        advice_mode="label", imitation=1.0,
    ).learn(3000)  # fmt: skip
    assert exact_return(tutored) > -0.06
    assert exact_return(tutored) > exact_return(alone) + 0.02


def test_function_tutor_in_replace_mode_is_executed():
    # A plain function is a tutor; asked on every step, its action is what the buffer holds.
    model = TutoredDQN(
        "MlpPolicy", vec_env("blackjack", 1, 0), learning_starts=10_000, seed=0, device="cpu",
        game="blackjack", tutor=lambda view: 1, schedule=AdviceSchedule(1.0, 1.0, 0),
    )  # fmt: skip
    model.learn(300)
    assert (model.replay_buffer.actions[: model.replay_buffer.pos] == 1).all()
    # Its agreement with the exact expert is measured, as for every tutor.
    assert 0.0 < model.advisor.stats.agreement < 1.0


def test_maskable_ppo_on_connect_four_with_the_rule_tutor():
    model = TutoredMaskablePPO(
        "MlpPolicy", vec_env("connect_four", 2, 0), n_steps=64, batch_size=32, seed=0,
        device="cpu", game="connect_four", tutor="rule", advice_mode="label",
        imitation=1.0,
    )  # fmt: skip
    model.learn(256)
    assert model.imitation.applied_steps > 0
    assert len(model.imitation.store) == model.advisor.stats.advised > 0


def test_save_load_keeps_the_student_not_the_tutor(tmp_path):
    model = TutoredPPO(
        "MlpPolicy", vec_env("snake", 2, 0), n_steps=64, batch_size=32, seed=0, device="cpu",
        game="snake", tutor="expert", imitation=1.0,
    ).learn(256)  # fmt: skip
    model.save(tmp_path / "ppo.zip")
    loaded = TutoredPPO.load(tmp_path / "ppo.zip", device="cpu")
    obs = np.stack([get_game("snake").make().reset(seed=s)[0] for s in range(8)])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )
    assert loaded.advisor is None and loaded.imitation is None
    loaded.set_tutor("rule", "snake", advice_mode="label", imitation=1.0)
    loaded.set_env(vec_env("snake", 2, 1))  # after set_tutor: the tutor's views follow it
    loaded.learn(128, reset_num_timesteps=False)
    assert loaded.advisor.stats.asks > 0 and loaded.imitation.applied_steps > 0


def test_guard_needs_its_callback_and_then_stops_imitating_a_bad_tutor():
    make = lambda: TutoredA2C(  # noqa: E731
        "MlpPolicy", vec_env("blackjack", 4, 0), n_steps=8, seed=0, device="cpu",
        game="blackjack", tutor="random", advice_mode="label",
        imitation=ImitationSettings(coef=1.0, guard=True),
    )  # fmt: skip
    with pytest.raises(ValueError, match="ImitationGuard"):
        make().learn(64)
    with pytest.raises(TypeError, match="imitation=ImitationSettings"):  # the old keywords
        TutoredA2C("MlpPolicy", vec_env("blackjack", 2, 0), game="blackjack", tutor="expert",
                   imitation_coef=1.0)  # fmt: skip
    model = make().learn(3000, callback=ImitationGuard(eval_freq=500))
    imitation = model.imitation
    # The random tutor's exact return is far below an A2C student's after a few hundred steps.
    assert imitation.tutor_return < -0.2
    assert imitation.student_return > imitation.tutor_return
    assert imitation.weight() == 0.0
    # Imitated at most while the untrained student was below the tutor (here: never).
    assert imitation.applied_steps < 3000 // (4 * 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tutor": "expert"}, "needs game="),
        ({"tutor": "expert", "game": "snake", "advice_mode": "teach"}, "unknown advice mode"),
        ({"tutor": "expert", "game": "nope"}, "unknown env"),
    ],
)
def test_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TutoredPPO("MlpPolicy", vec_env("snake", 1, 0), n_steps=64, device="cpu", **kwargs)


def test_a_policy_without_the_advice_hook_is_refused():
    from stable_baselines3.common.policies import ActorCriticPolicy

    with pytest.raises(ValueError, match="advises through its policy"):
        TutoredPPO(ActorCriticPolicy, vec_env("snake", 1, 0), n_steps=64, device="cpu")
