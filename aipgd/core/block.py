"""Block headers and blocks, in AIPG's two header layouts.

A header whose nTime is before the network's KawPoW activation is the legacy 80-byte
header (hashed with X16RV2); from activation on it is 120 bytes: nHeight, nNonce64 and
mix_hash replace the 32-bit nonce (Core: CBlockHeader::SerializationOp). The layout is
chosen by nTime, so parsing needs the activation time. Nothing here checks proof of work.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from aipgd.core.hashes import sha256d, x16rv2
from aipgd.core.merkle import merkle_root
from aipgd.core.serialize import (
    ByteReader,
    ser_compact_size,
    ser_i32,
    ser_u32,
    ser_u64,
)
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut, parsed_txin, parsed_txout
from aipgd.core.uint256 import ZERO_HASH, hash_to_hex

LEGACY_HEADER_SIZE = 80
KAWPOW_HEADER_SIZE = 120
# Smallest possible transaction encoding: version, 0 inputs, 0 outputs, locktime.
_MIN_TX_SIZE = 10

@dataclass(frozen=True)
class BlockHeader:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int = 0
    # KawPoW fields (only serialized when `kawpow` is set).
    height: int = 0
    nonce64: int = 0
    mix_hash: bytes = ZERO_HASH  # as serialized (the byte-reverse of the printed mix hex)
    kawpow: bool = False
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False, hash=False)

    # --- encoding -------------------------------------------------------------------------
    def _prefix(self) -> bytes:
        return (ser_i32(self.version) + self.prev_hash + self.merkle_root
                + ser_u32(self.time) + ser_u32(self.bits))

    def serialize(self) -> bytes:
        if self.kawpow:
            return self._prefix() + ser_u32(self.height) + ser_u64(self.nonce64) + self.mix_hash
        return self._prefix() + ser_u32(self.nonce)

    @classmethod
    def read(cls, r: ByteReader, kawpow_activation_time: int) -> BlockHeader:
        version = r.i32("header nVersion")
        prev_hash = r.hash256("header hashPrevBlock")
        merkle = r.hash256("header hashMerkleRoot")
        time = r.u32("header nTime")
        bits = r.u32("header nBits")
        if time < kawpow_activation_time:
            return cls(version, prev_hash, merkle, time, bits, nonce=r.u32("header nNonce"))
        height = r.u32("header nHeight")
        nonce64 = r.u64("header nNonce64")
        mix = r.hash256("header mix_hash")
        return cls(version, prev_hash, merkle, time, bits, height=height, nonce64=nonce64,
                   mix_hash=mix, kawpow=True)

    @classmethod
    def from_bytes(cls, data: bytes, kawpow_activation_time: int) -> BlockHeader:
        r = ByteReader(data)
        header = cls.read(r, kawpow_activation_time)
        r.expect_end("block header")
        return header

    # --- hashing --------------------------------------------------------------------------
    def kawpow_header_hash(self) -> bytes:
        """Core: GetKAWPOWHeaderHash, sha256d of the 80-byte header with nHeight in the nonce slot.

        Returned in internal byte order; the KawPoW input is its reverse (display order).
        """
        return sha256d(self._prefix() + ser_u32(self.height))

    def kawpow_input(self) -> bytes:
        """The header hash as KawPoW takes it: the display-order bytes of `kawpow_header_hash`."""
        return self.kawpow_header_hash()[::-1]

    @property
    def mix_hash_printed(self) -> bytes:
        """The mix hash in the byte order KawPoW prints and returns it."""
        return self.mix_hash[::-1]

    @property
    def hash(self) -> bytes:
        """The block hash (internal byte order).

        Legacy headers: X16RV2 of the 80 bytes. KawPoW headers: the final hash implied by
        the declared mix (Core: KAWPOWHash_OnlyMix); whether the mix itself is right is
        checked by proof-of-work validation, which needs the epoch's light cache.
        """
        cached = self._cache.get("hash")
        if cached is None:
            if self.kawpow:
                # Imported here so that legacy-only users never pay for loading the Numba engine.
                import kawpow

                final = kawpow.final_hash(self.kawpow_input(), self.mix_hash_printed, self.nonce64)
                cached = final[::-1]
            else:
                cached = x16rv2(self.serialize())
            self._cache["hash"] = cached
        return cached

    @property
    def hash_hex(self) -> str:
        return hash_to_hex(self.hash)

    def with_fields(self, **changes: object) -> BlockHeader:
        """A copy with some fields changed (and a fresh hash cache)."""
        return replace(self, _cache={}, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    vtx: tuple[Transaction, ...]

    def serialize(self, with_witness: bool = True) -> bytes:
        return (self.header.serialize() + ser_compact_size(len(self.vtx))
                + b"".join(tx.serialize(with_witness) for tx in self.vtx))

    @classmethod
    def read(cls, r: ByteReader, kawpow_activation_time: int) -> Block:
        header = BlockHeader.read(r, kawpow_activation_time)
        vtx = r.vector(Transaction.read, "block transactions", _MIN_TX_SIZE)
        return cls(header, tuple(vtx))

    @classmethod
    def deserialize(cls, data: bytes, kawpow_activation_time: int) -> Block:
        block = _deserialize_common(data, kawpow_activation_time)
        if block is not None:
            return block
        r = ByteReader(data)
        block = cls.read(r, kawpow_activation_time)
        r.expect_end("block")
        return block

    def compute_merkle_root(self) -> tuple[bytes, bool]:
        """Core: BlockMerkleRoot, returns (root, mutated)."""
        return merkle_root([tx.txid for tx in self.vtx])

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex


_unpack_u32 = struct.Struct("<I").unpack_from
_unpack_i32 = struct.Struct("<i").unpack_from
# An input's prevout and first script-length byte; an output's value and first script-length byte.
_unpack_txin_head = struct.Struct("<32sIB").unpack_from
_unpack_txout_head = struct.Struct("<qB").unpack_from


class _UncommonError(Exception):
    """Raised inside `_deserialize_common` for anything it leaves to the strict reader."""


def _deserialize_common(data: bytes, kawpow_activation_time: int) -> Block | None:
    """`Block.deserialize` for the common shape: counts and lengths of one or three compact-size
    bytes, and nothing left over. Anything else (including every malformed block)
    returns None, and the strict reader then parses, or rejects, the whole block; what this
    returns is exactly what the strict reader would (the tests compare the two)."""
    if not isinstance(data, bytes):
        return None
    end = len(data)
    if end < LEGACY_HEADER_SIZE + 1:
        return None
    time = _unpack_u32(data, 68)[0]
    header_size = LEGACY_HEADER_SIZE if time < kawpow_activation_time else KAWPOW_HEADER_SIZE
    if end < header_size + 1:
        return None
    header = BlockHeader.from_bytes(data[:header_size], kawpow_activation_time)
    vtx: list[Transaction] = []
    try:
        count, pos = _long_size(data, header_size)
        for _ in range(count):
            tx, pos = _read_common_tx(data, pos)
            vtx.append(tx)
    except (_UncommonError, IndexError, struct.error):
        return None  # the strict reader says what is wrong, or parses the uncommon shape
    if pos != end:
        return None
    return Block(header, tuple(vtx))


def _long_size(data: bytes, pos: int) -> tuple[int, int]:
    """A compact size at `pos` of one byte or, canonically, three: (value, end)."""
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    if first == 0xFD:
        value = data[pos + 1] | (data[pos + 2] << 8)
        if value >= 0xFD:
            return value, pos + 3
    raise _UncommonError  # non-canonical, or longer than any block holds: the strict reader decides


def _read_common_tx(data: bytes, pos: int) -> tuple[Transaction, int]:
    """One transaction of `_deserialize_common` at `pos`: (transaction, end)."""
    start = pos
    version = _unpack_i32(data, pos)[0]
    n_in = data[pos + 4]
    pos += 5
    segwit = n_in == 0
    if segwit:
        # BIP144: marker 0, then flag 1 (any other flag, or no witness at all, is left to the strict
        # reader: an empty input list or an error).
        if data[pos] != 1:
            raise _UncommonError
        n_in = data[pos + 1]
        pos += 2
    body = pos - 1  # the input count, where the witness-free encoding resumes
    if n_in >= 0xFD:
        n_in, pos = _long_size(data, pos - 1)
    vin: list[TxIn] = []
    new_in, new_tuple = parsed_txin, tuple.__new__
    for _ in range(n_in):
        prev_hash, n, size = _unpack_txin_head(data, pos)
        pos += 37
        if size >= 0xFD:
            size, pos = _long_size(data, pos - 1)
        script_sig = data[pos:pos + size]
        pos += size
        if len(script_sig) != size:
            raise _UncommonError
        # OutPoint(prev_hash, n), less the named tuple's Python-level __new__.
        vin.append(new_in(new_tuple(OutPoint, (prev_hash, n)), script_sig, _unpack_u32(data, pos)[0]))
        pos += 4
    n_out = data[pos]
    pos += 1
    if n_out >= 0xFD:
        n_out, pos = _long_size(data, pos - 1)
    vout: list[TxOut] = []
    new_out = parsed_txout
    for _ in range(n_out):
        value, size = _unpack_txout_head(data, pos)
        pos += 9
        if size >= 0xFD:
            size, pos = _long_size(data, pos - 1)
        script = data[pos:pos + size]
        pos += size
        if len(script) != size:
            raise _UncommonError
        vout.append(new_out(value, script))
    body_end = pos
    if segwit:
        witnessed = []
        for txin in vin:
            items = data[pos]
            pos += 1
            if items >= 0xFD:
                items, pos = _long_size(data, pos - 1)
            stack = []
            for _ in range(items):
                size = data[pos]
                pos += 1
                if size >= 0xFD:
                    size, pos = _long_size(data, pos - 1)
                item = data[pos:pos + size]
                pos += size
                if len(item) != size:
                    raise _UncommonError
                stack.append(item)
            witnessed.append(new_in(txin.prevout, txin.script_sig, txin.sequence, tuple(stack)))
        if not any(txin.witness for txin in witnessed):
            raise _UncommonError  # a superfluous witness record: an error
        vin = witnessed
    locktime = _unpack_u32(data, pos)[0]
    pos += 4
    if pos > len(data):
        raise _UncommonError
    raw = data[start:pos]
    if segwit:
        stripped = data[start:start + 4] + data[body:body_end] + data[pos - 4:pos]
        tx = Transaction.parsed(version, tuple(vin), tuple(vout), locktime, txid=sha256d(stripped),
                                wtxid=sha256d(raw), total_size=len(raw), base_size=len(stripped))
    else:
        tx = Transaction.parsed(version, tuple(vin), tuple(vout), locktime, txid=sha256d(raw), wtxid=None,
                                total_size=len(raw), base_size=len(raw))
    return tx, pos
