"""The block-connection fast paths give exactly what the general code they shortcut gives.

Each fast path (block parsing, sigop counting, sizes from the parse, transaction sigop cost,
HaveCoin without decoding) is compared with the slow path it replaces, on generated and
corrupted inputs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipgd.chain.chaindb import ChainStateDB, coin_key
from aipgd.chain.coins import Coin
from aipgd.chain.coinsview import DIRTY, CacheEntry, CoinsViewCache, CoinsViewDB
from aipgd.consensus.block_check import block_base_size, block_total_size, block_weight
from aipgd.consensus.limits import WITNESS_SCALE_FACTOR
from aipgd.consensus.tx_verify import legacy_sigop_count, p2sh_sigop_total, transaction_sigop_cost
from aipgd.core.block import Block, BlockHeader, _deserialize_common
from aipgd.core.serialize import ByteReader, DeserializationError, ser_varint
from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.script.flags import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS
from aipgd.script.script import sigop_count, sigop_count_generic
from aipgd.script.verify import count_witness_sigops

KAWPOW_TIME = 1_700_000_000
P2PKH = bytes((0x76, 0xA9, 0x14)) + bytes(range(20)) + bytes((0x88, 0xAC))
P2SH = bytes((0xA9, 0x14)) + bytes(20) + bytes((0x87,))
P2WPKH = bytes((0x00, 0x14)) + bytes(20)
MULTISIG = bytes((0x52, 0x21)) + bytes(33) + bytes((0x21,)) + bytes(33) + bytes((0x52, 0xAE))


def _strict(data: bytes) -> Block:
    r = ByteReader(data)
    block = Block.read(r, KAWPOW_TIME)
    r.expect_end("block")
    return block


def _script(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return P2PKH
    if kind == 1:
        return P2SH
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))  # long ones too
    if kind == 3:
        return bytes((0xC0,)) + bytes(rng.randrange(40))
    if kind == 4:
        return MULTISIG
    return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))


def _tx(rng: random.Random, witness: bool, coinbase: bool = False) -> Transaction:
    n_in = 1 if coinbase else rng.choice((1, 2, 3, 260))
    vin = []
    for k in range(n_in):
        prevout = NULL_OUTPOINT if coinbase else OutPoint(rng.randbytes(32), rng.choice((0, 1, 200, 70000)))
        stack: tuple[bytes, ...] = ()
        if witness and (k == 0 or rng.random() < 0.5):
            stack = tuple(rng.randbytes(rng.choice((0, 1, 32, 72, 300))) for _ in range(rng.randrange(1, 4)))
        vin.append(TxIn(prevout, _script(rng), rng.randrange(1 << 32), stack))
    vout = tuple(TxOut(rng.randrange(-5, 1 << 62), _script(rng)) for _ in range(rng.choice((0, 1, 2, 300))))
    return Transaction(rng.randrange(-(1 << 31), 1 << 31), tuple(vin), vout, rng.randrange(1 << 32))


def _block(rng: random.Random, kawpow: bool = False) -> Block:
    txs = [_tx(rng, witness=rng.random() < 0.5, coinbase=True)]
    txs += [_tx(rng, witness=rng.random() < 0.3) for _ in range(rng.randrange(4))]
    time = KAWPOW_TIME + 5 if kawpow else KAWPOW_TIME - 5
    if kawpow:
        header = BlockHeader(0x30000000, rng.randbytes(32), rng.randbytes(32), time, 0x207FFFFF,
                             height=9, nonce64=11, mix_hash=rng.randbytes(32), kawpow=True)
    else:
        header = BlockHeader(0x30000000, rng.randbytes(32), rng.randbytes(32), time, 0x207FFFFF, nonce=7)
    return Block(header, tuple(txs))


def _same_transactions(a: Block, b: Block) -> None:
    assert a == b
    for x, y in zip(a.vtx, b.vtx, strict=True):
        assert x.txid == y.txid and x.wtxid == y.wtxid
        assert x.total_size == len(y.serialize()) and x.base_size == len(y.serialize(with_witness=False))


@pytest.mark.parametrize("seed", range(40))
def test_fast_block_parse_equals_strict_reader(seed: int) -> None:
    rng = random.Random(seed)
    block = _block(rng, kawpow=seed % 4 == 0)
    data = block.serialize()
    fast = _deserialize_common(data, KAWPOW_TIME)
    assert fast is not None
    _same_transactions(fast, _strict(data))
    _same_transactions(Block.deserialize(data, KAWPOW_TIME), block)
    if not block.header.kawpow:
        assert fast.hash == block.hash


@pytest.mark.parametrize("seed", range(40))
def test_fast_block_parse_never_differs_on_damaged_blocks(seed: int) -> None:
    """Truncated, extended or flipped bytes: the fast parser either declines or agrees, and
    Block.deserialize then raises exactly when (and what) the strict reader raises."""
    rng = random.Random(1000 + seed)
    data = bytearray(_block(rng).serialize())
    for _ in range(30):
        damaged = bytearray(data)
        choice = rng.randrange(3)
        if choice == 0:
            damaged = damaged[:rng.randrange(len(damaged))]
        elif choice == 1:
            damaged += bytes(rng.randrange(1, 4))
        else:
            for _ in range(rng.randrange(1, 4)):
                where = rng.randrange(80, len(damaged))
                damaged[where] = rng.choice((0, 1, 0xFD, 0xFE, 0xFF, rng.randrange(256)))
        raw = bytes(damaged)
        try:
            strict: Block | None = _strict(raw)
            error = None
        except DeserializationError as exc:
            strict, error = None, str(exc)
        fast = _deserialize_common(raw, KAWPOW_TIME)
        if fast is not None:
            assert strict is not None
            _same_transactions(fast, strict)
        try:
            got = Block.deserialize(raw, KAWPOW_TIME)
        except DeserializationError as exc:
            assert str(exc) == error
        else:
            assert strict is not None
            _same_transactions(got, strict)


def test_uncommon_encodings_are_left_to_the_strict_reader() -> None:
    block = _block(random.Random(5))
    data = block.serialize()
    # A non-canonical three-byte transaction count.
    noncanonical = data[:80] + bytes((0xFD, len(block.vtx), 0)) + data[81:]
    assert _deserialize_common(noncanonical, KAWPOW_TIME) is None
    with pytest.raises(DeserializationError):
        Block.deserialize(noncanonical, KAWPOW_TIME)
    assert _deserialize_common(bytearray(data), KAWPOW_TIME) is None  # type: ignore[arg-type]


def test_sizes_and_weight_from_the_parse() -> None:
    for seed in range(20):
        block = _block(random.Random(seed))
        parsed = Block.deserialize(block.serialize(), KAWPOW_TIME)
        for b in (block, parsed):
            assert block_base_size(b) == len(block.serialize(with_witness=False))
            assert block_total_size(b) == len(block.serialize())
            assert block_weight(b) == (len(block.serialize(with_witness=False)) * (WITNESS_SCALE_FACTOR - 1)
                                       + len(block.serialize()))
        tx = block.vtx[0]
        read = Transaction.from_bytes(tx.serialize())
        assert read.total_size == len(tx.serialize()) and read.base_size == len(tx.serialize(False))


_OPS = st.one_of(
    st.sampled_from([0xAC, 0xAD, 0xAE, 0xAF, 0x51, 0x52, 0x60, 0x00, 0x76, 0xA9, 0x87, 0x88, 0xC0, 0x4C,
                     0x4D, 0x4E, 0x4F, 0xFF]).map(lambda op: bytes((op,))),
    st.binary(min_size=0, max_size=80).map(
        lambda d: bytes((len(d),)) + d if len(d) < 0x4C else bytes((0x4C, len(d))) + d),
    st.binary(min_size=1, max_size=4),
)


@settings(max_examples=400)
@given(st.lists(_OPS, max_size=12).map(b"".join), st.booleans())
def test_sigop_count_equals_generic(script: bytes, accurate: bool) -> None:
    assert sigop_count(script, accurate) == sigop_count_generic(script, accurate)


@settings(max_examples=200)
@given(st.binary(max_size=60), st.booleans())
def test_sigop_count_equals_generic_on_any_bytes(script: bytes, accurate: bool) -> None:
    assert sigop_count(script, accurate) == sigop_count_generic(script, accurate)
    assert sigop_count(P2PKH, accurate) == sigop_count_generic(P2PKH, accurate) == 1


def _reference_sigop_cost(tx: Transaction, spent: list[TxOut], flags: int) -> int:
    """GetTransactionSigOpCost written out as before the fast path."""
    legacy = (sum(sigop_count_generic(i.script_sig, False) for i in tx.vin)
              + sum(sigop_count_generic(o.script_pubkey, False) for o in tx.vout))
    cost = legacy * WITNESS_SCALE_FACTOR
    if tx.is_coinbase():
        return cost
    if flags & SCRIPT_VERIFY_P2SH:
        cost += p2sh_sigop_total(tx, spent) * WITNESS_SCALE_FACTOR
    for txin, prev in zip(tx.vin, spent, strict=True):
        cost += count_witness_sigops(txin.script_sig, prev.script_pubkey, txin.witness, flags)
    return cost


@pytest.mark.parametrize("seed", range(60))
def test_transaction_sigop_cost_equals_reference(seed: int) -> None:
    rng = random.Random(seed)
    redeem = MULTISIG if rng.random() < 0.5 else P2WPKH
    tx = _tx(rng, witness=rng.random() < 0.5)
    vin = tuple(TxIn(t.prevout, rng.choice((t.script_sig, bytes((len(redeem),)) + redeem, b"")), t.sequence,
                     t.witness) for t in tx.vin)
    tx = Transaction(tx.version, vin, tx.vout, tx.locktime)
    spent = [TxOut(1, rng.choice((P2PKH, P2SH, P2WPKH, MULTISIG, P2PKH[:24] + b"\x00", _script(rng))))
             for _ in tx.vin]
    for flags in (0, SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS):
        assert transaction_sigop_cost(tx, spent, flags) == _reference_sigop_cost(tx, spent, flags)
    assert legacy_sigop_count(tx) * WITNESS_SCALE_FACTOR == _reference_sigop_cost(tx, spent, 0)
    with pytest.raises(ValueError):
        transaction_sigop_cost(tx, [*spent, TxOut(1, P2PKH)], SCRIPT_VERIFY_P2SH)


def test_coin_key_small_and_large_indexes() -> None:
    txid = bytes(range(32))
    for n in (0, 1, 127, 128, 255, 70000, 0xFFFFFFFF):
        assert coin_key(OutPoint(txid, n)) == b"C" + txid + ser_varint(n)


def test_have_coin_through_the_view_stack(tmp_path: Path) -> None:
    db = ChainStateDB(tmp_path / "chainstate")
    db.start()
    try:
        stored = OutPoint(b"\x01" * 32, 0)
        coin = Coin(TxOut(5, P2PKH), 3, False)
        db.batch_write(b"\x02" * 32, None, [(stored, coin)])
        base = CoinsViewDB(db)
        tip = CoinsViewCache(base)
        view = CoinsViewCache(tip)
        missing = OutPoint(b"\x03" * 32, 1)
        assert base.have_coin(stored) and not base.have_coin(missing)
        assert view.have_coin(stored) and not view.have_coin(missing)
        assert stored in view.entries and stored in tip.entries  # fetched, as Core's HaveCoin does
        assert missing not in view.entries and missing not in tip.entries
        assert view.spend_coin(stored) == coin
        assert not view.have_coin(stored) and tip.have_coin(stored)
        view.add_coin(missing, coin, possible_overwrite=False)
        assert view.have_coin(missing) and not tip.have_coin(missing)
    finally:
        db.stop()


class _EmptyBase:
    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return None

    def get_best_block(self) -> bytes | None:
        return None

    def batch_write(self, entries: object, best_block: bytes) -> None:
        raise AssertionError("not flushed here")


def _reference_add_coins(view: CoinsViewCache, tx: Transaction, height: int) -> None:
    """AddCoins(check=false) as one AddCoin per output."""
    for n, txout in enumerate(tx.vout):
        view.add_coin(OutPoint(tx.txid, n), Coin(txout, height, tx.is_coinbase()), tx.is_coinbase())


@pytest.mark.parametrize("seed", range(30))
def test_add_coins_equals_one_add_coin_per_output(seed: int) -> None:
    rng = random.Random(seed)
    outs = tuple(TxOut(rng.randrange(1, 10**9), rng.choice((P2PKH, P2SH, b"\x6a\x01\x02", b"\xc0\x14", b"",
                                                             bytes(10_001))))
                 for _ in range(rng.randrange(1, 12)))
    tx = Transaction(2, (TxIn(OutPoint(rng.randbytes(32), 0), b"\x51"),), outs, 0)
    # Some outputs already have a spent entry, written down (DIRTY) or not.
    spent = {n: rng.choice((0, DIRTY)) for n in range(len(outs)) if rng.random() < 0.3}
    views = []
    for add in (lambda v: v.add_coins(tx, 7), lambda v: _reference_add_coins(v, tx, 7)):
        view = CoinsViewCache(_EmptyBase())
        for n, flags in spent.items():
            view.entries[OutPoint(tx.txid, n)] = CacheEntry(None, flags)
        add(view)
        views.append(view)
    fast, slow = views
    assert fast.memory_usage() == slow.memory_usage()
    assert {k: (e.coin, e.flags) for k, e in fast.entries.items()} == {
        k: (e.coin, e.flags) for k, e in slow.entries.items()}


def test_add_coins_refuses_to_replace_an_unspent_coin() -> None:
    tx = Transaction(2, (TxIn(OutPoint(b"\x05" * 32, 0), b"\x51"),), (TxOut(1, P2PKH),), 0)
    view = CoinsViewCache(_EmptyBase())
    view.add_coins(tx, 1)
    with pytest.raises(AssertionError):
        view.add_coins(tx, 2)
