"""In-process GGUF backend on llama-cpp-python.

One :class:`LlamaCppLLM` holds one ``llama_cpp.Llama`` (one context, one key/value cache).
Every prompt starts with the same fixed part (template header + instructions), so before each
forward pass the backend keeps the longest common token prefix between the tokens already in
the KV cache and the new prompt, drops the rest (``kv_cache_seq_rm``) and evaluates only the
new suffix: the instructions are computed once, each state costs only its own tokens.

Written against llama-cpp-python 0.3.36, whose ``Llama`` keeps ``input_ids[:n_tokens]`` as the
tokens in the KV cache; ``Llama.eval`` first removes the cache from position ``n_tokens`` on,
then decodes the new tokens at positions ``n_tokens..``; with ``logits_all=False`` only the
last token's logits are computed and ``Llama.scores`` is not filled, so they are read with
``llama_get_logits_ith(ctx, -1)``. Generation goes through ``create_completion`` with a token
list, whose ``generate`` does the same prefix matching. A request's ``json_schema`` becomes a
GBNF grammar (``llama_cpp.LlamaGrammar.from_json_schema``, llama.cpp's schema converter)
passed as ``create_completion(grammar=...)``: the sampler chain then masks every token that
would leave the grammar, at each step, before the greedy or seeded pick. The converter
enforces types, ``enum``, ``const``, required properties, ``additionalProperties: false``,
``maxItems`` and string ``maxLength``, but not numeric ``minimum``/``maximum``; callers still
validate.

Results must not depend on what the cache held before, and llama.cpp's CPU kernels give
different numbers for a *one-token* batch than for a batch of two or more (measured on
SmolLM2-135M Q4_1: up to 0.40 in a log-probability; batches of 2, 3, 8, 22 or 78 tokens agree
exactly). So every decode here has at least two tokens: the cached prefix is cut two tokens
before the prompt's end at the latest, long suffixes are split so no chunk has one token, and
generated tokens are never reused as a later prompt's prefix. With that, a score computed
with the prefix reused equals a score computed from scratch.
"""

from __future__ import annotations

import os

# Must be set before llama.cpp's OpenMP runtime starts: busy-waiting threads steal the cores
# of other processes (measured: a 0.5B model fell from 18 to 2.4 tokens/s under load).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tutorl.llm.base import (
    ChatTemplateFormat,
    GenerateRequest,
    LLMError,
    PromptFormat,
    RawFormat,
    ScoreRequest,
    log_softmax,
    safe_log,
)


def amx_unusable() -> bool:
    """True when the CPU advertises Intel AMX: llama.cpp's AMX kernels are then not trusted.

    llama-cpp-python compiles with ``-march=native``, so on an AMX CPU it builds llama.cpp's AMX
    kernels. On this project's (virtual) machines the first AMX instruction killed the process
    with SIGILL (``tileloadd`` in ``ggml_backend_amx_mul_mat``), both before and after the
    kernel reported the tile-data state as granted (``arch_prctl``: PyTorch requests it, and
    the answer changes), so no kernel query tells whether AMX really works. The tutor models are
    small; the plain AVX kernels serve them well.
    """
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _without_extra_buffers(llama_cpp: Any) -> None:
    """Load models without llama.cpp's extra buffer types (weight repacking, where the AMX
    kernels live), so that its plain AVX code runs instead. Applied once per process, only when
    :func:`amx_unusable`; it covers every ``Llama`` of the process, ``llama_cpp.server``'s too
    (see :mod:`tutorl.llm.serve`)."""
    low = llama_cpp.llama_cpp
    if getattr(low.llama_model_default_params, "_tutorl_no_extra_bufts", False):
        return
    original = low.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = False
        return value

    params._tutorl_no_extra_bufts = True  # type: ignore[attr-defined]
    low.llama_model_default_params = params


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the embedded LLM backend needs llama-cpp-python: "
            'pip install "llama-cpp-python[server]==0.3.36" (compiles from source, ~10 min)'
        ) from exc
    if amx_unusable():
        _without_extra_buffers(llama_cpp)
    return llama_cpp


class LlamaCppLLM:
    """A GGUF model evaluated in this process.

    :param model_path: The ``.gguf`` file (see :func:`tutorl.llm.models.resolve_model`).
    :param n_ctx: Context length in tokens (instructions + state + answer).
    :param n_threads: CPU threads; default ``min(4, cores)``.
    :param n_batch: Tokens decoded per ``llama_decode`` call.
    :param seed: Default sampling seed of the context (requests carry their own).
    :param prompt_format: ``"auto"`` (the GGUF's chat template if it has one, else raw),
        ``"raw"``, a Jinja chat-template string, or a :class:`PromptFormat`.
    :param reuse_prefix: Keep the common token prefix in the KV cache between forward passes.
        ``False`` evaluates every prompt from scratch (for measurements and tests).
    :param name: Model name in the identity (default: the file name).
    :param sha256: The file's sha256 if known (else computed once and remembered).
    :param verbose: Let llama.cpp print its logs.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        prompt_format: str | PromptFormat = "auto",
        reuse_prefix: bool = True,
        name: str | None = None,
        sha256: str | None = None,
        verbose: bool = False,
    ) -> None:
        from tutorl.llm.models import file_sha256

        llama_cpp = _import_llama_cpp()
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        if n_threads is None:
            n_threads = max(1, min(4, os.cpu_count() or 1))
        self.model_path = path
        self.reuse_prefix = reuse_prefix
        self.n_batch = max(4, int(n_batch))
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}  # json_schema -> LlamaGrammar (converted once)
        try:
            # llama.cpp prints model-loading logs on the C side even with verbose=False
            # in some versions; keep the terminal clean unless asked.
            with _quiet(not verbose):
                self._llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_batch=self.n_batch,
                    seed=seed,
                    logits_all=False,
                    verbose=verbose,
                )
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"llama.cpp could not load {path}: {exc}") from exc
        self._get_logits_ith = llama_cpp.llama_get_logits_ith
        self._n_vocab = self._llama.n_vocab()
        self.n_ctx = self._llama.n_ctx()
        # Recurrent models (Mamba, RWKV) cannot drop the tail of their state: always reset.
        recurrent = getattr(self._llama, "_is_recurrent", False)
        self._can_truncate = not (recurrent or getattr(self._llama, "_is_hybrid", False))
        self.prompt_format = self._make_format(prompt_format)
        self._bos_id = self._llama.token_bos()
        self._add_bos = bool(self._llama._model.add_bos_token()) and self._bos_id >= 0
        self._bos_text = self._token_text(self._bos_id) if self._bos_id >= 0 else ""
        sha = sha256 or file_sha256(path)
        self.name = name or path.name
        self.identity = f"llamacpp:{self.name}:sha256={sha}:{self.prompt_format.name}"
        #: Counters: forward passes, tokens evaluated, tokens reused from the KV cache,
        #: requests scored and generated.
        self.stats = {
            "forward_passes": 0,
            "tokens_evaluated": 0,
            "tokens_reused": 0,
            "score_requests": 0,
            "generate_requests": 0,
        }

    # ---------------------------------------------------------------- prompt and tokens

    def _token_text(self, token: int) -> str:
        return self._llama._model.token_get_text(token)

    def _make_format(self, prompt_format: str | PromptFormat) -> PromptFormat:
        if not isinstance(prompt_format, str):
            return prompt_format
        if prompt_format == "raw":
            return RawFormat()
        if prompt_format == "auto":
            template = self._llama.metadata.get("tokenizer.chat_template")
            if not template:
                return RawFormat()
            prompt_format = template
        eos = self._llama.token_eos()
        bos = self._llama.token_bos()
        return ChatTemplateFormat(
            prompt_format,
            bos_token=self._token_text(bos) if bos >= 0 else "",
            eos_token=self._token_text(eos) if eos >= 0 else "",
        )

    def render(self, prefix: str, text: str, response_prefix: str = "") -> str:
        """The prompt string for a request (chat template applied)."""
        return self.prompt_format.render(prefix, text, response_prefix)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Prompt tokens: special tokens of the template parsed, BOS added once."""
        add_bos = self._add_bos and not (self._bos_text and prompt.startswith(self._bos_text))
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def _continuation(self, prompt: str, prompt_tokens: list[int], choice: str) -> list[int]:
        # Tokenizing prompt+choice gives the tokens the model would really produce (a
        # SentencePiece space prefix or a merge at the boundary included). If the boundary
        # merges into the prompt's last token, fall back to the choice tokenized alone.
        full = self.tokenize_prompt(prompt + choice)
        n = len(prompt_tokens)
        if len(full) > n and full[:n] == prompt_tokens:
            return full[n:]
        alone = self._llama.tokenize(choice.encode("utf-8"), add_bos=False, special=False)
        if not alone:  # pragma: no cover - a non-empty string always has a token
            raise LLMError(f"choice {choice!r} has no tokens")
        return alone

    # ---------------------------------------------------------------- forward passes

    def _reusable(self, tokens: list[int]) -> int:
        """How many leading tokens of ``tokens`` the KV cache already holds and may keep."""
        llama = self._llama
        if not (self.reuse_prefix and self._can_truncate) or llama.n_tokens == 0:
            return 0
        cached = llama.input_ids[: min(llama.n_tokens, len(tokens))]
        diff = np.nonzero(cached != np.asarray(tokens[: len(cached)], dtype=cached.dtype))[0]
        common = int(diff[0]) if diff.size else len(cached)
        # Decode at least two tokens (see the module docstring): one-token batches differ.
        return max(0, min(common, len(tokens) - 2))

    def _decode(self, tokens: list[int], start: int) -> None:
        """Decode ``tokens[start:]`` after the first ``start`` tokens already in the cache."""
        llama = self._llama
        if start == 0:
            llama.reset()
        # eval() removes the KV cache from position n_tokens on before decoding.
        llama.n_tokens = start
        pos, rest = start, len(tokens) - start
        while rest > 0:
            size = min(rest, self.n_batch)
            if 0 < rest - size < 2:
                size = rest - 2  # never leave a one-token chunk
            llama.eval(tokens[pos : pos + size])
            pos += size
            rest -= size
        self.stats["tokens_evaluated"] += len(tokens) - start
        self.stats["tokens_reused"] += start

    def _logprobs_after(self, tokens: list[int]) -> np.ndarray:
        """Log-probabilities of the next token after ``tokens``, reusing the KV cache."""
        n = len(tokens)
        if n == 0:
            raise LLMError("empty prompt")
        if n >= self.n_ctx:
            raise LLMError(f"prompt of {n} tokens does not fit the context of {self.n_ctx}")
        try:
            self._decode(tokens, self._reusable(tokens))
        except Exception as exc:  # llama_decode failures surface as RuntimeError
            self._llama.reset()
            raise LLMError(f"llama.cpp decode failed: {exc}") from exc
        ptr = self._get_logits_ith(self._llama.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        self.stats["forward_passes"] += 1
        return log_softmax(logits)

    def _score_one(self, request: ScoreRequest) -> list[float]:
        prompt = self.render(request.prefix, request.text, request.response_prefix)
        ptoks = self.tokenize_prompt(prompt)
        conts = [self._continuation(prompt, ptoks, c) for c in request.choices]
        scores = [0.0] * len(conts)

        def walk(path: list[int], idxs: list[int], lp: np.ndarray, acc: float) -> None:
            depth = len(path)
            ended = [i for i in idxs if len(conts[i]) == depth]
            by_next: dict[int, list[int]] = {}
            for i in idxs:
                if len(conts[i]) > depth:
                    by_next.setdefault(conts[i][depth], []).append(i)
            if ended:
                # Choices that end here compete with the longer ones that continue: their
                # event is "stop here", i.e. not take any of the continuing tokens. Choices
                # with identical token sequences share that probability equally.
                p_cont = float(sum(np.exp(lp[t]) for t in by_next))
                p_stop = max(0.0, 1.0 - p_cont) / len(ended)
                for i in ended:
                    scores[i] = acc + safe_log(p_stop)
            for token, group in by_next.items():
                acc_t = acc + float(lp[token])
                if len(group) == 1:
                    scores[group[0]] = acc_t  # distinguished: the rest is forced
                else:
                    child = [*path, token]
                    walk(child, group, self._logprobs_after(ptoks + child), acc_t)

        walk([], list(range(len(conts))), self._logprobs_after(ptoks), 0.0)
        return [max(s, safe_log(0.0)) for s in scores]

    # ---------------------------------------------------------------- the LLM protocol

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Log-probability of each choice (see :mod:`tutorl.llm.base` for the semantics).

        One forward pass over each prompt, whose fixed leading part is reused from the KV
        cache; choices whose first tokens collide cost one more pass per shared token.
        """
        with self._lock:
            out = []
            for request in requests:
                out.append(self._score_one(request))
                self.stats["score_requests"] += 1
            return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        """Generated text per request (greedy at ``temperature=0``, else seeded sampling),
        grammar-constrained when the request has a ``json_schema``."""
        with self._lock:
            return [self._generate_one(r) for r in requests]

    def _grammar(self, schema: str) -> Any:
        """The llama.cpp grammar of a JSON Schema, converted once per schema."""
        grammar = self._grammars.get(schema)
        if grammar is None:
            llama_cpp = _import_llama_cpp()
            try:
                grammar = llama_cpp.LlamaGrammar.from_json_schema(schema, verbose=False)
            except Exception as exc:  # the converter raises assorted types on odd schemas
                raise LLMError(f"cannot turn json_schema into a grammar: {exc!r}") from exc
            # llama.cpp returns NULL for a grammar it cannot parse, and a NULL sampler in the
            # chain would crash the process: try it once here.
            probe = llama_cpp.llama_sampler_init_grammar(
                self._llama._model.vocab,
                grammar._grammar.encode("utf-8"),
                grammar._root.encode("utf-8"),
            )
            if not probe:
                raise LLMError("llama.cpp rejected the grammar made from json_schema")
            llama_cpp.llama_sampler_free(probe)
            if len(self._grammars) >= 32:
                self._grammars.clear()
            self._grammars[schema] = grammar
        return grammar

    def _generate_one(self, r: GenerateRequest) -> str:
        llama = self._llama
        grammar = self._grammar(r.json_schema) if r.json_schema is not None else None
        prompt = self.render(r.prefix, r.text, r.response_prefix)
        tokens = self.tokenize_prompt(prompt)
        n = len(tokens)
        if n + r.max_tokens > self.n_ctx:
            raise LLMError(
                f"prompt of {n} tokens + {r.max_tokens} new tokens does not fit the "
                f"context of {self.n_ctx}"
            )
        try:
            common = self._reusable(tokens)
            if n - common > self.n_batch:
                # Long suffix: pre-decode it in chunks of >= 2 tokens, leaving two tokens
                # for create_completion (its own eval could end on a one-token chunk).
                self._decode(tokens[: n - 2], common)
                common = n - 2
            else:
                self.stats["tokens_evaluated"] += n - common
                self.stats["tokens_reused"] += common
            if common == 0:
                llama.reset()
            # create_completion's generate() matches input_ids[:n_tokens] against the prompt
            # and keeps exactly that much of the KV cache.
            llama.n_tokens = common
            llama._requires_eval = True
            result = llama.create_completion(
                prompt=tokens,
                max_tokens=r.max_tokens,
                temperature=r.temperature,
                top_p=1.0,
                min_p=0.0,
                top_k=0,
                repeat_penalty=1.0,
                stop=list(r.stop),
                seed=r.seed,
                grammar=grammar,
            )
        except Exception as exc:
            llama.reset()
            raise LLMError(f"llama.cpp generation failed: {exc}") from exc
        finally:
            # Generated tokens were decoded one at a time: never reuse them as a prompt prefix.
            llama.n_tokens = min(llama.n_tokens, n)
        self.stats["generate_requests"] += 1
        self.stats["forward_passes"] += 1
        return str(result["choices"][0]["text"])

    def close(self) -> None:
        """Free the model and its context."""
        with self._lock:
            llama = getattr(self, "_llama", None)
            if llama is not None:
                llama.close()
                self._llama = None

    def __repr__(self) -> str:
        return f"LlamaCppLLM({self.identity!r})"


@contextlib.contextmanager
def _quiet(enabled: bool):  # type: ignore[no-untyped-def]
    """Silence C-level stderr (llama.cpp's loader logs) while loading."""
    if not enabled:
        yield
        return
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)
