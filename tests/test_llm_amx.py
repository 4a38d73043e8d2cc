"""llama.cpp on CPUs whose AMX the kernel does not enable (tutorl.llm.llamacpp.amx_unusable)."""

from __future__ import annotations

import llama_cpp.llama_cpp as low

from tutorl.llm.llamacpp import _import_llama_cpp, _without_extra_buffers, amx_unusable


def test_extra_buffer_types_are_off_exactly_when_amx_is_unusable():
    _import_llama_cpp()
    patched = getattr(low.llama_model_default_params, "_tutorl_no_extra_bufts", False)
    assert patched == amx_unusable()
    assert low.llama_model_default_params().use_extra_bufts is (not patched)


def test_the_patch_turns_extra_buffers_off_once(monkeypatch):
    monkeypatch.setattr(low, "llama_model_default_params", low.llama_model_default_params)

    class Module:  # what _without_extra_buffers sees as the llama_cpp package
        llama_cpp = low

    _without_extra_buffers(Module)
    first = low.llama_model_default_params
    _without_extra_buffers(Module)
    assert low.llama_model_default_params is first  # not wrapped twice
    assert first().use_extra_bufts is False
