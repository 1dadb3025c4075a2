"""The OpenAI-compatible HTTP API a node serves to requesters (-pouwapi).

Owns the HTTP side only: parsing OpenAI request bodies into `ApiRequest`s with OpenAI's error
format, rendering results (plain JSON and `stream: true` server-sent events), and the routes
`POST /v1/completions`, `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`, and
`GET /v1/aipg/receipts/{id}` (the signed receipt every answer names). Admission, tiers, routing
and execution belong to the `Gateway` (the node's PoUW service); this module must never decide
who may run what.

Every answer carries the job and receipt ids: in `X-AIPG-Job-Id` / `X-AIPG-Receipt-Id` headers
and an `aipg` object in the body (in the last chunk when streaming). OpenAI clients ignore both.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from pouw.errors import PouwError
from pouw.jobspec import (
    TEMPERATURE_SCALE,
    TOP_P_SCALE,
    ChatInput,
    ChatMessage,
    ChatRole,
    CompletionInput,
    EmbedInput,
    SamplingParams,
)
from pouw.receipt import FinishReason, Receipt
from pouw.router import ModelOffer
from pouw.worker import JobOutcome

__all__ = ["ApiError", "ApiRequest", "ApiResult", "Caller", "Gateway", "make_app"]

MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
# Chat has no OpenAI default ("up to the context"); a bounded one keeps free-tier costs predictable.
DEFAULT_CHAT_MAX_TOKENS = 256
_U64 = (1 << 64) - 1
_OPENAI_FINISH = {FinishReason.STOP: "stop", FinishReason.EOS: "stop", FinishReason.LENGTH: "length",
                  FinishReason.CANCELLED: "cancelled", FinishReason.ERROR: "error"}


class ApiError(Exception):
    """An error answered in OpenAI's format: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, retry_after: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the peer address, the forwarding header (trusted only behind a configured
    proxy, which the gateway decides) and the bearer key, if any."""

    remote: str
    forwarded_for: str | None
    api_key: str | None


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What a request asks for, before the gateway adds model hash, tier, requester and fees."""

    model: str
    input: CompletionInput | ChatInput | EmbedInput
    sampling: SamplingParams | None
    stream: bool = False
    user: str | None = None
    base64: bool = False  # embeddings as base64 of little-endian float32 (OpenAI's encoding_format)


@dataclass(frozen=True, slots=True)
class ApiResult:
    outcome: JobOutcome
    job_id_hex: str
    worker_id: str
    headers: tuple[tuple[str, str], ...] = ()  # e.g. the tier's rate-limit headers


TextSink = Callable[[str], Awaitable[None]]


class Gateway(Protocol):
    """What the API needs from the node's PoUW service."""

    def list_models(self) -> list[ModelOffer]: ...

    async def run(self, request: ApiRequest, caller: Caller, on_text: TextSink | None) -> ApiResult:
        """Admit, queue, route and run the request; raise ApiError for any refusal or failure.
        `on_text` gets the output's text pieces as they are generated (streaming)."""

    def get_receipt(self, receipt_id_hex: str) -> Receipt | None: ...


# --- request parsing --------------------------------------------------------------------------------

def _field_error(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


def _get(body: dict[str, Any], name: str, kinds: type | tuple[type, ...], default: Any = None,
         required: bool = False) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise ApiError(400, f"'{name}' is a required property", param=name,
                           code="missing_required_parameter")
        return default
    value = body[name]
    kinds_tuple = kinds if isinstance(kinds, tuple) else (kinds,)
    # JSON true/false are ints in Python; a number field never takes them.
    if isinstance(value, bool) and bool not in kinds_tuple:
        raise _field_error(name, f"expected {_kind_names(kinds_tuple)}, got a boolean")
    if not isinstance(value, kinds_tuple):
        raise _field_error(name, f"expected {_kind_names(kinds_tuple)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
             dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _fixed(body: dict[str, Any], name: str, scale: int, default: float, low: float, high: float) -> int:
    value: float = _get(body, name, (int, float), default)
    if not low <= value <= high:
        raise _field_error(name, f"must be between {low:g} and {high:g}")
    return round(value * scale)


def _sampling(body: dict[str, Any], default_max_tokens: int | None) -> SamplingParams:
    max_tokens = _get(body, "max_completion_tokens", int, None)
    if max_tokens is None:
        max_tokens = _get(body, "max_tokens", int, default_max_tokens)
    if max_tokens is None:
        raise ApiError(400, "'max_tokens' is required by this server", param="max_tokens",
                       code="missing_required_parameter")
    if max_tokens < 1:
        raise _field_error("max_tokens", "must be at least 1")
    n = _get(body, "n", int, 1)
    if n != 1:
        raise ApiError(400, "n: only n=1 is supported", param="n", code="unsupported_value")
    stop = _get(body, "stop", (str, list), [])
    stops = [stop] if isinstance(stop, str) else stop
    if not all(isinstance(s, str) and s for s in stops):
        raise _field_error("stop", "must be a non-empty string or an array of them")
    seed = _get(body, "seed", int, 0)
    if not 0 <= seed <= _U64:
        raise _field_error("seed", "must be between 0 and 2^64-1")
    top_k = _get(body, "top_k", int, 0)
    if top_k < 0:
        raise _field_error("top_k", "must not be negative")
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature_milli=_fixed(body, "temperature", TEMPERATURE_SCALE, 1.0, 0.0, 2.0),
            top_k=top_k,
            top_p_micro=_fixed(body, "top_p", TOP_P_SCALE, 1.0, 0.0, 1.0),
            seed=seed,
            stop=tuple(stops),
        )
    except PouwError as exc:
        raise ApiError(400, str(exc), param=exc.field or None, code=exc.code) from exc


def parse_completion(body: dict[str, Any]) -> ApiRequest:
    prompt = _get(body, "prompt", (str, list), required=True)
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise ApiError(400, "prompt: only a single string prompt is supported", param="prompt",
                           code="unsupported_value")
        prompt = prompt[0]
    try:
        job_input = CompletionInput(prompt)
    except PouwError as exc:
        raise ApiError(400, str(exc), param="prompt", code=exc.code) from exc
    return ApiRequest(_get(body, "model", str, required=True), job_input, _sampling(body, DEFAULT_MAX_TOKENS),
                      bool(_get(body, "stream", bool, False)), _get(body, "user", str))


def _content_text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(text, str):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported",
                               param=f"messages[{i}].content", code="unsupported_value")
            parts.append(part["text"])
        return "".join(parts)
    raise _field_error(f"messages[{i}].content", "must be a string or an array of text parts")


def parse_chat(body: dict[str, Any]) -> ApiRequest:
    raw = _get(body, "messages", list, required=True)
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _field_error(f"messages[{i}]", "must be an object")
        role = m.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ChatRole.labels():
            raise _field_error(f"messages[{i}].role", f"must be one of {', '.join(ChatRole.labels())}")
        messages.append(ChatMessage(ChatRole.from_label(role), _content_text(m.get("content", ""), i)))
    try:
        job_input = ChatInput(tuple(messages))
    except PouwError as exc:
        raise ApiError(400, str(exc), param="messages", code=exc.code) from exc
    sampling = _sampling(body, DEFAULT_CHAT_MAX_TOKENS)
    return ApiRequest(_get(body, "model", str, required=True), job_input, sampling,
                      bool(_get(body, "stream", bool, False)), _get(body, "user", str))


def parse_embeddings(body: dict[str, Any]) -> ApiRequest:
    raw = _get(body, "input", (str, list), required=True)
    inputs = [raw] if isinstance(raw, str) else raw
    if not inputs or not all(isinstance(s, str) for s in inputs):
        raise ApiError(400, "input: must be a string or an array of strings (token arrays are not supported)",
                       param="input", code="unsupported_value")
    fmt = _get(body, "encoding_format", str, "float")
    if fmt not in ("float", "base64"):  # the openai client asks for base64 by default
        raise ApiError(400, "encoding_format: must be 'float' or 'base64'", param="encoding_format",
                       code="unsupported_value")
    try:
        job_input = EmbedInput(tuple(inputs))
    except PouwError as exc:
        raise ApiError(400, str(exc), param="input", code=exc.code) from exc
    model = _get(body, "model", str, required=True)
    return ApiRequest(model, job_input, None, False, _get(body, "user", str), base64=fmt == "base64")


# --- rendering ---------------------------------------------------------------------------------------

def _aipg(result: ApiResult) -> dict[str, Any]:
    r = result.outcome.receipt
    return {"job_id": result.job_id_hex, "receipt_id": r.id_hex, "worker": result.worker_id,
            "worker_pubkey": r.worker_pubkey.hex()}


def _usage(receipt: Receipt) -> dict[str, int]:
    u = receipt.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def _ids_headers(result: ApiResult) -> dict[str, str]:
    return {**{k.title(): v for k, v in result.headers}, "X-AIPG-Job-Id": result.job_id_hex,
            "X-AIPG-Receipt-Id": result.outcome.receipt.id_hex}


def render_completion(request: ApiRequest, result: ApiResult, created: int) -> dict[str, Any]:
    r = result.outcome.receipt
    return {"id": f"cmpl-{result.job_id_hex[:24]}", "object": "text_completion", "created": created,
            "model": request.model,
            "choices": [{"text": result.outcome.text or "", "index": 0, "logprobs": None,
                         "finish_reason": _OPENAI_FINISH[r.finish_reason]}],
            "usage": _usage(r), "aipg": _aipg(result)}


def render_chat(request: ApiRequest, result: ApiResult, created: int) -> dict[str, Any]:
    r = result.outcome.receipt
    return {"id": f"chatcmpl-{result.job_id_hex[:24]}", "object": "chat.completion", "created": created,
            "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.outcome.text or ""},
                         "logprobs": None, "finish_reason": _OPENAI_FINISH[r.finish_reason]}],
            "usage": _usage(r), "aipg": _aipg(result)}


def _b64_floats(vector: tuple[float, ...]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def render_embeddings(request: ApiRequest, result: ApiResult) -> dict[str, Any]:
    vectors = result.outcome.embeddings or ()
    usage = _usage(result.outcome.receipt)
    return {"object": "list", "model": request.model,
            "data": [{"object": "embedding", "index": i,
                      "embedding": _b64_floats(v) if request.base64 else list(v)}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"]},
            "aipg": _aipg(result)}


# --- the application ---------------------------------------------------------------------------------

def _error_response(error: ApiError) -> web.Response:
    headers = {k.title(): v for k, v in error.headers.items()}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after + 0.5)))
    return web.json_response(error.body(), status=error.status, headers=headers)


def _caller(request: web.Request) -> Caller:
    auth = request.headers.get("Authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return Caller(request.remote or "", request.headers.get("X-Forwarded-For"), key or None)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes", code="body_too_large")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes", code="body_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    return body


class _Stream:
    """Server-sent events for `stream: true`; headers go out with the first event, so an error
    raised before any output still gets its own HTTP status."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def send(self, payload: dict[str, Any] | str) -> None:
        if self.response is None:
            self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                        "Cache-Control": "no-cache"})
            await self.response.prepare(self.request)
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        await self.response.write(f"data: {data}\n\n".encode())

    async def close(self) -> web.StreamResponse:
        await self.send("[DONE]")
        assert self.response is not None
        await self.response.write_eof()
        return self.response


def make_app(gateway: Gateway, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The aiohttp application serving the OpenAI-compatible routes for `gateway`."""

    async def generate(request: web.Request, parse: Callable[[dict[str, Any]], ApiRequest],
                       chat: bool) -> web.StreamResponse:
        try:
            api_request = parse(await _json_body(request))
        except ApiError as exc:
            return _error_response(exc)
        created = int(clock())
        caller = _caller(request)
        if not api_request.stream:
            try:
                result = await gateway.run(api_request, caller, None)
            except ApiError as exc:
                return _error_response(exc)
            body = (render_chat if chat else render_completion)(api_request, result, created)
            return web.json_response(body, headers=_ids_headers(result))

        stream = _Stream(request)
        object_name = "chat.completion.chunk" if chat else "text_completion"
        chunk_id = f"{'chatcmpl' if chat else 'cmpl'}-{int(clock() * 1000):x}"

        def chunk(text: str | None, finish: str | None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {} if text is None else {"content": text}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish}
            else:
                choice = {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
            out: dict[str, Any] = {"id": chunk_id, "object": object_name, "created": created,
                                   "model": api_request.model, "choices": [choice]}
            if extra:
                out.update(extra)
            return out

        async def on_text(text: str) -> None:
            if stream.response is None and chat:
                await stream.send({"id": chunk_id, "object": object_name, "created": created,
                                   "model": api_request.model,
                                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                "logprobs": None, "finish_reason": None}]})
            await stream.send(chunk(text, None))

        try:
            result = await gateway.run(api_request, caller, on_text)
        except ApiError as exc:
            if stream.response is None:
                return _error_response(exc)
            await stream.send(exc.body())
            return await stream.close()
        finish = _OPENAI_FINISH[result.outcome.receipt.finish_reason]
        await stream.send(chunk(None if chat else "", finish,
                                {"usage": _usage(result.outcome.receipt), "aipg": _aipg(result)}))
        return await stream.close()

    async def completions(request: web.Request) -> web.StreamResponse:
        return await generate(request, parse_completion, chat=False)

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await generate(request, parse_chat, chat=True)

    async def embeddings(request: web.Request) -> web.StreamResponse:
        try:
            api_request = parse_embeddings(await _json_body(request))
            result = await gateway.run(api_request, _caller(request), None)
        except ApiError as exc:
            return _error_response(exc)
        return web.json_response(render_embeddings(api_request, result), headers=_ids_headers(result))

    async def models(request: web.Request) -> web.StreamResponse:
        data = [{"id": m.name, "object": "model", "created": 0, "owned_by": "aipg-grid",
                 "aipg": {"sha256": m.sha256.hex() if m.sha256 else None, "context_length": m.context_length}}
                for m in gateway.list_models()]
        return web.json_response({"object": "list", "data": data})

    async def receipt(request: web.Request) -> web.StreamResponse:
        found = gateway.get_receipt(request.match_info["receipt_id"])
        if found is None:
            return _error_response(ApiError(404, "no such receipt", code="receipt_not_found"))
        return web.json_response({"receipt": found.to_json(), "hex": found.serialize().hex()})

    async def not_found(request: web.Request) -> web.StreamResponse:
        return _error_response(ApiError(404, f"unknown endpoint {request.method} {request.path}",
                                        code="unknown_url"))

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/aipg/receipts/{receipt_id}", receipt)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
