"""``python -m tutorl.llm.serve ARGS``: llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``, same arguments), with tutorl's llama.cpp set-up applied
first: on a CPU whose AMX the kernel does not enable, models load without the AMX kernels that
would otherwise kill the server with SIGILL (:func:`tutorl.llm.llamacpp.amx_unusable`)."""

from __future__ import annotations

from tutorl.llm.llamacpp import _import_llama_cpp


def main() -> None:
    _import_llama_cpp()
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
