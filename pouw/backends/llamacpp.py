"""llama.cpp in-process through llama-cpp-python: the default, deterministic PoUW backend.

Owns one model file and a fixed pool of llama.cpp contexts ("slots"), each used by one job at a
time. Generation drives llama_decode directly and draws tokens with `pouw.sampling` (not
llama.cpp's sampler) so that a validator can recompute every draw; `score` is the batched,
teacher-forced forward pass validators use. It must never let a bad file, a bad token id or an
oversized request reach llama.cpp's asserts: those abort the process.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pouw.backends.base import (
    BackendError,
    BackendInfo,
    ContextOverflowError,
    FinishReason,
    GenerationResult,
    InferenceBackend,
    ModelLoadError,
    SamplingParams,
    StreamEvent,
    StreamPiece,
    Usage,
    model_sha256,
)
from pouw.sampling import sample_token

__all__ = ["LlamaCppBackend"]

DEFAULT_MAX_CTX = 4096  # context used when none is configured (the KV cache grows with it)
MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS: more aborts the loader
_probed: set[tuple[str, bytes, int, int]] = set()
_probe_lock = threading.Lock()

_PROBE_SCRIPT = """
import sys
import llama_cpp
llm = llama_cpp.Llama(sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=int(sys.argv[3]), n_threads=1,
                      verbose=False)
llm.close()
"""


def _load_llama() -> Any:
    # Imported as a plain module object: llama_cpp's ctypes signatures are not worth typing here.
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:  # pragma: no cover - llama-cpp-python is a dependency
        raise ModelLoadError(f"llama-cpp-python is not installed: {exc}") from exc


def _probe_model(path: str, sha: bytes, n_ctx: int, n_batch: int) -> None:
    """Load the model once in a child process first: llama.cpp aborts (SIGABRT) on some malformed
    files instead of returning an error, and that must cost a child, not the node."""
    key = (path, sha, n_ctx, n_batch)
    with _probe_lock:
        if key in _probed:
            return
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, path, str(n_ctx), str(n_batch)],
                              capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelLoadError(f"could not probe model {path}: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        raise ModelLoadError(f"llama.cpp cannot load {path} ({how}): {tail[0][:300]}")
    with _probe_lock:
        _probed.add(key)


@dataclass
class _Slot:
    """One llama.cpp context and its batch; used by one job at a time."""

    llm: Any
    batch: Any
    n_batch: int


class LlamaCppBackend(InferenceBackend):
    """A GGUF model in this process.

    n_threads is fixed at construction and recorded in `info()` (receipts carry it), so that a
    validator can rerun the exact execution; on CPU the thread count was measured not to change the
    logits at all, and n_batch by ~1e-6. `slots` contexts share the memory-mapped weights; each job
    takes one. A job always starts from an empty KV cache (no prefix reuse), so its tokens do not
    depend on what the slot ran before.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int | None = None, n_threads: int = 1,
                 n_batch: int = 256, slots: int = 1, model_name: str | None = None,
                 probe: bool = True) -> None:
        self._llama_cpp = _load_llama()
        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        if n_threads < 1 or slots < 1 or n_batch < 1:
            raise ValueError("n_threads, slots and n_batch must be positive")
        self._path = str(path)
        self._sha = model_sha256(path)
        n_ctx_train = self._check_header(path)
        n_ctx = n_ctx or min(n_ctx_train or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)
        if probe:
            _probe_model(self._path, self._sha, n_ctx, n_batch)
        self._n_threads = n_threads
        self._n_batch = n_batch
        self._closed = False
        self._embedder: Any = None
        self._embed_lock = threading.Lock()
        self._all_slots: list[_Slot] = []
        self._slots: queue.Queue[_Slot] = queue.Queue()
        try:
            for _ in range(slots):
                slot = self._new_slot(n_ctx)
                self._all_slots.append(slot)
                self._slots.put(slot)
        except BaseException:
            self.close()
            raise
        first = self._all_slots[0].llm
        self._n_ctx = min(int(first.n_ctx()), n_ctx)  # llama.cpp may round its context up
        self._n_vocab = int(first.n_vocab())
        self._n_embd = int(first.n_embd())
        self._vocab = self._llama_cpp.llama_model_get_vocab(first.model)
        self._eos = int(self._llama_cpp.llama_vocab_eos(self._vocab))
        self._bos = int(self._llama_cpp.llama_vocab_bos(self._vocab))
        self._pieces, self._eog = self._read_vocab()
        meta = dict(first.metadata)
        self._template: str | None = meta.get("tokenizer.chat_template")
        self._model_name = model_name or meta.get("general.name") or path.stem

    # --- construction ----------------------------------------------------------------------------

    @staticmethod
    def _check_header(path: Path) -> int:
        """Refuse what llama.cpp would abort on, before it sees the file: not GGUF, or more layers
        than llama.cpp's fixed arrays hold. Returns the trained context length (0 if absent)."""
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelLoadError(f"not a GGUF file: {path}")
        try:
            reader = importlib.import_module("gguf").GGUFReader(str(path))
            arch_field = reader.get_field("general.architecture")
            if arch_field is None:
                raise ModelLoadError(f"GGUF file has no general.architecture: {path}")
            arch = bytes(arch_field.parts[arch_field.data[0]]).decode("utf-8", "replace")
            blocks = reader.get_field(f"{arch}.block_count")
            if blocks is not None and int(blocks.parts[blocks.data[0]][0]) > MAX_LAYERS:
                raise ModelLoadError(f"GGUF file claims more than {MAX_LAYERS} layers: {path}")
            ctx_field = reader.get_field(f"{arch}.context_length")
            return 0 if ctx_field is None else int(ctx_field.parts[ctx_field.data[0]][0])
        except ModelLoadError:
            raise
        except Exception as exc:  # the reader raises ValueError, IndexError, struct errors...
            raise ModelLoadError(f"malformed GGUF file {path}: {exc}") from exc

    def _new_slot(self, n_ctx: int, *, embedding: bool = False) -> _Slot:
        lc = self._llama_cpp
        kwargs: dict[str, Any] = {}
        if embedding:
            kwargs = {"embedding": True, "pooling_type": lc.LLAMA_POOLING_TYPE_MEAN}
        try:
            llm = lc.Llama(self._path, n_ctx=n_ctx, n_batch=self._n_batch, n_ubatch=self._n_batch,
                           n_threads=self._n_threads, n_threads_batch=self._n_threads, seed=0,
                           logits_all=False, flash_attn=False, verbose=False, **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp cannot load {self._path}: {exc}") from exc
        batch = None if embedding else lc.llama_batch_init(self._n_batch, 0, 1)
        return _Slot(llm, batch, self._n_batch)

    def _read_vocab(self) -> tuple[list[bytes], frozenset[int]]:
        """Every token's piece (special tokens render empty) and the end-of-generation set."""
        lc = self._llama_cpp
        buf = ctypes.create_string_buffer(256)
        pieces: list[bytes] = []
        eog: set[int] = set()
        for tok in range(self._n_vocab):
            n = lc.llama_token_to_piece(self._vocab, tok, buf, 256, 0, False)
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self._vocab, tok, big, -n, 0, False)
                pieces.append(big.raw[:n])
            else:
                pieces.append(buf.raw[:n])
            if lc.llama_vocab_is_eog(self._vocab, tok):
                eog.add(tok)
        eog.add(self._eos)
        return pieces, frozenset(eog)

    def close(self) -> None:
        self._closed = True
        for slot in self._all_slots:
            if slot.batch is not None:
                self._llama_cpp.llama_batch_free(slot.batch)
                slot.batch = None
            slot.llm.close()
        self._all_slots = []
        if self._embedder is not None:
            self._embedder.llm.close()
            self._embedder = None

    # --- description ----------------------------------------------------------------------------

    def info(self) -> BackendInfo:
        return BackendInfo(name="llama.cpp", version=str(self._llama_cpp.__version__),
                           model_name=self._model_name, model_sha256=self._sha, context_length=self._n_ctx,
                           max_concurrency=len(self._all_slots), deterministic=True,
                           n_threads=self._n_threads, n_vocab=self._n_vocab, embedding_dims=self._n_embd)

    @property
    def eos_token(self) -> int:
        return self._eos

    @property
    def eog_tokens(self) -> frozenset[int]:
        return self._eog

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def chat_template(self) -> str | None:
        return self._template

    def special_token_text(self, which: Literal["bos", "eos"]) -> str:
        tok = self._bos if which == "bos" else self._eos
        if tok < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = self._llama_cpp.llama_token_to_piece(self._vocab, tok, buf, 256, 0, True)
        return buf.raw[:max(n, 0)].decode("utf-8", "replace")

    # --- tokens ---------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        self._check_open()
        slot = self._all_slots[0]
        try:
            return list(slot.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=parse_special))
        except RuntimeError as exc:
            raise BackendError(f"tokenization failed: {exc}") from exc

    def detokenize_bytes(self, tokens: Sequence[int]) -> bytes:
        self._check_tokens(tokens, "tokens")
        pieces = self._pieces
        return b"".join(pieces[t] for t in tokens)

    def _check_tokens(self, tokens: Sequence[int], what: str) -> None:
        n = self._n_vocab
        for t in tokens:
            if not 0 <= t < n:
                raise BackendError(f"{what}: token id {t} outside the vocabulary (0..{n - 1})")

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend is closed")

    # --- the forward pass -----------------------------------------------------------------------

    def _acquire(self) -> _Slot:
        self._check_open()
        return self._slots.get()

    def _release(self, slot: _Slot) -> None:
        self._slots.put(slot)

    def _decode(self, slot: _Slot, tokens: Sequence[int], start: int,
                want: Sequence[int]) -> npt.NDArray[np.float32]:
        """Evaluate `tokens` at positions start.. in chunks of n_batch and return the logits of
        the token indices in `want` (ascending), one row each."""
        lc = self._llama_cpp
        ctx = slot.llm.ctx
        batch = slot.batch
        out = np.empty((len(want), self._n_vocab), dtype=np.float32)
        wi = 0
        for c0 in range(0, len(tokens), slot.n_batch):
            chunk = tokens[c0:c0 + slot.n_batch]
            n = len(chunk)
            batch.n_tokens = n
            rows: list[tuple[int, int]] = []
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = start + c0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                wanted = wi < len(want) and want[wi] == c0 + i
                batch.logits[i] = wanted
                if wanted:
                    rows.append((wi, i))
                    wi += 1
            rc = lc.llama_decode(ctx, batch)
            if rc != 0:
                raise BackendError(f"llama_decode failed with code {rc}")
            for row, i in rows:
                ptr = lc.llama_get_logits_ith(ctx, i)
                out[row] = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        return out

    def _clear(self, slot: _Slot) -> None:
        lc = self._llama_cpp
        mem = lc.llama_get_memory(slot.llm.ctx)
        if mem is not None:
            lc.llama_memory_clear(mem, True)

    def _check_prompt(self, prompt_tokens: Sequence[int], extra: int) -> None:
        if not prompt_tokens:
            raise BackendError("empty prompt: at least one token (BOS) is needed")
        self._check_tokens(prompt_tokens, "prompt")
        if len(prompt_tokens) + extra > self._n_ctx:
            raise ContextOverflowError(f"{len(prompt_tokens)} prompt tokens + {extra} more exceed the "
                                       f"context window of {self._n_ctx} tokens")

    # --- generation -----------------------------------------------------------------------------

    def stream(self, prompt_tokens: Sequence[int], sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        prompt = list(prompt_tokens)
        self._check_prompt(prompt, sampling.max_tokens)
        stops = [s.encode("utf-8") for s in sampling.stop]
        return self._run(prompt, sampling, stops, cancel)

    def _run(self, prompt: list[int], sampling: SamplingParams, stops: list[bytes],
             cancel: threading.Event | None) -> Iterator[StreamEvent]:
        slot = self._acquire()
        try:
            t0 = time.perf_counter()
            self._clear(slot)
            logits = self._decode(slot, prompt, 0, [len(prompt) - 1])[0]
            t1 = time.perf_counter()
            out: list[int] = []
            text = _TextAssembler(stops)
            finish: FinishReason = "length"
            for pos in range(sampling.max_tokens):
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                tok = sample_token(logits, sampling, pos)
                out.append(tok)
                if tok in self._eog:
                    yield StreamPiece(tok, "")
                    finish = "eos"
                    break
                piece, stopped = text.add(self._pieces[tok])
                yield StreamPiece(tok, piece)
                if stopped:
                    finish = "stop"
                    break
                if pos + 1 < sampling.max_tokens:
                    logits = self._decode(slot, [tok], len(prompt) + pos, [0])[0]
            rest = text.flush() if finish != "stop" else ""
            if rest:
                yield StreamPiece(None, rest)
            t2 = time.perf_counter()
        except BackendError:
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"llama.cpp generation failed: {exc}") from exc
        finally:
            self._release(slot)
        yield GenerationResult(tokens=tuple(out), text=text.text, finish_reason=finish,
                               prefill_ms=(t1 - t0) * 1000, decode_ms=(t2 - t1) * 1000,
                               usage=Usage(len(prompt), len(out)))

    # --- validation -----------------------------------------------------------------------------

    def score(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
              positions: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
        """One batched forward pass over prompt + output[:last checked position]; logits only for
        the checked positions (llama.cpp computes the output layer for flagged rows only)."""
        prompt = list(prompt_tokens)
        output = list(output_tokens)
        wanted = sorted(set(range(len(output)) if positions is None else positions))
        if wanted and not 0 <= wanted[0] <= wanted[-1] < len(output):
            raise BackendError("score: positions outside the output")
        self._check_tokens(output, "output")
        if not wanted:
            self._check_prompt(prompt, 0)
            return np.empty((0, self._n_vocab), dtype=np.float32)
        last = wanted[-1]
        self._check_prompt(prompt, last)
        seq = prompt + output[:last]
        want_idx = [len(prompt) - 1 + p for p in wanted]
        slot = self._acquire()
        try:
            self._clear(slot)
            rows = self._decode(slot, seq, 0, want_idx)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"llama.cpp scoring failed: {exc}") from exc
        finally:
            self._release(slot)
        if positions is None or list(positions) == wanted:
            return rows
        index = {p: i for i, p in enumerate(wanted)}
        return rows[[index[p] for p in positions]]

    # --- embeddings -----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Mean-pooled, L2-normalised embeddings, one text per forward pass (so a text's vector
        does not depend on what it was batched with)."""
        self._check_open()
        with self._embed_lock:
            if self._embedder is None:
                self._embedder = self._new_slot(self._n_ctx, embedding=True)
            llm = self._embedder.llm
            vectors: list[list[float]] = []
            for text in texts:
                n = len(llm.tokenize(text.encode("utf-8"), add_bos=True))
                if n > min(self._n_batch, self._n_ctx):
                    raise ContextOverflowError(f"embedding input of {n} tokens exceeds the batch of "
                                               f"{min(self._n_batch, self._n_ctx)} tokens")
                try:
                    vectors.append([float(x) for x in llm.embed(text, normalize=True, truncate=False)])
                except (ValueError, RuntimeError) as exc:
                    raise BackendError(f"llama.cpp embedding failed: {exc}") from exc
            return vectors


class _TextAssembler:
    """Turns token bytes into final text pieces: holds back an incomplete UTF-8 character and any
    tail that could begin a stop string, and cuts the text before the first stop string."""

    def __init__(self, stops: list[bytes]) -> None:
        self._stops = stops
        self._max_stop = max((len(s) for s in stops), default=0)
        self._buf = b""
        self._emitted = 0
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _emit(self, end: int) -> str:
        piece = self._buf[self._emitted:end].decode("utf-8", errors="replace")
        self._emitted = end
        if piece:
            self._parts.append(piece)
        return piece

    def add(self, data: bytes) -> tuple[str, bool]:
        """Append one token's bytes; return the newly final text and whether a stop string ended
        the generation."""
        before = len(self._buf)
        self._buf += data
        if self._stops:
            lo = max(0, before - self._max_stop + 1)
            hits = [i for i in (self._buf.find(s, lo) for s in self._stops) if i >= 0]
            if hits:
                return self._emit(min(hits)), True
        end = len(self._buf) - max(_incomplete_utf8_tail(self._buf), self._stop_prefix_tail())
        return (self._emit(end) if end > self._emitted else ""), False

    def flush(self) -> str:
        return self._emit(len(self._buf))

    def _stop_prefix_tail(self) -> int:
        """Length of the longest suffix of the buffer that is a proper prefix of a stop string."""
        best = 0
        buf = self._buf
        for s in self._stops:
            for n in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:n]):
                    best = n
                    break
        return best


def _incomplete_utf8_tail(buf: bytes) -> int:
    """How many bytes at the end of `buf` start a UTF-8 character that is not complete yet."""
    for i in range(1, min(4, len(buf)) + 1):
        b = buf[-i]
        if b & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        if b & 0xE0 == 0xC0:
            need = 2
        elif b & 0xF0 == 0xE0:
            need = 3
        elif b & 0xF8 == 0xF0:
            need = 4
        else:
            return 0  # ASCII or an invalid byte: nothing to wait for
        return i if need > i else 0
    return 0
