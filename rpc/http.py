"""A small HTTP/1.1 server protocol for JSON-RPC (Core: libevent's evhttp as httpserver.cpp uses it).

Owns request framing on one connection: the request line, headers (at most MAX_HEADERS_SIZE bytes),
a Content-Length body (at most MAX_REQUEST_SIZE), `Expect: 100-continue`, keep-alive and pipelining in
order, and the idle timeout. A general web framework costs several times more per request than this
path, and the RPC server's budget is measured in microseconds. It must never interpret bodies: the
`RequestHandler` callback answers each request, synchronously or with an awaitable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_HEADERS_SIZE = 8192
MAX_REQUEST_SIZE = 0x02000000  # Core: MAX_SIZE

_REASONS = {
    100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
    413: "Payload Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    authorization: str | None
    body: bytes
    peer: str | None


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    extra_headers: tuple[tuple[str, str], ...] = ()


RequestHandler = Callable[[Request], "Reply | Awaitable[Reply]"]


def encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Unknown')}"]
    if reply.content_type is not None and reply.body:
        head.append(f"Content-Type: {reply.content_type}")
    head.extend(f"{name}: {value}" for name, value in reply.extra_headers)
    if not keep_alive:
        head.append("Connection: close")
    head.append(f"Content-Length: {len(reply.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body


class HTTPProtocol(asyncio.Protocol):
    """One client connection. Requests are answered strictly in order; while one is pending (a worker
    thread, an authentication delay) further input is buffered, and reading pauses when that buffer fills."""

    def __init__(self, handler: RequestHandler, idle_timeout: float, on_close: Callable[[HTTPProtocol],
                                                                                        None]) -> None:
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False
        self._closing = False
        self._peer: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._continue_sent = False
        self._last_activity = 0.0
        self._pending: asyncio.Future[None] | None = None

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        self._on_close(self)

    def _arm_timer(self, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._timer = loop.call_later(self._idle_timeout if delay is None else delay, self._idle)

    def _idle(self) -> None:
        """Close a connection idle for -rpcservertimeout; requests only note the time (no timer churn)."""
        if self._transport is None:
            return
        loop = asyncio.get_running_loop()
        remaining = self._last_activity + self._idle_timeout - loop.time()
        if self._busy or remaining > 0:
            self._timer = loop.call_later(max(remaining, 0.5), self._idle)
            return
        self._transport.close()

    def close(self) -> None:
        """Close once the request in progress (if any) has been answered."""
        self._closing = True
        if not self._busy and self._transport is not None:
            self._transport.close()

    # -- input -----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()
        elif len(self._buffer) > MAX_REQUEST_SIZE and self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True

    def _fail(self, status: int) -> None:
        if self._transport is not None:
            self._transport.write(encode_reply(Reply(status, content_type=None), keep_alive=False))
            self._transport.close()
        self._closing = True
        self._buffer.clear()

    def _process(self) -> None:
        """Answer every complete request in the buffer, stopping at one that must wait."""
        while not self._busy and not self._closing and self._transport is not None:
            buf = self._buffer
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADERS_SIZE:
                    self._fail(431)
                return
            if end > MAX_HEADERS_SIZE:
                self._fail(431)
                return
            try:
                head = bytes(buf[:end]).decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
                self._fail(400)
                return
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._fail(400 if len(parts) != 3 else 505)
                return
            method, path, version = parts
            keep_alive = version != "HTTP/1.0"
            length = 0
            authorization = None
            expect_continue = False
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    self._fail(400)
                    return
                key = name.strip().lower()
                value = value.strip()
                if key == "content-length":
                    if not value.isdigit():
                        self._fail(400)
                        return
                    length = int(value)
                elif key == "authorization":
                    authorization = value
                elif key == "connection":
                    token = value.lower()
                    if token == "close":
                        keep_alive = False
                    elif token == "keep-alive":
                        keep_alive = True
                elif key == "transfer-encoding" and value.lower() != "identity":
                    self._fail(501)
                    return
                elif key == "expect" and value.lower() == "100-continue":
                    expect_continue = True
            if length > MAX_REQUEST_SIZE:
                self._fail(413)
                return
            total = end + 4 + length
            if len(buf) < total:
                if expect_continue and not self._continue_sent:
                    self._continue_sent = True
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(buf[end + 4:total])
            del buf[:total]
            self._continue_sent = False
            self._last_activity = asyncio.get_running_loop().time()
            result = self._handler(Request(method, path, authorization, body, self._peer))
            if isinstance(result, Reply):
                self._send(result, keep_alive)
            else:
                self._busy = True
                self._pending = asyncio.ensure_future(self._finish(result, keep_alive))

    async def _finish(self, pending: Awaitable[Reply], keep_alive: bool) -> None:
        try:
            reply = await pending
        except Exception:  # never leave a client without an answer
            reply = Reply(500, content_type=None)
        self._busy = False
        self._send(reply, keep_alive)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        self._process()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        if self._transport is None:
            return
        keep = keep_alive and not self._closing
        self._transport.write(encode_reply(reply, keep))
        if not keep:
            self._closing = True
            self._transport.close()
