"""A sweep on a disk that fills up: one clear line, finished runs kept, the same command
resumes once there is space again. The disk is a real small tmpfs (mounting needs root, as
in CI here); elsewhere the test is skipped with the reason."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tutorl.experiments.metrics import load_results

pytestmark = pytest.mark.slow

SWEEP = """\
name: disk
seeds: 3
envs:
  blackjack: {steps: 1000, eval_freq: 500, eval_episodes: 10}
algos: [dqn]
tutors:
  - {tutor: expert}
reuse: [false]
baseline: true
"""
COMPARED = ["env", "algo", "arm", "seed", "status", "final_return", "auc", "advised_steps"]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to the last byte, then free ``leave`` bytes: enough for the sweep to
    start, not for a run to finish."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    with contextlib.suppress(OSError):
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def sweep(file: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tutorl.cli", "sweep", str(file), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        [*command, "--workers", "1", *extra], capture_output=True, text=True, env=env, timeout=600
    )


def test_a_full_disk_stops_the_sweep_with_one_line_and_it_resumes(tmp_path, small_disk):
    file = tmp_path / "disk.yaml"
    file.write_text(SWEEP)
    out = small_disk / "sweep"
    first = sweep(file, out, "--only", "seed=0", "--no-report")
    assert first.returncode == 0, first.stderr[-2000:]
    finished = {p: p.read_bytes() for p in out.glob("runs/**/summary.json")}
    assert len(finished) == 2

    filler = fill(small_disk, leave=48 * 1024)
    full = sweep(file, out)
    assert full.returncode != 0
    assert "Traceback" not in full.stderr + full.stdout
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, full.stderr
    assert "is full" in errors[0] and "run the same command again" in errors[0]
    # The sweep stopped at the first run the disk could not hold, and lost nothing finished.
    assert full.stdout.count("FAILED") == 1, full.stdout
    assert {p: p.read_bytes() for p in out.glob("runs/**/summary.json")} == finished

    filler.unlink()
    resumed = sweep(file, out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "4 runs done, 2 already finished, 0 failed" in resumed.stdout
    assert (out / "report" / "report.md").exists()

    reference = sweep(file, tmp_path / "reference", "--no-report")
    assert reference.returncode == 0, reference.stderr[-2000:]
    runs, _, _ = load_results(out)
    expected, _, _ = load_results(tmp_path / "reference")
    pd.testing.assert_frame_equal(
        runs[COMPARED].reset_index(drop=True), expected[COMPARED].reset_index(drop=True)
    )


def stops_on_a_full_disk_then_resumes(small_disk: Path, *args: str) -> Path:
    """Run ``tutorl ARGS --out DISK/out`` on a full disk (one line, no finished seed), then
    again with space: the same command finishes. Returns the output folder."""
    out = small_disk / "out"
    command = [sys.executable, "-m", "tutorl.cli", *args, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    filler = fill(small_disk, leave=48 * 1024)
    full = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert full.returncode != 0 and "Traceback" not in full.stderr + full.stdout
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is full" in errors[0], full.stderr
    assert not list(out.glob("**/seed*/summary.json"))

    filler.unlink()
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return out


def test_compare_shares_the_sweeps_store_and_stops_the_same_way(small_disk):
    out = stops_on_a_full_disk_then_resumes(
        small_disk, "compare", "--env", "blackjack", "--algo", "dqn", "--seeds", "2", "--steps",
        "1000", "--eval-freq", "500", "--eval-episodes", "10", "--workers", "1",
    )  # fmt: skip
    assert len(list(out.glob("*/seed*/summary.json"))) == 6
    assert (out / "comparison.json").exists()


def test_ultra_seeds_stop_the_same_way_and_resume(small_disk):
    # ULTRA's seeds are tasks of the same store (run in this process by default).
    out = stops_on_a_full_disk_then_resumes(
        small_disk, "ultra", "--env", "blackjack", "--algo", "dqn", "--train-steps", "600",
        "--episodes", "3", "--identifier", "expert", "--variant", "none", "--refine-steps",
        "300", "--seeds", "2", "--eval-episodes", "5",
    )  # fmt: skip
    assert len(list(out.glob("seed*/summary.json"))) == 2
    assert json.loads((out / "ultra.json").read_text())["seeds_finished"] == 2
