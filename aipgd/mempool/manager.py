"""The node's mempool component: the pool, its acceptance door and its life with the chain
(Core: the mempool parts of init.cpp, validation.cpp and the validation-interface callbacks).

Owns taking the locks in the one allowed order (chain, then pool), following the chain (removal
on block connect, returning a disconnected block's transactions and dropping what a reorg made
invalid: UpdateMempoolForReorg, removeForReorg), size limiting and expiry (LimitMempoolSize),
mempool.dat at start and stop, and feeding the fee estimator. It must never write chain state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aipgd.core.transaction import OutPoint, Transaction
from aipgd.mempool.accept import (
    AcceptResult,
    MempoolOptions,
    accept_to_mempool,
    check_final_for_next_block,
    check_sequence_locks,
)
from aipgd.mempool.fees import FEE_ESTIMATES_FILENAME, BlockPolicyEstimator
from aipgd.mempool.persist import MEMPOOL_FILENAME, dump_mempool, load_mempool
from aipgd.mempool.policy import FeeRate
from aipgd.mempool.txmempool import MEMPOOL_HEIGHT, Mempool, MempoolEntry, RemovalReason

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.core.block import Block
    from aipgd.core.params import ChainParams

logger = logging.getLogger(__name__)


class MempoolManager:
    name = "mempool"

    def __init__(self, params: ChainParams, chainstate: Any, options: MempoolOptions | None = None, *,
                 datadir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.params = params
        self.chainstate = chainstate
        self.options = options or MempoolOptions()
        self.datadir = datadir
        self.clock = clock
        self.pool = Mempool(incremental_relay_fee=self.options.incremental_relay_fee, clock=clock)
        self.estimator = BlockPolicyEstimator()
        self.pool.on_removed.append(self._entry_removed)
        self.loaded = False
        # Listeners told about each accepted transaction (relay, ZMQ hashtx/rawtx).
        self.tx_listeners: list[Callable[[Transaction], None]] = []
        # Called with each connected block, on the thread that connected it (orphan pool upkeep).
        self.block_listeners: list[Callable[[Block], None]] = []

    @property
    def require_standard(self) -> bool:
        configured = self.options.require_standard
        return self.params.require_standard if configured is None else configured

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.chainstate.signals.subscribe(self)
        if self.datadir is not None:
            self.estimator.load(self.datadir / FEE_ESTIMATES_FILENAME)
            if self.options.persist:
                self.load_mempool()
        self.loaded = True

    def stop(self) -> None:
        self.chainstate.signals.unsubscribe(self)
        if self.datadir is not None:
            if self.options.persist and self.loaded:
                self.dump_mempool()
            self.estimator.save(self.datadir / FEE_ESTIMATES_FILENAME)

    def dump_mempool(self, path: Path | None = None) -> Path:
        """Core: DumpMempool (also savemempool)."""
        target = path or self._mempool_path()
        with self.pool.lock:
            entries = list(self.pool.entries.values())
            deltas = dict(self.pool.deltas)
        dump_mempool(target, entries, deltas)
        return target

    def load_mempool(self) -> tuple[int, int, int]:
        """Core: LoadMempool. Returns (accepted, failed, expired)."""
        path = self._mempool_path()
        if not path.exists():
            return 0, 0, 0
        try:
            records, deltas = load_mempool(path)
        except (OSError, ValueError) as exc:
            logger.info("Failed to deserialize mempool data on disk: %s. Continuing anyway.", exc)
            return 0, 0, 0
        accepted = failed = expired = 0
        now = int(self.clock())
        for tx, accept_time, delta in records:
            if delta:
                self.pool.prioritise(tx.txid, delta)
            if accept_time + self.options.expiry_seconds <= now:
                expired += 1
                continue
            result = self.accept(tx, accept_time=accept_time)
            if result.accepted:
                accepted += 1
            else:
                failed += 1
        for txid, delta in deltas.items():
            self.pool.prioritise(txid, delta)
        logger.info("Imported mempool transactions from disk: %d succeeded, %d failed, %d expired",
                    accepted, failed, expired)
        return accepted, failed, expired

    def _mempool_path(self) -> Path:
        if self.datadir is None:
            raise ValueError("the mempool has no data directory")
        return self.datadir / MEMPOOL_FILENAME

    # -- acceptance ----------------------------------------------------------------------------

    def accept(self, tx: Transaction, *, bypass_limits: bool = False, absurd_fee: int = 0,
               accept_time: int | None = None, test_accept: bool = False) -> AcceptResult:
        """Core: AcceptToMemoryPool (cs_main, then the pool's lock)."""
        with self.chainstate.lock, self.pool.lock:
            coins = self.chainstate.coins_tip
            # Core: coins_to_uncache, so that rejected transactions cannot fill the coins cache.
            uncached = [txin.prevout for txin in tx.vin if not coins.have_coin_in_cache(txin.prevout)]
            result = accept_to_mempool(self, tx, bypass_limits=bypass_limits, absurd_fee=absurd_fee,
                                       accept_time=accept_time, test_accept=test_accept)
            if not result.accepted:
                for outpoint in uncached:
                    coins.uncache(outpoint)
        if result.accepted and not test_accept:
            self.announce(tx)
        return result

    def announce(self, tx: Transaction) -> None:
        """Tell the listeners (relay, notifications) about a pool transaction (Core: RelayTransaction)."""
        for listener in self.tx_listeners:
            try:
                listener(tx)
            except Exception:
                logger.exception("mempool listener failed")

    def tx_added(self, entry: MempoolEntry, valid_for_estimate: bool) -> None:
        self.estimator.process_transaction(entry, self.chainstate.tip.height if self.chainstate.tip else 0,
                                           valid_for_estimate)

    def current_for_fee_estimation(self) -> bool:
        """Core: IsCurrentForFeeEstimation, out of initial download and with a recent tip."""
        chain = self.chainstate
        tip = chain.tip
        if tip is None:
            return False
        now = self.clock()
        if chain.signals.initial_block_download(tip, self.params, now):
            return False
        best = chain.best_header
        if best is not None and tip.height < best.height - 1:
            return False
        # Core: MAX_FEE_ESTIMATION_TIP_AGE, 3 hours.
        return bool(tip.time >= now - 3 * 60 * 60)

    def _entry_removed(self, entry: MempoolEntry, reason: RemovalReason) -> None:
        if reason is not RemovalReason.BLOCK:
            self.estimator.remove_tx(entry.txid)

    def limit_size(self) -> None:
        """Core: LimitMempoolSize, expiry first, then eviction down to -maxmempool."""
        now = int(self.clock())
        expired = self.pool.expire(now - self.options.expiry_seconds)
        if expired:
            logger.debug("Expired %d transactions from the memory pool", expired)
        for outpoint in self.pool.trim_to_size(self.options.max_mempool_bytes):
            self.chainstate.coins_tip.uncache(outpoint)

    def min_fee_rate(self) -> FeeRate:
        """getmempoolinfo's mempoolminfee: the rolling minimum, never below the min relay fee."""
        rolling = self.pool.get_min_fee(self.options.max_mempool_bytes)
        return rolling if rolling.per_k > self.options.min_relay_fee else FeeRate(self.options.min_relay_fee)

    # -- following the chain (called by ChainSignals with the chain lock held) -------------------

    def block_connected(self, block: Block, index: BlockIndex) -> None:
        """Core: removeForBlock and the estimator's processBlock."""
        with self.pool.lock:
            confirmed = self.pool.remove_for_block(block.vtx)
        self.estimator.process_block(index.height, confirmed)
        for listener in self.block_listeners:
            try:
                listener(block)
            except Exception:
                logger.exception("mempool block listener failed")

    def block_disconnected(self, block: Block, index: BlockIndex) -> None:
        """Core: UpdateMempoolForReorg, done per disconnected block: its transactions go back into
        the pool (without the fee floors), then whatever the lower tip made invalid is removed."""
        readded: list[bytes] = []
        with self.pool.lock:
            for tx in block.vtx:
                if tx.is_coinbase():
                    continue
                result = accept_to_mempool(self, tx, bypass_limits=True)
                if result.accepted:
                    readded.append(tx.txid)
                else:
                    # Its in-pool spenders cannot stay without it.
                    self.pool.remove_recursive(tx, RemovalReason.REORG)
            self.pool.update_transactions_from_block(readded)
            self.remove_for_reorg()
            self.limit_size()
            back = [tx for tx in (self.pool.get_tx(t) for t in readded) if tx is not None]
        # Transactions a reorg returned to the pool are announced again, as new ones are.
        for tx in back:
            self.announce(tx)

    def remove_for_reorg(self) -> None:
        """Core: removeForReorg, entries that are no longer final or BIP68-final in the next
        block, or that spend a coinbase no longer mature there."""
        chain = self.chainstate
        tip = chain.tip
        if tip is None:
            return
        pool = self.pool
        maturity = self.params.coinbase_maturity
        stage: list[bytes] = []
        for txid, entry in pool.entries.items():
            tx = entry.tx
            heights = []
            bad = not check_final_for_next_block(tx, tip)
            for txin in tx.vin:
                if bad:
                    break
                coin = chain.coins_tip.get_coin(txin.prevout)
                if coin is None:
                    if txin.prevout.txid not in pool.entries:
                        bad = True
                        break
                    heights.append(MEMPOOL_HEIGHT)
                    continue
                heights.append(coin.height)
                if coin.coinbase and tip.height + 1 - coin.height < maturity:
                    bad = True
            if not bad and not check_sequence_locks(tx, heights, tip):
                bad = True
            if bad:
                stage.append(txid)
        if stage:
            pool.remove_set_with_descendants(stage, RemovalReason.REORG)

    # -- lookups for RPC and relay -------------------------------------------------------------

    def get_transaction(self, txid: bytes) -> Transaction | None:
        with self.pool.lock:
            return self.pool.get_tx(txid)

    def spent_in_mempool(self, outpoint: OutPoint) -> bool:
        with self.pool.lock:
            return outpoint in self.pool.spenders
