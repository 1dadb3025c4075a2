"""The in-process llama.cpp backend on a generated tiny model: tokens, deterministic generation with
the PoUW sampler, stop/EOS/length endings, streaming, cancellation, chat template, embeddings,
scoring, concurrency and clean errors for bad files and oversized requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pytest

from pouw.backends.base import (
    BackendError,
    ContextOverflowError,
    GenerationResult,
    ModelLoadError,
    StreamPiece,
)
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.jobspec import SamplingParams
from pouw.sampling import sample_token
from pouw.tinymodel import EOS_ID, TinyModelFile, write_tiny_llama

GREEDY = SamplingParams(max_tokens=24)
SAMPLED = SamplingParams(max_tokens=24, temperature_milli=900, top_k=40, top_p_micro=950_000, seed=12345)


def _long_answer(backend: LlamaCppBackend, n: int) -> tuple[list[int], GenerationResult]:
    """A prompt whose greedy answer runs to n tokens without EOS (the tiny model ends by EOS often)."""
    for i in range(50):
        prompt = backend.prompt_tokens(f"Long answer {i}")
        result = backend.generate(prompt, SamplingParams(max_tokens=n))
        if result.finish_reason == "length":
            return prompt, result
    raise AssertionError("every answer ended by EOS")


def _ascii_stop(raw: bytes, start: int, size: int) -> bytes:
    """A printable ASCII substring of `raw` at or after `start`, to use as a stop string."""
    return next(raw[i:i + size] for i in range(start, len(raw) - size + 1)
                if raw[i:i + size].isascii() and raw[i:i + size].strip())


def test_info_declares_the_model_and_execution(tiny_backend: LlamaCppBackend,
                                               tiny_model: TinyModelFile) -> None:
    info = tiny_backend.info()
    assert info.name == "llama.cpp"
    assert info.model_name == "tiny-llama"
    assert info.model_sha256 == tiny_model.sha256
    assert info.context_length == 256
    assert info.max_concurrency == 2
    assert info.deterministic is True
    assert info.n_threads == 1
    assert info.n_vocab == tiny_backend.n_vocab == 379
    assert tiny_backend.eos_token == EOS_ID


@pytest.mark.parametrize("text", ["hello world", "The cat, and the dog!", " leading and trailing  ",
                                  "naïve café — 日本語 🙂", "tabs\tand\nnewlines\r\n", "", "<s> not special"])
def test_detokenize_inverts_tokenize(tiny_backend: LlamaCppBackend, text: str) -> None:
    tokens = tiny_backend.tokenize(text)
    assert tiny_backend.detokenize(tokens) == text
    assert tiny_backend.detokenize_bytes(tokens) == text.encode("utf-8")


def test_completion_prompts_start_with_bos_and_cannot_hold_specials(tiny_backend: LlamaCppBackend) -> None:
    completion = tiny_backend.prompt_tokens("a</s>b")
    assert completion[0] == 1 and EOS_ID not in completion
    chat = tiny_backend.prompt_tokens("a</s>b", chat=True)
    assert EOS_ID in chat


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_generation_is_deterministic(tiny_backend: LlamaCppBackend, tiny_model: TinyModelFile,
                                     sampling: SamplingParams) -> None:
    prompt = tiny_backend.prompt_tokens("Determinism matters")
    first = tiny_backend.generate(prompt, sampling)
    assert len(first.tokens) >= 1
    assert tiny_backend.generate(prompt, sampling).tokens == first.tokens
    # A fresh load of the same file, with another batch size, gives the same tokens.
    fresh = LlamaCppBackend(tiny_model.path, n_batch=64, probe=False)
    try:
        assert fresh.generate(prompt, sampling).tokens == first.tokens
    finally:
        fresh.close()


def test_sampled_tokens_are_the_pouw_sampler_on_the_models_logits(tiny_backend: LlamaCppBackend) -> None:
    prompt = tiny_backend.prompt_tokens("Sampler check")
    result = tiny_backend.generate(prompt, SAMPLED)
    rows = tiny_backend.score(prompt, result.tokens)
    redrawn = [sample_token(rows[i], SAMPLED, i) for i in range(len(result.tokens))]
    assert tuple(redrawn) == result.tokens
    other_seed = tiny_backend.generate(prompt, SamplingParams(max_tokens=24, temperature_milli=900, top_k=40,
                                                              top_p_micro=950_000, seed=999))
    assert other_seed.tokens != result.tokens


def test_length_eos_and_stop_endings(tiny_backend: LlamaCppBackend) -> None:
    prompt, long = _long_answer(tiny_backend, 12)
    assert long.finish_reason == "length" and len(long.tokens) == 12
    assert long.usage.prompt_tokens == len(prompt) and long.usage.completion_tokens == 12
    assert long.text == tiny_backend.detokenize(long.tokens)
    # Stop at a string the greedy answer contains: the text is cut before it, and the last token
    # is the one that completed it.
    raw = tiny_backend.detokenize_bytes(long.tokens)
    stop = _ascii_stop(raw, 4, 2)
    stopped = tiny_backend.generate(prompt, SamplingParams(max_tokens=12, stop=(stop.decode(),)))
    assert stopped.finish_reason == "stop"
    assert stopped.tokens == long.tokens[:len(stopped.tokens)]
    assert stop in tiny_backend.detokenize_bytes(stopped.tokens)
    assert stop not in tiny_backend.detokenize_bytes(stopped.tokens[:-1])
    assert stopped.text == raw[:raw.index(stop)].decode("utf-8", errors="replace")


def test_eos_ends_generation_and_is_kept_as_the_last_token(tiny_backend: LlamaCppBackend) -> None:
    # The tiny model's EOS row is boosted, so some prompts end by EOS within a few tokens.
    for i in range(40):
        prompt = tiny_backend.prompt_tokens(f"eos hunt {i}")
        result = tiny_backend.generate(prompt, SamplingParams(max_tokens=32))
        if result.finish_reason == "eos":
            assert result.tokens[-1] == EOS_ID and EOS_ID not in result.tokens[:-1]
            assert result.text == tiny_backend.detokenize(result.tokens[:-1])
            return
    pytest.fail("no greedy answer ended by EOS")


def test_stream_yields_pieces_then_the_result(tiny_backend: LlamaCppBackend) -> None:
    prompt = tiny_backend.prompt_tokens("Stream me")
    events = list(tiny_backend.stream(prompt, SAMPLED))
    result = events[-1]
    assert isinstance(result, GenerationResult)
    pieces = events[:-1]
    assert all(isinstance(p, StreamPiece) for p in pieces)
    assert "".join(p.text for p in pieces if isinstance(p, StreamPiece)) == result.text
    tokens = tuple(p.token for p in pieces if isinstance(p, StreamPiece) and p.token is not None)
    assert tokens == result.tokens
    again = tiny_backend.generate(prompt, SAMPLED)
    assert (again.tokens, again.text, again.finish_reason) == (tokens, result.text, result.finish_reason)


def test_stream_holds_back_a_possible_stop_string(tiny_backend: LlamaCppBackend) -> None:
    prompt, full = _long_answer(tiny_backend, 16)
    raw = tiny_backend.detokenize_bytes(full.tokens)
    stop = _ascii_stop(raw, 6, 3)
    events = list(tiny_backend.stream(prompt, SamplingParams(max_tokens=16, stop=(stop.decode(),))))
    result = events[-1]
    assert isinstance(result, GenerationResult) and result.finish_reason == "stop"
    streamed = "".join(e.text for e in events[:-1] if isinstance(e, StreamPiece))
    assert streamed == result.text and stop.decode() not in streamed


def test_cancel_stops_generation_promptly(tiny_backend: LlamaCppBackend) -> None:
    cancel = threading.Event()
    seen: list[StreamPiece] = []

    def on_piece(piece: StreamPiece) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.set()

    began = time.perf_counter()
    result = tiny_backend.generate(tiny_backend.prompt_tokens("Cancel me"), SamplingParams(max_tokens=200),
                                   cancel, on_piece)
    assert result.finish_reason == "cancelled"
    assert len(result.tokens) == 3
    assert time.perf_counter() - began < 5.0


def test_abandoned_stream_or_failing_sink_frees_its_slot(tiny_model: TinyModelFile) -> None:
    backend = LlamaCppBackend(tiny_model.path, slots=1, probe=False)
    try:
        prompt = backend.prompt_tokens("abandon")
        events = backend.stream(prompt, SamplingParams(max_tokens=50))
        assert isinstance(events, Generator)
        next(events)
        events.close()
        assert len(backend.generate(prompt, SamplingParams(max_tokens=5)).tokens) == 5

        def failing_sink(piece: StreamPiece) -> None:
            raise ConnectionResetError("the requester went away")

        with pytest.raises(ConnectionResetError):
            backend.generate(prompt, SamplingParams(max_tokens=50), None, failing_sink)
        assert len(backend.generate(prompt, SamplingParams(max_tokens=5)).tokens) == 5
    finally:
        backend.close()


def test_chat_template_and_chat_generation(tiny_backend: LlamaCppBackend) -> None:
    messages = [("system", "Be brief."), ("user", "Hi!")]
    text = tiny_backend.apply_chat_template(messages)
    assert text == "<s><|system|>\nBe brief.</s>\n<|user|>\nHi!</s>\n<|assistant|>\n"
    tokens = tiny_backend.chat_prompt_tokens(messages)
    assert tokens[0] == 1 and tokens[1] != 1  # one BOS, though the template writes it too
    assert tokens.count(EOS_ID) == 2
    result = tiny_backend.generate_chat(messages, GREEDY)
    assert result.tokens == tiny_backend.generate(tokens, GREEDY).tokens


def test_embeddings_have_model_width_and_are_deterministic(tiny_backend: LlamaCppBackend) -> None:
    vectors = tiny_backend.embed(["alpha", "beta gamma"])
    assert [len(v) for v in vectors] == [64, 64]
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-5 for v in vectors)
    assert vectors[0] != vectors[1]
    assert tiny_backend.embed(["beta gamma"]) == [vectors[1]]  # independent of its batch


def test_score_subset_matches_full_scoring(tiny_backend: LlamaCppBackend) -> None:
    prompt = tiny_backend.prompt_tokens("Score this")
    result = tiny_backend.generate(prompt, GREEDY)
    full = tiny_backend.score(prompt, result.tokens)
    assert full.shape == (len(result.tokens), tiny_backend.n_vocab) and full.dtype == np.float32
    part = tiny_backend.score(prompt, result.tokens, [7, 2, 20])
    np.testing.assert_allclose(part, full[[7, 2, 20]], atol=1e-3)
    assert [int(np.argmax(r)) for r in full] == list(result.tokens)  # greedy: each token is the argmax


def test_logits_do_not_depend_on_thread_count_and_barely_on_batch_size(tiny_backend: LlamaCppBackend,
                                                                      tiny_model: TinyModelFile) -> None:
    """n_threads (which receipts record) leaves the batched pass bit-identical on CPU; a different
    n_batch moves logits by ~1e-6 (small batches take another matmul path). Both are far below the
    verification tolerance, as is the incremental decode's ~0.005 (see verify)."""
    prompt = tiny_backend.prompt_tokens("Threads and batches")
    output = tiny_backend.tokenize("a fixed continuation of eighty-odd tokens, scored as it is " * 2)
    expected = tiny_backend.score(prompt, output)
    for n_threads, n_batch in ((2, 256), (2, 16)):
        other = LlamaCppBackend(tiny_model.path, n_threads=n_threads, n_batch=n_batch, probe=False)
        try:
            got = other.score(prompt, output)
        finally:
            other.close()
        if n_batch == 256:
            assert np.array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_concurrent_jobs_match_sequential_ones(tiny_backend: LlamaCppBackend) -> None:
    prompts = [tiny_backend.prompt_tokens(f"concurrent {i}") for i in range(4)]
    expected = [tiny_backend.generate(p, SAMPLED).tokens for p in prompts]
    got: dict[int, tuple[int, ...]] = {}

    def run(i: int) -> None:
        got[i] = tiny_backend.generate(prompts[i], SAMPLED).tokens

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(4)] == expected


def test_measure_tokens_per_second(tiny_backend: LlamaCppBackend) -> None:
    assert tiny_backend.measure_tokens_per_second(16) > 10.0


def test_oversized_requests_and_bad_tokens_raise_backend_errors(tiny_backend: LlamaCppBackend) -> None:
    prompt = tiny_backend.prompt_tokens("x" * 100)
    with pytest.raises(ContextOverflowError):
        tiny_backend.generate(prompt, SamplingParams(max_tokens=200))
    with pytest.raises(ContextOverflowError):
        tiny_backend.embed(["x" * 400])
    with pytest.raises(BackendError, match="outside the vocabulary"):
        tiny_backend.generate([1, 5000], GREEDY)
    with pytest.raises(BackendError, match="outside the vocabulary"):
        tiny_backend.score([1, 2], [-1])
    with pytest.raises(BackendError, match="empty prompt"):
        tiny_backend.generate([], GREEDY)


def _corrupt(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_corrupt_model_files_raise_model_load_error(tmp_path: Path, tiny_model: TinyModelFile) -> None:
    good = tiny_model.path.read_bytes()
    cases = {
        "missing": tmp_path / "missing.gguf",
        "empty": _corrupt(tmp_path / "empty.gguf", b""),
        "magic": _corrupt(tmp_path / "magic.gguf", b"GGML" + good[4:]),
        "truncated": _corrupt(tmp_path / "truncated.gguf", good[: len(good) // 2]),
    }
    for name, path in cases.items():
        with pytest.raises(ModelLoadError):
            LlamaCppBackend(path)
        assert name


def test_a_file_that_aborts_llama_cpp_costs_a_child_not_the_process(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # 1000 layers overflow llama.cpp's fixed per-layer arrays: its loader aborts (SIGABRT).
    path = tmp_path / "layers.gguf"
    write_tiny_llama(path, seed=9, n_layers=1)
    data = bytearray(path.read_bytes())
    key = b"llama.block_count"
    at = data.index(key) + len(key) + 4  # after the key and its u32 value type
    data[at:at + 4] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="more than 512 layers"):
        LlamaCppBackend(path)
    # Without the header check, the child process that probes the file dies instead of us.
    monkeypatch.setattr(LlamaCppBackend, "_check_header", staticmethod(lambda p: 256))
    with pytest.raises(ModelLoadError, match="signal"):
        LlamaCppBackend(path)


def test_closed_backend_refuses_work(tiny_model: TinyModelFile) -> None:
    backend = LlamaCppBackend(tiny_model.path, probe=False)
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.generate([1], GREEDY)
