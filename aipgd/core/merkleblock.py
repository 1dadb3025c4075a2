"""Partial merkle trees and merkle blocks (Core: merkleblock.h/.cpp, CPartialMerkleTree, CMerkleBlock).

Owns building a proof that some transactions are in a block (gettxoutproof, BIP37 merkleblock) and
checking one (verifytxoutproof). It must never look anything up: the caller supplies the block or
the serialized proof, and decides what an extracted root means.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from aipgd.core.block import BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.serialize import ByteReader, ser_compact_size, ser_u32

# Core: MAX_BLOCK_WEIGHT / MIN_TRANSACTION_WEIGHT bounds nTransactions in ExtractMatches
# (AIPG's largest block weight, 8 MB after the asset deployment, over 4 * 60 bytes).
MAX_PROOF_TRANSACTIONS = 8_000_000 // (4 * 60)


def _width(n_transactions: int, height: int) -> int:
    """Core: CalcTreeWidth, the number of nodes at `height` (0 = leaves)."""
    return (n_transactions + (1 << height) - 1) >> height


def _tree_height(n_transactions: int) -> int:
    height = 0
    while _width(n_transactions, height) > 1:
        height += 1
    return height


@dataclass(frozen=True)
class PartialMerkleTree:
    n_transactions: int
    hashes: tuple[bytes, ...]  # internal byte order
    bits: tuple[bool, ...]

    @classmethod
    def build(cls, txids: Sequence[bytes], matches: Sequence[bool]) -> PartialMerkleTree:
        """Core: CPartialMerkleTree(vTxid, vMatch), depth first: a bit per visited node (whether a
        match lies below it), and a hash for every node not descended into."""
        n = len(txids)
        hashes: list[bytes] = []
        bits: list[bool] = []

        def calc_hash(height: int, pos: int) -> bytes:
            if height == 0:
                return txids[pos]
            left = calc_hash(height - 1, pos * 2)
            right = calc_hash(height - 1, pos * 2 + 1) if pos * 2 + 1 < _width(n, height - 1) else left
            return sha256d(left + right)

        def traverse(height: int, pos: int) -> None:
            start, end = pos << height, min((pos + 1) << height, n)
            parent_of_match = any(matches[start:end])
            bits.append(parent_of_match)
            if height == 0 or not parent_of_match:
                hashes.append(calc_hash(height, pos))
                return
            traverse(height - 1, pos * 2)
            if pos * 2 + 1 < _width(n, height - 1):
                traverse(height - 1, pos * 2 + 1)

        if n:
            traverse(_tree_height(n), 0)
        return cls(n, tuple(hashes), tuple(bits))

    def extract_matches(self) -> tuple[bytes, list[bytes], list[int]] | None:
        """Core: ExtractMatches. (merkle root, matched txids, their positions), or None when the
        tree is malformed (including CVE-2012-2459's duplicated right branches)."""
        n = self.n_transactions
        if n == 0 or n > MAX_PROOF_TRANSACTIONS or len(self.hashes) > n or len(self.bits) < len(self.hashes):
            return None
        matched: list[bytes] = []
        positions: list[int] = []
        used_bits = 0
        used_hashes = 0

        class _BadTreeError(Exception):
            pass

        def extract(height: int, pos: int) -> bytes:
            nonlocal used_bits, used_hashes
            if used_bits >= len(self.bits):
                raise _BadTreeError
            parent_of_match = self.bits[used_bits]
            used_bits += 1
            if height == 0 or not parent_of_match:
                if used_hashes >= len(self.hashes):
                    raise _BadTreeError
                digest = self.hashes[used_hashes]
                used_hashes += 1
                if height == 0 and parent_of_match:
                    matched.append(digest)
                    positions.append(pos)
                return digest
            left = extract(height - 1, pos * 2)
            if pos * 2 + 1 < _width(n, height - 1):
                right = extract(height - 1, pos * 2 + 1)
                if right == left:
                    raise _BadTreeError
            else:
                right = left
            return sha256d(left + right)

        try:
            root = extract(_tree_height(n), 0)
        except _BadTreeError:
            return None
        if (used_bits + 7) // 8 != (len(self.bits) + 7) // 8 or used_hashes != len(self.hashes):
            return None
        return root, matched, positions

    def serialize(self) -> bytes:
        packed = bytearray((len(self.bits) + 7) // 8)
        for i, bit in enumerate(self.bits):
            if bit:
                packed[i // 8] |= 1 << (i % 8)
        return (ser_u32(self.n_transactions) + ser_compact_size(len(self.hashes)) + b"".join(self.hashes)
                + ser_compact_size(len(packed)) + bytes(packed))

    @classmethod
    def read(cls, r: ByteReader) -> PartialMerkleTree:
        n = r.u32("nTransactions")
        count = r.compact_size("vHash size", limit=r.remaining // 32)
        hashes = tuple(r.hash256("vHash") for _ in range(count))
        packed = r.var_bytes("vBits", limit=r.remaining)
        bits = tuple(bool(packed[i // 8] >> (i % 8) & 1) for i in range(len(packed) * 8))
        return cls(n, hashes, bits)


@dataclass(frozen=True)
class MerkleBlock:
    """Core: CMerkleBlock, a block header and a partial merkle tree of its transactions."""

    header: BlockHeader
    txn: PartialMerkleTree

    @classmethod
    def build(cls, header: BlockHeader, txids: Sequence[bytes], wanted: Set[bytes]) -> MerkleBlock:
        return cls(header, PartialMerkleTree.build(txids, [t in wanted for t in txids]))

    def serialize(self) -> bytes:
        return self.header.serialize() + self.txn.serialize()

    @classmethod
    def deserialize(cls, data: bytes, kawpow_activation_time: int) -> MerkleBlock:
        r = ByteReader(data)
        header = BlockHeader.read(r, kawpow_activation_time)
        txn = PartialMerkleTree.read(r)
        return cls(header, txn)
