"""rpc.http framing over real loopback sockets: chunked request bodies, their limits and errors,
pipelining after them, and the -rpcservertimeout deadlines (idle, and per request)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import BinaryIO

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpc.http import (
    MAX_HEADERS_SIZE,
    MAX_REQUEST_SIZE,
    ChunkedBody,
    FramingError,
    HTTPProtocol,
    Reply,
    Request,
)

SLOW_PATH = "/slow"
SLOW_SECONDS = 2.5


async def _slow_reply(request: Request) -> Reply:
    await asyncio.sleep(SLOW_SECONDS)
    return Reply(200, b"slow:" + request.body)


def echo(request: Request) -> Reply | Awaitable[Reply]:
    """Answers with what framing delivered, so a test sees the decoded body byte for byte."""
    if request.path == SLOW_PATH:
        return _slow_reply(request)
    return Reply(200, f"{request.method} {request.path} {request.authorization}\n".encode() + request.body)


class LoopbackServer:
    """HTTPProtocol listening on 127.0.0.1, its uvloop event loop on a thread of its own."""

    def __init__(self, timeout: float) -> None:
        self.loop = uvloop.new_event_loop()
        self.connections: set[HTTPProtocol] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        def protocol() -> HTTPProtocol:
            conn = HTTPProtocol(echo, timeout, self.connections.discard)
            self.connections.add(conn)
            return conn

        async def listen() -> asyncio.AbstractServer:
            return await self.loop.create_server(protocol, "127.0.0.1", 0)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for conn in list(self.connections):
                conn.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer(timeout=30)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def quick_server() -> Iterator[LoopbackServer]:
    """-rpcservertimeout=2."""
    srv = LoopbackServer(timeout=2)
    yield srv
    srv.close()


def head(transfer: bytes, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (b"POST / " + version + b"\r\nHost: 127.0.0.1\r\nAuthorization: Basic dTpw\r\n"
            + transfer + extra + b"\r\n")


def with_length(body: bytes, extra: bytes = b"") -> bytes:
    return head(b"Content-Length: %d\r\n" % len(body), extra) + body


def chunk_stream(body: bytes, sizes: list[int], ext: bytes = b"", trailer: bytes = b"",
                 size_format: bytes = b"%x") -> bytes:
    """`body` cut into chunks of `sizes` (the rest in one more chunk), then the last chunk and trailer."""
    out, pos = bytearray(), 0
    for size in [*sizes, len(body)]:
        piece = body[pos:pos + size]
        pos += len(piece)
        if piece:
            out += size_format % len(piece) + ext + b"\r\n" + piece + b"\r\n"
    return bytes(out + size_format % 0 + ext + b"\r\n" + trailer + b"\r\n")


def with_chunks(body: bytes, sizes: list[int], ext: bytes = b"", trailer: bytes = b"",
                extra: bytes = b"") -> bytes:
    return head(b"Transfer-Encoding: chunked\r\n", extra) + chunk_stream(body, sizes, ext, trailer)


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One response, read through `stream`, a buffered file over the socket."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("closed before an answer")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


def exchange(srv: LoopbackServer, data: bytes, answers: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    with srv.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        return [read_response(stream) for _ in range(answers)]


def closed_by_server(sock: socket.socket, stream: BinaryIO, wait: float = 10) -> bool:
    """True once the server has closed (EOF or reset) with nothing more to read; False after `wait` s."""
    sock.settimeout(wait)
    try:
        return stream.read(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


BODY = b'{"jsonrpc": "1.0", "id": "t", "method": "getblockhash", "params": [0]}'


# -- chunked bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "ext", "trailer"), [
    ([], b"", b""),
    ([7, 20, 1], b";name=value", b""),
    ([1] * len(BODY), b"", b"X-Trailer: yes\r\nX-Other: 2\r\n"),
    ([3] * 30, b' ; a=1;b="q;uo\\"ted" ', b"Checksum: abc\r\n"),
])
def test_chunked_body_answers_like_content_length(server: LoopbackServer, sizes: list[int], ext: bytes,
                                                  trailer: bytes) -> None:
    expected = exchange(server, with_length(BODY))[0]
    got = exchange(server, with_chunks(BODY, sizes, ext, trailer))[0]
    assert got == expected
    assert got[0] == 200 and got[2].endswith(BODY)


def test_chunk_sizes_in_either_case_with_leading_zeros(server: LoopbackServer) -> None:
    body = bytes(range(256)) * 2
    stream = (b"000100\r\n" + body[:256] + b"\r\nFf\r\n" + body[256:511] + b"\r\n1\r\n" + body[511:]
              + b"\r\n0\r\n\r\n")
    status, _, answer = exchange(server, head(b"Transfer-Encoding: chunked\r\n") + stream)[0]
    assert status == 200 and answer.endswith(body)


def test_empty_chunked_body(server: LoopbackServer) -> None:
    status, _, answer = exchange(server, head(b"Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n")[0]
    assert status == 200 and answer.endswith(b"\n")


def test_chunked_request_is_pipelined_with_the_next(server: LoopbackServer) -> None:
    data = (with_chunks(BODY, [5, 5]) + with_length(b"second")
            + with_chunks(b"third", [1], trailer=b"T: 1\r\n") + with_length(b"fourth"))
    answers = exchange(server, data, answers=4)
    assert [status for status, _, _ in answers] == [200] * 4
    assert [body.split(b"\n", 1)[1] for _, _, body in answers] == [BODY, b"second", b"third", b"fourth"]
    assert all("connection" not in headers for _, headers, _ in answers)


def test_chunked_body_trickling_in_byte_by_byte_keeps_the_connection(server: LoopbackServer) -> None:
    data = with_chunks(BODY, [4, 9], b";x", b"A: b\r\n")
    with server.connect() as sock, sock.makefile("rb") as stream:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
        assert read_response(stream)[2].endswith(BODY)
        sock.sendall(with_length(b"again"))
        assert read_response(stream)[2].endswith(b"again")


def test_chunked_pipelined_behind_a_pending_request(server: LoopbackServer) -> None:
    slow = b"POST " + SLOW_PATH.encode() + with_length(b"1")[len(b"POST /"):]
    answers = exchange(server, slow + with_chunks(BODY, [10]), answers=2)
    assert answers[0][2] == b"slow:1" and answers[1][2].endswith(BODY)


def test_expect_100_continue_with_a_chunked_body(server: LoopbackServer) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(head(b"Transfer-Encoding: chunked\r\n", b"Expect: 100-continue\r\n"))
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
        sock.sendall(chunk_stream(BODY, [8]))
        assert read_response(stream)[2].endswith(BODY)


def test_http10_chunked_request_is_answered_then_closed(server: LoopbackServer) -> None:
    data = head(b"Transfer-Encoding: chunked\r\n", b"Connection: keep-alive\r\n", b"HTTP/1.0")
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(data + chunk_stream(BODY, [2]))
        status, headers, body = read_response(stream)
        assert status == 200 and headers["connection"] == "close" and body.endswith(BODY)
        assert closed_by_server(sock, stream)


def test_identity_transfer_coding_still_uses_content_length(server: LoopbackServer) -> None:
    answer = exchange(server, with_length(b"plain", b"Transfer-Encoding: identity\r\n"))[0]
    assert answer[0] == 200 and answer[2].endswith(b"plain")


# -- refused framing --------------------------------------------------------------------------------


def assert_refused(srv: LoopbackServer, data: bytes, status: int) -> None:
    with srv.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        got, headers, _ = read_response(stream)
        assert got == status and headers["connection"] == "close"
        assert closed_by_server(sock, stream)


def test_oversized_chunked_body_gets_the_content_length_status(server: LoopbackServer) -> None:
    # The Content-Length path's answer for a body over Core's MAX_SIZE...
    oversize = head(b"Content-Length: %d\r\n" % (MAX_REQUEST_SIZE + 1))
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(oversize)
        status = read_response(stream)[0]
    assert status == 413
    chunked = head(b"Transfer-Encoding: chunked\r\n")
    # ...is the chunked path's for one chunk over it, for chunks adding up past it, and for a size
    # too long to fit in any number.
    assert_refused(server, chunked + b"%x\r\n" % (MAX_REQUEST_SIZE + 1), status)
    assert_refused(server, chunked + b"0000000000%x\r\n" % (MAX_REQUEST_SIZE + 1), status)
    assert_refused(server, chunked + b"f" * 40 + b"\r\n", status)
    half = MAX_REQUEST_SIZE // 2
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(chunked + b"%x\r\n" % half + b"a" * half + b"\r\n" + b"%x\r\n" % (half + 1))
        got, headers, _ = read_response(stream)
        assert got == status and headers["connection"] == "close"
        assert closed_by_server(sock, stream)


def test_body_of_exactly_max_size_in_chunks_is_accepted(server: LoopbackServer) -> None:
    quarter = MAX_REQUEST_SIZE // 4
    stream = b"".join(b"%x\r\n" % quarter + bytes([65 + i]) * quarter + b"\r\n" for i in range(4))
    status, _, body = exchange(server, head(b"Transfer-Encoding: chunked\r\n") + stream + b"0\r\n\r\n")[0]
    assert status == 200 and len(body.split(b"\n", 1)[1]) == MAX_REQUEST_SIZE


@pytest.mark.parametrize("stream", [
    b"-5\r\nhello\r\n0\r\n\r\n",  # negative
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"g\r\n0\r\n\r\n",  # not hex
    b"5z\r\nhello\r\n0\r\n\r\n",
    b"\r\nhello\r\n0\r\n\r\n",  # no size at all
    b";ext\r\nhello\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n",  # padded in front
    b"5\r\nhelloX\r\n0\r\n\r\n",  # data longer than its size: no CRLF after it
    b"5\r\nhello0\r\n\r\n",  # the CRLF after the data missing
    b"5\r\nhello\n0\r\n\r\n",  # bare LF after the data
    b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
    b"5\r\r\nhello\r\n0\r\n\r\n",  # stray CR in the size line
    b"5\r\nhello\r\n0\r\nno colon\r\n\r\n",  # malformed trailer
    b"5\r\nhello\r\n0\r\n folded: x\r\n\r\n",
    b"1" * (4096 + 8),  # a size line that never ends
    b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
])
def test_malformed_chunk_framing_is_400_and_closes(server: LoopbackServer, stream: bytes) -> None:
    assert_refused(server, head(b"Transfer-Encoding: chunked\r\n") + stream, 400)


def test_oversized_trailer_is_431_and_closes(server: LoopbackServer) -> None:
    trailer = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_HEADERS_SIZE // 100 + 1))
    assert_refused(server, with_chunks(BODY, [], trailer=trailer), 431)


@pytest.mark.parametrize("headers", [
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\nTransfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: chunked, chunked\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\nContent-Length: 6\r\n",
    b"Content-Length: \xb2\r\n",  # a superscript digit: str.isdigit() says yes, int() says no
    b"Content-Length: -5\r\n",
])
def test_ambiguous_body_length_is_400_and_closes(server: LoopbackServer, headers: bytes) -> None:
    assert_refused(server, head(headers) + b"hello", 400)


@pytest.mark.parametrize("coding", [b"gzip", b"deflate", b"gzip, chunked", b"chunked, gzip", b"chunked;q=1"])
def test_other_transfer_codings_are_501(server: LoopbackServer, coding: bytes) -> None:
    assert_refused(server, head(b"Transfer-Encoding: " + coding + b"\r\n") + b"5\r\nhello\r\n0\r\n\r\n", 501)


def test_content_length_beyond_any_number_is_413(server: LoopbackServer) -> None:
    assert_refused(server, head(b"Content-Length: " + b"9" * 5000 + b"\r\n"), 413)
    answer = exchange(server, with_length(b"", b"Content-Length: " + b"0" * 5000 + b"\r\n"))[0]
    assert answer[0] == 200


# -- -rpcservertimeout ------------------------------------------------------------------------------


def _trickle_until_closed(srv: LoopbackServer, first: bytes, then: bytes) -> float:
    """Send `first`, then `then` one byte a second; seconds from the first byte until the server closes.
    The server must close without answering: nothing is ever read."""
    with srv.connect() as sock:
        start = time.monotonic()
        sock.sendall(first)
        sock.settimeout(1.0)
        for byte in then:
            try:
                if sock.recv(1) == b"":
                    return time.monotonic() - start
                raise AssertionError("answered instead of dropped")
            except ConnectionResetError:
                return time.monotonic() - start
            except TimeoutError:
                pass
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
        raise AssertionError("the whole request went through")


def test_slow_body_is_dropped_after_the_server_timeout(quick_server: LoopbackServer) -> None:
    # Core's evhttp drops a request that is not read in time without answering; so do we.
    data = with_length(b"x" * 30)
    split = data.index(b"\r\n\r\n") + 4
    elapsed = _trickle_until_closed(quick_server, data[:split], data[split:])
    assert 1.5 <= elapsed <= 6.5


def test_slow_headers_are_dropped_after_the_server_timeout(quick_server: LoopbackServer) -> None:
    data = with_length(b"x")
    elapsed = _trickle_until_closed(quick_server, data[:4], data[4:])
    assert 1.5 <= elapsed <= 6.5


def test_slow_chunked_body_is_dropped_after_the_server_timeout(quick_server: LoopbackServer) -> None:
    data = with_chunks(b"y" * 30, [1] * 30)
    split = data.index(b"\r\n\r\n") + 4
    elapsed = _trickle_until_closed(quick_server, data[:split], data[split:])
    assert 1.5 <= elapsed <= 6.5


def test_request_started_late_in_the_idle_period_gets_the_whole_timeout(quick_server: LoopbackServer) -> None:
    data = with_chunks(BODY, [10, 10, 10])
    with quick_server.connect() as sock, sock.makefile("rb") as stream:
        # Idle for 1.5 s, then a request that takes 1 s to arrive: it ends past the idle deadline (2 s
        # after the connection opened) but well within its own (2 s after its first byte).
        time.sleep(1.5)
        for part in (data[:20], data[20:60]):
            sock.sendall(part)
            time.sleep(0.5)
        sock.sendall(data[60:])
        assert read_response(stream)[2].endswith(BODY)


def test_slow_handler_does_not_use_up_the_idle_time(quick_server: LoopbackServer) -> None:
    slow = b"POST " + SLOW_PATH.encode() + with_length(b"z")[len(b"POST /"):]
    with quick_server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(slow)
        assert read_response(stream)[2] == b"slow:z"  # answered after 2.5 s > the timeout
        time.sleep(0.7)
        sock.sendall(with_length(b"next"))
        assert read_response(stream)[2].endswith(b"next")


def test_idle_connection_is_closed_after_the_server_timeout(quick_server: LoopbackServer) -> None:
    with quick_server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(with_length(b"once"))
        assert read_response(stream)[0] == 200
        start = time.monotonic()
        assert closed_by_server(sock, stream, wait=10)
        assert 1.5 <= time.monotonic() - start <= 6.5


# -- the decoder, fuzzed ------------------------------------------------------------------------------


class _Transport(asyncio.Transport):
    """Collects what the protocol writes, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default


def feed_protocol(segments: list[bytes]) -> tuple[list[bytes], _Transport]:
    """Drive one HTTPProtocol with `segments` as they would arrive; the bodies its handler saw."""
    bodies: list[bytes] = []

    def record(request: Request) -> Reply:
        bodies.append(request.body)
        return Reply(200, b"ok")

    async def drive() -> _Transport:
        transport = _Transport()
        protocol = HTTPProtocol(record, 30, lambda _: None)
        protocol.connection_made(transport)
        for segment in segments:
            if transport.closed:
                break
            protocol.data_received(segment)
        protocol.connection_lost(None)
        return transport

    return bodies, asyncio.run(drive())


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-!#$%&'*+.^_`|~", min_size=1, max_size=8)
extensions = st.lists(st.tuples(token, st.none() | token), max_size=3).map(
    lambda pairs: "".join(f";{n}" + (f"={v}" if v is not None else "") for n, v in pairs).encode())
trailers = st.lists(st.tuples(token, token), max_size=3).map(
    lambda pairs: "".join(f"{n}: {v}\r\n" for n, v in pairs).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=4),
       sizes=st.lists(st.integers(1, 64), max_size=12), ext=extensions, trailer=trailers,
       zeros=st.integers(0, 3), upper=st.booleans(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_fuzzed_chunked_framing_delivers_every_body(bodies: list[bytes], sizes: list[int], ext: bytes,
                                                     trailer: bytes, zeros: int, upper: bool,
                                                     cuts: list[int]) -> None:
    """Any valid chunking of any bodies, cut into any TCP segments, pipelined with Content-Length
    requests, reaches the handler intact and leaves the connection open."""
    stream = bytearray()
    for i, body in enumerate(bodies):
        if i % 2:
            stream += with_length(body)
            continue
        # Leading zeros and upper-case hex digits are valid chunk sizes too.
        size_format = b"0" * zeros + (b"%X" if upper else b"%x")
        stream += head(b"Transfer-Encoding: chunked\r\n")
        stream += chunk_stream(body, sizes, ext, trailer, size_format)
    seen, transport = feed_protocol(_cut(bytes(stream), cuts))
    assert seen == bodies
    assert not transport.closed
    assert transport.written.count(b"HTTP/1.1 200 OK\r\n") == len(bodies)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=100), sizes=st.lists(st.integers(1, 40), max_size=6),
       ext=extensions, trailer=trailers, pos=st.integers(0, 10_000),
       junk=st.binary(min_size=1, max_size=6), delete=st.integers(0, 4), cuts=st.lists(st.integers(0, 10_000),
                                                                                    max_size=6))
def test_fuzzed_broken_chunked_framing_never_breaks_the_server(body: bytes, sizes: list[int], ext: bytes,
                                                               trailer: bytes, pos: int, junk: bytes,
                                                               delete: int, cuts: list[int]) -> None:
    """Mutated chunk framing either still decodes to some body, or is refused with a status and a
    close, or waits for more; the protocol itself never raises."""
    framed = bytearray(chunk_stream(body, sizes, ext, trailer))
    at = pos % (len(framed) + 1)
    framed[at:at + delete] = junk
    data = head(b"Transfer-Encoding: chunked\r\n") + bytes(framed) + with_length(b"after")
    seen, transport = feed_protocol(_cut(data, cuts))
    if transport.closed:
        assert transport.written.endswith(b"Connection: close\r\nContent-Length: 0\r\n\r\n")
        status = int(transport.written.rsplit(b"HTTP/1.1 ", 1)[1][:3])
        assert status in (400, 413, 431)
    for got in seen:
        assert len(got) <= MAX_REQUEST_SIZE


@given(line=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_fuzzed_chunk_size_lines_parse_or_refuse(line: bytes) -> None:
    decoder = ChunkedBody()
    buf = bytearray(line.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
    try:
        decoder.feed(buf)
    except FramingError as exc:
        assert exc.status in (400, 413)
    else:
        size = line.split(b";", 1)[0].strip(b" \t")
        assert size and all(c in b"0123456789abcdefABCDEF" for c in size)
