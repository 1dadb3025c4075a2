"""Unspent outputs and their compact on-disk encoding (Core: coins.h Coin, compressor.cpp).

Owns `Coin` and Core's compression: amounts (`CompressAmount`), scripts (P2PKH, P2SH and
P2PK special forms, others length-prefixed) and the height/coinbase code, so that our
chainstate records are byte-identical to AIPG Core's. It must never touch LevelDB.
"""

from __future__ import annotations

from typing import NamedTuple

from coincurve import PublicKey

from aipgd.core.serialize import ByteReader, DeserializationError, ser_varint
from aipgd.core.transaction import TxOut
from aipgd.script.opcodes import Op

# Core: script.h MAX_SCRIPT_SIZE; longer stored scripts decode as a lone OP_RETURN.
MAX_SCRIPT_SIZE = 10_000
_SPECIAL_SCRIPTS = 6
_OP_DUP, _OP_HASH160, _OP_EQUAL = int(Op.OP_DUP), int(Op.OP_HASH160), int(Op.OP_EQUAL)
_OP_EQUALVERIFY, _OP_CHECKSIG, _OP_RETURN = int(Op.OP_EQUALVERIFY), int(Op.OP_CHECKSIG), int(Op.OP_RETURN)


class Coin(NamedTuple):
    """An unspent output with the height of its block and whether it came from a coinbase.

    A named tuple (immutable, built and compared in C): one is made for every output connected."""

    out: TxOut
    height: int
    coinbase: bool

    @property
    def is_coinbase(self) -> bool:
        return self.coinbase

    def serialize(self) -> bytes:
        """Core: Coin::Serialize — VARINT(height*2 + coinbase), CTxOutCompressor."""
        out = self.out
        script = out.script_pubkey
        head = ser_varint(self.height * 2 + self.coinbase) + ser_varint(compress_amount(out.value))
        # compress_txout's P2PKH case, inlined: a flush serializes every coin of the cache.
        if (len(script) == 25 and script[0] == _OP_DUP and script[1] == _OP_HASH160 and script[2] == 20
                and script[23] == _OP_EQUALVERIFY and script[24] == _OP_CHECKSIG):
            return head + b"\x00" + script[3:23]
        return head + compress_script(script)

    @classmethod
    def read(cls, r: ByteReader) -> Coin:
        code = r.varint("coin code", max_value=0xFFFFFFFF)
        value = decompress_amount(r.varint("coin amount"))
        script = read_compressed_script(r)
        return cls(TxOut(value, script), code >> 1, bool(code & 1))

    @classmethod
    def from_bytes(cls, data: bytes) -> Coin:
        r = ByteReader(data)
        coin = cls.read(r)
        r.expect_end("coin")
        return coin


def compress_amount(n: int) -> int:
    """Core: CTxOutCompressor::CompressAmount — strip trailing decimal zeros into an exponent."""
    if n == 0:
        return 0
    e = 0
    while n % 10 == 0 and e < 9:
        n //= 10
        e += 1
    if e < 9:
        d = n % 10
        n //= 10
        return 1 + (n * 9 + d - 1) * 10 + e
    return 1 + (n - 1) * 10 + 9


def decompress_amount(x: int) -> int:
    """Core: CTxOutCompressor::DecompressAmount (the inverse, for every uint64 input)."""
    if x == 0:
        return 0
    x -= 1
    e = x % 10
    x //= 10
    if e < 9:
        d = (x % 9) + 1
        x //= 9
        n = x * 10 + d
    else:
        n = x + 1
    n *= int(10**e)
    return n & 0xFFFFFFFFFFFFFFFF


def _compressed_form(script: bytes) -> bytes | None:
    """Core: CScriptCompressor::Compress — the special encodings, or None."""
    n = len(script)
    if (n == 25 and script[0] == _OP_DUP and script[1] == _OP_HASH160 and script[2] == 20
            and script[23] == _OP_EQUALVERIFY and script[24] == _OP_CHECKSIG):
        return b"\x00" + script[3:23]
    if n == 23 and script[0] == _OP_HASH160 and script[1] == 20 and script[22] == _OP_EQUAL:
        return b"\x01" + script[2:22]
    if n == 35 and script[0] == 33 and script[34] == _OP_CHECKSIG and script[1] in (2, 3):
        return script[1:34]
    if n == 67 and script[0] == 65 and script[66] == _OP_CHECKSIG and script[1] == 4:
        # Only a fully valid point can be rebuilt from x and the parity of y.
        try:
            PublicKey(script[1:66])
        except ValueError:
            return None
        return bytes((0x04 | (script[65] & 1),)) + script[2:34]
    return None


def compress_txout(out: TxOut) -> bytes:
    """Core: CTxOutCompressor — VARINT(CompressAmount(nValue)), then the compressed script. Every
    coin written (chainstate record or undo record) goes through here, so P2PKH, the common
    script, skips the general path."""
    script = out.script_pubkey
    amount = ser_varint(compress_amount(out.value))
    if (len(script) == 25 and script[0] == _OP_DUP and script[1] == _OP_HASH160 and script[2] == 20
            and script[23] == _OP_EQUALVERIFY and script[24] == _OP_CHECKSIG):
        return amount + b"\x00" + script[3:23]
    return amount + compress_script(script)


def compress_script(script: bytes) -> bytes:
    special = _compressed_form(script)
    if special is not None:
        return special
    return ser_varint(len(script) + _SPECIAL_SCRIPTS) + script


def read_compressed_script(r: ByteReader) -> bytes:
    start = r.pos
    size = r.varint("script size", max_value=0xFFFFFFFF)
    if size < _SPECIAL_SCRIPTS:
        payload = r.read(20 if size < 2 else 32, "compressed script")
        if size == 0:
            return bytes((_OP_DUP, _OP_HASH160, 20)) + payload + bytes((_OP_EQUALVERIFY, _OP_CHECKSIG))
        if size == 1:
            return bytes((_OP_HASH160, 20)) + payload + bytes((_OP_EQUAL,))
        if size in (2, 3):
            return bytes((33, size)) + payload + bytes((_OP_CHECKSIG,))
        try:
            full = PublicKey(bytes((size - 2,)) + payload).format(compressed=False)
        except ValueError:
            raise DeserializationError("compressed script", start, "invalid compressed public key") from None
        return bytes((65,)) + full + bytes((_OP_CHECKSIG,))
    size -= _SPECIAL_SCRIPTS
    if size > MAX_SCRIPT_SIZE:
        # Core replaces an overly long script with a short unspendable one.
        r.read(size, "oversized script")
        return bytes((_OP_RETURN,))
    return r.read(size, "script")
