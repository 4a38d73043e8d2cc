"""`tutorl ultra` end to end on Blackjack: a weak DQN agent, the expert and the real embedded
LLM as identifiers, refinement, the summary; resumable; bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tutorl.ultra.pipeline import UltraConfig, run_ultra

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@pytest.mark.slow
def test_ultra_pipeline_runs_resumes_and_summarises(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORL_CACHE", str(tmp_path / "cache.sqlite"))
    config = UltraConfig(
        env="blackjack",
        algo="dqn",
        train_steps=800,
        episodes=4,
        identifiers=["expert", "llm"],
        variants=["none", "A", "random"],
        refine_steps=400,
        seeds=1,
        eval_episodes=10,
        max_critical=2,
    )
    out = tmp_path / "ultra"
    summary = run_ultra(config, out)
    seed = out / "seed0"
    for name in ("agent.zip", "episodes.jsonl", "none.json"):
        assert (seed / name).exists()
    for identifier in ("expert", "llm"):
        for name in ("identification.json", "table.json", "random-table.json", "A.json"):
            assert (seed / identifier / name).exists()
    rows = {(r["identifier"], r["variant"]): r for r in summary["rows"]}
    assert len(rows) == 6
    # The expert identifier names exactly the expert's critical steps (however many there are).
    expert = json.loads((seed / "expert" / "identification.json").read_text())
    assert expert["quality"]["fp"] == 0 and expert["quality"]["fn"] == 0
    assert expert["quality"]["tp"] == len(expert["critical"])
    llm = json.loads((seed / "llm" / "identification.json").read_text())
    # Precision/recall pool (episode, step) pairs: every distinct named step is a tp or an fp.
    named = {(e, t) for e, t, *_ in llm["critical"]}
    assert llm["quality"]["tp"] + llm["quality"]["fp"] == len(named)
    assert llm["quality"]["tp"] + llm["quality"]["fn"] == expert["quality"]["n_true"]
    # Every distinct suggestion is scored; the expert's are all sound.
    assert llm["quality"]["suggestions"] == len({(e, t, a) for e, t, a, *_ in llm["critical"]})
    assert expert["quality"]["sound"] == expert["quality"]["suggestions"]
    from tutorl.envs import get_game
    from tutorl.ultra.trajectories import load_episodes

    analysed = load_episodes(seed / "episodes.jsonl", get_game("blackjack"))
    assert llm["quality"]["steps"] == sum(len(e.steps) for e in analysed)
    rows_llm = [r for r in summary["rows"] if r["identifier"] == "llm" and r["variant"] == "A"]
    chance = rows_llm[0]["precision_chance"]
    assert chance == pytest.approx(expert["quality"]["n_true"] / llm["quality"]["steps"])
    assert llm["counters"]["chunks"] >= 4  # one chunk per short Blackjack episode at least
    assert llm["counters"]["valid"] + llm["counters"]["skipped"] == llm["counters"]["chunks"]
    # Every variant starts from the same agent: the same return before refinement.
    befores = {r["before"][0] for r in summary["rows"]}
    assert len(befores) == 1
    table = (out / "report" / "ultra.md").read_text()
    assert "| llm | A | 1 |" in table and "| expert | random | 1 |" in table

    from tutorl.ultra.report import write_ultra_report

    paths = write_ultra_report(out)
    html = paths["ultra.html"].read_text()
    assert html.count("data:image/png;base64,") == 1 and "<script" not in html
    assert "<td>llm</td>" in html and "<td>random</td>" in html
    assert paths["ultra.png"].read_bytes()[:4] == b"\x89PNG"

    # Resuming redoes nothing.
    stamps = {
        p: p.stat().st_mtime_ns
        for p in out.rglob("*.json")
        if p.name != "ultra.json" and "report" not in p.parts
    }
    again = run_ultra(config, out)
    assert json.dumps(again["rows"]) == json.dumps(summary["rows"])
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # A seed folder without its summary.json (killed at the end, or written before seeds had
    # one) resumes from its files: nothing is redone, the summary is written again.
    seed_summary = json.loads((seed / "summary.json").read_text())
    assert seed_summary["critical"] == {"expert": len(expert["critical"]),
                                        "llm": len(llm["critical"])}  # fmt: skip
    assert seed_summary["returns"]["none"] == [rows[("expert", "none")]["before"][0],
                                               rows[("expert", "none")]["after"][0]]  # fmt: skip
    (seed / "summary.json").unlink()
    stamps = {p: t for p, t in stamps.items() if p.name != "summary.json"}
    run_ultra(config, out)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert json.loads((seed / "summary.json").read_text())["returns"] == seed_summary["returns"]

    # Another configuration in the same folder is refused.
    with pytest.raises(ValueError, match="another configuration"):
        run_ultra(config.model_copy(update={"refine_steps": 999}), out)

    # More seeds extend the run: seed 0 is not redone, seed 1 is added to every row.
    more = run_ultra(config.model_copy(update={"seeds": 2}), out)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.name != "config.json")
    assert (out / "seed1" / "llm" / "A.json").exists()
    assert {r["seeds"] for r in more["rows"]} == {2}
    assert json.loads((out / "config.json").read_text())["seeds"] == 2
    # Pooled chance precision: each seed's share of critical steps, weighted by the steps it
    # named (as precision pools tp / (tp + fp)).
    qs = [
        json.loads((out / f"seed{k}" / "llm" / "identification.json").read_text())["quality"]
        for k in range(2)
    ]
    named = [q["tp"] + q["fp"] for q in qs]
    shares = [q["n_true"] / q["steps"] for q in qs]
    expected = sum(n * c for n, c in zip(named, shares, strict=True)) / sum(named)
    row = next(r for r in more["rows"] if r["identifier"] == "llm" and r["variant"] == "A")
    assert row["precision_chance"] == pytest.approx(expected)
    # Fewer seeds than stored (e.g. the default --seeds on a longer run) is refused.
    with pytest.raises(ValueError, match="holds 2 seeds"):
        run_ultra(config, out)


def _two_seeds(**kw) -> UltraConfig:
    return UltraConfig(
        env="blackjack", algo="dqn", train_steps=600, episodes=3, identifiers=["expert"],
        variants=["none", "A", "random"], refine_steps=300, seeds=2, eval_episodes=5, **kw,
    )  # fmt: skip


@pytest.mark.slow
def test_seeds_in_process_on_two_workers_and_on_ray_give_the_same_results(tmp_path):
    pytest.importorskip("ray")
    inline = run_ultra(_two_seeds(), tmp_path / "inline")  # the default: in this process
    local = run_ultra(_two_seeds(), tmp_path / "local", workers=2)
    ray = run_ultra(_two_seeds(), tmp_path / "ray", executor="ray", workers=2)
    assert json.dumps(local["rows"]) == json.dumps(ray["rows"]) == json.dumps(inline["rows"])
    assert {r["seeds"] for r in local["rows"]} == {2}
    for k in range(2):
        a, b = (json.loads((tmp_path / f / f"seed{k}" / "summary.json").read_text())
                for f in ("local", "ray"))  # fmt: skip
        assert a["returns"] == b["returns"] and a["critical"] == b["critical"]


@pytest.mark.slow
def test_a_failed_seed_does_not_stop_the_others_and_is_redone_next_time(tmp_path):
    out = tmp_path / "ultra"
    # Seed 1 fails after its `none` and `A` refinements, when it reads its `random` result
    # (a folder where the file should be).
    broken = out / "seed1" / "expert" / "random.json"
    broken.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "tutorl.cli", "ultra", "--env", "blackjack", "--algo", "dqn",
         "--train-steps", "600", "--episodes", "3", "--identifier", "expert", "--variant",
         "none", "--variant", "A", "--variant", "random", "--refine-steps", "300", "--seeds", "2",
         "--eval-episodes", "5", "--workers", "2", "--out", str(out)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of 2 seeds failed" in errors[0], result.stderr
    assert "seed1: FAILED" in result.stdout and "seed0: done" in result.stdout
    assert (out / "seed0" / "summary.json").exists()
    assert not (out / "seed1" / "summary.json").exists()
    assert "error" in json.loads((out / "seed1" / "error.json").read_text())
    # Only the finished seed is reported: not the failed seed's `none` result so far.
    assert (out / "seed1" / "none.json").exists()
    partial = json.loads((out / "ultra.json").read_text())
    assert {r["seeds"] for r in partial["rows"]} == {1} and partial["seeds_finished"] == 1
    assert "incomplete: 1 of 2 seeds finished" in (out / "report" / "ultra.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "seed0").rglob("*") if p.is_file()}
    broken.rmdir()
    summary = run_ultra(_two_seeds(), out)
    assert {r["seeds"] for r in summary["rows"]} == {2} and summary["seeds_finished"] == 2
    assert "incomplete" not in (out / "report" / "ultra.md").read_text()
    assert not (out / "seed1" / "error.json").exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # seed 0 not redone


def test_by_default_the_seeds_run_in_this_process_and_see_its_registered_games(tmp_path):
    import dataclasses

    from tutorl.envs import get_game, register

    register(dataclasses.replace(get_game("blackjack"), name="my-blackjack"))
    config = UltraConfig(
        env="my-blackjack", algo="dqn", train_steps=300, episodes=2, identifiers=["expert"],
        variants=["none"], refine_steps=200, seeds=2, eval_episodes=5,
    )  # fmt: skip
    summary = run_ultra(config, tmp_path / "u")
    assert summary["rows"][0]["seeds"] == 2 and summary["seeds_finished"] == 2


def test_a_folder_without_a_stored_threshold_resumes_only_with_an_explicit_one(tmp_path):
    # Folders written before the threshold was stored say "threshold": null; filling in
    # today's default could rescore them with another threshold than they were made with.
    def small(**kw):
        return UltraConfig(
            env="blackjack", algo="dqn", train_steps=300, episodes=2, identifiers=["expert"],
            variants=["none"], refine_steps=200, seeds=1, eval_episodes=5, **kw,
        )  # fmt: skip

    out = tmp_path / "ultra"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({**small().model_dump(), "threshold": None}))
    with pytest.raises(ValueError, match="explicit --threshold"):
        run_ultra(small(), out)
    run_ultra(small(threshold=0.05), out)
    assert json.loads((out / "config.json").read_text())["threshold"] == 0.05
    quality = json.loads((out / "seed0" / "expert" / "identification.json").read_text())
    assert quality["quality"]["threshold"] == 0.05
    with pytest.raises(ValueError, match="another configuration"):
        run_ultra(small(), out)  # from now on the stored 0.05 holds (the default is 0.1)


def test_a_second_ultra_run_on_a_busy_folder_is_refused(tmp_path):
    from tutorl.experiments.executors import run_lock

    out = tmp_path / "ultra"
    held = run_lock(out)  # as a running `tutorl ultra` holds it
    try:
        config = UltraConfig(env="blackjack", algo="dqn", identifiers=["expert"], seeds=1)
        with pytest.raises(ValueError, match="another tutorl ultra is running"):
            run_ultra(config, out)
        assert not (out / "config.json").exists()  # nothing written
    finally:
        held.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "chess", "--algo", "dqn"], "unknown env 'chess'"),
        (["--env", "blackjack", "--algo", "dqn", "--model", "missing.zip"], "model file not"),
        (["--env", "blackjack", "--algo", "dqn", "--variant", "B"], "unknown variant"),
        (["--env", "blackjack", "--algo", "dqn", "--identifier", "oracle"], "--identifier"),
        (["--env", "blackjack", "--algo", "dqn", "--seeds", "0"], "seeds"),
        (["--env", "doorkey", "--algo", "ppo", "--max-episode-steps", "0"], "max-episode-steps"),
        (["--env", "doorkey", "--algo", "ppo", "--threshold", "-1"], "threshold"),
    ],
)
def test_ultra_bad_input_is_one_line(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "tutorl.cli", "ultra", *args, "--out", str(tmp_path / "u")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
