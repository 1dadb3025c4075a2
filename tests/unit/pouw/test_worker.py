"""LocalWorker on a real llama.cpp backend over a generated tiny model: receipts, streaming, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pouw.backends.llamacpp import LlamaCppBackend
from pouw.jobspec import (
    ChatInput,
    ChatMessage,
    ChatRole,
    CompletionInput,
    EmbedInput,
    JobSpec,
    ModelRef,
    SamplingParams,
)
from pouw.receipt import EmbeddingOutput, FinishReason, TokenOutput
from pouw.signing import PouwKey, verify_receipt_signature
from pouw.tinymodel import write_tiny_llama
from pouw.worker import JobFailedError, LocalWorker

KEY = PouwKey(bytes(31) + b"\x07")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("worker-model") / "tiny.gguf"
    return path, write_tiny_llama(path, seed=11)


@pytest.fixture(scope="module")
def worker(model: tuple[Path, bytes]) -> Iterator[LocalWorker]:
    backend = LlamaCppBackend(model[0], model_name="tiny", n_ctx=128, slots=2)
    with ThreadPoolExecutor(2) as pool:
        yield LocalWorker("local-0", backend, KEY, pool)
    backend.close()


def spec(model: tuple[Path, bytes], job_input: object, sampling: SamplingParams | None, nonce: int = 1,
         name: str = "tiny") -> JobSpec:
    return JobSpec(ModelRef(name, model[1]), job_input, sampling, deadline=2_000_000_000, nonce=nonce)  # type: ignore[arg-type]


def test_completion_receipt_records_what_ran(worker: LocalWorker, model: tuple[Path, bytes]) -> None:
    job = spec(model, CompletionInput("Hello, grid"), SamplingParams(max_tokens=12, seed=5))
    streamed: list[str] = []
    outcome = asyncio.run(worker.execute(job, threading.Event(), streamed.append, queued_ms=3))
    r = outcome.receipt
    assert verify_receipt_signature(r)
    r.check_matches(job)
    assert r.job_id == job.id and r.worker_pubkey == KEY.pubkey and r.model_hash == model[1]
    assert isinstance(r.output, TokenOutput)
    assert r.output == TokenOutput.from_text(r.output.token_ids, outcome.text or "")
    assert r.usage.completion_tokens == len(r.output.token_ids) <= 12
    assert r.finish_reason in (FinishReason.LENGTH, FinishReason.EOS)
    assert r.timings.queued_ms == 3
    assert r.execution.backend == "llama.cpp" and r.execution.n_threads == 1
    assert r.execution.sampling == job.sampling
    assert "".join(streamed) == outcome.text
    # Deterministic: the same job gives the same tokens and text.
    again = asyncio.run(worker.execute(job, threading.Event()))
    assert again.text == outcome.text and again.receipt.output == r.output
    assert worker.worker_info.models[0].sha256 == model[1]


def test_chat_and_embed(worker: LocalWorker, model: tuple[Path, bytes]) -> None:
    messages = (ChatMessage(ChatRole.SYSTEM, "be brief"), ChatMessage(ChatRole.USER, "hi"))
    chat = spec(model, ChatInput(messages),
                SamplingParams(max_tokens=6, temperature_milli=800, top_k=20, seed=9))
    outcome = asyncio.run(worker.execute(chat, threading.Event()))
    assert verify_receipt_signature(outcome.receipt) and outcome.receipt.usage.prompt_tokens > 4
    embed = spec(model, EmbedInput(("one", "two words")), None)
    out = asyncio.run(worker.execute(embed, threading.Event()))
    assert isinstance(out.receipt.output, EmbeddingOutput) and out.embeddings is not None
    assert out.receipt.output == EmbeddingOutput.from_vectors(out.embeddings)
    assert out.receipt.output.count == 2 and out.receipt.output.dims == len(out.embeddings[0]) > 0
    out.receipt.check_matches(embed)


def test_cancel_and_errors(worker: LocalWorker, model: tuple[Path, bytes]) -> None:
    stop = threading.Event()
    stop.set()
    job = spec(model, CompletionInput("stop me"), SamplingParams(max_tokens=64, seed=1))
    outcome = asyncio.run(worker.execute(job, stop))
    assert outcome.receipt.finish_reason is FinishReason.CANCELLED
    assert outcome.receipt.usage.completion_tokens < 64
    with pytest.raises(JobFailedError) as info:
        other = spec(model, CompletionInput("x"), SamplingParams(max_tokens=4), name="other")
        asyncio.run(worker.execute(other, threading.Event()))
    assert info.value.code == "model-mismatch"
    context = worker.backend_info.context_length  # llama.cpp rounds n_ctx up (to 256 here)
    with pytest.raises(JobFailedError) as info:
        too_long = spec(model, CompletionInput("y" * 40), SamplingParams(max_tokens=context - 10))
        asyncio.run(worker.execute(too_long, threading.Event()))
    assert info.value.code == "context-overflow" and str(context) in str(info.value)


def test_failing_text_sink_stops_the_backend(worker: LocalWorker, model: tuple[Path, bytes]) -> None:
    """A streaming requester that goes away mid-answer stops the generation (its slot is freed)."""
    jobs = (spec(model, CompletionInput("stream then vanish"),
                 SamplingParams(max_tokens=100, temperature_milli=1000, seed=seed)) for seed in range(50))
    job = next(j for j in jobs if len(asyncio.run(worker.execute(j, threading.Event())).text or "") > 8)
    stop = threading.Event()
    seen: list[str] = []

    def sink(text: str) -> None:
        seen.append(text)
        raise ConnectionResetError("client closed the stream")

    with pytest.raises(ConnectionResetError):
        asyncio.run(worker.execute(job, stop, sink))
    assert stop.is_set() and len(seen) == 1
    # Both slots are free again: two jobs at once still run.
    again = asyncio.run(worker.execute(job, threading.Event()))
    assert again.receipt.usage.completion_tokens > 0
