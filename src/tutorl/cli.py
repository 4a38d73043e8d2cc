"""The ``tutorl`` command: thin. It parses and validates, calls the library, prints the result."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

# Before anything loads torch or llama.cpp: idle OpenMP threads must not spin on a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pre-trained LLMs as tutors for RL agents, measured honestly.",
)
# Piped output (a file, CI) gets a wide console so tables are not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


class UserError(Exception):
    """A mistake in the user's input: reported in one line, exit status 2."""


def _parse_env_options(items: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--env-option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key.strip()] = yaml.safe_load(value)
    return options


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where.replace('_', '-')}: {message}")
    return "invalid run configuration: " + "; ".join(parts)


def _config(**kwargs: Any):
    from tutorl.rl.train import RunConfig

    try:
        return RunConfig(**kwargs)
    except ValidationError as error:
        raise UserError(_validation_message(error)) from None


# Shared options ---------------------------------------------------------------------------------
EnvOpt = Annotated[str, typer.Option("--env", help="Game: blackjack, snake or connect_four.")]
AlgoOpt = Annotated[str, typer.Option("--algo", help="Student algorithm: dqn, ppo or a2c.")]
TutorOpt = Annotated[
    str, typer.Option("--tutor", help="Tutor: none, expert, noisy-expert or random.")
]
AccuracyOpt = Annotated[
    float, typer.Option("--tutor-accuracy", help="noisy-expert: probability of the expert move.")
]
StepsOpt = Annotated[
    int | None, typer.Option("--steps", help="Environment steps (default: the game's).")
]
DecayOpt = Annotated[
    int | None,
    typer.Option("--ask-decay-steps", help="θ: steps over which asking decays (default 20%)."),
]
EnvOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--env-option", help="Game option KEY=VALUE, e.g. opponent=greedy (repeatable)."),
]


@app.command()
def train(
    env: EnvOpt,
    algo: AlgoOpt,
    tutor: TutorOpt = "none",
    tutor_accuracy: AccuracyOpt = 0.8,
    reuse: Annotated[bool, typer.Option(help="Reuse remembered advice (the paper's).")] = False,
    reuse_budget: Annotated[int, typer.Option(help="Reuses per answer before re-asking.")] = 3,
    ask_start: Annotated[float, typer.Option(help="Probability of asking at step 0.")] = 1.0,
    ask_end: Annotated[float, typer.Option(help="Probability of asking after θ steps.")] = 0.1,
    ask_decay_steps: DecayOpt = None,
    advice_budget: Annotated[
        int | None, typer.Option(help="Cap on the total tutor asks (default: none).")
    ] = None,
    steps: StepsOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of everything in the run.")] = 0,
    n_envs: Annotated[int | None, typer.Option(help="Vectorised envs.")] = None,
    eval_freq: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    eval_episodes: Annotated[int, typer.Option(help="Episodes per evaluation.")] = 50,
    env_option: EnvOptionOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<env>-<algo>-...).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train one student, with or without a tutor, and write its run folder."""
    config = _config(
        env=env,
        algo=algo,
        tutor=tutor,
        tutor_accuracy=tutor_accuracy,
        reuse=reuse,
        reuse_budget=reuse_budget,
        ask_start=ask_start,
        ask_end=ask_end,
        ask_decay_steps=ask_decay_steps,
        advice_budget=advice_budget,
        steps=steps,
        seed=seed,
        n_envs=n_envs,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        env_options=_parse_env_options(env_option),
    )
    from tutorl.rl.train import train as train_run

    out = out or Path("runs") / f"{env}-{algo}-{config.arm()}-seed{seed}"
    summary, _ = train_run(config, out, progress_bar=progress and not as_json)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=f"{env} · {algo} · tutor={config.arm()} · seed {seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("steps", "final_return", "best_return", "steps_to_threshold", "auc", "wall_time"):
        table.add_row(key, _fmt(summary[key]))
    if summary["advice"]:
        for key in ("tutor_asks", "advised_steps", "reuse_hits", "fallbacks", "agreement"):
            table.add_row(key, _fmt(summary["advice"][key]))
    console.print(table)
    console.print(f"run folder: {out}")


@app.command()
def compare(
    env: EnvOpt,
    algo: AlgoOpt,
    tutor: TutorOpt = "expert",
    tutor_accuracy: AccuracyOpt = 0.8,
    seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
    steps: StepsOpt = None,
    ask_decay_steps: DecayOpt = None,
    reuse_budget: Annotated[int, typer.Option(help="Reuses per answer before re-asking.")] = 3,
    eval_episodes: Annotated[int, typer.Option(help="Episodes per evaluation.")] = 50,
    eval_freq: Annotated[int | None, typer.Option(help="Evaluate every N steps.")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Success threshold for steps-to-threshold (default: the game's)."),
    ] = None,
    env_option: EnvOptionOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Parallel processes (default: cores).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for runs, table and plot.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Train the arms no tutor / tutor / tutor + reuse over several seeds and compare them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tutorl._io import atomic_write_json, atomic_write_text
    from tutorl.envs import get_game
    from tutorl.experiments.compare import (
        arm_configs,
        markdown_table,
        plot_curves,
        run_comparison,
        summarise,
        with_threshold,
    )

    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    base = _config(
        env=env,
        algo=algo,
        tutor=tutor,
        tutor_accuracy=tutor_accuracy,
        steps=steps,
        ask_decay_steps=ask_decay_steps,
        reuse_budget=reuse_budget,
        eval_episodes=eval_episodes,
        eval_freq=eval_freq,
        env_options=_parse_env_options(env_option),
    )
    game = get_game(env)
    out = out or Path("runs") / f"compare-{env}-{algo}-{tutor}"
    configs = arm_configs(base, seeds)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    ) as bar:
        task = bar.add_task(f"{env}/{algo}: {len(configs)} runs", total=len(configs))
        results = run_comparison(configs, out, workers, on_done=lambda c, s: bar.advance(task))
    if threshold is None:
        threshold = game.success_threshold
    else:
        results = with_threshold(results, out, threshold)
    rows = summarise(results)
    plot = plot_curves(results, out, out / "curves.png", threshold, f"{env} · {algo} · {tutor}")
    record = {"config": base.model_dump(), "threshold": threshold, "arms": rows}
    atomic_write_json(out / "comparison.json", record)
    atomic_write_text(out / "comparison.md", markdown_table(rows, threshold))
    if as_json:
        print(json.dumps({"env": env, "algo": algo, "arms": rows, "plot": str(plot)}, indent=2))
        return
    table = Table(title=f"{env} · {algo} · tutor={tutor} · {seeds} seeds · {base.steps} steps")
    for column in (
        "arm",
        "steps to thr.",
        "accel.",
        "final return",
        "best",
        "AUC",
        "asks",
        "reuse hits",
        "agreement",
        "wall s",
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for row in rows:
        reached = f"{row['reached']}/{row['seeds']}"
        prefix = "≥" if row["censored"] else ""
        table.add_row(
            row["arm"],
            f"{prefix}{row['steps_to_threshold']:,.0f} ({reached})",
            _fmt(row["acceleration"]),
            f"{row['final_return']:.3f} ± {row['final_return_ci95']:.3f}",
            f"{row['best_return']:.3f}",
            f"{row['auc']:.3f}",
            f"{row['tutor_asks']:,.0f}",
            f"{row['reuse_hits']:,.0f}",
            _fmt(row["agreement"]),
            f"{row['wall_time']:.0f}",
        )
    console.print(table)
    console.print(
        f"success threshold {threshold:g}; ± is a 95% t-interval over seeds; "
        f"≥ marks arms with runs that never reached the threshold (counted at full length)."
    )
    console.print(f"plot: {plot}\nruns: {out}")


@app.command()
def evaluate(
    env: EnvOpt,
    policy: Annotated[
        str, typer.Option("--policy", help="expert, random, or the path of a model.zip.")
    ] = "expert",
    episodes: Annotated[int, typer.Option(help="Episodes to play.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 0,
    env_option: EnvOptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Evaluate a policy: mean return with a 95% interval, and win/draw/loss where they exist."""
    from tutorl.envs import get_game
    from tutorl.rl.evaluation import (
        evaluate_episodes,
        evaluate_exact,
        expert_actor,
        load_model,
        model_actor,
        random_actor,
    )
    from tutorl.rl.train import configure_threads

    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    game = get_game(env)
    options = _parse_env_options(env_option)
    exact = None
    if policy == "expert":
        actor = expert_actor(game)
        if game.exact_evaluator and not options:
            exact = evaluate_exact(game, lambda batch: [game.expert(o) for o in batch]).mean_return
    elif policy == "random":
        actor = random_actor(game, seed)
    else:
        configure_threads()
        model = load_model(policy)
        expected = game.make(**{**game.options, **options}).observation_space
        if model.observation_space.shape != expected.shape:
            raise UserError(
                f"model {policy} was trained on observations of shape "
                f"{model.observation_space.shape}, but {env} gives {expected.shape}"
            )
        actor = model_actor(model)
        if game.exact_evaluator and not options:
            exact = evaluate_exact(
                game, lambda batch: model.predict(batch, deterministic=True)[0]
            ).mean_return
    result = evaluate_episodes(game, actor, episodes, seed, options).as_dict()
    result["exact_mean_return"] = exact
    if as_json:
        print(json.dumps({"env": env, "policy": policy, **result}, indent=2))
        return
    table = Table(title=f"{env} · policy={policy} · {episodes} episodes from seed {seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "mean return (95% CI)",
        f"{result['mean_return']:.4f} [{result['ci95_low']:.4f}, {result['ci95_high']:.4f}]",
    )
    if exact is not None:
        table.add_row("exact expected return", f"{exact:.4f}")
    table.add_row("success rate", f"{result['success_rate']:.3f}")
    if result["wins"] is not None:
        outcomes = f"{result['wins']} / {result['draws']} / {result['losses']}"
        table.add_row("win / draw / loss", outcomes)
    if result["illegal_moves"]:
        table.add_row("illegal moves", str(result["illegal_moves"]))
    console.print(table)


@app.command("tutor-eval")
def tutor_eval(
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Game(s) to measure (default: all).")
    ] = None,
    tutor: TutorOpt = "expert",
    tutor_accuracy: AccuracyOpt = 0.8,
    states: Annotated[int, typer.Option(help="Sampled reachable states per game.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the state sample.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Measure a tutor's agreement with the expert over sampled reachable states."""
    from tutorl.envs import game_names, get_game
    from tutorl.tutor.quality import evaluate_tutor
    from tutorl.tutor.tutors import make_tutor

    if states < 1:
        raise UserError(f"--states must be >= 1, got {states}")
    if tutor == "none":
        raise UserError("--tutor none has nothing to measure; choose a tutor")
    results = []
    for name in env or game_names():
        game = get_game(name)
        advisor = make_tutor(tutor, game, tutor_accuracy, seed=seed)
        results.append(evaluate_tutor(game, advisor, states, seed).as_dict())
    if as_json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"tutor quality · {tutor} · {states} states per game · seed {seed}")
    for column in ("env", "agreement (95% CI)", "base rate", "fallbacks", "answers", "p50 s"):
        table.add_column(column)
    for r in results:
        low, high = r["agreement_ci95"]
        table.add_row(
            r["env"],
            f"{r['agreement']:.3f} [{low:.3f}, {high:.3f}]",
            f"{r['base_rate']:.3f}",
            str(r["fallbacks"]),
            ", ".join(f"{k} {v:.2f}" for k, v in r["action_shares"].items()),
            f"{r['latency_p50']:.4f}",
        )
    console.print(table)
    console.print(
        "base rate: agreement of always answering the expert's most frequent action on the "
        "same states."
    )


@app.command()
def envs() -> None:
    """List the games, their success thresholds and default lengths."""
    from tutorl.envs import game_names, get_game

    table = Table(title="games")
    for column in ("env", "actions", "success threshold", "default steps", "options"):
        table.add_column(column)
    for name in game_names():
        game = get_game(name)
        table.add_row(
            name,
            ", ".join(game.action_names),
            f"{game.success_threshold:g}",
            f"{game.default_steps:,}",
            json.dumps(game.options),
        )
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main() -> None:
    """Entry point: user mistakes become one red line and exit status 2, never a traceback.

    Click reports usage errors (a missing or malformed option) itself, also with status 2.
    Set ``TUTORL_DEBUG=1`` to see the traceback of any error.
    """
    try:
        app()
    except (UserError, ValueError, FileNotFoundError) as error:
        if os.environ.get("TUTORL_DEBUG"):
            raise
        err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
