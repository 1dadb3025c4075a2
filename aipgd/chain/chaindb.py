"""The chainstate database (UTXO set and best-block marker) in AIPG Core's key layout (Core: CCoinsViewDB).

Owns the `B` best block, the `H` head-blocks marker of an interrupted flush and the `C` coin
records ('C' + txid + VARINT(n) -> Coin), all obfuscated with the database's key as Core does. It
must never decide which block is best: ChainState hands it the result, and every write is one synced batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from aipgd.chain.coins import Coin
from aipgd.chain.dbwrapper import REINDEX_CHAINSTATE_ADVICE, LevelDB, LevelDBStore
from aipgd.core.serialize import ByteReader, DeserializationError, ser_compact_size, ser_varint
from aipgd.core.transaction import OutPoint
from aipgd.core.uint256 import ZERO_HASH

DB_COIN = b"C"
DB_COINS = b"c"  # the pre-0.15 per-transaction format
DB_BEST_BLOCK = b"B"
DB_HEAD_BLOCKS = b"H"

COINS_DB_CACHE_BYTES = 8 << 20


_SMALL_INDEX = tuple(ser_varint(n) for n in range(128))


def coin_key(outpoint: OutPoint) -> bytes:
    """Core: CoinEntry, the key of one unspent output."""
    n = outpoint.n
    return DB_COIN + outpoint.txid + (_SMALL_INDEX[n] if 0 <= n < 128 else ser_varint(n))


def outpoint_from_key(key: bytes) -> OutPoint:
    r = ByteReader(key, 1)
    txid = r.hash256("coin key txid")
    n = r.varint("coin key index", max_value=0xFFFFFFFF)
    r.expect_end("coin key")
    return OutPoint(txid, n)


class ChainStateDB(LevelDBStore):
    """chainstate/ (obfuscated, as in Core)."""

    name = "chainstate database"

    def __init__(self, path: Path, *, wipe: bool = False) -> None:
        super().__init__(LevelDB(path, label="chainstate", obfuscate=True, cache_bytes=COINS_DB_CACHE_BYTES,
                                 advice=REINDEX_CHAINSTATE_ADVICE, wipe=wipe))

    def has_legacy_coins(self) -> bool:
        """Core: CCoinsViewDB::NeedsUpgrade (the old per-transaction `c` records)."""
        return self._db.has_prefix(DB_COINS)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        value = self._db.get(coin_key(outpoint))
        if value is None:
            return None
        try:
            return Coin.from_bytes(value)
        except DeserializationError as exc:
            raise self._corrupt(f"the coin {outpoint}", exc) from exc

    def has_coin_record(self, outpoint: OutPoint) -> bool:
        """Whether a record exists for `outpoint` (not decoded: see get_coin)."""
        return self._db.exists(coin_key(outpoint))

    def has_any_coin_record(self, outpoints: Iterable[OutPoint]) -> bool:
        """Whether a record exists for any of `outpoints`. Every new output is looked for (BIP30),
        so this goes to LevelDB by the shortest way."""
        return self._db.exists_any([
            DB_COIN + txid + (_SMALL_INDEX[n] if 0 <= n < 128 else ser_varint(n)) for txid, n in outpoints])

    def iterate_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        """Every unspent output in key order (Core: CCoinsViewDBCursor)."""
        for key, value in self._db.iterate_prefix(DB_COIN):
            try:
                yield outpoint_from_key(key), Coin.from_bytes(value)
            except DeserializationError as exc:
                raise self._corrupt(f"the coin record {key.hex()}", exc) from exc

    def get_best_block(self) -> bytes | None:
        value = self._db.get(DB_BEST_BLOCK)
        if value is None:
            return None
        if len(value) != 32:
            raise self._corrupt("the best block", f"{len(value)}-byte value")
        return value

    def get_head_blocks(self) -> list[bytes]:
        """Core: GetHeadBlocks, [new tip, old tip] while a multi-batch flush was in progress."""
        value = self._db.get(DB_HEAD_BLOCKS)
        if value is None:
            return []
        try:
            r = ByteReader(value)
            heads = r.vector(lambda rr: rr.hash256("head block"), "head blocks", min_item_size=32)
            r.expect_end("head blocks")
        except DeserializationError as exc:
            raise self._corrupt("the head blocks marker", exc) from exc
        return heads

    def batch_write(self, best_block: bytes, old_best: bytes | None,
                    coins: Iterable[tuple[OutPoint, Coin | None]] = ()) -> None:
        """Core: CCoinsViewDB::BatchWrite.

        The head-blocks marker goes in first and the best block last, so that if a future large flush
        is split into several batches, start-up sees `H` and knows the coins are mid-way between two
        tips. In one batch (all we write today) the pair cancels out and only `B` changes.
        """
        # Core writes [new tip, old tip], the old one zero on the first flush.
        heads = [best_block, old_best if old_best is not None else ZERO_HASH]
        ops: list[tuple[bytes, bytes | None]] = [
            (DB_BEST_BLOCK, None),
            (DB_HEAD_BLOCKS, ser_compact_size(len(heads)) + b"".join(heads)),
        ]
        # coin_key(op), inlined: a flush writes every coin of the cache.
        small = _SMALL_INDEX
        ops += [(DB_COIN + txid + (small[n] if 0 <= n < 128 else ser_varint(n)),
                 None if coin is None else coin.serialize()) for (txid, n), coin in coins]
        ops += [(DB_HEAD_BLOCKS, None), (DB_BEST_BLOCK, best_block)]
        self._db.write_batch(ops, sync=True)
