"""ChainState: the one door through which chain state is written (Core: CChainState and its globals).

Owns the block tree and the active chain, accepting headers and blocks (AcceptBlockHeader,
AcceptBlock), choosing and activating the most-work valid chain step by step (ActivateBestChain,
ConnectTip, DisconnectTip, reorgs of any depth), and writing in Core's crash-safe order (blk/rev
fsync, then the block index batch, then the chainstate batch with its best-block marker:
FlushStateToDisk), pruning last. Chain activation (ActivateBestChain, ConnectTip, DisconnectTip)
lives in activation.py, flush policy and order in flushing.py, start-up checks and repair in
startup.py, operator actions (invalidate/reconsider/precious) in chain_actions.py, pruning in
prune.py, block import (-reindex, -loadblock) in blockimport.py. Validity itself is decided by
aipgd.consensus and aipgd.chain.connect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import kawpow
from aipgd.chain import activation, chain_actions, flushing, prune, startup
from aipgd.chain.activation import ASSUMEVALID_MIN_BURY_SECONDS, RECENT_BLOCKS
from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockindex import ActiveChain, BlockIndex
from aipgd.chain.blockstore import BlockStore, FlatFilePos
from aipgd.chain.blocktree import BlockTree
from aipgd.chain.chaindb import COINS_DB_CACHE_BYTES, ChainStateDB
from aipgd.chain.coins import Coin
from aipgd.chain.coinsview import CoinsViewCache, CoinsViewDB, utxo_set_hash
from aipgd.chain.connect import ConnectTimings, default_script_threads
from aipgd.chain.dbwrapper import REINDEX_ADVICE, DatabaseError
from aipgd.chain.diskformat import BLOCK_FAILED_CHILD, BLOCK_FAILED_VALID, BLOCK_VALID_SCRIPTS
from aipgd.chain.flushing import (
    BLOCK_TREE_DB_CACHE_MAX,
    DATABASE_FLUSH_INTERVAL,
    DATABASE_WRITE_INTERVAL,
    DEFAULT_DB_CACHE_MIB,
    MAX_BLOCK_COINSDB_USAGE,
    MAX_DB_CACHE_MIB,
    MIN_DB_CACHE_MIB,
    FlushMode,
)
from aipgd.chain.header_rules import (
    DEFAULT_MIN_REORG_AGE,
    DEFAULT_MIN_REORG_PEERS,
    ReorgPolicy,
    contextual_header_state,
    last_checkpoint,
)
from aipgd.chain.notifications import ChainSignals
from aipgd.chain.undo import TxUndo, deserialize_block_undo, undo_checksum
from aipgd.consensus.block_check import check_block, contextual_check_block
from aipgd.consensus.pow import check_block_header_pow, check_header_height
from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import ChainParams
from aipgd.core.serialize import DeserializationError
from aipgd.core.transaction import OutPoint
from aipgd.core.uint256 import ZERO_HASH
from aipgd.errors import InitError

# Names other modules have always imported from here (see activation.py and flushing.py).
__all__ = [
    "ASSUMEVALID_MIN_BURY_SECONDS", "BLOCK_TREE_DB_CACHE_MAX", "DATABASE_FLUSH_INTERVAL",
    "DATABASE_WRITE_INTERVAL", "DEFAULT_CHECKBLOCKS", "DEFAULT_CHECKLEVEL", "DEFAULT_DB_CACHE_MIB",
    "MAX_BLOCK_COINSDB_USAGE", "MAX_DB_CACHE_MIB", "MIN_DB_CACHE_MIB", "ChainState", "ChainStateError",
    "ChainStateOptions", "FlushMode", "UtxoStats",
]

logger = logging.getLogger(__name__)

# Core: validation.h.
DEFAULT_CHECKBLOCKS = 6
DEFAULT_CHECKLEVEL = 3


class ChainStateError(InitError):
    """A local failure (disk, database, inconsistent data) that leaves the node unable to go on
    (Core: AbortNode). Invalid blocks never raise it."""


@dataclass(frozen=True)
class ChainStateOptions:
    dbcache_mib: int = DEFAULT_DB_CACHE_MIB
    # None: the network's default; ZERO_HASH: verify every script (-assumevalid=0).
    assume_valid: bytes | None = None
    check_blocks: int = DEFAULT_CHECKBLOCKS
    check_level: int = DEFAULT_CHECKLEVEL
    script_threads: int = 0  # 0: one per core
    max_reorg_depth: int | None = None  # None: the network's
    min_reorg_peers: int = DEFAULT_MIN_REORG_PEERS
    min_reorg_age: int = DEFAULT_MIN_REORG_AGE
    # -reindex: wipe both databases and rebuild them from the blk files (BlockImporter scans them).
    reindex: bool = False
    # -reindex-chainstate: wipe the chainstate and connect the indexed blocks again.
    reindex_chainstate: bool = False
    # -prune in bytes: 0 off, PRUNE_MANUAL for -prune=1, else the target (Core: nPruneTarget).
    prune_target: int = 0
    # None: the network's PruneAfterHeight (lowered by tests).
    prune_after_height: int | None = None

    def coins_cache_bytes(self) -> int:
        """Core: nCoinCacheUsage, what -dbcache leaves after the two LevelDB caches."""
        total = min(max(self.dbcache_mib, MIN_DB_CACHE_MIB), MAX_DB_CACHE_MIB) << 20
        total -= min(total // 8, BLOCK_TREE_DB_CACHE_MAX)
        total -= min(total // 2, total // 4 + (1 << 23), COINS_DB_CACHE_BYTES)
        return total


@dataclass(frozen=True)
class UtxoStats:
    """Core: CCoinsStats (gettxoutsetinfo)."""

    best_block: bytes
    height: int
    transactions: int
    outputs: int
    total_amount: int
    hash_serialized: bytes


class ChainState:
    name = "chainstate"

    def __init__(self, params: ChainParams, block_store: BlockStore, block_tree: BlockTreeDB,
                 coins_db: ChainStateDB, *, options: ChainStateOptions | None = None,
                 contexts: kawpow.ContextCache | None = None, clock: Callable[[], float] = time.time,
                 peer_count: Callable[[], int] = lambda: 0) -> None:
        self.params = params
        self.block_store = block_store
        self.block_tree = block_tree
        self.coins_db = coins_db
        self.options = options or ChainStateOptions()
        self.contexts = contexts if contexts is not None else kawpow.ContextCache()
        self._clock = clock
        self._peer_count = peer_count
        self.tree = BlockTree()
        self.chain = ActiveChain()
        self.coins_view = CoinsViewDB(coins_db)
        self.coins_tip = CoinsViewCache(self.coins_view)
        self.coins_cache_bytes = self.options.coins_cache_bytes()
        self.script_threads = self.options.script_threads or default_script_threads()
        self.reorg_policy = ReorgPolicy(
            self.options.max_reorg_depth if self.options.max_reorg_depth is not None
            else params.max_reorganization_depth, self.options.min_reorg_peers, self.options.min_reorg_age)
        av = self.options.assume_valid
        if av is None:
            av = params.default_assume_valid
        self.assume_valid: bytes | None = None if av == ZERO_HASH else av
        self.lock = threading.RLock()
        # Core: ShutdownRequested(), checked between activation steps and by the block importer.
        self.interrupt = threading.Event()
        # The Node leaves the start-up ActivateBestChain to its BlockImporter thread (Core: ThreadImport).
        self.activate_at_start = True
        # Core: fReindex, true while the block index is being rebuilt (persisted as the `R` flag).
        self.reindexing = False
        self.prune_mode = self.options.prune_target > 0
        # Core: fHavePruned (the `prunedblockfiles` flag) and fCheckForPruning.
        self.have_pruned = False
        self.check_for_pruning = False
        after = self.options.prune_after_height
        self.prune_after_height = after if after is not None else params.prune_after_height
        # Core: AbortNode's StartShutdown; the Node sets it to log and stop with the message.
        self.fatal_error_handler: Callable[[str], None] | None = None
        self.fatal_error: str | None = None
        self.timings = ConnectTimings()
        self._recent_blocks: dict[bytes, Block] = {}
        self._block_failures: dict[bytes, ValidationState] = {}
        # Listeners outside the chain (RPC waits, indexes, notifications); see notifications.py.
        self.signals = ChainSignals()
        self._notified_tip: BlockIndex | None = None
        now = int(clock())
        self._last_write = now
        self._last_flush = now

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.load()

    def stop(self) -> None:
        self.flush()

    @property
    def tip(self) -> BlockIndex | None:
        return self.chain.tip

    @property
    def block_index(self) -> dict[bytes, BlockIndex]:
        return self.tree.index

    @property
    def best_header(self) -> BlockIndex | None:
        """Core: pindexBestHeader, the most-work header not known to be invalid."""
        return self.tree.best_header

    # -- start-up (startup.py) -------------------------------------------------------------------

    def load(self) -> None:
        """Core: LoadBlockIndex, LoadGenesisBlock, ReplayBlocks, LoadChainTip and VerifyDB, then
        (unless a BlockImporter does it) the start-up ActivateBestChain."""
        startup.load(self)

    def ensure_genesis(self, disk_pos: FlatFilePos | None = None) -> None:
        """Index the genesis block (where -reindex found it, or written anew) and make it the tip of
        an empty chain (Core: LoadGenesisBlock)."""
        startup.ensure_genesis(self, disk_pos)

    def replay_blocks(self) -> None:
        """Core: ReplayBlocks, finish a flush that a crash interrupted."""
        startup.replay_blocks(self)

    # -- reading stored data -------------------------------------------------------------------

    def read_block(self, index: BlockIndex) -> Block:
        """Core: ReadBlockFromDisk, which also checks the stored block is the one indexed."""
        cached = self._recent_blocks.get(index.block_hash)
        if cached is not None:
            return cached
        if not index.have_data:
            raise ChainStateError(f"Block {index.hash_hex} at height {index.height} is not stored")
        raw = self.block_store.read_block_bytes(FlatFilePos(index.file, index.data_pos))
        try:
            block = Block.deserialize(raw, self.params.kawpow_activation_time)
        except DeserializationError as exc:
            raise DatabaseError(f"The stored block {index.hash_hex} cannot be parsed ({exc}). "
                                f"{REINDEX_ADVICE}") from exc
        if block.hash != index.block_hash or (index.height == 0 and raw != self.params.genesis.serialize()):
            raise DatabaseError(f"The stored block {index.hash_hex} does not match the block index "
                                f"(ReadBlockFromDisk: Errors in block header). {REINDEX_ADVICE}")
        return block

    def read_undo(self, index: BlockIndex) -> list[TxUndo]:
        """Core: UndoReadFromDisk, with the checksum keyed by the parent's hash."""
        if not index.have_undo or index.prev is None:
            raise ChainStateError(f"No undo data available for block {index.hash_hex}")
        data, checksum = self.block_store.read_undo_bytes(FlatFilePos(index.file, index.undo_pos))
        if undo_checksum(index.prev.block_hash, data) != checksum:
            raise DatabaseError(f"The undo data of block {index.hash_hex} fails its checksum. "
                                f"{REINDEX_ADVICE}")
        try:
            return deserialize_block_undo(data)
        except DeserializationError as exc:
            raise DatabaseError(f"The undo data of block {index.hash_hex} cannot be parsed ({exc}). "
                                f"{REINDEX_ADVICE}") from exc

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        with self.lock:
            return self.coins_tip.get_coin(outpoint)

    # -- headers and blocks --------------------------------------------------------------------

    def accept_block_header(self, header: BlockHeader, *,
                            pow_checked: bool = False) -> tuple[ValidationState, BlockIndex | None]:
        """Core: AcceptBlockHeader. A header already known is accepted again unless it failed."""
        with self.lock:
            block_hash = header.hash
            known = self.tree.get(block_hash)
            if known is not None:
                if known.failed:
                    invalid = ValidationState.invalid("duplicate",
                                                      debug=f"block {known.hash_hex} is marked invalid")
                    return invalid, known
                return VALID, known
            prev = self.tree.get(header.prev_hash)
            if prev is not None:
                # Checked before the proof of work: the declared height picks the KawPoW epoch.
                state = check_header_height(header, prev.height + 1)
                if not state:
                    return state, None
            if not pow_checked:
                state = check_block_header_pow(header, self.params, self.contexts)
                if not state:
                    return state, None
            if prev is None:
                return ValidationState.invalid("prev-blk-not-found", dos=10,
                                               debug="prev block not found"), None
            if prev.failed:
                return ValidationState.invalid("bad-prevblk", dos=100, debug="prev block invalid"), None
            tip = self.chain.tip
            state = contextual_header_state(
                header, prev, self.params, int(self._clock()), active_height=self.chain.height,
                active_tip_time=tip.time if tip is not None else 0, peer_count=self._peer_count(),
                reorg_policy=self.reorg_policy,
                checkpoint=lambda: last_checkpoint(self.params, self.tree.index))
            if not state:
                return state, None
            if not prev.is_valid(BLOCK_VALID_SCRIPTS):
                for failed in self.tree.failed_blocks:
                    if prev.get_ancestor(failed.height) is failed:
                        walk: BlockIndex | None = prev
                        while walk is not None and walk is not failed:
                            walk.status |= BLOCK_FAILED_CHILD
                            self.tree.mark_dirty(walk)
                            walk = walk.prev
                        return ValidationState.invalid("bad-prevblk", dos=100,
                                                       debug="prev block invalid"), None
            return VALID, self.tree.add_header(block_hash, header)

    def accept_block(self, block: Block, *, pow_checked: bool = False,
                     disk_pos: FlatFilePos | None = None,
                     disk_size: int = 0) -> tuple[ValidationState, BlockIndex | None]:
        """Core: AcceptBlock (every block counts as requested: they come from this node's user).
        `disk_pos`/`disk_size`: where -reindex found the block, which is then not written again."""
        with self.lock, self._fatal_on_local_failure():
            state, index = self.accept_block_header(block.header, pow_checked=pow_checked)
            if not state or index is None:
                return state, index
            if index.have_data:
                return VALID, index
            prev = index.prev
            state = check_block(block)
            if state:
                state = contextual_check_block(
                    block, prev.height if prev is not None else None,
                    prev.median_time_past() if prev is not None else None,
                    bip34_height=self.params.bip34_height)
            if not state:
                if state.is_invalid() and not state.corruption_possible:
                    index.status |= BLOCK_FAILED_VALID
                    self.tree.failed_blocks.add(index)
                    self.tree.mark_dirty(index)
                return state, index
            if disk_pos is None:
                pos = self.block_store.write_block(block.serialize(), index.height, block.header.time)
                self.check_for_pruning = self.prune_mode
            else:
                pos = disk_pos
                self.block_store.known_block(pos, disk_size, index.height, block.header.time)
            self.tree.received_transactions(index, len(block.vtx), pos.file, pos.pos, self.chain.tip)
            self._remember_block(block)
            return VALID, index

    def process_new_block(self, block: Block) -> ValidationState:
        """Core: ProcessNewBlock (+ submitblock's state catcher): check, store, then activate the best
        chain. Returns why the block was refused, including a failure while connecting it."""
        with self.lock:
            block_hash = block.hash
            pow_checked = False
            if block_hash not in self.tree:
                state = check_block_header_pow(block.header, self.params, self.contexts)
                if not state:
                    return state
                pow_checked = True
            state = check_block(block)
            if not state:
                return state
            state, _ = self.accept_block(block, pow_checked=pow_checked)
            if not state:
                return state
            state = self.activate_best_chain()
            if not state:
                return state
            return self._block_failures.pop(block_hash, VALID)

    def _remember_block(self, block: Block) -> None:
        self._recent_blocks[block.hash] = block
        while len(self._recent_blocks) > RECENT_BLOCKS:
            del self._recent_blocks[next(iter(self._recent_blocks))]

    # -- chain activation ----------------------------------------------------------------------

    def activate_best_chain(self, progress: Callable[[BlockIndex], None] | None = None) -> ValidationState:
        """Core: ActivateBestChain. Returns an error state only for local failures; invalid blocks
        are marked and skipped. Raises ChainStateError when the active chain cannot be changed.
        The lock is taken step by step, so readers get in between; `progress` sees each new tip.
        See activation.py."""
        return activation.activate_best_chain(self, progress)

    def _disconnect_tip(self) -> None:
        """Core: DisconnectTip. Failing to take the tip back is fatal (AbortNode)."""
        activation.disconnect_tip(self)

    def _invalid_chain_found(self, index: BlockIndex) -> None:
        """Core: InvalidChainFound."""
        activation.invalid_chain_found(self, index)

    # -- operator actions (chain_actions.py) ----------------------------------------------------

    def invalidate_block(self, block_hash: bytes) -> ValidationState:
        """Core: InvalidateBlock + ActivateBestChain (the invalidateblock RPC)."""
        return chain_actions.invalidate_block(self, block_hash)

    def reconsider_block(self, block_hash: bytes) -> ValidationState:
        """Core: ResetBlockFailureFlags + ActivateBestChain (the reconsiderblock RPC)."""
        return chain_actions.reconsider_block(self, block_hash)

    def precious_block(self, block_hash: bytes) -> ValidationState:
        """Core: PreciousBlock, treat the block as if it had arrived before any other of equal work."""
        return chain_actions.precious_block(self, block_hash)

    # -- flushing ------------------------------------------------------------------------------

    def write_block_index(self) -> None:
        flushing.write_block_index(self)

    def flush(self, mode: FlushMode = FlushMode.ALWAYS, *, manual_prune_height: int = 0) -> None:
        """Core: FlushStateToDisk. Block and undo data are durable before the index names them, and
        the index before the chainstate's best block refers to it, so any crash leaves a prefix of
        this sequence, which start-up completes. Pruning comes last (see prune.py).

        A local failure (disk full, LevelDB error) is fatal: the fatal-error handler hears of it
        (Core: AbortNode) and the error propagates; what is on disk stays consistent."""
        try:
            started = time.perf_counter()
            self._flush(mode, manual_prune_height)
            self.timings.flush_seconds += time.perf_counter() - started
        except InitError as exc:
            self.abort_node(str(exc))
            raise

    def abort_node(self, message: str) -> None:
        """Core: AbortNode, log the error and ask the node to shut down (once)."""
        if self.fatal_error is not None:
            return
        self.fatal_error = message
        logger.error("*** %s", message)
        if self.fatal_error_handler is not None:
            self.fatal_error_handler(message)

    @contextmanager
    def _fatal_on_local_failure(self) -> Iterator[None]:
        """A disk or database failure while changing chain state ends the node (Core: AbortNode)."""
        try:
            yield
        except InitError as exc:
            self.abort_node(str(exc))
            raise

    def _flush(self, mode: FlushMode, manual_prune_height: int) -> None:
        flushing.flush_state(self, mode, manual_prune_height)

    def prune_block_files(self, height: int) -> int:
        """Manual pruning up to `height` (-prune=1, the pruneblockchain RPC); see prune.py."""
        return prune.prune_block_files(self, height)

    # -- queries -------------------------------------------------------------------------------

    def utxo_stats(self) -> UtxoStats:
        """Core: gettxoutsetinfo (flushes first, then hashes the database in key order)."""
        with self.lock:
            self.flush()
            best = self.coins_tip.get_best_block()
            assert best is not None
            index = self.tree.get(best)
            digest, txs, outputs, total = utxo_set_hash(best, self.coins_view.iterate_coins())
            return UtxoStats(best, index.height if index is not None else -1, txs, outputs, total, digest)
