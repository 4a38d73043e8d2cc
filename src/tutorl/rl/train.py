"""One tutored (or untutored) training run: env + student + tutor -> a run folder.

A run folder holds ``config.json`` (written once env, student and tutor are built),
``curve.csv`` (rewritten atomically after every evaluation), TensorBoard events in ``tb/``,
``model.zip`` and finally ``summary.json``.
A ``summary.json`` means the run is complete; anything less is an interrupted run.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from tutorl._io import atomic_save_model, atomic_write_json, atomic_write_text
from tutorl.envs import get_game
from tutorl.envs.base import Game
from tutorl.llm.spec import LLMSpec, LLMTutorSpec, check_url
from tutorl.rl.algorithms import ALGOS, DEFAULT_N_ENVS, make_model
from tutorl.rl.evaluation import EvalResult, evaluate_actor, evaluate_model, tutor_actor
from tutorl.rl.imitation import ImitationSettings
from tutorl.tutor.advisor import Advisor
from tutorl.tutor.schedule import AdviceSchedule
from tutorl.tutor.tutors import TUTOR_KINDS, make_tutor

CURVE_COLUMNS = (
    "step",
    "mean_return",
    "std_return",
    "success_rate",
    "tutor_asks",
    "tutor_calls",
    "advised_steps",
    "reuse_hits",
    "wall_time",
)


class RunConfig(BaseModel):
    """Everything that defines one run. Same config, same seed: same result (on one machine
    and library stack; another CPU may round float32 differently, see docs/results.md).

    ``steps=None`` takes the game's default length; ``ask_decay_steps=None`` (θ) takes 20% of
    the run; ``eval_freq=None`` evaluates 20 times per run.
    """

    model_config = ConfigDict(extra="forbid")

    env: str
    algo: Literal["dqn", "ppo", "a2c"]
    tutor: str = "none"
    tutor_accuracy: float = Field(0.8, ge=0.0, le=1.0)
    reuse: bool = False
    reuse_budget: int = Field(3, ge=1)
    ask_start: float = Field(1.0, ge=0.0, le=1.0)
    ask_end: float = Field(0.1, ge=0.0, le=1.0)
    ask_decay_steps: int | None = Field(None, ge=0)
    advice_budget: int | None = Field(None, ge=0)
    # How advice enters learning (README "Advice modes and imitation"): the paper's `replace`
    # with imitation_coef 0 is today's mechanism bit for bit.
    advice_mode: Literal["replace", "label", "explore"] = "replace"
    imitation_coef: float = Field(0.0, ge=0.0)
    imitation_anneal: float | None = Field(None, gt=0.0, le=1.0)
    imitation_margin: float = Field(0.8, ge=0.0)
    imitation_target: Literal["action", "distribution"] = "action"
    imitation_guard: bool = False
    # The guard's evidence: the tutor must lead by this many standard errors (0: any lead).
    imitation_guard_z: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    steps: int | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    n_envs: int | None = Field(None, ge=1)
    eval_freq: int | None = Field(None, gt=0)
    eval_episodes: int = Field(50, gt=0)
    eval_seed: int = Field(10_000, ge=0)
    env_options: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    # LLM tutor (``tutor="llm"``): embedded model name or GGUF path, or an endpoint's model.
    llm: str | None = None
    llm_url: str | None = None
    llm_mode: Literal["score", "generate"] = "score"
    llm_api_key_env: str = "OPENAI_API_KEY"
    # Endpoint requests (--llm-url): total deadline per request, requests in flight at once.
    llm_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    llm_concurrency: int = Field(8, ge=1)
    prompt_template: str | None = None
    llm_cache: bool = True
    # Which of the game's state texts the LLM is shown (Snake: default or plain).
    describer: str = "default"
    # Score mode: correct the model's label prior (tutorl.tutor.llm_tutor); never the expert.
    llm_calibrate: Literal["none", "content-free", "batch-mean"] = "none"

    def llm_tutor_spec(self) -> LLMTutorSpec:
        """The LLM tutor these flat fields describe (they stay flat: the run-folder format)."""
        llm = LLMSpec(
            model=self.llm,
            url=self.llm_url,
            api_key_env=self.llm_api_key_env,
            timeout=self.llm_timeout,
            concurrency=self.llm_concurrency,
            cache=self.llm_cache,
        )
        return LLMTutorSpec(
            llm=llm,
            mode=self.llm_mode,
            template=self.prompt_template,
            describer=self.describer,
            calibrate=self.llm_calibrate,
        )

    @field_validator("llm_timeout", mode="before")
    @classmethod
    def _timeout_default(cls, value: Any) -> Any:
        return 60.0 if value is None else value  # run folders written before it had a default

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str) -> str:
        get_game(value)  # a clear error naming the known envs
        return value

    @field_validator("tutor")
    @classmethod
    def _known_tutor(cls, value: str) -> str:
        if value not in TUTOR_KINDS:
            raise ValueError(f"unknown tutor {value!r}; choose one of: {', '.join(TUTOR_KINDS)}")
        return value

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
        if self.tutor == "llm":
            llm = self.llm_tutor_spec().llm  # checks the URL and the endpoint's model name
            self.llm = llm.resolved().model  # stored resolved: a resumed run keeps it
        else:  # unused here (a sweep's shared defaults), but never silently malformed
            check_url(self.llm_url)
        return self

    @property
    def tutored(self) -> bool:
        return self.tutor != "none"

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

    def schedule(self) -> AdviceSchedule:
        """When the student asks (the flat ``ask_*`` fields, typed)."""
        return AdviceSchedule(
            self.ask_start, self.ask_end, self.ask_decay_steps, self.advice_budget
        )

    def imitation(self) -> ImitationSettings:
        """The supervised term (the flat ``imitation_*`` fields, typed)."""
        return ImitationSettings(
            coef=self.imitation_coef,
            anneal=self.imitation_anneal,
            margin=self.imitation_margin,
            target=self.imitation_target,
            guard=self.imitation_guard,
            guard_z=self.imitation_guard_z,
        )


def configure_threads() -> None:
    """One thread per training process: small networks on CPU are 20x slower with two threads
    under load (measured on this machine), and parallel runs use processes instead."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


class CurveCallback(BaseCallback):
    """Greedy evaluation every ``eval_freq`` environment steps; writes ``curve.csv`` each time.

    Evaluation is on fixed seeds (the same episodes at every checkpoint and in every arm), or
    exact for games that allow it, so curves of different arms differ only by the policy.
    """

    def __init__(
        self,
        game: Game,
        config: RunConfig,
        advisor: Advisor | None,
        out: Path | None,
        start_time: float,
        on_eval=None,
    ) -> None:
        super().__init__()
        self.game, self.config, self.advisor, self.out = game, config, advisor, out
        self.start_time = start_time
        self.rows: list[dict[str, Any]] = []
        self.next_eval = 0
        self.eval_seconds = 0.0
        self.on_eval = on_eval
        self.last: EvalResult | None = None

    def _evaluate(self) -> None:
        start = time.perf_counter()
        result = evaluate_model(
            self.model,
            self.game,
            self.config.eval_episodes,
            self.config.eval_seed,
            self.config.env_options,
        )
        self.eval_seconds += time.perf_counter() - start
        self.last = result
        imitation = getattr(self.model, "imitation", None)
        if imitation is not None:
            imitation.set_student_return(result)  # what the guard compares with
        stats = self.advisor.stats if self.advisor else None
        row = {
            "step": self.num_timesteps,
            "mean_return": round(result.mean_return, 6),
            "std_return": round(result.std_return, 6),
            "success_rate": round(result.success_rate, 6),
            "tutor_asks": stats.asks if stats else 0,
            "tutor_calls": stats.tutor_calls if stats else 0,
            "advised_steps": stats.advised if stats else 0,
            "reuse_hits": stats.reuse_hits if stats else 0,
            "wall_time": round(time.perf_counter() - self.start_time, 3),
        }
        self.rows.append(row)
        self.logger.record("eval/mean_return", result.mean_return)
        self.logger.record("eval/success_rate", result.success_rate)
        if stats:
            self.logger.record("tutor/asks", stats.asks)
            self.logger.record("tutor/advised_steps", stats.advised)
            self.logger.record("tutor/reuse_hits", stats.reuse_hits)
        self.logger.dump(self.num_timesteps)
        if self.out is not None:
            atomic_write_text(self.out / "curve.csv", curve_to_csv(self.rows))
        if self.on_eval is not None:
            self.on_eval(row)
        self.next_eval = self.num_timesteps + self.config.eval_freq

    def _on_training_start(self) -> None:
        self._evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["step"] != self.num_timesteps:
            self._evaluate()


def curve_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def curve_metrics(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per-run curve metrics: steps to the success threshold (first evaluation at or above it),
    final and best return, and the normalised area under the curve (mean return over training,
    trapezoidal in environment steps)."""
    steps = np.array([r["step"] for r in rows], dtype=float)
    values = np.array([r["mean_return"] for r in rows], dtype=float)
    reached = np.nonzero(values >= threshold)[0]
    span = steps[-1] - steps[0]
    auc = float(np.trapezoid(values, steps) / span) if span > 0 else float(values[-1])
    return {
        "steps_to_threshold": int(steps[reached[0]]) if len(reached) else None,
        "final_return": float(values[-1]),
        "best_return": float(values.max()),
        "auc": auc,
    }


def llm_stats(tutor) -> dict[str, Any] | None:
    """LLM tutor counters: model calls saved by the response cache, and failures by kind."""
    llm = getattr(tutor, "llm", None)
    if llm is None:
        return None
    return {
        "model": getattr(llm, "identity", None),
        "mode": tutor.mode,
        "cache_hits": getattr(llm, "hits", None),
        "cache_misses": getattr(llm, "misses", None),
        "failures": dict(tutor.failures),
    }


def train(
    config: RunConfig,
    out: str | Path | None = None,
    progress_bar: bool = False,
    on_eval=None,
    llm_service: tuple[str, int, str] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Train one run and return ``(summary, model)``.

    :param config: the run's configuration (validated).
    :param out: run folder; ``None`` keeps everything in memory (no files).
    :param progress_bar: show SB3's progress bar.
    :param on_eval: optional ``f(curve_row)`` called after each evaluation (progress displays).
    :param llm_service: handle of an :class:`~tutorl.llm.service.LLMService` serving
        ``config.llm`` (sweeps share one model process); it does not change the results.
    """
    configure_threads()
    start_time = time.perf_counter()
    game = get_game(config.env)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").unlink(missing_ok=True)
        # A redone run starts clean: a killed attempt's TensorBoard events would mix with these.
        shutil.rmtree(out_dir / "tb", ignore_errors=True)

    env = make_vec_env(
        lambda **_: game.make(**{**game.options, **config.env_options}),
        n_envs=config.n_envs,
        seed=config.seed,
    )
    tensorboard_log = str(out_dir / "tb") if out_dir is not None else None
    model = make_model(config.algo, game, env, config.seed, config.hyperparams, tensorboard_log)

    advisor = None
    tutor = make_tutor(
        config.tutor,
        game,
        config.tutor_accuracy,
        seed=config.seed + 1,
        llm=config.llm_tutor_spec() if config.tutor == "llm" else None,
        service=llm_service,
    )
    if out_dir is not None:
        # Written once the tutor (an LLM) has loaded: a model that fails leaves no config.
        atomic_write_json(out_dir / "config.json", config.model_dump())
    if tutor is not None:
        model.set_tutor(
            tutor,
            game,
            schedule=config.schedule(),
            advice_mode=config.advice_mode,
            reuse_budget=config.reuse_budget if config.reuse else None,
            imitation=config.imitation(),
        )
        if config.imitation_guard and model.imitation is not None:
            # The tutor's own greedy return, on the student's evaluation protocol.
            model.imitation.set_tutor_return(
                evaluate_actor(
                    game,
                    tutor_actor(game, tutor),
                    config.eval_episodes,
                    config.eval_seed,
                    config.env_options,
                )
            )
    advisor, imitation = model.advisor, model.imitation

    callback = CurveCallback(game, config, advisor, out_dir, start_time, on_eval)
    model.learn(
        total_timesteps=config.steps,
        callback=callback,
        progress_bar=progress_bar,
        tb_log_name="run",
    )
    env.close()
    wall = time.perf_counter() - start_time
    train_seconds = wall - callback.eval_seconds

    summary: dict[str, Any] = {
        "env": config.env,
        "algo": config.algo,
        "arm": config.arm(),
        "tutor": config.tutor,
        "reuse": config.reuse,
        "seed": config.seed,
        "steps": int(model.num_timesteps),
        "success_threshold": game.success_threshold,
        **curve_metrics(callback.rows, game.success_threshold),
        "final_eval": callback.last.as_dict() if callback.last else None,
        "wall_time": round(wall, 2),
        "train_steps_per_second": round(model.num_timesteps / max(train_seconds, 1e-9), 1),
        "advice_mode": config.advice_mode if advisor else None,
        "advice": advisor.stats.as_dict() if advisor else None,
        "imitation": imitation.as_dict() if imitation else None,
        "agreement": advisor.stats.agreement if advisor else None,
        "llm": llm_stats(tutor),
    }
    if out_dir is not None:
        atomic_save_model(model, out_dir / "model.zip")
        # Written last: its presence marks the run as complete.
        atomic_write_json(out_dir / "summary.json", summary)
    return summary, model


__all__ = ["ALGOS", "RunConfig", "curve_metrics", "train"]
