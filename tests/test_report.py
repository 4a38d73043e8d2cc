"""The sweep report on a synthetic sweep with hand-computable numbers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tutorl.experiments.report import numbers, write_report
from tutorl.experiments.tables import tables

STEPS = 12_000
ERROR = "RuntimeError: evaluation <crashed> & stopped"
ARMS = ("none", "expert", "expert+reuse")
# Steps to the untutored final level (and to the threshold) per (env, arm), seeds 0..2; NaN:
# never reached (censored at STEPS).
REACHED = {
    ("blackjack", "none"): [8000, 9000, np.nan],
    ("blackjack", "expert"): [4000, 5000, 6000],
    ("blackjack", "expert+reuse"): [3000, 4000, 5000],
    ("snake", "none"): [8000, 9000, 10000],
    ("snake", "expert"): [4000, 5000, 6000],
    ("snake", "expert+reuse"): [3000, 4000, 5000],  # seed 2 fails
}


def synthetic_runs() -> pd.DataFrame:
    rows = []
    for env, threshold in (("blackjack", -0.1), ("snake", 5.0)):
        for arm in ARMS:
            tutor = arm.removesuffix("+reuse")
            for seed in range(3):
                failed = env == "snake" and arm == "expert+reuse" and seed == 2
                reached = REACHED[(env, arm)][seed]
                metric = np.nan if failed else 1.0
                rows.append(
                    {
                        "env": env,
                        "algo": "ppo",
                        "arm": arm,
                        "tutor": tutor,
                        "reuse": arm.endswith("+reuse"),
                        "seed": seed,
                        "status": "failed" if failed else "done",
                        "error": ERROR if failed else np.nan,
                        "steps": STEPS,
                        "threshold": threshold,
                        "tolerance": 0.05,
                        "initial_return": threshold - 1,
                        "untutored_level": threshold,
                        # Blackjack's optimum; snake here stands for a game without an expert.
                        "expert_level": -0.0466 if env == "blackjack" else np.nan,
                        "steps_to_untutored_50": np.nan if failed else reached / 2,
                        "steps_to_untutored_80": np.nan if failed else reached * 0.8,
                        "steps_to_untutored_100": np.nan if failed else reached,
                        "steps_to_expert_50": np.nan if failed else reached,
                        "steps_to_expert_80": np.nan,  # never: censored
                        "steps_to_expert_100": np.nan,
                        "normalised_auc": metric * (0.5 + 0.1 * (tutor != "none")),
                        "plateau_step": np.nan if failed else reached + 500,
                        "steps_to_threshold": np.nan if failed else reached,
                        "final_return": metric * (threshold + 0.1 * seed + (tutor != "none")),
                        "best_return": metric * threshold,
                        "plateau_return": metric * threshold,
                        "auc": metric * (threshold - 0.5),
                        "stability_std": metric * (0.1 + 0.01 * seed),
                        "drops": metric * seed,
                        "tutor_asks": metric * (0 if tutor == "none" else 500),
                        "llm_calls": metric * 0,
                        "reuse_hits": metric * (100 if arm.endswith("+reuse") else 0),
                        "cache_hits": metric * 0,
                        "agreement": np.nan if tutor == "none" else metric * 0.9,
                        "reuse_agreement": np.nan,
                        "wall_time": metric * 12.5,
                    }
                )
    return pd.DataFrame(rows)


def synthetic_curves(runs: pd.DataFrame) -> dict[tuple[str, str, str], list[pd.DataFrame]]:
    curves: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    steps = np.arange(0, STEPS + 1, 1000)
    for run in runs[runs["status"] == "done"].itertuples():
        frame = pd.DataFrame(
            {
                "step": steps,
                "mean_return": run.threshold - 1 + steps / STEPS + 0.01 * run.seed,
                "std_return": 0.1,
                "success_rate": 0.5,
                "tutor_asks": 0,
                "tutor_calls": 0,
                "advised_steps": 0,
                "reuse_hits": 0,
                "wall_time": 1.0,
            }
        )
        curves.setdefault((run.env, run.algo, run.arm), []).append(frame)
    return curves


def row(table: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for key, value in keys.items():
        mask &= table[key] == value
    assert mask.sum() == 1, keys
    return table[mask].iloc[0]


def test_acceleration_is_the_ratio_of_mean_steps():
    t = tables(synthetic_runs(), reps=300)
    acc = t["acceleration"]
    # snake: nothing censored: (8000 + 9000 + 10000) / (4000 + 5000 + 6000).
    snake = row(acc, env="snake", arm="expert")
    for name in ("speedup_untutored_100", "speedup_untutored_50", "acceleration"):
        assert snake[name] == pytest.approx(9000 / 5000)
        assert snake[f"{name}_bound"] is None
        assert snake[f"{name}_low"] <= snake[name] <= snake[f"{name}_high"]
    # Every tutored seed beats every baseline seed: P = 1, and p = 0.1 is the floor for 3 vs 3.
    assert snake["p_reaches_sooner"] == 1.0
    assert snake["reaches_sooner_p_value"] == pytest.approx(0.1)
    assert snake["final_return_diff"] == pytest.approx(1.0)
    assert snake["normalised_auc_diff"] == pytest.approx(0.1)
    assert snake["agreement"] == pytest.approx(0.9)
    # No expert level for snake: no speed-up to it, and no run counted as censored.
    assert np.isnan(snake["speedup_expert_100"]) and snake["tutored_reached_expert_100"] == 0
    # blackjack: the baseline's third run never reached: it counts as 12000 -> lower bound.
    blackjack = row(acc, env="blackjack", arm="expert")
    for name in ("speedup_untutored_100", "acceleration"):
        assert blackjack[name] == pytest.approx((8000 + 9000 + STEPS) / 3 / 5000)
        assert blackjack[f"{name}_bound"] == "≥"
    assert blackjack["baseline_reached_untutored_100"] == 2
    # Every run of both arms never reached 80% of the expert level: unknown, not a number.
    assert np.isnan(blackjack["speedup_expert_80"])
    assert blackjack["baseline_reached_expert_80"] == blackjack["tutored_reached_expert_80"] == 0
    # The failed run is left out: 2 seeds of snake expert+reuse.
    reuse_arm = row(acc, env="snake", arm="expert+reuse")
    assert reuse_arm["tutored_seeds"] == 2
    assert reuse_arm["speedup_untutored_100"] == pytest.approx(9000 / 3500)
    assert set(acc["arm"]) == {"expert", "expert+reuse"}


def test_configuration_and_reuse_tables():
    t = tables(synthetic_runs(), reps=300)
    config = t["configurations"]
    assert len(config) == 6
    none = row(config, env="blackjack", arm="none")
    assert none["reached"] == 2 and none["seeds_done"] == 3
    assert none["steps_to_threshold_mean"] == pytest.approx((8000 + 9000 + STEPS) / 3)
    failed = row(config, env="snake", arm="expert+reuse")
    assert (failed["seeds_done"], failed["seeds_failed"]) == (2, 1)
    assert failed["tutor_asks"] == pytest.approx(500)
    assert none["reached_untutored_100"] == 2
    assert none["steps_to_untutored_100_mean"] == pytest.approx((8000 + 9000 + STEPS) / 3)
    assert none["untutored_level"] == -0.1 and none["initial_return"] == pytest.approx(-1.1)
    reuse = row(t["reuse"], env="snake", variant="expert")
    # Steps to the untutored level: off 4000, 5000, 6000; on 3000, 4000.
    assert reuse["speedup_untutored_100"] == pytest.approx(5000 / 3500)
    assert reuse["stability_std_on"] == pytest.approx(0.105)
    quality = row(t["tutor_quality"], env="snake", tutor="expert")
    assert quality["training_runs"] == 5 and quality["training_agreement"] == pytest.approx(0.9)


def test_all_censored_gives_no_number_and_one_seed_no_interval(tmp_path):
    runs = synthetic_runs()
    censored = ["steps_to_threshold", "steps_to_untutored_100"]
    runs.loc[(runs["env"] == "snake") & (runs["arm"] == "none"), censored] = np.nan
    runs = runs[~((runs["env"] == "snake") & (runs["arm"] == "expert") & (runs["seed"] > 0))]
    t = tables(runs, reps=300)
    none = row(t["configurations"], env="snake", arm="none")
    assert none["reached"] == 0 and np.isnan(none["steps_to_threshold_mean"])
    expert = row(t["acceleration"], env="snake", arm="expert")
    # Baseline wholly censored: 12000 / 4000 is still a valid lower bound; one tutored seed.
    assert expert["acceleration"] == pytest.approx(3.0)
    assert expert["acceleration_bound"] == "≥"
    assert np.isnan(expert["acceleration_low"]) and np.isnan(expert["acceleration_high"])
    assert expert["speedup_untutored_100"] == pytest.approx(3.0)
    assert expert["speedup_untutored_100_bound"] == "≥"
    one_seed = row(t["configurations"], env="snake", arm="expert")
    assert np.isnan(one_seed["final_return_mean_low"])
    paths = write_report(tmp_path, runs, {}, {"name": "censored"}, reps=200)
    md = paths["report.md"].read_text()
    assert "no finished run reached the threshold" in md
    assert "no finished run reached 100% of the untutored final level" in md
    assert "| expert | 0.900 | 1 vs 3 | ≥3.00" in md  # a bound, no interval
    assert "No evaluation curves" in md


def test_write_report(tmp_path):
    runs = synthetic_runs()
    meta = {
        "name": "synthetic",
        "command": "tutorl report sweeps/synthetic",
        "metric_definitions": {"plateau step": "first step after which <it> stays"},
        "tutor_quality": pd.DataFrame(
            {
                "env": ["snake"],
                "tutor": ["expert"],
                "n_states": [400],
                "agreement": [0.97],
                "low": [0.95],
                "high": [0.98],
                "base_rate": [0.25],
            }
        ),
    }
    paths = write_report(tmp_path, runs, synthetic_curves(runs), meta, reps=200)
    folder = tmp_path / "report"
    for name in ("report.md", "report.html", "numbers.csv"):
        assert paths[name] == folder / name and paths[name].exists()
    for env in ("blackjack", "snake"):
        png = folder / "curves" / f"{env}-ppo.png"
        assert paths[f"curves/{env}-ppo.png"] == png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(folder.rglob("*.tmp"))

    html = paths["report.html"].read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    assert html.count("data:image/png;base64,") == 3  # two games' curves, the answers figure
    assert paths["answers.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "evaluation &lt;crashed&gt; &amp; stopped" in html  # the error, escaped
    assert "<crashed>" not in html
    assert "0.970 [0.950, 0.980]" in html  # offline tutor quality

    md = paths["report.md"].read_text()
    assert "![Learning curves, snake ppo](curves/snake-ppo.png)" in md
    assert md.index("![The answers at a glance](answers.png)") < md.index("## blackjack · ppo")
    assert "evaluation \\<crashed> & stopped" in md
    sections = dict(re.findall(r"^## (\S+ · ppo)\n(.*?)(?=^## )", md, re.S | re.M))
    assert set(sections) == {"blackjack · ppo", "snake · ppo"}
    for env in ("blackjack", "snake"):
        for text in (md, sections[f"{env} · ppo"], html):
            for arm in ARMS:
                assert f"| {arm} |" in text or f"<td>{arm}</td>" in text
    # Steps to the untutored final level: 4000, 5000, 6000 (the 50% level at half of them).
    assert "| expert | 3 | 3/3/3 of 3 | 2,500 [" in sections["snake · ppo"]
    assert "| 5,000 [" in sections["snake · ppo"]
    assert "≥1.93 [" in sections["blackjack · ppo"]  # (8000 + 9000 + 12000) / 3 / 5000
    assert "this game has no expert policy" in sections["snake · ppo"]
    assert "Stability: each run's own plateau (not learning speed)" in md
    # The plateau step sits beside the plateau return, never in a speed table.
    assert "plateau step: mean" in md and "convergence" not in md.lower()
    glance = md[md.index("**Answers at a glance**") : md.index("## blackjack · ppo")]
    rows = [line for line in glance.splitlines() if line.startswith("| blackjack |")]
    rows += [line for line in glance.splitlines() if line.startswith("| snake |")]
    assert len(rows) == 2 and all("| expert |" in line for line in rows)  # one per tutor
    failed_section = md[md.index("## Failed runs") :]
    assert "| snake | ppo | expert+reuse | 2 | RuntimeError" in failed_section

    csv = pd.read_csv(paths["numbers.csv"])
    assert list(csv.columns) == [
        "table",
        "env",
        "algo",
        "arm",
        "tutor",
        "reuse",
        "seed",
        "quantity",
        "value",
        "text",
    ]
    ratio = csv[
        (csv["table"] == "acceleration")
        & (csv["env"] == "snake")
        & (csv["arm"] == "expert")
        & (csv["quantity"].isin(["acceleration", "speedup_untutored_100"]))
    ]["value"]
    assert ratio.tolist() == [pytest.approx(1.8)] * 2
    bound = csv[
        (csv["table"] == "acceleration")
        & (csv["env"] == "blackjack")
        & (csv["arm"] == "expert")
        & (csv["quantity"].isin(["acceleration_bound", "speedup_untutored_100_bound"]))
    ]["text"]
    assert bound.tolist() == ["≥"] * 2
    quantities = set(csv["quantity"])
    for name in ("steps_to_untutored_50", "steps_to_expert_50", "normalised_auc"):
        assert f"{name}_mean" in quantities and name in quantities  # tables and runs
    assert {"initial_return", "untutored_level", "expert_level", "plateau_step"} <= quantities
    per_run = csv[csv["table"] == "runs"]
    assert len(per_run.drop_duplicates(["env", "arm", "seed"])) == len(runs)
    assert ERROR in per_run.loc[per_run["quantity"] == "error", "text"].tolist()


def test_numbers_holds_every_number_of_every_table():
    runs = synthetic_runs()
    t = tables(runs, reps=200)
    long = numbers(runs, t)
    for name, frame in t.items():
        ids = {"env", "algo", "arm", "tutor", "reuse"}
        cells = frame.drop(columns=[c for c in frame.columns if c in ids])
        numeric = cells.select_dtypes("number")
        rows = long[(long["table"] == name) & long["value"].notna()]
        assert len(rows) == int(numeric.notna().sum().sum()), name
        # Spot-check values: the sum of every number survives the reshaping.
        assert rows["value"].sum() == pytest.approx(float(np.nansum(numeric.to_numpy())))


def test_answers_figure_needs_a_finished_comparison(tmp_path):
    from tutorl.experiments.report import plot_answers
    from tutorl.experiments.tables import prepare_runs, tables

    runs = synthetic_runs()
    baseline_only = prepare_runs(runs[runs["arm"] == "none"])
    assert plot_answers(tables(baseline_only, reps=100), tmp_path / "a.png") is None
    assert not (tmp_path / "a.png").exists()
    path = plot_answers(tables(prepare_runs(runs), reps=100), tmp_path / "b.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"


SWEEP = """
name: tiny
seeds: 3
envs: {blackjack: {steps: 8000, eval_freq: 1000, eval_episodes: 5}}
algos: [ppo]
tutors: [{tutor: expert}]
reuse: [false, true]
smoothing: 1
"""


def fake_sweep(folder, curves_by_arm):
    """A sweep folder with finished runs made by hand (no training): sweep.yaml, and per run
    summary.json and curve.csv."""
    import json

    from tutorl.experiments.sweep import expand, load_sweep, run_key

    (folder / "sweep.yaml").write_text(SWEEP)
    for config in expand(load_sweep(folder / "sweep.yaml")):
        run = folder / "runs" / run_key(config)
        run.mkdir(parents=True)
        values = curves_by_arm[config.arm()][config.seed]
        steps = np.arange(len(values)) * 1000
        pd.DataFrame({"step": steps, "mean_return": values}).to_csv(run / "curve.csv", index=False)
        advice = None if config.arm() == "none" else {"tutor_asks": 10, "agreement": 1.0}
        summary = {"steps": int(steps[-1]), "advice": advice, "wall_time": 1.0}
        (run / "summary.json").write_text(json.dumps(summary))


def test_report_of_a_sweep_folder_measures_speed_against_the_untutored_level(tmp_path):
    from tutorl.experiments.metrics import BLACKJACK_OPTIMUM, METRIC_DEFINITIONS, load_results

    rise = [-0.5, -0.4, -0.3, -0.2, -0.1, -0.1, -0.1, -0.1, -0.1]  # reaches -0.1 at 4000
    fast = [-0.5, -0.3, -0.1, -0.08, -0.06, -0.04, -0.04, -0.04, -0.04]  # at 2000
    stall = [-0.5, -0.3, -0.3, -0.3, -0.3, -0.3, -0.3, -0.3, -0.3]  # settles early, badly
    fake_sweep(tmp_path, {"none": [rise] * 3, "expert": [fast] * 3, "expert+reuse": [stall] * 3})
    runs, curves, _ = load_results(tmp_path)
    assert (tmp_path / "reference.json").is_file()  # the expert level, cached
    assert runs["expert_level"].iloc[0] == pytest.approx(BLACKJACK_OPTIMUM, abs=5e-5)
    assert set(runs["tutor"]) == {"none", "expert"}
    meta = {"name": "tiny", "metric_definitions": METRIC_DEFINITIONS}
    paths = write_report(tmp_path, runs, curves, meta, reps=200)
    md = paths["report.md"].read_text()
    assert "Learning speed: steps to the untutored final level" in md
    assert "Learning speed: steps to the expert level" in md
    assert "untutored final level -0.100" in md and "expert level -0.047" in md
    csv = pd.read_csv(paths["numbers.csv"])
    acc = csv[csv["table"] == "acceleration"]

    def value(arm, quantity):
        found = acc[(acc["arm"] == arm) & (acc["quantity"] == quantity)]
        return found["value"].iloc[0] if quantity != "bound" else found["text"].iloc[0]

    assert value("expert", "speedup_untutored_100") == pytest.approx(2.0)
    # The early stall is not faster: it never reaches the untutored level (≤ 4000 / 8000).
    assert value("expert+reuse", "speedup_untutored_100") == pytest.approx(0.5)
    bound = acc[(acc["arm"] == "expert+reuse") & (acc["quantity"] == "speedup_untutored_100_bound")]
    assert bound["text"].tolist() == ["≤"]
    assert value("expert", "agreement") == 1.0  # the tutor's agreement beside its numbers
    assert value("expert", "speedup_expert_100") == pytest.approx(8000 / 5000)  # ≥: none never
    for quantity in ("steps_to_untutored_50", "steps_to_expert_100", "normalised_auc"):
        assert quantity in set(csv.loc[csv["table"] == "runs", "quantity"])
    for name in ("answers.png", "curves/blackjack-ppo.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_curve_bands_stay_within_the_observed_returns_and_panels_hold_five_arms():
    from matplotlib.collections import PolyCollection

    from tutorl.experiments.report import curves_figure

    rng = np.random.default_rng(0)
    steps = np.arange(0, 11_000, 1000)
    curves = {}
    arms = ["none", *[f"expert+im{k}" for k in range(6)]]  # 7 arms: two rows of panels
    for i, arm in enumerate(arms):
        # Blackjack-like: returns in [-1, 1], three noisy seeds.
        curves[("blackjack", "dqn", arm)] = [
            pd.DataFrame(
                {"step": steps, "mean_return": np.clip(rng.normal(-0.3 + 0.02 * i, 0.4, 11), -1, 1)}
            )
            for _ in range(3)
        ]
    levels = {"initial_return": -0.6, "untutored_level": -0.1, "expert_level": -0.0466}
    fig, records = curves_figure(curves, "blackjack", "dqn", -0.06, levels)
    rows = {r["row"] for r in records}
    assert rows == {0, 1}
    for row in rows:
        in_row = [r["arm"] for r in records if r["row"] == row]
        assert len(in_row) <= 5 and in_row[0] == "none"  # the untutored arm in every panel
    assert {r["arm"] for r in records} == set(arms)
    for record in records:
        lo, hi = record["clip"]
        observed = np.concatenate(
            [f["mean_return"].to_numpy() for (_, _, a), fs in curves.items() for f in fs]
        )
        assert observed.min() <= lo and hi <= observed.max()
        assert np.all(record["low"] >= lo) and np.all(record["high"] <= hi)
        assert np.all(record["low"] <= record["mean"] + 1e-12)
        assert np.all(record["mean"] <= record["high"] + 1e-12)
        # The zoom starts at the untutored 90% level, -0.6 + 0.9 * 0.5, less a 5% margin.
        bottom, top = record["zoom"]
        assert bottom == pytest.approx(-0.15 - 0.05 * (top - bottom) / 1.1)
    # The drawn bands (the figure's filled polygons) are inside [-1, 1] and the clip range.
    lowest = min(r["clip"][0] for r in records)
    highest = max(r["clip"][1] for r in records)
    for ax in fig.axes:
        for poly in (c for c in ax.collections if isinstance(c, PolyCollection)):
            for path in poly.get_paths():
                ys = path.vertices[:, 1]
                assert ys.min() >= lowest - 1e-9 and ys.max() <= highest + 1e-9
    # The expert level is a dashed reference line, the untutored final level a dotted one.
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["expert level -0.047"].get_linestyle() == "--"
    assert lines["untutored final level -0.100"].get_linestyle() == ":"


def test_configurations_with_no_run_started_are_left_out_and_counted(tmp_path):
    """A sweep run block by block (--only) reports what it ran; a configuration with one run
    started stays in, with its unfinished runs counted."""
    import shutil

    from tutorl.experiments.metrics import METRIC_DEFINITIONS, load_results

    rise = [-0.5, -0.4, -0.3, -0.2, -0.1, -0.1, -0.1, -0.1, -0.1]
    fake_sweep(tmp_path, {"none": [rise] * 3, "expert": [rise] * 3, "expert+reuse": [rise] * 3})
    shutil.rmtree(tmp_path / "runs" / "blackjack" / "ppo" / "expert+reuse")  # never started
    shutil.rmtree(tmp_path / "runs" / "blackjack" / "ppo" / "expert" / "seed2")  # not yet
    runs, curves, _ = load_results(tmp_path)
    assert set(runs["arm"]) == {"none", "expert"} and runs.attrs["not_started"] == 3
    assert (runs["status"] == "pending").sum() == 1  # expert seed 2: started configuration
    paths = write_report(tmp_path, runs, curves, {"name": "t", "metric_definitions":
                         METRIC_DEFINITIONS}, reps=200)  # fmt: skip
    md = paths["report.md"].read_text()
    assert "6 runs: 5 done, 0 failed, 1 unfinished." in md
    assert "Left out: 3 more runs of the sweep file" in md
    assert "| expert+reuse |" not in md


def test_a_baseline_not_started_stays_in_and_marks_the_report_incomplete(tmp_path):
    import shutil

    from tutorl.experiments.metrics import load_results

    rise = [-0.5, -0.4, -0.3, -0.2, -0.1, -0.1, -0.1, -0.1, -0.1]
    fake_sweep(tmp_path, {"none": [rise] * 3, "expert": [rise] * 3, "expert+reuse": [rise] * 3})
    shutil.rmtree(tmp_path / "runs" / "blackjack" / "ppo" / "none")  # every speed-up's reference
    runs, _, _ = load_results(tmp_path)
    assert set(runs["arm"]) == {"none", "expert", "expert+reuse"}
    assert runs.attrs["not_started"] == 0 and (runs["status"] == "pending").sum() == 3
