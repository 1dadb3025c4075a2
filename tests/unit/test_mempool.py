"""Mempool acceptance against a real regtest chain: reject reasons, packages, RBF, eviction, expiry,
mempool.dat, reorgs and block templates built from the pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_builder import OP_TRUE, ChainBuilder, spend, submit_all

from aipgd.chain.chainstate import ChainState
from aipgd.core.block import Block
from aipgd.core.params import ChainParams
from aipgd.core.transaction import COIN, OutPoint, Transaction
from aipgd.mempool.accept import MempoolOptions
from aipgd.mempool.manager import MempoolManager
from aipgd.mempool.txmempool import AncestorLimits
from aipgd.mining.selection import select_block_transactions
from aipgd.script.opcodes import Op

BASE_HEIGHT = 105
FEE = 1_000_000  # 0.01 AIPG: the minimum relay fee for 1 kB
P2PKH = bytes((Op.OP_DUP, Op.OP_HASH160, 20)) + bytes(20) + bytes((Op.OP_EQUALVERIFY, Op.OP_CHECKSIG))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def base(builder: ChainBuilder, params: ChainParams) -> list[Block]:
    """105 blocks paying OP_TRUE: the first 5 coinbases are mature at the next height."""
    return builder.chain(params.genesis_hash, BASE_HEIGHT)


@pytest.fixture
def clock(base: list[Block]) -> Clock:
    return Clock(base[-1].header.time + 60)


def make_pool(chain: ChainState, netdir: Path, clock: Clock, **options: object) -> MempoolManager:
    mgr = MempoolManager(chain.params, chain, MempoolOptions(**options), datadir=netdir,  # type: ignore[arg-type]
                         clock=clock)
    mgr.start()
    return mgr


@pytest.fixture
def pool(chain: ChainState, netdir: Path, clock: Clock) -> Iterator[MempoolManager]:
    mgr = make_pool(chain, netdir, clock)
    yield mgr
    mgr.chainstate.signals.unsubscribe(mgr)


def cb(block: Block) -> OutPoint:
    return OutPoint(block.vtx[0].txid, 0)


def value_of(block: Block) -> int:
    return block.vtx[0].vout[0].value


def pay(prevout: OutPoint, value: int, fee: int = FEE, n: int = 1, **kw: object) -> Transaction:
    each = (value - fee) // n
    return spend([prevout], [(each, OP_TRUE)] * n, **kw)  # type: ignore[arg-type]


def reason(mgr: MempoolManager, tx: Transaction, **kw: object) -> str:
    result = mgr.accept(tx, **kw)  # type: ignore[arg-type]
    assert not result.accepted
    return result.state.reject_reason


# -- acceptance and reject reasons ----------------------------------------------------------------


def test_accepts_a_spend_and_its_child(pool: MempoolManager, base: list[Block]) -> None:
    parent = pay(cb(base[0]), value_of(base[0]), n=2)
    result = pool.accept(parent)
    assert result.accepted, result.state
    assert result.fee == FEE
    child = pay(OutPoint(parent.txid, 0), parent.vout[0].value)
    assert pool.accept(child).accepted
    p = pool.pool.get(parent.txid)
    c = pool.pool.get(child.txid)
    assert p is not None and c is not None
    assert p.count_with_descendants == 2 and c.count_with_ancestors == 2
    assert c.mod_fees_with_ancestors == 2 * FEE
    assert p.size_with_descendants == p.vsize + c.vsize
    assert reason(pool, parent) == "txn-already-in-mempool"
    double = pay(cb(base[0]), value_of(base[0]), fee=2 * FEE)
    assert reason(pool, double) == "txn-mempool-conflict"


def test_reject_reasons(pool: MempoolManager, base: list[Block], chain: ChainState) -> None:
    value = value_of(base[1])
    orphan = pay(OutPoint(b"\x11" * 32, 0), value)
    result = pool.accept(orphan)
    assert result.missing_inputs and not result.accepted and result.state.is_valid()
    assert reason(pool, base[1].vtx[0]) == "coinbase"
    tip_height = chain.tip.height  # type: ignore[union-attr]
    assert reason(pool, pay(cb(base[1]), value, locktime=tip_height + 5, sequence=0)) == "non-final"
    assert reason(pool, pay(cb(base[1]), value, fee=1000)) == "min relay fee not met"
    assert reason(pool, pay(cb(base[1]), value, fee=10 * COIN), absurd_fee=COIN) == "absurdly-high-fee"
    assert reason(pool, pay(cb(base[-1]), value_of(base[-1]))) == "bad-txns-premature-spend-of-coinbase"
    assert reason(pool, spend([cb(base[1])], [(value + 1, OP_TRUE)])) == "bad-txns-in-belowout"
    assert reason(pool, spend([cb(base[1])], [])) == "bad-txns-vout-empty"
    # BIP68: a relative lock of 200 blocks on a coin at height 1 is not final at height 106.
    assert reason(pool, pay(cb(base[0]), value_of(base[0]), sequence=200)) == "non-BIP68-final"


def test_script_failures_name_mandatory_and_policy_flags(pool: MempoolManager, base: list[Block]) -> None:
    value = value_of(base[2])
    nop = bytes((Op.OP_NOP10, Op.OP_1))
    parent = spend([cb(base[2])], [((value - FEE) // 2, nop), ((value - FEE) // 2, b"\x00")])
    assert pool.accept(parent).accepted
    policy = reason(pool, pay(OutPoint(parent.txid, 0), parent.vout[0].value))
    assert policy.startswith("non-mandatory-script-verify-flag (NOPx reserved for soft-fork upgrades")
    consensus = reason(pool, pay(OutPoint(parent.txid, 1), parent.vout[1].value))
    assert consensus.startswith("mandatory-script-verify-flag-failed (")


def test_standardness_reasons(chain: ChainState, netdir: Path, clock: Clock, base: list[Block]) -> None:
    mgr = make_pool(chain, netdir, clock, require_standard=True)
    value = value_of(base[0])
    assert reason(mgr, pay(cb(base[0]), value)) == "scriptpubkey"
    assert reason(mgr, spend([cb(base[0])], [(1, P2PKH)])) == "dust"
    assert reason(mgr, spend([cb(base[0])], [(value - FEE, P2PKH)], version=3)) == "version"
    assert reason(mgr, spend([cb(base[0])], [(value - FEE, P2PKH)], script_sig=bytes((Op.OP_NOP,)))) \
        == "scriptsig-not-pushonly"
    # The OP_TRUE coins the test chain pays are non-standard to spend.
    assert reason(mgr, spend([cb(base[0])], [(value - FEE, P2PKH)])) == "bad-txns-nonstandard-inputs"
    mgr.chainstate.signals.unsubscribe(mgr)


def test_ancestor_limits(chain: ChainState, netdir: Path, clock: Clock, base: list[Block]) -> None:
    mgr = make_pool(chain, netdir, clock, limits=AncestorLimits(3, 250_000, 3, 250_000))
    tx = pay(cb(base[0]), value_of(base[0]))
    for _ in range(3):
        assert mgr.accept(tx).accepted
        tx = pay(OutPoint(tx.txid, 0), tx.vout[0].value)
    result = mgr.accept(tx)
    assert result.state.reject_reason == "too-long-mempool-chain"
    assert "too many unconfirmed ancestors [limit: 3]" in result.state.debug_message
    mgr.chainstate.signals.unsubscribe(mgr)


def test_replace_by_fee(chain: ChainState, netdir: Path, clock: Clock, base: list[Block]) -> None:
    mgr = make_pool(chain, netdir, clock, enable_replacement=True)
    value = value_of(base[0])
    original = pay(cb(base[0]), value, n=2, sequence=0xFFFFFFFD)
    assert mgr.accept(original).accepted
    child = pay(OutPoint(original.txid, 0), original.vout[0].value)
    assert mgr.accept(child).accepted
    unrelated = pay(cb(base[1]), value_of(base[1]))
    assert mgr.accept(unrelated).accepted
    adds = spend([cb(base[0]), OutPoint(unrelated.txid, 0)], [(value, OP_TRUE)])
    assert reason(mgr, adds) == "replacement-adds-unconfirmed"
    spends_own = spend([cb(base[0]), OutPoint(original.txid, 1)], [(value, OP_TRUE)])
    assert reason(mgr, spends_own) == "bad-txns-spends-conflicting-tx"
    # Must pay for both evicted transactions plus its own relay.
    assert reason(mgr, pay(cb(base[0]), value, fee=FEE + 1000)) == "insufficient fee"
    better = pay(cb(base[0]), value, fee=3 * FEE)
    result = mgr.accept(better)
    assert result.accepted, result.state
    assert {t.txid for t in result.replaced} == {original.txid, child.txid}
    assert original.txid not in mgr.pool and child.txid not in mgr.pool
    # `better` does not signal: it cannot be replaced.
    assert reason(mgr, pay(cb(base[0]), value, fee=10 * FEE)) == "txn-mempool-conflict"
    mgr.chainstate.signals.unsubscribe(mgr)


def test_replacement_is_off_by_default(pool: MempoolManager, base: list[Block]) -> None:
    value = value_of(base[0])
    assert pool.accept(pay(cb(base[0]), value, sequence=1)).accepted
    assert reason(pool, pay(cb(base[0]), value, fee=5 * FEE)) == "txn-mempool-conflict"


# -- size limit and expiry -----------------------------------------------------------------------


def test_eviction_raises_the_minimum_fee(chain: ChainState, netdir: Path, clock: Clock,
                                         base: list[Block]) -> None:
    probe = make_pool(chain, netdir, clock)
    cheap = pay(cb(base[0]), value_of(base[0]))
    assert probe.accept(cheap).accepted
    one = probe.pool.usage
    probe.chainstate.signals.unsubscribe(probe)
    mgr = make_pool(chain, netdir, clock, max_mempool_bytes=2 * one + one // 2)
    assert mgr.accept(cheap).accepted
    assert mgr.accept(pay(cb(base[1]), value_of(base[1]), fee=3 * FEE)).accepted
    assert mgr.accept(pay(cb(base[2]), value_of(base[2]), fee=4 * FEE)).accepted
    assert cheap.txid not in mgr.pool and len(mgr.pool) == 2
    assert mgr.pool.get_min_fee(mgr.options.max_mempool_bytes).per_k > 0
    # A transaction below the rolling minimum is refused before its scripts are checked.
    assert reason(mgr, pay(cb(base[3]), value_of(base[3]))) == "mempool min fee not met"
    # Above the floor but the worst in a full pool: accepted, then evicted at once.
    assert reason(mgr, pay(cb(base[3]), value_of(base[3]), fee=2 * FEE)) == "mempool full"
    mgr.chainstate.signals.unsubscribe(mgr)


def test_expiry(pool: MempoolManager, base: list[Block], clock: Clock) -> None:
    old = pay(cb(base[0]), value_of(base[0]))
    assert pool.accept(old).accepted
    child = pay(OutPoint(old.txid, 0), old.vout[0].value)
    assert pool.accept(child).accepted
    clock.now += 336 * 3600 + 1
    assert pool.accept(pay(cb(base[1]), value_of(base[1]))).accepted
    assert old.txid not in pool.pool and child.txid not in pool.pool and len(pool.pool) == 1


# -- persistence -----------------------------------------------------------------------------------


def test_mempool_dat_round_trip(chain: ChainState, netdir: Path, clock: Clock, base: list[Block]) -> None:
    mgr = make_pool(chain, netdir, clock)
    parent = pay(cb(base[0]), value_of(base[0]))
    child = pay(OutPoint(parent.txid, 0), parent.vout[0].value)
    assert mgr.accept(parent).accepted and mgr.accept(child).accepted
    mgr.pool.prioritise(child.txid, 12345)
    mgr.pool.prioritise(b"\x22" * 32, 7)
    mgr.stop()
    assert (netdir / "mempool.dat").exists()
    again = make_pool(chain, netdir, clock)
    assert set(again.pool.entries) == {parent.txid, child.txid}
    entry = again.pool.get(child.txid)
    assert entry is not None and entry.fee_delta == 12345 and entry.time == int(clock.now)
    assert again.pool.deltas[b"\x22" * 32] == 7
    again.chainstate.signals.unsubscribe(again)


# -- the chain moving ---------------------------------------------------------------------------------


def test_block_removes_and_reorg_returns(pool: MempoolManager, base: list[Block], builder: ChainBuilder,
                                        chain: ChainState) -> None:
    parent = pay(cb(base[0]), value_of(base[0]))
    child = pay(OutPoint(parent.txid, 0), parent.vout[0].value)
    conflict = pay(cb(base[1]), value_of(base[1]))
    assert pool.accept(child).missing_inputs
    assert pool.accept(conflict).accepted
    other = pay(cb(base[1]), value_of(base[1]), fee=2 * FEE)
    block = builder.block(base[-1].hash, [parent, other], fees=FEE * 3)
    assert chain.process_new_block(block)
    assert len(pool.pool) == 0  # the conflict went with the block
    assert reason(pool, parent) == "txn-already-known"
    assert pool.accept(child).accepted
    assert chain.invalidate_block(block.hash)
    # Both block transactions are back, linked to the child that stayed.
    assert set(pool.pool.entries) == {parent.txid, other.txid, child.txid}
    p = pool.pool.get(parent.txid)
    c = pool.pool.get(child.txid)
    assert p is not None and c is not None
    assert p.count_with_descendants == 2 and c.count_with_ancestors == 2 and c.parents == {parent.txid}


def test_template_takes_best_packages_and_connects(pool: MempoolManager, base: list[Block],
                                                   builder: ChainBuilder, chain: ChainState) -> None:
    low = pay(cb(base[0]), value_of(base[0]))
    # A child paying a lot lifts its low-fee parent above the middle transaction.
    rich_child = pay(OutPoint(low.txid, 0), low.vout[0].value, fee=20 * FEE)
    middle = pay(cb(base[1]), value_of(base[1]), fee=5 * FEE)
    for tx in (low, rich_child, middle):
        assert pool.accept(tx).accepted
    tip = chain.tip
    txs, fees = select_block_transactions(pool, tip, chain.params)
    assert [t.txid for t in txs] == [low.txid, rich_child.txid, middle.txid]
    assert fees == 26 * FEE
    # Room for one package only: the best one.
    small, _ = select_block_transactions(pool, tip, chain.params, max_weight=4000 + 4 * (
        pool.pool.get(low.txid).vsize + pool.pool.get(rich_child.txid).vsize) + 1)  # type: ignore[union-attr]
    assert [t.txid for t in small] == [low.txid, rich_child.txid]
    block = builder.block(base[-1].hash, txs, fees=fees)
    assert chain.process_new_block(block)
    assert chain.tip.block_hash == block.hash  # type: ignore[union-attr]
    assert len(pool.pool) == 0


def test_reorg_to_a_competing_chain(pool: MempoolManager, base: list[Block], builder: ChainBuilder,
                                    chain: ChainState) -> None:
    parent = pay(cb(base[0]), value_of(base[0]))
    child = pay(OutPoint(parent.txid, 0), parent.vout[0].value)
    other = pay(cb(base[1]), value_of(base[1]))
    b1 = builder.block(base[-1].hash, [parent, other], fees=2 * FEE)
    b2 = builder.block(b1.hash, [child], fees=FEE)
    submit_all(chain, [b1, b2])
    assert len(pool.pool) == 0
    double = pay(cb(base[0]), value_of(base[0]), fee=3 * FEE)
    c1 = builder.block(base[-1].hash, [double], fees=3 * FEE)
    c2 = builder.block(c1.hash)
    c3 = builder.block(c2.hash)
    submit_all(chain, [c1, c2, c3])
    assert chain.tip.block_hash == c3.hash  # type: ignore[union-attr]
    # `parent` lost to the double spend and took its child along; `other` waits for a new block.
    assert set(pool.pool.entries) == {other.txid}


def test_reorg_drops_spends_of_coinbases_no_longer_mature(pool: MempoolManager, base: list[Block],
                                                          chain: ChainState) -> None:
    young = pay(cb(base[4]), value_of(base[4]))  # a coinbase at height 5, mature at 105
    assert pool.accept(young).accepted
    assert chain.invalidate_block(base[-2].hash)
    assert chain.tip.height == 103  # type: ignore[union-attr]
    assert young.txid not in pool.pool


def test_confirmations_feed_the_fee_estimator(pool: MempoolManager, base: list[Block], builder: ChainBuilder,
                                              chain: ChainState) -> None:
    first = builder.block(base[-1].hash)
    assert chain.process_new_block(first)
    assert pool.estimator.best_seen_height == BASE_HEIGHT + 1
    plain = pay(cb(base[0]), value_of(base[0]))
    child = pay(OutPoint(plain.txid, 0), plain.vout[0].value)
    assert pool.accept(plain).accepted and pool.accept(child).accepted
    # Transactions with unconfirmed parents are not tracked (Core: validForFeeEstimation).
    assert set(pool.estimator.mempool_txs) == {plain.txid}
    txs, fees = select_block_transactions(pool, chain.tip, chain.params)
    assert chain.process_new_block(builder.block(first.hash, txs, fees=fees))
    assert pool.estimator.mempool_txs == {}
    assert sum(pool.estimator.fee_stats.tx_ct_avg) == pytest.approx(1.0)
