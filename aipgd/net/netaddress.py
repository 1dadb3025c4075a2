"""Network addresses as the P2P protocol carries them: 16-byte IPs, services (IP + port), subnets.

Owns the IPv4-mapped IPv6 representation (Core: CNetAddr), routability classes (RFC 1918, 3927,
4193, ...), the /16 and /32 groups AddrMan buckets by (Core: CNetAddr::GetGroup) and CIDR subnets
for -whitelist and bans (Core: CSubNet). It must never do I/O or DNS: names are resolved elsewhere.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aipgd.core.serialize import ByteReader

# Core: netaddress.h enum Network.
NET_UNROUTABLE = 0
NET_IPV4 = 1
NET_IPV6 = 2
NET_TOR = 3
NET_INTERNAL = 4

_IPV4_PREFIX = bytes(10) + b"\xff\xff"
_ONIONCAT_PREFIX = bytes((0xFD, 0x87, 0xD8, 0x7E, 0xEB, 0x43))
_INTERNAL_PREFIX = bytes((0xFD, 0x6B, 0x88, 0xC0, 0x87, 0x24))
NETWORK_NAMES = {"ipv4": NET_IPV4, "ipv6": NET_IPV6, "onion": NET_TOR}


class AddressError(ValueError):
    """An IP, host:port or subnet string that does not parse."""


@dataclass(frozen=True, slots=True, order=True)
class NetAddr:
    """A 16-byte IP; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), as on the wire."""

    ip: bytes

    @classmethod
    def parse(cls, text: str) -> NetAddr:
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            raise AddressError(f"invalid IP address {text!r}") from None
        if isinstance(addr, ipaddress.IPv4Address):
            return cls(_IPV4_PREFIX + addr.packed)
        return cls(addr.packed)

    @classmethod
    def read(cls, r: ByteReader) -> NetAddr:
        return cls(r.read(16, "network address"))

    def serialize(self) -> bytes:
        return self.ip

    def byte(self, n: int) -> int:
        """Core: GetByte(n), counted from the end."""
        return self.ip[15 - n]

    def is_ipv4(self) -> bool:
        return self.ip[:12] == _IPV4_PREFIX

    def is_ipv6(self) -> bool:
        return not self.is_ipv4() and not self.is_tor() and not self.is_internal()

    def is_tor(self) -> bool:
        return self.ip[:6] == _ONIONCAT_PREFIX

    def is_internal(self) -> bool:
        return self.ip[:6] == _INTERNAL_PREFIX

    def _v4(self) -> bytes:
        return self.ip[12:]

    def is_local(self) -> bool:
        if self.is_ipv4():
            return self._v4()[0] in (0, 127)
        return self.ip == bytes(15) + b"\x01"

    def is_valid(self) -> bool:
        # Core: CNetAddr::IsValid rejects unspecified, documentation and INADDR_NONE addresses.
        if self.ip[:3] == b"\xfd\x87\xd8" and not self.is_tor():
            return False
        if self.ip == bytes(16):
            return False
        if self.ip[:4] == b"\x20\x01\x0d\xb8":  # RFC 3849 documentation
            return False
        if self.is_ipv4():
            v4 = self._v4()
            if v4 in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"):
                return False
        return True

    def _is_rfc_unroutable(self) -> bool:
        if self.is_ipv4():
            a, b, c, _ = self._v4()
            return (a == 10 or (a == 192 and b == 168) or (a == 172 and 16 <= b <= 31)  # RFC 1918
                    or (a == 198 and b in (18, 19))  # RFC 2544
                    or (a == 169 and b == 254)  # RFC 3927
                    or (a == 100 and 64 <= b <= 127)  # RFC 6598
                    or (a, b, c) in ((192, 0, 2), (198, 51, 100), (203, 0, 113)))  # RFC 5737
        ip = self.ip
        return ((ip[0] & 0xFE) == 0xFC  # RFC 4193
                or ip[:2] == b"\xfe\x80"  # RFC 4862 link local
                or (ip[:3] == b"\x20\x01\x00" and (ip[3] & 0xF0) == 0x10))  # RFC 4843 ORCHID

    def is_routable(self) -> bool:
        return self.is_valid() and not self._is_rfc_unroutable() and not self.is_local() \
            and not self.is_internal()

    def network(self) -> int:
        """Core: GetNetwork."""
        if self.is_internal():
            return NET_INTERNAL
        if not self.is_routable():
            return NET_UNROUTABLE
        if self.is_ipv4():
            return NET_IPV4
        if self.is_tor():
            return NET_TOR
        return NET_IPV6

    def reachable_network(self) -> int:
        """The network -onlynet judges by: loopback and private IPv4 still count as IPv4."""
        if self.is_ipv4():
            return NET_IPV4
        if self.is_tor():
            return NET_TOR
        return NET_IPV6

    def group(self) -> bytes:
        """Core: CNetAddr::GetGroup, the key AddrMan buckets by (/16 for IPv4, /32 for IPv6)."""
        n_class = NET_IPV6
        start = 0
        bits = 16
        if self.is_local():
            n_class, bits = 255, 0
        if self.is_internal():
            n_class, start, bits = NET_INTERNAL, 6, (16 - 6) * 8
        elif not self.is_routable():
            n_class, bits = NET_UNROUTABLE, 0
        elif self.is_ipv4() or self.ip[:12] == bytes(8) + b"\xff\xff\x00\x00" \
                or self.ip[:12] == b"\x00\x64\xff\x9b" + bytes(8):  # RFC 6145 / RFC 6052
            n_class, start = NET_IPV4, 12
        elif self.ip[:2] == b"\x20\x02":  # RFC 3964 6to4
            n_class, start = NET_IPV4, 2
        elif self.ip[:4] == b"\x20\x01\x00\x00":  # RFC 4380 Teredo
            return bytes((NET_IPV4, self.ip[12] ^ 0xFF, self.ip[13] ^ 0xFF))
        elif self.is_tor():
            n_class, start, bits = NET_TOR, 6, 4
        elif self.ip[:4] == b"\x20\x01\x04\x70":  # he.net: /36 groups
            bits = 36
        else:
            bits = 32
        out = bytearray((n_class,))
        while bits >= 8:
            out.append(self.ip[start])
            start += 1
            bits -= 8
        if bits > 0:
            out.append(self.ip[start] | ((1 << (8 - bits)) - 1))
        return bytes(out)

    def __str__(self) -> str:
        if self.is_ipv4():
            return str(ipaddress.IPv4Address(self._v4()))
        return str(ipaddress.IPv6Address(self.ip))


@dataclass(frozen=True, slots=True, order=True)
class Service:
    """An IP and a port (Core: CService); the port is big-endian on the wire."""

    addr: NetAddr
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int) -> Service:
        """`1.2.3.4`, `1.2.3.4:8865`, `::1`, `[::1]:8865`."""
        host, port = split_host_port(text, default_port)
        return cls(NetAddr.parse(host), port)

    @classmethod
    def read(cls, r: ByteReader) -> Service:
        addr = NetAddr.read(r)
        port = int.from_bytes(r.read(2, "port"), "big")
        return cls(addr, port)

    def serialize(self) -> bytes:
        return self.addr.ip + self.port.to_bytes(2, "big")

    def key(self) -> bytes:
        """Core: CService::GetKey, what AddrMan hashes to place an address."""
        return self.serialize()

    @property
    def host(self) -> str:
        return str(self.addr)

    def __str__(self) -> str:
        if self.addr.is_ipv4():
            return f"{self.addr}:{self.port}"
        return f"[{self.addr}]:{self.port}"


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """Core: SplitHostPort; an IPv6 literal needs brackets to carry a port."""
    text = text.strip()
    port_text = ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise AddressError(f"unbalanced brackets in {text!r}")
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise AddressError(f"invalid address {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 0xFFFF:
            raise AddressError(f"invalid port in {text!r}")
        port = int(port_text)
    if not host:
        raise AddressError(f"empty host in {text!r}")
    return host, port


@dataclass(frozen=True, slots=True, order=True)
class SubNet:
    """A network and mask (Core: CSubNet), e.g. 1.2.3.0/24 or a single address."""

    network: NetAddr
    mask: bytes

    @classmethod
    def single(cls, addr: NetAddr) -> SubNet:
        return cls(addr, b"\xff" * 16)

    @classmethod
    def parse(cls, text: str) -> SubNet:
        """`1.2.3.4`, `1.2.3.0/24`, `1.2.3.0/255.255.255.0`, `2001:db8::/32`."""
        base, _, suffix = text.strip().partition("/")
        addr = NetAddr.parse(base)
        if not suffix:
            return cls.single(addr)
        offset = 12 if addr.is_ipv4() else 0
        if suffix.isdigit():
            bits = int(suffix) + offset * 8
            if bits > 128 or int(suffix) > (32 if addr.is_ipv4() else 128):
                raise AddressError(f"invalid netmask in {text!r}")
            mask_int = ((1 << bits) - 1) << (128 - bits) if bits else 0
            mask = mask_int.to_bytes(16, "big")
        else:
            mask_addr = NetAddr.parse(suffix)
            if mask_addr.is_ipv4() != addr.is_ipv4():
                raise AddressError(f"invalid netmask in {text!r}")
            mask = b"\xff" * offset + mask_addr.ip[offset:]
        network = bytes(a & m for a, m in zip(addr.ip, mask, strict=True))
        return cls(NetAddr(network), mask)

    def matches(self, addr: NetAddr) -> bool:
        return all((a & m) == n for a, m, n in zip(addr.ip, self.mask, self.network.ip, strict=True))

    @property
    def prefix_length(self) -> int:
        bits = bin(int.from_bytes(self.mask, "big")).count("1")
        return bits - 96 if self.network.is_ipv4() else bits

    def __str__(self) -> str:
        return f"{self.network}/{self.prefix_length}"
