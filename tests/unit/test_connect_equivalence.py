"""Block connection's faster paths give exactly what the code they replaced gave.

Undo records and coin records against the straightforward encoders, the fused spend (fetch, then
spend) and the any-of HaveCoin against their one-step originals, a child cache merged into its
parent against a copy-based merge, the list-based CheckTxInputs against the mapping-based one, and a
whole -reindex-chainstate with scripts skipped (assumevalid) against one with every script checked.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from aipgd.chain import activation
from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.coins import Coin, compress_amount, compress_script
from aipgd.chain.coinsview import DIRTY, FRESH, CacheEntry, CoinsViewCache, CoinsViewDB
from aipgd.chain.connect import connect_block
from aipgd.chain.undo import deserialize_block_undo, serialize_block_undo
from aipgd.consensus.tx_verify import check_spent_inputs, check_tx_inputs
from aipgd.core.block import Block, BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.merkle import merkle_root
from aipgd.core.params import get_params
from aipgd.core.serialize import ser_compact_size, ser_varint
from aipgd.core.transaction import (
    MAX_MONEY,
    NULL_OUTPOINT,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    parsed_txin,
    parsed_txout,
)
from aipgd.core.uint256 import ZERO_HASH
from aipgd.script.script import push_int

P2PKH = bytes.fromhex("76a914") + b"\x11" * 20 + bytes.fromhex("88ac")
P2SH = bytes.fromhex("a914") + b"\x22" * 20 + bytes.fromhex("87")
P2PK = bytes((33, 2)) + b"\x33" * 32 + bytes((0xAC,))


def _reference_varint(n: int) -> bytes:
    out = bytearray([n & 0x7F])
    while n > 0x7F:
        n = (n >> 7) - 1
        out.append((n & 0x7F) | 0x80)
    out.reverse()
    return bytes(out)


def _reference_txin_undo(coin: Coin) -> bytes:
    """The undo record as it was written before (Core: TxInUndoSerializer)."""
    out = _reference_varint(coin.height * 2 + int(coin.coinbase))
    if coin.height > 0:
        out += b"\x00"
    return out + _reference_varint(compress_amount(coin.out.value)) + compress_script(coin.out.script_pubkey)


def _reference_block_undo(block_undo: list[list[Coin]]) -> bytes:
    parts = [ser_compact_size(len(block_undo))]
    for tx_undo in block_undo:
        parts.append(ser_compact_size(len(tx_undo)))
        parts.extend(_reference_txin_undo(coin) for coin in tx_undo)
    return b"".join(parts)


def _script(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return P2PKH[:3] + rng.randbytes(20) + P2PKH[23:]
    if kind == 1:
        return P2SH
    if kind == 2:
        return P2PK
    if kind == 3:
        return P2PKH[:24]  # almost P2PKH: the general path
    if kind == 4:
        return b""
    return rng.randbytes(rng.randrange(1, 120))


def _coin(rng: random.Random) -> Coin:
    # (Amounts with no trailing zeros near MAX_MONEY compress past 64 bits: no such coin exists.)
    value = rng.choice((0, 1, 10, 5000, 100_000_000, MAX_MONEY, rng.randrange(10**17)))
    height = rng.choice((0, 1, 63, 64, 127, 8255, 8256, 1 << 20, rng.randrange(1 << 31)))
    return Coin(TxOut(value, _script(rng)), height, rng.random() < 0.2)


def test_ser_varint_matches_the_loop() -> None:
    for n in [*range(0, 40_000), 0x4080 * 128, 0x204080, 1 << 32, (1 << 63) + 12345]:
        assert ser_varint(n) == _reference_varint(n), n


def test_undo_and_coin_records_match_the_reference_encoding() -> None:
    rng = random.Random(5)
    for _ in range(300):
        block_undo = [[_coin(rng) for _ in range(rng.randrange(0, 4))] for _ in range(rng.randrange(0, 6))]
        raw = serialize_block_undo(block_undo)
        assert raw == _reference_block_undo(block_undo)
        assert deserialize_block_undo(raw) == block_undo
        for tx_undo in block_undo:
            for coin in tx_undo:
                expected = (_reference_varint(coin.height * 2 + int(coin.coinbase))
                            + _reference_varint(compress_amount(coin.out.value))
                            + compress_script(coin.out.script_pubkey))
                assert coin.serialize() == expected
                assert Coin.from_bytes(expected) == coin


def test_parsed_constructors_give_the_class_objects() -> None:
    prevout = OutPoint(b"\x01" * 32, 3)
    assert parsed_txin(prevout, b"\x51", 7) == TxIn(prevout, b"\x51", 7)
    assert parsed_txin(prevout, b"", 1, (b"w",)) == TxIn(prevout, b"", 1, (b"w",))
    assert parsed_txout(5, P2PKH) == TxOut(5, P2PKH)
    tx = Transaction(2, (TxIn(prevout, b"\x51", 7),), (TxOut(5, P2PKH),), 9)
    raw = tx.serialize()
    fast = Transaction.parsed(2, tx.vin, tx.vout, 9, txid=tx.txid, wtxid=None, total_size=len(raw),
                              base_size=len(raw))
    assert fast == tx and fast.txid == tx.txid and fast.wtxid == tx.wtxid
    assert (fast.total_size, fast.base_size, fast.weight) == (tx.total_size, tx.base_size, tx.weight)
    assert Transaction.from_bytes(raw) == fast


def test_check_spent_inputs_agrees_with_check_tx_inputs() -> None:
    rng = random.Random(9)
    for _ in range(500):
        prevouts = [OutPoint(rng.randbytes(32), rng.randrange(3)) for _ in range(rng.randrange(1, 4))]
        coins = {op: Coin(TxOut(rng.choice((-1, 0, 10, 1000, MAX_MONEY, MAX_MONEY + 1)), P2PKH),
                          rng.randrange(1, 300), rng.random() < 0.5)
                 for op in prevouts if rng.random() < 0.9}
        vout = tuple(TxOut(rng.choice((0, 5, 900, MAX_MONEY, MAX_MONEY + 1)), P2PKH)
                     for _ in range(rng.randrange(1, 3)))
        tx = Transaction(2, tuple(TxIn(op) for op in prevouts), vout, 0)
        height = rng.randrange(1, 400)
        expected = check_tx_inputs(tx, coins, height, 100)
        spent: list[Coin | None] = []
        for op in prevouts:  # as ConnectBlock looks them up: stop at the first missing one
            spent.append(coins.get(op))
            if spent[-1] is None:
                break
        assert check_spent_inputs(tx, spent, height, 100) == expected


@pytest.fixture
def stack(tmp_path: Path) -> tuple[ChainStateDB, CoinsViewCache]:
    db = ChainStateDB(tmp_path / "chainstate")
    db.start()
    yield db, CoinsViewCache(CoinsViewDB(db))
    db.stop()


def _outpoint(i: int) -> OutPoint:
    return OutPoint(bytes([i]) * 32, i % 3)


def _layers(db: ChainStateDB, tip: CoinsViewCache) -> None:
    """Coins 0-9 in the database, 10-19 fresh in the tip, 20-24 spent-but-dirty in the tip."""
    coins = [(_outpoint(i), Coin(TxOut(1000 + i, P2PKH), 5, i % 2 == 0)) for i in range(10)]
    db.batch_write(b"\x01" * 32, None, coins)
    tip.set_best_block(b"\x01" * 32)
    for i in range(10, 25):
        tip.add_coin(_outpoint(i), Coin(TxOut(2000 + i, P2PKH), 6, False), False)
    for i in range(20, 25):
        tip.entries[_outpoint(i)] = CacheEntry(None, DIRTY)
    tip.get_coin(_outpoint(3))  # one database coin already cached


def _snapshot(view: CoinsViewCache) -> tuple[dict[OutPoint, tuple[Coin | None, int]], int]:
    return {op: (e.coin, e.flags) for op, e in view.entries.items()}, view.memory_usage()


def _reference_spend(view: CoinsViewCache, outpoint: OutPoint) -> Coin | None:
    """SpendCoin as two steps: FetchCoin, then spend the fetched entry."""
    entry = view._fetch(outpoint)
    if entry is None or entry.coin is None:
        return None
    coin = entry.coin
    view._usage -= 420 + len(coin.out.script_pubkey)
    if entry.flags & FRESH:
        del view.entries[outpoint]
    else:
        entry.flags |= DIRTY
        entry.coin = None
        view._usage += 420
    return coin


def test_spend_coin_matches_fetch_then_spend(tmp_path: Path) -> None:
    for trial in range(4):
        results = []
        for name in ("fused", "reference"):
            db = ChainStateDB(tmp_path / f"{name}-{trial}")
            db.start()
            try:
                tip = CoinsViewCache(CoinsViewDB(db))
                _layers(db, tip)
                view = CoinsViewCache(tip)
                view.add_coin(_outpoint(30), Coin(TxOut(1, P2PKH), 7, False), False)
                order = list(range(32))
                random.Random(trial).shuffle(order)
                spent = []
                for i in order + order[:5]:
                    spend = view.spend_coin if name == "fused" else (
                        lambda op, v=view: _reference_spend(v, op))
                    spent.append(spend(_outpoint(i)))
                results.append((spent, _snapshot(view), _snapshot(tip)))
            finally:
                db.stop()
        assert results[0] == results[1]


def test_have_any_coin_is_any_of_have_coin(stack: tuple[ChainStateDB, CoinsViewCache]) -> None:
    db, tip = stack
    _layers(db, tip)
    view = CoinsViewCache(tip)
    view.add_coin(_outpoint(30), Coin(TxOut(1, P2PKH), 7, False), False)
    view.spend_coin(_outpoint(4))  # spent here, unspent below
    rng = random.Random(11)
    for _ in range(300):
        picks = [_outpoint(rng.randrange(40)) for _ in range(rng.randrange(0, 4))]
        expected = any(CoinsViewCache.have_coin(view, op) for op in picks)
        assert view.have_any_coin(picks) == expected, picks


def _usage(coin: Coin | None) -> int:
    return 420 + (len(coin.out.script_pubkey) if coin is not None else 0)


def _reference_batch_write(parent: CoinsViewCache, entries: dict[OutPoint, CacheEntry], best: bytes) -> None:
    """CCoinsViewCache::BatchWrite copying each entry (the merge before entries were adopted)."""
    for outpoint, child in entries.items():
        if not child.flags & DIRTY:
            continue
        ours = parent.entries.get(outpoint)
        if ours is None:
            if not (child.flags & FRESH and child.coin is None):
                parent.entries[outpoint] = CacheEntry(child.coin, DIRTY | (child.flags & FRESH))
                parent._usage += _usage(child.coin)
        else:
            if child.flags & FRESH and ours.coin is not None:
                raise AssertionError("FRESH flag misapplied")
            if ours.flags & FRESH and child.coin is None:
                parent._usage -= _usage(ours.coin)
                del parent.entries[outpoint]
            else:
                parent._usage += _usage(child.coin) - _usage(ours.coin)
                ours.coin = child.coin
                ours.flags |= DIRTY
    parent._best_block = best


def test_child_merge_matches_a_copying_merge(tmp_path: Path) -> None:
    results = []
    for name in ("adopt", "copy"):
        db = ChainStateDB(tmp_path / name)
        db.start()
        try:
            tip = CoinsViewCache(CoinsViewDB(db))
            _layers(db, tip)
            view = CoinsViewCache(tip)
            for i in (1, 4, 12, 21, 11):
                view.spend_coin(_outpoint(i))
            view.add_coin(_outpoint(30), Coin(TxOut(1, P2PKH), 7, False), False)
            view.add_coin(_outpoint(31), Coin(TxOut(2, P2PKH), 7, False), False)
            view.spend_coin(_outpoint(31))  # created and spent in the child: never reaches the tip
            view.add_coin(_outpoint(22), Coin(TxOut(3, P2PKH), 7, False), False)  # re-created
            view.get_coin(_outpoint(6))  # fetched, not dirty: not merged
            view.set_best_block(b"\x02" * 32)
            if name == "adopt":
                view.flush()
            else:
                _reference_batch_write(tip, view.entries, b"\x02" * 32)
            results.append((_snapshot(tip), tip.get_best_block()))
        finally:
            db.stop()
    assert results[0] == results[1]


def _load_bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "contrib" / "bench" / "connect_bench.py"
    spec = importlib.util.spec_from_file_location("connect_bench_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_assumevalid_and_full_reindex_give_the_same_utxo_set(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load_bench()
    pristine = tmp_path / "pristine"
    bench.build(pristine, 12, 6)
    stats = {}
    for mode in ("full", "assumevalid"):
        run = tmp_path / mode
        shutil.copytree(pristine, run)
        # measure() lowers the burial rule for its assumevalid run; put it back afterwards.
        monkeypatch.setattr(activation, "ASSUMEVALID_MIN_BURY_SECONDS",
                            activation.ASSUMEVALID_MIN_BURY_SECONDS)
        result = bench.measure(run, mode, 8, 1)
        assert result["tip_height"] == bench.MATURITY_BLOCKS + 12
        assert result["inputs"] > bench.MATURITY_BLOCKS + 12 + 6
        params = bench._params()
        cs = bench._open(run, params, bench.ChainStateOptions(check_blocks=0))
        try:
            stats[mode] = cs.utxo_stats()
            tip = cs.tip
            assert tip is not None
            # Both wrote the same undo data for every block.
            stats[mode + "-undo"] = [cs.read_undo(tip.get_ancestor(h)) for h in range(1, tip.height + 1)]
        finally:
            bench._close(cs)
    assert stats["full"] == stats["assumevalid"]
    assert stats["full-undo"] == stats["assumevalid-undo"]
    assert stats["full"].outputs > 12 * 6


def _block_on(prev: BlockIndex, txs: list[Transaction]) -> tuple[Block, BlockIndex]:
    height = prev.height + 1
    coinbase = Transaction(2, (TxIn(NULL_OUTPOINT, push_int(height) + b"\x00", 0xFFFFFFFF),),
                           (TxOut(0, P2PKH),), 0)
    vtx = (coinbase, *txs)
    root, _ = merkle_root([tx.txid for tx in vtx])
    header = BlockHeader(0x30000000, prev.block_hash, root, prev.time + 60, 0x207FFFFF)
    return Block(header, vtx), BlockIndex(sha256d(header.serialize()), header, prev, height)


@pytest.mark.parametrize("where", ["database", "tip cache"])
def test_new_output_over_an_unspent_one_is_bad_txns_bip30(tmp_path: Path, where: str) -> None:
    params = get_params("regtest")
    genesis = BlockIndex(b"\x07" * 32, BlockHeader(0x30000000, ZERO_HASH, ZERO_HASH, 1_600_000_000,
                                                   0x207FFFFF), None, 0)
    funding = [OutPoint(b"\x0a" * 32, n) for n in range(2)]
    spend_one = Transaction(2, (TxIn(funding[0], b"\x51"),), (TxOut(10, P2PKH), TxOut(20, P2PKH)), 0)
    db = ChainStateDB(tmp_path / "chainstate")
    db.start()
    try:
        coins = [(op, Coin(TxOut(100, P2PKH), 0, False)) for op in funding]
        if where == "database":
            coins.append((OutPoint(spend_one.txid, 1), Coin(TxOut(20, P2PKH), 0, False)))
        db.batch_write(genesis.block_hash, None, coins)
        tip = CoinsViewCache(CoinsViewDB(db))
        if where == "tip cache":
            tip.add_coin(OutPoint(spend_one.txid, 1), Coin(TxOut(20, P2PKH), 0, False), False)
        txs = [spend_one]
        block, index = _block_on(genesis, txs)
        result = connect_block(block, index, CoinsViewCache(tip), params, script_checks=False)
        assert result.state.reject_reason == "bad-txns-BIP30"
        # Without the duplicate every transaction connects: what fails then is only the coinbase
        # reward rule (checked after them), since this coinbase lacks the community output.
        clean = CoinsViewCache(CoinsViewDB(db))
        if where == "database":
            clean.spend_coin(OutPoint(spend_one.txid, 1))
        result = connect_block(block, index, CoinsViewCache(clean), params, script_checks=False)
        assert result.state.reject_reason == "bad-cb-community-autonomous-amount", result.state
    finally:
        db.stop()


def test_journal_connection_matches_a_merged_block_view_and_rolls_back(tmp_path: Path) -> None:
    bench = _load_bench()
    pristine = tmp_path / "pristine"
    bench.build(pristine, 10, 5)
    params = bench._params()
    cs = bench._open(pristine, params, bench.ChainStateOptions(check_blocks=0))
    try:
        best = cs.best_header
        assert best is not None
        indexes = [best.get_ancestor(h) for h in range(best.height + 1)]
        blocks = [cs.read_block(index) for index in indexes]
    finally:
        bench._close(cs)
    caches = []
    for name in ("journal", "merged"):
        db = ChainStateDB(tmp_path / name)
        db.start()
        tip = CoinsViewCache(CoinsViewDB(db))
        tip.set_best_block(indexes[0].block_hash)
        caches.append((db, tip))
    try:
        (_, journaled), (_, merged) = caches
        for n, (index, block) in enumerate(zip(indexes[1:], blocks[1:], strict=True), 1):
            if n % 40 == 0:  # some coins come from the database, not the cache
                journaled.flush()
                merged.flush()
            if block.vtx[1:]:
                # A block whose last transaction spends nothing that exists fails after the others
                # changed the cache: the journal takes every change back.
                bad_tx = Transaction(2, (TxIn(OutPoint(b"\x0e" * 32, 0), b"\x51"),), (TxOut(1, P2PKH),), 0)
                vtx = (*block.vtx, bad_tx)
                root, _ = merkle_root([tx.txid for tx in vtx])
                bad = Block(block.header.with_fields(merkle_root=root), vtx)
                before = _snapshot(journaled), journaled.get_best_block()
                journaled.begin_journal()
                result = connect_block(bad, index, journaled, params, script_checks=False)
                assert result.state.reject_reason == "bad-txns-inputs-missingorspent"
                journaled.rollback_journal()
                assert (_snapshot(journaled), journaled.get_best_block()) == before
            journaled.begin_journal()
            result = connect_block(block, index, journaled, params, script_checks=False)
            assert result.state, result.state
            journaled.commit_journal()
            view = CoinsViewCache(merged)
            expected = connect_block(block, index, view, params, script_checks=False)
            assert expected.state and expected.undo == result.undo
            view.flush()
            assert _snapshot(journaled) == _snapshot(merged)
            assert journaled.get_best_block() == merged.get_best_block() == index.block_hash
    finally:
        for db, _ in caches:
            db.stop()
