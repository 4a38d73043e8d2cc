"""``tutorl ultra``: identify critical states, refine, evaluate — over several seeds.

Per seed ``k`` the folder ``OUT/seed<k>/`` receives, each written once and atomically (a rerun
resumes where a kill stopped it):

1. ``agent.zip``: the sub-optimal agent (trained for ``train_steps`` with seed ``k``, or the
   model file given).
2. ``episodes.jsonl``: its greedy episodes.
3. ``<identifier>/identification.json`` and ``table.json``: the critical steps named by the
   ``llm`` (the episodes as numbered text, structured output, validated) or by the ``expert``
   identifier (the steps where the agent's action lost more than a threshold of value; the
   stand-in for a strong LLM), with precision/recall against the expert's critical steps, and
   the lookup table built from them; ``random-table.json`` for the ablation.
4. ``<identifier>/<variant>.json``: continued training from ``agent.zip`` under each variant
   (``none`` is shared by the identifiers: it uses no table), return before and after.
5. ``summary.json``, written last: the seed is finished (the run store's mark, as for a
   training run; a seed folder without one resumes from its files above).

Each seed is a task of the sweep's run store and executors (:mod:`tutorl.experiments.executors`):
``--workers`` seeds at once on a local pool or on Ray, a failed seed recorded in its
``error.json`` without stopping the others, a full disk stopping new seeds.

``OUT/ultra.json`` and the report (``OUT/report/``, :mod:`tutorl.ultra.report`) then hold the
table over seeds: return before and after refinement (mean with a 95% bootstrap interval), the
improvement, and the probability that a variant's seed ends above a ``none`` seed.

Continuous games (Hopper): PPO or A2C only, the ``llm`` identifier only (no expert, no action
values), suggested actions are vectors, and the table matches states within a radius
(``table_radius``, default the game's) in the game's ``table_scale`` units (see
:mod:`tutorl.ultra.table`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from tutorl._io import atomic_save_model, atomic_write_json
from tutorl.envs import get_game
from tutorl.specs import GameFields, LLMFields, Option, PathText
from tutorl.ultra.refine import VARIANTS, variants


class UltraFields(GameFields):
    """An ULTRA experiment's own fields: the agent, its episodes, identification, refinement."""

    panel: ClassVar[str] = "ULTRA"

    model: PathText = Field(
        None, description="A model.zip to refine (default: train a weak one)."
    )  # an SB3 agent, not the LLM (that is `llm`)
    train_steps: int = Field(5_000, gt=0, description="Steps of the weak agent's training.")
    episodes: int = Field(20, gt=0, description="Episodes of the agent to analyse.")
    max_episode_steps: int = Field(
        500,
        gt=0,
        description="Analyse at most this many steps of each episode (a weak agent that loops "
        "to the time limit repeats itself; identification costs one LLM call per chunk).",
    )
    identifiers: Annotated[list[Literal["llm", "expert"]], Option("--identifier")] = Field(
        default_factory=lambda: ["expert", "llm"],
        min_length=1,
        description="llm and/or expert (default: both where the game has an expert).",
    )
    variants: Annotated[list[str], Option("--variant")] = Field(
        default_factory=lambda: list(VARIANTS),
        min_length=1,
        description="none, A, R, RA, random (default: all).",
    )
    refine_steps: int = Field(5_000, gt=0, description="Steps of continued training.")
    reward_scale: float = Field(1.0, ge=0, description="Multiplier of implicit rewards.")
    seeds: int = Field(3, ge=1, description="Seeds (agents) to repeat everything for.")
    eval_episodes: int = Field(100, gt=0, description="Evaluation episodes.")
    threshold: float | None = Field(
        None,
        ge=0,
        description="Value lost above which the expert calls a step critical (default: the "
        "game's; set it for other DoorKey sizes, where a wasted step costs 0.9/limit).",
    )
    chunk_tokens: int = Field(
        600,
        ge=200,
        description="Approximate tokens of episode text per LLM request (real ones can be 2x).",
    )
    max_critical: int = Field(
        5, ge=1, le=10, description="Critical states the LLM may name per episode."
    )
    table_radius: float | None = Field(
        None,
        gt=0,
        description="Match a state to the nearest critical state within this distance (in the "
        "game's table_scale units) instead of by its exact key (default: the game's; Hopper 1, "
        "exact keys elsewhere).",
    )


class UltraConfig(LLMFields, UltraFields):
    """Everything that defines an ULTRA experiment (validated)."""

    model_config = ConfigDict(extra="forbid")
    _threshold_given: bool = PrivateAttr(False)  # True: the user chose it (not the default)

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[str]) -> list[str]:
        return variants(value)

    def _check_model(self, game: Any) -> None:
        _model_matches(self, game)

    @model_validator(mode="after")
    def _check(self) -> UltraConfig:
        if self.model is not None and not Path(self.model).is_file():
            raise ValueError(f"model file not found: {self.model}")
        game = get_game(self.env)
        game.check_algo(self.algo, label=self.env)
        if "expert" in self.identifiers and not game.has_expert:
            raise ValueError(
                f"{self.env} has no expert: the expert identifier needs one; use --identifier llm"
            )
        if "expert" in self.identifiers and game.action_values is None:
            raise ValueError(f"{self.env} has no action values: the expert identifier needs them")
        game.check_options(self.env_options, label=self.env)  # now, not in a worker
        if self.model is not None:
            self._check_model(game)
        self._threshold_given = self.threshold is not None
        if self.threshold is None and game.action_values is not None:
            if game.ultra_threshold is None:
                raise ValueError(
                    f"{self.env} sets no ultra_threshold (the value lost that makes a step "
                    "critical): pass --threshold"
                )
            # Stored resolved too: a changed default cannot silently rescore a resumed run.
            self.threshold = float(game.ultra_threshold)
        self._resolve_llm(used="llm" in self.identifiers)
        return self


def _model_matches(config: UltraConfig, game: Any) -> None:
    from tutorl.rl.evaluation import load_model

    model = load_model(config.model)
    name = type(model).__name__.lower()
    if config.algo not in name:
        raise ValueError(
            f"{config.model} is a {name.removeprefix('tutored')} model, not {config.algo}"
        )
    env = game.make(**{**game.options, **config.env_options})
    try:
        if model.observation_space != env.observation_space:
            raise ValueError(f"{config.model} was not trained on {config.env}")
    finally:
        env.close()


def _agent(config: UltraConfig, seed: int, folder: Path) -> Path:
    path = folder / "agent.zip"
    if path.exists():
        return path
    if config.model is not None:
        from tutorl.rl.evaluation import load_model

        atomic_save_model(load_model(config.model), path)
        return path
    from tutorl.ultra.trajectories import train_suboptimal

    model = train_suboptimal(
        config.env, config.algo, config.train_steps, seed, env_options=config.env_options
    )
    atomic_save_model(model, path)
    return path


def _episodes(config: UltraConfig, seed: int, folder: Path, agent: Path):
    from tutorl.rl.evaluation import load_model
    from tutorl.ultra.trajectories import collect, load_episodes, save_episodes

    game = get_game(config.env)
    path = folder / "episodes.jsonl"
    if path.exists():
        return load_episodes(path, game)
    episodes = collect(
        game,
        load_model(agent),
        config.episodes,
        seed=1_000_000 + 1_000 * seed,  # disjoint from the evaluation seeds (10,000 on)
        env_options=config.env_options,
        max_steps=config.max_episode_steps,
    )
    save_episodes(episodes, path)
    return episodes


def _threshold(config: UltraConfig) -> float:
    if config.threshold is not None:
        return config.threshold
    threshold = get_game(config.env).ultra_threshold
    return 0.1 if threshold is None else float(threshold)


def _soundness(config: UltraConfig, episodes, named) -> dict[str, Any] | None:
    from tutorl.ultra.expert import suggestion_soundness

    game = get_game(config.env)
    if game.action_values is None:
        return None
    views = [[s.view for s in e.steps] for e in episodes]
    return suggestion_soundness(game, views, named, _threshold(config))


def _true_critical(config: UltraConfig, episodes) -> list[set[int]] | None:
    from tutorl.ultra.expert import expert_critical_steps

    game = get_game(config.env)
    if game.action_values is None:
        return None
    threshold = _threshold(config)
    return [
        set(
            expert_critical_steps(
                game, [s.view for s in e.steps], [s.action for s in e.steps], threshold
            )
        )
        for e in episodes
    ]


def _identify(config: UltraConfig, identifier: str, episodes, llm: Any) -> dict[str, Any]:
    """Critical steps as ``(episode, step, action, reward, rationale)`` and the counters."""
    from tutorl.ultra.expert import expert_suggestions

    game = get_game(config.env)
    true = _true_critical(config, episodes)
    start = time.perf_counter()
    named: list[tuple[int, int, int, float, str]] = []
    counters: dict[str, Any] = {}
    if identifier == "expert":
        assert true is not None
        for e, (episode, steps) in enumerate(zip(episodes, true, strict=True)):
            views = [s.view for s in episode.steps]
            actions = [s.action for s in episode.steps]
            for t, action, reward in expert_suggestions(game, views, steps, actions=actions):
                named.append((e, t, action, reward, "expert: value lost"))
    else:
        from tutorl.ultra.identify import identify
        from tutorl.ultra.text import chunk_episode

        chunks, owner = [], []
        for e, episode in enumerate(episodes):
            for chunk in chunk_episode(game, episode, max_tokens=config.chunk_tokens):
                chunks.append(chunk)
                owner.append(e)
        result = identify(llm, game, chunks, max_critical=config.max_critical)
        for c in result.critical:
            named.append((owner[c.chunk], c.step, c.action, c.reward, c.rationale))
        counters = result.counters()
    record: dict[str, Any] = {
        "identifier": identifier,
        "critical": [list(item) for item in named],
        "counters": counters,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if true is not None:
        from tutorl.ultra.expert import precision_recall

        predicted = {(e, t) for e, t, *_ in named}
        truth = {(e, t) for e, steps in enumerate(true) for t in steps}
        record["quality"] = precision_recall(predicted, truth)
        record["quality"].update(_soundness(config, episodes, named) or {})
        record["quality"]["steps"] = sum(len(e.steps) for e in episodes)
        record["quality"]["threshold"] = _threshold(config)
    return record


def observation_scale(episodes) -> np.ndarray | None:
    """Per-component standard deviation of the episodes' observations, floored at their median
    (and at 1e-8), so that a nearly constant component cannot dominate distances; ``None`` (raw
    units) without any step. The scale of radius tables for games without a ``table_scale``."""
    if not any(e.steps for e in episodes):
        return None
    obs = np.stack(
        [np.asarray(s.obs, dtype=np.float64).reshape(-1) for e in episodes for s in e.steps]
    )
    std = obs.std(axis=0)
    return np.maximum(std, max(float(np.median(std)), 1e-8))


def _empty_table(config: UltraConfig, episodes):
    from tutorl.ultra.table import CriticalTable

    game = get_game(config.env)
    radius = config.table_radius if config.table_radius is not None else game.table_radius
    if radius is None:
        return CriticalTable(game=game)
    scale = game.table_scale if game.table_scale is not None else observation_scale(episodes)
    return CriticalTable(game=game, mode="radius", radius=radius, scale=scale)


def _tables(config: UltraConfig, record: dict[str, Any], episodes, seed: int):
    from tutorl.ultra.table import CriticalTable, Entry

    table = _empty_table(config, episodes)
    source = "expert" if record["identifier"] == "expert" else "llm"
    for e, t, action, reward, rationale in record["critical"]:
        step = episodes[e].steps[t]
        entry = Entry(action, reward, source, rationale, judged_action=step.action)
        table.add(step.obs, entry)
    return table, CriticalTable.random_like(table, episodes, seed=seed)


class UltraSeed(BaseModel):
    """One seed of an ULTRA experiment: a task of the run store
    (:mod:`tutorl.experiments.executors`), done in ``OUT/seed<k>/``."""

    model_config = ConfigDict(extra="forbid")

    config: UltraConfig
    seed: int = Field(ge=0)


class UltraError(ValueError):
    """Some seeds failed (their ``error.json`` says why) or the disk filled up; the finished
    seeds are kept and the same command does the rest."""


def run_ultra(
    config: UltraConfig,
    out: Path,
    on_progress: Callable[[str], None] | None = None,
    executor: Literal["local", "ray"] = "local",
    workers: int | None = 1,
    address: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment into ``out``; return the summary (also in ``ultra.json``).

    Each seed is a task of the sweep's run store (a seed's ``summary.json`` marks it
    finished), so a failed seed does not stop the others and a full disk stops starting new
    ones. ``workers=1`` (the default) does the seeds one after another in this process (a game
    registered in it is seen); more, or ``executor="ray"``, do ``workers`` seeds at once in
    worker processes (``None``: one per core), with the same results.

    :raises ValueError: ``out`` holds another configuration, or another process is running there.
    :raises UltraError: some seeds failed or the disk is full (the others' results are kept).
    """
    from tutorl.experiments.executors import Task, run_lock, run_tasks

    say = on_progress or (lambda _: None)
    embedded = "llm" in config.identifiers and not config.llm_url
    if embedded:  # an unknown or uninstalled model fails before anything is written
        from tutorl.llm.models import resolve_model

        resolve_model(config.llm)
    out = out.resolve()  # Ray workers on other nodes do not share this process's directory
    out.mkdir(parents=True, exist_ok=True)
    lock = run_lock(out)  # two runs writing one folder would overwrite each other's files
    if lock is None:
        raise ValueError(
            f"another tutorl ultra is running in {out}; wait for it or use another --out"
        )
    try:
        _store_config(config, out)
        todo = []
        for seed in range(config.seeds):
            folder = out / f"seed{seed}"
            if (folder / "summary.json").exists():
                continue
            # The model is served only to seeds that still have to ask it.
            asks = embedded and not (folder / "llm" / "identification.json").exists()
            task = UltraSeed(config=config, seed=seed)
            todo.append(
                Task(f"seed{seed}", task, folder, job="ultra-seed",
                     embedded_llm=config.llm if asks else None)
            )  # fmt: skip
        inline = executor == "local" and (workers or 0) == 1
        progress = run_tasks(
            todo,
            config.seeds,
            config.seeds - len(todo),
            "inline" if inline else executor,
            workers,
            address,
            on_progress=lambda progress, task, result: _show(progress, task, result, say),
        )
        finished = progress.done + progress.skipped
        if finished:
            summary = summarise(out, config)
            atomic_write_json(out / "ultra.json", summary)
            from tutorl.ultra.report import write_ultra_report

            write_ultra_report(out)  # OUT/report/ultra.md, .html, .png, .csv
    finally:
        lock.close()
    if progress.disk_full:
        raise UltraError(
            f"the disk holding {out} is full (No space left on device): {finished} finished "
            "seeds are kept; free some space and run the same command again to do the others"
        )
    if progress.failed:
        raise UltraError(
            f"{progress.failed} of {config.seeds} seeds failed (each failed seed's error.json "
            f"under {out} says why); {finished} finished seeds are kept: run the same command "
            "again to retry the others"
        )
    return summary


def _show(progress: Any, task: Any, result: dict[str, Any] | None, say: Callable[[str], None]):
    """A seed's progress lines, written by this process from the seed's ``summary.json``."""
    if task is None:
        return
    if result is None:
        say(f"{task.key}: started ({progress.running} running)")
        return
    if result["status"] == "requeued":
        say(f"{task.key}: its worker died; starting it again")
        return
    count = f"{progress.done + progress.skipped} of {progress.total} seeds finished"
    if result["status"] == "skipped":
        say(f"{task.key}: finished by another process ({count})")
        return
    if result["status"] != "done":
        why = f": {result['error']}" if result.get("error") else ""
        say(f"{task.key}: FAILED in {result['seconds']:.0f} s{why} ({count})")
        return
    seed = json.loads((task.folder / "summary.json").read_text())
    named = ", ".join(f"{k} named {n} critical steps" for k, n in seed["critical"].items())
    say(f"{task.key}: done in {result['seconds']:.0f} s; {named} ({count})")
    for key, (before, after) in seed["returns"].items():
        say(f"{task.key}: {key}: return {before:.3f} -> {after:.3f}")


def _store_config(config: UltraConfig, out: Path) -> None:
    """Write ``out/config.json``, or check that ``out`` holds this configuration (only the
    number of seeds may grow)."""
    stored = out / "config.json"
    previous, unstored_threshold = None, False
    if stored.exists():
        raw = json.loads(stored.read_text())
        previous = UltraConfig.model_validate(raw)
        # Written before thresholds were stored: the validator just filled in today's default,
        # which may not be the one this folder was scored with.
        unstored_threshold = raw.get("threshold", 0) is None and previous.threshold is not None
        if unstored_threshold:
            if not config._threshold_given:
                raise ValueError(
                    f"{out} was written before tutorl stored the expert's threshold; "
                    "resume it with an explicit --threshold"
                )
            previous = previous.model_copy(update={"threshold": config.threshold})
        # Seeds are the one setting a finished run can change: seed k's files do not depend on
        # how many seeds there are, so more seeds extend the run.
        if previous.model_copy(update={"seeds": config.seeds}).model_dump() != config.model_dump():
            raise ValueError(
                f"{out} holds an ULTRA run of another configuration "
                "(only --seeds may change); use another --out"
            )
        if config.seeds < previous.seeds:  # e.g. the default --seeds 3 on a 5-seed run
            raise ValueError(
                f"{out} holds {previous.seeds} seeds; pass --seeds {previous.seeds} or more"
            )
    if previous is None or unstored_threshold or previous.seeds != config.seeds:
        atomic_write_json(stored, config.model_dump())


def run_seed(
    task: UltraSeed, folder: Path, llm_service: tuple[str, int, str] | None = None
) -> dict[str, Any]:
    """Do (or resume) one seed into ``folder``: agent, episodes, identifications, tables and
    refinements, each written once and atomically; ``summary.json`` last.

    :param llm_service: handle of a shared :class:`~tutorl.llm.service.LLMService` serving the
        identifying model (``None``: this process loads it, if it still has to ask it).
    """
    from tutorl.rl.evaluation import load_model
    from tutorl.rl.train import configure_threads
    from tutorl.ultra.refine import refine
    from tutorl.ultra.table import CriticalTable

    configure_threads()
    start = time.perf_counter()
    config, seed = task.config, task.seed
    game = get_game(config.env)
    folder.mkdir(parents=True, exist_ok=True)
    agent = _agent(config, seed, folder)
    episodes = _episodes(config, seed, folder, agent)
    critical: dict[str, int] = {}
    returns: dict[str, list[float]] = {}
    for identifier in config.identifiers:
        sub = folder / identifier
        ident_path = sub / "identification.json"
        if ident_path.exists():
            record = json.loads(ident_path.read_text())
        else:
            llm = config.llm_spec().make(llm_service) if identifier == "llm" else None
            record = _identify(config, identifier, episodes, llm)
            atomic_write_json(ident_path, record)
        if not (sub / "table.json").exists():
            table, random_table = _tables(config, record, episodes, seed)
            random_table.save(sub / "random-table.json")
            table.save(sub / "table.json")
        critical[identifier] = len(record["critical"])
        for variant in config.variants:
            path = _result_path(folder, identifier, variant)
            if not path.exists():
                name = "random-table.json" if variant == "random" else "table.json"
                table = CriticalTable.load(sub / name, game=game)
                result = refine(
                    load_model(agent),
                    game,
                    table,
                    variant,
                    config.refine_steps,
                    seed=seed,
                    reward_scale=config.reward_scale,
                    env_options=config.env_options,
                    eval_episodes=config.eval_episodes,
                )
                atomic_write_json(path, result)
            result = json.loads(path.read_text())
            key = variant if variant == "none" else f"{identifier}/{variant}"
            returns[key] = [result["return_before"], result["return_after"]]
    summary = {
        "seed": seed,
        "episodes": len(episodes),
        "critical": critical,
        "returns": returns,
        "seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(folder / "summary.json", summary)  # written last: the seed is finished
    return summary


def finished_seeds(out: Path, config: UltraConfig) -> list[int]:
    """The seeds whose folder has its ``summary.json``: only they are summarised (a failed
    seed's files so far would mix a part of it into some rows)."""
    return [k for k in range(config.seeds) if (out / f"seed{k}" / "summary.json").exists()]


def _identification_summary(out: Path, config: UltraConfig, identifier: str) -> dict[str, Any]:
    """An identifier's quality pooled over seeds (the same for every variant it feeds)."""
    from tutorl.ultra.trajectories import load_episodes

    quality, counters, sizes = [], [], []
    for seed in finished_seeds(out, config):
        folder = out / f"seed{seed}"
        ident = folder / identifier / "identification.json"
        if not ident.exists():
            continue
        record = json.loads(ident.read_text())
        scores = record.get("quality") or {}
        if scores and "chance" not in scores:  # identified before these scores existed
            episodes = load_episodes(folder / "episodes.jsonl", get_game(config.env))
            scores.update(_soundness(config, episodes, record["critical"]) or {})
            scores["steps"] = sum(len(e.steps) for e in episodes)
        quality.append(scores)
        counters.append(record.get("counters") or {})
        sizes.append(len(record["critical"]))
    tp = sum(q.get("tp", 0) for q in quality)
    fp = sum(q.get("fp", 0) for q in quality)
    fn = sum(q.get("fn", 0) for q in quality)
    # Chance levels: naming steps at random is as precise as the share of truly critical
    # steps, per seed; pooled like precision itself, i.e. weighted by the steps each seed
    # named. Random legal suggestions are sound at the mean `chance`.
    scored = [q for q in quality if q.get("steps")]
    named = sum(q["tp"] + q["fp"] for q in scored)
    chance_tp = sum((q["tp"] + q["fp"]) * (q["tp"] + q["fn"]) / q["steps"] for q in scored)
    sound = sum(q.get("sound", 0) for q in quality)
    suggestions = sum(q.get("suggestions", 0) for q in quality)
    chance_sound = sum(q["chance"] * q["suggestions"] for q in quality if q.get("chance"))
    return {
        "critical_steps": float(np.mean(sizes)) if sizes else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "precision_chance": chance_tp / named if named else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "soundness": sound / suggestions if suggestions else None,
        "soundness_chance": chance_sound / suggestions if suggestions else None,
        "skipped_chunks": sum(c.get("skipped", 0) for c in counters),
        "chunks": sum(c.get("chunks", 0) for c in counters),
    }


def summarise(out: Path, config: UltraConfig) -> dict[str, Any]:
    """Return before and after refinement over seeds, per identifier and variant."""
    from tutorl.experiments import stats

    rows = []
    for identifier in config.identifiers:
        identification = _identification_summary(out, config, identifier)
        for variant in config.variants:
            results = []
            for seed in finished_seeds(out, config):
                path = _result_path(out / f"seed{seed}", identifier, variant)
                if path.exists():
                    results.append(json.loads(path.read_text()))

            def mean(key: str, results=results) -> float | None:
                return float(np.mean([r.get(key, 0) for r in results])) if results else None

            before = np.array([r["return_before"] for r in results], dtype=float)
            after = np.array([r["return_after"] for r in results], dtype=float)
            rows.append(
                {
                    "identifier": identifier,
                    "variant": variant,
                    "seeds": len(results),
                    "before": stats.interval(before),
                    "after": stats.interval(after),
                    "improvement": stats.interval(after - before),
                    "actions_replaced": mean("actions_replaced"),
                    "reward_bonuses": mean("reward_bonuses"),
                    "bonuses_withheld": mean("bonuses_withheld"),
                    **identification,
                }
            )
    # P(a variant's seed ends above a `none` seed), per identifier.
    for row in rows:
        none = next(
            (r for r in rows if r["identifier"] == row["identifier"] and r["variant"] == "none"),
            None,
        )
        row["p_beats_none"] = None
        if none is not None and row["variant"] != "none" and row["seeds"] and none["seeds"]:
            mine = _afters(out, config, row["identifier"], row["variant"])
            theirs = _afters(out, config, row["identifier"], "none")
            row["p_beats_none"] = stats.probability_of_improvement(mine, theirs)
    finished = len(finished_seeds(out, config))
    return {"config": config.model_dump(), "rows": rows, "seeds_finished": finished}


def _result_path(folder: Path, identifier: str, variant: str) -> Path:
    """``none`` uses no table and is shared by the identifiers; the others live per identifier."""
    return (folder if variant == "none" else folder / identifier) / f"{variant}.json"


def _afters(out: Path, config: UltraConfig, identifier: str, variant: str) -> np.ndarray:
    values = []
    for seed in finished_seeds(out, config):
        folder = out / f"seed{seed}"
        path = _result_path(folder, identifier, variant)
        if path.exists():
            values.append(json.loads(path.read_text())["return_after"])
    return np.array(values, dtype=float)
