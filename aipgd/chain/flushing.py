"""When chain state goes to disk, and in what order (Core: FlushStateToDisk and the -dbcache policy).

Owns the flush modes, the cache-size and interval rules that turn a mode into a block-index write
and/or a full coins flush, and the crash-safe order of one flush (blk/rev fsync, then the block
index batch, then the chainstate batch with its best-block marker), pruning last. ChainState calls
in here with its lock held; this module must never decide validity or move the active chain.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from aipgd.chain import prune

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState

# Core: txdb.h / validation.h.
DEFAULT_DB_CACHE_MIB = 450
MIN_DB_CACHE_MIB = 4
MAX_DB_CACHE_MIB = 16384
BLOCK_TREE_DB_CACHE_MAX = 2 << 20
DATABASE_WRITE_INTERVAL = 60 * 60
DATABASE_FLUSH_INTERVAL = 24 * 60 * 60
MAX_BLOCK_COINSDB_USAGE = 10 << 20


class FlushMode(Enum):
    """Core: FlushStateMode."""

    NONE = 0
    IF_NEEDED = 1
    PERIODIC = 2
    ALWAYS = 3


def write_block_index(cs: ChainState) -> None:
    """The blk/rev files' data made durable, then the dirty block index and file info in one batch."""
    cs.block_store.flush()
    file_infos = cs.block_store.take_dirty_file_info()
    if file_infos or cs.tree.dirty:
        cs.block_tree.write_batch_sync(file_infos, cs.block_store.last_file, cs.tree.take_dirty())


def flush_state(cs: ChainState, mode: FlushMode, manual_prune_height: int) -> None:
    """Core: FlushStateToDisk's decisions and writes (ChainState.flush reports failures)."""
    with cs.lock:
        if mode is FlushMode.NONE and not manual_prune_height:
            return
        now = int(cs._clock())
        usage = cs.coins_tip.memory_usage()
        budget = cs.coins_cache_bytes
        cache_large = (mode is FlushMode.PERIODIC
                       and usage > max(9 * budget // 10, budget - MAX_BLOCK_COINSDB_USAGE))
        cache_critical = mode is FlushMode.IF_NEEDED and usage > budget
        periodic_write = mode is FlushMode.PERIODIC and now > cs._last_write + DATABASE_WRITE_INTERVAL
        periodic_flush = mode is FlushMode.PERIODIC and now > cs._last_flush + DATABASE_FLUSH_INTERVAL
        prune_files = prune.files_to_prune(cs, manual_prune_height)
        full = (mode is FlushMode.ALWAYS or cache_large or cache_critical or periodic_flush
                or bool(prune_files))
        if full or periodic_write:
            cs.block_store.check_disk_space(0)
            write_block_index(cs)
            cs._last_write = now
        if full and cs.coins_tip.get_best_block() is not None:
            # Core: 48 bytes a coin, written twice (log and table), with a safety factor of 2.
            cs.block_store.check_disk_space(48 * 2 * 2 * len(cs.coins_tip))
            cs.coins_tip.flush()
            cs._last_flush = now
        if prune_files:
            prune.prune_files(cs, prune_files)
