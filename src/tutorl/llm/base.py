"""The LLM contract shared by every backend, and the prompt formats.

This layer knows nothing about reinforcement learning or games: a request is a fixed
instruction ``prefix``, a state-specific ``text`` and, for scoring, a list of candidate answer
labels. Backends return log-probabilities (``score``) or text (``generate``), one call for a
whole batch of requests.

Scoring semantics (all backends)
--------------------------------
``score`` returns, for each choice, the log-probability that the model's answer *is* that
choice, read as *constrained decoding* over the set of choices: walking the choices' token
sequences as a tree, a choice's score is the sum of the log-probabilities of its tokens up to
(and including) the first token that no other choice shares; after that token the rest of the
choice is forced, so it adds nothing. When every choice starts with a different token (the
usual case: ``"hit"``/``"stick"``, ``"0"``..``"6"``) this is exactly the next-token
log-probability of each choice's first token, read from the one forward pass over the prompt.
When first tokens collide, the backend extends the shared path by one token at a time
(reusing the prompt's key/value cache) until the choices separate. A choice whose token
sequence is a strict prefix of another's (``"1"`` and ``"10"``) gets the probability of
stopping there, i.e. of *not* continuing into any of the longer choices. The events are
disjoint, so the exponentials of a request's scores sum to at most 1; the remainder is the
probability the model would have said something else. Scoring never "fails to parse".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: Smallest probability reported for a choice (log of it is about -69): scores stay finite.
MIN_PROB = 1e-30


class LLMError(RuntimeError):
    """A backend could not answer (server down, timeout, malformed answer, prompt too long).

    The tutor layer catches this type, counts a failure and falls back; nothing else escapes a
    backend for a well-formed request.
    """


class LLMUnavailableError(LLMError):
    """The model could not be reached: connection refused, timeout, or server errors after
    the bounded retries."""


class LLMResponseError(LLMError):
    """The model answered, but the answer was unusable (malformed JSON, missing fields, no
    log-probabilities, an HTTP 4xx)."""


def _as_str_tuple(values: Sequence[str] | str, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    out = tuple(values)
    if not all(isinstance(v, str) for v in out):
        raise TypeError(f"{what} must be strings, got {out!r}")
    return out


@dataclass(frozen=True)
class ScoreRequest:
    """Score candidate answers as continuations of a prompt.

    :param prefix: Fixed instructions, identical across requests (its key/value cache is reused).
    :param text: The state-specific part, appended after ``prefix``.
    :param choices: Candidate answer labels (non-empty, distinct).
    :param response_prefix: Text the answer starts with, placed after the chat template's
        assistant header (for example ``"<action>"``); the choices continue it.
    """

    prefix: str
    text: str
    choices: tuple[str, ...]
    response_prefix: str = ""

    def __post_init__(self) -> None:
        choices = _as_str_tuple(self.choices, "choices")
        if not choices:
            raise ValueError("a ScoreRequest needs at least one choice")
        if any(c == "" for c in choices):
            raise ValueError("choices must be non-empty strings")
        if len(set(choices)) != len(choices):
            raise ValueError(f"choices must be distinct, got {list(choices)!r}")
        object.__setattr__(self, "choices", choices)

    def cache_payload(self) -> dict[str, Any]:
        """Everything that determines the answer, for the response cache key."""
        return {
            "prefix": self.prefix,
            "text": self.text,
            "choices": list(self.choices),
            "response_prefix": self.response_prefix,
        }


@dataclass(frozen=True)
class GenerateRequest:
    """Generate a continuation of a prompt.

    :param prefix: Fixed instructions, identical across requests.
    :param text: The state-specific part.
    :param max_tokens: Maximum number of generated tokens.
    :param temperature: Sampling temperature; ``0`` is greedy decoding.
    :param stop: Strings that end the generation (not included in the result).
    :param seed: Sampling seed: same request, same seed, same text.
    :param response_prefix: Text the answer starts with (not repeated in the result).
    :param json_schema: A JSON Schema (as a JSON string) the generated text should match.
        Backends that can constrain decoding do (llama.cpp grammars in process, the
        endpoint's structured-output options over HTTP); others ignore it, so the caller must
        still validate the text. It constrains the generated text only (after
        ``response_prefix``). Stored in a canonical form: whitespace removed, key order kept
        (property order decides the order in which a grammar makes the model write them).
    """

    prefix: str
    text: str
    max_tokens: int = 64
    temperature: float = 0.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    response_prefix: str = ""
    json_schema: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", _as_str_tuple(self.stop, "stop"))
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if self.json_schema is not None:
            object.__setattr__(self, "json_schema", canonical_schema(self.json_schema))

    def cache_payload(self) -> dict[str, Any]:
        """Everything that determines the answer, for the response cache key.

        ``json_schema`` appears only when set, so requests without one keep the keys they had
        before the field existed.
        """
        payload: dict[str, Any] = {
            "prefix": self.prefix,
            "text": self.text,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stop": list(self.stop),
            "seed": self.seed,
            "response_prefix": self.response_prefix,
        }
        if self.json_schema is not None:
            payload["json_schema"] = self.json_schema
        return payload


def canonical_schema(schema: str | dict[str, Any]) -> str:
    """A JSON Schema as compact JSON text with its key order kept.

    :param schema: The schema as a JSON string or a dict.
    :raises ValueError: Not valid JSON, or not a JSON object.
    """
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise ValueError(f"json_schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ValueError("json_schema must be a JSON object")
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@runtime_checkable
class LLM(Protocol):
    """A language model that scores and generates in batches.

    ``identity`` names the model for the response cache: backend, model name and the file's
    sha256 (embedded) or the endpoint's model name, plus the prompt format.
    """

    identity: str

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Log-probability of each choice of each request (see the module docstring)."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """The generated text of each request."""
        ...


# --------------------------------------------------------------------------------------------
# Prompt formats
# --------------------------------------------------------------------------------------------


class PromptFormat(Protocol):
    """Turns ``(prefix, text, response_prefix)`` into the model's prompt string.

    Every format keeps ``prefix`` inside a fixed leading string (the same for every ``text``),
    so the backend's key/value cache of that leading part is reused between requests.
    """

    name: str

    def render(self, prefix: str, text: str, response_prefix: str = "") -> str:
        """The full prompt."""
        ...


@dataclass(frozen=True)
class RawFormat:
    """No template: ``prefix + text + response_prefix``. For base models (Gemma 3 270M in its
    package) and for endpoints whose completions API takes raw text."""

    name: str = "raw"

    def render(self, prefix: str, text: str, response_prefix: str = "") -> str:
        return prefix + text + response_prefix


class ChatTemplateFormat:
    """A Hugging Face style Jinja chat template (the one a GGUF carries in
    ``tokenizer.chat_template``).

    ``prefix + text`` becomes the content of a single user message, the template is rendered
    with the assistant header (``add_generation_prompt``), and ``response_prefix`` follows.
    One user message (rather than a system message for ``prefix``) works with every template,
    including those that reject a system role; the rendered string still starts with a fixed
    part (template header + ``prefix``), which is what the key/value cache reuse needs.

    Templates come from model files, i.e. from third parties: they are rendered in Jinja's
    sandbox.

    :param template: The Jinja source.
    :param bos_token: Text of the model's BOS token (templates may print it).
    :param eos_token: Text of the model's EOS token.
    :param name: Short name used in the model identity (a hash of the template is added).
    """

    def __init__(
        self, template: str, bos_token: str = "", eos_token: str = "", name: str = "chat"
    ) -> None:
        import hashlib

        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message: str) -> None:
            raise ValueError(f"chat template error: {message}")

        def strftime_now(fmt: str) -> str:
            # Templates that print today's date would make prompts (and cache keys) change
            # daily; a fixed date keeps one state one prompt.
            import datetime

            return datetime.date(2025, 1, 1).strftime(fmt)

        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        self._template = env.from_string(template)
        self.bos_token = bos_token
        self.eos_token = eos_token
        digest = hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]
        self.name = f"{name}-{digest}"

    def render(self, prefix: str, text: str, response_prefix: str = "") -> str:
        prompt = self._template.render(
            messages=[{"role": "user", "content": prefix + text}],
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
        return prompt + response_prefix

    def __repr__(self) -> str:
        return f"ChatTemplateFormat(name={self.name!r})"


# --------------------------------------------------------------------------------------------
# Helpers shared by the backends
# --------------------------------------------------------------------------------------------


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax in float64."""
    x = np.asarray(logits, dtype=np.float64)
    m = np.max(x)
    return x - (m + np.log(np.sum(np.exp(x - m))))


def safe_log(p: float) -> float:
    """``log(max(p, MIN_PROB))``: finite even for a zero probability."""
    return math.log(max(p, MIN_PROB))
