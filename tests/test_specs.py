"""The typed specs (tutorl.specs): each field declared once, the typed parts a run is made of
built from it, every stored configuration still readable, and input checked before PyTorch
loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tutorl.envs import get_game
from tutorl.llm.spec import LLMSpec
from tutorl.specs import (
    AdviceFields,
    ImitationSettings,
    LLMFields,
    LLMTutorFields,
    RunConfig,
    ScheduleFields,
    field_panel,
    reference,
)
from tutorl.tutor.schedule import AdviceSchedule
from tutorl.ultra.pipeline import UltraConfig

ROOT = Path(__file__).resolve().parents[1]
FORMAT = ROOT / "tests" / "data" / "config_format.json"


def stored_format(model) -> dict:
    """What a stored configuration's keys mean: each field's type, default and bounds."""
    out = {}
    for name, field in model.model_fields.items():
        bounds = sorted(
            repr(m) for m in field.metadata
            if type(m).__module__.startswith(("annotated_types", "pydantic"))
            and "Validator" not in type(m).__name__
        )  # fmt: skip
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        kind = str(field.annotation).replace("typing.", "")
        out[name] = {"type": kind, "default": default, "constraints": bounds}
    return out


def test_the_stored_format_is_unchanged():
    # config.json, sweep files and ULTRA folders hold these keys: a renamed field, another
    # type, default or bound changes what every stored run means. The snapshot was made from
    # the code before the fields were grouped (commit 5bf8c93); change it only on purpose.
    now = {"RunConfig": stored_format(RunConfig), "UltraConfig": stored_format(UltraConfig)}
    assert json.loads(json.dumps(now, default=str)) == json.loads(FORMAT.read_text())


def test_a_run_is_built_from_its_typed_parts():
    config = RunConfig(
        env="snake", algo="ppo", tutor="llm", llm="smollm2-135m", llm_cache=False,
        describer="plain", ask_end=0.2, steps=1000, advice_mode="label", imitation_coef=2.0,
        imitation_guard=True, imitation_guard_z=1.645,
    )  # fmt: skip
    assert config.schedule() == AdviceSchedule(1.0, 0.2, 200, None)  # θ = 20% of the run
    assert config.imitation() == ImitationSettings(coef=2.0, guard=True, guard_z=1.645)
    spec = config.llm_tutor_spec()
    assert spec.llm == LLMSpec(model="smollm2-135m", cache=False)
    assert spec.describer == "plain" and spec.mode == "score"


def test_a_path_is_one_configuration_however_it_is_typed(tmp_path, monkeypatch):
    # As the command line passes paths: `./a.txt`, `a.txt` and Path("a.txt") are one run, so a
    # run folder made one way is resumed the other.
    monkeypatch.chdir(tmp_path)
    spellings = ["./t/a.txt", "t/a.txt", Path("t/a.txt"), "t//a.txt"]
    runs = {RunConfig(env="blackjack", algo="ppo", prompt_template=p).prompt_template
            for p in spellings}  # fmt: skip
    assert runs == {"t/a.txt"}
    with pytest.raises(ValueError, match=r"model file not found: t/agent\.zip \["):
        UltraConfig(env="blackjack", algo="ppo", model="./t/agent.zip")  # normalised first


def test_the_llm_fields_are_shared_by_a_run_and_ultra():
    for model in (RunConfig, UltraConfig):
        assert issubclass(model, LLMFields)
        for name in LLMFields.model_fields:
            assert repr(model.model_fields[name]) == repr(LLMFields.model_fields[name]), name
    assert field_panel(RunConfig, "llm_url") == "LLM"
    assert field_panel(RunConfig, "llm_mode") == "LLM tutor"
    assert field_panel(UltraConfig, "train_steps") == "ULTRA"


def test_every_field_has_a_group_and_a_meaning():
    for model in (RunConfig, UltraConfig):
        for name, field in model.model_fields.items():
            assert field_panel(model, name), name
            assert field.description, name
    page = reference([RunConfig, UltraConfig])
    for group in (AdviceFields, ScheduleFields, LLMTutorFields):
        for name in group.model_fields:
            assert f"| `{name}` |" in page


@pytest.mark.parametrize(
    "stored",
    sorted(ROOT.glob("docs/results/*/comparison.json"))
    + sorted(ROOT.glob("docs/results/ultra/*/config.json")),
    ids=lambda p: str(p.relative_to(ROOT / "docs" / "results")),
)
def test_every_committed_configuration_still_loads(stored):
    # The flat keys are the result format: folders written by earlier versions stay readable,
    # and a field added since takes its default.
    data = json.loads(stored.read_text())
    if stored.name == "comparison.json":
        stored_fields = data["config"]
        config = RunConfig.model_validate(stored_fields)
        if stored_fields.get("llm_timeout", 0) is None:  # before it had a default
            stored_fields["llm_timeout"] = 60.0
        assert {k: getattr(config, k) for k in stored_fields} == stored_fields
    else:
        config = UltraConfig.model_validate(data)
        resolved = {"threshold", "llm"}  # stored unresolved by earlier versions, resolved now
        kept = {k: v for k, v in data.items() if k not in resolved}
        assert {k: getattr(config, k) for k in kept} == kept
        assert config.threshold == (data["threshold"] or get_game(data["env"]).ultra_threshold)


def test_a_mistake_is_reported_before_pytorch_loads(tmp_path):
    # Validating a run (command line or sweep file) needs neither torch nor SB3.
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("envs: {blackjack: {steps: 100}}\nalgos: [ppo]\ndefaults: {ask_end: 2}\n")
    code = f"""
import sys
from tutorl.cli import main
for argv in (["train", "--env", "blackjack", "--algo", "ppo", "--imitation-coef", "-1"],
             ["sweep", {str(sweep)!r}, "--out", {str(tmp_path / "out")!r}],
             ["ultra", "--env", "snake", "--algo", "dqn", "--out", "x", "--seeds", "0"]):
    try:
        main(argv)
    except SystemExit as end:
        assert end.code == 2, end.code
heavy = [m for m in ("torch", "stable_baselines3", "llama_cpp") if m in sys.modules]
print("loaded:", heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded: []" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, result.stderr
    assert "--imitation-coef: Input should be greater than or equal to 0" in errors[0]
    assert "ask_end" in errors[1] or "ask-end" in errors[1]
    assert "--seeds: Input should be greater than or equal to 1" in errors[2]
