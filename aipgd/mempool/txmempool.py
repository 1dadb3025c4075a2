"""The pool of unconfirmed transactions and its package bookkeeping (Core: txmempool.cpp).

Owns the entries (fee, virtual size, time, height, ancestor and descendant aggregates), the
parent/child links and the spent-outpoint index (mapNextTx), removal (recursive, for a block,
for conflicts), eviction by descendant fee rate with the rolling minimum fee (TrimToSize,
GetMinFee), expiry, and prioritisation deltas. It never judges a transaction: acceptance lives
in accept.py. Callers hold `lock` for compound operations; single calls take it themselves.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from aipgd.chain.coins import Coin
from aipgd.core.transaction import OutPoint, Transaction
from aipgd.mempool.policy import DEFAULT_INCREMENTAL_RELAY_FEE, FeeRate

# Core: txmempool.h MEMPOOL_HEIGHT, the height a coin created by a mempool transaction reports.
MEMPOOL_HEIGHT = 0x7FFFFFFF
# Core: CTxMemPool::ROLLING_FEE_HALFLIFE.
ROLLING_FEE_HALFLIFE = 60 * 60 * 12
# Rough per-entry memory beyond the serialized transaction (entry, links, indexes), like the
# C++ node's DynamicMemoryUsage estimate.
_ENTRY_OVERHEAD = 400


class RemovalReason(Enum):
    """Core: MemPoolRemovalReason."""

    UNKNOWN = "unknown"
    EXPIRY = "expiry"
    SIZELIMIT = "sizelimit"
    REORG = "reorg"
    BLOCK = "block"
    CONFLICT = "conflict"
    REPLACED = "replaced"


@dataclass(eq=False)
class MempoolEntry:
    """Core: CTxMemPoolEntry. Sizes are virtual sizes; aggregates include the entry itself."""

    tx: Transaction
    fee: int
    time: int
    height: int
    spends_coinbase: bool
    sigop_cost: int
    vsize: int
    fee_delta: int = 0
    parents: set[bytes] = field(default_factory=set)
    children: set[bytes] = field(default_factory=set)
    count_with_descendants: int = 1
    size_with_descendants: int = 0
    mod_fees_with_descendants: int = 0
    count_with_ancestors: int = 1
    size_with_ancestors: int = 0
    mod_fees_with_ancestors: int = 0
    sigops_with_ancestors: int = 0
    usage: int = field(init=False, default=0)  # bytes counted against -maxmempool

    def __post_init__(self) -> None:
        self.size_with_descendants = self.vsize
        self.mod_fees_with_descendants = self.modified_fee
        self.size_with_ancestors = self.vsize
        self.mod_fees_with_ancestors = self.modified_fee
        self.sigops_with_ancestors = self.sigop_cost
        self.usage = self.tx.total_size + 64 * len(self.tx.vin) + 48 * len(self.tx.vout) + _ENTRY_OVERHEAD

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def modified_fee(self) -> int:
        return self.fee + self.fee_delta

    @property
    def weight(self) -> int:
        return self.tx.weight

    def descendant_score(self) -> tuple[int, int]:
        """Core: CompareTxMemPoolEntryByDescendantScore's key, as a (fee, size) pair: the higher of the
        entry's own fee rate and its package with descendants (a rich child protects its parent)."""
        own = (self.modified_fee, self.vsize)
        package = (self.mod_fees_with_descendants, self.size_with_descendants)
        return package if package[0] * own[1] > own[0] * package[1] else own


@dataclass(frozen=True)
class AncestorLimits:
    """Core: -limitancestorcount, -limitancestorsize (kB), -limitdescendantcount, -limitdescendantsize."""

    ancestor_count: int = 200
    ancestor_size: int = 250 * 1000
    descendant_count: int = 200
    descendant_size: int = 250 * 1000


NO_LIMITS = AncestorLimits(1 << 62, 1 << 62, 1 << 62, 1 << 62)


class LimitError(Exception):
    """An ancestor or descendant limit was hit (the message is Core's errString)."""


class Mempool:
    """Core: CTxMemPool."""

    def __init__(self, *, incremental_relay_fee: int = DEFAULT_INCREMENTAL_RELAY_FEE,
                 clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.entries: dict[bytes, MempoolEntry] = {}
        self.by_wtxid: dict[bytes, bytes] = {}
        # Core: mapNextTx, outpoint -> txid of the mempool transaction spending it.
        self.spenders: dict[OutPoint, bytes] = {}
        # Core: mapDeltas, kept for transactions not (yet) in the pool too.
        self.deltas: dict[bytes, int] = {}
        # (accept time, txid) of every entry added, oldest first; stale pairs are skipped (expiry).
        self._by_time: list[tuple[int, bytes]] = []
        self.total_size = 0  # virtual bytes (Core: totalTxSize)
        self.usage = 0
        self.sequence = 0  # bumped on every change (Core: nTransactionsUpdated)
        self.incremental_relay_fee = incremental_relay_fee
        self._clock = clock
        self.rolling_minimum_fee_rate = 0.0
        self._last_rolling_fee_update = int(clock())
        self._block_since_last_rolling_fee_bump = False
        # Callbacks (txid, entry, reason) for removals, (entry) for additions: fee estimator, relay.
        self.on_removed: list[Callable[[MempoolEntry, RemovalReason], None]] = []
        self.on_added: list[Callable[[MempoolEntry], None]] = []

    # -- queries -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self.entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self.entries.get(txid)

    def get_tx(self, txid: bytes) -> Transaction | None:
        entry = self.entries.get(txid)
        return None if entry is None else entry.tx

    def spender(self, outpoint: OutPoint) -> bytes | None:
        return self.spenders.get(outpoint)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """Core: CCoinsViewMemPool::GetCoin's mempool half, an output of a pool transaction."""
        entry = self.entries.get(outpoint.txid)
        if entry is None or outpoint.n >= len(entry.tx.vout):
            return None
        return Coin(entry.tx.vout[outpoint.n], MEMPOOL_HEIGHT, False)

    def txids(self) -> list[bytes]:
        return list(self.entries)

    def in_pool_parents(self, tx: Transaction) -> set[bytes]:
        return {txin.prevout.txid for txin in tx.vin if txin.prevout.txid in self.entries}

    def ancestors(self, txid: bytes) -> set[bytes]:
        """Every in-pool ancestor of a pool entry (not itself)."""
        out: set[bytes] = set()
        stack = list(self.entries[txid].parents)
        while stack:
            parent = stack.pop()
            if parent not in out:
                out.add(parent)
                stack.extend(self.entries[parent].parents)
        return out

    def descendants(self, txid: bytes, into: set[bytes] | None = None) -> set[bytes]:
        """Core: CalculateDescendants, the entry and every in-pool descendant."""
        out = into if into is not None else set()
        stack = [txid]
        while stack:
            current = stack.pop()
            if current not in out:
                out.add(current)
                stack.extend(self.entries[current].children)
        return out

    def calculate_ancestors(self, vsize: int, parents: Iterable[bytes],
                            limits: AncestorLimits) -> set[bytes]:
        """Core: CalculateMemPoolAncestors for a transaction of `vsize` whose in-pool parents are
        `parents`. Raises LimitError with Core's message when a limit would be exceeded."""
        to_visit = set(parents)
        if len(to_visit) + 1 > limits.ancestor_count:
            raise LimitError(f"too many unconfirmed parents [limit: {limits.ancestor_count}]")
        ancestors: set[bytes] = set()
        total_size = vsize
        while to_visit:
            txid = to_visit.pop()
            ancestors.add(txid)
            entry = self.entries[txid]
            total_size += entry.vsize
            if entry.size_with_descendants + vsize > limits.descendant_size:
                raise LimitError(f"exceeds descendant size limit for tx {entry.tx.txid_hex} "
                                 f"[limit: {limits.descendant_size}]")
            if entry.count_with_descendants + 1 > limits.descendant_count:
                raise LimitError(f"too many descendants for tx {entry.tx.txid_hex} "
                                 f"[limit: {limits.descendant_count}]")
            if total_size > limits.ancestor_size:
                raise LimitError(f"exceeds ancestor size limit [limit: {limits.ancestor_size}]")
            for parent in entry.parents:
                if parent not in ancestors:
                    to_visit.add(parent)
            if len(to_visit) + len(ancestors) + 1 > limits.ancestor_count:
                raise LimitError(f"too many unconfirmed ancestors [limit: {limits.ancestor_count}]")
        return ancestors

    # -- additions -----------------------------------------------------------------------------

    def add_unchecked(self, entry: MempoolEntry, ancestors: set[bytes] | None = None) -> None:
        """Core: addUnchecked. `ancestors` as calculate_ancestors found them (computed if None)."""
        with self.lock:
            txid = entry.txid
            entry.fee_delta = self.deltas.get(txid, 0)
            entry.mod_fees_with_descendants = entry.mod_fees_with_ancestors = entry.modified_fee
            entry.parents = self.in_pool_parents(entry.tx)
            if ancestors is None:
                ancestors = set()
                for parent in entry.parents:
                    ancestors.add(parent)
                    ancestors |= self.ancestors(parent)
            self.entries[txid] = entry
            heapq.heappush(self._by_time, (entry.time, txid))
            self.by_wtxid[entry.tx.wtxid] = txid
            for txin in entry.tx.vin:
                self.spenders[txin.prevout] = txid
            for parent in entry.parents:
                self.entries[parent].children.add(txid)
            for a in ancestors:
                anc = self.entries[a]
                anc.count_with_descendants += 1
                anc.size_with_descendants += entry.vsize
                anc.mod_fees_with_descendants += entry.modified_fee
                entry.count_with_ancestors += 1
                entry.size_with_ancestors += anc.vsize
                entry.mod_fees_with_ancestors += anc.modified_fee
                entry.sigops_with_ancestors += anc.sigop_cost
            self.total_size += entry.vsize
            self.usage += entry.usage
            self.sequence += 1
            for callback in self.on_added:
                callback(entry)

    def update_transactions_from_block(self, txids: list[bytes]) -> None:
        """Core: UpdateTransactionsFromBlock. Transactions put back from a disconnected block may
        have children already in the pool: link them and fold them into both sides' aggregates.
        Walked in reverse so that every re-added descendant is linked before its ancestors."""
        with self.lock:
            readded = set(txids)
            for txid in reversed(txids):
                entry = self.entries.get(txid)
                if entry is None:
                    continue
                for n in range(len(entry.tx.vout)):
                    child = self.spenders.get(OutPoint(txid, n))
                    if child is None or child in readded or child in entry.children:
                        continue
                    entry.children.add(child)
                    self.entries[child].parents.add(txid)
                # Core: UpdateForDescendants, descendants not themselves re-added gain this ancestor.
                for d in self.descendants(txid) - {txid}:
                    if d in readded:
                        continue
                    desc = self.entries[d]
                    entry.count_with_descendants += 1
                    entry.size_with_descendants += desc.vsize
                    entry.mod_fees_with_descendants += desc.modified_fee
                    desc.count_with_ancestors += 1
                    desc.size_with_ancestors += entry.vsize
                    desc.mod_fees_with_ancestors += entry.modified_fee
                    desc.sigops_with_ancestors += entry.sigop_cost
            self.sequence += 1

    # -- removals ------------------------------------------------------------------------------

    def _remove_staged(self, stage: set[bytes], update_descendants: bool, reason: RemovalReason) -> None:
        """Core: RemoveStaged (UpdateForRemoveFromMempool, then removeUnchecked)."""
        if update_descendants:
            # Entries that stay (children of a confirmed transaction) lose it as an ancestor.
            for txid in stage:
                removed = self.entries[txid]
                for d in self.descendants(txid) - stage:
                    desc = self.entries[d]
                    desc.count_with_ancestors -= 1
                    desc.size_with_ancestors -= removed.vsize
                    desc.mod_fees_with_ancestors -= removed.modified_fee
                    desc.sigops_with_ancestors -= removed.sigop_cost
        for txid in stage:
            removed = self.entries[txid]
            for a in self.ancestors(txid) - stage:
                anc = self.entries[a]
                anc.count_with_descendants -= 1
                anc.size_with_descendants -= removed.vsize
                anc.mod_fees_with_descendants -= removed.modified_fee
        for txid in stage:
            removed = self.entries[txid]
            for child in removed.children:
                child_entry = self.entries.get(child)
                if child_entry is not None:
                    child_entry.parents.discard(txid)
            for parent in removed.parents:
                parent_entry = self.entries.get(parent)
                if parent_entry is not None:
                    parent_entry.children.discard(txid)
        for txid in stage:
            self._remove_unchecked(self.entries[txid], reason)

    def _remove_unchecked(self, entry: MempoolEntry, reason: RemovalReason) -> None:
        txid = entry.txid
        for callback in self.on_removed:
            callback(entry, reason)
        for txin in entry.tx.vin:
            if self.spenders.get(txin.prevout) == txid:
                del self.spenders[txin.prevout]
        self.by_wtxid.pop(entry.tx.wtxid, None)
        del self.entries[txid]
        self.total_size -= entry.vsize
        self.usage -= entry.usage
        self.sequence += 1

    def remove_recursive(self, tx: Transaction, reason: RemovalReason) -> None:
        """Core: removeRecursive, the transaction (if pooled) or its in-pool spenders, and all
        their descendants."""
        with self.lock:
            stage: set[bytes] = set()
            txid = tx.txid
            if txid in self.entries:
                self.descendants(txid, stage)
            else:
                # Not in the pool (e.g. its block was disconnected and it was not re-added): its
                # outputs may still be spent by pool transactions.
                for n in range(len(tx.vout)):
                    spender = self.spenders.get(OutPoint(txid, n))
                    if spender is not None:
                        self.descendants(spender, stage)
            if stage:
                self._remove_staged(stage, False, reason)

    def remove_set_with_descendants(self, txids: Iterable[bytes], reason: RemovalReason) -> None:
        with self.lock:
            stage: set[bytes] = set()
            for txid in txids:
                if txid in self.entries and txid not in stage:
                    self.descendants(txid, stage)
            if stage:
                self._remove_staged(stage, False, reason)

    def remove_conflicts(self, tx: Transaction) -> None:
        """Core: removeConflicts, pool transactions spending any input `tx` spends."""
        txid = tx.txid
        for txin in tx.vin:
            spender = self.spenders.get(txin.prevout)
            if spender is not None and spender != txid:
                conflict = self.entries[spender]
                self.remove_recursive(conflict.tx, RemovalReason.CONFLICT)

    def remove_for_block(self, vtx: Iterable[Transaction]) -> list[MempoolEntry]:
        """Core: removeForBlock. Returns the entries the block confirmed (for fee estimation)."""
        confirmed: list[MempoolEntry] = []
        with self.lock:
            for tx in vtx:
                txid = tx.txid
                entry = self.entries.get(txid)
                if entry is not None:
                    confirmed.append(entry)
                    self._remove_staged({txid}, True, RemovalReason.BLOCK)
                self.remove_conflicts(tx)
                self.deltas.pop(txid, None)
            self.last_rolling_fee_block()
        return confirmed

    def last_rolling_fee_block(self) -> None:
        self._last_rolling_fee_update = int(self._clock())
        self._block_since_last_rolling_fee_bump = True

    def expire(self, cutoff: int) -> int:
        """Core: Expire, drop entries accepted before `cutoff` with their descendants."""
        with self.lock:
            old = []
            heap = self._by_time
            while heap and heap[0][0] < cutoff:
                accepted, txid = heapq.heappop(heap)
                entry = self.entries.get(txid)
                if entry is not None and entry.time == accepted:
                    old.append(txid)
            if len(heap) > 2 * len(self.entries) + 64:
                self._by_time = [(e.time, t) for t, e in self.entries.items()]
                heapq.heapify(self._by_time)
            before = len(self.entries)
            self.remove_set_with_descendants(old, RemovalReason.EXPIRY)
            return before - len(self.entries)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.by_wtxid.clear()
            self.spenders.clear()
            self._by_time.clear()
            self.total_size = 0
            self.usage = 0
            self.sequence += 1

    # -- prioritisation ------------------------------------------------------------------------

    def prioritise(self, txid: bytes, delta: int) -> None:
        """Core: PrioritiseTransaction, the fee delta applies to every aggregate it is part of."""
        with self.lock:
            self.deltas[txid] = self.deltas.get(txid, 0) + delta
            entry = self.entries.get(txid)
            if entry is None:
                return
            entry.fee_delta += delta
            entry.mod_fees_with_descendants += delta
            entry.mod_fees_with_ancestors += delta
            for a in self.ancestors(txid):
                self.entries[a].mod_fees_with_descendants += delta
            for d in self.descendants(txid) - {txid}:
                self.entries[d].mod_fees_with_ancestors += delta
            self.sequence += 1

    # -- size limit ----------------------------------------------------------------------------

    def get_min_fee(self, size_limit: int) -> FeeRate:
        """Core: GetMinFee, the rolling minimum fee rate, halving every 12 hours (faster when the
        pool is well below its limit) once a block has arrived since it was last raised."""
        with self.lock:
            if not self._block_since_last_rolling_fee_bump or self.rolling_minimum_fee_rate == 0:
                return FeeRate(int(self.rolling_minimum_fee_rate))
            now = int(self._clock())
            if now > self._last_rolling_fee_update + 10:
                halflife = ROLLING_FEE_HALFLIFE
                if self.usage < size_limit // 4:
                    halflife //= 4
                elif self.usage < size_limit // 2:
                    halflife //= 2
                self.rolling_minimum_fee_rate /= 2.0 ** ((now - self._last_rolling_fee_update) / halflife)
                self._last_rolling_fee_update = now
                if self.rolling_minimum_fee_rate < self.incremental_relay_fee / 2:
                    self.rolling_minimum_fee_rate = 0.0
                    return FeeRate(0)
            return FeeRate(max(int(self.rolling_minimum_fee_rate), self.incremental_relay_fee))

    def _track_package_removed(self, rate: FeeRate) -> None:
        if rate.per_k > self.rolling_minimum_fee_rate:
            self.rolling_minimum_fee_rate = float(rate.per_k)
            self._block_since_last_rolling_fee_bump = False

    def trim_to_size(self, size_limit: int) -> list[OutPoint]:
        """Core: TrimToSize. Evicts the package with the lowest descendant score until usage fits,
        raising the rolling minimum fee to the evicted rate plus the incremental relay fee.
        Returns the outpoints removed transactions spent that no pool transaction provides."""
        no_spends_remaining: list[OutPoint] = []
        with self.lock:
            while self.entries and self.usage > size_limit:
                worst = min(self.entries.values(), key=_score_key)
                fee, size = worst.mod_fees_with_descendants, worst.size_with_descendants
                removed_rate = FeeRate.from_fee(fee, size)
                removed_rate = FeeRate(removed_rate.per_k + self.incremental_relay_fee)
                self._track_package_removed(removed_rate)
                stage = self.descendants(worst.txid)
                txs = [self.entries[t].tx for t in stage]
                self._remove_staged(stage, False, RemovalReason.SIZELIMIT)
                for tx in txs:
                    for txin in tx.vin:
                        if txin.prevout.txid not in self.entries:
                            no_spends_remaining.append(txin.prevout)
        return no_spends_remaining

    # -- iteration for mining and RPC ----------------------------------------------------------

    def entries_by_ancestor_score(self) -> Iterator[MempoolEntry]:
        return iter(sorted(self.entries.values(), key=_ancestor_key))

    def info_snapshot(self) -> dict[str, int]:
        with self.lock:
            return {"size": len(self.entries), "bytes": self.total_size, "usage": self.usage}


def _score_key(entry: MempoolEntry) -> tuple[float, int]:
    """Ascending descendant score (Core's eviction order), newer entries first on ties."""
    fee, size = entry.descendant_score()
    return (fee / size if size else 0.0, -entry.time)


def _ancestor_key(entry: MempoolEntry) -> tuple[float, bytes]:
    """Descending ancestor package fee rate, then txid (Core: CompareTxMemPoolEntryByAncestorFee)."""
    fee, size = entry.mod_fees_with_ancestors, entry.size_with_ancestors
    return (-(fee / size) if size else 0.0, entry.txid)
