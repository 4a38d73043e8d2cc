"""What defines a run: typed specs, each field declared once.

One declaration per field (its type, default, bounds and a one-line description) serves every
way a run is described:

- a key of a run's ``config.json``, of a sweep file's ``defaults``/``tutors``/``overrides``
  (flat, stable names: the result format users already have);
- an option of the command line, generated from the field (``tutorl train --imitation-coef``;
  the description is its ``--help``, :func:`cli_flag` its name);
- a row of the configuration reference (``docs/configuration.md``, :func:`reference`).

The fields come in groups (each a small mixin and a ``--help`` panel): :class:`GameFields`
(shared with ULTRA's configuration), :class:`TutorFields`, :class:`RunFields`, and those that
build the typed object the library takes: :class:`LLMFields`
(:class:`~tutorl.llm.spec.LLMSpec`; shared with ULTRA), :class:`LLMTutorFields`
(:class:`~tutorl.llm.spec.LLMTutorSpec`), :class:`ScheduleFields`
(:class:`~tutorl.tutor.schedule.AdviceSchedule`) and :class:`AdviceFields`
(:class:`ImitationSettings`). :class:`RunConfig` is all of them, and resolves every
game-dependent default in one step.

This module imports neither PyTorch nor Stable-Baselines3, so a mistake in a command line or a
sweep file is reported before they load.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from tutorl.envs import get_game
from tutorl.llm.models import DEFAULT_MODEL
from tutorl.llm.spec import LLMSpec, LLMTutorSpec, check_url
from tutorl.tutor.schedule import AdviceSchedule
from tutorl.tutor.tutors import TUTOR_KINDS

ALGOS = ("dqn", "ppo", "a2c")
#: Vectorised envs per student unless a run sets ``n_envs``.
DEFAULT_N_ENVS = {"dqn": 1, "ppo": 4, "a2c": 4}
IMITATION_TARGETS = ("action", "distribution")


@dataclass(frozen=True)
class Option:
    """How a field appears on the command line, as metadata of its annotation
    (``llm: Annotated[str | None, Option("--llm-model")]``). A field without one is
    ``--<name-with-dashes>`` (``--x/--no-x`` for a switch).

    :param flag: the flag; ``None``: no option (sweep files and the library only).
    :param path: a file path: the command line takes it as a path (``<path>`` in ``--help``).
    """

    flag: str | None = ""
    path: bool = False


def _path_text(value: Any) -> Any:
    """A path stored as text, as the command line passes it (``./a/b.txt`` -> ``a/b.txt``), so
    that one file is one configuration however it was typed."""
    return value if value is None else str(Path(value))


#: A field holding a file path.
PathText = Annotated[str | None, BeforeValidator(_path_text), Option(path=True)]


def field_option(field: FieldInfo) -> Option:
    """The :class:`Option` of a field (the default one if it declares none)."""
    return next((m for m in field.metadata if isinstance(m, Option)), Option())


def cli_flag(name: str, field: FieldInfo) -> str | None:
    """The command-line flag of the field ``name`` (``None``: it has none)."""
    flag = field_option(field).flag
    if flag != "":
        return flag
    flag = "--" + name.replace("_", "-")
    return f"{flag}/--no-{flag[2:]}" if field.annotation is bool else flag


@dataclass(frozen=True)
class ImitationSettings:
    """The supervised term toward the tutor's advice (``TutoredPPO(..., imitation=...)``).

    :param coef: λ, the term's weight; 0 turns imitation off (the paper's plain mechanism).
    :param anneal: fraction of the run over which λ decays linearly to 0; ``None``: constant
        (measured: annealing to 0 by half the run made Connect Four DQN collapse after the
        hand-over; a constant weight did not).
    :param margin: DQfD's margin ``m`` (DQN only), in return units.
    :param target: ``action`` (the tutor's action) or ``distribution`` (PPO/A2C: cross-entropy
        to the tutor's distribution where it has one).
    :param guard: imitate only while the tutor's evaluated return is above the student's.
    :param guard_z: how clearly: the tutor's return must exceed the student's by ``guard_z``
        standard errors of their difference (0: any lead, the original guard; 1.645: a
        one-sided 95% test). Exact evaluations (Blackjack) have no error, so it changes nothing
        there.
    :param batch_size: advice samples per gradient step.
    :param capacity: advice samples kept (the oldest are overwritten).
    """

    coef: float = 0.0
    anneal: float | None = None
    margin: float = 0.8
    target: Literal["action", "distribution"] = "action"
    guard: bool = False
    guard_z: float = 0.0
    batch_size: int = 64
    capacity: int = 50_000

    def __post_init__(self) -> None:
        if self.coef < 0:
            raise ValueError(f"imitation coefficient must be >= 0, got {self.coef}")
        if self.anneal is not None and not 0 < self.anneal <= 1:
            raise ValueError(f"imitation anneal must be in (0, 1], got {self.anneal}")
        if not self.guard_z >= 0:
            raise ValueError(f"guard_z must be >= 0, got {self.guard_z}")
        if self.target not in IMITATION_TARGETS:
            raise ValueError(f"imitation target must be one of {IMITATION_TARGETS}")

    @property
    def active(self) -> bool:
        return self.coef > 0


def _llm_default(name: str) -> Any:
    return LLMSpec.model_fields[name].default


class LLMFields(BaseModel):
    """The language model (:class:`~tutorl.llm.spec.LLMSpec`): an LLM tutor's, or ULTRA's
    identifier."""

    panel: ClassVar[str] = "LLM"  # the --help panel of these options

    llm: Annotated[str | None, Option("--llm-model")] = Field(
        None,
        description="Embedded model (smollm2-135m, gemma3-270m, qwen2.5-coder-0.5b; tutorl "
        "models lists them), a .gguf path, or with --llm-url the endpoint's model (llama, "
        f"vicuna, deepseek, ...). Default: {DEFAULT_MODEL}.",
    )
    llm_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1."
    )
    llm_api_key_env: str = Field(
        _llm_default("api_key_env"),
        description="Environment variable holding the endpoint's key (the key is never stored).",
    )
    llm_timeout: float = Field(
        _llm_default("timeout"),
        gt=0,
        allow_inf_nan=False,
        description="--llm-url: most seconds one request may take, retries included (a "
        "hanging or dripping server is cut there and the advice falls back to the student).",
    )
    llm_concurrency: int = Field(
        _llm_default("concurrency"),
        ge=1,
        description="--llm-url: requests of one step in flight at once (vLLM/Ollama serve them "
        "in parallel; use 1 for llama-cpp-python's server, which handles one at a time).",
    )

    @field_validator("llm_timeout", mode="before")
    @classmethod
    def _timeout_default(cls, value: Any) -> Any:
        # Folders written before it had a default stored null.
        return _llm_default("timeout") if value is None else value

    def llm_spec(self, cache: bool = True) -> LLMSpec:
        """The model these flat fields describe."""
        return LLMSpec(
            model=self.llm,
            url=self.llm_url,
            api_key_env=self.llm_api_key_env,
            timeout=self.llm_timeout,
            concurrency=self.llm_concurrency,
            cache=cache,
        )

    def _resolve_llm(self, used: bool) -> None:
        """Check the LLM fields; where the LLM is ``used``, store its model resolved (a resumed
        run keeps its model even if the default changes)."""
        if used:
            self.llm = self.llm_spec().resolved().model  # checks the URL and the model name
        else:  # unused here (a sweep's shared defaults), but never silently malformed
            check_url(self.llm_url)


class LLMTutorFields(LLMFields):
    """An LLM as a tutor (:class:`~tutorl.llm.spec.LLMTutorSpec`): the model, and how a state
    is put to it and its answer read (``--tutor llm``)."""

    panel: ClassVar[str] = "LLM tutor"

    llm_mode: Literal["score", "generate"] = Field(
        "score", description="score (rank the legal actions' labels) or generate (<action>)."
    )
    prompt_template: PathText = Field(None, description="Your own prompt template file.")
    llm_cache: Annotated[bool, Option("--cache/--no-cache")] = Field(
        True, description="Keep answers in the persistent response cache ($TUTORL_CACHE)."
    )
    describer: str = Field(
        "default",
        description="The state text the model is shown: default, or one of the game's others "
        "(snake: plain, the observation's facts in the snake's own frame).",
    )
    llm_calibrate: Literal["none", "content-free", "batch-mean"] = Field(
        "none",
        description="score mode: none, content-free (divide by the answer to an empty state) "
        "or batch-mean (by the mean answer over earlier states); never uses the expert.",
    )

    def llm_tutor_spec(self) -> LLMTutorSpec:
        """The LLM tutor these flat fields describe."""
        return LLMTutorSpec(
            llm=self.llm_spec(cache=self.llm_cache),
            mode=self.llm_mode,
            template=self.prompt_template,
            describer=self.describer,
            calibrate=self.llm_calibrate,
        )


class ScheduleFields(BaseModel):
    """When the student asks (:class:`~tutorl.tutor.schedule.AdviceSchedule`): the paper's
    probability decaying linearly from ``ask_start`` to ``ask_end`` over θ steps."""

    panel: ClassVar[str] = "Asking"

    ask_start: float = Field(
        AdviceSchedule.start, ge=0.0, le=1.0, description="Probability of asking at step 0."
    )
    ask_end: float = Field(
        AdviceSchedule.end, ge=0.0, le=1.0, description="Probability of asking after θ steps."
    )
    ask_decay_steps: int | None = Field(
        None, ge=0, description="θ: steps over which asking decays (default: 20% of the run)."
    )
    advice_budget: int | None = Field(
        AdviceSchedule.budget, ge=0, description="Cap on the total tutor asks (default: none)."
    )

    def schedule(self) -> AdviceSchedule:
        """The schedule these flat fields describe (θ resolved: see :class:`RunConfig`)."""
        return AdviceSchedule(
            self.ask_start, self.ask_end, self.ask_decay_steps, self.advice_budget
        )


class AdviceFields(BaseModel):
    """How advice enters learning: the advice mode and the supervised term
    (:class:`ImitationSettings`)."""

    panel: ClassVar[str] = "Advice"

    # The paper's `replace` with imitation_coef 0 is its mechanism bit for bit.
    advice_mode: Literal["replace", "label", "explore"] = Field(
        "replace",
        description="replace (the tutor's action is executed; the paper's), label (the student "
        "acts, the advice only teaches; needs --imitation-coef) or explore (DQN: advice "
        "replaces only ε-random actions).",
    )
    imitation_coef: float = Field(
        ImitationSettings.coef,
        ge=0.0,
        description="λ of the supervised term toward the tutor's action (DQN: DQfD margin "
        "loss; PPO/A2C: -log π(a_T|s)); 0 = off, the paper's mechanism.",
    )
    imitation_anneal: float | None = Field(
        ImitationSettings.anneal,
        gt=0.0,
        le=1.0,
        description="Fraction of the run over which λ decays to 0 (default: constant).",
    )
    imitation_margin: float = Field(
        ImitationSettings.margin, ge=0.0, description="DQN: the large margin m of DQfD's loss."
    )
    imitation_target: Literal["action", "distribution"] = Field(
        ImitationSettings.target,
        description="action (the tutor's action) or distribution (PPO/A2C: cross-entropy to "
        "the tutor's distribution where it has one).",
    )
    imitation_guard: bool = Field(
        ImitationSettings.guard,
        description="For untrusted tutors: imitate only while the tutor's evaluated return is "
        "above the student's.",
    )
    imitation_guard_z: float = Field(
        ImitationSettings.guard_z,
        ge=0.0,
        allow_inf_nan=False,
        description="With --imitation-guard: imitate only while the tutor leads by this many "
        "standard errors of the two evaluations (0: any lead; 1.645: a one-sided 95% test).",
    )

    def imitation(self) -> ImitationSettings:
        """The supervised term these flat fields describe."""
        return ImitationSettings(
            coef=self.imitation_coef,
            anneal=self.imitation_anneal,
            margin=self.imitation_margin,
            target=self.imitation_target,
            guard=self.imitation_guard,
            guard_z=self.imitation_guard_z,
        )


class GameFields(BaseModel):
    """The game and the student (or ULTRA's agent) that learns it."""

    panel: ClassVar[str] = "Game and student"

    env: str = Field(description="Game (tutorl envs lists them), or package.module:GAME.")
    algo: Literal["dqn", "ppo", "a2c"] = Field(description="Student algorithm: dqn, ppo or a2c.")
    # On the command line: --env-option KEY=VALUE (repeatable), parsed by the command.
    env_options: Annotated[dict[str, Any], Option("--env-option")] = Field(
        default_factory=dict,
        description="Game options (tutorl envs lists them), e.g. {opponent: greedy}.",
    )

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str) -> str:
        get_game(value)  # a clear error naming the known envs
        return value


class TutorFields(BaseModel):
    """Who tutors, and the paper's advice reuse."""

    panel: ClassVar[str] = "Tutor"

    tutor: str = Field(
        "none",
        description="none, expert, noisy-expert, rule (the game's rule of thumb), random or llm.",
    )
    tutor_accuracy: float = Field(
        0.8, ge=0.0, le=1.0, description="noisy-expert: probability of the expert move."
    )
    reuse: bool = Field(False, description="Reuse remembered advice (the paper's).")
    reuse_budget: int = Field(3, ge=1, description="Reuses per answer before re-asking.")

    @field_validator("tutor")
    @classmethod
    def _known_tutor(cls, value: str) -> str:
        if value not in TUTOR_KINDS:
            raise ValueError(f"unknown tutor {value!r}; choose one of: {', '.join(TUTOR_KINDS)}")
        return value

    @property
    def tutored(self) -> bool:
        return self.tutor != "none"


class RunFields(GameFields):
    """The run's own fields: length, seeds, evaluation, hyperparameters."""

    panel: ClassVar[str] = "Run"

    steps: int | None = Field(None, gt=0, description="Environment steps (default: the game's).")
    seed: int = Field(0, ge=0, description="Seed of everything in the run.")
    n_envs: int | None = Field(
        None, ge=1, description="Vectorised envs (default: 1 for DQN, 4 for PPO and A2C)."
    )
    eval_freq: int | None = Field(
        None, gt=0, description="Evaluate every N steps (default: 20 times per run)."
    )
    eval_episodes: int = Field(50, gt=0, description="Episodes per evaluation.")
    eval_seed: Annotated[int, Option(None)] = Field(
        10_000, ge=0, description="Seed of the first evaluation episode."
    )
    hyperparams: Annotated[dict[str, Any], Option(None)] = Field(
        default_factory=dict, description="Student hyperparameters over tutorl's (SB3 names)."
    )


class RunConfig(AdviceFields, ScheduleFields, LLMTutorFields, TutorFields, RunFields):
    """Everything that defines one run. Same config, same seed: same result (on one machine
    and library stack; another CPU may round float32 differently, see docs/results.md).

    Validation resolves the game-dependent defaults in one step: ``steps=None`` takes the
    game's default length, ``ask_decay_steps=None`` (θ) 20% of the run, ``n_envs=None`` the
    student's default and ``eval_freq=None`` 20 evaluations per run; an LLM tutor's model is
    stored resolved.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _fill_defaults(self) -> RunConfig:
        game = get_game(self.env)
        game.check_algo(self.algo, label=self.env)
        if game.continuous and self.tutor != "none":
            raise ValueError(
                f"{self.env} has continuous actions and tutors advise discrete ones: "
                f"--tutor {self.tutor} is not available, use --tutor none"
            )
        if not game.has_expert and self.tutor in ("expert", "noisy-expert"):
            raise ValueError(f"{self.env} has no expert policy: --tutor {self.tutor} needs one")
        if self.llm_calibrate != "none" and (self.tutor != "llm" or self.llm_mode != "score"):
            raise ValueError("--llm-calibrate corrects scored LLM answers: it needs --tutor llm")
        if self.describer != "default":
            if self.tutor != "llm":
                raise ValueError("--describer chooses the LLM's state text: it needs --tutor llm")
            game.describer(self.describer)  # a clear error naming the game's describers
        if self.tutor == "rule" and game.rule is None:
            raise ValueError(f"{self.env} has no rule baseline: --tutor rule is not available")
        if self.advice_mode == "explore" and self.algo != "dqn":
            raise ValueError(
                "--advice-mode explore replaces ε-random actions and only DQN has them: "
                "use replace or label with ppo/a2c"
            )
        if not self.tutored and (self.imitation_coef > 0 or self.advice_mode != "replace"):
            raise ValueError("--imitation-coef and --advice-mode need a tutor (got --tutor none)")
        if self.advice_mode == "label" and self.imitation_coef == 0:
            raise ValueError(
                "--advice-mode label executes the student's own action: without "
                "--imitation-coef > 0 the advice would have no effect"
            )
        if self.imitation_coef == 0 and (self.imitation_guard or self.imitation_anneal is not None):
            raise ValueError("--imitation-guard and --imitation-anneal need --imitation-coef > 0")
        if self.imitation_guard_z > 0 and not self.imitation_guard:
            raise ValueError("--imitation-guard-z needs --imitation-guard")
        if self.steps is None:
            self.steps = game.default_steps
        if self.ask_decay_steps is None:
            self.ask_decay_steps = max(1, self.steps // 5)
        if self.n_envs is None:
            self.n_envs = DEFAULT_N_ENVS[self.algo]
        if self.eval_freq is None:
            self.eval_freq = max(1, self.steps // 20)
        game.check_options(self.env_options, label=self.env)  # now, not in a worker
        self._resolve_llm(used=self.tutor == "llm")
        return self

    def arm(self) -> str:
        """Short label of the experimental arm: ``none``, ``expert``, ``expert+reuse``..."""
        if not self.tutored:
            return "none"
        name = self.tutor
        if self.tutor == "noisy-expert":
            name = f"noisy{self.tutor_accuracy:g}"
        elif self.tutor == "llm":
            # A model name may contain dots (qwen2.5-coder-0.5b): strip only a .gguf suffix.
            name = f"llm-{Path(str(self.llm)).name.removesuffix('.gguf')}"
            if self.describer != "default":
                name += f"+{self.describer}"
            if self.llm_calibrate != "none":
                name += f"+{self.llm_calibrate}"
        if self.advice_mode != "replace":
            name += f"+{self.advice_mode}"
        if self.imitation_coef > 0:
            name += f"+im{self.imitation_coef:g}"
            if self.imitation_anneal is not None:
                name += f"+anneal{self.imitation_anneal:g}"
            if self.imitation_target == "distribution":
                name += "+dist"
            if self.imitation_guard:
                name += f"+guard{self.imitation_guard_z:g}" if self.imitation_guard_z else "+guard"
        return f"{name}+reuse" if self.reuse else name


def field_panel(model: type[BaseModel], name: str) -> str | None:
    """The group of ``model``'s field ``name`` (its --help panel): the ``panel`` of the class
    declaring it."""
    for cls in reversed(model.__mro__):
        if name in getattr(cls, "__annotations__", {}) and hasattr(cls, "panel"):
            return cls.panel
    return None


def _type_text(annotation: Any) -> str:
    """A field's type as the reference shows it (``int or None``, ``one of: dqn, ppo, a2c``)."""
    if typing.get_origin(annotation) is Literal:
        return "one of: " + ", ".join(str(v) for v in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return "list of " + _type_text(typing.get_args(annotation)[0]).replace("one of: ", "")
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace(" | ", " or ")


def reference(
    models: list[type[BaseModel]],
    commands: dict[tuple[type[BaseModel], str], list[str]] | None = None,
) -> str:
    """The configuration reference (``docs/configuration.md``): each model's fields, by group,
    with the command-line flag, the commands that take it (``commands``: ``(model, field) ->
    command names``), the type, default and meaning of each."""
    lines = []
    for model in models:
        summary = (model.__doc__ or "").strip().split("\n\n")[0]
        lines += [f"## `{model.__name__}`", "", " ".join(summary.split()), ""]
        groups: dict[str, list[str]] = {}
        for name, field in model.model_fields.items():
            flag = cli_flag(name, field)
            taken = (commands or {}).get((model, name), [])
            option = f"`{flag}` ({', '.join(taken)})" if flag and taken else "—"
            value = None if field.is_required() else field.get_default(call_default_factory=True)
            default = "required" if field.is_required() else f"`{value!r}`"
            cells = [f"`{name}`", option, _type_text(field.annotation), default,
                     field.description or ""]  # fmt: skip
            row = "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
            groups.setdefault(field_panel(model, name) or "Other", []).append(row)
        for group, rows in groups.items():
            lines += [f"### {group}", "", "| key | option (commands) | type | default | meaning |",
                      "|---|---|---|---|---|", *rows, ""]  # fmt: skip
    return "\n".join(lines)


__all__ = [
    "ALGOS",
    "DEFAULT_N_ENVS",
    "AdviceFields",
    "GameFields",
    "ImitationSettings",
    "LLMFields",
    "LLMTutorFields",
    "Option",
    "PathText",
    "RunConfig",
    "ScheduleFields",
    "TutorFields",
    "cli_flag",
    "field_option",
    "field_panel",
    "reference",
]
