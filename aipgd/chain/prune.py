"""Block file pruning (Core: -prune, FindFilesToPrune, FindFilesToPruneManual, PruneOneBlockFile).

Owns choosing which blkNNNNN.dat/revNNNNN.dat pairs may go (never the file being written, never one
holding any of the last MIN_BLOCKS_TO_KEEP blocks of the active chain, none before the chain passes
the network's PruneAfterHeight), clearing the have-data/have-undo status of their blocks and the
`prunedblockfiles` flag. It must never touch the UTXO set: ChainState calls it from its flush, after
the chainstate is durable, so a crash leaves at worst a pair of orphan files, never a missing block.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aipgd.chain.blockdb import FLAG_PRUNED_BLOCK_FILES
from aipgd.chain.blockstore import MAX_BLOCKFILE_SIZE
from aipgd.chain.diskformat import BLOCK_HAVE_DATA, BLOCK_HAVE_UNDO
from aipgd.log import log_print

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState

logger = logging.getLogger(__name__)

# Core: validation.h.
MIN_BLOCKS_TO_KEEP = 288
MIN_DISK_SPACE_FOR_BLOCK_FILES = 550 * 1024 * 1024
BLOCKFILE_CHUNK_SIZE = 0x1000000
UNDOFILE_CHUNK_SIZE = 0x100000
# Core: -prune=1, pruning only when asked (pruneblockchain); the target is then "unlimited".
PRUNE_MANUAL = (1 << 64) - 1


class PruneError(ValueError):
    """A manual prune request that cannot be carried out (Core's pruneblockchain RPC errors)."""


def prune_target_from_mib(value: int) -> int:
    """-prune=<MiB> as Core's AppInitParameterInteraction reads it; raises ValueError with its message."""
    if value < 0:
        raise ValueError("Prune cannot be configured with a negative value.")
    if value == 0:
        return 0
    if value == 1:
        return PRUNE_MANUAL
    target = value * 1024 * 1024
    if target < MIN_DISK_SPACE_FOR_BLOCK_FILES:
        raise ValueError(f"Prune configured below the minimum of {MIN_DISK_SPACE_FOR_BLOCK_FILES // 1048576} "
                         "MiB.  Please use a higher number.")
    return target


def files_to_prune(cs: ChainState, manual_height: int) -> set[int]:
    """The file numbers a flush should prune now, with their blocks already marked as pruned in the
    index (Core: the pruning half of FlushStateToDisk)."""
    if not cs.prune_mode or cs.reindexing or not (cs.check_for_pruning or manual_height > 0):
        return set()
    if manual_height > 0:
        files = _find_manual(cs, manual_height)
    else:
        files = _find_automatic(cs)
        cs.check_for_pruning = False
    if files and not cs.have_pruned:
        cs.block_tree.write_flag(FLAG_PRUNED_BLOCK_FILES, True)
        cs.have_pruned = True
    return files


def _last_prunable_height(cs: ChainState) -> int | None:
    tip = cs.chain.tip
    if tip is None:
        return None
    return tip.height - MIN_BLOCKS_TO_KEEP


def _find_manual(cs: ChainState, height: int) -> set[int]:
    """Core: FindFilesToPruneManual."""
    last = _last_prunable_height(cs)
    if last is None:
        return set()
    last = min(height, last)
    store = cs.block_store
    files = {n for n in range(store.last_file)
             if store.file_info(n).size and store.file_info(n).height_last <= last}
    logger.info("Prune (Manual): prune_height=%d removed %d blk/rev pairs", last, len(files))
    return files


def _find_automatic(cs: ChainState) -> set[int]:
    """Core: FindFilesToPrune, the oldest files until the usage is below the target less a margin
    for the next allocation."""
    tip = cs.chain.tip
    target = cs.options.prune_target
    if tip is None or target == PRUNE_MANUAL or tip.height <= cs.prune_after_height:
        return set()
    last = tip.height - MIN_BLOCKS_TO_KEEP
    store = cs.block_store
    usage = store.current_usage()
    if store.max_file_size < MAX_BLOCKFILE_SIZE:
        buffer = store.max_file_size // 2  # -fastprune: chunks scaled to its small files
    else:
        buffer = BLOCKFILE_CHUNK_SIZE + UNDOFILE_CHUNK_SIZE
    files: set[int] = set()
    if usage + buffer >= target:
        for n in range(store.last_file):
            info = store.file_info(n)
            if info.size == 0:
                continue
            if usage + buffer < target:
                break
            if info.height_last > last:
                continue
            files.add(n)
            usage -= info.size + info.undo_size
    log_print(logger, "prune", "Prune: target=%dMiB actual=%dMiB diff=%dMiB max_prune_height=%d removed %d "
              "blk/rev pairs", target // 1048576, usage // 1048576, (target - usage) // 1048576, last,
              len(files))
    return files


def prune_files(cs: ChainState, files: set[int]) -> None:
    """Core: PruneOneBlockFile for each file, the index batch, then UnlinkPrunedFiles."""
    tree = cs.tree
    for index in tree:
        if index.file in files and index.status & (BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO):
            index.status &= ~(BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO)
            index.file = -1
            index.data_pos = 0
            index.undo_pos = 0
            tree.mark_dirty(index)
            # Its chain would need the data again to be considered (Core: mapBlocksUnlinked).
            if index.prev is not None:
                waiting = tree.unlinked.get(index.prev)
                if waiting is not None and index in waiting:
                    waiting.remove(index)
                    if not waiting:
                        del tree.unlinked[index.prev]
    for n in files:
        cs.block_store.forget_file(n)
    # The index stops naming the files before they go: a crash in between leaves orphan files.
    cs.write_block_index()
    cs.block_store.unlink_files(files)


def prune_block_files(cs: ChainState, height: int) -> int:
    """Prune every file whose blocks are all at or below `height` (and MIN_BLOCKS_TO_KEEP below the
    tip), for the pruneblockchain RPC (Core: PruneBlockFilesManual). Returns the height of the last
    block without data, as pruneblockchain does (-1 when none)."""
    if not cs.prune_mode:
        raise PruneError("Cannot prune blocks because node is not in prune mode.")
    if height < 0:
        raise PruneError("Negative block height.")
    with cs.lock:
        tip = cs.chain.tip
        if tip is None or height > tip.height:
            raise PruneError("Blockchain is shorter than the attempted prune height.")
        if height > tip.height - MIN_BLOCKS_TO_KEEP:
            log_print(logger, "rpc", "Attempt to prune blocks close to the tip.  Retaining the minimum "
                      "number of blocks.")
        cs.flush(manual_prune_height=max(height, 1))
        walk = tip
        while walk.prev is not None and walk.prev.have_data:
            walk = walk.prev
        return walk.height - 1 if walk.prev is not None else -1
