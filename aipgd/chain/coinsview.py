"""The UTXO view stack (Core: CCoinsView, CCoinsViewDB, CCoinsViewCache in coins.h/txdb.h).

Owns reading coins through a chain of views (LevelDB -> the node's tip cache -> a block-local
cache), Core's DIRTY/FRESH bookkeeping that lets a flush write only what changed and drop coins
created and spent between two flushes, the journal that lets ConnectTip change the tip cache in
place and take a failed block back, the memory estimate behind -dbcache, and the UTXO-set hash
(gettxoutsetinfo's hash_serialized). It must never judge transactions: ConnectBlock does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.coins import Coin
from aipgd.core.serialize import ser_var_bytes, ser_varint
from aipgd.core.transaction import OutPoint, Transaction, TxOut
from aipgd.script.asset_script import is_unspendable

# Core: CCoinsCacheEntry flags.
DIRTY = 1  # differs from the parent view
FRESH = 2  # the parent view has no unspent version of it

# A rough cost of one cached coin in CPython (the entry, OutPoint, Coin, TxOut and dict slot),
# on top of its script bytes; -dbcache compares the sum with its budget like Core's
# DynamicMemoryUsage, whose C++ numbers are about a third of these.
_ENTRY_OVERHEAD = 420


class CoinsView(Protocol):
    """Core: CCoinsView, what a cache needs of the view below it."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...

    def get_best_block(self) -> bytes | None: ...

    def batch_write(self, entries: dict[OutPoint, CacheEntry], best_block: bytes) -> None: ...


class CacheEntry:
    """Core: CCoinsCacheEntry; `coin` None means spent."""

    __slots__ = ("coin", "flags")

    def __init__(self, coin: Coin | None, flags: int = 0) -> None:
        self.coin = coin
        self.flags = flags


class CoinsViewDB:
    """Core: CCoinsViewDB, coins read from and written to the chainstate database."""

    def __init__(self, db: ChainStateDB) -> None:
        self.db = db

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.db.get_coin(outpoint)

    def have_coin(self, outpoint: OutPoint) -> bool:
        """Whether `outpoint` is unspent (a missing coin costs no decoding)."""
        return self.db.has_coin_record(outpoint) and self.db.get_coin(outpoint) is not None

    def have_any_coin(self, outpoints: Sequence[OutPoint]) -> bool:
        """any(have_coin(op) for op in outpoints), a record found being decoded as have_coin does."""
        if not self.db.has_any_coin_record(outpoints):
            return False
        return any(self.have_coin(outpoint) for outpoint in outpoints)

    def get_best_block(self) -> bytes | None:
        return self.db.get_best_block()

    def get_head_blocks(self) -> list[bytes]:
        return self.db.get_head_blocks()

    def batch_write(self, entries: dict[OutPoint, CacheEntry], best_block: bytes) -> None:
        """One synced LevelDB batch: every dirty coin, then the new best block."""
        old_best = self.db.get_best_block()
        changes = [(op, e.coin) for op, e in entries.items() if e.flags & DIRTY]
        self.db.batch_write(best_block, old_best, changes)

    def iterate_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        return self.db.iterate_coins()


def _coin_usage(coin: Coin | None) -> int:
    return _ENTRY_OVERHEAD + (len(coin.out.script_pubkey) if coin is not None else 0)


class CoinsViewCache:
    """Core: CCoinsViewCache, an in-memory layer over `base` that flushes changes down in one write."""

    def __init__(self, base: CoinsView) -> None:
        self.base = base
        # A base that answers HaveCoin without building the coin (CoinsViewDB, another cache).
        self._base_have: Callable[[OutPoint], bool] | None = getattr(base, "have_coin", None)
        self._base_have_any: Callable[[Sequence[OutPoint]], bool] | None = getattr(
            base, "have_any_coin", None)
        self.entries: dict[OutPoint, CacheEntry] = {}
        self._best_block: bytes | None = None
        self._usage = 0
        # While a block is connected straight into this cache: (outpoint, entry or None, its coin,
        # its flags) before each change, for `rollback_journal`.
        self._journal: list[tuple[OutPoint, CacheEntry | None, Coin | None, int]] | None = None
        self._journal_start: tuple[int, bytes | None] = (0, None)

    # -- reads ---------------------------------------------------------------------------------

    def _fetch(self, outpoint: OutPoint) -> CacheEntry | None:
        """Core: FetchCoin, which caches what it reads from the base."""
        entry = self.entries.get(outpoint)
        if entry is not None:
            return entry
        coin = self.base.get_coin(outpoint)
        if coin is None:
            return None
        if self._journal is not None:
            self._journal.append((outpoint, None, None, 0))
        entry = self.entries[outpoint] = CacheEntry(coin)
        self._usage += _coin_usage(coin)
        return entry

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        """The unspent coin at `outpoint`, or None (`_fetch`, inlined: every input comes here)."""
        entry = self.entries.get(outpoint)
        if entry is not None:
            return entry.coin
        coin = self.base.get_coin(outpoint)
        if coin is not None:
            if self._journal is not None:
                self._journal.append((outpoint, None, None, 0))
            self.entries[outpoint] = CacheEntry(coin)
            self._usage += _ENTRY_OVERHEAD + len(coin.out.script_pubkey)
        return coin

    def have_coin(self, outpoint: OutPoint) -> bool:
        """Core: HaveCoin. A coin found below is fetched into this cache (as FetchCoin does); a
        missing one is only looked for, through the bases' own have_coin where they have one."""
        entry = self.entries.get(outpoint)
        if entry is not None:
            return entry.coin is not None
        base_have = self._base_have
        if base_have is not None and not base_have(outpoint):
            return False
        return self._fetch(outpoint) is not None

    def have_any_coin(self, outpoints: Sequence[OutPoint]) -> bool:
        """any(have_coin(op) for op in outpoints), with one call to the base for those not cached
        here (BIP30 asks this of every new transaction's outputs)."""
        entries = self.entries
        below: list[OutPoint] = []
        for outpoint in outpoints:
            entry = entries.get(outpoint)
            if entry is None:
                below.append(outpoint)
            elif entry.coin is not None:
                return True
        if not below:
            return False
        base_have_any = self._base_have_any
        if base_have_any is not None and not base_have_any(below):
            return False
        return any(self.have_coin(outpoint) for outpoint in below)

    def have_coin_in_cache(self, outpoint: OutPoint) -> bool:
        entry = self.entries.get(outpoint)
        return entry is not None and entry.coin is not None

    def get_best_block(self) -> bytes | None:
        if self._best_block is None:
            self._best_block = self.base.get_best_block()
        return self._best_block

    def set_best_block(self, block_hash: bytes) -> None:
        self._best_block = block_hash

    # -- writes --------------------------------------------------------------------------------

    def add_coin(self, outpoint: OutPoint, coin: Coin, possible_overwrite: bool) -> None:
        """Core: AddCoin. Unspendable outputs never enter the UTXO set."""
        if is_unspendable(coin.out.script_pubkey):
            return
        entry = self.entries.get(outpoint)
        if self._journal is not None:
            self._journal.append((outpoint, entry, None, 0) if entry is None
                                 else (outpoint, entry, entry.coin, entry.flags))
        fresh = False
        if entry is None:
            entry = self.entries[outpoint] = CacheEntry(None)
        else:
            self._usage -= _coin_usage(entry.coin)
        if not possible_overwrite:
            if entry.coin is not None:
                raise AssertionError(f"Adding new coin {outpoint} that replaces an unspent entry")
            # A spent entry that was never written down can be forgotten again if spent.
            fresh = not entry.flags & DIRTY
        entry.coin = coin
        entry.flags |= DIRTY | (FRESH if fresh else 0)
        self._usage += _coin_usage(coin)

    def add_coins(self, tx: Transaction, height: int, check: bool = False) -> None:
        """Core: AddCoins. `check` looks for an unspent duplicate (BIP30-style overwrite); without
        it only coinbases are treated as possible overwrites, as Core does."""
        coinbase = tx.is_coinbase()
        txid = tx.txid
        if check or coinbase:
            for n, txout in enumerate(tx.vout):
                outpoint = OutPoint(txid, n)
                overwrite = self.have_coin(outpoint) if check else coinbase
                self.add_coin(outpoint, Coin(txout, height, coinbase), overwrite)
            return
        self.add_outputs([OutPoint(txid, n) for n in range(len(tx.vout))], tx.vout, height)

    def add_outputs(self, outpoints: Sequence[OutPoint], vout: Sequence[TxOut], height: int) -> None:
        """AddCoins(check=false) of a transaction that is not a coinbase, its outpoints given: each
        output is add_coin(possible_overwrite=False)."""
        # Inlined for the entries not cached yet, which become DIRTY and FRESH.
        entries = self.entries
        journal = self._journal
        usage = 0
        new_tuple = tuple.__new__
        for outpoint, txout in zip(outpoints, vout, strict=True):
            script = txout.script_pubkey
            if is_unspendable(script):
                continue
            # Coin(txout, height, False), less the named tuple's Python-level __new__.
            coin: Coin = new_tuple(Coin, (txout, height, False))
            if outpoint in entries:
                self.add_coin(outpoint, coin, False)
            else:
                if journal is not None:
                    journal.append((outpoint, None, None, 0))
                entries[outpoint] = CacheEntry(coin, DIRTY | FRESH)
                usage += _ENTRY_OVERHEAD + len(script)
        self._usage += usage

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        """Core: SpendCoin; returns the spent coin (for undo data), None when there was none."""
        entry = self.entries.get(outpoint)
        journal = self._journal
        if entry is None:
            # FetchCoin and SpendCoin in one step: the fetched entry is not FRESH (the base has the
            # coin), so what remains is a DIRTY spent entry.
            coin = self.base.get_coin(outpoint)
            if coin is not None:
                if journal is not None:
                    journal.append((outpoint, None, None, 0))
                self.entries[outpoint] = CacheEntry(None, DIRTY)
                self._usage += _ENTRY_OVERHEAD
            return coin
        coin = entry.coin
        if coin is None:
            return None
        if journal is not None:
            journal.append((outpoint, entry, coin, entry.flags))
        if entry.flags & FRESH:
            del self.entries[outpoint]
            self._usage -= _ENTRY_OVERHEAD + len(coin.out.script_pubkey)
        else:
            entry.flags |= DIRTY
            entry.coin = None
            self._usage -= len(coin.out.script_pubkey)
        return coin

    def uncache(self, outpoint: OutPoint) -> None:
        """Core: Uncache, drop an unmodified entry."""
        entry = self.entries.get(outpoint)
        if entry is not None and entry.flags == 0:
            if self._journal is not None:
                self._journal.append((outpoint, entry, entry.coin, 0))
            self._usage -= _coin_usage(entry.coin)
            del self.entries[outpoint]

    def batch_write(self, entries: dict[OutPoint, CacheEntry], best_block: bytes) -> None:
        """Core: CCoinsViewCache::BatchWrite, a child cache's changes merged into this one.

        The child hands its entries over (Core moves them; a child empties itself after this), so
        an entry new to us is adopted as it is: its flags are already DIRTY and the child's FRESH."""
        if self._journal is not None:
            raise AssertionError("merging into a coins cache while a block is connected into it")
        ours_entries = self.entries
        get = ours_entries.get
        usage = self._usage
        for outpoint, child in entries.items():
            flags = child.flags
            if not flags & DIRTY:
                continue
            coin = child.coin
            ours = get(outpoint)
            if ours is None:
                if coin is None:
                    # A coin created and spent inside the child never existed for us.
                    if not flags & FRESH:
                        ours_entries[outpoint] = child
                        usage += _ENTRY_OVERHEAD
                else:
                    ours_entries[outpoint] = child
                    usage += _ENTRY_OVERHEAD + len(coin.out.script_pubkey)
                continue
            old = ours.coin
            if flags & FRESH and old is not None:
                raise AssertionError("FRESH flag misapplied to a cache entry with an unspent base coin")
            if ours.flags & FRESH and coin is None:
                usage -= _coin_usage(old)
                del ours_entries[outpoint]
            else:
                usage += _coin_usage(coin) - _coin_usage(old)
                ours.coin = coin
                ours.flags |= DIRTY
        self._usage = usage
        self._best_block = best_block

    def flush(self) -> None:
        """Core: Flush, write every change to the base and empty the cache (a cache below may adopt
        the entries themselves: they are no longer ours)."""
        best = self.get_best_block()
        if best is None:
            raise AssertionError("flushing a coins cache without a best block")
        if self._journal is not None:
            raise AssertionError("flushing a coins cache while a block is connected into it")
        self.base.batch_write(self.entries, best)
        self.entries = {}
        self._usage = 0

    # -- a block connected in place -------------------------------------------------------------

    def begin_journal(self) -> None:
        """Record every change from now on, so that `rollback_journal` can take them all back.

        ConnectTip connects a block straight into the tip's cache this way instead of through a
        block-local cache merged in afterwards: each change lands as the merge would have left it
        (same entries, flags and usage), and a block that fails is rolled back instead of dropped."""
        if self._journal is not None:
            raise AssertionError("a coins cache journal is already open")
        self._journal = []
        self._journal_start = (self._usage, self._best_block)

    @property
    def journal_open(self) -> bool:
        return self._journal is not None

    def commit_journal(self) -> None:
        """Keep every change since `begin_journal`."""
        self._journal = None

    def rollback_journal(self) -> None:
        """Take back every change since `begin_journal`: entries, memory usage and best block."""
        journal = self._journal
        if journal is None:
            raise AssertionError("no coins cache journal is open")
        self._journal = None
        entries = self.entries
        for outpoint, entry, coin, flags in reversed(journal):
            if entry is None:
                entries.pop(outpoint, None)
            else:
                entry.coin = coin
                entry.flags = flags
                entries[outpoint] = entry
        self._usage, self._best_block = self._journal_start

    def memory_usage(self) -> int:
        """Core: DynamicMemoryUsage, an estimate in bytes."""
        return self._usage

    def __len__(self) -> int:
        return len(self.entries)


def utxo_set_hash(best_block: bytes, coins: Iterator[tuple[OutPoint, Coin]]) -> tuple[bytes, int, int, int]:
    """Core: GetUTXOStats' hash_serialized over coins in key order (so grouped by txid).

    Returns (hash, transactions, outputs, total amount).
    """
    hasher = hashlib.sha256(best_block)
    txs = outputs = total = 0
    current: bytes | None = None
    group: list[tuple[int, Coin]] = []

    def apply(txid: bytes, items: list[tuple[int, Coin]]) -> None:
        # Core: ApplyStats, outputs in index order.
        items.sort(key=lambda item: item[0])
        first = items[0][1]
        hasher.update(txid + ser_varint(first.height * 2 + int(first.coinbase)))
        for n, coin in items:
            out = coin.out
            hasher.update(ser_varint(n + 1) + ser_var_bytes(out.script_pubkey) + ser_varint(out.value))
        hasher.update(ser_varint(0))

    for outpoint, coin in coins:
        if current is not None and outpoint.txid != current:
            apply(current, group)
            txs += 1
            group = []
        current = outpoint.txid
        group.append((outpoint.n, coin))
        outputs += 1
        total += coin.out.value
    if current is not None:
        apply(current, group)
        txs += 1
    return hashlib.sha256(hasher.digest()).digest(), txs, outputs, total
