"""Sweep files: a YAML grid of env × algorithm × tutor × reuse × seed, expanded into runs.

.. code-block:: yaml

    name: smoke
    seeds: 2                      # 0..1, or a list [0, 5, 7]
    envs:                         # per game: training length, evaluation, metric settings
      blackjack: {steps: 4000, eval_freq: 1000, tolerance: 0.02}
    algos: [dqn, ppo]
    tutors:                       # each entry: RunConfig fields of one tutor
      - {tutor: expert}
      - {tutor: llm, llm: smollm2-135m, seeds: 1}   # optional: only the first N seeds
    reuse: [false, true]
    baseline: true                # also run the untutored student
    defaults: {eval_episodes: 50} # RunConfig fields for every run
    overrides:                    # RunConfig fields for the runs that match
      - when: {env: connect_four, tutor: llm}
        set: {advice_budget: 500}

Every run is an ordinary :class:`~tutorl.specs.RunConfig` and lands in
``OUT/runs/<env>/<algo>/<arm>/seed<k>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tutorl.envs import get_game
from tutorl.specs import RunConfig

_RUN_FIELDS = set(RunConfig.model_fields)
# Fields the grid itself sets; a sweep file sets them through its axes, not through defaults.
_AXES = {"env", "algo", "seed", "reuse"}


class SweepError(ValueError):
    """A sweep file that cannot be run, with a one-line reason."""


class EnvSettings(BaseModel):
    """Per-game settings of a sweep: run fields for that game, and its metric settings."""

    # A NaN or infinite threshold would make every run "never reached" without a word.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    steps: int | None = Field(None, gt=0)
    eval_freq: int | None = Field(None, gt=0)
    eval_episodes: int | None = Field(None, gt=0)
    n_envs: int | None = Field(None, ge=1)
    env_options: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    tolerance: float | None = Field(None, gt=0)

    def run_fields(self) -> dict[str, Any]:
        fields = self.model_dump(exclude={"threshold", "tolerance"}, exclude_none=True)
        return {k: v for k, v in fields.items() if v != {}}


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: dict[str, Any]
    set: dict[str, Any]

    @field_validator("when")
    @classmethod
    def _known_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown field(s) in when: {', '.join(sorted(unknown))}")
        return value

    @field_validator("set")
    @classmethod
    def _settable(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run field(s) in set: {', '.join(sorted(unknown))}")
        axes = set(value) & (_AXES | {"tutor"})
        if axes:  # setting a grid axis would silently merge or relabel runs
            raise ValueError(f"set cannot change the grid's {', '.join(sorted(axes))}")
        return value

    def matches(self, fields: dict[str, Any]) -> bool:
        return all(fields.get(k) == v for k, v in self.when.items())


class SweepSpec(BaseModel):
    """A validated sweep file."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    seeds: int | list[int] = 3
    envs: dict[str, EnvSettings]
    algos: list[Literal["dqn", "ppo", "a2c"]] = Field(min_length=1)
    tutors: list[dict[str, Any]] = Field(default_factory=list)
    reuse: list[bool] = Field(default_factory=lambda: [False, True], min_length=1)
    baseline: bool = True
    defaults: dict[str, Any] = Field(default_factory=dict)
    overrides: list[Override] = Field(default_factory=list)
    smoothing: int = Field(3, ge=1)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("seeds must be a count or a list of seeds")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int) and value < 1:
            raise ValueError("seeds must be at least 1")
        if isinstance(value, list) and (
            not value or min(value) < 0 or len(set(value)) < len(value)
        ):
            raise ValueError("seeds must be distinct non-negative integers")
        return value

    @field_validator("envs")
    @classmethod
    def _envs(cls, value: dict[str, EnvSettings]) -> dict[str, EnvSettings]:
        if not value:
            raise ValueError("at least one env")
        for env in value:
            get_game(env)  # a clear error naming the known envs (or the import path's problem)
        return value

    @field_validator("tutors")
    @classmethod
    def _tutors(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, tutor in enumerate(value):
            if "tutor" not in tutor:
                raise ValueError(f"tutors[{i}] needs a 'tutor' kind")
            if tutor["tutor"] == "none":
                raise ValueError("tutor 'none' is the baseline: use 'baseline: true'")
            n = tutor.get("seeds", 1)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"tutors[{i}].seeds must be a count >= 1, got {n!r}")
            bad = set(tutor) - (_RUN_FIELDS - _AXES) - {"seeds"}
            if bad:
                raise ValueError(f"tutors[{i}]: unknown field(s) {', '.join(sorted(bad))}")
        return value

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = set(value) - (_RUN_FIELDS - _AXES - {"tutor"})
        if bad:
            raise ValueError(f"unknown or axis field(s) in defaults: {', '.join(sorted(bad))}")
        return value

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def threshold(self, env: str) -> float:
        settings = self.envs[env]
        if settings.threshold is not None:
            return settings.threshold
        return float(get_game(env).success_threshold)

    def tolerance(self, env: str) -> float:
        settings = self.envs[env]
        if settings.tolerance is not None:
            return settings.tolerance
        # The game's own (Game.convergence_tolerance), else 5% of the threshold's scale.
        game = get_game(env)
        if game.convergence_tolerance is not None:
            return float(game.convergence_tolerance)
        return 0.05 * max(1.0, abs(self.threshold(env)))


def _where(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: " if where else ""


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every problem is a :class:`SweepError` naming the field."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SweepError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: expected a mapping of sweep settings at the top level")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise SweepError(f"{path}: {_where(first)}{message}{more}") from None


def expand(spec: SweepSpec) -> list[RunConfig]:
    """Every run of the sweep, grouped so that each (env, algo) block completes before the next:
    env, then algorithm, then seed, then arm (baseline first)."""
    # Each arm with the number of the sweep's seeds it runs (a tutor entry's ``seeds``: the first
    # N; e.g. 5 seeds for the expert and the baseline, 3 for costlier or secondary tutors).
    everything = len(spec.seed_list)
    arms: list[tuple[dict[str, Any], int]] = (
        [({"tutor": "none", "reuse": False}, everything)] if spec.baseline else []
    )
    for entry in spec.tutors:
        tutor = {k: v for k, v in entry.items() if k != "seeds"}
        for reuse in spec.reuse:
            arms.append(({**tutor, "reuse": reuse}, entry.get("seeds", everything)))
    configs: list[RunConfig] = []
    folders: dict[str, RunConfig] = {}
    for env, settings in spec.envs.items():
        for algo in spec.algos:
            for index, seed in enumerate(spec.seed_list):
                for arm, n_seeds in arms:
                    if index >= n_seeds:
                        continue
                    fields = {
                        **spec.defaults,
                        **settings.run_fields(),
                        **arm,
                        "env": env,
                        "algo": algo,
                        "seed": seed,
                    }
                    for override in spec.overrides:
                        if override.matches(fields):
                            fields.update(override.set)
                    try:
                        config = RunConfig.model_validate(fields)
                    except ValidationError as error:
                        first = error.errors()[0]
                        message = first["msg"].removeprefix("Value error, ")
                        raise SweepError(
                            f"run {env}/{algo}/{arm['tutor']}: {_where(first)}{message}"
                        ) from None
                    key = run_key(config)
                    if key in folders:
                        if folders[key] != config:
                            raise SweepError(
                                f"two different runs would share the folder {key}: give the "
                                "tutors settings that name their arm (tutor, llm, tutor_accuracy)"
                            )
                        continue  # listed twice: run once
                    folders[key] = config
                    configs.append(config)
    return configs


def select(configs: list[RunConfig], only: list[str]) -> list[RunConfig]:
    """The runs matching every ``KEY=VALUE`` of ``only`` (a run field, or ``arm``); the same key
    given twice matches either value: ``["env=snake", "tutor=expert", "tutor=none"]``."""
    wanted: dict[str, list[Any]] = {}
    for item in only:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or (key not in _RUN_FIELDS and key != "arm"):
            raise SweepError(f"--only expects FIELD=VALUE with a run field or arm, got {item!r}")
        try:
            wanted.setdefault(key, []).append(yaml.safe_load(value))
        except yaml.YAMLError:
            raise SweepError(f"--only {item!r}: the value is not valid YAML") from None

    def value(config: RunConfig, key: str) -> Any:
        return config.arm() if key == "arm" else getattr(config, key)

    return [c for c in configs if all(value(c, k) in v for k, v in wanted.items())]


def run_key(config: RunConfig) -> str:
    """The run's folder relative to the sweep's ``runs/``: ``env/algo/arm/seed<k>``."""
    return f"{config.env}/{config.algo}/{config.arm()}/seed{config.seed}"


__all__ = [
    "SweepError",
    "SweepSpec",
    "expand",
    "load_sweep",
    "run_key",
    "select",
]
