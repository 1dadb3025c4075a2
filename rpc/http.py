"""A small HTTP/1.1 server protocol for JSON-RPC (Core: libevent's evhttp as httpserver.cpp uses it).

Owns request framing on one connection: the request line, headers (at most MAX_HEADERS_SIZE bytes),
a Content-Length or chunked body (at most MAX_REQUEST_SIZE either way), `Expect: 100-continue`,
keep-alive and pipelining in order, the idle timeout and the per-request read deadline. A general web
framework costs several times more per request than this path, and the RPC server's budget is measured
in microseconds. It must never interpret bodies: the `RequestHandler` callback answers each request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_HEADERS_SIZE = 8192
MAX_REQUEST_SIZE = 0x02000000  # Core: MAX_SIZE
# The longest chunk-size line (with its extensions) or trailer field; all trailer fields together get
# MAX_HEADERS_SIZE, like headers.
MAX_CHUNK_LINE_SIZE = 4096
_HEX_DIGITS = b"0123456789abcdefABCDEF"

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


class FramingError(Exception):
    """A request whose body cannot be delimited; answered with `status` and the connection closed."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _line_end(buf: bytearray) -> int:
    """Where the CRLF ending the line at the front of `buf` starts, or -1 until it has arrived. A bare CR
    or LF is refused: a framing that other parsers might read differently invites request smuggling."""
    newline = buf.find(b"\n", 0, MAX_CHUNK_LINE_SIZE + 2)
    if newline < 0:
        if len(buf) > MAX_CHUNK_LINE_SIZE + 1:
            raise FramingError(400)
        return -1
    end = newline - 1
    if end < 0 or buf[end] != 13 or buf.find(b"\r", 0, end) >= 0:
        raise FramingError(400)
    return end


def parse_chunk_size(line: bytes) -> int:
    """RFC 7230 4.1: chunk-size (1*HEXDIG) and optional `;` extensions, which are ignored."""
    size = line.partition(b";")[0].rstrip(b" \t")
    if not size or size.translate(None, _HEX_DIGITS):
        raise FramingError(400)  # empty, signed, `0x`-prefixed, padded in front, or not hex
    if len(size.lstrip(b"0")) > 8:  # past MAX_REQUEST_SIZE (8 hex digits) whatever follows
        raise FramingError(413)
    return int(size, 16)


class ChunkedBody:
    """Incremental decoder of one chunked request body (RFC 7230 4.1). `feed` consumes what it can from
    the front of the connection's buffer, so a body trickling in is never scanned twice, and leaves
    whatever follows the last chunk's trailer (a pipelined request) in place."""

    __slots__ = ("_remaining", "_state", "_trailer_size", "body")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self.body = bytearray()
        self._state = self._SIZE
        self._remaining = 0
        self._trailer_size = 0

    def feed(self, buf: bytearray) -> bool:
        """True once the last chunk and trailer are in; raises FramingError (400, 413, 431)."""
        while True:
            state = self._state
            if state == self._DATA:
                if not buf:
                    return False
                take = min(self._remaining, len(buf))
                self.body += buf[:take]
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._state = self._DATA_END
            elif state == self._DATA_END:
                if len(buf) < 2:
                    if buf and buf[0] != 13:
                        raise FramingError(400)
                    return False
                if buf[0] != 13 or buf[1] != 10:
                    raise FramingError(400)
                del buf[:2]
                self._state = self._SIZE
            else:
                end = _line_end(buf)
                if end < 0:
                    return False
                line = bytes(buf[:end])
                del buf[:end + 2]
                if state == self._SIZE:
                    size = parse_chunk_size(line)
                    if size == 0:
                        self._state = self._TRAILER
                    elif len(self.body) + size > MAX_REQUEST_SIZE:
                        raise FramingError(413)
                    else:
                        self._remaining = size
                        self._state = self._DATA
                elif not line:
                    return True
                else:
                    # Trailer fields are read and ignored (Core reads none of them either).
                    self._trailer_size += end + 2
                    if self._trailer_size > MAX_HEADERS_SIZE:
                        raise FramingError(431)
                    if b":" not in line or line[:1] in (b" ", b"\t"):
                        raise FramingError(400)


@dataclass(slots=True)
class _ChunkedRequest:
    """The head of a request whose chunked body is still arriving."""
    method: str
    path: str
    authorization: str | None
    keep_alive: bool
    expect_continue: bool
    decoder: ChunkedBody


def transfer_codings(values: list[str]) -> list[str]:
    """The Transfer-Encoding header fields as one list of codings, `identity` (RFC 2616) dropped."""
    codings = []
    for value in values:
        for coding in value.split(","):
            name = coding.strip().lower()
            if name and name != "identity":
                codings.append(name)
    return codings


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
    thread, an authentication delay) further input is buffered, and reading pauses when that buffer fills.

    One timer per connection enforces -rpcservertimeout twice over: an idle connection is closed that
    long after its last answer, and a request must arrive in full within that long of its first byte
    (a slow body, a partial request). Both are dropped without an answer, as evhttp drops them."""

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
        # When the first byte of the request now being read was taken up, None between requests.
        self._request_started: float | None = None
        self._chunked: _ChunkedRequest | None = None
        self._pending: asyncio.Future[None] | None = None

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._timer = loop.call_later(self._idle_timeout, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        self._on_close(self)

    def _on_timer(self) -> None:
        """Close an idle connection or a request too slow to arrive. Requests only note the time (no
        timer churn): this one timer re-arms itself for whichever deadline comes next."""
        if self._transport is None:
            return
        loop = asyncio.get_running_loop()
        if self._busy:  # the handler's time is not the client's; _finish notes when it answered
            self._timer = loop.call_later(self._idle_timeout, self._on_timer)
            return
        started = self._request_started
        remaining = (self._last_activity if started is None else started) + self._idle_timeout - loop.time()
        if remaining > 0:
            self._timer = loop.call_later(max(remaining, 0.01), self._on_timer)
            return
        self._closing = True
        self._buffer.clear()
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
        self._chunked = None

    def _process(self) -> None:
        """Answer every complete request in the buffer, stopping at one that must wait."""
        while not self._busy and not self._closing and self._transport is not None:
            buf = self._buffer
            chunked = self._chunked
            if chunked is not None:
                try:
                    complete = chunked.decoder.feed(buf)
                except FramingError as exc:
                    self._fail(exc.status)
                    return
                if not complete:
                    if chunked.expect_continue and not self._continue_sent:
                        self._continue_sent = True
                        self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    break
                self._chunked = None
                self._dispatch(chunked.method, chunked.path, chunked.authorization,
                               bytes(chunked.decoder.body), chunked.keep_alive)
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADERS_SIZE:
                    self._fail(431)
                    return
                break
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
            length: int | None = None
            authorization = None
            expect_continue = False
            encodings: list[str] | None = None
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    self._fail(400)
                    return
                key = name.strip().lower()
                value = value.strip()
                if key == "content-length":
                    # isascii: str.isdigit() accepts digits such as "²" that int() refuses.
                    if not (value.isascii() and value.isdigit()):
                        self._fail(400)
                        return
                    digits = value.lstrip("0") or "0"
                    if len(digits) > 10:  # past MAX_REQUEST_SIZE, and maybe past int()'s digit limit
                        self._fail(413)
                        return
                    if length is not None and length != int(digits):  # RFC 7230 3.3.2
                        self._fail(400)
                        return
                    length = int(digits)
                elif key == "authorization":
                    authorization = value
                elif key == "connection":
                    token = value.lower()
                    if token == "close":
                        keep_alive = False
                    elif token == "keep-alive":
                        keep_alive = True
                elif key == "transfer-encoding":
                    encodings = [value] if encodings is None else [*encodings, value]
                elif key == "expect" and value.lower() == "100-continue":
                    expect_continue = True
            if encodings is not None:
                codings = transfer_codings(encodings)
                if codings:
                    # RFC 7230 3.3.3: with both, the length is ambiguous (request smuggling); refuse it.
                    if length is not None:
                        self._fail(400)
                        return
                    if any(coding != "chunked" for coding in codings):
                        self._fail(501)  # gzip, deflate, compress: not decoded here, as in Core
                        return
                    if len(codings) > 1:  # RFC 7230 3.3.1: never chunked twice
                        self._fail(400)
                        return
                    del buf[:end + 4]
                    if version == "HTTP/1.0":  # RFC 7230 3.3.1: no chunked framing in 1.0; do not reuse
                        keep_alive = False
                    self._chunked = _ChunkedRequest(method, path, authorization, keep_alive, expect_continue,
                                                    ChunkedBody())
                    continue
            if length is None:
                length = 0
            elif length > MAX_REQUEST_SIZE:
                self._fail(413)
                return
            total = end + 4 + length
            if len(buf) < total:
                if expect_continue and not self._continue_sent:
                    self._continue_sent = True
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            body = bytes(buf[end + 4:total])
            del buf[:total]
            self._dispatch(method, path, authorization, body, keep_alive)
        if (self._buffer or self._chunked is not None) and self._request_started is None and not (
                self._busy or self._closing):
            self._request_started = asyncio.get_running_loop().time()

    def _dispatch(self, method: str, path: str, authorization: str | None, body: bytes,
                  keep_alive: bool) -> None:
        self._continue_sent = False
        self._request_started = None
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
        self._last_activity = asyncio.get_running_loop().time()
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
