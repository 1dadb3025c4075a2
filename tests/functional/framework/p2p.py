"""RawPeer: a hand-driven P2P connection to a running aipgd (Core: test_framework/p2p.py P2PInterface).

Owns a blocking socket that can send well-formed or deliberately broken frames and read what the node
answers. It must never share state with the node: it speaks only the wire protocol.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from aipgd.core.params import get_params
from aipgd.net import messages as msg
from aipgd.net.netaddress import NetAddr, Service
from aipgd.net.protocol import NODE_NETWORK, NODE_WITNESS, PROTOCOL_VERSION, FrameDecoder, frame

REGTEST = get_params("regtest")
MAGIC = REGTEST.message_start
_CTX = msg.DecodeContext(REGTEST.kawpow_activation_time)


class RawPeer:
    def __init__(self, port: int, source_ip: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source_ip, 0))
        self.sock.connect(("127.0.0.1", port))
        self.decoder = FrameDecoder(MAGIC)
        self.received: list[str] = []
        self.messages: list[msg.Message] = []  # everything received, decoded

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: msg.Message) -> None:
        self.send_raw(frame(MAGIC, message.command, message.serialize()))

    def send_version(self) -> None:
        here = msg.NetworkAddress(0, Service(NetAddr.parse("127.0.0.1"), 0))
        self.send(msg.Version(PROTOCOL_VERSION, NODE_NETWORK | NODE_WITNESS, int(time.time()), here, here,
                              12345, "/rawpeer/", 0, True))

    def wait_for(self, command: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while command not in self.received:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {command} from the node (got {self.received})")
            try:
                self._receive(max(0.0, deadline - time.monotonic()))
            except AssertionError:
                raise AssertionError(f"connection closed while waiting for {command}") from None

    def wait_for_message(self, accept: Callable[[msg.Message], bool], timeout: float = 10.0) -> msg.Message:
        """The first message received (so far, or within `timeout`) for which `accept` is true."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.messages[seen:]:
                if accept(m):
                    return m
            seen = len(self.messages)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching message from the node (got {self.received})")
            # The socket's own timeout must not end the wait early (a quiet spell between two
            # trickled announcements can outlast it): wait at most what is left of `timeout`.
            self._receive(remaining)

    def _receive(self, wait: float | None = None) -> None:
        """Reads what the node sent; with `wait`, returns having read nothing after that many seconds
        (instead of the socket's timeout error)."""
        if wait is not None:
            previous = self.sock.gettimeout()
            self.sock.settimeout(max(wait, 0.001))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            finally:
                self.sock.settimeout(previous)
        else:
            data = self.sock.recv(65536)
        if not data:
            raise AssertionError("connection closed by the node")
        for command, payload in self.decoder.feed(data):
            self.received.append(command)
            self.messages.append(msg.decode_message(command, payload, _CTX))

    def handshake(self) -> None:
        self.send_version()
        self.wait_for("version")
        self.wait_for("verack")
        self.send(msg.Verack())

    def closed_by_node(self, timeout: float = 10.0) -> bool:
        """True once the node closes the connection (reading and discarding anything before that)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                continue
            except ConnectionResetError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
