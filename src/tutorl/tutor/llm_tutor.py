"""A pre-trained language model as the tutor.

Two ways to get an action:

* ``score`` (default): the log-probability of each *legal* action's label after one forward pass
  over the prompt (fixed prefix first, so its KV cache is reused between states). It yields a
  distribution over the legal actions and can never fail to parse.
* ``generate`` (the paper's way): the model writes its answer inside ``<action>…</action>``; the
  answer is parsed (never executed), re-asked up to ``retries`` times when it is not a legal
  action, and then counted as a fallback to the student's own action.

The model's output is untrusted text: it only ever selects among the legal actions' labels.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter

from tutorl.envs.base import Game, View
from tutorl.llm.base import LLM, GenerateRequest, LLMError, ScoreRequest
from tutorl.tutor.base import Advice
from tutorl.tutor.prompts import PromptTemplate

_ACTION_TAG = re.compile(r"<action>\s*(.*?)\s*</action>", re.IGNORECASE | re.DOTALL)


def parse_action(text: str, labels: list[str], legal: list[int]) -> int | None:
    """The legal action named inside the first ``<action>…</action>`` of ``text``, or None.

    Matching is case-insensitive on the whole label (``<action>Hit</action>``), so "hit me" or a
    label of an illegal action is rejected rather than guessed at.
    """
    match = _ACTION_TAG.search(text)
    if match is None:
        return None
    answer = match.group(1).strip().strip(".").lower()
    for action in legal:
        if answer == labels[action].lower():
            return action
    return None


class LLMTutor:
    """Asks a language model for the best action, for a batch of states in one call.

    :param game: the game (rules, describer, legal actions).
    :param llm: the backend (embedded llama.cpp or an OpenAI-compatible endpoint), usually
        wrapped in the persistent response cache.
    :param mode: ``score`` or ``generate``.
    :param template: a :class:`PromptTemplate`; the game's zero-shot template by default.
    :param retries: generate mode: re-asks after an unparsable or illegal answer.
    :param max_tokens: generate mode: token budget of one answer.
    :param temperature: generate mode: sampling temperature of re-asks (the first ask is greedy).
    :param max_failures: after this many consecutive backend failures the tutor stops calling
        the backend for ``cooldown`` seconds (answering fallbacks at once, counted as
        ``circuit_open``), so a dead server costs seconds, not one timeout per training step.
    :param cooldown: seconds before a failing backend is tried again.
    """

    def __init__(
        self,
        game: Game,
        llm: LLM,
        mode: str = "score",
        template: PromptTemplate | None = None,
        retries: int = 2,
        max_tokens: int = 24,
        temperature: float = 0.7,
        max_failures: int = 3,
        cooldown: float = 30.0,
    ) -> None:
        self.game = game
        self.llm = llm
        self.mode = mode
        self.template = template or PromptTemplate(game, mode)
        if self.template.mode != mode:
            raise ValueError(f"prompt template is for {self.template.mode!r}, tutor for {mode!r}")
        self.retries = retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = f"llm:{getattr(llm, 'identity', 'model')}:{mode}"
        # A raw completion prompt or a primed reply ("... Best action:") continues with " hit",
        # an unprimed chat assistant turn starts with "hit": score the labels the way the model
        # would write them.
        backend = getattr(llm, "llm", llm)
        self._raw = getattr(getattr(backend, "prompt_format", None), "name", "") == "raw"
        self.failures: Counter = Counter()
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._consecutive_failures = 0
        self._closed_until = 0.0
        self._paused_before = False

    def advise(self, views: list[View]) -> list[Advice]:
        if not views:
            return []
        start = time.perf_counter()
        if start < self._closed_until:
            self.failures["circuit_open"] += len(views)
            return [Advice(-1, "fallback", extra={"error": "backend paused"}) for _ in views]
        try:
            advice = self._score(views) if self.mode == "score" else self._generate(views)
            self._consecutive_failures = 0
            self._paused_before = False
        except LLMError as error:
            # The backend failed (server down, timeout, garbage): the run goes on with the
            # student's own actions; the failure is counted, never hidden.
            self.failures[type(error).__name__] += len(views)
            self._consecutive_failures += 1
            # Once paused, a backend still failing after the pause is paused again at once.
            if self._consecutive_failures >= self.max_failures or self._paused_before:
                self._paused_before = True
                self._closed_until = time.perf_counter() + self.cooldown
                self._consecutive_failures = 0
            advice = [Advice(-1, "fallback", extra={"error": str(error)}) for _ in views]
        latency = (time.perf_counter() - start) / len(views)
        for item in advice:
            item.latency = latency
        return advice

    def _score(self, views: list[View]) -> list[Advice]:
        requests, legal_sets = [], []
        for view in views:
            prompt = self.template.build(view)
            legal = self.game.legal_actions(view)
            legal_sets.append(legal)
            space = " " if self._raw or prompt.response else ""
            choices = [space + self.template.labels[a] for a in legal]
            requests.append(ScoreRequest(prompt.prefix, prompt.text, choices, prompt.response))
        scores = self.llm.score(requests)
        cached = getattr(self.llm, "last_cached", None) or [False] * len(requests)
        advice = []
        for legal, logprobs, hit in zip(legal_sets, scores, cached, strict=True):
            # Normalise over the legal actions only: the tutor's distribution.
            top = max(logprobs)
            weights = [math.exp(lp - top) for lp in logprobs]
            total = sum(weights)
            probs = [0.0] * self.game.n_actions
            for action, weight in zip(legal, weights, strict=True):
                probs[action] = weight / total
            best = legal[max(range(len(legal)), key=lambda k: logprobs[k])]
            # The legal labels' total probability under the model: near 0, the answer is the
            # argmax of a tail the model never meant to say (tutor-eval warns).
            mass = math.exp(top) * total
            advice.append(
                Advice(best, "cache" if hit else "llm", probs=probs, extra={"label_mass": mass})
            )
        return advice

    def _generate(self, views: list[View]) -> list[Advice]:
        prompts = [self.template.build(view) for view in views]
        legal_sets = [self.game.legal_actions(view) for view in views]
        answers: list[int | None] = [None] * len(views)
        pending = list(range(len(views)))
        for attempt in range(self.retries + 1):
            requests = [
                GenerateRequest(
                    prompts[i].prefix,
                    prompts[i].text,
                    max_tokens=self.max_tokens,
                    temperature=0.0 if attempt == 0 else self.temperature,
                    stop=["</action>"],
                    seed=attempt,
                )
                for i in pending
            ]
            texts = self.llm.generate(requests)
            still = []
            for i, text in zip(pending, texts, strict=True):
                # The stop sequence is not returned: close the tag before parsing.
                action = parse_action(text + "</action>", self.template.labels, legal_sets[i])
                if action is None:
                    self.failures["unparsable"] += 1
                    still.append(i)
                else:
                    answers[i] = action
            pending = still
            if not pending:
                break
        return [
            Advice(a, "llm") if a is not None else Advice(-1, "fallback", extra={"error": "parse"})
            for a in answers
        ]
