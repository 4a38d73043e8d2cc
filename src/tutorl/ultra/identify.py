"""ULTRA, step one: a language model names the critical steps of an agent's episode.

An episode arrives as text chunks (numbered steps, each with the state the agent saw, the action
it took and the reward it got). For each chunk the model answers one JSON object::

    {"critical": [{"step": 12, "action": "stick", "reward": -0.8,
                   "rationale": "Hitting on 19 against a 6 risks a bust for little gain."}]}

naming the *critical* steps: steps where the choice of action strongly changes the return that
follows (the agent's action there may have been a mistake). For each one it gives the action
the agent *should* take there (one of the game's action names; for a continuous game such as
Hopper, an array of one number per action component, e.g. ``"action": [0.4, -0.8, 0.1]``,
each inside the game's ``action_bounds``), an *implicit reward* in
``[-1, 1]`` judging the action the agent *did* take (``-1`` a clear mistake, ``+1`` clearly
right) and a short rationale.

The answer is untrusted text. It is only ever parsed as JSON (never evaluated), validated
with pydantic and checked against the chunk (steps inside its range, known action names,
rewards inside ``[-1, 1]``, continuous actions of the right length inside their bounds, all
rejected rather than clipped); an invalid answer is re-asked with a
new seed and a sampling temperature (a cached bad answer is never replayed: the response cache
keys on the request, seed and temperature included), and after ``max_attempts`` invalid
answers the chunk is skipped and counted. Backends that support it constrain decoding with the
JSON Schema of :func:`schema_for` (llama.cpp grammars, structured-output endpoints), so most
answers are valid at the first attempt; validation does not rely on it.

.. code-block:: python

    from tutorl.envs import get_game
    from tutorl.llm import make_llm
    from tutorl.ultra.identify import identify

    result = identify(make_llm("smollm2-135m"), get_game("blackjack"), chunks)
    for item in result.critical:
        print(item.step, item.action, item.reward, item.rationale)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tutorl.envs.base import Game
from tutorl.llm.base import LLM, GenerateRequest, LLMError, LLMUnavailableError

#: Hard cap on critical steps in one answer (the schema asks for at most ``max_critical``).
MAX_CRITICAL = 10
#: Longest rationale accepted, in characters.
MAX_RATIONALE = 300
#: Longest answer text examined for a JSON object, in characters.
MAX_ANSWER_CHARS = 20_000
#: Step ranges up to this size are an ``enum`` in the schema (a grammar can enforce it);
#: longer ranges use ``minimum``/``maximum`` (which llama.cpp's converter does not enforce).
MAX_STEP_ENUM = 256
#: Temperature of re-asks (the first ask is greedy).
REASK_TEMPERATURE = 0.7


class IdentificationError(ValueError):
    """An answer that is not a valid identification for its chunk.

    :param reason: Short machine-readable cause, the key in
        :attr:`IdentifyResult.failures_by_reason` (``no_json``, ``not_object``, ``schema``,
        ``step_range``, ``unknown_action``, ``reward_range``, ``too_many``, ...).
    :param detail: One human-readable line.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CriticalStep(BaseModel):
    """One critical step as the model names it.

    :param step: The step number, as printed in the chunk.
    :param action: The action the agent should take there (an action name of the game, or a
        list of numbers for a continuous game; checked against the game by
        :func:`parse_identification`).
    :param reward: Implicit reward of the agent's own action at that step, in ``[-1, 1]``.
    :param rationale: Why, in one short sentence.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int
    action: str | list[float]
    reward: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    rationale: str = Field(max_length=MAX_RATIONALE)

    @field_validator("action", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # An action vector holds JSON numbers: no booleans, no numeric strings.
        if isinstance(value, list) and not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value
        ):
            raise ValueError("an action vector holds numbers only")
        return value

    @field_validator("step", "reward", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        # JSON true/false are not numbers, whatever Python's bool subclassing says.
        if isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        return value


class Identification(BaseModel):
    """The model's whole answer for one chunk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    critical: list[CriticalStep] = Field(max_length=MAX_CRITICAL)


def schema_for(
    game: Game, first_step: int, last_step: int, max_critical: int = 5
) -> dict[str, Any]:
    """The JSON Schema of an answer for a chunk of steps ``first_step..last_step``.

    Hand-written to stay small (small models follow it under a grammar, and it is what OpenAI's
    strict mode accepts: every property required, no additional properties). ``action`` is an
    enum of the game's action names, or for a continuous game an array of exactly
    ``game.n_actions`` numbers within ``game.action_bounds``; ``step`` an enum of the chunk's
    steps (or a
    ``minimum``/``maximum`` range above :data:`MAX_STEP_ENUM` steps). Properties are in the
    order the model should write them.

    :param game: The game (its action names).
    :param first_step: First step number of the chunk.
    :param last_step: Last step number of the chunk (inclusive).
    :param max_critical: Most critical steps the answer may name (at most
        :data:`MAX_CRITICAL`).
    :raises ValueError: An empty step range or a bad ``max_critical``.
    """
    _check_range(first_step, last_step)
    if not 1 <= max_critical <= MAX_CRITICAL:
        raise ValueError(f"max_critical must be in 1..{MAX_CRITICAL}, got {max_critical}")
    if last_step - first_step + 1 <= MAX_STEP_ENUM:
        step: dict[str, Any] = {"type": "integer", "enum": list(range(first_step, last_step + 1))}
    else:
        step = {"type": "integer", "minimum": first_step, "maximum": last_step}
    action: dict[str, Any] = {"type": "string", "enum": list(game.action_names)}
    if game.continuous:
        low, high = game.action_bounds
        action = {
            "type": "array",
            "items": {"type": "number", "minimum": low, "maximum": high},
            "minItems": game.n_actions,
            "maxItems": game.n_actions,
        }
    item = {
        "type": "object",
        "properties": {
            "step": step,
            "action": action,
            "reward": {"type": "number", "minimum": -1, "maximum": 1},
            "rationale": {"type": "string", "maxLength": MAX_RATIONALE},
        },
        "required": ["step", "action", "reward", "rationale"],
        "additionalProperties": False,
    }
    return {
        "title": "critical_steps",
        "type": "object",
        "properties": {"critical": {"type": "array", "items": item, "maxItems": max_critical}},
        "required": ["critical"],
        "additionalProperties": False,
    }


def build_prefix(game: Game, max_critical: int = 5) -> str:
    """The fixed instructions, the same for every chunk of a game (its KV cache is reused).

    :param game: The game (rules and action names).
    :param max_critical: Most critical steps asked for per chunk.
    """
    names = ", ".join(f'"{name}"' for name in game.action_names)
    example_action: Any = game.action_names[0]
    actions_line = f"Actions: {names}.\n\n"
    action_item = f"- action: the best action at that step, one of {names};\n"
    if game.continuous:
        low, high = game.action_bounds
        plain = ", ".join(game.action_names)
        example_action = [round(low + (high - low) * f, 2) for f in (0.7, 0.1, 0.5)][
            : game.n_actions
        ]
        example_action += [0.0] * (game.n_actions - len(example_action))
        actions_line = (
            f"Actions: {game.n_actions} numbers, each from {low:g} to {high:g}, in this order: "
            f"{plain}.\n\n"
        )
        action_item = (
            f"- action: the best action at that step, an array of {game.n_actions} numbers from "
            f"{low:g} to {high:g} ({plain});\n"
        )
    example = json.dumps(
        {
            "critical": [
                {
                    "step": 3,
                    "action": example_action,
                    "reward": -0.5,
                    "rationale": "One short sentence.",
                }
            ]
        }
    )
    return (
        f"You review one episode of an agent playing {game.name.replace('_', ' ')}.\n"
        f"Rules: {game.rules}\n"
        f"{actions_line}"
        "The episode is given as numbered steps: the state the agent saw, the action it took "
        "and the reward it received.\n"
        "A critical step is a step where the choice of action strongly changes the future "
        "return; the agent's action there may have been a mistake.\n"
        f"Name the critical steps of the episode (at most {max_critical}, fewer if few steps "
        "matter). For each one give:\n"
        "- step: the step number as written in the episode;\n"
        f"{action_item}"
        "- reward: a number from -1 to 1 judging the action the agent took there (-1 a clear "
        "mistake, 0 neutral, 1 clearly right);\n"
        "- rationale: one short sentence.\n"
        "Answer with one JSON object and nothing else, like:\n"
        f"{example}\n\n"
        "Episode:\n"
    )


def build_text(chunk_text: str, first_step: int, last_step: int) -> str:
    """The chunk-specific part of the prompt: the episode text and a closing instruction."""
    return (
        f"{chunk_text.rstrip()}\n\n"
        f"Critical steps among steps {first_step} to {last_step}, as one JSON object:"
    )


# --------------------------------------------------------------------------------------------
# Parsing untrusted answers
# --------------------------------------------------------------------------------------------


def _first_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (prose and code fences around it are skipped).

    A JSON array found first is skipped as a whole (objects inside it are not taken), so an
    answer that is an array is rejected as ``not_object`` rather than half-read.
    """
    decoder = json.JSONDecoder()
    saw_array = False
    pos, n = 0, len(text)
    while pos < n:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        if isinstance(value, dict):
            return value
        saw_array = True
        pos = end
    if saw_array:
        raise IdentificationError("not_object", "the answer is a JSON array, not an object")
    raise IdentificationError("no_json", "no JSON object in the answer")


def _schema_reason(error: ValidationError) -> IdentificationError:
    first = error.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    kind = str(first.get("type", ""))
    if loc.endswith("reward") and kind in ("greater_than_equal", "less_than_equal"):
        return IdentificationError("reward_range", f"{loc}: {first.get('msg', '')}")
    if loc == "critical" and kind == "too_long":
        return IdentificationError("too_many", f"more than {MAX_CRITICAL} critical steps")
    return IdentificationError("schema", f"{loc or 'answer'}: {first.get('msg', kind)}")


def parse_identification(
    text: str,
    game: Game,
    first_step: int,
    last_step: int,
    max_critical: int = MAX_CRITICAL,
) -> Identification:
    """Validate a model's answer for the chunk of steps ``first_step..last_step``.

    The first JSON object in ``text`` is read (prose and code fences around it are tolerated;
    nothing is ever evaluated), validated with :class:`Identification` and checked against the
    chunk. Action names match case-insensitively and come back in the game's spelling; a
    continuous game's action must be a list of exactly ``game.n_actions`` numbers within
    ``game.action_bounds`` (``action_length``, ``action_range``; a name there, or a list for a
    discrete game, is a ``schema`` error); a step named twice keeps its first entry.

    :param text: The model's answer (untrusted).
    :param game: The game (its action names).
    :param first_step: First step number of the chunk.
    :param last_step: Last step number of the chunk (inclusive).
    :param max_critical: Most critical steps accepted (after removing repeated steps).
    :raises IdentificationError: The answer is unusable; ``reason`` says why.
    """
    _check_range(first_step, last_step)
    if not isinstance(text, str):
        raise IdentificationError("not_text", f"answer is a {type(text).__name__}")
    obj = _first_json_object(text[:MAX_ANSWER_CHARS])
    try:
        answer = Identification.model_validate(obj)
    except ValidationError as error:
        raise _schema_reason(error) from None
    by_name = {name.lower(): name for name in game.action_names}
    kept: list[CriticalStep] = []
    seen: set[int] = set()
    for item in answer.critical:
        if not first_step <= item.step <= last_step:
            raise IdentificationError(
                "step_range", f"step {item.step} is outside {first_step}..{last_step}"
            )
        action = _checked_action(game, item.action, by_name)
        if item.step in seen:
            continue
        seen.add(item.step)
        kept.append(item.model_copy(update={"action": action}))
    if len(kept) > max_critical:
        raise IdentificationError("too_many", f"{len(kept)} critical steps, at most {max_critical}")
    return Identification(critical=kept)


def _checked_action(game: Game, action: str | list[float], by_name: dict[str, str]) -> Any:
    """The action in the game's form (its spelling of a name, or the list of numbers)."""
    if game.continuous:
        if not isinstance(action, list):
            raise IdentificationError(
                "schema", f"action: an array of {game.n_actions} numbers, got {action[:40]!r}"
            )
        if len(action) != game.n_actions:
            raise IdentificationError(
                "action_length", f"{len(action)} action components, expected {game.n_actions}"
            )
        low, high = game.action_bounds
        if not all(low <= x <= high for x in action):  # NaN fails too
            raise IdentificationError(
                "action_range", f"action {action} is outside [{low:g}, {high:g}]"
            )
        return [float(x) for x in action]
    if not isinstance(action, str):
        raise IdentificationError("schema", "action: an action name, got an array")
    name = by_name.get(action.strip().lower())
    if name is None:
        raise IdentificationError("unknown_action", f"{action[:40]!r} is not an action")
    return name


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Critical:
    """One validated critical step.

    :param chunk: Index of its chunk in the ``chunks`` given to :func:`identify`.
    :param step: The step number.
    :param action: Index of the suggested action in ``game.action_names``; for a continuous
        game, the suggested vector as a tuple of floats.
    :param reward: Implicit reward of the agent's own action, in ``[-1, 1]``.
    :param rationale: The model's reason.
    """

    chunk: int
    step: int
    action: int | tuple[float, ...]
    reward: float
    rationale: str


@dataclass
class ChunkStatus:
    """What happened to one chunk.

    :param chunk: Its index.
    :param first_step: First step number.
    :param last_step: Last step number.
    :param status: ``"valid"`` or ``"skipped"`` (no valid answer in ``max_attempts``).
    :param attempts: Requests made for it.
    :param n_critical: Critical steps kept from its answer.
    :param reasons: Failure reason of each failed attempt, in order.
    """

    chunk: int
    first_step: int
    last_step: int
    status: str = "skipped"
    attempts: int = 0
    n_critical: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class IdentifyResult:
    """Everything :func:`identify` found, and what it cost.

    :param critical: Validated critical steps, by chunk then in the model's order.
    :param statuses: Per-chunk status, in the order of the chunks given.
    :param reasked: Re-ask requests sent (attempts after the first, over all chunks).
    :param failures_by_reason: Failed attempts by reason (an :class:`IdentificationError`
        reason, or ``backend:<error type>`` for a backend error).
    :param seconds: Wall time.
    """

    critical: list[Critical] = field(default_factory=list)
    statuses: list[ChunkStatus] = field(default_factory=list)
    reasked: int = 0
    failures_by_reason: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def chunks(self) -> int:
        """Chunks given."""
        return len(self.statuses)

    @property
    def valid(self) -> int:
        """Chunks with a valid answer."""
        return sum(1 for s in self.statuses if s.status == "valid")

    @property
    def skipped(self) -> int:
        """Chunks skipped after ``max_attempts`` failed attempts."""
        return sum(1 for s in self.statuses if s.status == "skipped")

    def counters(self) -> dict[str, Any]:
        """The counters as a plain dict (for JSON summaries)."""
        return {
            "chunks": self.chunks,
            "valid": self.valid,
            "reasked": self.reasked,
            "skipped": self.skipped,
            "failures_by_reason": dict(self.failures_by_reason),
            "critical": len(self.critical),
            "seconds": round(self.seconds, 3),
        }


def _check_range(first_step: int, last_step: int) -> None:
    if not (isinstance(first_step, int) and isinstance(last_step, int)):
        raise TypeError("step numbers must be integers")
    if last_step < first_step:
        raise ValueError(f"empty step range {first_step}..{last_step}")


def _chunk_fields(chunk: Any) -> tuple[int, int, str]:
    """``(first_step, last_step, text)`` of a chunk object or mapping."""
    if isinstance(chunk, Mapping):
        first, last, text = chunk["first_step"], chunk["last_step"], chunk["text"]
    else:
        first, last, text = chunk.first_step, chunk.last_step, chunk.text
    first, last = int(first), int(last)
    _check_range(first, last)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a chunk needs a non-empty text")
    return first, last, text


def _ask(llm: LLM, requests: list[GenerateRequest]) -> list[str | LLMError]:
    """Answers of a batch; a failing batch is retried request by request so one bad request
    (say, too long for the context) does not fail the others. A backend that is unreachable is
    not called again within the batch."""
    try:
        texts = list(llm.generate(requests))
        if len(texts) != len(requests):
            raise LLMError(f"backend returned {len(texts)} answers for {len(requests)}")
        return texts
    except LLMError as error:
        if len(requests) == 1:
            return [error]
        batch_error = error
    out: list[str | LLMError] = []
    for request in requests:
        if isinstance(batch_error, LLMUnavailableError):
            out.append(batch_error)
            continue
        try:
            texts = list(llm.generate([request]))
            if len(texts) != 1:
                raise LLMError(f"backend returned {len(texts)} answers for 1")
            out.append(texts[0])
        except LLMError as error:
            out.append(error)
            if isinstance(error, LLMUnavailableError):
                batch_error = error
    return out


def identify(
    llm: LLM,
    game: Game,
    chunks: Sequence[Any],
    max_attempts: int = 3,
    seed: int = 0,
    max_tokens: int = 400,
    max_critical: int = 5,
    structured: bool = True,
) -> IdentifyResult:
    """Ask ``llm`` for the critical steps of every chunk; never fails on the model's answers.

    All chunks' first requests go in one ``llm.generate`` call (greedy, ``seed``); chunks whose
    answer is invalid are re-asked together, each round with ``seed + attempt`` and temperature
    :data:`REASK_TEMPERATURE`, so the response cache cannot replay the bad answer. A backend
    :class:`~tutorl.llm.base.LLMError` counts as a failed attempt of the chunks it hit. After
    ``max_attempts`` failed attempts a chunk is skipped and counted.

    :param llm: Any object with ``generate(requests) -> list[str]`` (backends, ``CachedLLM``);
        backends without structured output simply ignore the schema.
    :param game: The game (rules and action names).
    :param chunks: Objects or mappings with ``first_step``, ``last_step`` and ``text``.
    :param max_attempts: Requests per chunk at most (first ask included).
    :param seed: Seed of the first ask; re-asks use ``seed + attempt``.
    :param max_tokens: Token budget of one answer.
    :param max_critical: Most critical steps asked for and accepted per chunk.
    :param structured: Send the JSON Schema with each request (constrained decoding where the
        backend supports it).
    :raises ValueError: ``max_attempts < 1``, a bad ``max_critical`` or a malformed chunk.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if not 1 <= max_critical <= MAX_CRITICAL:
        raise ValueError(f"max_critical must be in 1..{MAX_CRITICAL}, got {max_critical}")
    start = time.perf_counter()
    prefix = build_prefix(game, max_critical)
    fields = [_chunk_fields(chunk) for chunk in chunks]
    schemas = [
        json.dumps(schema_for(game, first, last, max_critical)) if structured else None
        for first, last, _ in fields
    ]
    result = IdentifyResult(
        statuses=[ChunkStatus(i, first, last) for i, (first, last, _) in enumerate(fields)]
    )
    answers: dict[int, Identification] = {}
    pending = list(range(len(fields)))
    for attempt in range(max_attempts):
        if not pending:
            break
        requests = [
            GenerateRequest(
                prefix,
                build_text(fields[i][2], fields[i][0], fields[i][1]),
                max_tokens=max_tokens,
                temperature=0.0 if attempt == 0 else REASK_TEMPERATURE,
                seed=seed + attempt,
                json_schema=schemas[i],
            )
            for i in pending
        ]
        if attempt > 0:
            result.reasked += len(requests)
        replies = _ask(llm, requests)
        still = []
        for i, reply in zip(pending, replies, strict=True):
            status = result.statuses[i]
            status.attempts += 1
            try:
                if isinstance(reply, LLMError):
                    raise IdentificationError(f"backend:{type(reply).__name__}", str(reply))
                first, last, _ = fields[i]
                answers[i] = parse_identification(reply, game, first, last, max_critical)
            except IdentificationError as error:
                status.reasons.append(error.reason)
                result.failures_by_reason[error.reason] += 1
                still.append(i)
                continue
            status.status = "valid"
        pending = still
    index = {name: a for a, name in enumerate(game.action_names)}

    def action_of(item: CriticalStep) -> int | tuple[float, ...]:
        if game.continuous:
            return tuple(float(x) for x in item.action)
        return index[item.action]

    for i in sorted(answers):
        items = answers[i].critical
        result.statuses[i].n_critical = len(items)
        result.critical.extend(
            Critical(i, item.step, action_of(item), float(item.reward), item.rationale)
            for item in items
        )
    result.seconds = time.perf_counter() - start
    return result
