"""One embedded model served to many processes.

A sweep runs several training processes at once; if each loaded its own copy of an embedded
model, two workers would hold two copies and fight over the same two cores. An
:class:`LLMService` loads the model once in a child process and serves ``score``/``generate``
to any process that connects with :class:`RemoteLLM` (stdlib ``multiprocessing.managers`` over
127.0.0.1, authenticated with a random key). Requests are answered one at a time (llama.cpp
is not re-entrant), the model keeps its prompt-prefix KV cache between them, and each client
wraps the proxy in its own :class:`~tutorl.llm.cache.CachedLLM` on the shared SQLite cache.

The remote model has the in-process model's ``identity``, so answers, cache entries and results
are the same whether a run loads the model itself or uses the service.

.. code-block:: python

    with LLMService("smollm2-135m") as service:
        llm = RemoteLLM(service.address, service.authkey)
        llm.score([...])
"""

from __future__ import annotations

import multiprocessing
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Any

from tutorl.llm.base import GenerateRequest, LLMUnavailableError, ScoreRequest

_SERVED: Any = None  # the model, in the service process only


class _Served:
    """What the service exposes: the model's answers and its identity, nothing else."""

    def info(self) -> dict[str, str]:
        return {"identity": _SERVED.identity, "format": _SERVED.prompt_format.name}

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        return _SERVED.score(requests)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        return _SERVED.generate(requests)


def _served() -> _Served:
    return _Served()


def _load(spec: str, kwargs: dict[str, Any]) -> None:
    # Runs in the service process before it serves: load the model once.
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    from tutorl._process import die_with_parent

    die_with_parent()  # a killed sweep must not leave its model process behind
    global _SERVED
    from tutorl.llm import make_llm

    _SERVED = make_llm(spec, cache=False, **kwargs)


class _Manager(BaseManager):
    pass


_Manager.register("llm", callable=_served)


class LLMService:
    """Load embedded model ``spec`` (name or ``.gguf`` path) in a child process and serve it.

    :param spec: As for :func:`tutorl.llm.make_llm` without ``url``.
    :param host: Interface to listen on (``127.0.0.1``: this machine only).
    :param kwargs: Passed to :class:`~tutorl.llm.llamacpp.LlamaCppLLM` (e.g. ``n_threads``).
    """

    def __init__(self, spec: str, host: str = "127.0.0.1", **kwargs: Any) -> None:
        self.spec = spec
        self.authkey = secrets.token_bytes(16)
        self._manager = _Manager(
            address=(host, 0), authkey=self.authkey, ctx=multiprocessing.get_context("spawn")
        )
        self._kwargs = kwargs
        self.address: tuple[str, int] | None = None

    def start(self) -> LLMService:
        from tutorl.llm.base import LLMError
        from tutorl.llm.models import resolve_model

        resolve_model(self.spec)  # a missing package or file: its clear error, here
        try:
            self._manager.start(initializer=_load, initargs=(self.spec, self._kwargs))
        except EOFError:
            raise LLMError(f"the LLM service could not load {self.spec!r}") from None
        self.address = self._manager.address
        # Fail here, with the loader's message, rather than in every worker.
        RemoteLLM(self.address, self.authkey)
        return self

    def stop(self) -> None:
        self._manager.shutdown()

    def __enter__(self) -> LLMService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self) -> tuple[str, int, str]:
        """What a worker needs to connect (picklable, for process pools and Ray)."""
        assert self.address is not None, "start the service first"
        return (self.address[0], self.address[1], self.authkey.hex())


@dataclass(frozen=True)
class _Format:
    name: str


class RemoteLLM:
    """The :class:`~tutorl.llm.base.LLM` protocol, answered by an :class:`LLMService`.

    :param address: ``(host, port)`` of the service.
    :param authkey: The service's key (bytes or hex string).
    """

    def __init__(self, address: tuple[str, int], authkey: bytes | str) -> None:
        key = bytes.fromhex(authkey) if isinstance(authkey, str) else authkey
        manager = _Manager(address=tuple(address), authkey=key)
        try:
            manager.connect()
            self._proxy = manager.llm()
            info = self._proxy.info()
        except (OSError, EOFError) as error:
            raise LLMUnavailableError(f"LLM service at {address} unreachable: {error}") from None
        self.identity: str = info["identity"]
        self.prompt_format = _Format(info["format"])

    @classmethod
    def from_handle(cls, handle: tuple[str, int, str]) -> RemoteLLM:
        host, port, key = handle
        return cls((host, int(port)), key)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        try:
            return self._proxy.score(list(requests))
        except (OSError, EOFError) as error:
            raise LLMUnavailableError(f"LLM service lost: {error}") from None

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        try:
            return self._proxy.generate(list(requests))
        except (OSError, EOFError) as error:
            raise LLMUnavailableError(f"LLM service lost: {error}") from None

    def __repr__(self) -> str:
        return f"RemoteLLM({self.identity!r})"
