"""Core's sighash.json: legacy signature hashes of random transactions (Core: sighash_from_data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipgd.consensus.tx_check import check_transaction
from aipgd.core.transaction import Transaction, TxIn, TxOut
from aipgd.script.flags import (
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_NONE,
    SIGHASH_SINGLE,
    SIGVERSION_BASE,
)
from aipgd.script.sighash import (
    SIGHASH_ONE,
    PrecomputedTxData,
    serialize_script_code,
    signature_hash,
    witness_v0_signature_hash,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def _rows() -> list[Any]:
    with open(DATA / "sighash.json") as f:
        rows: list[Any] = json.load(f)
    return [pytest.param(r, id=str(i)) for i, r in enumerate(rows) if len(r) == 5]


@pytest.mark.parametrize("row", _rows())
def test_sighash_vector(row: list[Any]) -> None:
    raw_tx, raw_script, n_in, hash_type, expected = row
    tx = Transaction.from_bytes(bytes.fromhex(raw_tx))
    assert check_transaction(tx).is_valid()
    digest = signature_hash(bytes.fromhex(raw_script), tx, n_in, hash_type, 0, SIGVERSION_BASE)
    # The vectors print the uint256 (reversed byte order).
    assert digest[::-1].hex() == expected


def test_precomputed_data_gives_same_hash() -> None:
    for row in _rows()[:50]:
        raw_tx, raw_script, n_in, hash_type, _ = row.values[0]
        tx = Transaction.from_bytes(bytes.fromhex(raw_tx))
        data = PrecomputedTxData(tx)
        script = bytes.fromhex(raw_script)
        assert signature_hash(script, tx, n_in, hash_type, 0, SIGVERSION_BASE, data) == \
            signature_hash(script, tx, n_in, hash_type, 0, SIGVERSION_BASE)


def _bip143_example() -> Transaction:
    # BIP143 "Native P2WPKH" example: unsigned transaction, input 1 is the P2WPKH one.
    raw = bytes.fromhex(
        "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffff"
        "ef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206"
        "000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42db"
        "ee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
    )
    return Transaction.from_bytes(raw)


def test_bip143_native_p2wpkh_example() -> None:
    tx = _bip143_example()
    script_code = bytes.fromhex("76a9141d0f172a0ecb48aee1be1f2687d2963ae33f71a188ac")
    digest = witness_v0_signature_hash(script_code, tx, 1, SIGHASH_ALL, 600_000_000)
    assert digest.hex() == "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"


def test_sighash_single_without_output_is_one() -> None:
    tx = Transaction(1, (TxIn(_bip143_example().vin[0].prevout), TxIn(_bip143_example().vin[1].prevout)),
                     (TxOut(1, b""),), 0)
    assert signature_hash(b"", tx, 1, SIGHASH_SINGLE, 0, SIGVERSION_BASE) == SIGHASH_ONE


_BASE_TYPES = (SIGHASH_ALL, SIGHASH_NONE, SIGHASH_SINGLE)
_ALL_TYPES = [base | acp for acp in (0, SIGHASH_ANYONECANPAY) for base in _BASE_TYPES]


@pytest.mark.parametrize("hash_type", _ALL_TYPES)
def test_bip143_hash_types_use_cached_midstates(hash_type: int) -> None:
    tx = _bip143_example()
    data = PrecomputedTxData(tx)
    code = b"\x51"
    cached = witness_v0_signature_hash(code, tx, 0, hash_type, 5, data)
    assert cached == witness_v0_signature_hash(code, tx, 0, hash_type, 5)


def test_script_code_drops_codeseparators_and_stops_at_truncated_push() -> None:
    assert serialize_script_code(b"\x51\xab\x52") == b"\x02\x51\x52"
    # Core's length prefix counts the bytes GetOp never reached (PUSHDATA2 with one length byte).
    assert serialize_script_code(b"\xab\x4d\x01") == b"\x02\x4d"
