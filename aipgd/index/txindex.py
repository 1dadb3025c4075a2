"""The transaction index, -txindex (Core 0.17: index/txindex.cpp, a database of its own).

Layout (Core 0.17's `indexes/txindex` LevelDB, unobfuscated keys as Core's):
  't' + txid (32 bytes, internal order) -> VARINT(nFile) VARINT(nPos) VARINT(nTxOffset)
      (CDiskTxPos: the block's position in blk?????.dat and the transaction's offset after the
      block header), and
  'B' -> the block locator of the last block indexed (CBlockLocator).
Entries are written in one batch with the locator for every connected block; a disconnected block
only moves the locator back (its entries stay, as in Core: the block data is still on disk). At
start the index catches up from its locator's fork point with the active chain; -reindex wipes it.
It must never write chain state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipgd.chain.blockstore import FlatFilePos
from aipgd.chain.dbwrapper import LevelDB
from aipgd.core.block import Block, BlockHeader
from aipgd.core.serialize import ByteReader, DeserializationError, ser_compact_size, ser_i32, ser_varint
from aipgd.core.transaction import Transaction
from aipgd.errors import InitError

logger = logging.getLogger(__name__)

DB_TXINDEX = b"t"
DB_BEST_BLOCK = b"B"
# Core: nTxIndexCache, 1/8 of -dbcache up to 1 GiB; aipgd gives the index a fixed small cache.
TXINDEX_CACHE_BYTES = 8 << 20
_LOCATOR_VERSION = 70028


def txindex_dir(netdir: Path) -> Path:
    return netdir / "indexes" / "txindex"


@dataclass(frozen=True, slots=True)
class DiskTxPos:
    file: int
    block_pos: int
    tx_offset: int  # after the block header

    def serialize(self) -> bytes:
        return ser_varint(self.file) + ser_varint(self.block_pos) + ser_varint(self.tx_offset)

    @classmethod
    def deserialize(cls, data: bytes) -> DiskTxPos:
        r = ByteReader(data)
        return cls(r.varint("nFile"), r.varint("nPos"), r.varint("nTxOffset"))


def _serialize_locator(hashes: list[bytes]) -> bytes:
    return ser_i32(_LOCATOR_VERSION) + ser_compact_size(len(hashes)) + b"".join(hashes)


def _read_locator(data: bytes) -> list[bytes]:
    r = ByteReader(data)
    r.i32("nVersion")
    count = r.compact_size("vHave size", limit=r.remaining // 32)
    return [r.hash256("vHave") for _ in range(count)]


class TxIndex:
    """A Node component and a ChainState listener."""

    name = "transaction index"

    def __init__(self, netdir: Path, chainstate: Any, *, wipe: bool = False,
                 prune_mode: bool = False) -> None:
        self._cs = chainstate
        self._wipe = wipe
        self._prune_mode = prune_mode
        self.db = LevelDB(txindex_dir(netdir), label="txindex", obfuscate=False,
                          cache_bytes=TXINDEX_CACHE_BYTES)

    def start(self) -> None:
        if self._prune_mode:
            raise InitError("Prune mode is incompatible with -txindex.")
        self.db.path.parent.mkdir(parents=True, exist_ok=True)
        self.db.open()
        if self._wipe:
            self.db.wipe()
        cs = self._cs
        # Catching up and subscribing under the chain lock: no block can slip in between.
        with cs.lock:
            start = self._fork_point()
            tip = cs.chain.tip
            if tip is not None and (start is None or start is not tip):
                first = 0 if start is None else start.height + 1
                logger.info("txindex: indexing blocks %d to %d", first, tip.height)
                for height in range(first, tip.height + 1):
                    index = cs.chain[height]
                    self._write_block(cs.read_block(index), index)
            cs.signals.subscribe(self)

    def stop(self) -> None:
        self._cs.signals.unsubscribe(self)
        self.db.close()

    def _fork_point(self) -> Any:
        """The last active-chain block the index has (Core: FindForkInGlobalIndex on the locator)."""
        raw = self.db.get(DB_BEST_BLOCK)
        if raw is None:
            return None
        try:
            hashes = _read_locator(raw)
        except DeserializationError:
            return None
        for block_hash in hashes:
            index = self._cs.block_index.get(block_hash)
            if index is not None and self._cs.chain.contains(index):
                return index
        return None

    def _write_block(self, block: Block, index: Any) -> None:
        ops: list[tuple[bytes, bytes | None]] = []
        offset = len(ser_compact_size(len(block.vtx)))
        for tx in block.vtx:
            ops.append((DB_TXINDEX + tx.txid, DiskTxPos(index.file, index.data_pos, offset).serialize()))
            offset += len(tx.serialize())
        ops.append((DB_BEST_BLOCK, _serialize_locator(self._cs.chain.locator(index))))
        self.db.write_batch(ops, sync=False)

    # -- ChainState listener (called under the chain lock) -------------------------------------

    def block_connected(self, block: Block, index: Any) -> None:
        self._write_block(block, index)

    def block_disconnected(self, block: Block, index: Any) -> None:
        if index.prev is not None:
            self.db.write_batch([(DB_BEST_BLOCK, _serialize_locator(self._cs.chain.locator(index.prev)))],
                                sync=False)

    # -- queries -------------------------------------------------------------------------------

    def find(self, txid: bytes) -> tuple[Transaction, bytes] | None:
        """Core: GetTransaction's txindex path: (transaction, hash of the block holding it)."""
        raw = self.db.get(DB_TXINDEX + txid)
        if raw is None:
            return None
        pos = DiskTxPos.deserialize(raw)
        data = self._cs.block_store.read_block_bytes(FlatFilePos(pos.file, pos.block_pos))
        r = ByteReader(data)
        header = BlockHeader.read(r, self._cs.params.kawpow_activation_time)
        r = ByteReader(data, r.pos + pos.tx_offset)
        tx = Transaction.read(r)
        if tx.txid != txid:
            raise DeserializationError("transaction", pos.tx_offset, "txid mismatch (txindex corrupt)")
        return tx, header.hash
