"""A user's own game from outside tutorl's source tree (tests/fixtures/usergame: FrozenLake with
an expert, installed as a package with a ``tutorl.games`` entry point by putting it on the
path): found by name and by import path in every command, in sweep workers and on Ray, and
refused in one line where it lacks a capability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "usergame"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(FIXTURE), os.environ.get("PYTHONPATH")])),
    "OMP_NUM_THREADS": "1",
    "COLUMNS": "200",
}
SMALL = ["--steps", "600", "--eval-freq", "300", "--eval-episodes", "3"]


def tutorl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tutorl.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=ENV,
    )  # fmt: skip


def test_an_installed_game_is_listed_and_evaluated_by_name():
    listed = tutorl("envs")
    assert listed.returncode == 0 and "frozen" in listed.stdout
    result = tutorl("evaluate", "--env", "frozen", "--policy", "expert", "--episodes", "5",
                    "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mean_return"] == 1.0  # the shortest path reaches G


def test_train_by_import_path_with_the_users_expert(tmp_path):
    out = tmp_path / "run"
    result = tutorl("train", "--env", "usergame.games:FROZEN", "--algo", "ppo", "--tutor",
                    "expert", *SMALL, "--no-progress", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "usergame.games:FROZEN" and summary["final_return"] == 1.0
    assert summary["agreement"] == 1.0 and summary["advice"]["tutor_asks"] > 0


def test_compare_and_a_two_worker_sweep_run_the_users_game(tmp_path):
    result = tutorl("compare", "--env", "frozen", "--algo", "a2c", "--tutor", "expert",
                    "--seeds", "2", *SMALL, "--out", str(tmp_path / "c"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: user\nseeds: 2\n"
        "envs: {'usergame.games:FROZEN': {steps: 600, eval_freq: 300, eval_episodes: 3}}\n"
        "algos: [a2c]\ntutors: [{tutor: expert}]\nreuse: [false]\nbaseline: true\n"
    )
    result = tutorl("sweep", str(sweep), "--out", str(tmp_path / "s"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "4 runs done" in result.stdout
    assert (tmp_path / "s" / "report" / "report.md").exists()


@pytest.mark.slow
def test_ultra_seeds_run_the_users_game_on_two_workers_with_one_served_llm(tmp_path):
    out = tmp_path / "u"
    result = tutorl("ultra", "--env", "usergame.games:FROZEN", "--algo", "ppo",
                    "--train-steps", "400", "--episodes", "2", "--identifier", "llm",
                    "--variant", "none", "--variant", "A", "--refine-steps", "200",
                    "--seeds", "2", "--eval-episodes", "3", "--max-episode-steps", "30",
                    "--workers", "2", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for k in range(2):
        seed = json.loads((out / f"seed{k}" / "summary.json").read_text())
        assert set(seed["returns"]) == {"none", "llm/A"}
        counters = json.loads((out / f"seed{k}" / "llm" / "identification.json").read_text())
        assert counters["counters"]["chunks"] >= 1  # the LLM was asked about each seed
    assert "| llm | A | 2 |" in (out / "report" / "ultra.md").read_text()


@pytest.mark.slow
def test_the_ray_executor_imports_the_users_game(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: user\nseeds: 1\nenvs: {frozen: {steps: 600, eval_freq: 300, eval_episodes: 3}}\n"
        "algos: [a2c]\ntutors: [{tutor: expert}]\nreuse: [false]\nbaseline: true\n"
    )
    result = tutorl("sweep", str(sweep), "--out", str(tmp_path / "r"), "--executor", "ray",
                    "--workers", "2", "--no-report")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 runs done" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ultra", "--env", "frozen", "--algo", "ppo", "--identifier", "expert", "--out", "{tmp}"],
         "frozen has no action values: the expert identifier needs them"),
        (["train", "--env", "frozen", "--algo", "ppo", "--tutor", "rule"], "no rule baseline"),
        (["train", "--env", "usergame.games:NOPE", "--algo", "ppo"], "not a tutorl Game"),
        (["train", "--env", "usergame.nomodule:X", "--algo", "ppo"], "cannot import"),
        # a message names the game as the user typed it
        (["train", "--env", "usergame.games:FROZEN", "--algo", "ppo", "--env-option", "bogus=1"],
         "invalid env option for usergame.games:FROZEN"),
    ],
)  # fmt: skip
def test_a_missing_capability_or_a_bad_path_is_one_line(tmp_path, args, message):
    result = tutorl(*[a.replace("{tmp}", str(tmp_path / "u")) for a in args])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_the_core_install_trains_a_user_game_without_the_optional_games(tmp_path):
    """PettingZoo, MiniGrid and MuJoCo made unimportable (tests/fixtures/no_optional_games):
    the user's game, and Connect Four on its own bitboards, still train; a game that needs a
    missing extra says which install provides it, in one line."""
    blocker = str(Path(__file__).parent / "fixtures" / "no_optional_games")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([blocker, ENV["PYTHONPATH"]])}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tutorl.cli", *args], capture_output=True,
                              text=True, timeout=600, env=env)  # fmt: skip

    probe = subprocess.run([sys.executable, "-c", "import minigrid"], env=env, capture_output=True)
    assert probe.returncode != 0  # the blocker works
    listed = run("envs")
    assert listed.returncode == 0
    # The games that need a missing extra say which install provides it; the others need none.
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    for game in ("doorkey", "hopper"):
        assert "pip install 'tutorl[extra-games]'" in rows[game]
    for game in ("blackjack", "snake", "frozen"):
        assert "pip install" not in rows[game]
    for game in ("frozen", "connect_four"):
        out = tmp_path / game
        result = run("train", "--env", game, "--algo", "ppo", "--tutor", "expert", *SMALL,
                     "--no-progress", "--out", str(out))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (out / "summary.json").exists()
    for args, extra in (
        (["train", "--env", "doorkey", "--algo", "ppo"], "extra-games"),
        (["train", "--env", "hopper", "--algo", "ppo"], "extra-games"),
        (["train", "--env", "connect_four", "--algo", "ppo", "--env-option",
          "backend=pettingzoo"], "pettingzoo"),
    ):  # fmt: skip
        result = run(*args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert f"pip install 'tutorl[{extra}]'" in lines[0]
