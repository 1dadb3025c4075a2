"""ChainState start-up: load the block index, repair what a crash left, find the tip (Core: LoadBlockIndex,
LoadGenesisBlock, ReplayBlocks, LoadChainTip, VerifyDB, and the reset half of -reindex/-reindex-chainstate).

Owns checking the databases and block files against each other before anything runs (missing or
truncated files, another network's index, a reindex left half done, pruned files without -prune)
and stopping with a message that names the repair. It must never accept new blocks: ChainState and
the BlockImporter do that once start-up is over.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aipgd.chain.blockdb import FLAG_PRUNED_BLOCK_FILES
from aipgd.chain.blockindex import BlockIndex, last_common_ancestor
from aipgd.chain.blockstore import FlatFilePos
from aipgd.chain.coinsview import CoinsViewCache
from aipgd.chain.connect import DisconnectResult, disconnect_block, rollforward_block
from aipgd.chain.dbwrapper import REINDEX_ADVICE, REINDEX_CHAINSTATE_ADVICE, DatabaseError
from aipgd.chain.diskformat import BLOCK_HAVE_UNDO, BLOCK_VALID_SCRIPTS
from aipgd.chain.verifydb import verify_db
from aipgd.core.uint256 import ZERO_HASH, hash_to_hex

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState

logger = logging.getLogger(__name__)


def load(cs: ChainState) -> None:
    """Core: LoadBlockIndex, LoadGenesisBlock, ReplayBlocks, LoadChainTip, VerifyDB and the
    ActivateBestChain of ThreadImport, which reconnects blocks stored past the chainstate's tip."""
    with cs.lock:
        genesis_hash = cs.params.genesis_hash
        if cs.options.reindex:
            # Core: fReset, both databases wiped; BlockImporter rebuilds the index from the files.
            cs.block_tree.wipe()
            cs.coins_db.wipe()
            cs.block_store.reset()
            if cs.prune_mode:
                cs.block_store.remove_unusable_files()
            cs.block_tree.write_reindexing(True)
            cs.reindexing = True
            logger.info("Initializing databases for -reindex")
        else:
            # Checked before decoding any record: another network's records may not even parse here
            # (their header layout depends on this network's KawPoW activation time).
            tree_db = cs.block_tree
            if tree_db.has_any_block_index() and not tree_db.has_block_index(genesis_hash):
                # Core: "Incorrect or no genesis block found. Wrong datadir for network?"
                raise DatabaseError(
                    f"Incorrect or no genesis block found in {cs.block_tree.path}: it does not contain "
                    f"the {cs.params.network} genesis block {cs.params.genesis_hash_hex}. "
                    "Wrong datadir for network?")
            load_block_index(cs)
        if cs.have_pruned and not cs.prune_mode:
            raise DatabaseError("You need to rebuild the database using -reindex to go back to unpruned "
                                "mode. This will redownload the entire blockchain.")
        if cs.options.reindex_chainstate and not cs.options.reindex:
            logger.info("Wiping the chainstate for -reindex-chainstate")
            cs.coins_db.wipe()
        if cs.coins_db.has_legacy_coins():
            raise DatabaseError("The chainstate database uses the pre-0.15 coin format, which aipgd "
                                f"cannot upgrade. {REINDEX_CHAINSTATE_ADVICE}")
        if not cs.reindexing and genesis_hash not in cs.tree:
            store_genesis(cs)
        replay_blocks(cs)
        if genesis_hash in cs.tree:
            load_chain_tip(cs)
            verify_db(cs, cs.options.check_level, cs.options.check_blocks)
    if cs.activate_at_start:
        state = cs.activate_best_chain()
        if state.is_error():
            from aipgd.chain.chainstate import ChainStateError

            raise ChainStateError(f"Failed to connect the best chain at start-up: {state.reject_reason}")

def load_block_index(cs: ChainState) -> None:
    last_file = cs.block_tree.read_last_block_file() or 0
    infos = {}
    for n in range(last_file + 1):
        info = cs.block_tree.read_block_file_info(n)
        if info is not None:
            infos[n] = info
    cs.block_store.load_file_info(last_file, infos)
    records = cs.block_tree.load_block_index(cs.params.kawpow_activation_time)
    cs.tree.load(records, cs.params.genesis_hash)
    logger.info("LoadBlockIndexDB: last block file = %d, %d block index entries", last_file, len(records))
    block_ends: dict[int, int] = {}
    undo_ends: dict[int, int] = {}
    for record in records.values():
        if record.have_data:
            block_ends[record.file] = max(block_ends.get(record.file, 0), record.data_pos)
        if record.status & BLOCK_HAVE_UNDO:
            undo_ends[record.file] = max(undo_ends.get(record.file, 0), record.undo_pos)
    cs.block_store.check_files(block_ends, undo_ends)
    cs.have_pruned = cs.block_tree.read_flag(FLAG_PRUNED_BLOCK_FILES)
    if cs.have_pruned:
        logger.info("LoadBlockIndexDB(): Block files have previously been pruned")
    if cs.block_tree.read_reindexing():
        # Core: an interrupted -reindex carries on from where it stopped.
        logger.info("LoadBlockIndexDB(): the block index was being rebuilt: resuming the reindex")
        cs.reindexing = True

def ensure_genesis(cs: ChainState, disk_pos: FlatFilePos | None = None) -> None:
    """Core: LoadGenesisBlock and the genesis activation of LoadExternalBlockFile: index the
    genesis block (where -reindex found it, or written anew) and make it the tip of an empty chain."""
    with cs.lock:
        if cs.params.genesis_hash not in cs.tree:
            store_genesis(cs, disk_pos)
        if cs.chain.tip is None:
            load_chain_tip(cs)

def store_genesis(cs: ChainState, disk_pos: FlatFilePos | None = None) -> None:
    """Core: LoadGenesisBlock (AcceptBlock for block 0), written out at once."""
    genesis = cs.params.genesis
    raw = genesis.serialize()
    if disk_pos is None:
        pos = cs.block_store.write_block(raw, height=0, time=genesis.header.time)
    else:
        pos = disk_pos
        cs.block_store.known_block(pos, len(raw), 0, genesis.header.time)
    index = cs.tree.add_header(cs.params.genesis_hash, genesis.header)
    cs.tree.received_transactions(index, len(genesis.vtx), pos.file, pos.pos, None)
    # Genesis is valid by definition (params checked its hash and merkle root), and connecting it
    # writes no undo data (Core: ConnectBlock returns early for the genesis block).
    index.raise_validity(BLOCK_VALID_SCRIPTS)
    cs.write_block_index()
    logger.info("Stored genesis block %s at blk%05d.dat offset %d", cs.params.genesis_hash_hex,
                pos.file, pos.pos)

def load_chain_tip(cs: ChainState) -> None:
    """Core: LoadChainTip. A chainstate without a best block has never been flushed: it is the
    state after the genesis block, whose coinbase adds no coins."""
    best = cs.coins_tip.get_best_block()
    if best is None:
        logger.info("Connecting genesis block %s to an empty chainstate", cs.params.genesis_hash_hex)
        cs.coins_tip.set_best_block(cs.params.genesis_hash)
        cs.coins_tip.flush()
        best = cs.params.genesis_hash
    index = cs.tree.get(best)
    if index is None or not index.have_data:
        raise DatabaseError(
            f"The chainstate's best block {hash_to_hex(best)} is not in the block index, or its data is "
            f"missing. {REINDEX_ADVICE}")
    cs.read_block(index)
    cs.chain.set_tip(index)
    # On a restart the tip keeps its place among tips of equal work.
    cs.tree.set_sequence_id(index, 0)
    cs.tree.candidates.add(index)
    cs.tree.prune_candidates(index)
    date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(index.time))
    logger.info("Loaded best chain: hashBestChain=%s height=%d date=%s", index.hash_hex, index.height,
                date)

def replay_blocks(cs: ChainState) -> None:
    """Core: ReplayBlocks. A flush interrupted between two batches leaves the head-blocks marker
    [new tip, old tip]: roll the coins back to the fork and forward to the new tip."""
    heads = cs.coins_db.get_head_blocks()
    if not heads:
        return
    if len(heads) != 2:
        raise DatabaseError(f"ReplayBlocks(): unknown inconsistent state in the chainstate's head blocks "
                            f"marker. {REINDEX_CHAINSTATE_ADVICE}")
    logger.info("Replaying blocks")
    new = cs.tree.get(heads[0])
    if new is None:
        raise DatabaseError(f"ReplayBlocks(): reorganization to unknown block requested. "
                            f"{REINDEX_CHAINSTATE_ADVICE}")
    old: BlockIndex | None = None
    fork: BlockIndex | None = None
    if heads[1] != ZERO_HASH:
        old = cs.tree.get(heads[1])
        if old is None:
            raise DatabaseError(f"ReplayBlocks(): reorganization from unknown block requested. "
                                f"{REINDEX_CHAINSTATE_ADVICE}")
        fork = last_common_ancestor(old, new)
    cache = CoinsViewCache(cs.coins_view)
    while old is not None and old is not fork:
        if old.height > 0:
            logger.info("Rolling back %s (%d)", old.hash_hex, old.height)
            # An UNCLEAN result is expected (the interrupted flush applied only part of the
            # block) and harmless: spending and adding coins are idempotent.
            result = disconnect_block(cs.read_block(old), old, cs.read_undo(old), cache)
            if result is DisconnectResult.FAILED:
                raise DatabaseError(f"RollbackBlock(): DisconnectBlock failed at {old.height}, "
                                    f"hash={old.hash_hex}. {REINDEX_CHAINSTATE_ADVICE}")
        old = old.prev
    for height in range((fork.height if fork is not None else 0) + 1, new.height + 1):
        index = new.get_ancestor(height)
        assert index is not None
        logger.info("Rolling forward %s (%d)", index.hash_hex, height)
        rollforward_block(cs.read_block(index), index, cache)
    cache.set_best_block(new.block_hash)
    cache.flush()
