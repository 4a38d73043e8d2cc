"""The LLM layer: backends that score and generate, a persistent response cache, and the
embedded models. It knows nothing about reinforcement learning or games.

.. code-block:: python

    from tutorl.llm import ScoreRequest, make_llm

    llm = make_llm("smollm2-135m")  # embedded, in-process, behind the response cache
    request = ScoreRequest("Answer hit or stick.\\n", "Player 15, dealer 10.", ("hit", "stick"))
    [[lp_hit, lp_stick]] = llm.score([request])

``make_llm`` accepts an embedded model's short name (:func:`list_models`), a path to a
``.gguf`` file, or, with ``url``, a model name on an OpenAI-compatible endpoint (the paper's
families ``llama``/``vicuna``/``deepseek`` are translated to Ollama tags, see
:data:`~tutorl.llm.models.OLLAMA_TAGS`).
"""

from __future__ import annotations

from typing import Any

from tutorl.llm.base import (
    LLM,
    ChatTemplateFormat,
    GenerateRequest,
    LLMError,
    LLMResponseError,
    LLMUnavailableError,
    PromptFormat,
    RawFormat,
    ScoreRequest,
)
from tutorl.llm.cache import CachedLLM, ResponseCache, default_cache_path
from tutorl.llm.models import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    OLLAMA_TAGS,
    list_models,
    ollama_tag,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LLM",
    "OLLAMA_TAGS",
    "CachedLLM",
    "ChatTemplateFormat",
    "GenerateRequest",
    "LLMError",
    "LLMResponseError",
    "LLMUnavailableError",
    "PromptFormat",
    "RawFormat",
    "ResponseCache",
    "ScoreRequest",
    "default_cache_path",
    "list_models",
    "make_llm",
    "ollama_tag",
    "resolve_model",
]


def make_llm(
    spec: str = DEFAULT_MODEL,
    url: str | None = None,
    *,
    cache: ResponseCache | bool | None = True,
    api_key_env: str = "OPENAI_API_KEY",
    service: tuple[str, int, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Build an LLM from a short description.

    :param spec: Without ``url``: an embedded model's short name (``"smollm2-135m"``,
        ``"gemma3-270m"``, ``"qwen2.5-coder-0.5b"``) or a path to a ``.gguf`` file, loaded in
        this process. With ``url``: the endpoint's model name; ``"llama"``, ``"vicuna"`` and
        ``"deepseek"`` become Ollama tags (:func:`~tutorl.llm.models.ollama_tag`).
    :param url: Base URL of an OpenAI-compatible API (e.g. ``"http://localhost:11434/v1"``).
    :param cache: ``True`` wraps the model in a :class:`CachedLLM` with the default
        :class:`ResponseCache` (``$TUTORL_CACHE``); a :class:`ResponseCache` uses that one;
        ``False``/``None`` returns the bare backend.
    :param api_key_env: Name of the environment variable with the endpoint's API key.
    :param service: Handle of an :class:`~tutorl.llm.service.LLMService` already serving
        ``spec`` (sweeps share one model process this way); the answers are the same.
    :param kwargs: Passed to :class:`~tutorl.llm.llamacpp.LlamaCppLLM` or
        :class:`~tutorl.llm.openai.OpenAICompatibleLLM`.
    :raises ValueError: Unknown model name.
    :raises FileNotFoundError: Model package not installed (the message names the ``pip
        install``) or missing file.
    """
    llm: Any
    if service is not None:
        from tutorl.llm.service import RemoteLLM

        llm = RemoteLLM.from_handle(service)
    elif url:
        from tutorl.llm.openai import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM(url, ollama_tag(spec), api_key_env=api_key_env, **kwargs)
    else:
        from tutorl.llm.llamacpp import LlamaCppLLM
        from tutorl.llm.models import EMBEDDED_MODELS as _models

        path = resolve_model(spec)
        embedded = _models.get(spec)
        if embedded is not None:
            kwargs.setdefault("name", embedded.name)
            kwargs.setdefault("sha256", embedded.sha256)
        llm = LlamaCppLLM(path, **kwargs)
    if cache is True:
        return CachedLLM(llm, ResponseCache())
    if isinstance(cache, ResponseCache):
        return CachedLLM(llm, cache)
    return llm
