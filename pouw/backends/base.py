"""The interface every inference backend offers the worker and the validator, and its errors.

Owns `InferenceBackend` (tokenize, generate, stream, chat template, embed, teacher-forced `score`),
its result types and the backend error hierarchy. Backends are synchronous and thread-safe: the
worker calls them from a thread pool, never from the event loop. They must never raise anything but
`BackendError` subclasses for a failure of the model, the input size or the server.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pouw.jobspec import SamplingParams

__all__ = [
    "FINISH_REASONS",
    "BackendError",
    "BackendInfo",
    "BackendUnavailableError",
    "ChatMessage",
    "ContextOverflowError",
    "FinishReason",
    "GenerationResult",
    "InferenceBackend",
    "ModelLoadError",
    "NotSupportedError",
    "SamplingParams",
    "StreamEvent",
    "StreamPiece",
    "Usage",
    "model_sha256",
    "render_chat_template",
    "unhashed_model_id",
]

FinishReason = Literal["stop", "length", "eos", "cancelled"]
FINISH_REASONS: frozenset[str] = frozenset({"stop", "length", "eos", "cancelled"})

# One (role, content) turn of a chat; the job layer converts its own message objects to these.
ChatMessage = tuple[str, str]

Logits = npt.NDArray[np.float32]


class BackendError(Exception):
    """A backend could not do what was asked. The node maps it to a job error, never a crash."""


class ModelLoadError(BackendError):
    """The model file is missing, corrupt or not loadable by this backend."""


class ContextOverflowError(BackendError):
    """Prompt plus requested tokens do not fit the model's context window."""


class NotSupportedError(BackendError):
    """The backend cannot do this operation at all (e.g. teacher-forced scoring over HTTP)."""


class BackendUnavailableError(BackendError):
    """A remote backend did not answer, or answered with an error or malformed data."""


def unhashed_model_id(name: str) -> bytes:
    """The stand-in content hash of a model behind a server that cannot prove its weights (an
    OpenAI-compatible server, a grid worker): sha256("aipg-pouw-unhashed-model:" || name). Receipts
    for it say deterministic=false."""
    return hashlib.sha256(b"aipg-pouw-unhashed-model:" + name.encode("utf-8")).digest()


def model_sha256(path: str | os.PathLike[str]) -> bytes:
    """The sha256 (32 bytes) of a model file, read in 1 MiB chunks: the model's content hash in
    job specs and receipts."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What a worker declares about a backend (capabilities) and records in receipts."""

    name: str  # "llama.cpp" or "openai-http"
    version: str  # backend library or server version
    model_name: str
    model_sha256: bytes  # 32 bytes, or b"" when the backend cannot know it (a remote server)
    context_length: int
    max_concurrency: int
    deterministic: bool  # same prompt + sampling + seed -> same tokens, and score() is available
    n_threads: int  # 0 when not applicable
    n_vocab: int = 0
    embedding_dims: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """A finished generation.

    `tokens` are every token the sampler drew, including the EOS token (finish_reason "eos") and
    the token that completed a stop string (finish_reason "stop"), so that a validator can check
    each of them. `text` is what the requester sees: EOS removed, and cut before the stop string.
    """

    tokens: tuple[int, ...]
    text: str
    finish_reason: FinishReason
    prefill_ms: float
    decode_ms: float
    usage: Usage

    @property
    def tokens_per_second(self) -> float:
        return self.usage.completion_tokens / (self.decode_ms / 1000) if self.decode_ms > 0 else 0.0


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """One step of a streamed generation: the token drawn and the text that became final with it
    (possibly "" while a multi-byte character or a possible stop string is held back). A last
    piece with token None flushes held-back text when generation ends without a stop string."""

    token: int | None
    text: str


StreamEvent = StreamPiece | GenerationResult


class InferenceBackend(ABC):
    """One model behind one backend. Every method may be called from several threads at once."""

    @abstractmethod
    def info(self) -> BackendInfo: ...

    @abstractmethod
    def tokenize(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        """The model's tokens for `text`. `add_bos` prepends BOS when the model wants one;
        `parse_special` lets text such as "</s>" become special tokens (chat templates)."""

    @abstractmethod
    def detokenize_bytes(self, tokens: Sequence[int]) -> bytes:
        """The UTF-8 bytes of `tokens` (special tokens render as nothing)."""

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.detokenize_bytes(tokens).decode("utf-8", errors="replace")

    @property
    @abstractmethod
    def eos_token(self) -> int: ...

    @property
    def eog_tokens(self) -> frozenset[int]:
        """Every token that ends a generation (EOS, end-of-turn...); finish_reason "eos"."""
        return frozenset({self.eos_token})

    @abstractmethod
    def chat_template(self) -> str | None:
        """The model's Jinja chat template, if it has one."""

    def apply_chat_template(self, messages: Sequence[ChatMessage], *,
                            add_generation_prompt: bool = True) -> str:
        """The prompt text for a chat, rendered with the model's template (sandboxed Jinja)."""
        template = self.chat_template()
        if template is None:
            raise NotSupportedError("the model has no chat template")
        return render_chat_template(template, messages, bos_token=self.special_token_text("bos"),
                                    eos_token=self.special_token_text("eos"),
                                    add_generation_prompt=add_generation_prompt)

    def special_token_text(self, which: Literal["bos", "eos"]) -> str:
        """The text of the BOS or EOS token, for chat templates."""
        return ""

    def prompt_tokens(self, prompt: str, *, chat: bool = False) -> list[int]:
        """The tokens a job's prompt text is evaluated as: BOS (when the model adds one) + the text.

        A chat prompt (the template's rendering) may contain special tokens, and a template that
        writes BOS itself does not get a second one. A raw completion prompt may not contain
        special tokens (so a requester cannot inject control tokens through a completion)."""
        bos_text = self.special_token_text("bos") if chat else ""
        written = bool(bos_text) and prompt.startswith(bos_text)
        return self.tokenize(prompt, add_bos=not written, parse_special=chat)

    def chat_prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The tokens of a chat job: its messages through the model's chat template."""
        return self.prompt_tokens(self.apply_chat_template(messages), chat=True)

    @abstractmethod
    def stream(self, prompt_tokens: Sequence[int], sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        """Generate up to `sampling.max_tokens` tokens after `prompt_tokens`, stopping at EOS, at
        the first of `sampling.stop`, or soon after `cancel` is set (finish_reason "cancelled").

        Yields a `StreamPiece` per token, then the `GenerationResult` as the last item. The work
        happens in the thread that iterates; closing the iterator early abandons the generation
        and frees its slot."""

    def generate(self, prompt_tokens: Sequence[int], sampling: SamplingParams,
                 cancel: threading.Event | None = None,
                 on_piece: Callable[[StreamPiece], None] | None = None) -> GenerationResult:
        """`stream` run to the end; `on_piece` sees every piece."""
        return _last_result(self.stream(prompt_tokens, sampling, cancel), on_piece)

    def complete(self, prompt_tokens: Sequence[int], sampling: SamplingParams,
                 cancel: threading.Event | None = None) -> GenerationResult:
        return self.generate(prompt_tokens, sampling, cancel)

    # Text-level entry points: what the worker calls. In-process backends tokenize here exactly as
    # a validator will; a remote backend sends the text or the messages as they are.

    def stream_text(self, prompt: str, sampling: SamplingParams,
                    cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        """`stream` for an `llm.completion` prompt."""
        return self.stream(self.prompt_tokens(prompt), sampling, cancel)

    def stream_chat(self, messages: Sequence[ChatMessage], sampling: SamplingParams,
                    cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        """`stream` for an `llm.chat` job, through the model's chat template."""
        return self.stream(self.chat_prompt_tokens(messages), sampling, cancel)

    def generate_text(self, prompt: str, sampling: SamplingParams,
                      cancel: threading.Event | None = None) -> GenerationResult:
        return _last_result(self.stream_text(prompt, sampling, cancel))

    def generate_chat(self, messages: Sequence[ChatMessage], sampling: SamplingParams,
                      cancel: threading.Event | None = None) -> GenerationResult:
        return _last_result(self.stream_chat(messages, sampling, cancel))

    def measure_tokens_per_second(self, n_tokens: int = 32, prompt: str = "The grid") -> float:
        """Decode speed (tokens/s, greedy, one job) for the capabilities a worker declares at
        start-up. 0.0 when nothing was generated."""
        result = self.generate_text(prompt, SamplingParams(max_tokens=max(1, n_tokens)))
        if result.decode_ms <= 0 or not result.usage.completion_tokens:
            return 0.0
        return result.usage.completion_tokens / (result.decode_ms / 1000)

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One embedding vector per text (mean-pooled, L2-normalised where the backend allows)."""

    @abstractmethod
    def score(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
              positions: Sequence[int] | None = None) -> Logits:
        """Teacher-forced logits: row i is the model's logits for output position `positions[i]`
        (all positions when None) given prompt + output[:position], from one batched forward pass.
        Shape [len(positions), n_vocab], float32."""

    @abstractmethod
    def close(self) -> None:
        """Free the model and contexts (or the connection). Further calls raise BackendError."""


def _last_result(events: Iterator[StreamEvent],
                 on_piece: Callable[[StreamPiece], None] | None = None) -> GenerationResult:
    try:
        for event in events:
            if isinstance(event, GenerationResult):
                return event
            if on_piece is not None:
                on_piece(event)
    finally:
        # If on_piece raised, end the generation now (its slot is freed), not at garbage collection.
        close = getattr(events, "close", None)
        if close is not None:
            close()
    raise BackendError("generation ended without a result")


def render_chat_template(template: str, messages: Sequence[ChatMessage], *, bos_token: str = "",
                         eos_token: str = "", add_generation_prompt: bool = True) -> str:
    """Render a chat template (as shipped in GGUF `tokenizer.chat_template`) in Jinja's immutable
    sandbox: model files are untrusted input."""
    import jinja2

    try:
        compiled = _compile_template(template)
        rendered: str = compiled.render(messages=[{"role": r, "content": c} for r, c in messages],
                                        bos_token=bos_token, eos_token=eos_token,
                                        add_generation_prompt=add_generation_prompt,
                                        raise_exception=_raise_template_error)
        return rendered
    except jinja2.TemplateError as exc:
        raise BackendError(f"chat template failed: {exc}") from exc


def _raise_template_error(message: str) -> None:
    import jinja2

    raise jinja2.TemplateError(message)


@functools.lru_cache(maxsize=16)
def _compile_template(template: str) -> Any:
    """Compiling a template costs ~15 ms; a worker renders the same few over and over."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template)
