"""The typed LLM specs: one meaning for a run's flat ``llm*`` fields, one place that fills the
default model, the same checks from a run, ULTRA and the library."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tutorl.envs import get_game
from tutorl.llm.models import DEFAULT_MODEL
from tutorl.llm.spec import LLMSpec, LLMTutorSpec
from tutorl.rl.train import RunConfig
from tutorl.tutor.quality import sample_states
from tutorl.tutor.tutors import make_tutor
from tutorl.ultra.pipeline import UltraConfig


def test_the_default_model_is_filled_once_and_stored_resolved():
    assert LLMSpec().resolved().model == DEFAULT_MODEL
    assert LLMSpec(model="qwen2.5-coder-0.5b").resolved().model == "qwen2.5-coder-0.5b"
    assert RunConfig(env="blackjack", algo="ppo", tutor="llm").llm == DEFAULT_MODEL
    assert UltraConfig(env="blackjack", algo="ppo", identifiers=["llm"]).llm == DEFAULT_MODEL
    # Untutored and expert runs name no model.
    assert RunConfig(env="blackjack", algo="ppo", tutor="expert").llm is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "localhost:11434"}, "http://"),
        ({"url": "http://127.0.0.1:1/v1"}, "needs --llm-model"),
        ({"timeout": 0}, "greater than 0"),
        ({"concurrency": 0}, "greater than or equal to 1"),
        ({"modle": "x"}, "Extra inputs"),
    ],
)
def test_an_llm_spec_refuses_what_cannot_run(fields, message):
    with pytest.raises(ValidationError, match=message):
        LLMSpec(**fields)


def test_runs_and_ultra_check_the_endpoint_the_same_way():
    for build in (
        lambda: RunConfig(env="blackjack", algo="ppo", tutor="llm", llm_url="http://h:1/v1"),
        lambda: UltraConfig(
            env="blackjack", algo="ppo", identifiers=["llm"], llm_url="http://h:1/v1"
        ),
    ):
        with pytest.raises(ValidationError, match="needs --llm-model"):
            build()


def test_a_runs_flat_fields_mean_one_tutor_spec():
    config = RunConfig(
        env="snake", algo="ppo", tutor="llm", llm="qwen2.5-coder-0.5b", describer="plain",
        llm_calibrate="content-free", llm_cache=False, llm_mode="score",
    )  # fmt: skip
    spec = config.llm_tutor_spec()
    assert spec == LLMTutorSpec(
        llm=LLMSpec(model="qwen2.5-coder-0.5b", cache=False),
        describer="plain",
        calibrate="content-free",
    )
    # The run folder keeps its flat format: no nested spec leaks into config.json.
    assert "llm_tutor_spec" not in config.model_dump() and config.model_dump()["llm"]


def test_a_tutor_spec_builds_the_tutor_it_describes():
    game = get_game("snake")
    spec = LLMTutorSpec(llm=LLMSpec(cache=False), describer="plain", calibrate="batch-mean")
    tutor = make_tutor("llm", game, llm=spec)
    assert tutor.mode == "score" and tutor.calibrate == "batch-mean"
    assert tutor.template.describer == "plain"
    views = [view for _, view in sample_states(game, 3, seed=0)]
    advice = tutor.advise(views)  # the real default embedded model answers
    assert len(advice) == 3
    assert all(a.action in game.legal_actions(v) for a, v in zip(advice, views, strict=True))
