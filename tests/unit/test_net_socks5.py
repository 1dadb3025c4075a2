"""The SOCKS5 client (RFC 1928 / RFC 1929) against scripted proxy answers on an in-memory stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aipgd.net.socks5 import ProxyConfig, Socks5Error, next_random_credentials, socks5_connect


class _Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


def _run(answers: bytes, host: str = "127.0.0.1", port: int = 8865,
         credentials: tuple[str, str] | None = None) -> bytes:
    async def go() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(answers)
        reader.feed_eof()
        writer = _Writer()
        await socks5_connect(reader, writer, host, port, credentials)  # type: ignore[arg-type]
        return writer.data
    return asyncio.run(go())


CONNECTED_V4 = b"\x05\x00\x00\x01" + bytes(6)


def test_no_auth_connect_by_domain_name() -> None:
    sent = _run(b"\x05\x00" + CONNECTED_V4)
    assert sent == b"\x05\x01\x00" + b"\x05\x01\x00\x03\x09127.0.0.1\x22\xa1"


def test_username_password_auth_then_connect() -> None:
    sent = _run(b"\x05\x02" + b"\x01\x00" + b"\x05\x00\x00\x03\x04abcd\x00\x01", credentials=("7", "7"))
    assert sent.startswith(b"\x05\x02\x00\x02" + b"\x01\x017\x017" + b"\x05\x01\x00\x03")


@pytest.mark.parametrize(("answers", "credentials", "error"), [
    (b"\x04\x00", None, "proxy failed to initialize"),
    (b"\x05\xff", None, "wrong authentication method ff"),
    (b"\x05\x02\x01\x01", ("u", "p"), "authentication unsuccessful"),
    (b"\x05\x00\x05\x05\x00\x01" + bytes(6), None, "connection refused"),
    (b"\x05\x00\x05\x00\x00\x07", None, "malformed proxy response"),
    (b"\x05\x00\x05\x00", None, "connection closed by the proxy"),
])
def test_refusals_and_broken_answers_raise(answers: bytes, credentials: Any, error: str) -> None:
    with pytest.raises(Socks5Error, match=error):
        _run(answers, credentials=credentials)


def test_config_and_random_credentials() -> None:
    assert str(ProxyConfig.parse("127.0.0.1", True)) == "127.0.0.1:9050"
    assert ProxyConfig.parse("[::1]:1080").service.port == 1080
    first, second = next_random_credentials(), next_random_credentials()
    assert first != second and first[0] == first[1]
    with pytest.raises(Socks5Error, match="hostname too long"):
        _run(b"", host="x" * 256)
