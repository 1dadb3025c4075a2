"""Pure mempool pieces: standardness, dust, fee rates, package bookkeeping, the fee estimator and
mempool.dat / fee_estimates.dat round trips."""

from __future__ import annotations

from pathlib import Path

from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.mempool.fees import BlockPolicyEstimator
from aipgd.mempool.persist import dump_mempool, load_mempool
from aipgd.mempool.policy import (
    FeeRate,
    StandardPolicy,
    are_inputs_standard,
    dust_threshold,
    is_standard_tx,
    is_witness_standard,
    virtual_size,
)
from aipgd.mempool.txmempool import AncestorLimits, LimitError, Mempool, MempoolEntry, RemovalReason
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script

KEY = b"\x02" + bytes(32)
P2PKH = bytes((Op.OP_DUP, Op.OP_HASH160, 20)) + bytes(20) + bytes((Op.OP_EQUALVERIFY, Op.OP_CHECKSIG))
P2SH = bytes((Op.OP_HASH160, 20)) + bytes(20) + bytes((Op.OP_EQUAL,))
P2WSH = bytes((Op.OP_0, 32)) + bytes(32)


def tx_with(outputs: list[tuple[int, bytes]], *, script_sig: bytes = b"\x51", version: int = 2,
            prev: OutPoint | None = None, witness: tuple[bytes, ...] = ()) -> Transaction:
    prevout = prev or OutPoint(b"\x01" * 32, 0)
    return Transaction(version, (TxIn(prevout, script_sig, 0xFFFFFFFF, witness),),
                       tuple(TxOut(v, s) for v, s in outputs), 0)


def test_is_standard_tx_reasons() -> None:
    assert is_standard_tx(tx_with([(100_000, P2PKH)])) is None
    assert is_standard_tx(tx_with([(100_000, P2PKH)], version=3)) == "version"
    assert is_standard_tx(tx_with([(100_000, P2PKH)], version=0)) == "version"
    not_push_only = tx_with([(100_000, P2PKH)], script_sig=bytes((Op.OP_DUP,)))
    assert is_standard_tx(not_push_only) == "scriptsig-not-pushonly"
    assert is_standard_tx(tx_with([(100_000, P2PKH)], script_sig=build_script(bytes(520), bytes(520),
                                                                              bytes(520), bytes(100)))) \
        == "scriptsig-size"
    assert is_standard_tx(tx_with([(100_000, b"\x51")])) == "scriptpubkey"
    assert is_standard_tx(tx_with([(545, P2PKH)])) == "dust"
    assert is_standard_tx(tx_with([(546, P2PKH)])) is None
    big = tx_with([(100_000, P2PKH)] * 3000)
    assert is_standard_tx(big) == "tx-size"
    data = build_script(Op.OP_RETURN, b"x" * 80)
    assert is_standard_tx(tx_with([(0, data)])) is None
    assert is_standard_tx(tx_with([(0, data), (0, data)])) == "multi-op-return"
    assert is_standard_tx(tx_with([(0, build_script(Op.OP_RETURN, b"x" * 81))])) == "scriptpubkey"
    assert is_standard_tx(tx_with([(0, data)]), StandardPolicy(accept_datacarrier=False)) == "scriptpubkey"
    bare = build_script(1, KEY, KEY, 2, Op.OP_CHECKMULTISIG)
    assert is_standard_tx(tx_with([(100_000, bare)])) is None
    assert is_standard_tx(tx_with([(100_000, bare)]), StandardPolicy(permit_bare_multisig=False)) \
        == "bare-multisig"
    four = build_script(1, KEY, KEY, KEY, KEY, 4, Op.OP_CHECKMULTISIG)
    assert is_standard_tx(tx_with([(100_000, four)])) == "scriptpubkey"


def test_dust_and_fee_rates() -> None:
    # 34-byte P2PKH output + 148 to spend it, at 3000 sat/kB.
    assert dust_threshold(TxOut(0, P2PKH)) == 546
    assert dust_threshold(TxOut(0, P2WSH)) == (43 + 67) * 3
    assert dust_threshold(TxOut(0, build_script(Op.OP_RETURN))) == 0
    assert FeeRate(1000).fee(250) == 250
    assert FeeRate(1).fee(10) == 1  # never rounds a positive fee to zero
    assert FeeRate.from_fee(1000, 250).per_k == 4000
    assert virtual_size(401) == 101
    assert virtual_size(400, sigop_cost=100) == 500


def test_inputs_and_witness_standardness() -> None:
    redeem = build_script(*([Op.OP_CHECKSIG] * 16))
    spend_p2sh = tx_with([(1, P2PKH)], script_sig=build_script(redeem))
    assert not are_inputs_standard(spend_p2sh, [TxOut(1, P2SH)])
    ok = tx_with([(1, P2PKH)], script_sig=build_script(build_script(*([Op.OP_CHECKSIG] * 15))))
    assert are_inputs_standard(ok, [TxOut(1, P2SH)])
    assert not are_inputs_standard(ok, [TxOut(1, b"\x51")])
    p2wsh = [TxOut(1, P2WSH)]
    assert is_witness_standard(tx_with([(1, P2PKH)], script_sig=b"", witness=(b"a", b"\x51")), p2wsh)
    too_big_item = (bytes(81), b"\x51")
    assert not is_witness_standard(tx_with([(1, P2PKH)], script_sig=b"", witness=too_big_item), p2wsh)
    # Witness data for a non-witness output.
    assert not is_witness_standard(tx_with([(1, P2PKH)], witness=(b"a",)), [TxOut(1, P2PKH)])


def _entry(tx: Transaction, fee: int, time: int = 1000, height: int = 1) -> MempoolEntry:
    return MempoolEntry(tx, fee, time, height, False, 4, tx.weight // 4)


def _chain_tx(prev: OutPoint, value: int = 10_000) -> Transaction:
    return tx_with([(value, P2PKH), (value, P2PKH)], prev=prev)


def test_package_bookkeeping_and_removal() -> None:
    pool = Mempool()
    a = _chain_tx(OutPoint(b"\x05" * 32, 0))
    b = _chain_tx(OutPoint(a.txid, 0))
    c = _chain_tx(OutPoint(b.txid, 0))
    for tx, fee in ((a, 100), (b, 200), (c, 300)):
        pool.add_unchecked(_entry(tx, fee))
    ea, eb, ec = (pool.entries[t.txid] for t in (a, b, c))
    assert ea.count_with_descendants == 3 and ea.mod_fees_with_descendants == 600
    assert ec.count_with_ancestors == 3 and ec.mod_fees_with_ancestors == 600
    pool.prioritise(b.txid, 1000)
    assert ea.mod_fees_with_descendants == 1600 and ec.mod_fees_with_ancestors == 1600
    try:
        pool.calculate_ancestors(100, {c.txid}, AncestorLimits(ancestor_count=3))
        raise AssertionError("limit not enforced")
    except LimitError as exc:
        assert "too many unconfirmed ancestors [limit: 3]" in str(exc)
    # `a` confirmed in a block: b and c stay and lose it as an ancestor.
    confirmed = pool.remove_for_block([a])
    assert [e.txid for e in confirmed] == [a.txid]
    assert eb.count_with_ancestors == 1 and ec.count_with_ancestors == 2 and eb.parents == set()
    # Disconnecting that block puts `a` back under its old children.
    pool.add_unchecked(_entry(a, 100))
    pool.update_transactions_from_block([a.txid])
    ea = pool.entries[a.txid]
    assert ea.count_with_descendants == 3 and ec.count_with_ancestors == 3 and eb.parents == {a.txid}
    removed: list[RemovalReason] = []
    pool.on_removed.append(lambda e, r: removed.append(r))
    pool.remove_recursive(b, RemovalReason.CONFLICT)
    assert set(pool.entries) == {a.txid} and removed == [RemovalReason.CONFLICT] * 2
    assert ea.count_with_descendants == 1 and ea.size_with_descendants == ea.vsize
    assert pool.spender(OutPoint(a.txid, 0)) is None


def test_trim_evicts_lowest_descendant_score() -> None:
    clock = [1000.0]
    pool = Mempool(clock=lambda: clock[0])
    cheap = _chain_tx(OutPoint(b"\x06" * 32, 0))
    rich = _chain_tx(OutPoint(b"\x07" * 32, 0))
    pool.add_unchecked(_entry(cheap, 100))
    pool.add_unchecked(_entry(rich, 100_000))
    pool.trim_to_size(pool.usage - 1)
    assert set(pool.entries) == {rich.txid}
    floor = pool.get_min_fee(10**9)
    assert floor.per_k > FeeRate.from_fee(100, cheap.weight // 4).per_k
    # The floor halves with time once a block has arrived.
    pool.last_rolling_fee_block()
    clock[0] += 12 * 3600 / 4
    assert pool.get_min_fee(10**9).per_k < floor.per_k


def test_mempool_dat_format(tmp_path: Path) -> None:
    a = _chain_tx(OutPoint(b"\x08" * 32, 0))
    entry = _entry(a, 500, time=1234)
    entry.fee_delta = -7
    path = tmp_path / "mempool.dat"
    dump_mempool(path, [entry], {a.txid: -7, b"\x09" * 32: 99})
    data = path.read_bytes()
    assert data[:16] == (1).to_bytes(8, "little") + (1).to_bytes(8, "little")
    records, deltas = load_mempool(path)
    assert records == [(a, 1234, -7)] and deltas == {b"\x09" * 32: 99}


def test_fee_estimator_learns_from_confirmations(tmp_path: Path) -> None:
    est = BlockPolicyEstimator()
    height = 100
    est.process_block(height, [])
    n = 0
    for _ in range(40):
        entries = []
        for k in range(20):
            n += 1
            tx = _chain_tx(OutPoint(n.to_bytes(32, "little"), k))
            # 50 000 sat/kB confirming in the next block.
            entry = MempoolEntry(tx, 50 * (tx.weight // 4), 0, height, False, 4, tx.weight // 4)
            est.process_transaction(entry, height, True)
            entries.append(entry)
        height += 1
        est.process_block(height, entries)
    result = est.estimate_smart_fee(2)
    assert result.returned_target == 2
    assert 45_000 < result.fee_rate < 55_000
    assert est.estimate_fee(2) > 0
    # Nothing is known beyond half the blocks seen.
    assert est.estimate_smart_fee(100).returned_target == (140 - 101) // 2
    path = tmp_path / "fee_estimates.dat"
    est.save(path)
    again = BlockPolicyEstimator()
    assert again.load(path)
    assert again.best_seen_height == est.best_seen_height
    assert again.estimate_raw_fee(2, 0.95) == est.estimate_raw_fee(2, 0.95)
    path.write_bytes(b"garbage")
    assert not BlockPolicyEstimator().load(path)


class _Tip:
    height = 10

    @staticmethod
    def median_time_past() -> int:
        return 1_000_000


def test_package_selection_rescores_descendants_and_orders_parents_first() -> None:
    import random

    from aipgd.core.params import get_params
    from aipgd.mining.selection import select_block_transactions

    params = get_params("regtest")
    pool = Mempool()
    a = _chain_tx(OutPoint(b"\x0a" * 32, 0))
    b = _chain_tx(OutPoint(a.txid, 0))
    c = _chain_tx(OutPoint(a.txid, 1))
    d = _chain_tx(OutPoint(b"\x0b" * 32, 0))
    size = a.weight // 4
    for tx, rate in ((a, 1), (b, 100), (c, 30), (d, 40)):
        pool.add_unchecked(_entry(tx, rate * size))
    txs, fees = select_block_transactions(pool, _Tip(), params)
    # a+b as a package (50.5/vB), then d (40), then c alone once a is in (30).
    assert [t.txid for t in txs] == [a.txid, b.txid, d.txid, c.txid]
    assert fees == (1 + 100 + 30 + 40) * size
    # A random DAG: every parent precedes its children, nothing is taken twice, fees add up.
    rng = random.Random(7)
    pool = Mempool()
    outs = [OutPoint(bytes([i]) * 32, 0) for i in range(1, 30)]
    for _ in range(120):
        prev = outs.pop(rng.randrange(len(outs)))
        tx = tx_with([(10_000, P2PKH), (10_000, P2PKH)], prev=prev)
        pool.add_unchecked(_entry(tx, rng.randrange(1, 200) * 100))
        outs += [OutPoint(tx.txid, 0), OutPoint(tx.txid, 1)]
    txs, fees = select_block_transactions(pool, _Tip(), params, max_weight=4000 + 4 * 60 * size)
    seen: set[bytes] = set()
    for tx in txs:
        assert tx.txid not in seen
        assert all(txin.prevout.txid in seen for txin in tx.vin if txin.prevout.txid in pool)
        seen.add(tx.txid)
    assert 0 < len(txs) < 60 and fees == sum(pool.entries[t.txid].fee for t in txs)
