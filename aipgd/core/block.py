"""Block headers and blocks, in AIPG's two header layouts.

A header whose nTime is before the network's KawPoW activation is the legacy 80-byte
header (hashed with X16RV2); from activation on it is 120 bytes: nHeight, nNonce64 and
mix_hash replace the 32-bit nonce (Core: CBlockHeader::SerializationOp). The layout is
chosen by nTime, so parsing needs the activation time. Nothing here checks proof of work.
"""

from __future__ import annotations

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
from aipgd.core.transaction import Transaction
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
