"""A pre-trained language model as the tutor.

Two ways to get an action:

* ``score`` (default): the log-probability of each *legal* action's label after one forward pass
  over the prompt (fixed prefix first, so its KV cache is reused between states). It yields a
  distribution over the legal actions and can never fail to parse.
  With ``calibrate`` the distribution is corrected for the model's label prior (Zhao et al.
  2021, "Calibrate before use"): each label's probability is divided by its probability under
  a prior and renormalised. ``content-free``: the prior is the model's answer to the same prompt
  with a state text that says nothing ("N/A"), asked once per set of legal actions;
  ``batch-mean``: the running mean of the model's distributions over the states already
  answered (the current state excluded, so no state corrects itself; the first state of a run
  is uncorrected). Neither ever uses the expert. Calibration helps a model whose answers are
  dominated by one label (Qwen2.5-Coder-0.5B on Snake) and can hurt where the label prior is
  often right (Connect Four's centre): measure it with ``tutor-eval``.
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

CALIBRATIONS = ("none", "content-free", "batch-mean")
_CONTENT_FREE = "N/A"

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
    :param calibrate: score mode: ``none``, ``content-free`` or ``batch-mean`` (above).
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
        calibrate: str = "none",
    ) -> None:
        if calibrate not in CALIBRATIONS:
            known = ", ".join(CALIBRATIONS)
            raise ValueError(f"unknown calibration {calibrate!r}; choose one of: {known}")
        self.calibrate = calibrate
        self._priors: dict[tuple[int, ...], list[float]] = {}  # content-free, per legal set
        self._mean: dict[tuple[int, ...], tuple[list[float], int]] = {}  # batch-mean sums
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
        if calibrate != "none":
            self.name += f":{calibrate}"
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
            raw_total = total
            if self.calibrate != "none":
                prior = self._prior(legal, [w / total for w in weights])
                weights = [w / max(p, 1e-12) for w, p in zip(weights, prior, strict=True)]
                total = sum(weights)
            probs = [0.0] * self.game.n_actions
            for action, weight in zip(legal, weights, strict=True):
                probs[action] = weight / total
            best = legal[max(range(len(legal)), key=lambda k: weights[k])]
            # The legal labels' total probability under the model: near 0, the answer is the
            # argmax of a tail the model never meant to say (tutor-eval warns).
            mass = math.exp(top) * raw_total
            advice.append(
                Advice(best, "cache" if hit else "llm", probs=probs, extra={"label_mass": mass})
            )
        return advice

    def _prior(self, legal: list[int], probs: list[float]) -> list[float]:
        """The label prior to divide by, for this set of legal actions (see the module
        docstring); ``probs`` is the current state's uncalibrated distribution."""
        key = tuple(legal)
        if self.calibrate == "content-free":
            if key not in self._priors:
                prompt = self.template.build_text(_CONTENT_FREE, legal)
                space = " " if self._raw or prompt.response else ""
                choices = [space + self.template.labels[a] for a in legal]
                request = ScoreRequest(prompt.prefix, prompt.text, choices, prompt.response)
                [logprobs] = self.llm.score([request])
                top = max(logprobs)
                weights = [math.exp(lp - top) for lp in logprobs]
                self._priors[key] = [w / sum(weights) for w in weights]
            return self._priors[key]
        # batch-mean: the mean over earlier states only, then this state joins the mean.
        sums, n = self._mean.get(key, ([0.0] * len(legal), 0))
        prior = [s / n for s in sums] if n else [1.0] * len(legal)
        self._mean[key] = ([s + p for s, p in zip(sums, probs, strict=True)], n + 1)
        return prior

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
