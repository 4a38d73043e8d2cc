"""Typed descriptions of an LLM and of an LLM tutor, declared once.

A run's ``config.json``, a sweep file and ``tutorl ultra`` keep their flat, stable field names
(``llm``, ``llm_url``, ``llm_mode``, ...: the result format users already have). These specs
are what those fields mean, built in one place (:class:`tutorl.specs.LLMFields` and
:class:`tutorl.specs.LLMTutorFields`, shared by a run and ULTRA) and the only thing the
builders take, so a model name has one name from the command line to the backend and the
default model is filled in one place (:meth:`LLMSpec.resolved`).

.. code-block:: python

    from tutorl.llm.spec import LLMSpec, LLMTutorSpec

    llm = LLMSpec(model="qwen2.5-coder-0.5b").make()  # embedded, behind the response cache
    spec = LLMTutorSpec(llm=LLMSpec(model="qwen2.5-coder-0.5b"), describer="plain",
                        calibrate="content-free")
    tutor = spec.make(get_game("snake"))
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Handle = tuple[str, int, str]


def check_url(url: str | None) -> None:
    """Refuse an endpoint URL that is not http(s) (also where no LLM uses it: a sweep's shared
    defaults must never be silently malformed)."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"--llm-url must start with http:// or https://, got {url!r}")


class LLMSpec(BaseModel):
    """Which language model answers: an embedded model or an OpenAI-compatible endpoint.

    :param model: without ``url`` an embedded model's short name (``tutorl models``) or a
        ``.gguf`` path, ``None`` for the default embedded model; with ``url`` the endpoint's
        model name (required).
    :param url: base URL of an OpenAI-compatible API, e.g. ``http://localhost:11434/v1``.
    :param api_key_env: the environment variable holding the endpoint's key (the key itself
        is never stored).
    :param timeout: endpoint only: most seconds one request may take, retries included.
    :param concurrency: endpoint only: requests of one step in flight at once.
    :param cache: keep answers in the persistent response cache (``$TUTORL_CACHE``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    concurrency: int = Field(8, ge=1)
    cache: bool = True

    @model_validator(mode="after")
    def _check(self) -> LLMSpec:
        if self.url is not None:
            check_url(self.url)
            if self.model is None:
                raise ValueError("--llm-url needs --llm-model (the endpoint's model name)")
        return self

    def resolved(self) -> LLMSpec:
        """The same spec with the default embedded model filled in (stored resolved, so a
        resumed run keeps its model even if the default changes)."""
        if self.model is not None:
            return self
        from tutorl.llm.models import DEFAULT_MODEL

        return self.model_copy(update={"model": DEFAULT_MODEL})

    def make(self, service: Handle | None = None) -> Any:
        """The model (:func:`tutorl.llm.make_llm`), or a client of the shared
        :class:`~tutorl.llm.service.LLMService` given its ``service`` handle (embedded only)."""
        from tutorl.llm import make_llm

        endpoint = {"timeout": self.timeout, "concurrency": self.concurrency} if self.url else {}
        return make_llm(
            self.resolved().model,
            self.url,
            cache=self.cache,
            api_key_env=self.api_key_env,
            service=None if self.url else service,
            **endpoint,
        )


class LLMTutorSpec(BaseModel):
    """An LLM as a tutor: the model, and how a state is put to it and its answer read.

    :param llm: the model (:class:`LLMSpec`).
    :param mode: ``score`` (rank the legal actions' labels) or ``generate`` (``<action>``).
    :param template: a prompt template file (``None``: the game's built-in prompt).
    :param describer: which of the game's state texts the model is shown.
    :param calibrate: score mode: ``none``, ``content-free`` or ``batch-mean``; never uses the
        expert.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm: LLMSpec = LLMSpec()
    mode: Literal["score", "generate"] = "score"
    template: str | None = None
    describer: str = "default"
    calibrate: Literal["none", "content-free", "batch-mean"] = "none"

    def make(self, game: Any, service: Handle | None = None) -> Any:
        """The :class:`~tutorl.tutor.llm_tutor.LLMTutor` for ``game``."""
        from tutorl.tutor.llm_tutor import LLMTutor
        from tutorl.tutor.prompts import PromptTemplate

        prompt = (
            PromptTemplate.from_file(game, self.template, self.mode, self.describer)
            if self.template
            else PromptTemplate(game, self.mode, describer=self.describer)
        )
        llm = self.llm.make(service)
        return LLMTutor(game, llm, mode=self.mode, template=prompt, calibrate=self.calibrate)


__all__ = ["LLMSpec", "LLMTutorSpec", "check_url"]
