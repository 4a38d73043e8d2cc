"""Sweep files, their expansion, per-run metrics, failure handling and the shared LLM service."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tutorl.experiments.executors import run_sweep
from tutorl.experiments.metrics import curve_metrics, load_results
from tutorl.experiments.sweep import SweepError, expand, load_sweep, run_key, select
from tutorl.rl.train import RunConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


GRID = """
name: t
seeds: 2
envs:
  blackjack: {steps: 600, eval_freq: 300, eval_episodes: 5}
  snake: {steps: 600, eval_freq: 300, eval_episodes: 2, threshold: 3}
algos: [dqn, ppo]
tutors:
  - {tutor: expert}
  - {tutor: noisy-expert, tutor_accuracy: 0.6}
reuse: [false, true]
overrides:
  - when: {env: snake, tutor: expert}
    set: {advice_budget: 7}
"""


def test_expansion_counts_orders_and_overrides(tmp_path):
    spec = load_sweep(write(tmp_path, GRID))
    configs = expand(spec)
    # 2 envs × 2 algos × 2 seeds × (baseline + 2 tutors × 2 reuse)
    assert len(configs) == 2 * 2 * 2 * 5
    assert len({run_key(c) for c in configs}) == len(configs)
    # Blocks complete in order: every blackjack run before any snake run, baseline first.
    envs = [c.env for c in configs]
    assert envs.index("snake") == envs.count("blackjack")
    assert configs[0].tutor == "none" and configs[0].seed == 0
    snake_expert = [c for c in configs if c.env == "snake" and c.tutor == "expert"]
    assert snake_expert and all(c.advice_budget == 7 for c in snake_expert)
    others = [c for c in configs if not (c.env == "snake" and c.tutor == "expert")]
    assert all(c.advice_budget is None for c in others)

    assert {c.arm() for c in configs} == {
        "none", "expert", "expert+reuse", "noisy0.6", "noisy0.6+reuse"
    }  # fmt: skip
    assert spec.threshold("snake") == 3 and spec.threshold("blackjack") == -0.06
    chosen = select(configs, ["env=snake", "tutor=none", "tutor=expert"])
    assert {(c.env, c.tutor) for c in chosen} == {("snake", "none"), ("snake", "expert")}
    assert len(chosen) == 2 * 2 * 3
    with pytest.raises(SweepError, match="not valid YAML"):
        select(configs, ["env=[snake"])
    with pytest.raises(SweepError, match="FIELD=VALUE"):
        select(configs, ["colour=red"])


def test_arm_names_keep_dotted_model_names():
    from tutorl.rl.train import RunConfig

    qwen = RunConfig(env="blackjack", algo="dqn", tutor="llm", llm="qwen2.5-coder-0.5b")
    assert qwen.arm() == "llm-qwen2.5-coder-0.5b"
    own = RunConfig(env="blackjack", algo="dqn", tutor="llm", llm="/models/my.model.gguf")
    assert own.model_copy(update={"reuse": True}).arm() == "llm-my.model+reuse"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("envs: {chess: {}}\nalgos: [dqn]\n", "unknown env 'chess'"),
        ("envs: {snake: {}}\nalgos: [sarsa]\n", "algos.0"),
        ("envs: {snake: {steps: -3}}\nalgos: [dqn]\n", "envs.snake.steps"),
        ("envs: {snake: {}}\nalgos: [dqn]\nseeds: 0\n", "seeds must be at least 1"),
        ("envs: {snake: {}}\nalgos: [dqn]\ntutors: [{tutor: oracle}]\n", "unknown tutor"),
        ("envs: {snake: {}}\nalgos: [dqn]\ntutors: [{llm: x}]\n", "needs a 'tutor' kind"),
        ("envs: {snake: {}}\nalgos: [dqn]\ntutors: [{tutor: expert, colour: 1}]\n", "colour"),
        ("envs: {snake: {}}\nalgos: [dqn]\nlearning_rate: 1\n", "learning_rate"),
        ("envs: [snake\n", "not valid YAML"),
        ("envs: {snake: {}}\nalgos: [dqn]\nseeds: true\n", "count or a list"),
        (
            "envs: {snake: {}}\nalgos: [dqn]\noverrides: [{when: {env: snake}, set: {seed: 0}}]\n",
            "cannot change the grid's seed",
        ),
        ("- 1\n- 2\n", "mapping"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(")) as error:
        expand(load_sweep(write(tmp_path, text)))
    assert "\n" not in str(error.value)


def test_bad_sweep_file_is_one_line_exit_2(tmp_path):
    path = write(tmp_path, "envs: {snake: {steps: 0}}\nalgos: [dqn]\n")
    result = subprocess.run(
        [sys.executable, "-m", "tutorl.cli", "sweep", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 2
    assert "envs.snake.steps" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def curve(values: list[float], every: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(len(values)) * every, "mean_return": values})


def test_plateau_step_is_where_the_curve_stays_on_its_plateau():
    values = [0, 1, 2, 5, 9, 10, 10, 10, 10, 10]
    m = curve_metrics(curve(values), threshold=9.5, tolerance=0.5, smoothing=1)
    assert m["plateau_return"] == 10
    assert m["plateau_step"] == 500  # index 5: from there on within 0.5 of 10
    assert m["steps_to_threshold"] == 500
    assert m["final_return"] == 10 and m["best_return"] == 10
    assert m["drops"] == 0 and m["stability_std"] == 0
    # A dip after reaching the plateau moves convergence past the dip.
    dipped = [0, 1, 2, 5, 10, 10, 4, 10, 10, 10]
    m = curve_metrics(curve(dipped), threshold=9.5, tolerance=0.5, smoothing=1)
    assert m["plateau_step"] == 700 and m["steps_to_threshold"] == 400


def test_drops_and_spread_after_convergence_with_smoothing():
    values = [0, 0, 9, 10, 10, 8, 10, 10, 10, 10, 10]
    m = curve_metrics(curve(values), threshold=20, tolerance=1.0, smoothing=3)
    assert math.isnan(m["steps_to_threshold"])  # never reached: censored
    # Smoothed: the dip at index 5 averages to 9.33, inside the band; the raw 8 is a drop.
    assert m["plateau_step"] == 300
    assert m["drops"] == 1 and m["stability_std"] > 0


def test_a_curve_still_moving_at_the_end_has_not_converged():
    m = curve_metrics(curve([0, 1, 2, 3, 4, 5, 6, 7, 8, 20]), 100, tolerance=0.5, smoothing=1)
    assert math.isnan(m["plateau_step"]) and math.isnan(m["stability_std"])


def test_failed_run_is_recorded_and_does_not_stop_the_sweep(tmp_path):
    text = """
seeds: 1
envs: {blackjack: {steps: 300, eval_freq: 150, eval_episodes: 2}}
algos: [dqn]
tutors: [{tutor: expert}]
reuse: [false]
overrides:
  - when: {tutor: expert}
    set: {hyperparams: {learning_rate: -1, no_such_option: 3}}
"""
    path = write(tmp_path, text)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.yaml").write_text(path.read_text())
    configs = expand(load_sweep(path))
    progress = run_sweep(configs, out, "local", workers=1)
    assert (progress.done, progress.failed) == (1, 1)
    failed = out / "runs" / "blackjack/dqn/expert/seed0"
    error = json.loads((failed / "error.json").read_text())
    assert "no_such_option" in error["error"] and "Traceback" in error["traceback"]
    assert not (failed / "summary.json").exists()
    runs, curves, _ = load_results(out)
    assert list(runs["status"]) == ["done", "failed"]
    assert "no_such_option" in runs.loc[1, "error"]
    assert ("blackjack", "dqn", "none") in curves
    # Resuming retries the failed run only (it fails again); the finished one is not redone.
    before = (out / "runs/blackjack/dqn/none/seed0/summary.json").stat().st_mtime_ns
    progress = run_sweep(configs, out, "local", workers=1)
    assert (progress.skipped, progress.done, progress.failed) == (1, 0, 1)
    assert (out / "runs/blackjack/dqn/none/seed0/summary.json").stat().st_mtime_ns == before


def test_resume_refuses_a_folder_of_another_configuration(tmp_path):
    path = write(tmp_path, GRID)
    configs = expand(load_sweep(path))
    folder = tmp_path / "out" / "runs" / run_key(configs[0])
    folder.mkdir(parents=True)
    other = configs[0].model_copy(update={"eval_episodes": 99})
    (folder / "config.json").write_text(other.model_dump_json())
    with pytest.raises(ValueError, match=r"different configuration.*eval_episodes"):
        run_sweep(configs, tmp_path / "out")


def test_llm_service_answers_like_the_model_in_process():
    """One model copy served to other processes gives the same scores and cache identity."""
    from tutorl.llm import ScoreRequest, make_llm
    from tutorl.llm.service import LLMService, RemoteLLM

    requests = [
        ScoreRequest("Answer hit or stick.\n", f"Player {n}, dealer 10.", ("hit", "stick"))
        for n in (12, 15, 20)
    ]
    local = make_llm("smollm2-135m", cache=False)
    with LLMService("smollm2-135m") as service:
        remote = RemoteLLM.from_handle(service.handle())
        assert remote.identity == local.identity
        assert remote.prompt_format.name == local.prompt_format.name
        np.testing.assert_allclose(remote.score(requests), local.score(requests), atol=1e-6)
    with pytest.raises(Exception, match="unreachable"):
        RemoteLLM.from_handle(service.handle())  # stopped: a clear error, not a hang


def test_a_tutor_entry_can_run_fewer_seeds_and_advice_fields_name_arms(tmp_path):
    spec = load_sweep(
        write(
            tmp_path,
            """
seeds: 5
envs: {blackjack: {steps: 600}}
algos: [ppo]
reuse: [false]
tutors:
  - {tutor: expert}
  - {tutor: expert, imitation_coef: 1.0}
  - {tutor: random, advice_mode: label, imitation_coef: 1.0, imitation_guard: true, seeds: 3}
""",
        )
    )
    seeds: dict[str, list[int]] = {}
    for config in expand(spec):
        seeds.setdefault(config.arm(), []).append(config.seed)
    assert seeds == {
        "none": [0, 1, 2, 3, 4],
        "expert": [0, 1, 2, 3, 4],
        "expert+im1": [0, 1, 2, 3, 4],
        "random+label+im1+guard": [0, 1, 2],
    }
    for bad in ("0", "true", "2.5"):
        text = (
            f"envs: {{blackjack: {{}}}}\nalgos: [ppo]\ntutors: [{{tutor: expert, seeds: {bad}}}]\n"
        )
        with pytest.raises(SweepError, match="seeds must be a count"):
            load_sweep(write(tmp_path, text))


ALL_FAIL = """
seeds: 1
envs: {blackjack: {steps: 300, eval_freq: 150, eval_episodes: 2}}
algos: [dqn]
tutors: [{tutor: expert}]
reuse: [false]
baseline: false
overrides:
  - when: {tutor: expert}
    set: {hyperparams: {no_such_option: 3}}
"""


def test_a_sweep_whose_runs_all_fail_says_so_in_one_line(tmp_path):
    path = write(tmp_path, ALL_FAIL)
    result = subprocess.run(
        [sys.executable, "-m", "tutorl.cli", "sweep", str(path), "--out", str(tmp_path / "o"),
         "--workers", "1"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "no finished runs" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "all 1 runs failed" in errors[0], result.stderr
    assert "no_such_option" in result.stdout  # the run's own error, printed as text


def test_a_second_sweep_on_the_same_folder_stops_at_once(tmp_path):
    from tutorl.experiments.executors import sweep_lock

    path = write(tmp_path, ALL_FAIL)
    out = tmp_path / "o"
    with sweep_lock(out):  # as a first sweep running on the folder holds it
        with pytest.raises(SweepError, match="another tutorl sweep is running"):
            run_sweep(expand(load_sweep(path)), out, "local", workers=1)
        result = subprocess.run(
            [sys.executable, "-m", "tutorl.cli", "sweep", str(path), "--out", str(out)],
            capture_output=True, text=True, env=ENV, timeout=300,
        )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "another tutorl sweep is running" in lines[0], result.stderr
    assert not (out / "runs").exists()  # nothing was started
    assert not (out / "sweep.yaml").exists()  # and the first sweep's grid was not replaced


def test_a_run_finished_by_another_process_is_not_trained_again(tmp_path):
    from tutorl.experiments.executors import run_task

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    config = expand(load_sweep(write(tmp_path, ALL_FAIL)))[0]
    result = run_task(config.model_dump_json(), str(folder))
    assert result["status"] == "skipped"
    assert (folder / "summary.json").read_text() == "{}"


def test_a_task_whose_configuration_is_invalid_says_why_in_its_error_json(tmp_path):
    from pydantic import ValidationError

    from tutorl.experiments.executors import failure_of
    from tutorl.rl.train import RunConfig

    try:  # a whole-configuration check (empty loc), as a worker re-validating would raise
        RunConfig(env="blackjack", algo="ppo", imitation_coef=1.0)
    except ValidationError as error:
        result = failure_of(tmp_path / "run", error)
    assert result["status"] == "failed"
    assert result["error"] == (
        "invalid configuration: config: --imitation-coef and --advice-mode need a tutor "
        "(got --tutor none)"
    )
    assert json.loads((tmp_path / "run" / "error.json").read_text())["error"] == result["error"]


def test_run_folders_written_before_the_endpoint_options_still_load():
    from tutorl.rl.train import RunConfig

    old = RunConfig(env="blackjack", algo="dqn").model_dump()
    old["llm_timeout"] = None  # what config.json held before --llm-timeout had a default
    del old["llm_concurrency"]
    assert RunConfig.model_validate(old) == RunConfig(env="blackjack", algo="dqn")


def test_committed_sweep_files_load_and_name_the_runs_the_docs_quote():
    # Every sweep file the docs tell users to run expands without error; the main job's arms
    # are the ones the README and docs/results.md report.
    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        assert expand(load_sweep(path)), path
    main = expand(load_sweep(root / "main.yaml"))
    arms = sorted({c.arm() for c in main})
    assert arms == [
        "llm-qwen2.5-coder-0.5b+plain+content-free+label+im1+guard",
        "none",
        "rule+label+im1+guard",
    ]
    assert len(main) == 15 and {c.seed for c in main} == set(range(5))


def test_a_run_whose_folder_cannot_be_made_is_a_failed_result_not_a_crash(tmp_path):
    from tutorl.experiments.executors import Task, run_local

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    config = RunConfig(env="blackjack", algo="dqn", steps=100, eval_freq=100, eval_episodes=2)
    results = []
    run_local([Task("k", config, blocker / "run")], 1, lambda t: None,
              lambda t, r: results.append(r))  # fmt: skip
    assert [r["status"] for r in results] == ["failed"]
    assert "NotADirectoryError" in results[0]["error"] and not results[0]["disk_full"]


def test_disk_full_is_this_machines_disk_not_an_endpoints():
    import errno

    from tutorl.experiments.executors import is_disk_full
    from tutorl.llm.base import LLMError

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("PytorchStreamWriter failed: No space left on device"))
    assert not is_disk_full(LLMError("endpoint said: No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_an_unused_endpoint_in_shared_defaults_is_accepted_but_checked():
    from tutorl.ultra.pipeline import UltraConfig

    # A sweep's defaults may name the endpoint its LLM arms use; the other arms ignore it.
    RunConfig(env="blackjack", algo="ppo", tutor="expert", llm_url="http://127.0.0.1:1/v1")
    UltraConfig(env="blackjack", algo="ppo", identifiers=["expert"], llm_url="http://h:1/v1")
    with pytest.raises(ValueError, match="http://"):
        RunConfig(env="blackjack", algo="ppo", tutor="expert", llm_url="ftp://x")
