"""The `tutorl` command as a user runs it: real processes, real runs, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def tutorl(
    *args: str, timeout: float = 600, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tutorl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(extra_env or {})},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--env", "chess", "--algo", "dqn"], "unknown env 'chess'"),
        (["train", "--env", "snake", "--algo", "sarsa"], "algo"),
        (["train", "--env", "snake", "--algo", "dqn", "--steps", "-5"], "steps"),
        (
            [
                "train",
                "--env",
                "snake",
                "--algo",
                "dqn",
                "--tutor",
                "noisy-expert",
                "--tutor-accuracy",
                "1.5",
            ],
            "tutor-accuracy",
        ),
        (["train", "--env", "snake", "--algo", "dqn", "--tutor", "oracle"], "unknown tutor"),
        (["evaluate", "--env", "snake", "--policy", "missing/model.zip"], "model file not found"),
        (
            [
                "train",
                "--env",
                "connect_four",
                "--algo",
                "ppo",
                "--env-option",
                "opponent=god",
                "--steps",
                "100",
            ],
            "unknown opponent",
        ),
        (["compare", "--env", "snake", "--algo", "ppo", "--seeds", "0"], "--seeds"),
        (
            ["train", "--env", "snake", "--algo", "ppo", "--env-option", "foo=1", "--steps", "9"],
            "invalid env option",
        ),
        (
            ["ask", "--env", "connect_four", "--tutor", "expert", "--state", json.dumps([1] * 84)],
            "not a possible connect_four state: a cell holds a piece of both players",
        ),
        (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[15, 10]"], "3 values"),
        (
            ["ask", "--env", "blackjack", "--llm-url", "localhost:11434", "--llm-model", "llama"],
            "http://",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    result = tutorl(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert message in lines[0]


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    import zipfile

    fake = tmp_path / "other.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    result = tutorl("evaluate", "--env", "snake", "--policy", str(fake))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not a model" in result.stderr


def test_ask_exits_nonzero_when_the_tutor_fails():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    result = tutorl(
        "ask", "--env", "blackjack", "--llm-url", f"http://127.0.0.1:{port}/v1",
        "--llm-model", "any", "--no-cache", "--json",
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["source"] == "fallback"


def test_missing_option_is_a_usage_error():
    result = tutorl("train", "--env", "snake")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--algo" in result.stderr


def test_train_writes_a_complete_run_folder_then_evaluate_loads_it(tmp_path):
    out = tmp_path / "run"
    result = tutorl(
        "train",
        "--env",
        "connect_four",
        "--algo",
        "ppo",
        "--tutor",
        "expert",
        "--reuse",
        "--steps",
        "2048",
        "--eval-freq",
        "1024",
        "--eval-episodes",
        "10",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for name in ("config.json", "curve.csv", "summary.json", "model.zip"):
        assert (out / name).is_file(), name
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    curve = pd.read_csv(out / "curve.csv")
    assert curve["step"].tolist()[0] == 0 and curve["step"].tolist()[-1] >= 2048
    assert curve["tutor_asks"].is_monotonic_increasing
    assert summary["advice"]["agreement"] == 1.0
    assert summary["advice"]["reuse_hits"] > 0
    assert json.loads((out / "config.json").read_text())["reuse"] is True

    evaluated = tutorl(
        "evaluate",
        "--env",
        "connect_four",
        "--policy",
        str(out / "model.zip"),
        "--episodes",
        "20",
        "--json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["wins"] + result["draws"] + result["losses"] == 20
    assert result["illegal_moves"] == 0  # MaskablePPO is given the action masks


def test_evaluate_expert_reports_exact_blackjack_value():
    result = tutorl("evaluate", "--env", "blackjack", "--episodes", "500", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exact_mean_return"] == pytest.approx(-0.047, abs=0.003)
    assert data["ci95_low"] < data["mean_return"] < data["ci95_high"]


COMPARE = ["compare", "--env", "snake", "--algo", "a2c", "--seeds", "2", "--steps", "2000",
           "--eval-episodes", "5"]  # fmt: skip


@pytest.mark.slow
def test_compare_trains_three_arms_and_plots(tmp_path):
    result = tutorl(*COMPARE, "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    arms = {row["arm"]: row for row in data["arms"]}
    assert set(arms) == {"none", "expert", "expert+reuse"}
    assert all(row["seeds"] == 2 for row in arms.values())
    assert arms["none"]["tutor_asks"] == 0
    assert arms["expert"]["agreement"] == 1.0
    assert arms["expert+reuse"]["reuse_hits"] > 0
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    # Completed runs are kept: a second call redoes nothing and gives the same table.
    again = tutorl(*COMPARE, "--out", str(tmp_path), "--json")
    assert json.loads(again.stdout)["arms"] == data["arms"]
    # A user threshold is applied to the stored curves without retraining.
    unreachable = tutorl(*COMPARE, "--out", str(tmp_path), "--threshold", "1000", "--json")
    arms = json.loads(unreachable.stdout)["arms"]
    assert all(row["reached"] == 0 and row["censored"] == 2 for row in arms)
    assert all(row["acceleration"] is None for row in arms if row["arm"] != "none")
    # Resuming never mixes in runs made with another configuration.
    changed = tutorl(*COMPARE[:-4], "--steps", "3000", "--out", str(tmp_path), "--json")
    assert changed.returncode == 2
    assert "different configuration" in changed.stderr and "steps" in changed.stderr


def test_tutor_eval_by_default_measures_every_game_a_tutor_can_advise():
    # Hopper has continuous actions and no expert to agree with: it is left out, not an error.
    result = tutorl("tutor-eval", "--tutor", "random", "--states", "20", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["env"] for r in rows] == ["blackjack", "connect_four", "doorkey", "snake"]
    for r in rows:
        assert 0 <= r["agreement"] <= 1 and r["states"] == 20 and r["fallbacks"] == 0
    # Asked by name, hopper is refused in one line.
    hopper = tutorl("tutor-eval", "--tutor", "random", "--env", "hopper")
    assert hopper.returncode != 0 and "Traceback" not in hopper.stderr
    assert "continuous actions" in hopper.stderr
