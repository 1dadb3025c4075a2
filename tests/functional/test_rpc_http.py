"""HTTP framing of a real aipgd's RPC port, on raw sockets: chunked request bodies (as libevent's evhttp
accepts them), their limits and errors, pipelining after them, and -rpcservertimeout on a slow client."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

import pytest
from framework import REGTEST_GENESIS_HASH, TestNode

from rpc.http import MAX_REQUEST_SIZE

SERVER_TIMEOUT = 2


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    node = TestNode(tmp_path_factory.mktemp("rpchttp") / "node0",
                    extra_args=[f"-rpcservertimeout={SERVER_TIMEOUT}"])
    node.start()
    yield node
    node.cleanup()


@pytest.fixture(scope="module")
def auth(node: TestNode) -> bytes:
    return node.rpc().auth.encode()


def connect(node: TestNode) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.rpc_port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(auth: bytes, framing: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth
            + b"\r\nContent-Type: application/json\r\n" + framing + b"\r\n")


def with_length(auth: bytes, body: bytes) -> bytes:
    return head(auth, b"Content-Length: %d\r\n" % len(body)) + body


def with_chunks(auth: bytes, body: bytes, sizes: list[int], ext: bytes = b"", trailer: bytes = b"") -> bytes:
    out, pos = bytearray(head(auth, b"Transfer-Encoding: chunked\r\n")), 0
    for size in [*sizes, len(body)]:
        piece = body[pos:pos + size]
        pos += len(piece)
        if piece:
            out += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
    return bytes(out + b"0" + ext + b"\r\n" + trailer + b"\r\n")


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("closed before an answer")
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(b" ", 2)[1]), headers, stream.read(int(headers.get("content-length", "0")))


def exchange(node: TestNode, data: bytes, answers: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    with connect(node) as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        return [read_response(stream) for _ in range(answers)]


def assert_refused_and_closed(node: TestNode, data: bytes, status: int) -> None:
    with connect(node) as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        got, headers, _ = read_response(stream)
        assert (got, headers["connection"]) == (status, "close")
        assert stream.read(1) == b""


CALLS = [
    {"id": 1, "method": "getblockcount"},
    {"id": "h", "method": "getblockhash", "params": [0]},
    [{"id": 1, "method": "getblockhash", "params": [0]}, {"id": 2, "method": "nosuch"}],
    {"id": 3, "method": "getblockhash", "params": [99]},  # an error answer (500) is framed the same way
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("sizes", "ext", "trailer"), [
    ([], b"", b""),
    ([5, 9, 1, 30], b";ext=1", b""),
    ([1] * 400, b" ; a ; b=\"c\"", b"X-Checksum: 1\r\nX-More: two\r\n"),
])
def test_chunked_request_answers_like_content_length(node: TestNode, auth: bytes, call: object,
                                                     sizes: list[int], ext: bytes, trailer: bytes) -> None:
    body = json.dumps(call).encode()
    expected = exchange(node, with_length(auth, body))[0]
    assert exchange(node, with_chunks(auth, body, sizes, ext, trailer))[0] == expected
    if call == CALLS[1]:
        assert json.loads(expected[2]) == {"result": REGTEST_GENESIS_HASH, "error": None, "id": "h"}


def test_chunked_request_then_pipelined_request(node: TestNode, auth: bytes) -> None:
    first = json.dumps({"id": "a", "method": "getblockhash", "params": [0]}).encode()
    second = json.dumps({"id": "b", "method": "getblockcount"}).encode()
    answers = exchange(node, with_chunks(auth, first, [7, 7]) + with_length(auth, second)
                       + with_chunks(auth, second, [3]), answers=3)
    assert [json.loads(body)["id"] for _, _, body in answers] == ["a", "b", "b"]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert all(headers.get("connection") != "close" for _, headers, _ in answers)


def test_oversized_chunked_body_answers_like_oversized_content_length(node: TestNode, auth: bytes) -> None:
    oversize = MAX_REQUEST_SIZE + 1
    with connect(node) as sock, sock.makefile("rb") as stream:
        sock.sendall(head(auth, b"Content-Length: %d\r\n" % oversize))
        status = read_response(stream)[0]
    assert status == 413
    chunked = head(auth, b"Transfer-Encoding: chunked\r\n")
    assert_refused_and_closed(node, chunked + b"%x\r\n" % oversize, status)


@pytest.mark.parametrize("stream", [
    b"-4\r\n{}{}\r\n0\r\n\r\n",
    b"zz\r\n{}\r\n0\r\n\r\n",
    b"0x2\r\n{}\r\n0\r\n\r\n",
    b"2\r\n{}0\r\n\r\n",  # no CRLF after the data
    b"2\n{}\r\n0\r\n\r\n",  # bare LF
])
def test_malformed_chunks_are_400_and_close(node: TestNode, auth: bytes, stream: bytes) -> None:
    assert_refused_and_closed(node, head(auth, b"Transfer-Encoding: chunked\r\n") + stream, 400)


def test_content_length_with_chunked_is_400_and_gzip_501(node: TestNode, auth: bytes) -> None:
    assert_refused_and_closed(node, head(auth, b"Content-Length: 7\r\nTransfer-Encoding: chunked\r\n")
                              + b"2\r\n{}\r\n0\r\n\r\n", 400)
    assert_refused_and_closed(node, head(auth, b"Transfer-Encoding: gzip\r\n") + b"{}", 501)


def test_slow_client_is_dropped_after_rpcservertimeout(node: TestNode, auth: bytes) -> None:
    body = json.dumps({"id": 1, "method": "getblockcount"}).encode()
    data = with_length(auth, body)
    split = data.index(b"\r\n\r\n") + 4
    with connect(node) as sock:
        start = time.monotonic()
        sock.sendall(data[:split])
        sock.settimeout(1.0)
        elapsed = None
        for byte in data[split:]:  # one byte a second: the request would take ~30 s to arrive
            try:
                assert sock.recv(1) == b"", "answered instead of dropped"
                elapsed = time.monotonic() - start
                break
            except ConnectionResetError:
                elapsed = time.monotonic() - start
                break
            except TimeoutError:
                pass
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                elapsed = time.monotonic() - start
                break
    assert elapsed is not None, "the slow request was never cut off"
    assert 1.5 <= elapsed <= 6.5
    assert node.rpc().getblockcount() == 0
