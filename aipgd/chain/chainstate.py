"""ChainState: the one door through which chain state is written (first slice: genesis and the tip).

Owns loading the block index and best block at start-up, storing the genesis block on a fresh datadir,
repairing the state a kill -9 can leave, and flushing in Core's order (blk fsync, then the block index
batch, then the chainstate batch: Core FlushStateToDisk). It must never check blocks beyond the
genesis identity and the stored hash: validation belongs to aipgd.consensus.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockstore import BlockStore, FlatFilePos
from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.dbwrapper import REINDEX_ADVICE, DatabaseError
from aipgd.chain.diskformat import (
    BLOCK_HAVE_DATA,
    BLOCK_VALID_SCRIPTS,
    BLOCK_VALID_TRANSACTIONS,
    DiskBlockIndex,
)
from aipgd.core.block import Block
from aipgd.core.params import ChainParams
from aipgd.core.serialize import DeserializationError
from aipgd.core.uint256 import hash_to_hex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainTip:
    block_hash: bytes
    height: int
    time: int

    @property
    def hash_hex(self) -> str:
        return hash_to_hex(self.block_hash)


class ChainState:
    name = "chainstate"

    def __init__(self, params: ChainParams, block_store: BlockStore, block_tree: BlockTreeDB,
                 coins_db: ChainStateDB) -> None:
        self.params = params
        self.block_store = block_store
        self.block_tree = block_tree
        self.coins_db = coins_db
        self.block_index: dict[bytes, DiskBlockIndex] = {}
        self._dirty_index: set[bytes] = set()
        self.tip: ChainTip | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.load()

    def stop(self) -> None:
        self.flush()

    # -- start-up ------------------------------------------------------------------------------

    def load(self) -> None:
        """Core: LoadBlockIndex, LoadGenesisBlock, ReplayBlocks and LoadChainTip, for a genesis-only chain."""
        if self.block_tree.read_reindexing():
            raise DatabaseError("The block index is marked as being reindexed, and -reindex is not "
                                f"implemented in aipgd yet. {REINDEX_ADVICE}")
        if self.coins_db.has_legacy_coins():
            raise DatabaseError("The chainstate database uses the pre-0.15 coin format, which aipgd cannot "
                                f"upgrade. {REINDEX_ADVICE}")
        genesis_hash = self.params.genesis_hash
        # Checked before decoding any record: another network's records may not even parse here
        # (their header layout depends on this network's KawPoW activation time).
        if self.block_tree.has_any_block_index() and not self.block_tree.has_block_index(genesis_hash):
            # Core: "Incorrect or no genesis block found. Wrong datadir for network?"
            raise DatabaseError(
                f"Incorrect or no genesis block found in {self.block_tree.path}: it does not contain the "
                f"{self.params.network} genesis block {self.params.genesis_hash_hex}. "
                "Wrong datadir for network?")
        self._load_block_index()
        if genesis_hash not in self.block_index:
            self._store_genesis()

        if self.coins_db.get_head_blocks():
            raise DatabaseError(
                "The chainstate database was left mid-way through a multi-batch flush (head blocks marker), "
                f"and replaying blocks is not implemented in aipgd yet. {REINDEX_ADVICE}")
        best = self.coins_db.get_best_block()
        if best is None:
            # A fresh datadir, or a crash after the index batch but before the chainstate batch:
            # connecting genesis creates no coins (Core: ConnectBlock skips the genesis coinbase),
            # so the repair is to record it as the best block.
            logger.info("Connecting genesis block %s to an empty chainstate", self.params.genesis_hash_hex)
            self.coins_db.batch_write(genesis_hash, None)
            best = genesis_hash
        entry = self.block_index.get(best)
        if entry is None or not entry.have_data:
            raise DatabaseError(
                f"The chainstate's best block {hash_to_hex(best)} is not in the block index, or its data is "
                f"missing. {REINDEX_ADVICE}")
        self._check_block_on_disk(best, entry)
        self.tip = ChainTip(best, entry.height, entry.header.time)
        date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.header.time))
        logger.info("Loaded best chain: hashBestChain=%s height=%d date=%s", self.tip.hash_hex,
                    entry.height, date)

    def _load_block_index(self) -> None:
        last_file = self.block_tree.read_last_block_file() or 0
        infos = {}
        for n in range(last_file + 1):
            info = self.block_tree.read_block_file_info(n)
            if info is not None:
                infos[n] = info
        self.block_store.load_file_info(last_file, infos)
        self.block_index = self.block_tree.load_block_index(self.params.kawpow_activation_time)
        logger.info("LoadBlockIndexDB: last block file = %d, %d block index entries", last_file,
                    len(self.block_index))

    def _store_genesis(self) -> None:
        """Core: LoadGenesisBlock + ActivateBestChain for block 0, then FlushStateToDisk."""
        genesis = self.params.genesis
        raw = genesis.serialize()
        pos = self.block_store.write_block(raw, height=0, time=genesis.header.time)
        # Genesis is valid by definition (params checked its hash and merkle root); connecting it
        # writes no undo data (Core: ConnectBlock returns early for the genesis block).
        status = BLOCK_HAVE_DATA | BLOCK_VALID_TRANSACTIONS
        entry = DiskBlockIndex(height=0, status=status, tx_count=len(genesis.vtx), header=genesis.header,
                               file=pos.file, data_pos=pos.pos).raise_validity(BLOCK_VALID_SCRIPTS)
        self.block_index[self.params.genesis_hash] = entry
        self._dirty_index.add(self.params.genesis_hash)
        self.flush()
        logger.info("Stored genesis block %s at blk%05d.dat offset %d", self.params.genesis_hash_hex,
                    pos.file, pos.pos)

    def _check_block_on_disk(self, block_hash: bytes, entry: DiskBlockIndex) -> None:
        """Core: ReadBlockFromDisk's "Errors in block header" check, applied to the tip at start-up."""
        raw = self.block_store.read_block_bytes(FlatFilePos(entry.file, entry.data_pos))
        try:
            block = Block.deserialize(raw, self.params.kawpow_activation_time)
        except DeserializationError as exc:
            raise DatabaseError(f"The stored block {hash_to_hex(block_hash)} cannot be parsed ({exc}). "
                                f"{REINDEX_ADVICE}") from exc
        if block.header.kawpow:
            # A KawPoW hash needs the engine; the stored header must at least equal the index's record.
            stored_ok = block.header.serialize() == entry.header.serialize()
        else:
            stored_ok = block.header.hash == block_hash
        if block_hash == self.params.genesis_hash:
            stored_ok = stored_ok and raw == self.params.genesis.serialize()
        if not stored_ok:
            raise DatabaseError(f"The stored block {hash_to_hex(block_hash)} does not match the block index. "
                                f"{REINDEX_ADVICE}")

    # -- flushing ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Core: FlushStateToDisk. Block data is durable before the index names it, and the index before
        the chainstate's best block refers to it, so any crash leaves a prefix of this sequence."""
        self.block_store.flush()
        file_infos = self.block_store.take_dirty_file_info()
        if file_infos or self._dirty_index:
            entries = [(h, self.block_index[h]) for h in sorted(self._dirty_index)]
            self.block_tree.write_batch_sync(file_infos, self.block_store.last_file, entries)
            self._dirty_index.clear()
