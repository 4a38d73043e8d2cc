"""A large table of user mistakes across every subcommand, run in-process through the real
entry point ``tutorl.cli.main``: each ends in exactly one ``error:`` line naming what is wrong,
exit status 2, no traceback, and nothing is trained. (``test_cli.py`` and
``test_cli_errors.py`` run a sample of the same promise as real subprocesses.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tutorl.cli import main


def board(rows: list[str]) -> str:
    """A Connect Four observation as JSON, from rows top first ("X" the agent, "O" the
    opponent)."""
    grid = np.array([[{".": 0, "X": 1, "O": 2}[ch] for ch in row] for row in rows])
    obs = np.stack([grid == 1, grid == 2], axis=2).reshape(-1).astype(int)
    return json.dumps(obs.tolist())


FLOATING = board(["......."] * 4 + ["...X...", "......."])
FIVE_TO_NONE = board(["......."] * 5 + ["XXX.XX."])
FINISHED = board(["......."] * 2 + ["...X...", "..OX...", "..OX...", "O.OX..."])
HALF = json.dumps([0.5] + [0] * 83)
SNAKE = {"size": 10, "snake": [[5, 5], [5, 4], [5, 3]], "heading": 1, "food": [1, 1]}


def snake(**change) -> str:
    return json.dumps({**SNAKE, **change})


def setup(tmp: Path) -> None:
    (tmp / "a_file").write_text("x")
    (tmp / "folder").mkdir()
    (tmp / "not_a_model.zip").write_text("not a zip")
    (tmp / "fake.gguf").write_text("not a model")
    (tmp / "llm_sweep.yaml").write_text(
        "envs: {blackjack: {steps: 100}}\nalgos: [dqn]\nreuse: [false]\n"
        f"tutors: [{{tutor: llm, llm: {tmp / 'fake.gguf'}}}]\n"
    )
    (tmp / "broken.yaml").write_text("envs: [blackjack\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    base = "algos: [ppo]\nreuse: [false]\nbaseline: true\n"
    sweeps = {
        "unknown_key.yaml": "envs: {blackjack: {steps: 100}}\n" + base + "colour: red\n",
        "unknown_env.yaml": "envs: {chess: {steps: 100}}\n" + base,
        "unknown_algo.yaml": "envs: {blackjack: {steps: 100}}\nalgos: [sarsa]\nbaseline: true\n",
        "zero_seeds.yaml": "seeds: 0\nenvs: {blackjack: {steps: 100}}\n" + base,
        "bad_tutor.yaml": "envs: {blackjack: {steps: 100}}\n" + base + "tutors: [{tutor: x}]\n",
        "bad_steps.yaml": "envs: {blackjack: {steps: -1}}\n" + base,
        "nan.yaml": "envs: {blackjack: {steps: 100, threshold: .nan}}\n" + base,
    }
    for name, text in sweeps.items():
        (tmp / name).write_text(text)
    (tmp / "damaged" / "runs").mkdir(parents=True)  # a sweep folder whose runs never finished
    (tmp / "damaged" / "sweep.yaml").write_text(sweeps["zero_seeds.yaml"].replace("0", "1", 1))
    (tmp / "template.txt").write_text("no placeholders at all")


TRAIN = ["train", "--env", "blackjack", "--algo", "ppo", "--steps", "100", "--no-progress"]
CF = ["ask", "--env", "connect_four", "--tutor", "expert", "--state"]
SN = ["ask", "--env", "snake", "--tutor", "expert", "--state"]

CASES = [
    # ---- train: options and their combinations
    (["train", "--env", "chess", "--algo", "ppo"], "unknown env 'chess'"),
    (["train", "--env", "blackjack", "--algo", "sarsa"], "algo"),
    ([*TRAIN, "--steps", "-5"], "steps: Input should be greater than 0"),
    ([*TRAIN, "--steps", "abc"], "Invalid value for '--steps'"),
    ([*TRAIN, "--tutor", "wizard"], "unknown tutor 'wizard'"),
    ([*TRAIN, "--tutor", "noisy-expert", "--tutor-accuracy", "1.5"], "tutor-accuracy"),
    ([*TRAIN, "--tutor", "expert", "--ask-start", "2"], "ask-start"),
    ([*TRAIN, "--tutor", "expert", "--ask-end", "-1"], "ask-end"),
    ([*TRAIN, "--tutor", "expert", "--reuse", "--reuse-budget", "0"], "reuse-budget"),
    ([*TRAIN, "--tutor", "expert", "--advice-budget", "-1"], "advice-budget"),
    ([*TRAIN, "--n-envs", "0"], "n-envs"),
    ([*TRAIN, "--eval-freq", "0"], "eval-freq"),
    ([*TRAIN, "--eval-episodes", "0"], "eval-episodes"),
    ([*TRAIN, "--seed", "-1"], "seed"),
    ([*TRAIN, "--tutor", "expert", "--imitation-coef", "-1"], "imitation-coef"),
    ([*TRAIN, "--tutor", "expert", "--imitation-coef", "1", "--imitation-anneal", "0"],
     "imitation-anneal"),
    ([*TRAIN, "--tutor", "expert", "--imitation-coef", "1", "--imitation-anneal", "1.5"],
     "imitation-anneal"),
    ([*TRAIN, "--tutor", "expert", "--imitation-coef", "1", "--imitation-margin", "-0.1"],
     "imitation-margin"),
    ([*TRAIN, "--tutor", "expert", "--imitation-coef", "1", "--imitation-target", "both"],
     "imitation-target"),
    ([*TRAIN, "--tutor", "expert", "--imitation-guard"], "need --imitation-coef > 0"),
    ([*TRAIN, "--tutor", "random", "--imitation-coef", "1", "--imitation-guard-z", "1.6"],
     "needs --imitation-guard"),
    ([*TRAIN, "--tutor", "random", "--imitation-coef", "1", "--imitation-guard",
      "--imitation-guard-z", "-1"], "imitation-guard-z"),
    ([*TRAIN, "--tutor", "random", "--imitation-coef", "1", "--imitation-guard",
      "--imitation-guard-z", "nan"], "imitation-guard-z"),
    ([*TRAIN, "--tutor", "expert", "--advice-mode", "explore"], "only DQN"),
    ([*TRAIN, "--tutor", "expert", "--advice-mode", "label"], "no effect"),
    ([*TRAIN, "--imitation-coef", "1"], "need a tutor"),
    ([*TRAIN, "--tutor", "llm", "--llm-mode", "chat"], "llm-mode"),
    ([*TRAIN, "--tutor", "llm", "--llm-calibrate", "magic"], "llm-calibrate"),
    ([*TRAIN, "--tutor", "expert", "--llm-calibrate", "content-free"], "needs --tutor llm"),
    ([*TRAIN, "--tutor", "expert", "--describer", "plain"], "needs --tutor llm"),
    (["train", "--env", "snake", "--algo", "ppo", "--tutor", "llm", "--describer", "fancy"],
     "fancy"),
    ([*TRAIN, "--tutor", "llm", "--llm-url", "localhost:1", "--llm-model", "m"], "http://"),
    ([*TRAIN, "--tutor", "llm", "--llm-url", "http://127.0.0.1:1/v1"], "needs --llm-model"),
    ([*TRAIN, "--tutor", "llm", "--llm-timeout", "0"], "llm-timeout"),
    ([*TRAIN, "--tutor", "llm", "--llm-timeout", "inf"], "llm-timeout"),
    ([*TRAIN, "--tutor", "llm", "--llm-concurrency", "0"], "llm-concurrency"),
    ([*TRAIN, "--tutor", "llm", "--llm-model", "gpt-9-ultra"], "gpt-9-ultra"),
    ([*TRAIN, "--tutor", "llm", "--llm-model", "{tmp}/missing.gguf"], "missing.gguf"),
    ([*TRAIN, "--tutor", "llm", "--llm-model", "{tmp}/fake.gguf"], "is not a GGUF model file"),
    (["sweep", "{tmp}/llm_sweep.yaml", "--out", "{tmp}/s"], "is not a GGUF model file"),
    ([*TRAIN, "--tutor", "llm", "--prompt-template", "{tmp}/missing.txt"], "missing.txt"),
    ([*TRAIN, "--tutor", "llm", "--prompt-template", "{tmp}/template.txt"], "template"),
    ([*TRAIN, "--env-option", "size"], "KEY=VALUE"),
    ([*TRAIN, "--env-option", "bogus=1"], "invalid env option"),
    (["evaluate", "--env", "blackjack", "--env-option", "bogus=1"],
     "invalid env option for blackjack"),
    (["train", "--env", "snake", "--algo", "ppo", "--env-option", "size=3"], "size"),
    (["train", "--env", "snake", "--algo", "ppo", "--env-option", "size=[1"], "not valid YAML"),
    (["train", "--env", "connect_four", "--algo", "ppo", "--env-option", "opponent=wizard"],
     "unknown opponent"),
    (["train", "--env", "connect_four", "--algo", "ppo", "--env-option", "backend=c"],
     "unknown backend"),
    (["train", "--env", "connect_four", "--algo", "ppo", "--env-option", "agent_first=maybe"],
     "agent_first"),
    (["train", "--env", "hopper", "--algo", "dqn"], "continuous"),
    (["train", "--env", "hopper", "--algo", "ppo", "--tutor", "expert"], "continuous"),
    (["train", "--env", "hopper", "--algo", "ppo", "--tutor", "random"], "continuous"),
    (["train", "--env", "doorkey", "--algo", "ppo", "--tutor", "rule"], "no rule baseline"),
    ([*TRAIN, "--bogus"], "No such option: --bogus"),
    (["train", "--env", "blackjack"], "Missing option '--algo'"),
    ([*TRAIN, "--out", "{tmp}/a_file"], "is a file"),
    ([*TRAIN, "--out", "{tmp}/a_file/run"], "Not a directory"),
    # ---- compare
    (["compare", "--env", "chess", "--algo", "ppo"], "unknown env"),
    (["compare", "--env", "blackjack", "--algo", "sarsa"], "algo"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--seeds", "0"], "seeds"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--threshold", "nan"], "finite number"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--threshold", "abc"],
     "Invalid value for '--threshold'"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--tutor", "wizard"], "unknown tutor"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--out", "{tmp}/a_file/c"],
     "Not a directory"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--steps", "0"], "steps"),
    # ---- sweep
    (["sweep", "{tmp}/missing.yaml", "--out", "{tmp}/s"], "missing.yaml"),
    (["sweep", "{tmp}/folder", "--out", "{tmp}/s"], "folder"),
    (["sweep", "{tmp}/broken.yaml", "--out", "{tmp}/s"], "broken.yaml"),
    (["sweep", "{tmp}/list.yaml", "--out", "{tmp}/s"], "list.yaml"),
    (["sweep", "{tmp}/unknown_key.yaml", "--out", "{tmp}/s"], "colour"),
    (["sweep", "{tmp}/unknown_env.yaml", "--out", "{tmp}/s"], "chess"),
    (["sweep", "{tmp}/unknown_algo.yaml", "--out", "{tmp}/s"], "algos.0: Input should be"),
    (["sweep", "{tmp}/zero_seeds.yaml", "--out", "{tmp}/s"], "seeds"),
    (["sweep", "{tmp}/bad_tutor.yaml", "--out", "{tmp}/s"], "unknown tutor"),
    (["sweep", "{tmp}/bad_steps.yaml", "--out", "{tmp}/s"], "steps"),
    (["sweep", "{tmp}/nan.yaml", "--out", "{tmp}/s"], "finite number"),
    (["sweep", "{tmp}/unknown_env.yaml"], "Missing option '--out'"),
    (["sweep", "{tmp}/zero_seeds.yaml", "--out", "{tmp}/s", "--workers", "0"], "workers"),
    (["sweep", "configs/smoke.yaml", "--out", "{tmp}/s", "--executor", "magic"], "magic"),
    (["sweep", "configs/smoke.yaml", "--out", "{tmp}/s", "--only", "env"], "FIELD=VALUE"),
    (["sweep", "configs/smoke.yaml", "--out", "{tmp}/s", "--only", "env=chess"], "chess"),
    (["sweep", "configs/smoke.yaml", "--out", "{tmp}/a_file/s"], "Not a directory"),
    # ---- report
    (["report", "{tmp}/missing"], "missing"),
    (["report", "{tmp}/a_file"], "a_file"),
    (["report", "{tmp}/folder"], "is not a sweep folder (no sweep.yaml)"),
    (["report", "{tmp}/damaged"], "has no finished runs yet"),
    (["report", "{tmp}/folder", "--reps", "0"], "reps"),
    # ---- ultra
    (["ultra", "--env", "chess", "--algo", "ppo", "--out", "{tmp}/u"], "unknown env"),
    (["ultra", "--env", "blackjack", "--algo", "sarsa", "--out", "{tmp}/u"], "algo"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--seeds", "0", "--out", "{tmp}/u"],
     "seeds"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--variant", "magic", "--out", "{tmp}/u"],
     "magic"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--identifier", "oracle", "--out",
      "{tmp}/u"], "--identifier: Input should be 'llm' or 'expert'"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--refine-steps", "-1", "--out",
      "{tmp}/u"], "refine"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--model", "{tmp}/missing.zip", "--out",
      "{tmp}/u"], "missing.zip"),
    (["ultra", "--env", "hopper", "--algo", "ppo", "--identifier", "expert", "--out",
      "{tmp}/u"], "expert"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--llm-concurrency", "0", "--out",
      "{tmp}/u"], "llm-concurrency"),
    # ---- evaluate
    (["evaluate", "--env", "chess"], "unknown env"),
    (["evaluate", "--env", "blackjack", "--policy", "{tmp}/missing.zip"], "missing.zip"),
    (["evaluate", "--env", "blackjack", "--policy", "{tmp}/not_a_model.zip"], "not_a_model"),
    (["evaluate", "--env", "blackjack", "--policy", "random", "--episodes", "0"], "episodes"),
    (["evaluate", "--env", "blackjack", "--episodes", "100000000"], "at most 100,000"),
    (["evaluate", "--env", "hopper", "--policy", "expert"], "expert"),
    (["evaluate", "--env", "snake", "--env-option", "size=2"], "size"),
    # ---- ask: states that cannot be read, or cannot happen
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[15, 10"], "not valid JSON"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[15, 10]"], "3 values"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[15.5, 10, 0]"],
     "whole numbers"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[{}, 10, 0]"],
     "list of numbers"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[40, 10, 0]"],
     "not a valid blackjack state"),
    ([*CF, FLOATING], "piece above an empty cell"),
    ([*CF, FIVE_TO_NONE], "5 pieces and the opponent 0"),
    ([*CF, FINISHED], "already over"),
    ([*CF, HALF], "must be 0 or 1"),
    ([*CF, json.dumps([1] * 84)], "both players"),
    ([*CF, "[1, 0]"], "84 values"),
    ([*SN, snake(heading=-1)], "heading must be 0"),
    ([*SN, snake(heading=3)], "does not continue the body"),
    ([*SN, snake(food=[5, 4])], "free cell"),
    ([*SN, snake(snake=[[5, 5], [5, 3]])], "not adjacent"),
    ([*SN, snake(snake=[[0, 0], [0, -1]], heading=1)], "inside the grid"),
    ([*SN, "[1, 2, 3]"], "must be a JSON object"),
    (["ask", "--env", "blackjack", "--tutor", "none"], "gives no advice"),
    (["ask", "--env", "blackjack", "--llm-url", "localhost:1", "--llm-model", "m"], "http://"),
    (["ask", "--env", "chess"], "unknown env"),
    # ---- tutor-eval
    (["tutor-eval", "--states", "0"], "--states must be >= 1"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select", "smollm2-135m",
      "--describer", "plain"], "drop --describer"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select", "smollm2-135m::bad"],
     "--select 'smollm2-135m::bad': invalid run configuration: --llm-calibrate"),
    (["tutor-eval", "--tutor", "none"], "nothing to measure"),
    (["tutor-eval", "--env", "chess"], "unknown env"),
    (["tutor-eval", "--env", "doorkey", "--tutor", "rule"], "no rule baseline"),
    (["tutor-eval", "--env", "blackjack", "--tutor", "llm", "--llm-timeout", "0"],
     "llm-timeout"),
    (["tutor-eval", "--env", "blackjack", "--tutor", "llm", "--llm-calibrate", "x"],
     "llm-calibrate"),
    (["tutor-eval", "--env", "snake", "--tutor", "expert", "--select", "smollm2-135m"],
     "needs --tutor llm"),
    (["tutor-eval", "--tutor", "llm", "--select", "smollm2-135m"], "exactly one --env"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select", "smollm2-135m",
      "--select-seed", "0"], "must differ from --seed"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select", "a:b:c:d"],
     "MODEL[:DESCRIBER[:CALIBRATE]]"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select", "smollm2-135m:fancy"],
     "fancy"),
    (["tutor-eval", "--env", "snake", "--tutor", "llm", "--select-seed", "3"],
     "give --select too"),
    # ---- the rest
    (["models", "--bogus"], "No such option"),
    (["envs", "extra"], "unexpected extra argument"),
    (["trian"], "No such command 'trian'"),
]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_a_user_mistake_is_one_error_line(tmp_path, monkeypatch, capsys, args, message):
    setup(tmp_path)
    monkeypatch.chdir(Path(__file__).parents[1])  # configs/ is relative to the checkout
    monkeypatch.setenv("TUTORL_CACHE", str(tmp_path / "cache.sqlite"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in lines[0], lines[0]
    assert not (tmp_path / "s" / "runs").exists()  # nothing was trained


def test_the_table_covers_every_subcommand():
    import typer.main

    from tutorl.cli import app

    commands = set(typer.main.get_command(app).commands)
    covered = {args[0] for args, _ in CASES}
    assert commands <= covered, commands - covered
    assert len(CASES) >= 100


@pytest.mark.parametrize(("command", "model"), [("train", "RunConfig"), ("ultra", "UltraConfig")])
def test_every_option_of_a_field_is_that_field(command, model):
    # Options are generated from the configuration's fields: a command's flag, default and help
    # are the field's, so `tutorl train` and a sweep file mean the same run.
    import typer.main

    from tutorl import specs
    from tutorl.cli import app
    from tutorl.ultra.pipeline import UltraConfig

    model = UltraConfig if model == "UltraConfig" else specs.RunConfig
    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    with_flag = {n: f for n, f in model.model_fields.items() if specs.cli_flag(n, f)}
    hand_made = {"env_options"}  # --env-option KEY=VALUE, parsed by the command
    assert set(with_flag) - hand_made <= set(params), set(with_flag) - set(params)
    for name in set(with_flag) - hand_made:
        field, param = with_flag[name], params[name]
        assert param.help == field.description, name
        assert specs.cli_flag(name, field).split("/")[0] in param.opts, name
        if field.is_required():
            assert param.required, name
        elif name not in ("identifiers", "variants"):  # resolved by the command (game, all)
            assert param.default == field.get_default(call_default_factory=True), name


@pytest.mark.parametrize("command", ["train", "compare", "ask", "tutor-eval", "ultra"])
def test_the_shared_options_reach_every_command_that_takes_them(command, capsys):
    with pytest.raises(SystemExit) as end:
        main([command, "--help"])
    assert end.value.code == 0
    shown = capsys.readouterr().out
    assert "--llm-model" in shown and "--llm-timeout" in shown
    assert ("--imitation-guard-z" in shown) == (command in ("train", "compare"))
    assert ("--llm-calibrate" in shown) == (command != "ultra")


@pytest.mark.parametrize("command", ["sweep", "ultra"])
def test_the_ray_executor_without_ray_is_one_line_before_anything_is_written(
    command, tmp_path, monkeypatch, capsys
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    out = tmp_path / "out"
    head = ["sweep", "configs/smoke.yaml"] if command == "sweep" else [
        "ultra", "--env", "blackjack", "--algo", "dqn", "--identifier", "expert"]  # fmt: skip
    with pytest.raises(SystemExit) as end:
        main([*head, "--out", str(out), "--executor", "ray"])
    assert end.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and 'pip install "tutorl[ray]"' in err
    assert not out.exists()


def test_a_command_called_from_python_takes_the_groups_defaults(capsys):
    # Typer passes every option; a Python caller passes only its own, the rest are defaults.
    import typer

    from tutorl import cli

    with pytest.raises(typer.Exit) as end:  # --json: the exit status says whether it failed
        cli.ask(env="blackjack", tutor="expert", state="[15, 10, 0]", as_json=True)
    assert end.value.exit_code == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["choice"] == answer["expert_choice"] == "hit" and answer["agrees_with_expert"]
    with pytest.raises(TypeError, match="llm_modell"):
        cli.ask(env="blackjack", llm_modell="x")
