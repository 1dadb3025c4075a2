"""The OpenAI-compatible HTTP backend against a real loopback server: a small aiohttp app speaking
the OpenAI wire format (and llama.cpp server's /tokenize, /detokenize) in front of the llama.cpp
backend on the tiny model. Answers must equal the in-process backend's, streamed or not."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from pouw.backends.base import (
    BackendUnavailableError,
    ContextOverflowError,
    GenerationResult,
    NotSupportedError,
    StreamPiece,
)
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.backends.openai_http import OpenAIHttpBackend
from pouw.jobspec import SamplingParams

MODEL = "tiny-llama"
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


def _sampling(body: dict[str, Any]) -> SamplingParams:
    stop = body.get("stop") or ()
    return SamplingParams(max_tokens=int(body.get("max_tokens", 16)),
                          temperature_milli=round(float(body.get("temperature", 1.0)) * 1000),
                          top_k=int(body.get("top_k", 0)),
                          top_p_micro=round(float(body.get("top_p", 1.0)) * 1e6),
                          seed=int(body.get("seed", 0)),
                          stop=(stop,) if isinstance(stop, str) else tuple(stop))


class FakeOpenAIServer:
    """OpenAI's wire format over the in-process backend, on 127.0.0.1, in its own thread."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.cancelled = 0
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        self.runner = web.AppRunner(app)
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": MODEL, "object": "model", "owned_by": "test", "meta": {"n_ctx_train": 256}}]})

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        tokens = self.backend.tokenize(body["content"], add_bos=body.get("add_special", False),
                                       parse_special=body.get("parse_special", False))
        return web.json_response({"tokens": tokens})

    async def detokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"content": self.backend.detokenize(body["tokens"])})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = await asyncio.to_thread(self.backend.embed, inputs)
        return web.json_response({"object": "list", "model": MODEL, "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = request.path.endswith("/chat/completions")
        if body.get("model") != MODEL:
            return web.json_response({"error": {"message": "model not found"}}, status=404)
        sampling = _sampling(body)
        if chat:
            prompt = self.backend.chat_prompt_tokens([(m["role"], m["content"]) for m in body["messages"]])
        elif isinstance(body["prompt"], list):
            prompt = body["prompt"]
        else:
            prompt = self.backend.prompt_tokens(body["prompt"])
        if len(prompt) + sampling.max_tokens > self.backend.info().context_length:
            return web.json_response({"error": {"message": "request exceeds the available context size"}},
                                     status=400)
        cancel = threading.Event()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                for event in self.backend.stream(prompt, sampling, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except Exception as exc:  # reported to the client as an error event
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        worker = loop.run_in_executor(None, run)
        if not body.get("stream"):
            while not isinstance(event := await queue.get(), GenerationResult | Exception):
                pass
            await worker
            assert isinstance(event, GenerationResult)
            message = {"role": "assistant", "content": event.text}
            choice = {"message": message} if chat else {"text": event.text}
            return web.json_response({"choices": [{**choice, "index": 0,
                                                   "finish_reason": FINISH[event.finish_reason]}],
                                      "usage": {"prompt_tokens": event.usage.prompt_tokens,
                                                "completion_tokens": event.usage.completion_tokens}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(data: Any) -> None:
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        try:
            while True:
                event = await queue.get()
                if isinstance(event, Exception):
                    await send({"error": str(event)})
                    break
                if isinstance(event, StreamPiece):
                    if event.text:
                        piece = {"delta": {"content": event.text}} if chat else {"text": event.text}
                        await send({"choices": [{**piece, "index": 0, "finish_reason": None}]})
                    continue
                end = {"delta": {}} if chat else {"text": ""}
                await send({"choices": [{**end, "index": 0, "finish_reason": FINISH[event.finish_reason]}]})
                await send({"choices": [], "usage": {"prompt_tokens": event.usage.prompt_tokens,
                                                     "completion_tokens": event.usage.completion_tokens}})
                await response.write(b"data: [DONE]\n\n")
                break
        except (ConnectionResetError, asyncio.CancelledError):
            cancel.set()
            self.cancelled += 1
            raise
        finally:
            await worker
        return response


@pytest.fixture(scope="module")
def server(tiny_backend: LlamaCppBackend) -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer(tiny_backend)
    yield srv
    srv.close()


@pytest.fixture()
def remote(server: FakeOpenAIServer) -> OpenAIHttpBackend:
    return OpenAIHttpBackend(server.url + "/v1", model=MODEL, timeout=30, max_concurrency=2,
                             model_sha256=b"\x07" * 32)


SAMPLED = SamplingParams(max_tokens=16, temperature_milli=800, top_k=40, top_p_micro=950_000, seed=77)


def test_info_is_declared_and_not_deterministic(remote: OpenAIHttpBackend) -> None:
    info = remote.info()
    assert (info.name, info.model_name, info.context_length) == ("openai-http", MODEL, 256)
    assert info.deterministic is False and info.n_threads == 0 and info.max_concurrency == 2
    assert info.model_sha256 == b"\x07" * 32


@pytest.mark.parametrize("sampling", [SamplingParams(max_tokens=16), SAMPLED], ids=["greedy", "sampled"])
def test_completion_equals_in_process_generation(remote: OpenAIHttpBackend, tiny_backend: LlamaCppBackend,
                                                 sampling: SamplingParams) -> None:
    for i in range(4):
        prompt = f"Remote prompt {i}"
        local = tiny_backend.generate_text(prompt, sampling)
        got = remote.generate_text(prompt, sampling)
        assert got.text == local.text
        assert got.finish_reason == local.finish_reason  # eos maps back to eos: no stop strings
        assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (
            local.usage.prompt_tokens, local.usage.completion_tokens)


def test_streamed_pieces_join_to_the_text(remote: OpenAIHttpBackend, tiny_backend: LlamaCppBackend) -> None:
    events = list(remote.stream_text("Stream over HTTP", SAMPLED))
    result = events[-1]
    assert isinstance(result, GenerationResult)
    assert "".join(e.text for e in events[:-1] if isinstance(e, StreamPiece)) == result.text
    assert result.text == tiny_backend.generate_text("Stream over HTTP", SAMPLED).text
    assert result.prefill_ms >= 0 and result.decode_ms >= 0


def test_token_prompt_and_chat(remote: OpenAIHttpBackend, tiny_backend: LlamaCppBackend) -> None:
    tokens = tiny_backend.prompt_tokens("Token ids as the prompt")
    assert remote.generate(tokens, SAMPLED).text == tiny_backend.generate(tokens, SAMPLED).text
    messages = [("system", "Be brief."), ("user", "Hello over HTTP")]
    assert remote.generate_chat(messages, SAMPLED).text == tiny_backend.generate_chat(messages, SAMPLED).text


def test_stop_strings_end_with_stop(remote: OpenAIHttpBackend, tiny_backend: LlamaCppBackend) -> None:
    for i in range(30):
        prompt = f"Stop hunt {i}"
        sampling = SamplingParams(max_tokens=16, stop=tuple("etaoins "))
        local = tiny_backend.generate_text(prompt, sampling)
        if local.finish_reason == "stop":
            got = remote.generate_text(prompt, sampling)
            assert (got.text, got.finish_reason) == (local.text, "stop")
            return
    pytest.fail("no answer hit a stop string")


def test_embeddings_and_tokens_through_the_server(remote: OpenAIHttpBackend,
                                                  tiny_backend: LlamaCppBackend) -> None:
    texts = ["one", "two three"]
    assert remote.embed(texts) == tiny_backend.embed(texts)
    tokens = remote.tokenize("naïve café", add_bos=True)
    assert tokens == tiny_backend.tokenize("naïve café", add_bos=True)
    assert remote.detokenize(tokens) == "naïve café"


def test_scoring_and_templates_are_not_supported(remote: OpenAIHttpBackend, server: FakeOpenAIServer) -> None:
    with pytest.raises(NotSupportedError):
        remote.score([1, 2], [3])
    with pytest.raises(NotSupportedError):
        remote.apply_chat_template([("user", "hi")])
    # A server without the tokenizer extensions (OpenAI itself, Ollama).
    with pytest.raises(NotSupportedError, match="/tokenize"):
        OpenAIHttpBackend(server.url + "/elsewhere", model=MODEL).tokenize("hi")


def test_cancel_ends_the_stream(remote: OpenAIHttpBackend) -> None:
    cancel = threading.Event()
    seen: list[StreamPiece] = []

    def on_piece(piece: StreamPiece) -> None:
        seen.append(piece)
        cancel.set()

    result = remote.generate(remote.tokenize("cancel", add_bos=True), SamplingParams(max_tokens=200), cancel,
                             on_piece)
    assert result.finish_reason == "cancelled"
    assert len(seen) == 1


def test_server_errors_become_backend_errors(remote: OpenAIHttpBackend, server: FakeOpenAIServer) -> None:
    with pytest.raises(ContextOverflowError):
        remote.generate_text("x" * 200, SamplingParams(max_tokens=200))
    with pytest.raises(BackendUnavailableError, match="does not serve"):
        OpenAIHttpBackend(server.url, model="nope").info()
    with pytest.raises(BackendUnavailableError, match="HTTP 404"):
        OpenAIHttpBackend(server.url, model="nope").generate_text("hi", SamplingParams(max_tokens=2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    down = OpenAIHttpBackend(f"http://127.0.0.1:{closed_port}", model=MODEL, timeout=5)
    with pytest.raises(BackendUnavailableError):
        down.info()
    with pytest.raises(ValueError):
        OpenAIHttpBackend("ftp://example.org", model=MODEL)


def test_discover_makes_one_backend_per_served_model(server: FakeOpenAIServer) -> None:
    found = OpenAIHttpBackend.discover(server.url)
    assert [b.info().model_name for b in found] == [MODEL]
