"""BIP152 compact blocks: short transaction ids, building a cmpctblock, and rebuilding a block from one
with the mempool's transactions plus a blocktxn answer (Core: blockencodings.cpp).

Owns SipHash-2-4, the short-id key, and PartialBlock's slot filling with Core's outcomes (complete,
missing indexes, a short-id collision or a broken message). It must never validate blocks beyond the
merkle root that tells a collision from a bad block: the chain does.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from aipgd.core.block import Block, BlockHeader
from aipgd.core.merkle import merkle_root
from aipgd.core.serialize import ser_u64
from aipgd.core.transaction import Transaction
from aipgd.net.blockmessages import CmpctBlock, PrefilledTransaction

_MASK64 = (1 << 64) - 1
SHORT_ID_MASK = (1 << 48) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4 with the 128-bit key (k0, k1) as two little-endian 64-bit words."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _MASK64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    length = len(data)
    tail_start = length - length % 8
    for i in range(0, tail_start, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = (length & 0xFF) << 56 | int.from_bytes(data[tail_start:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def short_id_key(header: BlockHeader, nonce: int) -> tuple[int, int]:
    """Core: FillShortTxIDSelector, single SHA256 of the serialized header and the nonce."""
    digest = hashlib.sha256(header.serialize() + ser_u64(nonce)).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")


def short_id(key: tuple[int, int], tx_hash: bytes) -> int:
    return siphash24(key[0], key[1], tx_hash) & SHORT_ID_MASK


def make_compact_block(block: Block, use_wtxid: bool = True, nonce: int | None = None) -> CmpctBlock:
    """Core: CBlockHeaderAndShortTxIDs, the coinbase prefilled and a short id for every other one."""
    nonce = secrets.randbits(64) if nonce is None else nonce
    key = short_id_key(block.header, nonce)
    ids = tuple(short_id(key, tx.wtxid if use_wtxid else tx.txid) for tx in block.vtx[1:])
    return CmpctBlock(block.header, nonce, ids, (PrefilledTransaction(0, block.vtx[0]),))


class CompactBlockError(Exception):
    """READ_STATUS_INVALID: the message itself is broken (Core scores it 100)."""


@dataclass
class PartialBlock:
    """Core: PartiallyDownloadedBlock."""

    header: BlockHeader
    slots: list[Transaction | None]
    from_mempool: int = 0
    prefilled: int = 0
    missing: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, cmpct: CmpctBlock, pool: Iterable[Transaction],
              use_wtxid: bool = True) -> PartialBlock | None:
        """Fill what the message and the pool give; None on a short-id collision (READ_STATUS_FAILED:
        ask for the whole block). Raises CompactBlockError on an invalid message."""
        total = len(cmpct.short_ids) + len(cmpct.prefilled)
        if total == 0:
            raise CompactBlockError("empty cmpctblock")
        slots: list[Transaction | None] = [None] * total
        for p in cmpct.prefilled:
            if p.index >= total:
                raise CompactBlockError("prefilled index out of range")
            slots[p.index] = p.tx
        positions: dict[int, int] = {}
        free = (i for i, tx in enumerate(slots) if tx is None)
        for sid in cmpct.short_ids:
            index = next(free)
            if sid in positions:
                return None  # two transactions share a short id in the block itself
            positions[sid] = index
        key = short_id_key(cmpct.header, cmpct.nonce)
        seen: set[int] = set()
        for tx in pool:
            sid = short_id(key, tx.wtxid if use_wtxid else tx.txid)
            slot = positions.get(sid)
            if slot is None:
                continue
            if sid in seen:
                slots[slot] = None  # Core: two pool transactions match, fetch it instead
                continue
            seen.add(sid)
            slots[slot] = tx
        missing = [i for i, tx in enumerate(slots) if tx is None]
        from_pool = sum(1 for s in seen if slots[positions[s]] is not None)
        return cls(cmpct.header, slots, from_pool, len(cmpct.prefilled), missing)

    def fill(self, transactions: Iterable[Transaction] = ()) -> Block | None:
        """Core: FillBlock. None when the merkle root does not match (a collision: get the full block).
        Raises CompactBlockError when the blocktxn answer has the wrong number of transactions."""
        given = list(transactions)
        if len(given) != len(self.missing):
            raise CompactBlockError("blocktxn does not answer the missing transactions")
        slots = list(self.slots)
        for index, tx in zip(self.missing, given, strict=True):
            slots[index] = tx
        vtx = tuple(tx for tx in slots if tx is not None)
        root, _ = merkle_root([tx.txid for tx in vtx])
        if root != self.header.merkle_root:
            return None
        return Block(self.header, vtx)
