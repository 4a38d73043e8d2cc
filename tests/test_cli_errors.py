"""User mistakes with files, caches and run folders: one `error:` line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import tutorl

from tutorl.cli import one_line


def setup(tmp: Path) -> dict[str, str]:
    (tmp / "a_file").write_text("x")
    (tmp / "bad.sqlite").write_text("this is not a database")
    (tmp / "folder").mkdir()
    (tmp / "sweep.yaml").write_text(
        "envs: {blackjack: {steps: 100}}\nalgos: [ppo]\nreuse: [false]\nbaseline: true\n"
    )
    (tmp / "nan.yaml").write_text(
        "envs: {blackjack: {steps: 100, threshold: .nan}}\nalgos: [ppo]\nreuse: [false]\n"
    )
    return {"tmp": str(tmp)}


CASES = [
    # (args with {tmp}, environment additions, message)
    (["train", "--env", "blackjack", "--algo", "ppo", "--out", "{tmp}/a_file/run"], {},
     "Not a directory"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--out", "{tmp}/a_file"], {},
     "is a file"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--out", "{tmp}/a_file/c"], {},
     "Not a directory"),
    (["sweep", "{tmp}/sweep.yaml", "--out", "{tmp}/a_file/s"], {}, "Not a directory"),
    (["report", "{tmp}/a_file"], {}, "a_file"),
    (["train", "--env", "[/bold]chess", "--algo", "ppo"], {}, "unknown env '[/bold]chess'"),
    (["ask", "--env", "blackjack"], {"TUTORL_CACHE": "{tmp}/folder"}, "response cache"),
    (["ask", "--env", "blackjack"], {"TUTORL_CACHE": "{tmp}/bad.sqlite"}, "not a database"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--tutor", "expert", "--advice-mode",
      "explore"], {}, "only DQN"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--tutor", "expert", "--advice-mode",
      "label"], {}, "no effect"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--advice-mode", "shout"], {},
     "advice-mode: Input should be"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--imitation-coef", "1"], {},
     "need a tutor"),
    (["train", "--env", "doorkey", "--algo", "ppo", "--tutor", "rule"], {}, "no rule baseline"),
    (["train", "--env", "snake", "--algo", "ppo", "--env-option", "size=[1"], {},
     "not valid YAML"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[{}, 10, 0]"], {},
     "list of numbers"),
    (["ask", "--env", "blackjack", "--tutor", "expert", "--state", "[15.5, 10, 0]"], {},
     "whole numbers"),
    (["compare", "--env", "blackjack", "--algo", "ppo", "--threshold", "nan"], {},
     "finite number"),
    (["sweep", "{tmp}/nan.yaml", "--out", "{tmp}/s"], {}, "finite number"),
    (["evaluate", "--env", "blackjack", "--policy", "expert", "--episodes", "100000000"], {},
     "at most 100,000"),
    (["train", "--env", "blackjack", "--algo", "ppo", "--tutor", "llm", "--llm-timeout", "0"],
     {}, "llm-timeout: Input should be greater than 0"),
    (["tutor-eval", "--env", "blackjack", "--tutor", "llm", "--llm-timeout", "nan"], {},
     "llm-timeout: Input should be a finite number"),
    (["ask", "--env", "blackjack", "--llm-concurrency", "0"], {},
     "llm-concurrency: Input should be greater than or equal to 1"),
    (["ultra", "--env", "blackjack", "--algo", "ppo", "--llm-concurrency", "0", "--out",
      "{tmp}/u"], {},
     "llm-concurrency: Input should be greater than or equal to 1"),
    (["train", "--env", "connect_four", "--algo", "ppo", "--env-option", "backend=c"], {},
     "unknown backend 'c'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "message"), CASES)
def test_file_and_option_mistakes_are_one_line_errors(tmp_path, args, env, message):
    values = setup(tmp_path)
    args = [a.replace("{tmp}", values["tmp"]) for a in args]
    extra = {k: v.replace("{tmp}", values["tmp"]) for k, v in env.items()}
    result = tutorl(*args, extra_env=extra, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0]


def test_train_refuses_to_replace_a_run_of_another_configuration(tmp_path):
    out = str(tmp_path / "run")
    first = ["train", "--env", "blackjack", "--algo", "a2c", "--steps", "200", "--eval-freq",
             "200", "--eval-episodes", "2", "--no-progress", "--out", out]  # fmt: skip
    assert tutorl(*first).returncode == 0
    summary = (tmp_path / "run" / "summary.json").read_text()
    other = [a if a != "a2c" else "ppo" for a in first]
    result = tutorl(*other)
    assert result.returncode == 2 and "another configuration (differs in algo" in result.stderr
    assert (tmp_path / "run" / "summary.json").read_text() == summary  # untouched


def test_untrusted_text_is_printed_as_one_safe_line():
    text = "bad\x1b[31m red [/bold]\nsecond\tline" + "x" * 3000
    shown = one_line(text)
    assert "\x1b" not in shown and "\n" not in shown
    assert shown.startswith("bad\\x1b[31m red [/bold] second line")
    assert len(shown) == 2000


def test_report_on_a_damaged_run_names_the_folder(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "seeds: 1\nenvs: {blackjack: {steps: 200, eval_freq: 100}}\nalgos: [a2c]\n"
        "reuse: [false]\nbaseline: true\n"
    )
    out = tmp_path / "out"
    assert tutorl("sweep", str(spec), "--out", str(out), "--no-report").returncode == 0
    [summary] = list(out.glob("runs/**/summary.json"))
    summary.write_text("{}")
    result = tutorl("report", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds a damaged run" in lines[0]
