"""Running a sweep: the run store, the shared LLM services, and two executors.

- **Run store.** ``OUT/runs/<env>/<algo>/<arm>/seed<k>/`` is an ordinary run folder. A
  ``summary.json`` (written last, atomically) marks a finished run: it is never redone. A folder
  without one was killed or crashed part-way and is redone: a training run from scratch, an
  ULTRA seed from its staged files. A run that raised is
  recorded in ``error.json`` (message and traceback) and retried by the next ``tutorl sweep``;
  it does not stop the others.
- **Executors.** ``local``: a process pool on this machine. ``ray``: Ray tasks, on a local Ray
  instance or an existing cluster (``address``). ``inline``: one task after another in this
  process (``tutorl ultra``'s default; games registered in the calling process are seen).
  All call the same :func:`run_task`, and a run
  is a pure function of its configuration (on one machine and library stack: another CPU
  may round float32 differently), so both give the same results.
- **Shared LLMs.** Runs whose tutor is an embedded model share one :class:`LLMService` per
  model (one model copy, not one per worker) and the persistent SQLite response cache.
- **Jobs.** A task is a training run (``train``: a :class:`RunConfig`) or one seed of
  ``tutorl ultra`` (``ultra-seed``: a :class:`tutorl.ultra.pipeline.UltraSeed`); both live in
  this store with the same lock, ``summary.json``, ``error.json`` and full-disk stop.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from tutorl._io import atomic_write_json
from tutorl._process import die_with_parent, quiet_thread_errors
from tutorl.specs import RunConfig

Handle = tuple[str, int, str]


def _try_lock(path: Path) -> Any | None:
    """An exclusive ``flock`` on ``path`` (held while the returned handle stays open), or
    ``None`` if another process holds it."""
    import fcntl

    handle = open(path, "a")  # noqa: SIM115 (held open: the lock lives with it)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def run_lock(folder: Path) -> Any | None:
    """An exclusive lock on ``folder/.lock`` (held while a run trains there), or ``None`` if
    another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    return _try_lock(folder / ".lock")


def sweep_lock(out: Path) -> Any:
    """Hold ``out/.sweep.lock`` for a whole sweep, so that a second sweep on the same folder
    stops at once instead of racing the first for its runs.

    :raises SweepError: another sweep holds it.
    """
    from tutorl.experiments.sweep import SweepError

    out.mkdir(parents=True, exist_ok=True)
    handle = _try_lock(out / ".sweep.lock")
    if handle is None:
        raise SweepError(
            f"another tutorl sweep is running on {out}: wait for it to end (or stop it), "
            "then run this command again"
        )
    return handle


Job = Literal["train", "ultra-seed"]


def _train(config_json: str, folder: Path, llm_service: Handle | None) -> None:
    from tutorl.rl.train import train

    train(RunConfig.model_validate_json(config_json), folder, llm_service=llm_service)


def _ultra_seed(config_json: str, folder: Path, llm_service: Handle | None) -> None:
    from tutorl.ultra.pipeline import UltraSeed, run_seed

    run_seed(UltraSeed.model_validate_json(config_json), folder, llm_service=llm_service)


JOBS: dict[str, Callable[[str, Path, Handle | None], None]] = {
    "train": _train,
    "ultra-seed": _ultra_seed,
}


def run_task(
    config_json: str, folder: str, llm_service: Handle | None = None, job: Job = "train"
) -> dict[str, Any]:
    """Do one task (train a run, or one ULTRA seed) into ``folder``; never raises (a failure is
    recorded in ``error.json``). The job writes ``summary.json`` last when it is complete.

    Runs in a worker process (pool or Ray): imports stay inside so the parent stays light.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    quiet_thread_errors()
    start = time.perf_counter()
    path = Path(folder)
    try:
        lock = run_lock(path)
    except OSError as error:  # the run folder cannot even be made (a full disk, say)
        return failure_of(path, error, time.perf_counter() - start)
    if lock is None:
        message = "another process is working in this run folder (a second sweep or ultra on it?)"
        return {"status": "failed", "error": message, "seconds": 0.0}
    if (path / "summary.json").exists():  # finished by another process since the plan
        lock.close()
        return {"status": "skipped", "error": None, "seconds": 0.0}
    try:
        (path / "error.json").unlink(missing_ok=True)
        JOBS[job](config_json, path, llm_service)
    except Exception as error:  # recorded, not raised: one bad run must not stop a sweep
        return failure_of(path, error, time.perf_counter() - start)
    finally:
        lock.close()
    return {"status": "done", "error": None, "seconds": time.perf_counter() - start}


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) says this machine's disk or quota is
    full (an LLM endpoint quoting its own full disk does not count)."""
    from tutorl.llm.base import LLMError

    while error is not None:
        if isinstance(error, LLMError):
            return False
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        # some writers (torch, zipfile, Ray's task errors) re-raise it keeping only the text
        if os.strerror(errno.ENOSPC) in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def failure_of(folder: Path, error: BaseException, seconds: float = 0.0) -> dict[str, Any]:
    """The result record of a run that raised ``error`` (recorded in ``error.json`` if the
    disk allows), marked ``disk_full`` when it did so for want of space."""
    if isinstance(error, ValidationError):  # its first line names only the model
        why = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        message = f"invalid configuration: {why}"[:500]
    else:
        message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    result = record_failure(folder, message, traceback.format_exc())
    return {**result, "seconds": seconds, "disk_full": is_disk_full(error)}


def record_failure(folder: Path, message: str, trace: str = "") -> dict[str, Any]:
    """Write ``error.json`` for a failed run; the result record for progress displays.

    When even that cannot be written (a full disk), the record is still returned: the folder
    has no ``summary.json``, so the next sweep redoes the run anyway.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "error.json", {"error": message, "traceback": trace})
    except OSError:
        pass
    return {"status": "failed", "error": message, "seconds": 0.0, "disk_full": False}


@dataclass
class Task:
    """One task to do: its configuration (a :class:`RunConfig` for ``train``), folder, the
    embedded model it loads (shared through one service) and that service's handle."""

    key: str
    config: BaseModel
    folder: Path
    llm_service: Handle | None = None
    attempts: int = 0
    job: Job = "train"
    embedded_llm: str | None = None

    def args(self) -> tuple[str, str, Handle | None, Job]:
        return (self.config.model_dump_json(), str(self.folder), self.llm_service, self.job)


@dataclass
class SweepProgress:
    """Counts for progress displays; ``on_change`` is called after each update."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    skipped: int = 0
    seconds: list[float] = field(default_factory=list)
    #: a run failed because the disk (or quota) is full: no further run is started
    disk_full: bool = False

    def eta(self, workers: int | None) -> float | None:
        """Seconds left: remaining runs × mean run time so far / workers."""
        if not self.seconds:
            return None
        left = self.total - self.done - self.failed - self.skipped
        parallel = workers or max(1, self.running)
        return left * (sum(self.seconds) / len(self.seconds)) / parallel


OnResult = Callable[[Task, dict[str, Any]], None]
OnStart = Callable[[Task], None]


def run_local(
    tasks: list[Task],
    workers: int,
    on_start: OnStart,
    on_result: OnResult,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """A spawn process pool (forking a process that has loaded torch/OpenMP can deadlock).

    Workers end with the sweep (:func:`~tutorl._process.die_with_parent`). A worker that dies
    (killed, out of memory) breaks the pool: the runs then in flight are queued once more on a
    new pool, and fail after a second death. Once ``stop()`` is true no new run starts; the
    runs in flight finish.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = list(tasks)
    while queue and not stop():
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=die_with_parent
        ) as pool:
            in_flight: dict[Any, Task] = {}
            broken = False
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < workers and not stop():
                    task = queue.pop(0)
                    in_flight[pool.submit(run_task, *task.args())] = task
                    on_start(task)
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = in_flight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        in_flight[future] = task  # handled with the others below
                        continue
                    except Exception as error:  # run_task never raises; its transport may
                        result = failure_of(task.folder, error)
                    on_result(task, result)
            for task in in_flight.values():  # only after a broken pool
                task.attempts += 1
                if task.attempts < 2:
                    queue.insert(0, task)
                    on_result(task, {"status": "requeued", "error": None, "seconds": 0.0})
                else:
                    on_result(task, record_failure(task.folder, "worker process died twice"))


def run_inline(
    tasks: list[Task], on_start: OnStart, on_result: OnResult, stop: Callable[[], bool]
) -> None:
    """One task after another in this process: no worker to start, and what the calling
    process registered (a game from :func:`tutorl.envs.register`) is seen by every task."""
    for task in tasks:
        if stop():
            break
        on_start(task)
        on_result(task, run_task(*task.args()))


def run_ray(
    tasks: list[Task],
    workers: int | None,
    address: str | None,
    on_start: OnStart,
    on_result: OnResult,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Ray tasks, one CPU each. ``address=None`` starts a local Ray instance with ``workers``
    CPUs; otherwise connects to that cluster (``"auto"`` or ``"ray://host:10001"``). On a
    cluster, the output folder must be on a filesystem every node sees."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from tutorl.experiments.sweep import SweepError

    try:
        import ray
    except ImportError:
        raise SweepError(
            'the ray executor needs Ray: pip install "tutorl[ray]" (or pip install ray)'
        ) from None
    env_vars = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive", "RAY_AUTH_MODE": "disabled"}
    for name in ("TUTORL_CACHE", "TUTORL_MODELS_DIR", "TUTORL_OLLAMA_TAGS"):
        if name in os.environ:
            env_vars[name] = os.environ[name]
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                # "local": a new instance even if RAY_ADDRESS or a running cluster is around.
                address=address or "local",
                num_cpus=workers if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                runtime_env={"env_vars": env_vars},
            )
        except Exception as error:  # Ray raises several kinds; the user needs one line
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SweepError(f"could not start or reach {where}: {message}") from None
    try:
        if workers is None:
            workers = int(ray.cluster_resources().get("CPU", 1))
        remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        queue, pending = list(tasks), {}
        while (queue and not stop()) or pending:
            # At most `workers` tasks submitted at a time: progress shows what really runs.
            while queue and len(pending) < workers and not stop():
                task = queue.pop(0)
                pending[remote.remote(*task.args())] = task
                on_start(task)
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as error:  # the worker itself died, or could not start the run
                result = record_failure(task.folder, f"ray worker failed: {type(error).__name__}")
                result["disk_full"] = is_disk_full(error)
            on_result(task, result)
    finally:
        if started_here:
            ray.shutdown()


FolderOf = Callable[[RunConfig], Path]


def plan(
    configs: list[RunConfig], out: Path, folder_of: FolderOf | None = None
) -> tuple[list[Task], list[Task]]:
    """Split the sweep's runs into finished ones and ones to do; refuse a folder that holds a
    run of another configuration (a resumed sweep must never mix in foreign runs).

    :param folder_of: a run's folder (default ``out/runs/<env>/<algo>/<arm>/seed<k>``;
        ``tutorl compare`` keeps its ``out/<arm>/seed<k>``).
    """
    from tutorl.experiments.sweep import SweepError, run_key

    finished, todo = [], []
    for config in configs:
        key = run_key(config)
        folder = folder_of(config) if folder_of else out / "runs" / key
        stored = folder / "config.json"
        if stored.exists():
            before = RunConfig.model_validate_json(stored.read_text())
            if before != config:
                changed = [k for k, v in config.model_dump().items() if getattr(before, k) != v]
                raise ValueError(
                    f"{folder} holds a run with a different configuration "
                    f"({', '.join(changed)}); choose another --out or remove that folder"
                )
        embedded = config.llm if config.tutor == "llm" and not config.llm_url else None
        task = Task(key, config, folder, embedded_llm=embedded)
        if (folder / "summary.json").exists():
            finished.append(task)
            continue
        if (folder / ".lock").exists():
            lock = run_lock(folder)
            if lock is None:
                raise SweepError(
                    f"{folder} is being trained by another process: is another tutorl sweep "
                    "running on this folder? Wait for it or stop it first"
                )
            lock.close()
        todo.append(task)
    return finished, todo


def shared_llms(tasks: list[Task], share: bool) -> set[str]:
    """Embedded models that runs of ``tasks`` load (runs on an endpoint need none)."""
    if not share:
        return set()
    return {t.embedded_llm for t in tasks if t.embedded_llm}


def run_sweep(
    configs: list[RunConfig],
    out: Path,
    executor: Literal["local", "ray"] = "local",
    workers: int | None = None,
    address: str | None = None,
    on_progress: Callable[[SweepProgress, Task | None, dict[str, Any] | None], None] | None = None,
    lock: bool = True,
    folder_of: FolderOf | None = None,
) -> SweepProgress:
    """Run every configuration not already finished under ``out``.

    :param configs: the expanded sweep (:func:`tutorl.experiments.sweep.expand`).
    :param out: the sweep folder.
    :param executor: ``local`` (process pool) or ``ray``.
    :param workers: parallel runs (default: this machine's cores, or the Ray cluster's CPUs).
    :param address: Ray cluster address (``ray`` only; ``None`` starts Ray locally).
    :param on_progress: called with the counts after each start and result.
    :param lock: hold :func:`sweep_lock` while running (``False``: the caller holds it).
    :param folder_of: each run's folder (see :func:`plan`).
    """
    out = out.resolve()  # Ray workers on other nodes do not share this process's directory
    if not lock:
        return _run_sweep(configs, out, executor, workers, address, on_progress, folder_of)
    with sweep_lock(out):
        return _run_sweep(configs, out, executor, workers, address, on_progress, folder_of)


def _run_sweep(
    configs, out, executor, workers, address, on_progress, folder_of=None
) -> SweepProgress:
    finished, todo = plan(configs, out, folder_of)
    return run_tasks(todo, len(configs), len(finished), executor, workers, address, on_progress)


def run_tasks(
    todo: list[Task],
    total: int,
    skipped: int = 0,
    executor: Literal["local", "ray", "inline"] = "local",
    workers: int | None = None,
    address: str | None = None,
    on_progress: Callable[[SweepProgress, Task | None, dict[str, Any] | None], None] | None = None,
) -> SweepProgress:
    """Do ``todo`` (of ``total`` tasks, ``skipped`` of them already finished) on an executor,
    serving each embedded model they load once; stop starting tasks on a full disk."""
    if executor == "inline":
        workers = 1
    elif executor == "local" or address is None:
        workers = workers or max(1, os.cpu_count() or 1)
    progress = SweepProgress(total=total, skipped=skipped)
    notify = on_progress or (lambda *_: None)
    notify(progress, None, None)
    if not todo:
        return progress
    # On a remote Ray cluster, a service on this machine's 127.0.0.1 is out of reach: each run
    # then loads its model itself (serve it over HTTP instead, see the README). Inline tasks
    # load it in this process too: one at a time, a service's IPC would only add latency.
    share = executor == "local" or (executor == "ray" and address is None)
    with ExitStack() as stack:
        from tutorl.llm.service import LLMService

        services = {
            spec: stack.enter_context(LLMService(spec)).handle()
            for spec in sorted(shared_llms(todo, share))
        }
        for task in todo:
            if task.embedded_llm:
                task.llm_service = services.get(task.embedded_llm)

        def on_start(task: Task) -> None:
            progress.running += 1
            notify(progress, task, None)

        def on_result(task: Task, result: dict[str, Any]) -> None:
            progress.running -= 1
            if result["status"] == "requeued":
                pass
            elif result["status"] == "done":
                progress.done += 1
                progress.seconds.append(result["seconds"])
            elif result["status"] == "skipped":
                progress.skipped += 1
            else:
                progress.failed += 1
                progress.disk_full |= bool(result.get("disk_full"))
            notify(progress, task, result)

        def stop() -> bool:  # on a full disk every further run would fail the same way
            return progress.disk_full

        if executor == "local":
            run_local(todo, workers, on_start, on_result, stop)
        elif executor == "inline":
            run_inline(todo, on_start, on_result, stop)
        elif executor == "ray":
            run_ray(todo, workers, address, on_start, on_result, stop)
        else:
            raise ValueError(f"unknown executor {executor!r}; choose local or ray")
    return progress
