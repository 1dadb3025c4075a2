"""Bitcoin-style streaming (de)serialization with hard limits.

Owns `ByteReader` (a bounded cursor over bytes that raises `DeserializationError` naming
what it was reading and where) and the writer helpers for compact sizes and vectors.
It must never allocate from an untrusted length before checking that the bytes exist.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Core: serialize.h MAX_SIZE. No single serialized object (or compact size) may exceed it.
MAX_SIZE = 0x02000000
# Core: net.h MAX_PROTOCOL_MESSAGE_LENGTH (4 MB); blocks are bounded separately by params.
MAX_PROTOCOL_MESSAGE_LENGTH = 4 * 1000 * 1000

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class DeserializationError(ValueError):
    """Raised for any malformed, truncated or oversized serialized input."""

    def __init__(self, what: str, offset: int, reason: str) -> None:
        super().__init__(f"{what} at offset {offset}: {reason}")
        self.what = what
        self.offset = offset
        self.reason = reason


class ByteReader:
    """A read cursor over immutable bytes.

    Every read checks the remaining length first, so truncated input raises
    `DeserializationError` instead of returning short data.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"ByteReader needs bytes, not {type(data).__name__}")
        self._data = bytes(data)
        self._pos = start
        self._end = len(self._data) if end is None else end

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def error(self, what: str, reason: str) -> DeserializationError:
        return DeserializationError(what, self._pos, reason)

    def read(self, n: int, what: str = "bytes") -> bytes:
        if n < 0:
            raise self.error(what, f"negative length {n}")
        if n > self.remaining:
            raise self.error(what, f"truncated: need {n} bytes, {self.remaining} left")
        start = self._pos
        self._pos += n
        return self._data[start:self._pos]

    def slice_since(self, start: int) -> bytes:
        """The raw bytes consumed since `start` (for hashing what was just parsed)."""
        return self._data[start:self._pos]

    def peek_byte(self, what: str = "byte") -> int:
        if self.remaining < 1:
            raise self.error(what, "truncated: need 1 byte, 0 left")
        return self._data[self._pos]

    def u8(self, what: str = "uint8") -> int:
        return self.read(1, what)[0]

    def u16(self, what: str = "uint16") -> int:
        return int(_U16.unpack(self.read(2, what))[0])

    def u32(self, what: str = "uint32") -> int:
        return int(_U32.unpack(self.read(4, what))[0])

    def i32(self, what: str = "int32") -> int:
        return int(_I32.unpack(self.read(4, what))[0])

    def u64(self, what: str = "uint64") -> int:
        return int(_U64.unpack(self.read(8, what))[0])

    def i64(self, what: str = "int64") -> int:
        return int(_I64.unpack(self.read(8, what))[0])

    def hash256(self, what: str = "uint256") -> bytes:
        return self.read(32, what)

    def compact_size(self, what: str = "compact size", limit: int = MAX_SIZE) -> int:
        """Core: ReadCompactSize. Rejects non-canonical encodings and values above `limit`."""
        start = self._pos
        first = self.u8(what)
        if first < 0xFD:
            value = first
        elif first == 0xFD:
            value = self.u16(what)
            if value < 0xFD:
                raise DeserializationError(what, start, "non-canonical compact size")
        elif first == 0xFE:
            value = self.u32(what)
            if value < 0x10000:
                raise DeserializationError(what, start, "non-canonical compact size")
        else:
            value = self.u64(what)
            if value < 0x100000000:
                raise DeserializationError(what, start, "non-canonical compact size")
        if value > limit:
            raise DeserializationError(what, start, f"size {value} exceeds limit {limit}")
        return value

    def varint(self, what: str = "varint", max_value: int = (1 << 64) - 1) -> int:
        """Core: ReadVarInt, the MSB base-128 encoding with the "+1 per continuation" trick.

        Values above `max_value` (the C++ integer type's range) are rejected, as Core's
        "ReadVarInt(): size too large" does, so a forged run of 0x80 bytes cannot grow forever.
        """
        start = self._pos
        n = 0
        while True:
            byte = self.u8(what)
            if n > (max_value >> 7):
                raise DeserializationError(what, start, "varint too large")
            n = (n << 7) | (byte & 0x7F)
            if byte & 0x80:
                if n == max_value:
                    raise DeserializationError(what, start, "varint too large")
                n += 1
            else:
                return n

    def var_bytes(self, what: str = "byte vector", limit: int = MAX_SIZE) -> bytes:
        n = self.compact_size(what, limit)
        return self.read(n, what)

    def var_str(self, what: str = "string", limit: int = MAX_SIZE) -> str:
        raw = self.var_bytes(what, limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(what, f"invalid UTF-8: {exc.reason}") from None

    def vector(self, read_item: Callable[[ByteReader], T], what: str, min_item_size: int = 1,
               limit: int = MAX_SIZE) -> list[T]:
        """A compact-size count followed by items.

        The count is bounded by the bytes left (each item takes at least `min_item_size`),
        so a forged huge count cannot make us allocate before the input runs out.
        """
        start = self._pos
        count = self.compact_size(what + " count", limit)
        if min_item_size > 0 and count > self.remaining // min_item_size:
            raise DeserializationError(
                what, start, f"count {count} exceeds what the {self.remaining} remaining bytes can hold")
        return [read_item(self) for _ in range(count)]

    def expect_end(self, what: str) -> None:
        if self.remaining:
            raise self.error(what, f"{self.remaining} trailing bytes")


_ONE_BYTE = tuple(bytes((i,)) for i in range(256))


def ser_compact_size(n: int) -> bytes:
    """Core: WriteCompactSize."""
    if n < 0:
        raise ValueError(f"compact size cannot be negative: {n}")
    if n < 0xFD:
        return _ONE_BYTE[n]
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    if n <= 0xFFFFFFFFFFFFFFFF:
        return b"\xff" + _U64.pack(n)
    raise ValueError(f"compact size too large: {n}")


def ser_varint(n: int) -> bytes:
    """Core: WriteVarInt (used by the UTXO and block-index records, never on the wire)."""
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    if 0x80 <= n < 0x4080:
        # Two bytes (heights and amounts of most coins): the loop below, unrolled.
        return bytes((((n >> 7) - 1) | 0x80, n & 0x7F))
    if 0x4080 <= n < 0x810204080:
        # Three to five bytes (compressed amounts), unrolled likewise.
        n1 = (n >> 7) - 1
        n2 = (n1 >> 7) - 1
        if n2 <= 0x7F:
            return bytes((n2 | 0x80, (n1 & 0x7F) | 0x80, n & 0x7F))
        n3 = (n2 >> 7) - 1
        if n3 <= 0x7F:
            return bytes((n3 | 0x80, (n2 & 0x7F) | 0x80, (n1 & 0x7F) | 0x80, n & 0x7F))
        n4 = (n3 >> 7) - 1
        return bytes((n4 | 0x80, (n3 & 0x7F) | 0x80, (n2 & 0x7F) | 0x80, (n1 & 0x7F) | 0x80, n & 0x7F))
    if n < 0:
        raise ValueError(f"varint cannot be negative: {n}")
    out = bytearray([n & 0x7F])
    while n > 0x7F:
        n = (n >> 7) - 1
        out.append((n & 0x7F) | 0x80)
    out.reverse()
    return bytes(out)


def ser_var_bytes(b: bytes) -> bytes:
    return ser_compact_size(len(b)) + b


def ser_var_str(s: str) -> bytes:
    return ser_var_bytes(s.encode("utf-8"))


def ser_vector(items: Iterable[T], ser_item: Callable[[T], bytes]) -> bytes:
    parts = [ser_item(item) for item in items]
    return ser_compact_size(len(parts)) + b"".join(parts)


def ser_u8(n: int) -> bytes:
    return bytes((n,))


def ser_u16(n: int) -> bytes:
    return _U16.pack(n)


def ser_u32(n: int) -> bytes:
    return _U32.pack(n)


def ser_i32(n: int) -> bytes:
    return _I32.pack(n)


def ser_u64(n: int) -> bytes:
    return _U64.pack(n)


def ser_i64(n: int) -> bytes:
    return _I64.pack(n)
