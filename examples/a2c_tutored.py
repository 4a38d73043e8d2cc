"""A tutored A2C in one file, CleanRL style: the whole loop visible, no tutorl machinery.

What tutorl's ``TutoredA2C(..., tutor=..., advice_mode="label", imitation=1.0)`` does
inside Stable-Baselines3, written out on Blackjack (exact evaluation, known optimum −0.0466):

1. the student acts; with a probability that decays over training it *asks* the tutor about the
   state (Toral & Lazebnik's schedule);
2. ``label`` mode: the advice is not executed, it is kept as a label (observation, advised
   action) in an advice store — the LLM4Teach/DAgger way;
3. each update adds ``λ · −log π(a_T | s)`` on a minibatch of that store to A2C's own loss.

    python examples/a2c_tutored.py                      # tutored by the exact expert
    python examples/a2c_tutored.py --tutor none         # the untutored reference
    python examples/a2c_tutored.py --tutor rule         # Blackjack's dealer-blind rule

Swap ``tutor`` for any function of the state: an LLM tutor is ``tutorl.tutor.make_tutor("llm",
game)`` and its ``advise(views)``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from tutorl.envs import get_game


def one_hot(obs: np.ndarray, nvec: np.ndarray) -> torch.Tensor:
    """Blackjack's (sum, dealer card, usable ace) as concatenated one-hot vectors, as SB3 does."""
    parts = [nn.functional.one_hot(torch.as_tensor(obs[:, i]), int(n)) for i, n in enumerate(nvec)]
    return torch.cat(parts, dim=1).float()


class ActorCritic(nn.Module):
    def __init__(self, n_inputs: int, n_actions: int) -> None:
        super().__init__()
        self.actor = nn.Sequential(
            nn.Linear(n_inputs, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
            nn.Linear(64, n_actions),
        )  # fmt: skip
        self.critic = nn.Sequential(
            nn.Linear(n_inputs, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
        )

    def dist(self, x: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.actor(x))


def run(
    tutor: str = "expert",
    steps: int = 5_000,
    seed: int = 0,
    n_envs: int = 4,
    n_steps: int = 8,
    imitation_coef: float = 1.0,
    ask_start: float = 1.0,
    ask_end: float = 0.1,
    ask_decay: float = 0.2,
) -> float:
    """Train and return the greedy policy's exact expected return."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    game = get_game("blackjack")
    advise = {"expert": game.expert, "rule": game.rule, "none": None}[tutor]
    envs = gym.vector.SyncVectorEnv([lambda: game.make() for _ in range(n_envs)])
    nvec = envs.single_observation_space.nvec
    net = ActorCritic(int(nvec.sum()), int(envs.single_action_space.n))
    optimizer = torch.optim.RMSprop(net.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    store_obs: list[np.ndarray] = []  # the advice store: states the tutor labelled ...
    store_act: list[int] = []  # ... and the actions it advised
    obs, _ = envs.reset(seed=seed)
    step = 0
    while step < steps:
        # -- collect n_steps × n_envs transitions; the student acts, the tutor only labels --
        batch_obs, batch_act, batch_rew, batch_done = [], [], [], []
        for _ in range(n_steps):
            p_ask = ask_start + (ask_end - ask_start) * min(1.0, step / (ask_decay * steps))
            for i in range(n_envs):
                if advise is not None and rng.random() < p_ask:
                    store_obs.append(obs[i].copy())
                    store_act.append(int(advise(obs[i])))  # the tutor sees the state
            with torch.no_grad():
                action = net.dist(one_hot(obs, nvec)).sample().numpy()
            next_obs, reward, terminated, truncated, _ = envs.step(action)
            batch_obs.append(obs)
            batch_act.append(action)
            batch_rew.append(reward)
            batch_done.append(terminated | truncated)
            obs = next_obs
            step += n_envs
        # -- n-step returns, bootstrapped from the critic (Blackjack ends within a few steps) --
        with torch.no_grad():
            ret = net.critic(one_hot(obs, nvec)).squeeze(1).numpy()
        returns = []
        for reward, done in zip(reversed(batch_rew), reversed(batch_done), strict=True):
            ret = reward + 0.99 * ret * (1.0 - done)
            returns.append(ret)
        returns = torch.as_tensor(np.array(returns[::-1]), dtype=torch.float32).reshape(-1)
        x = one_hot(np.concatenate(batch_obs), nvec)
        actions = torch.as_tensor(np.concatenate(batch_act))
        dist, values = net.dist(x), net.critic(x).squeeze(1)
        advantage = returns - values.detach()
        # -- A2C's loss, exactly as SB3 weighs it (vf_coef 0.5, ent_coef 0.01) --
        loss = (
            -(advantage * dist.log_prob(actions)).mean()
            + 0.5 * (returns - values).pow(2).mean()
            - 0.01 * dist.entropy().mean()
        )
        # -- the imitation term: -log π(a_T|s) on 64 labelled states --
        if store_act and imitation_coef > 0:
            index = rng.integers(0, len(store_act), size=64)
            labelled = one_hot(np.array(store_obs)[index], nvec)
            advised = torch.as_tensor(np.array(store_act)[index])
            loss = loss - imitation_coef * net.dist(labelled).log_prob(advised).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()
    envs.close()

    def greedy(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net.actor(one_hot(np.asarray(batch), nvec)).argmax(dim=1).numpy()

    mean_return, _ = game.exact_evaluator(greedy)
    return float(mean_return)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tutor", choices=["expert", "rule", "none"], default="expert")
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--imitation-coef", type=float, default=1.0)
    args = parser.parse_args()
    value = run(args.tutor, args.steps, args.seed, imitation_coef=args.imitation_coef)
    print(f"tutor={args.tutor} steps={args.steps} seed={args.seed}: exact return {value:+.4f}")
