"""BIP152 compact-block messages and Ravencoin's asset-data messages.

Owns sendcmpct's companions cmpctblock, getblocktxn and blocktxn (with BIP152's differential index
encoding, bounded to 16 bits as Core does) and getassetdata, assetdata and asstnotfound. It must never
reconstruct blocks or look assets up: that is block download's and the asset database's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aipgd.core.block import BlockHeader
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_compact_size,
    ser_i32,
    ser_i64,
    ser_u16,
    ser_u32,
    ser_u64,
    ser_var_str,
    ser_vector,
)
from aipgd.core.transaction import Transaction
from aipgd.net.message_base import DecodeContext, Message

_TX_MIN = 10


# --- BIP152 compact blocks ---------------------------------------------------------------------------

def _read_u16_index(r: ByteReader, what: str) -> int:
    start = r.pos
    value = r.compact_size(what, 1 << 64)
    if value > 0xFFFF:
        raise DeserializationError(what, start, "index overflowed 16 bits")
    return value


def _ser_differential(indexes: tuple[int, ...]) -> list[bytes]:
    out = []
    prev = -1
    for index in indexes:
        out.append(ser_compact_size(index - prev - 1))
        prev = index
    return out


@dataclass(frozen=True, slots=True)
class PrefilledTransaction:
    index: int  # absolute position in the block (differentially encoded on the wire)
    tx: Transaction


@dataclass(frozen=True, slots=True)
class CmpctBlock(Message):
    command: ClassVar[str] = "cmpctblock"
    header: BlockHeader
    nonce: int
    short_ids: tuple[int, ...]  # 6-byte SipHash short ids
    prefilled: tuple[PrefilledTransaction, ...]

    def serialize(self) -> bytes:
        short = b"".join(ser_u32(s & 0xFFFFFFFF) + ser_u16((s >> 32) & 0xFFFF) for s in self.short_ids)
        diffs = _ser_differential(tuple(p.index for p in self.prefilled))
        prefilled = b"".join(d + p.tx.serialize() for d, p in zip(diffs, self.prefilled, strict=True))
        return (self.header.serialize() + ser_u64(self.nonce) + ser_compact_size(len(self.short_ids)) + short
                + ser_compact_size(len(self.prefilled)) + prefilled)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> CmpctBlock:
        header = BlockHeader.read(r, ctx.kawpow_activation_time)
        nonce = r.u64("cmpctblock nonce")

        def read_short(rr: ByteReader) -> int:
            lsb = rr.u32("short id")
            return lsb | (rr.u16("short id") << 32)
        short_ids = r.vector(read_short, "cmpctblock short ids", 6)
        start = r.pos
        count = r.compact_size("cmpctblock prefilled count")
        if count > r.remaining // (_TX_MIN + 1):
            raise DeserializationError("cmpctblock prefilled", start, "count exceeds remaining bytes")
        prefilled = []
        offset = 0
        for _ in range(count):
            diff = _read_u16_index(r, "prefilled index")
            index = offset + diff
            if index > 0xFFFF:
                raise DeserializationError("prefilled index", r.pos, "indexes overflowed 16 bits")
            prefilled.append(PrefilledTransaction(index, Transaction.read(r)))
            offset = index + 1
        if len(short_ids) + len(prefilled) > 0xFFFF:
            raise DeserializationError("cmpctblock", r.pos, "too many transactions")
        return cls(header, nonce, tuple(short_ids), tuple(prefilled))


@dataclass(frozen=True, slots=True)
class GetBlockTxn(Message):
    command: ClassVar[str] = "getblocktxn"
    block_hash: bytes
    indexes: tuple[int, ...]  # absolute, ascending (differentially encoded on the wire)

    def serialize(self) -> bytes:
        diffs = _ser_differential(self.indexes)
        return self.block_hash + ser_compact_size(len(self.indexes)) + b"".join(diffs)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> GetBlockTxn:
        block_hash = r.hash256("getblocktxn block hash")
        start = r.pos
        count = r.compact_size("getblocktxn count")
        if count > r.remaining:
            raise DeserializationError("getblocktxn indexes", start, "count exceeds remaining bytes")
        indexes = []
        offset = 0
        for _ in range(count):
            index = offset + _read_u16_index(r, "getblocktxn index")
            if index > 0xFFFF:
                raise DeserializationError("getblocktxn index", r.pos, "indexes overflowed 16 bits")
            indexes.append(index)
            offset = index + 1
        return cls(block_hash, tuple(indexes))


@dataclass(frozen=True, slots=True)
class BlockTxn(Message):
    command: ClassVar[str] = "blocktxn"
    block_hash: bytes
    transactions: tuple[Transaction, ...]

    def serialize(self) -> bytes:
        return self.block_hash + ser_vector(self.transactions, Transaction.serialize)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> BlockTxn:
        block_hash = r.hash256("blocktxn block hash")
        return cls(block_hash, tuple(r.vector(Transaction.read, "blocktxn transactions", _TX_MIN)))


# --- Ravencoin asset data ----------------------------------------------------------------------------

def _read_asset_name(r: ByteReader) -> str:
    return r.var_bytes("asset name", 1 << 16).decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class GetAssetData(Message):
    command: ClassVar[str] = "getassetdata"
    names: tuple[str, ...]

    def serialize(self) -> bytes:
        return ser_vector(self.names, ser_var_str)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> GetAssetData:
        return cls(tuple(r.vector(_read_asset_name, cls.command, 1)))


@dataclass(frozen=True, slots=True)
class AssetNotFound(GetAssetData):
    command: ClassVar[str] = "asstnotfound"


@dataclass(frozen=True, slots=True)
class AssetData(Message):
    """Core: blockencodings.h SerializedAssetData."""

    command: ClassVar[str] = "assetdata"
    name: str
    amount: int
    units: int
    reissuable: int
    has_ipfs: int
    ipfs: str
    height: int

    def serialize(self) -> bytes:
        def i8(n: int) -> bytes:
            return (n & 0xFF).to_bytes(1, "little")
        return (ser_var_str(self.name) + ser_i64(self.amount) + i8(self.units) + i8(self.reissuable)
                + i8(self.has_ipfs) + ser_var_str(self.ipfs) + ser_i32(self.height))

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> AssetData:
        def i8(what: str) -> int:
            n = r.u8(what)
            return n - 256 if n >= 128 else n
        name = _read_asset_name(r)
        amount = r.i64("assetdata amount")
        units = i8("assetdata units")
        reissuable = i8("assetdata reissuable")
        has_ipfs = i8("assetdata ipfs flag")
        ipfs = r.var_bytes("assetdata ipfs", 1 << 16).decode("utf-8", "replace")
        return cls(name, amount, units, reissuable, has_ipfs, ipfs, r.i32("assetdata height"))
