"""State interpretation: an episode as text an LLM can read, in chunks that fit its context.

Each step becomes one numbered line, ``Step {t}: {state} Action: {name}. Reward: {r:+g}.``,
where the state is the game's describer text collapsed onto one line. Long episodes are cut
into chunks of whole lines, each headed by the episode's seed, the chunk's step range and the
episode's final return (an LLM judging a chunk in the middle of a game still knows how it ended).
A continuous action (Hopper) is written component by component, ``Action: thigh +0.31, leg
-0.80, foot +0.05.`` (ASCII minus signs: the model answers with JSON numbers, which use them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tutorl.envs.base import Game
from tutorl.ultra.trajectories import Episode, Step

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """A rough token count, ``len(text) // 4 + 1``.

    About four characters per token is typical of English text under BPE tokenizers; game
    descriptions full of digits and punctuation run denser, so pass a real tokenizer's counter
    where the budget matters.

    :param text: any text.
    :return: the approximate number of tokens.
    """
    return len(text) // 4 + 1


def action_name(game: Game, action: Any) -> str:
    """The name of ``action`` (``"action {a}"`` for an index the game does not name).

    For a continuous game, the vector component by component, two decimals with their sign:
    ``"thigh +0.31, leg -0.80, foot +0.05"``.

    :param game: the game.
    :param action: an action index, or a vector for a continuous game.
    :return: its name.
    """
    if game.continuous:
        vector = np.asarray(action, dtype=float).reshape(-1)
        names = list(game.action_names)
        names += [f"component {i}" for i in range(len(names), len(vector))]
        # round first, + 0.0: no "-0.00"
        return ", ".join(
            f"{name} {round(float(x), 2) + 0.0:+.2f}"
            for name, x in zip(names, vector, strict=False)
        )
    return game.action_names[action] if 0 <= action < len(game.action_names) else f"action {action}"


def step_line(game: Game, step: Step) -> str:
    """One step as a single line of text.

    :param game: the game (describer and action names).
    :param step: the step.
    :return: ``"Step {t}: {description} Action: {name}. Reward: {r:+g}."``, whitespace of the
        description (which may span several lines) collapsed to single spaces.
    """
    state = " ".join(game.describe(step.view).split())
    action = action_name(game, step.action)
    return f"Step {step.t}: {state} Action: {action}. Reward: {step.reward:+g}."


def episode_lines(game: Game, episode: Episode) -> list[str]:
    """Every step of ``episode`` as one line (see :func:`step_line`), in order.

    :param game: the game.
    :param episode: the episode.
    :return: one line per step.
    """
    return [step_line(game, step) for step in episode.steps]


def chunk_header(episode: Episode, first_step: int, last_step: int) -> str:
    """The header line of a chunk.

    :param episode: the episode.
    :param first_step: ``t`` of the chunk's first step (0-based).
    :param last_step: ``t`` of its last step.
    :return: ``"Episode (seed {seed}), steps {a}-{b} of {n}, final return {R:+g}:"``, ``n``
        the episode's length (so the last step of a whole episode is ``n - 1``).
    """
    return (
        f"Episode (seed {episode.seed}), steps {first_step}-{last_step} of {episode.length}, "
        f"final return {episode.total_return:+g}:"
    )


@dataclass
class Chunk:
    """A run of consecutive steps of one episode as text.

    :param first_step: ``t`` of the first step in the chunk.
    :param last_step: ``t`` of the last step in the chunk (inclusive).
    :param text: the header and the steps' lines, joined with newlines.
    :param tokens: the token count of ``text`` under the counter that built the chunk.
    """

    first_step: int
    last_step: int
    text: str
    tokens: int = 0


def chunk_episode(
    game: Game,
    episode: Episode,
    max_tokens: int = 1500,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Cut an episode's text into chunks of at most ``max_tokens`` tokens.

    Every step appears in exactly one chunk, in order, and lines are never split: a chunk holds
    as many whole lines as fit, and a line that does not fit the budget even alone (with its
    header) becomes a chunk of its own, over budget, rather than being dropped.

    Lines are first packed by the sum of their separate counts, then each chunk is checked with
    a count of its whole text and shortened line by line until it fits, so the budget holds for
    any counter, not only additive ones.

    :param game: the game.
    :param episode: the episode.
    :param max_tokens: the budget per chunk, header included.
    :param count_tokens: ``count(text) -> tokens``; default :func:`approx_tokens` (an
        approximation; pass a real tokenizer's counter where it matters).
    :return: the chunks, in step order; none for an empty episode.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    count = count_tokens or approx_tokens
    lines = episode_lines(game, episode)
    steps = episode.steps
    costs = [count(line + "\n") for line in lines]
    chunks: list[Chunk] = []
    start = 0
    while start < len(lines):
        # Estimate: the widest header this episode can have, plus the lines' own counts.
        budget = max_tokens - count(chunk_header(episode, steps[start].t, steps[-1].t) + "\n")
        end, used = start + 1, costs[start]
        while end < len(lines) and used + costs[end] <= budget:
            used += costs[end]
            end += 1
        # Check with the real count of the whole text; drop lines (never the first) until it fits.
        while True:
            header = chunk_header(episode, steps[start].t, steps[end - 1].t)
            text = "\n".join([header, *lines[start:end]])
            tokens = count(text)
            if tokens <= max_tokens or end == start + 1:
                break
            end -= 1
        chunks.append(Chunk(steps[start].t, steps[end - 1].t, text, tokens))
        start = end
    return chunks


def episode_text(game: Game, episode: Episode) -> str:
    """The whole episode as one text: the header and every step's line.

    :param game: the game.
    :param episode: the episode.
    :return: the text (just the header for an empty episode).
    """
    last = episode.steps[-1].t if episode.steps else -1
    return "\n".join([chunk_header(episode, 0, last), *episode_lines(game, episode)])


__all__ = [
    "Chunk",
    "action_name",
    "approx_tokens",
    "chunk_episode",
    "chunk_header",
    "episode_lines",
    "episode_text",
    "step_line",
]
