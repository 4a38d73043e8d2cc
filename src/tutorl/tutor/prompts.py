"""Zero-shot prompts: one template per game, overridable by a user's template file.

A template is plain text with the placeholders ``{game}``, ``{rules}``, ``{format}``,
``{state}``, ``{actions}`` and optionally ``{response}`` and ``{answer_start}``. Everything
before ``{state}`` is the *fixed prefix*: it is the same for every state of a game, comes first,
and is therefore evaluated once and kept in the model's KV cache. State-dependent placeholders
(``{state}``, ``{actions}``) must come after it.

**Primed scoring.** In score mode, whatever follows ``{response}`` is the start of the model's
*reply* (``ScoreRequest.response_prefix``), not part of the question: a chat model's assistant
turn then begins "Best action:" and the next token is an action label. Without it a chat
model's first reply token is "You", "The", "Your", ... and the legal labels together get
~3e-4 of the probability (SmolLM2 on Blackjack): the argmax over labels is tail noise. With the
default template the legal labels get ~0.9 of Qwen2.5-Coder-0.5B's mass and 0.25–0.36 of
SmolLM2's. ``{answer_start}`` is "Best action:" followed by the action names' shared first word
where they have one (Connect Four: "Best action: column", so that the next token is the
number). For raw (non-chat) models the reply prefix simply ends the prompt, as before; in
generate mode it stays in the question (a chat endpoint cannot pre-fill the reply).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tutorl.envs.base import Game, View

DEFAULT_TEMPLATE = """You are an expert {game} player tutoring a beginner.

Rules: {rules}

You will be shown one position. Reply with the single best action for the player to take now.
{format}

Position:
{state}
Legal actions: {actions}
{response}{answer_start}"""

FORMATS = {
    "score": "Answer with the name of the action only.",
    "generate": (
        "Write the chosen action's name inside <action></action> tags, for example "
        "<action>{example}</action>, and nothing else."
    ),
}


def action_labels(game: Game) -> list[str]:
    """The word the tutor answers with for each action.

    Labels are short and start differently, so that one forward pass scores all of them from
    the next-token distribution: Connect Four's "column 3" becomes "3".
    """
    labels = [name.split()[-1] for name in game.action_names]
    return labels if len(set(labels)) == len(labels) else [str(i) for i in range(len(labels))]


def answer_start(game: Game) -> str:
    """How the tutor's reply starts: "Best action:", plus the action names' shared first word
    when the labels are their last words (Connect Four: "Best action: column")."""
    words = [name.split() for name in game.action_names]
    shared = {w[0] for w in words}
    if all(len(w) > 1 for w in words) and len(shared) == 1:
        return f"Best action: {shared.pop()}"
    return "Best action:"


@dataclass(frozen=True)
class Prompt:
    """A prompt split into its fixed prefix and its state-specific rest."""

    prefix: str
    text: str
    response: str = ""


class PromptTemplate:
    """Builds a game's prompt for a state.

    :param game: the game whose rules and describer fill the template.
    :param mode: ``score`` (rank the legal actions' labels) or ``generate`` (the paper's way:
        the answer inside ``<action>…</action>``).
    :param template: template text; the built-in zero-shot template by default.
    :param describer: which of the game's state texts fills ``{state}`` (``default``, or one of
        :attr:`~tutorl.envs.base.Game.describers`, e.g. Snake's ``plain``).
    """

    def __init__(
        self,
        game: Game,
        mode: str = "score",
        template: str | None = None,
        describer: str = "default",
    ) -> None:
        if mode not in FORMATS:
            raise ValueError(f"unknown prompt mode {mode!r}; use score or generate")
        template = template or DEFAULT_TEMPLATE
        if "{state}" not in template:
            raise ValueError("a prompt template must contain the {state} placeholder")
        head, _ = template.split("{state}", 1)
        if "{actions}" in head:
            raise ValueError("{actions} depends on the state: put it after {state}")
        if "{response}" in head:
            raise ValueError("{response} starts the reply: put it after {state}")
        self.game = game
        self.mode = mode
        self.template = template
        self.describer = describer
        self._describe = game.describer(describer)
        self.labels = action_labels(game)
        fixed = {
            "game": game.name.replace("_", " ").title(),
            "rules": game.rules.strip(),
            "format": FORMATS[mode].replace("{example}", self.labels[0]),
            "answer_start": answer_start(game),
        }
        self.prefix = _fill(head, fixed)
        self._tail = template[len(head) :]
        self._fixed = fixed

    @classmethod
    def from_file(
        cls, game: Game, path: str | Path, mode: str = "score", describer: str = "default"
    ) -> PromptTemplate:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prompt template not found: {path}")
        return cls(game, mode, path.read_text(), describer)

    def build(self, view: View) -> Prompt:
        return self.build_text(self._describe(view), self.game.legal_actions(view))

    def build_text(self, state: str, legal: list[int]) -> Prompt:
        """The prompt for a state text and its legal actions (content-free calibration asks
        with a state text that says nothing, e.g. "N/A")."""
        text = _fill(
            self._tail,
            {**self._fixed, "state": state, "actions": ", ".join(self.labels[a] for a in legal)},
        )
        if "{response}" not in text:
            return Prompt(self.prefix, text)
        question, response = text.split("{response}", 1)
        if self.mode != "score":
            return Prompt(self.prefix, question + response)
        return Prompt(self.prefix, question, response)


def _fill(text: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: rules and states contain braces of their own.
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text
