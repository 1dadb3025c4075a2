"""Record formats of the block index database, byte-compatible with AIPG Core 0.15-era txdb.

Owns Core's VARINT (serialize.h WriteVarInt/ReadVarInt), CBlockFileInfo, CDiskBlockIndex and the
block status flags (chain.h). Pure encode/decode with bounded reads: it must never touch files or
databases, and never judge a block's validity.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipgd.core.block import BlockHeader
from aipgd.core.serialize import ByteReader, ser_i32, ser_u32, ser_u64, ser_varint

# Core: chain.h BlockStatus.
BLOCK_VALID_HEADER = 1
BLOCK_VALID_TREE = 2
BLOCK_VALID_TRANSACTIONS = 3
BLOCK_VALID_CHAIN = 4
BLOCK_VALID_SCRIPTS = 5
BLOCK_VALID_MASK = 7
BLOCK_HAVE_DATA = 8
BLOCK_HAVE_UNDO = 16
BLOCK_FAILED_VALID = 32
BLOCK_FAILED_CHILD = 64
BLOCK_OPT_WITNESS = 128

# Core writes CLIENT_VERSION at the front of every CDiskBlockIndex; AIPG Core 1.4.0.0 is 1040000.
DISK_CLIENT_VERSION = 1040000

@dataclass(frozen=True)
class BlockFileInfo:
    """Core: CBlockFileInfo, the bookkeeping of one blkNNNNN.dat / revNNNNN.dat pair."""

    blocks: int = 0
    size: int = 0
    undo_size: int = 0
    height_first: int = 0
    height_last: int = 0
    time_first: int = 0
    time_last: int = 0

    def serialize(self) -> bytes:
        return b"".join(ser_varint(v) for v in (
            self.blocks, self.size, self.undo_size, self.height_first, self.height_last,
            self.time_first, self.time_last))

    @classmethod
    def deserialize(cls, data: bytes) -> BlockFileInfo:
        r = ByteReader(data)
        values = [r.varint("CBlockFileInfo") for _ in range(7)]
        r.expect_end("CBlockFileInfo")
        return cls(*values)

    def with_block(self, height: int, time: int, new_size: int) -> BlockFileInfo:
        """Core: CBlockFileInfo::AddBlock, plus the file's new used size."""
        if self.blocks == 0 or self.height_first > height:
            height_first = height
        else:
            height_first = self.height_first
        if self.blocks == 0 or self.time_first > time:
            time_first = time
        else:
            time_first = self.time_first
        return BlockFileInfo(
            blocks=self.blocks + 1, size=new_size, undo_size=self.undo_size,
            height_first=height_first, height_last=max(self.height_last, height),
            time_first=time_first, time_last=max(self.time_last, time))


@dataclass(frozen=True)
class DiskBlockIndex:
    """Core: CDiskBlockIndex, one `b`+hash record of blocks/index."""

    height: int
    status: int
    tx_count: int
    header: BlockHeader
    file: int = -1
    data_pos: int = 0
    undo_pos: int = 0
    client_version: int = DISK_CLIENT_VERSION

    @property
    def have_data(self) -> bool:
        return bool(self.status & BLOCK_HAVE_DATA)

    def raise_validity(self, level: int) -> DiskBlockIndex:
        """Core: CBlockIndex::RaiseValidity (never lowers, never touches failed blocks)."""
        if self.status & (BLOCK_FAILED_VALID | BLOCK_FAILED_CHILD):
            return self
        if (self.status & BLOCK_VALID_MASK) >= level:
            return self
        status = (self.status & ~BLOCK_VALID_MASK) | level
        return DiskBlockIndex(self.height, status, self.tx_count, self.header, self.file,
                              self.data_pos, self.undo_pos, self.client_version)

    def serialize(self) -> bytes:
        h = self.header
        out = [ser_varint(self.client_version), ser_varint(self.height), ser_varint(self.status),
               ser_varint(self.tx_count)]
        if self.status & (BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO):
            out.append(ser_varint(self.file))
        if self.status & BLOCK_HAVE_DATA:
            out.append(ser_varint(self.data_pos))
        if self.status & BLOCK_HAVE_UNDO:
            out.append(ser_varint(self.undo_pos))
        out += [ser_i32(h.version), h.prev_hash, h.merkle_root, ser_u32(h.time), ser_u32(h.bits)]
        # Unlike the wire header, the KawPoW record has no nHeight: the index's own height is it.
        if h.kawpow:
            out += [ser_u64(h.nonce64), h.mix_hash]
        else:
            out.append(ser_u32(h.nonce))
        return b"".join(out)

    @classmethod
    def deserialize(cls, data: bytes, kawpow_activation_time: int) -> DiskBlockIndex:
        r = ByteReader(data)
        client_version = r.varint("CDiskBlockIndex version")
        height = r.varint("CDiskBlockIndex nHeight")
        status = r.varint("CDiskBlockIndex nStatus")
        tx_count = r.varint("CDiskBlockIndex nTx")
        file, data_pos, undo_pos = -1, 0, 0
        if status & (BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO):
            file = r.varint("CDiskBlockIndex nFile")
        if status & BLOCK_HAVE_DATA:
            data_pos = r.varint("CDiskBlockIndex nDataPos")
        if status & BLOCK_HAVE_UNDO:
            undo_pos = r.varint("CDiskBlockIndex nUndoPos")
        version = r.i32("header nVersion")
        prev_hash = r.hash256("header hashPrevBlock")
        merkle = r.hash256("header hashMerkleRoot")
        time = r.u32("header nTime")
        bits = r.u32("header nBits")
        if time < kawpow_activation_time:
            header = BlockHeader(version, prev_hash, merkle, time, bits, nonce=r.u32("header nNonce"))
        else:
            nonce64 = r.u64("header nNonce64")
            mix = r.hash256("header mix_hash")
            header = BlockHeader(version, prev_hash, merkle, time, bits, height=height, nonce64=nonce64,
                                 mix_hash=mix, kawpow=True)
        r.expect_end("CDiskBlockIndex")
        return cls(height, status, tx_count, header, file, data_pos, undo_pos, client_version)
