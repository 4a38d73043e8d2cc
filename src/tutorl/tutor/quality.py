"""How good is a tutor? Agreement with the expert over sampled reachable states.

States are sampled by playing the game with a behaviour policy that mixes the expert and uniform
random legal moves (half each, per step), so the sample holds both the positions a learner
reaches and the positions good play leads to. Same seed, same states.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tutorl.envs.base import Game, View
from tutorl.tutor.base import Tutor


def sample_states(
    game: Game, n: int, seed: int = 0, keep: float = 0.3, env_options: dict | None = None
) -> list[tuple[np.ndarray, View]]:
    """``n`` (observation, view) pairs from seeded episodes of an expert/random mixture.

    :param keep: probability of keeping each visited state (spreads the sample over episodes).
    """
    rng = np.random.default_rng(seed)
    env = game.make(**{**game.options, **(env_options or {})})
    states: list[tuple[np.ndarray, View]] = []
    episode = 0
    while len(states) < n:
        obs, _ = env.reset(seed=seed * 100_003 + episode)
        episode += 1
        done = False
        while not done and len(states) < n:
            view = env.get_wrapper_attr("tutor_view")() if game.view_from_env else obs
            if rng.random() < keep:
                states.append((np.array(obs, copy=True), view))
            if rng.random() < 0.5:
                action = int(game.expert(view))
            else:
                action = int(rng.choice(game.legal_actions(view)))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return states


@dataclass
class TutorQuality:
    """A tutor's measured quality on one game."""

    env: str
    tutor: str
    states: int
    agreement: float
    agreement_ci95: tuple[float, float]
    base_rate: float
    fallbacks: int
    action_shares: dict[str, float]
    latency_p50: float
    latency_p90: float
    latency_p99: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    z = 1.96
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def evaluate_tutor(
    game: Game,
    tutor: Tutor,
    n_states: int = 200,
    seed: int = 0,
    batch_size: int = 8,
    env_options: dict | None = None,
    rule: Tutor | None = None,
) -> TutorQuality:
    """Agreement of ``tutor`` with the game's expert over ``n_states`` sampled states.

    ``base_rate`` is the agreement of a tutor that always answers the expert's most frequent
    action on this sample: a tutor at or below it has shown no understanding of the game.
    With ``rule`` (the game's rule baseline), ``extra`` also holds the rule's agreement with the
    expert on the same states and the share of states where the tutor answered as the rule did
    (an LLM that only matches the rule has learned nothing beyond it). A scoring LLM tutor's
    median ``label_mass`` (the legal labels' total probability under the model) is in ``extra``
    too: below ~0.1 its answers are tail noise.
    """
    states = sample_states(game, n_states, seed, env_options=env_options)
    views = [view for _, view in states]
    experts = [int(game.expert(view)) for view in views]
    answers: list[int] = []
    masses: list[float] = []
    latencies: list[float] = []
    fallbacks = 0
    start = time.perf_counter()
    for lo in range(0, len(views), batch_size):
        batch = views[lo : lo + batch_size]
        batch_start = time.perf_counter()
        advice = tutor.advise(batch)
        per_state = (time.perf_counter() - batch_start) / len(batch)
        for item in advice:
            answers.append(item.action)
            if "label_mass" in item.extra:
                masses.append(float(item.extra["label_mass"]))
            latencies.append(per_state)
            fallbacks += item.source == "fallback"
    seconds = time.perf_counter() - start
    agree = sum(a == e for a, e in zip(answers, experts, strict=True))
    counts = np.bincount(experts, minlength=game.n_actions)
    shares = np.bincount([a for a in answers if a >= 0], minlength=game.n_actions) / len(answers)
    lat = np.array(latencies)
    extra: dict[str, Any] = {}
    if masses:
        extra["label_mass_median"] = float(np.median(masses))
    if rule is not None:
        ruled = [item.action for item in rule.advise(views)]
        extra["rule_agreement"] = sum(r == e for r, e in zip(ruled, experts, strict=True)) / len(
            views
        )
        extra["same_as_rule"] = sum(a == r for a, r in zip(answers, ruled, strict=True)) / len(
            views
        )
    return TutorQuality(
        env=game.name,
        tutor=tutor.name,
        states=len(views),
        agreement=agree / len(views),
        agreement_ci95=_wilson(agree, len(views)),
        base_rate=float(counts.max() / counts.sum()),
        fallbacks=fallbacks,
        action_shares={
            game.action_names[a]: round(float(s), 3) for a, s in enumerate(shares) if s > 0
        },
        latency_p50=float(np.percentile(lat, 50)),
        latency_p90=float(np.percentile(lat, 90)),
        latency_p99=float(np.percentile(lat, 99)),
        seconds=seconds,
        extra=extra,
    )
