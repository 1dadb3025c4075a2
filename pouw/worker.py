"""The local worker: runs a job on one of this node's backends and signs the receipt.

Owns `LocalWorker`. It turns a `JobSpec` into backend calls (prompt tokens for a completion, the
model's chat template for a chat, embeddings), runs the blocking backend in a thread pool so the
event loop never waits on inference, forwards streamed text to the caller, and builds the
`Receipt` that records everything a validator needs to re-check the output: the model hash, the
input hash, every generated token id, the sampling parameters and seed, the backend and its
thread count. It must never sign a receipt for output it did not produce, and never let a backend
failure escape as anything but `JobFailedError` (the queue reports it; the node stays up).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from pouw.backends.base import (
    BackendError,
    ContextOverflowError,
    GenerationResult,
    InferenceBackend,
    StreamPiece,
)
from pouw.jobspec import ChatInput, CompletionInput, EmbedInput, JobSpec
from pouw.receipt import EmbeddingOutput, ExecutionFacts, FinishReason, Receipt, Timings, TokenOutput, Usage
from pouw.router import ModelOffer, WorkerInfo
from pouw.signing import PouwKey, sign_receipt

__all__ = ["JobFailedError", "JobOutcome", "LocalWorker", "TextSink", "prompt_tokens_for"]

# Called with each piece of final text as it is generated (SSE streaming); may be async.
TextSink = Callable[[str], Awaitable[None] | None]

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "eos": FinishReason.EOS,
           "cancelled": FinishReason.CANCELLED}


def prompt_tokens_for(backend: InferenceBackend, spec: JobSpec) -> list[int]:
    """The tokens an LLM job's input is evaluated as: the prompt, or the chat rendered with the
    model's template. Workers and validators both use this, so they score the same context."""
    if isinstance(spec.input, CompletionInput):
        return backend.prompt_tokens(spec.input.prompt)
    if not isinstance(spec.input, ChatInput):
        raise ValueError("an embed job has no prompt tokens")
    return backend.chat_prompt_tokens(_chat_messages(spec.input))


def _chat_messages(chat: ChatInput) -> list[tuple[str, str]]:
    return [(m.role.label, m.content) for m in chat.messages]


class JobFailedError(Exception):
    """The job could not run here: wrong model, input too long for the context, backend failure.
    `code` is stable ("model-mismatch", "context-overflow", "backend-error")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """A finished job: the signed receipt, and what the requester gets back."""

    receipt: Receipt
    text: str | None = None
    embeddings: tuple[tuple[float, ...], ...] | None = None


class LocalWorker:
    """One backend (one model) of this node, serving jobs under this node's worker key."""

    def __init__(self, worker_id: str, backend: InferenceBackend, key: PouwKey, executor: Executor, *,
                 trusted: bool = True, tokens_per_second: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.worker_id = worker_id
        self.backend = backend
        self.key = key
        self._executor = executor
        self._clock = clock
        info = backend.info()
        self.backend_info = info
        self.worker_info = WorkerInfo(
            worker_id, (ModelOffer(info.model_name, info.model_sha256 or None, info.context_length),),
            max_concurrency=info.max_concurrency, tokens_per_second=tokens_per_second, trusted=trusted,
            kind="local", pubkey=key.pubkey, deterministic=info.deterministic)

    def check_model(self, spec: JobSpec) -> None:
        info = self.backend_info
        wrong_hash = bool(info.model_sha256) and spec.model.sha256 != info.model_sha256
        if spec.model.name != info.model_name or wrong_hash:
            raise JobFailedError("model-mismatch", f"this worker serves {info.model_name} "
                                 f"({info.model_sha256.hex() or 'unhashed'}), not {spec.model.name} "
                                 f"({spec.model.sha256.hex()})")

    async def execute(self, spec: JobSpec, stop: threading.Event, on_text: TextSink | None = None,
                      *, queued_ms: int = 0) -> JobOutcome:
        """Runs `spec` to the end (or until `stop` is set: finish reason "cancelled")."""
        self.check_model(spec)
        started = int(self._clock())
        if isinstance(spec.input, EmbedInput):
            return await self._embed(spec, spec.input, started, queued_ms)
        return await self._generate(spec, stop, on_text, started, queued_ms)

    # --- generation -------------------------------------------------------------------------------

    async def _generate(self, spec: JobSpec, stop: threading.Event, on_text: TextSink | None, started: int,
                        queued_ms: int) -> JobOutcome:
        assert spec.sampling is not None
        sampling = spec.sampling
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def push(piece: StreamPiece) -> None:
            if piece.text:
                loop.call_soon_threadsafe(pieces.put_nowait, piece.text)

        def work() -> GenerationResult:
            # The text-level entry points: an in-process backend tokenizes exactly as a validator
            # will (prompt_tokens_for); a remote one sends the prompt or the messages as they are.
            try:
                if isinstance(spec.input, CompletionInput):
                    events = self.backend.stream_text(spec.input.prompt, sampling, stop)
                else:
                    assert isinstance(spec.input, ChatInput)
                    events = self.backend.stream_chat(_chat_messages(spec.input), sampling, stop)
                for event in events:
                    if isinstance(event, GenerationResult):
                        return event
                    if on_text is not None:
                        push(event)
                raise BackendError("generation ended without a result")
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, None)

        future = loop.run_in_executor(self._executor, work)
        if on_text is not None:
            try:
                while (text := await pieces.get()) is not None:
                    result = on_text(text)
                    if result is not None:
                        await result
            except BaseException:
                # The requester went away (a closed stream) or the job was cancelled: stop the
                # backend, which would otherwise generate to the end for nobody.
                stop.set()
                raise
        try:
            gen = await future
        except ContextOverflowError as exc:
            raise JobFailedError("context-overflow", str(exc)) from exc
        except BackendError as exc:
            raise JobFailedError("backend-error", str(exc)) from exc
        output = TokenOutput.from_text(gen.tokens, gen.text)
        receipt = self._receipt(spec, output, _FINISH[gen.finish_reason],
                                Usage(gen.usage.prompt_tokens, gen.usage.completion_tokens),
                                Timings(queued_ms, round(gen.prefill_ms), round(gen.decode_ms)), started)
        return JobOutcome(receipt, text=gen.text)

    async def _embed(self, spec: JobSpec, inputs: EmbedInput, started: int, queued_ms: int) -> JobOutcome:
        loop = asyncio.get_running_loop()

        def work() -> tuple[list[list[float]], int, float]:
            begin = time.perf_counter()
            prompt_tokens = sum(len(self.backend.tokenize(text, add_bos=True)) for text in inputs.inputs)
            vectors = self.backend.embed(inputs.inputs)
            return vectors, prompt_tokens, (time.perf_counter() - begin) * 1000

        try:
            vectors, prompt_tokens, ms = await loop.run_in_executor(self._executor, work)
        except BackendError as exc:
            raise JobFailedError("backend-error", str(exc)) from exc
        receipt = self._receipt(spec, EmbeddingOutput.from_vectors(vectors), FinishReason.STOP,
                                Usage(prompt_tokens, 0), Timings(queued_ms, round(ms), 0), started)
        return JobOutcome(receipt, embeddings=tuple(tuple(v) for v in vectors))

    def _receipt(self, spec: JobSpec, output: TokenOutput | EmbeddingOutput, finish: FinishReason,
                 usage: Usage, timings: Timings, started: int) -> Receipt:
        info = self.backend_info
        facts = ExecutionFacts(info.name, info.version, info.n_threads, info.deterministic, spec.sampling)
        finished = max(started, int(self._clock()))
        receipt = Receipt(spec.id, self.key.pubkey, spec.model.sha256, spec.input_hash, output, finish, usage,
                          timings, facts, started, finished)
        return sign_receipt(receipt, self.key)
