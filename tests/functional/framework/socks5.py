"""Socks5Server: a tiny threaded SOCKS5 proxy on loopback for tests (Core: test_framework/socks5.py).

Owns a listening socket that speaks the server side of RFC 1928 (no-auth, or RFC 1929 username and
password), records every CONNECT request it was given, and relays bytes both ways to the destination.
It must never reach beyond loopback: tests point it at aipgd processes on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass


@dataclass
class Socks5Command:
    host: str
    port: int
    username: str | None
    password: str | None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


class Socks5Server:
    def __init__(self, require_auth: bool = False) -> None:
        self.require_auth = require_auth
        self.commands: list[Socks5Command] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            version, n_methods = _recv_exact(client, 2)
            methods = _recv_exact(client, n_methods)
            assert version == 5
            username = password = None
            if 2 in methods:
                client.sendall(b"\x05\x02")
                auth_version, ulen = _recv_exact(client, 2)
                username = _recv_exact(client, ulen).decode()
                (plen,) = _recv_exact(client, 1)
                password = _recv_exact(client, plen).decode()
                assert auth_version == 1
                client.sendall(b"\x01\x00")
            elif self.require_auth:
                client.sendall(b"\x05\xff")
                client.close()
                return
            else:
                client.sendall(b"\x05\x00")
            version, command, _, atyp = _recv_exact(client, 4)
            assert version == 5 and command == 1
            if atyp == 3:
                (length,) = _recv_exact(client, 1)
                host = _recv_exact(client, length).decode()
            elif atyp == 1:
                host = socket.inet_ntoa(_recv_exact(client, 4))
            else:
                host = socket.inet_ntop(socket.AF_INET6, _recv_exact(client, 16))
            (port,) = struct.unpack(">H", _recv_exact(client, 2))
            self.commands.append(Socks5Command(host, port, username, password))
            try:
                upstream = socket.create_connection((host, port), timeout=5)
            except OSError:
                client.sendall(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
                client.close()
                return
            upstream.settimeout(None)
            self._sockets.append(upstream)
            client.sendall(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
            self._pipe(client, upstream)
        except (OSError, ConnectionError, AssertionError):
            client.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
