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
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from tutorl._io import atomic_save_model, atomic_write_json, atomic_write_text
from tutorl.envs import get_game
from tutorl.envs.base import Game
from tutorl.rl.algorithms import make_model
from tutorl.rl.curve import CURVE_COLUMNS, curve_metrics
from tutorl.rl.evaluation import EvalResult, evaluate_actor, evaluate_model, tutor_actor
from tutorl.specs import ALGOS, RunConfig
from tutorl.tutor.advisor import Advisor
from tutorl.tutor.tutors import make_tutor


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
