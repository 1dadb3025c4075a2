"""ChainState on real LevelDB with KawPoW regtest blocks: connect, reorg, invalid blocks, restart, crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chain_builder import OP_TRUE, ChainBuilder, Stack, open_chain, spend, submit_all, with_coinbase_outputs

import kawpow
from aipgd.chain.chaindb import DB_BEST_BLOCK, DB_HEAD_BLOCKS
from aipgd.chain.chainstate import ChainState, ChainStateOptions
from aipgd.chain.diskformat import (
    BLOCK_FAILED_CHILD,
    BLOCK_FAILED_VALID,
    BLOCK_HAVE_UNDO,
    BLOCK_VALID_SCRIPTS,
)
from aipgd.consensus.subsidy import block_subsidy
from aipgd.core.block import Block
from aipgd.core.params import ChainParams
from aipgd.core.serialize import ser_compact_size
from aipgd.core.transaction import COIN, OutPoint
from aipgd.script.script import build_script

BASE_HEIGHT = 110


@pytest.fixture(scope="module")
def base(builder: ChainBuilder, params: ChainParams) -> list[Block]:
    """110 blocks paying OP_TRUE: the first 10 coinbases are mature at the next height."""
    return builder.chain(params.genesis_hash, BASE_HEIGHT)


def coinbase_out(block: Block, n: int = 0) -> OutPoint:
    return OutPoint(block.vtx[0].txid, n)


# -- connecting ------------------------------------------------------------------------------------


def test_base_chain_utxo_contents(chain: ChainState, base: list[Block], params: ChainParams) -> None:
    assert chain.tip is not None and chain.tip.height == BASE_HEIGHT and chain.tip.block_hash == base[-1].hash
    stats = chain.utxo_stats()
    # Each coinbase leaves the miner's output and the (zero, empty-script) community output; the
    # witness commitment is OP_RETURN and never enters the UTXO set.
    assert (stats.height, stats.transactions, stats.outputs) == (BASE_HEIGHT, BASE_HEIGHT, 2 * BASE_HEIGHT)
    assert stats.total_amount == sum(block_subsidy(h, params) for h in range(1, BASE_HEIGHT + 1))
    coin = chain.get_coin(coinbase_out(base[4]))
    assert coin is not None and coin.height == 5 and coin.coinbase and coin.out.script_pubkey == OP_TRUE
    assert chain.get_coin(coinbase_out(base[4], 2)) is None
    tip = chain.tip
    assert tip.is_valid(BLOCK_VALID_SCRIPTS) and tip.status & BLOCK_HAVE_UNDO
    assert tip.median_time_past() == base[-6].header.time
    assert tip.get_ancestor(37) is not None and tip.get_ancestor(37).block_hash == base[36].hash  # type: ignore[union-attr]


def test_spend_moves_coins_and_pays_fees(chain: ChainState, builder: ChainBuilder, base: list[Block],
                                         params: ChainParams) -> None:
    before = chain.utxo_stats()
    source = coinbase_out(base[0])
    value = block_subsidy(1, params)
    tx = spend([source], [(value - COIN, OP_TRUE), (COIN // 2, build_script(2, b"\x87"))])
    child = spend([OutPoint(tx.txid, 0)], [(value - 2 * COIN, OP_TRUE)])  # spent in the same block
    block = builder.block(base[-1].hash, [tx, child], fees=COIN // 2 + COIN)
    assert chain.process_new_block(block)
    assert chain.tip is not None and chain.tip.block_hash == block.hash
    assert chain.get_coin(source) is None and chain.get_coin(OutPoint(tx.txid, 0)) is None
    assert chain.get_coin(OutPoint(tx.txid, 1)) is not None
    out = chain.get_coin(OutPoint(child.txid, 0))
    assert out is not None and out.out.value == value - 2 * COIN and not out.coinbase and out.height == 111
    miner = chain.get_coin(coinbase_out(block))
    assert miner is not None and miner.out.value == block_subsidy(111, params) + COIN // 2 + COIN
    after = chain.utxo_stats()
    # The fees moved from the spent coin to the miner; 111's subsidy is new.
    assert after.total_amount == before.total_amount + block_subsidy(111, params)


def test_restart_keeps_tip_and_utxo_hash(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache,
                                         builder: ChainBuilder, base: list[Block]) -> None:
    extra = builder.chain(base[-1].hash, 3)
    with open_chain(netdir, params, contexts) as cs:
        submit_all(cs, extra)
        stats = cs.utxo_stats()
    with open_chain(netdir, params, contexts) as cs:
        assert cs.tip is not None and cs.tip.block_hash == extra[-1].hash
        assert cs.utxo_stats() == stats
        assert cs.tree.best_header is cs.tip


def test_disconnect_round_trip_restores_utxo_hash(chain: ChainState, builder: ChainBuilder,
                                                  base: list[Block], params: ChainParams) -> None:
    start = chain.utxo_stats()
    tx = spend([coinbase_out(base[1])], [(block_subsidy(2, params), OP_TRUE)])
    blocks = [builder.block(base[-1].hash, [tx])]
    blocks += builder.chain(blocks[0].hash, 4)
    submit_all(chain, blocks)
    top = chain.utxo_stats()
    assert chain.invalidate_block(blocks[0].hash)
    assert chain.tip is not None and chain.tip.block_hash == base[-1].hash
    assert chain.utxo_stats().hash_serialized == start.hash_serialized
    assert chain.block_index[blocks[0].hash].status & BLOCK_FAILED_VALID
    assert chain.block_index[blocks[-1].hash].status & BLOCK_FAILED_CHILD
    assert chain.reconsider_block(blocks[0].hash)
    assert chain.tip.block_hash == blocks[-1].hash
    assert chain.utxo_stats() == top


# -- reorganizations -------------------------------------------------------------------------------


def test_reorg_to_longer_fork_and_back_matches_fresh_nodes(
        tmp_path: Path, netdir: Path, params: ChainParams, contexts: kawpow.ContextCache,
        builder: ChainBuilder, base: list[Block]) -> None:
    fork_point = base[99]  # height 100
    main = builder.chain(base[-1].hash, 2)  # 111, 112
    # The fork spends a coinbase the main chain never touches, and pays to a different script.
    tx = spend([coinbase_out(base[0])], [(block_subsidy(1, params), build_script(7, b"\x87"))])
    fork = [builder.block(fork_point.hash, [tx])]
    fork += builder.chain(fork[0].hash, 12)  # heights 101..113: a 12-block reorg
    more_main = builder.chain(main[-1].hash, 2)  # 113, 114: back to the main chain

    with open_chain(netdir, params, contexts) as cs:
        submit_all(cs, main)
        submit_all(cs, fork[:11])  # height 111: equal work, the first seen stays
        assert cs.tip is not None and cs.tip.block_hash == main[-1].hash
        submit_all(cs, fork[11:])
        assert cs.tip.block_hash == fork[-1].hash
        assert cs.get_coin(OutPoint(tx.txid, 0)) is not None
        fork_stats = cs.utxo_stats()
        submit_all(cs, more_main)
        assert cs.tip.block_hash == more_main[-1].hash
        assert cs.get_coin(OutPoint(tx.txid, 0)) is None
        main_stats = cs.utxo_stats()

    # Nodes that only ever saw one branch reach the same UTXO set.
    options = ChainStateOptions(check_blocks=1, script_threads=1)
    with open_chain(tmp_path / "fork", params, contexts, options=options) as cs:
        submit_all(cs, base[:100] + fork)
        assert cs.utxo_stats() == fork_stats
    with open_chain(tmp_path / "main", params, contexts, options=options) as cs:
        submit_all(cs, base + main + more_main)
        assert cs.utxo_stats() == main_stats


def test_precious_block_switches_between_equal_work_tips(chain: ChainState, builder: ChainBuilder,
                                                         base: list[Block]) -> None:
    a = builder.block(base[-1].hash)
    b = builder.block(base[-1].hash, time=base[-1].header.time + 61)
    submit_all(chain, [a, b])
    assert chain.tip is not None and chain.tip.block_hash == a.hash
    assert chain.precious_block(b.hash)
    assert chain.tip.block_hash == b.hash
    assert chain.precious_block(a.hash)
    assert chain.tip.block_hash == a.hash


def test_max_reorg_depth_applies_only_with_peers_and_a_recent_tip(
        netdir: Path, params: ChainParams, contexts: kawpow.ContextCache, builder: ChainBuilder,
        base: list[Block]) -> None:
    fork = builder.block(base[-6].hash)  # parent 5 blocks below the tip
    now = base[-1].header.time + 60
    options = ChainStateOptions(max_reorg_depth=5, check_blocks=1)
    with open_chain(netdir, params, contexts, options=options, clock=lambda: now, peer_count=lambda: 4) as cs:
        verdict = cs.process_new_block(fork)
        assert verdict.reject_reason == "bad-fork-prior-to-maxreorgdepth"
        assert fork.hash not in cs.block_index
    # An isolated node accepts it (Core needs -minreorgpeers connections for the rule).
    with open_chain(netdir, params, contexts, options=options, clock=lambda: now, peer_count=lambda: 0) as cs:
        assert cs.process_new_block(fork)
        assert fork.hash in cs.block_index


# -- invalid blocks --------------------------------------------------------------------------------


def _invalid_cases(builder: ChainBuilder, base: list[Block], params: ChainParams) -> dict[str, Block]:
    tip = base[-1]
    subsidy = block_subsidy(BASE_HEIGHT + 1, params)
    mtp = builder.link(tip.hash).median_time_past()
    cases = {
        "bad-cb-amount": builder.block(tip.hash, coinbase=with_coinbase_outputs(subsidy + 1)),
        "bad-cb-community-autonomous-amount": builder.block(
            tip.hash, coinbase=with_coinbase_outputs(subsidy - 1, 1)),
        "bad-cb-community-autonomous-address": builder.block(
            tip.hash, coinbase=with_coinbase_outputs(scripts={1: OP_TRUE})),
        "bad-txns-inputs-missingorspent": builder.block(
            tip.hash, [spend([OutPoint(b"\x77" * 32, 0)], [(1, OP_TRUE)])]),
        "bad-txns-premature-spend-of-coinbase": builder.block(
            tip.hash, [spend([coinbase_out(base[20])], [(1, OP_TRUE)])]),
        "bad-diffbits": builder.block(tip.hash, header=lambda h: h.with_fields(bits=0x207FFFFE)),
        "time-too-old": builder.block(tip.hash, header=lambda h: h.with_fields(time=mtp)),
        "bad-txnmrklroot": builder.block(tip.hash, header=lambda h: h.with_fields(merkle_root=b"\x01" * 32)),
        "bad-kawpow-height": builder.block(tip.hash, header=lambda h: h.with_fields(height=h.height + 1)),
        "bad-version(0x20000000)": builder.block(tip.hash,
                                                 header=lambda h: h.with_fields(version=0x20000000)),
        "bad-cb-height": builder.block(tip.hash, coinbase=lambda cb: replace(
            cb, vin=(replace(cb.vin[0], script_sig=build_script(BASE_HEIGHT + 2, 0)),), _cache={})),
        # The community output of block 1 has an empty script: spending it leaves an empty stack.
        "mandatory-script-verify-flag-failed (Script evaluated without error but finished with a "
        "false/empty top stack element)": builder.block(
            tip.hash, [spend([coinbase_out(base[0], 1)], [(0, OP_TRUE)])]),
        "bad-txns-nonfinal": builder.block(
            tip.hash, [spend([coinbase_out(base[2])], [(1, OP_TRUE)], locktime=BASE_HEIGHT + 5, sequence=0)]),
        "bad-txns-in-belowout": builder.block(
            tip.hash, [spend([coinbase_out(base[2])], [(block_subsidy(3, params) + 1, OP_TRUE)])]),
    }
    unmined = builder.block(tip.hash, header=lambda h: h.with_fields(bits=0x1E00FFFF), mine=False)
    cases["high-hash"] = Block(unmined.header.with_fields(nonce64=1), unmined.vtx)
    mined = builder.block(tip.hash)
    target = (1 << 255)  # regtest: hashes below 0x7fff... meet the target
    for n in range(1, 200):
        mix = bytes([n]) * 32
        forged = mined.header.with_fields(mix_hash=mix)
        if int.from_bytes(forged.hash[::-1], "big") < target:
            cases["invalid-mix-hash"] = Block(forged, mined.vtx)
            break
    return cases


@pytest.fixture(scope="module")
def invalid_cases(builder: ChainBuilder, base: list[Block], params: ChainParams) -> dict[str, Block]:
    return _invalid_cases(builder, base, params)


INVALID_REASONS = [
    "bad-cb-amount", "bad-cb-community-autonomous-amount", "bad-cb-community-autonomous-address",
    "bad-txns-inputs-missingorspent", "bad-txns-premature-spend-of-coinbase", "bad-diffbits", "time-too-old",
    "bad-txnmrklroot", "bad-kawpow-height", "bad-version(0x20000000)", "bad-cb-height",
    "mandatory-script-verify-flag-failed (Script evaluated without error but finished with a false/empty top "
    "stack element)",
    "bad-txns-nonfinal", "bad-txns-in-belowout", "high-hash", "invalid-mix-hash",
]
# Failures found once the block is stored mark it failed; header and context-free failures never
# enter the index (Core: the block could be a corrupted copy of a valid one).
MARKED_FAILED = {"bad-cb-amount", "bad-cb-community-autonomous-amount", "bad-cb-community-autonomous-address",
                 "bad-txns-inputs-missingorspent", "bad-txns-premature-spend-of-coinbase", "bad-cb-height",
                 "bad-txns-nonfinal", "bad-txns-in-belowout", INVALID_REASONS[11]}


def test_each_invalid_block_is_rejected_with_cores_reason(netdir: Path, params: ChainParams,
                                                          contexts: kawpow.ContextCache,
                                                          invalid_cases: dict[str, Block],
                                                          base: list[Block]) -> None:
    assert set(invalid_cases) == set(INVALID_REASONS)
    with open_chain(netdir, params, contexts, options=ChainStateOptions(check_blocks=1)) as cs:
        before = cs.utxo_stats()
        for reason in INVALID_REASONS:
            block = invalid_cases[reason]
            verdict = cs.process_new_block(block)
            assert verdict.is_invalid() and verdict.reject_reason == reason, (reason, str(verdict))
            assert cs.tip is not None and cs.tip.block_hash == base[-1].hash
            index = cs.block_index.get(block.hash)
            if reason in MARKED_FAILED:
                assert index is not None and index.status & BLOCK_FAILED_VALID, reason
                # Offered again, it is refused at once.
                assert cs.process_new_block(block).reject_reason == "duplicate"
            else:
                assert index is None or not index.have_data, reason
        assert cs.utxo_stats() == before
    with open_chain(netdir, params, contexts) as cs:
        # Failure marks survive a restart.
        failed = invalid_cases["bad-cb-amount"].hash
        assert cs.block_index[failed].status & BLOCK_FAILED_VALID
        assert cs.tip is not None and cs.tip.block_hash == base[-1].hash


def test_child_of_invalid_block_is_bad_prevblk(chain: ChainState, builder: ChainBuilder,
                                               invalid_cases: dict[str, Block]) -> None:
    bad = invalid_cases["bad-cb-amount"]
    assert chain.process_new_block(bad).reject_reason == "bad-cb-amount"
    child = builder.block(bad.hash)
    assert chain.process_new_block(child).reject_reason == "bad-prevblk"


# -- crash safety ----------------------------------------------------------------------------------


def _reference_stats(tmp_path: Path, params: ChainParams, contexts: kawpow.ContextCache,
                     blocks: list[Block]) -> object:
    options = ChainStateOptions(check_blocks=1)
    with open_chain(tmp_path / "reference", params, contexts, options=options) as cs:
        submit_all(cs, blocks)
        return cs.utxo_stats()


def test_crash_without_flush_recovers_to_last_flushed_tip(
        netdir: Path, params: ChainParams, contexts: kawpow.ContextCache, builder: ChainBuilder,
        base: list[Block]) -> None:
    extra = builder.chain(base[-1].hash, 3)
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    flushed = cs.utxo_stats()
    submit_all(cs, extra)
    stack.crash()  # nothing since the last flush reaches the disk
    with open_chain(netdir, params, contexts) as cs:
        assert cs.tip is not None and cs.tip.block_hash == base[-1].hash
        assert cs.utxo_stats() == flushed
        submit_all(cs, extra)  # the blocks are simply accepted again
        assert cs.tip.block_hash == extra[-1].hash


def test_crash_after_index_write_rolls_forward(tmp_path: Path, netdir: Path, params: ChainParams,
                                               contexts: kawpow.ContextCache, builder: ChainBuilder,
                                               base: list[Block]) -> None:
    extra = builder.chain(base[-1].hash, 4)
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    submit_all(cs, extra)
    cs.write_block_index()  # blocks, undo and index are durable; the chainstate batch never ran
    stack.crash()
    with open_chain(netdir, params, contexts) as cs:
        # Start-up reconnects the stored blocks past the chainstate's best block.
        assert cs.tip is not None and cs.tip.block_hash == extra[-1].hash
        assert cs.utxo_stats() == _reference_stats(tmp_path, params, contexts, base + extra)


def test_interrupted_multi_batch_flush_is_replayed(tmp_path: Path, netdir: Path, params: ChainParams,
                                                   contexts: kawpow.ContextCache, builder: ChainBuilder,
                                                   base: list[Block]) -> None:
    # A 3-block reorg whose coins flush was cut short: the database holds the old tip's coins, a
    # head-blocks marker [new, old] and no best block (Core: the state ReplayBlocks repairs).
    fork = builder.chain(base[-4].hash, 4)
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    submit_all(cs, fork)
    assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash
    cs.write_block_index()
    marker = ser_compact_size(2) + fork[-1].hash + base[-1].hash
    cs.coins_db._db.write_batch([(DB_BEST_BLOCK, None), (DB_HEAD_BLOCKS, marker)])
    stack.crash()
    with open_chain(netdir, params, contexts) as cs:
        assert cs.coins_db.get_head_blocks() == []
        assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash
        assert cs.utxo_stats() == _reference_stats(tmp_path, params, contexts, base[:-3] + fork)


# -- assumevalid -----------------------------------------------------------------------------------


def test_assumevalid_skips_scripts_of_buried_ancestors_only(
        tmp_path: Path, params: ChainParams, contexts: kawpow.ContextCache, base: list[Block]) -> None:
    # With a 15-day target spacing, one block's work already counts as two weeks (Core's bury rule).
    spacing = 15 * 24 * 3600
    slow = replace(params, pow_target_spacing=spacing, pow_target_timespan=2016 * spacing)
    builder = ChainBuilder(slow, contexts)
    for block in base:
        builder.add(block)
    bad_script = spend([coinbase_out(base[0], 1)], [(0, OP_TRUE)])
    bad = builder.block(base[-1].hash, [bad_script])
    top = builder.block(bad.hash)
    options = ChainStateOptions(assume_valid=top.hash, check_blocks=1)
    with open_chain(tmp_path / "av", slow, contexts, options=options) as cs:
        submit_all(cs, base)
        for block in (bad, top):
            assert cs.accept_block_header(block.header)[0]
        submit_all(cs, [bad, top])
        assert cs.tip is not None and cs.tip.block_hash == top.hash
    verify_all = replace(options, assume_valid=bytes(32))
    with open_chain(tmp_path / "verify-all", slow, contexts, options=verify_all) as cs:
        submit_all(cs, base)
        for block in (bad, top):
            assert cs.accept_block_header(block.header)[0]
        assert cs.process_new_block(bad).reject_reason.startswith("mandatory-script-verify-flag-failed")
        assert cs.tip is not None and cs.tip.block_hash == base[-1].hash


def test_hundred_block_reorg_and_back(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache,
                                      builder: ChainBuilder, base: list[Block]) -> None:
    fork = builder.chain(base[9].hash, 101)  # from height 10 to 111: disconnects 100 blocks
    with open_chain(netdir, params, contexts, options=ChainStateOptions(check_blocks=1)) as cs:
        start = cs.utxo_stats()
        submit_all(cs, fork)
        assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash and cs.tip.height == 111
        assert cs.get_coin(coinbase_out(base[50])) is None
        assert cs.invalidate_block(fork[0].hash)
        assert cs.tip.block_hash == base[-1].hash
        assert cs.utxo_stats() == start
