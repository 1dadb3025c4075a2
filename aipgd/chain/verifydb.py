"""Start-up verification of the last blocks of the active chain (Core: CVerifyDB::VerifyDB, -checkblocks,
-checklevel).

Level 0 reads each block back, 1 re-runs CheckBlock, 2 reads and checksums its undo data, 3
disconnects the blocks from a throw-away copy of the tip's coins and demands a clean result, 4
connects them again. It must never change the node's state: every effect stays in a discarded view.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aipgd.chain.coinsview import CoinsViewCache
from aipgd.chain.connect import DisconnectResult, connect_block, disconnect_block
from aipgd.chain.dbwrapper import REINDEX_ADVICE, DatabaseError
from aipgd.chain.undo import TxUndo
from aipgd.consensus.block_check import check_block

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.chain.chainstate import ChainState

logger = logging.getLogger(__name__)


def _fail(message: str) -> DatabaseError:
    return DatabaseError(f"Corrupted block database detected: VerifyDB(): *** {message}. {REINDEX_ADVICE}")


def verify_db(cs: ChainState, check_level: int, check_depth: int) -> None:
    """Raise DatabaseError when the last `check_depth` blocks (0: all) fail the `check_level` checks."""
    tip = cs.chain.tip
    if tip is None or tip.prev is None:
        return
    if check_depth <= 0 or check_depth > cs.chain.height:
        check_depth = cs.chain.height
    check_level = max(0, min(4, check_level))
    logger.info("Verifying last %d blocks at level %d", check_depth, check_level)
    coins = CoinsViewCache(cs.coins_tip)
    state_index: BlockIndex | None = tip
    failure: BlockIndex | None = None
    good_transactions = 0
    walk: BlockIndex | None = tip
    while walk is not None and walk.prev is not None and walk.height > cs.chain.height - check_depth:
        if not walk.have_data:
            # Core: a pruned node checks only the blocks it still has.
            break
        try:
            block = cs.read_block(walk)
        except DatabaseError as exc:
            raise _fail(f"ReadBlockFromDisk failed at {walk.height}, hash={walk.hash_hex}: {exc}") from exc
        if check_level >= 1:
            state = check_block(block)
            if not state:
                raise _fail(f"found bad block at {walk.height}, hash={walk.hash_hex} ({state})")
        undo: list[TxUndo] | None = None
        if check_level >= 2 and walk.have_undo:
            try:
                undo = cs.read_undo(walk)
            except DatabaseError as exc:
                raise _fail(f"found bad undo data at {walk.height}, hash={walk.hash_hex}") from exc
        # Core bounds level 3 by the memory the coins caches may use.
        if (check_level >= 3 and walk is state_index and undo is not None
                and coins.memory_usage() + cs.coins_tip.memory_usage() <= cs.coins_cache_bytes):
            result = disconnect_block(block, walk, undo, coins)
            if result is DisconnectResult.FAILED:
                raise _fail(f"irrecoverable inconsistency in block data at {walk.height}, "
                            f"hash={walk.hash_hex}")
            state_index = walk.prev
            if result is DisconnectResult.UNCLEAN:
                good_transactions = 0
                failure = walk
            else:
                good_transactions += len(block.vtx)
        walk = walk.prev
    if failure is not None:
        last = cs.chain.height - failure.height + 1
        raise _fail(f"coin database inconsistencies found (last {last} blocks, "
                    f"{good_transactions} good transactions before that)")
    if check_level >= 4 and state_index is not None:
        forward = cs.chain.next(state_index)
        while forward is not None:
            block = cs.read_block(forward)
            connected = connect_block(block, forward, coins, cs.params, script_threads=cs.script_threads)
            if not connected.state:
                raise _fail(f"found unconnectable block at {forward.height}, hash={forward.hash_hex} "
                            f"({connected.state})")
            forward = cs.chain.next(forward)
    logger.info("No coin database inconsistencies in last %d blocks (%d transactions)", check_depth,
                good_transactions)
