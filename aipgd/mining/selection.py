"""Choosing a block's transactions from the mempool (Core 0.15: BlockAssembler::addPackageTxs).

Owns ancestor-fee-rate package selection: the best package (a transaction with its not yet
included ancestors) goes in whole while it fits the weight and sigop budgets, and the packages
of its descendants are re-scored without it (mapModifiedTx). It must never assemble or solve the
block (assembler.py does) nor change the pool.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from aipgd.consensus.limits import MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT, WITNESS_SCALE_FACTOR
from aipgd.consensus.tx_verify import is_final_tx
from aipgd.core.params import ChainParams
from aipgd.core.transaction import Transaction
from aipgd.mempool.policy import DEFAULT_BLOCK_MIN_TX_FEE, FeeRate
from aipgd.mempool.txmempool import Mempool, MempoolEntry

# Core: the coinbase's reserved room (BlockAssembler::resetBlock) and the give-up rule.
COINBASE_RESERVED_WEIGHT = 4000
COINBASE_RESERVED_SIGOPS = 400
DEFAULT_BLOCK_MAX_WEIGHT = MAX_BLOCK_WEIGHT - 4000
MAX_CONSECUTIVE_FAILURES = 1000


@dataclass
class _Modified:
    """Core: CTxMemPoolModifiedEntry, ancestor aggregates without the ancestors already chosen."""

    entry: MempoolEntry
    size: int
    fees: int
    sigops: int
    version: int = 0

    def rate_key(self) -> tuple[float, bytes]:
        return (-(self.fees / self.size), self.entry.txid)


def _entry_key(entry: MempoolEntry) -> tuple[float, bytes]:
    return (-(entry.mod_fees_with_ancestors / entry.size_with_ancestors), entry.txid)


def select_block_transactions(mempool: Any, tip: Any, params: ChainParams,
                              max_weight: int = DEFAULT_BLOCK_MAX_WEIGHT,
                              max_sigops: int = MAX_BLOCK_SIGOPS_COST, *,
                              min_fee_rate: int = DEFAULT_BLOCK_MIN_TX_FEE) -> tuple[list[Transaction], int]:
    """Transactions for a block on `tip` (a BlockIndex), in a valid order, and their total fee.

    `mempool` is a Mempool or the MempoolManager holding one; its lock is taken here (the caller
    should hold the chain lock so the tip cannot move meanwhile).
    """
    pool: Mempool = getattr(mempool, "pool", mempool)
    del params  # the limits are the caller's; kept for a stable signature
    max_weight = max(COINBASE_RESERVED_WEIGHT, min(MAX_BLOCK_WEIGHT - 4000, max_weight))
    height = tip.height + 1
    # BIP113: finality against the parent's median time past.
    lock_time_cutoff = tip.median_time_past()
    block_min = FeeRate(min_fee_rate)
    with pool.lock:
        entries = pool.entries
        in_block: set[bytes] = set()
        failed: set[bytes] = set()
        modified: dict[bytes, _Modified] = {}
        # Best modified package first; entries are re-pushed when they change (stale ones skipped).
        mod_heap: list[tuple[tuple[float, bytes], int, bytes]] = []
        pushes = 0
        chosen: list[Transaction] = []
        weight = COINBASE_RESERVED_WEIGHT
        sigops = COINBASE_RESERVED_SIGOPS
        total_fees = 0
        consecutive_failed = 0
        order = sorted(entries.values(), key=_entry_key)
        i = 0
        while True:
            # Skip entries already handled or tracked with modified aggregates (Core: SkipMapTxEntry).
            while i < len(order) and (order[i].txid in in_block or order[i].txid in failed
                                      or order[i].txid in modified):
                i += 1
            while mod_heap and (mod_heap[0][2] not in modified
                                or modified[mod_heap[0][2]].version != mod_heap[0][1]):
                heapq.heappop(mod_heap)
            best_mod = modified[mod_heap[0][2]] if mod_heap else None
            use_modified = False
            if i < len(order):
                entry = order[i]
                if best_mod is not None and best_mod.rate_key() < _entry_key(entry):
                    entry = best_mod.entry
                    use_modified = True
                else:
                    i += 1
            elif best_mod is not None:
                entry = best_mod.entry
                use_modified = True
            else:
                break
            if use_modified:
                assert best_mod is not None
                pkg_size, pkg_fees, pkg_sigops = best_mod.size, best_mod.fees, best_mod.sigops
            else:
                pkg_size = entry.size_with_ancestors
                pkg_fees = entry.mod_fees_with_ancestors
                pkg_sigops = entry.sigops_with_ancestors
            if pkg_fees < block_min.fee(pkg_size):
                # Everything left pays a lower fee rate.
                break

            package = [a for a in pool.ancestors(entry.txid) if a not in in_block]
            package.append(entry.txid)
            fits = (weight + WITNESS_SCALE_FACTOR * pkg_size < max_weight and sigops + pkg_sigops < max_sigops
                    and all(is_final_tx(entries[t].tx, height, lock_time_cutoff) for t in package))
            if not fits:
                if use_modified:
                    modified.pop(entry.txid, None)
                    failed.add(entry.txid)
                consecutive_failed += 1
                if (consecutive_failed > MAX_CONSECUTIVE_FAILURES
                        and weight > max_weight - COINBASE_RESERVED_WEIGHT):
                    break
                continue
            consecutive_failed = 0
            # Core: SortForBlock, fewer ancestors first is a valid topological order.
            package.sort(key=lambda t: entries[t].count_with_ancestors)
            for t in package:
                e = entries[t]
                chosen.append(e.tx)
                weight += e.weight
                sigops += e.sigop_cost
                total_fees += e.fee
                in_block.add(t)
                modified.pop(t, None)
            # Core: UpdatePackagesForAdded, descendants lose the chosen ones from their aggregates.
            for t in package:
                e = entries[t]
                for d in pool.descendants(t) - {t}:
                    if d in in_block:
                        continue
                    mod = modified.get(d)
                    if mod is None:
                        de = entries[d]
                        mod = modified[d] = _Modified(de, de.size_with_ancestors, de.mod_fees_with_ancestors,
                                                      de.sigops_with_ancestors)
                    mod.size -= e.vsize
                    mod.fees -= e.modified_fee
                    mod.sigops -= e.sigop_cost
                    pushes += 1
                    mod.version = pushes
                    heapq.heappush(mod_heap, (mod.rate_key(), pushes, d))
        return chosen, total_fees
