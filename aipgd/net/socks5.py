"""SOCKS5 client for outbound connections through -proxy (RFC 1928, with RFC 1929 username/password).

Owns the client side of the handshake, done on an already open stream: method negotiation, optional
credentials (Core: -proxyrandomize gives each connection fresh ones, so Tor isolates circuits), and
the CONNECT request by domain name, as Core's Socks5() does. It must never open sockets itself nor
decide where to connect (the ConnectionManager does).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass

from aipgd.net.netaddress import Service

SOCKS_VERSION = 0x05
METHOD_NO_AUTH = 0x00
METHOD_USER_PASS = 0x02
METHOD_NONE_ACCEPTABLE = 0xFF
USER_PASS_VERSION = 0x01
CMD_CONNECT = 0x01
ATYP_IPV4 = 0x01
ATYP_DOMAINNAME = 0x03
ATYP_IPV6 = 0x04
# Core: netbase.cpp, the SOCKS5 reply codes and their meaning.
_REPLY_ERRORS = {
    0x01: "general failure",
    0x02: "connection not allowed",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "protocol error",
    0x08: "address type not supported",
}
_MAX_FIELD = 255
DEFAULT_PROXY_PORT = 9050  # Core: Tor's SOCKS port, when -proxy names none
_random_credentials = itertools.count()


class Socks5Error(Exception):
    """The proxy refused or broke the handshake; the connection must be dropped."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    service: Service
    randomize_credentials: bool = True

    @classmethod
    def parse(cls, text: str, randomize_credentials: bool = True) -> ProxyConfig:
        return cls(Service.parse(text, DEFAULT_PROXY_PORT), randomize_credentials)

    def __str__(self) -> str:
        return str(self.service)


def next_random_credentials() -> tuple[str, str]:
    """Core: a per-process counter for both the user name and the password (-proxyrandomize)."""
    n = str(next(_random_credentials))
    return n, n


async def _read_exact(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError:
        raise Socks5Error("connection closed by the proxy") from None


async def socks5_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int,
                         credentials: tuple[str, str] | None = None) -> None:
    """Ask the proxy on (reader, writer) to connect to host:port; raises Socks5Error when refused."""
    destination = host.encode()
    if not destination or len(destination) > _MAX_FIELD:
        raise Socks5Error("hostname too long")
    if credentials is None:
        writer.write(bytes((SOCKS_VERSION, 1, METHOD_NO_AUTH)))
    else:
        writer.write(bytes((SOCKS_VERSION, 2, METHOD_NO_AUTH, METHOD_USER_PASS)))
    await writer.drain()
    version, method = await _read_exact(reader, 2)
    if version != SOCKS_VERSION:
        raise Socks5Error("proxy failed to initialize")
    if method == METHOD_USER_PASS and credentials is not None:
        user, password = (c.encode() for c in credentials)
        if len(user) > _MAX_FIELD or len(password) > _MAX_FIELD:
            raise Socks5Error("proxy username or password too long")
        writer.write(bytes((USER_PASS_VERSION, len(user))) + user + bytes((len(password),)) + password)
        await writer.drain()
        auth_version, status = await _read_exact(reader, 2)
        if auth_version != USER_PASS_VERSION or status != 0x00:
            raise Socks5Error("proxy authentication unsuccessful")
    elif method != METHOD_NO_AUTH:
        raise Socks5Error(f"proxy requested wrong authentication method {method:02x}")
    writer.write(bytes((SOCKS_VERSION, CMD_CONNECT, 0x00, ATYP_DOMAINNAME, len(destination)))
                 + destination + struct.pack(">H", port))
    await writer.drain()
    version, reply, reserved = await _read_exact(reader, 3)
    if version != SOCKS_VERSION:
        raise Socks5Error("proxy failed to accept request")
    if reply != 0x00:
        raise Socks5Error(f"connect to {host}:{port} failed: "
                          f"{_REPLY_ERRORS.get(reply, f'unknown error {reply:#04x}')}")
    if reserved != 0x00:
        raise Socks5Error("malformed proxy response")
    (atyp,) = await _read_exact(reader, 1)
    if atyp == ATYP_IPV4:
        await _read_exact(reader, 4)
    elif atyp == ATYP_IPV6:
        await _read_exact(reader, 16)
    elif atyp == ATYP_DOMAINNAME:
        (length,) = await _read_exact(reader, 1)
        await _read_exact(reader, length)
    else:
        raise Socks5Error("malformed proxy response")
    await _read_exact(reader, 2)  # the bound port
