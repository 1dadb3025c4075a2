"""Reject reasons of invalid transactions and blocks, checked against Core's strings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from aipgd.consensus.block_check import (
    WITNESS_COMMITMENT_HEADER,
    block_witness_merkle_root,
    check_block,
    contextual_check_block,
    contextual_check_block_header,
)
from aipgd.consensus.tx_check import check_transaction
from aipgd.consensus.tx_verify import (
    calculate_sequence_locks,
    check_tx_inputs,
    evaluate_sequence_locks,
    is_final_tx,
    transaction_sigop_cost,
)
from aipgd.consensus.validation_state import RejectCode, ValidationState
from aipgd.core.block import Block, BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.transaction import MAX_MONEY, NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import ZERO_HASH
from aipgd.script.flags import SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script, push_data, push_int

P2PKH = bytes.fromhex("76a914" + "11" * 20 + "88ac")
ASSET = bytes((Op.OP_AIPG_ASSET,))


def asset_out(kind: bytes, value: int = 0) -> TxOut:
    return TxOut(value, P2PKH + ASSET + push_data(b"rvn" + kind + b"\x04TEST" + b"\x00" * 8) + b"\x75")


def spend(*outs: TxOut, ins: tuple[TxIn, ...] | None = None, version: int = 2,
          locktime: int = 0) -> Transaction:
    vin = ins if ins is not None else (TxIn(OutPoint(b"\x01" * 32, 0)),)
    return Transaction(version, vin, outs, locktime)


def coinbase(*outs: TxOut, script_sig: bytes = b"\x01\x02") -> Transaction:
    return Transaction(1, (TxIn(NULL_OUTPOINT, script_sig),), outs or (TxOut(50, P2PKH),), 0)


# (description, transaction, Core's reject reason, DoS score)
TX_CASES: list[tuple[str, Transaction, str, int]] = [
    ("no inputs", Transaction(1, (), (TxOut(1, P2PKH),), 0), "bad-txns-vin-empty", 10),
    ("no outputs", spend(), "bad-txns-vout-empty", 10),
    ("oversize", spend(TxOut(1, b"\x00" * 2_000_001)), "bad-txns-oversize", 100),
    ("negative output", spend(TxOut(-1, P2PKH)), "bad-txns-vout-negative", 100),
    ("output above MAX_MONEY", spend(TxOut(MAX_MONEY + 1, P2PKH)), "bad-txns-vout-toolarge", 100),
    ("outputs sum above MAX_MONEY", spend(TxOut(MAX_MONEY, P2PKH), TxOut(1, P2PKH)),
     "bad-txns-txouttotal-toolarge", 100),
    ("duplicate inputs", spend(TxOut(1, P2PKH), ins=(TxIn(OutPoint(b"\x01" * 32, 0)),) * 2),
     "bad-txns-inputs-duplicate", 100),
    ("coinbase scriptSig too short", coinbase(script_sig=b"\x01"), "bad-cb-length", 100),
    ("coinbase scriptSig too long", coinbase(script_sig=b"\x01" * 101), "bad-cb-length", 100),
    ("null prevout outside coinbase",
     spend(TxOut(1, P2PKH), ins=(TxIn(OutPoint(b"\x01" * 32, 0)), TxIn(NULL_OUTPOINT))),
     "bad-txns-prevout-null", 10),
    ("coinbase with an asset output", coinbase(asset_out(b"t")), "bad-txns-coinbase-contains-asset-txes", 0),
    ("asset transfer carrying coins", spend(asset_out(b"t", 5)),
     "bad-txns-asset-transfer-amount-isn't-zero", 100),
    ("asset issue carrying coins", spend(asset_out(b"q", 5)), "bad-txns-asset-issued-amount-isn't-zero", 100),
    ("OP_RVN_ASSET in the wrong place", spend(TxOut(0, b"\x51" + ASSET + b"\x01\x02")),
     "bad-txns-op-neox-asset-not-in-right-script-location", 100),
]


@pytest.mark.parametrize(("what", "tx", "reason", "dos"), TX_CASES, ids=[c[0] for c in TX_CASES])
def test_check_transaction_reject_reasons(what: str, tx: Transaction, reason: str, dos: int) -> None:
    state = check_transaction(tx)
    assert state.is_invalid(), what
    assert (state.reject_reason, state.dos, state.reject_code) == (reason, dos, RejectCode.REJECT_INVALID)


def test_reissue_with_coins_rejected_only_in_blocks_and_mempool() -> None:
    tx = spend(asset_out(b"r", 5))
    assert check_transaction(tx).is_valid()
    assert (check_transaction(tx, block_check=True).reject_reason
            == "bad-txns-asset-reissued-amount-isn't-zero")
    assert (check_transaction(tx, mempool_check=True).reject_reason
            == "bad-mempool-txns-asset-reissued-amount-isn't-zero")


@dataclass(frozen=True)
class Coin:
    out: TxOut
    height: int
    is_coinbase: bool = False


PREV = OutPoint(b"\x01" * 32, 0)
INPUT_CASES: list[tuple[str, dict[OutPoint, Coin], Transaction, str]] = [
    ("missing input", {}, spend(TxOut(1, P2PKH)), "bad-txns-inputs-missingorspent"),
    ("immature coinbase", {PREV: Coin(TxOut(50, P2PKH), 100, True)}, spend(TxOut(1, P2PKH)),
     "bad-txns-premature-spend-of-coinbase"),
    ("input value out of range", {PREV: Coin(TxOut(MAX_MONEY + 1, P2PKH), 1)}, spend(TxOut(1, P2PKH)),
     "bad-txns-inputvalues-outofrange"),
    ("outputs exceed inputs", {PREV: Coin(TxOut(5, P2PKH), 1)}, spend(TxOut(6, P2PKH)),
     "bad-txns-in-belowout"),
]


@pytest.mark.parametrize(("what", "coins", "tx", "reason"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_check_tx_inputs_reject_reasons(what: str, coins: dict[OutPoint, Coin], tx: Transaction,
                                        reason: str) -> None:
    state, fee = check_tx_inputs(tx, coins, spend_height=150)
    assert (state.reject_reason, fee) == (reason, 0), what


def test_check_tx_inputs_fee_and_maturity_boundary() -> None:
    coins = {PREV: Coin(TxOut(50, P2PKH), 50, True)}
    state, fee = check_tx_inputs(spend(TxOut(40, P2PKH)), coins, spend_height=150)
    assert state.is_valid() and fee == 10
    assert "value in (0.00000005) < value out (0.00000006)" in check_tx_inputs(
        spend(TxOut(6, P2PKH)), {PREV: Coin(TxOut(5, P2PKH), 1)}, 150)[0].debug_message


def test_finality_and_sequence_locks() -> None:
    tx = spend(TxOut(1, P2PKH), ins=(TxIn(PREV, b"", 0),), locktime=100)
    assert not is_final_tx(tx, 100, 0) and is_final_tx(tx, 101, 0)
    # BIP68: 10 blocks relative to a coin mined at height 50.
    tx = spend(TxOut(1, P2PKH), ins=(TxIn(PREV, b"", 10),))
    min_height, min_time, _ = calculate_sequence_locks(tx, 1, [50], lambda h: 0)
    assert (min_height, min_time) == (59, -1)
    assert not evaluate_sequence_locks(59, 0, min_height, min_time)
    assert evaluate_sequence_locks(60, 0, min_height, min_time)
    # Time lock: 2 units of 512 s from the MTP of the block before the coin's block.
    tx = spend(TxOut(1, P2PKH), ins=(TxIn(PREV, b"", (1 << 22) | 2),))
    assert calculate_sequence_locks(tx, 1, [50], lambda h: 1000 + h)[:2] == (-1, 1049 + 1024 - 1)
    # Version 1 and the disable flag turn BIP68 off.
    v1 = spend(ins=(TxIn(PREV, b"", 10),), version=1)
    assert calculate_sequence_locks(v1, 1, [50], lambda h: 0)[:2] == (-1, -1)


def test_sigop_cost() -> None:
    multisig = build_script(Op.OP_1, b"\x02" * 33, Op.OP_1, Op.OP_CHECKMULTISIG)
    tx = spend(TxOut(1, multisig), ins=(TxIn(PREV, push_data(b"x")),))
    assert transaction_sigop_cost(tx, [TxOut(1, P2PKH)], SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS) == 80
    p2wpkh = build_script(Op.OP_0, b"\x11" * 20)
    assert transaction_sigop_cost(tx, [TxOut(1, p2wpkh)], SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS) == 81


# --- blocks -------------------------------------------------------------------------------------


def make_block(vtx: tuple[Transaction, ...], merkle: bytes | None = None, version: int = 0x30000000,
               time: int = 1_700_000_000) -> Block:
    root = merkle if merkle is not None else Block(BlockHeader(version, ZERO_HASH, ZERO_HASH, time, 0), vtx) \
        .compute_merkle_root()[0]
    return Block(BlockHeader(version, ZERO_HASH, root, time, 0x1D00FFFF), vtx)


CB = coinbase(TxOut(50, P2PKH), script_sig=push_int(1000) + b"\x00")
TX1 = spend(TxOut(1, P2PKH))
TX2 = spend(TxOut(2, P2PKH))
BLOCK_CASES: list[tuple[str, Callable[[], ValidationState], str]] = [
    ("merkle root mismatch", lambda: check_block(make_block((CB,), merkle=b"\x05" * 32)), "bad-txnmrklroot"),
    ("mutated merkle (duplicate txs)", lambda: check_block(make_block((CB, TX1, TX2, TX2))),
     "bad-txns-duplicate"),
    ("no transactions", lambda: check_block(make_block(())), "bad-blk-length"),
    ("first tx not coinbase", lambda: check_block(make_block((TX1,))), "bad-cb-missing"),
    ("two coinbases", lambda: check_block(make_block((CB, coinbase()))), "bad-cb-multiple"),
    ("invalid transaction", lambda: check_block(make_block((CB, spend()))), "bad-txns-vout-empty"),
    ("too many sigops", lambda: check_block(make_block((CB, spend(TxOut(1, b"\xac" * 20_001))))),
     "bad-blk-sigops"),
    ("timestamp not after MTP", lambda: contextual_check_block_header(
        make_block((CB,)).header, 999, 1_700_000_000, 1_700_000_000, dgw_active=True), "time-too-old"),
    ("timestamp too far ahead", lambda: contextual_check_block_header(
        make_block((CB,)).header, 999, 0, 1_700_000_000 - 721, dgw_active=True), "time-too-new"),
    ("old version", lambda: contextual_check_block_header(
        make_block((CB,), version=4).header, 999, 0, 1_700_000_000, dgw_active=True),
     "bad-version(0x00000004)"),
    ("wrong bits", lambda: contextual_check_block_header(
        make_block((CB,)).header, 999, 0, 1_700_000_000, dgw_active=True, expected_bits=1), "bad-diffbits"),
    ("non-final transaction", lambda: contextual_check_block(
        make_block((CB, spend(TxOut(1, P2PKH), ins=(TxIn(PREV, b"", 0),), locktime=5000))), 999, 0,
        bip34_height=0), "bad-txns-nonfinal"),
    ("BIP34 height missing", lambda: contextual_check_block(make_block((CB,)), 1000, 0, bip34_height=0),
     "bad-cb-height"),
    ("unexpected witness", lambda: contextual_check_block(
        make_block((CB, Transaction(2, (TxIn(PREV, b"", 0, (b"w",)),), (TxOut(1, P2PKH),), 0))), 999, 0,
        bip34_height=0), "unexpected-witness"),
]


@pytest.mark.parametrize(("what", "run", "reason"), BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES])
def test_block_reject_reasons(what: str, run: Callable[[], ValidationState], reason: str) -> None:
    state = run()
    assert state.is_invalid() and state.reject_reason == reason, (what, state)


def test_witness_commitment() -> None:
    wtx = Transaction(2, (TxIn(PREV, b"", 0, (b"w",)),), (TxOut(1, P2PKH),), 0)
    nonce = b"\x00" * 32

    def with_commitment(commitment: bytes, witness: tuple[bytes, ...]) -> Block:
        cb = Transaction(1, (TxIn(NULL_OUTPOINT, push_int(1000) + b"\x00", 0xFFFFFFFF, witness),),
                         (TxOut(50, P2PKH), TxOut(0, WITNESS_COMMITMENT_HEADER + commitment)), 0)
        return make_block((cb, wtx))

    draft = with_commitment(b"\x00" * 32, (nonce,))
    root, _ = block_witness_merkle_root(draft)
    good = with_commitment(sha256d(root + nonce), (nonce,))
    assert check_block(good).is_valid()
    assert contextual_check_block(good, 999, 0, bip34_height=0).is_valid()
    assert contextual_check_block(draft, 999, 0, bip34_height=0).reject_reason == "bad-witness-merkle-match"
    bad_nonce = with_commitment(sha256d(root + nonce), ())
    assert contextual_check_block(bad_nonce, 999, 0, bip34_height=0).reject_reason == "bad-witness-nonce-size"


def test_reject_reason_classes_cover_at_least_twenty() -> None:
    reasons = {c[2] for c in TX_CASES} | {c[3] for c in INPUT_CASES} | {c[2] for c in BLOCK_CASES}
    assert len(reasons) >= 20
