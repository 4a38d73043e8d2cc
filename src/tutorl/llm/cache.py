"""A persistent response cache in SQLite, shared safely by several processes.

An LLM answer is a pure function of (model identity, prompt, decoding settings): with greedy
decoding or a fixed seed the same request gives the same answer, so it is computed once and
kept. Parallel training processes share one file: SQLite in WAL mode lets readers run while
one writer writes, every write is a single short ``INSERT OR REPLACE`` transaction, and a busy
timeout makes a writer wait for the lock instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tutorl.llm.base import GenerateRequest, ScoreRequest

#: Environment variable overriding the cache file location.
CACHE_ENV = "TUTORL_CACHE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``$TUTORL_CACHE`` if set, else ``~/.cache/tutorl/responses.sqlite``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tutorl" / "responses.sqlite"


def request_key(kind: str, identity: str, payload: dict[str, Any]) -> str:
    """The cache key: sha256 of a canonical JSON of (kind, model identity, request).

    :param kind: ``"score"`` or ``"generate"`` (the same prompt scored and generated are
        different entries).
    :param identity: The backend's model identity.
    :param payload: The request's prompt and decoding settings / choices.
    """
    blob = json.dumps(
        {"kind": kind, "identity": identity, "request": payload},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CacheError(ValueError):
    """The response cache file cannot be used (not SQLite, truncated, a folder, read-only).

    tutorl does not move a bad cache aside by itself (it could be a file the user pointed at by
    mistake): it stops with this one-line error naming the file and the fix.
    """

    def __init__(self, path: str, error: BaseException) -> None:
        super().__init__(
            f"the LLM response cache {path} cannot be used ({type(error).__name__}: {error}): "
            "delete or move that file, point TUTORL_CACHE at another path, or run with "
            "--no-cache"
        )


class ResponseCache:
    """Key/value store of JSON values in one SQLite file.

    :param path: The database file (created with its folder); default
        :func:`default_cache_path`. ``":memory:"`` keeps a private in-memory cache.
    :param busy_timeout: Seconds a writer waits for another process's lock.

    ``hits`` and ``misses`` count this instance's look-ups.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, busy_timeout: float = 30.0):
        self.path = str(path) if path is not None else str(default_cache_path())
        self.busy_timeout = float(busy_timeout)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._connection()  # fail early on an unusable path
            self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()  # type: ignore[union-attr]
        except (sqlite3.Error, OSError) as error:
            raise CacheError(self.path, error) from None

    def _connection(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.Error as error:
            raise CacheError(self.path, error) from None

    def _open(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child process opens its own.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit: each statement is its own short transaction
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL is durable against application crashes (not power loss), and
                # avoids an fsync per answer.
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    def get(self, key: str) -> Any | None:
        """The stored value, or ``None`` (and a miss is counted)."""
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute("SELECT value FROM responses WHERE key = ?", (key,))
                    .fetchone()
                )
            except sqlite3.Error as error:  # the file went bad during the run
                raise CacheError(self.path, error) from None
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            return json.loads(row[0])

    def put(self, key: str, value: Any, kind: str = "", identity: str = "") -> None:
        """Store ``value`` (JSON-serialisable) under ``key``, replacing any old value."""
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            try:
                self._connection().execute(
                    "INSERT OR REPLACE INTO responses (key, kind, identity, value, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, kind, identity, blob, time.time()),
                )
            except sqlite3.Error as error:  # disk full, read-only, corrupted during the run
                raise CacheError(self.path, error) from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        """Delete every entry."""
        with self._lock:
            self._connection().execute("DELETE FROM responses")

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for process pools: the child reopens the file.
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResponseCache(path={self.path!r}, hits={self.hits}, misses={self.misses})"


class CachedLLM:
    """Wraps an LLM so that a request already answered never reaches the model.

    Implements the same ``LLM`` protocol. Within one batch, identical requests are sent to
    the model once; all misses of a batch go to the model in one batched call.

    :param llm: The backend.
    :param cache: The response cache (default: a :class:`ResponseCache` at the default path).
    """

    def __init__(self, llm: Any, cache: ResponseCache | None = None) -> None:
        self.llm = llm
        self.cache = cache if cache is not None else ResponseCache()
        #: For each request of the last call: True when it was answered from the cache.
        self.last_cached: list[bool] = []

    @property
    def identity(self) -> str:
        return self.llm.identity

    @property
    def hits(self) -> int:
        return self.cache.hits

    @property
    def misses(self) -> int:
        return self.cache.misses

    def _run(self, kind: str, requests: Sequence[Any], call: Any) -> list[Any]:
        identity = self.llm.identity
        keys = [request_key(kind, identity, r.cache_payload()) for r in requests]
        results: list[Any] = [None] * len(requests)
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key in todo:  # duplicate within this batch: answered with the first one
                todo[key].append(i)
                continue
            value = self.cache.get(key)
            if value is None:
                todo[key] = [i]
            else:
                results[i] = value
        self.last_cached = [r is not None for r in results]
        if todo:
            fresh = call([requests[idx[0]] for idx in todo.values()])
            for (key, idx), value in zip(todo.items(), fresh, strict=True):
                self.cache.put(key, value, kind=kind, identity=identity)
                for i in idx:
                    results[i] = value
        return results

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Cached :meth:`LLM.score`."""
        return self._run("score", requests, self.llm.score)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Cached :meth:`LLM.generate`."""
        return self._run("generate", requests, self.llm.generate)

    def __repr__(self) -> str:
        return f"CachedLLM({self.llm!r}, {self.cache!r})"
