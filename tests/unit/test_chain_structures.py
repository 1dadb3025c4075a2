"""Pieces under ChainState: header tree walks, undo records, coins cache flags, the reorg rule, options."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipgd.chain.blockindex import ActiveChain, BlockIndex, last_common_ancestor, skip_height, work_key
from aipgd.chain.blocktree import BlockTree, CandidateSet
from aipgd.chain.chaindb import ChainStateDB, coin_key, outpoint_from_key
from aipgd.chain.coins import Coin
from aipgd.chain.coinsview import DIRTY, FRESH, CoinsViewCache, CoinsViewDB, utxo_set_hash
from aipgd.chain.header_rules import ReorgPolicy, fork_too_deep
from aipgd.chain.undo import deserialize_block_undo, serialize_block_undo, undo_checksum
from aipgd.config import ArgsManager, ConfigError, chainstate_options
from aipgd.core.block import BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.serialize import DeserializationError
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import ZERO_HASH

P2PKH = bytes.fromhex("76a914") + b"\x11" * 20 + bytes.fromhex("88ac")


def _header(prev: bytes, time: int) -> BlockHeader:
    return BlockHeader(0x30000000, prev, ZERO_HASH, time, 0x207FFFFF)


def _chain(length: int, tag: int = 0, base: BlockIndex | None = None) -> list[BlockIndex]:
    out: list[BlockIndex] = []
    prev = base
    for i in range(length):
        height = 0 if prev is None else prev.height + 1
        block_hash = sha256d(bytes([tag]) + height.to_bytes(4, "little"))
        header = _header(prev.block_hash if prev else ZERO_HASH, 1000 + 10 * height + i % 3)
        index = BlockIndex(block_hash, header, prev, height)
        out.append(index)
        prev = index
    return out


def test_skip_heights_and_ancestors_match_a_linear_walk() -> None:
    assert [skip_height(h) for h in range(10)] == [0, 0, 0, 1, 0, 1, 4, 1, 0, 1]
    blocks = _chain(3000)
    tip = blocks[-1]
    for height in (0, 1, 2, 17, 1023, 1024, 2047, 2998, 2999):
        assert tip.get_ancestor(height) is blocks[height]
    assert tip.get_ancestor(3000) is None and tip.get_ancestor(-1) is None
    for index in blocks[1:]:
        assert index.skip is blocks[skip_height(index.height)]


def test_median_time_past_uses_eleven_blocks() -> None:
    blocks = _chain(20)
    times = sorted(b.time for b in blocks[9:20])
    assert blocks[19].median_time_past() == times[5]
    assert blocks[0].median_time_past() == blocks[0].time


def test_active_chain_fork_and_locator() -> None:
    main = _chain(40)
    side = _chain(5, tag=1, base=main[29])
    chain = ActiveChain()
    chain.set_tip(main[-1])
    assert chain.height == 39 and chain.contains(main[10]) and not chain.contains(side[0])
    assert chain.find_fork(side[-1]) is main[29]
    assert last_common_ancestor(side[-1], main[-1]) is main[29]
    locator = chain.locator()
    assert locator[:11] == [b.block_hash for b in reversed(main[29:])]
    assert locator[-1] == main[0].block_hash
    chain.set_tip(side[-1])
    assert chain.height == 34 and chain[30] is side[0] and chain.contains(main[29])
    assert not chain.contains(main[30])


def test_work_key_prefers_more_work_then_earlier_data() -> None:
    a, b = _chain(2, tag=2), _chain(2, tag=3)
    a[1].sequence_id, b[1].sequence_id = 5, 4
    assert work_key(b[1]) > work_key(a[1])
    assert work_key(a[1]) > work_key(b[0])


def test_candidate_set_orders_by_work_then_sequence_then_creation() -> None:
    a, b, c = _chain(3, tag=4), _chain(3, tag=5), _chain(3, tag=6)
    a[2].sequence_id, b[2].sequence_id, c[2].sequence_id = 7, 3, 3
    a[1].sequence_id = 1
    candidates = CandidateSet()
    for index in (a[1], c[2], a[2], b[2], b[0]):
        candidates.add(index)
    # More work first; equal work: lower sequence id; equal sequence id: the index made first (b).
    assert list(candidates) == [b[2], c[2], a[2], a[1], b[0]]
    assert candidates.best() is b[2] and len(candidates) == 5
    assert list(candidates) == sorted(candidates, key=work_key, reverse=True)
    candidates.add(b[2])  # adding again changes nothing
    assert len(candidates) == 5
    candidates.discard(b[2])
    candidates.discard(b[2])
    assert candidates.best() is c[2] and b[2] not in candidates and c[2] in candidates
    # A changed sequence id is re-filed by adding again, and still found when discarded.
    a[2].sequence_id = -1
    candidates.add(a[2])
    assert list(candidates) == [a[2], c[2], a[1], b[0]]
    c[2].sequence_id = 99
    candidates.discard(c[2])
    assert list(candidates) == [a[2], a[1], b[0]]
    candidates.clear()
    assert candidates.best() is None and len(candidates) == 0 and list(candidates) == []


def test_prune_candidates_drops_only_entries_worse_than_the_tip() -> None:
    a, b, c = _chain(4, tag=7), _chain(4, tag=8), _chain(4, tag=9)
    for seq, index in enumerate((a[3], b[3], c[3], a[2], b[2], a[1])):
        index.sequence_id = 10 + seq
    tree = BlockTree()
    for index in (a[1], b[2], a[2], c[3], b[3], a[3]):
        tree.candidates.add(index)
    # The tip (b[3]) stays, and so does a[3] (equal work, seen earlier); every worse one goes.
    tree.prune_candidates(b[3])
    assert list(tree.candidates) == [a[3], b[3]]
    assert tree.best_candidate() is a[3]
    # A tip that is not itself a candidate prunes the same way.
    tree.prune_candidates(c[3])
    assert list(tree.candidates) == [a[3], b[3]]
    tree.prune_candidates(a[3])
    assert list(tree.candidates) == [a[3]]
    # A sequence id changed through the tree re-files a candidate (preciousblock).
    tree.candidates.add(b[3])
    tree.set_sequence_id(b[3], -1)
    assert tree.best_candidate() is b[3]
    tree.prune_candidates(b[3])
    assert list(tree.candidates) == [b[3]]
    tree.set_sequence_id(c[3], -2)  # not a candidate: stays out
    assert c[3] not in tree.candidates and c[3].sequence_id == -2


def test_undo_record_format_and_limits() -> None:
    coins = [Coin(TxOut(5000000000, P2PKH), 7, True), Coin(TxOut(1, b"\x51"), 0, False)]
    raw = serialize_block_undo([coins, []])
    # CBlockUndo: 2 tx records; the first has 2 inputs: VARINT(7*2+1), the 0 "version" byte, the
    # compressed amount and P2PKH's special form; the height-0 record has no version byte.
    assert raw.hex().startswith("0202" + "0f" + "00" + "32" + "00" + "11" * 20)
    assert deserialize_block_undo(raw) == [coins, []]
    with pytest.raises(DeserializationError):
        deserialize_block_undo(raw + b"\x00")
    with pytest.raises(DeserializationError):
        deserialize_block_undo(bytes.fromhex("01fe00000100"))
    assert undo_checksum(b"\x01" * 32, raw) == sha256d(b"\x01" * 32 + raw)


def test_coin_keys_match_cores_layout() -> None:
    op = OutPoint(b"\xab" * 32, 300)
    key = coin_key(op)
    assert key == b"C" + b"\xab" * 32 + bytes.fromhex("812c")
    assert outpoint_from_key(key) == op


def test_cache_fresh_coins_vanish_and_only_dirty_ones_are_written(tmp_path: Path) -> None:
    db = ChainStateDB(tmp_path / "chainstate")
    db.start()
    try:
        base = CoinsViewDB(db)
        tip = CoinsViewCache(base)
        tx = Transaction(1, (TxIn(OutPoint(b"\x01" * 32, 0)),), (TxOut(10, b"\x51"), TxOut(0, b"\x6a")), 0)
        tip.add_coins(tx, 5)
        kept = OutPoint(tx.txid, 0)
        assert tip.entries[kept].flags == DIRTY | FRESH
        assert OutPoint(tx.txid, 1) not in tip.entries  # OP_RETURN never enters the UTXO set
        tip.set_best_block(b"\x02" * 32)
        tip.flush()
        assert db.get_coin(kept) == Coin(TxOut(10, b"\x51"), 5, False)

        # A block-local view: spend the stored coin and create and spend a new one.
        view = CoinsViewCache(tip)
        assert view.spend_coin(kept) is not None
        view.add_coin(OutPoint(b"\x03" * 32, 0), Coin(TxOut(1, b"\x51"), 6, False), False)
        assert view.spend_coin(OutPoint(b"\x03" * 32, 0)) is not None
        assert OutPoint(b"\x03" * 32, 0) not in view.entries
        view.set_best_block(b"\x04" * 32)
        view.flush()
        assert tip.entries[kept].coin is None and tip.entries[kept].flags & DIRTY
        assert tip.get_best_block() == b"\x04" * 32
        tip.flush()
        assert db.get_coin(kept) is None and db.get_best_block() == b"\x04" * 32
        assert list(db.iterate_coins()) == []
        digest, txs, outputs, total = utxo_set_hash(b"\x04" * 32, iter([]))
        assert (txs, outputs, total) == (0, 0, 0) and digest == sha256d(b"\x04" * 32)
        fresh = OutPoint(b"\x05" * 32, 0)
        tip.add_coin(fresh, Coin(TxOut(1, b"\x51"), 6, False), False)
        with pytest.raises(AssertionError, match="replaces an unspent"):
            tip.add_coin(fresh, Coin(TxOut(1, b"\x51"), 6, False), False)
    finally:
        db.stop()


def test_utxo_hash_groups_outputs_by_transaction() -> None:
    coins = [(OutPoint(b"\x01" * 32, 0), Coin(TxOut(5, b"\x51"), 3, True)),
             (OutPoint(b"\x01" * 32, 2), Coin(TxOut(6, b"\x52"), 3, True)),
             (OutPoint(b"\x02" * 32, 1), Coin(TxOut(7, b""), 4, False))]
    digest, txs, outputs, total = utxo_set_hash(b"\x09" * 32, iter(coins))
    expected = (b"\x09" * 32 + b"\x01" * 32 + bytes([7]) + bytes([1]) + b"\x01\x51" + bytes([5])
                + bytes([3]) + b"\x01\x52" + bytes([6]) + b"\x00"
                + b"\x02" * 32 + bytes([8]) + bytes([2]) + b"\x00" + bytes([7]) + b"\x00")
    assert (txs, outputs, total) == (2, 3, 18)
    assert digest == sha256d(expected)


@pytest.mark.parametrize(("active", "new_height", "peers", "age", "refused"), [
    (100, 41, 4, 0, True),  # parent at 40: 60 deep
    (100, 42, 4, 0, False),  # 59 deep
    (100, 41, 3, 0, False),  # too few peers
    (100, 41, 8, 43201, False),  # our tip is stale: we may be the one on the wrong chain
    (100, 41, 8, 43200, True),
])
def test_max_reorg_depth_rule(active: int, new_height: int, peers: int, age: int, refused: bool) -> None:
    policy = ReorgPolicy(max_depth=60)
    assert fork_too_deep(active, new_height, policy, peers, tip_time=1000, now=1000 + age) is refused


def _options(*argv: str) -> ArgsManager:
    args = ArgsManager()
    args.parse_command_line(list(argv))
    args.select_network()
    return args


def test_chainstate_options_from_args() -> None:
    defaults = chainstate_options(_options())
    assert (defaults.dbcache_mib, defaults.assume_valid, defaults.check_blocks, defaults.check_level) == (
        450, None, 6, 3)
    assert defaults.max_reorg_depth is None and defaults.min_reorg_peers == 4
    opts = chainstate_options(_options("-dbcache=100", "-assumevalid=0", "-checkblocks=0",
                                       "-checklevel=4", "-maxreorg=10", "-par=1"))
    assert (opts.dbcache_mib, opts.assume_valid, opts.check_blocks) == (100, ZERO_HASH, 0)
    assert opts.check_level == 4
    assert (opts.max_reorg_depth, opts.script_threads) == (10, 1)
    av = chainstate_options(_options("-assumevalid=0x1a53f7")).assume_valid
    assert av is not None and av[:3] == bytes.fromhex("f7531a") and av[3:] == bytes(29)
    with pytest.raises(ConfigError, match="assumevalid"):
        chainstate_options(_options("-assumevalid=xyz"))
    with pytest.raises(ConfigError, match="maxreorg"):
        chainstate_options(_options("-maxreorg=-1"))
    # 450 MiB leaves Core's 327.5 MiB for the coins cache once the two LevelDB caches are taken.
    assert defaults.coins_cache_bytes() == (450 << 20) - (2 << 20) - (8 << 20)
