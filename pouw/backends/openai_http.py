"""A backend that forwards jobs to any OpenAI-compatible HTTP server (llama.cpp server, vLLM, Ollama).

Owns `OpenAIHttpBackend`: /v1/completions and /v1/chat/completions (always streamed, as server-sent
events), /v1/embeddings and /v1/models over blocking urllib calls made from worker threads, plus
/tokenize and /detokenize where the server has them (llama.cpp server, vLLM). It is not deterministic and
cannot score (`NotSupportedError`): such receipts are checked by a validator's own model. It must
never read an unbounded response or hang without a timeout.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pouw.backends.base import (
    BackendError,
    BackendInfo,
    BackendUnavailableError,
    ChatMessage,
    ContextOverflowError,
    FinishReason,
    GenerationResult,
    InferenceBackend,
    NotSupportedError,
    SamplingParams,
    StreamEvent,
    StreamPiece,
    Usage,
)

__all__ = ["OpenAIHttpBackend"]

MAX_JSON_BYTES = 64 * 1024 * 1024  # a whole JSON response (embeddings of a large batch)
MAX_EVENT_BYTES = 1024 * 1024  # one server-sent event line
_VERSION = "openai-v1"


class OpenAIHttpBackend(InferenceBackend):
    """One model served by an OpenAI-compatible server at `base_url` ("http://host:port" or
    ".../v1"). `model_sha256` and `context_length` are what the operator declares; the server
    cannot prove them."""

    def __init__(self, base_url: str, *, model: str, api_key: str | None = None, timeout: float = 120.0,
                 max_concurrency: int = 4, model_sha256: bytes = b"", context_length: int = 0) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[:-3]
        if not root.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if max_concurrency < 1 or timeout <= 0:
            raise ValueError("max_concurrency and timeout must be positive")
        self._root = root
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._sha = model_sha256
        self._context_length = context_length
        self._gate = threading.BoundedSemaphore(max_concurrency)
        self._closed = False
        self._server_context: int | None = None

    @classmethod
    def discover(cls, base_url: str, **options: Any) -> list[OpenAIHttpBackend]:
        """One backend per model the server lists at /v1/models."""
        probe = cls(base_url, model="", **options)
        return [cls(base_url, model=str(entry["id"]), **options)
                for entry in probe.models() if isinstance(entry.get("id"), str) and entry["id"]]

    # --- HTTP -----------------------------------------------------------------------------------

    def _open(self, path: str, body: dict[str, Any] | None = None, *, stream: bool = False) -> Any:
        if self._closed:
            raise BackendError("backend is closed")
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self._root + path, data=data, headers=headers,
                                         method="POST" if body is not None else "GET")
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, path) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BackendUnavailableError(f"{self._root}{path}: {exc}") from exc

    def _json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        with self._gate:
            response = self._open(path, body)
            try:
                raw = response.read(MAX_JSON_BYTES + 1)
            except OSError as exc:  # TimeoutError is an OSError
                raise BackendUnavailableError(f"{self._root}{path}: {exc}") from exc
            finally:
                response.close()
        if len(raw) > MAX_JSON_BYTES:
            raise BackendUnavailableError(f"{path}: response larger than {MAX_JSON_BYTES} bytes")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BackendUnavailableError(f"{path}: malformed JSON: {exc}") from exc

    # --- description ----------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """The server's /v1/models entries."""
        data = self._json("/v1/models")
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise BackendUnavailableError("/v1/models: no data list")
        return [e for e in entries if isinstance(e, dict)]

    def info(self) -> BackendInfo:
        if self._server_context is None:
            entry = next((e for e in self.models() if e.get("id") == self._model), None)
            if entry is None:
                raise BackendUnavailableError(f"the server does not serve model {self._model!r}")
            # llama.cpp server: meta.n_ctx_train; vLLM: max_model_len.
            meta = entry.get("meta")
            found = entry.get("max_model_len") or (meta.get("n_ctx_train") if isinstance(meta, dict) else 0)
            self._server_context = found if isinstance(found, int) and found > 0 else 0
        context = self._context_length or self._server_context
        return BackendInfo(name="openai-http", version=_VERSION, model_name=self._model,
                           model_sha256=self._sha, context_length=context,
                           max_concurrency=self._max_concurrency, deterministic=False, n_threads=0)

    @property
    def eos_token(self) -> int:
        return -1  # not exposed by the OpenAI API

    def chat_template(self) -> str | None:
        return None  # the server applies its own template to chat messages

    # --- tokens (llama.cpp server extensions) ---------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        # llama.cpp server reads content/add_special/parse_special, vLLM model/prompt/add_special_tokens.
        data = self._extension("/tokenize", {"content": text, "add_special": add_bos,
                                             "parse_special": parse_special, "model": self._model,
                                             "prompt": text, "add_special_tokens": add_bos})
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise BackendUnavailableError("/tokenize: no token list")
        return tokens

    def detokenize_bytes(self, tokens: Sequence[int]) -> bytes:
        data = self._extension("/detokenize", {"tokens": [int(t) for t in tokens], "model": self._model})
        content = None
        if isinstance(data, dict):
            content = data.get("content", data.get("prompt"))  # llama.cpp server / vLLM
        if not isinstance(content, str):
            raise BackendUnavailableError("/detokenize: no content")
        return content.encode("utf-8")

    def _extension(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self._json(path, body)
        except BackendUnavailableError as exc:
            if "HTTP 404" in str(exc) or "HTTP 405" in str(exc):
                raise NotSupportedError(f"the server has no {path} endpoint") from exc
            raise

    # --- generation -----------------------------------------------------------------------------

    def stream(self, prompt_tokens: Sequence[int], sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        """A token-id prompt (OpenAI's `prompt` may be an array of token ids)."""
        prompt = [int(t) for t in prompt_tokens]
        return self._stream("/v1/completions", {"prompt": prompt}, sampling, cancel, len(prompt))

    def stream_text(self, prompt: str, sampling: SamplingParams,
                    cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        return self._stream("/v1/completions", {"prompt": prompt}, sampling, cancel, 0)

    def stream_chat(self, messages: Sequence[ChatMessage], sampling: SamplingParams,
                    cancel: threading.Event | None = None) -> Iterator[StreamEvent]:
        body = {"messages": [{"role": role, "content": content} for role, content in messages]}
        return self._stream("/v1/chat/completions", body, sampling, cancel, 0)

    def _request_body(self, extra: dict[str, Any], sampling: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model, "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "seed": sampling.seed, "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.top_k:
            body["top_k"] = sampling.top_k  # an extension llama.cpp server and vLLM accept
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        body.update(extra)
        return body

    def _stream(self, path: str, extra: dict[str, Any], sampling: SamplingParams,
                cancel: threading.Event | None, prompt_len: int) -> Iterator[StreamEvent]:
        body = self._request_body(extra, sampling)
        chat = path.endswith("/chat/completions")
        return self._events(path, body, chat, sampling, cancel, prompt_len)

    def _events(self, path: str, body: dict[str, Any], chat: bool, sampling: SamplingParams,
                cancel: threading.Event | None, prompt_len: int) -> Iterator[StreamEvent]:
        with self._gate:
            t0 = time.perf_counter()
            response = self._open(path, body, stream=True)
            t_first: float | None = None
            parts: list[str] = []
            tokens: list[int] = []
            pieces = 0
            server_finish: str | None = None
            usage: dict[str, Any] | None = None
            cancelled = False
            try:
                for event in _sse_events(response, path):
                    if cancel is not None and cancel.is_set():
                        cancelled = True
                        break
                    if event.get("usage"):
                        usage = event["usage"]
                    choices = event.get("choices")
                    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                        continue
                    choice = choices[0]
                    if t_first is None:
                        t_first = time.perf_counter()
                    if chat:
                        delta = choice.get("delta")
                        text = delta.get("content") if isinstance(delta, dict) else None
                    else:
                        text = choice.get("text")
                    ids = choice.get("tokens")  # llama.cpp server, when it reports token ids
                    if isinstance(ids, list) and all(isinstance(t, int) for t in ids):
                        tokens.extend(ids)
                    if isinstance(text, str) and text:
                        parts.append(text)
                        pieces += 1
                        yield StreamPiece(ids[0] if isinstance(ids, list) and len(ids) == 1 else None, text)
                    if choice.get("finish_reason"):
                        server_finish = str(choice["finish_reason"])
            finally:
                response.close()
            t_end = time.perf_counter()
        finish: FinishReason
        if cancelled:
            finish = "cancelled"
        elif server_finish is None:
            raise BackendUnavailableError(f"{path}: the stream ended without a finish reason")
        elif server_finish == "length":
            finish = "length"
        else:
            # "stop" does not say whether EOS or a stop string ended it; without stop strings it
            # can only have been EOS. Other reasons (content_filter...) read as stop.
            finish = "stop" if sampling.stop else "eos"
        n_out = len(tokens) or pieces
        if isinstance(usage, dict):
            prompt_len = int(usage.get("prompt_tokens") or prompt_len)
            n_out = int(usage.get("completion_tokens") or n_out)
        first = t_first if t_first is not None else t_end
        yield GenerationResult(tokens=tuple(tokens), text="".join(parts), finish_reason=finish,
                               prefill_ms=(first - t0) * 1000, decode_ms=(t_end - first) * 1000,
                               usage=Usage(prompt_len, n_out))

    # --- embeddings and scoring -----------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        data = self._json("/v1/embeddings", {"model": self._model, "input": list(texts)})
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise BackendUnavailableError("/v1/embeddings: wrong number of embeddings")
        vectors: list[list[float]] = [[] for _ in texts]
        for pos, item in enumerate(items):
            index = item.get("index", pos) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(texts) or not isinstance(vector, list):
                raise BackendUnavailableError("/v1/embeddings: malformed item")
            vectors[index] = [float(x) for x in vector]
        return vectors

    def score(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
              positions: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
        raise NotSupportedError("an OpenAI-compatible server cannot score teacher-forced logits; "
                                "verify with an in-process backend on the same model")

    def close(self) -> None:
        self._closed = True


def _http_error(exc: urllib.error.HTTPError, path: str) -> BackendError:
    try:
        raw = exc.read(64 * 1024)
    except OSError:
        raw = b""
    message = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(raw)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message", message))
        elif isinstance(err, str):
            message = err
    except ValueError:
        pass
    lowered = message.lower()
    if exc.code == 400 and ("context" in lowered or "too long" in lowered or "exceed" in lowered):
        return ContextOverflowError(f"{path}: {message[:300]}")
    return BackendUnavailableError(f"{path}: HTTP {exc.code}: {message[:300]}")


def _sse_events(response: Any, path: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent event stream, until `data: [DONE]` or the end."""
    while True:
        try:
            line = response.readline(MAX_EVENT_BYTES + 1)
        except OSError as exc:  # TimeoutError is an OSError
            raise BackendUnavailableError(f"{path}: stream broke: {exc}") from exc
        if not line:
            return
        if len(line) > MAX_EVENT_BYTES:
            raise BackendUnavailableError(f"{path}: event larger than {MAX_EVENT_BYTES} bytes")
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("data:"):
            continue  # comments, event names, blank separators
        payload = text[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise BackendUnavailableError(f"{path}: malformed event: {exc}") from exc
        if isinstance(event, dict):
            if "error" in event:
                raise BackendUnavailableError(f"{path}: server error: {str(event['error'])[:300]}")
            yield event
