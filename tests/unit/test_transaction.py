"""Transactions: byte-exact round trips of Core's vectors, BIP144 witness encoding, txid/wtxid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import DeserializationError
from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut

DATA = Path(__file__).resolve().parent.parent / "data"


def raw_transactions() -> list[str]:
    """Every serialized transaction in Core's tx_valid/tx_invalid/sighash vectors."""
    out: list[str] = []
    for name, column in (("tx_valid.json", 1), ("tx_invalid.json", 1), ("sighash.json", 0)):
        with open(DATA / name) as f:
            rows: list[Any] = json.load(f)
        for row in rows:
            # Comment rows hold one string; data rows hold the hex in `column`.
            is_data = len(row) == 5 if name == "sighash.json" else isinstance(row[0], list)
            if is_data:
                out.append(row[column])
    return out


RAW = raw_transactions()


def test_vector_count() -> None:
    # 118 valid + 80 invalid + 500 sighash cases (the header row of sighash.json is a comment).
    assert len(RAW) == 698


@pytest.mark.parametrize("raw_hex", RAW, ids=lambda h: h[:16])
def test_round_trip_is_byte_exact(raw_hex: str) -> None:
    raw = bytes.fromhex(raw_hex)
    tx = Transaction.from_bytes(raw)
    assert tx.serialize() == raw
    assert tx.txid == sha256d(tx.serialize(with_witness=False))
    assert tx.wtxid == sha256d(raw)
    for cut in (len(raw) - 1, len(raw) // 2, 5):
        with pytest.raises(DeserializationError):
            Transaction.from_bytes(raw[:cut])
    with pytest.raises(DeserializationError, match="trailing"):
        Transaction.from_bytes(raw + b"\x00")


def _witness_tx() -> Transaction:
    return Transaction(
        version=2,
        vin=(TxIn(OutPoint(b"\x11" * 32, 1), b"", 0xFFFFFFFD, (b"\x30" * 71, b"\x02" * 33)),
             TxIn(OutPoint(b"\x22" * 32, 0), b"\x51", 0xFFFFFFFF)),
        vout=(TxOut(12345, bytes.fromhex("0014") + b"\x33" * 20),),
        locktime=500,
    )


def test_witness_serialization_bip144() -> None:
    tx = _witness_tx()
    full = tx.serialize()
    stripped = tx.serialize(with_witness=False)
    assert full[4:6] == b"\x00\x01"  # marker and flag
    assert stripped[4] == 2  # two inputs directly after the version
    parsed = Transaction.from_bytes(full)
    assert parsed == tx
    assert parsed.txid == sha256d(stripped) != parsed.wtxid == sha256d(full)
    assert tx.weight == 3 * len(stripped) + len(full)
    # The second input has an empty witness, written as a zero-length stack.
    assert full.endswith(b"\x00" + (500).to_bytes(4, "little"))


def test_superfluous_witness_is_rejected() -> None:
    tx = Transaction(1, (TxIn(OutPoint(b"\x01" * 32, 0)),), (TxOut(1, b"\x51"),))
    body = tx.serialize()
    # Splice in marker/flag and an all-empty witness: Core rejects "Superfluous witness record".
    forged = body[:4] + b"\x00\x01" + body[4:-4] + b"\x00" + body[-4:]
    with pytest.raises(DeserializationError, match="superfluous witness"):
        Transaction.from_bytes(forged)


def test_unknown_optional_data_flag_is_rejected() -> None:
    tx = _witness_tx()
    full = bytearray(tx.serialize())
    full[5] = 0x03
    with pytest.raises(DeserializationError, match="unknown transaction optional data"):
        Transaction.from_bytes(bytes(full))


def test_empty_transaction_without_witness_flag() -> None:
    # version, 0 inputs, flag byte 0 -> no outputs are read (Core's dummy-vin branch).
    tx = Transaction.from_bytes(bytes.fromhex("01000000" + "00" + "00" + "00000000"))
    assert tx.vin == () and tx.vout == ()


def test_huge_counts_fail_before_allocating() -> None:
    raw = bytes.fromhex("01000000") + b"\xfe\xff\xff\xff\x01"  # 33 million inputs claimed
    with pytest.raises(DeserializationError, match="exceeds"):
        Transaction.from_bytes(raw)
    raw = bytes.fromhex("01000000") + b"\xff" + (1 << 40).to_bytes(8, "little")
    with pytest.raises(DeserializationError, match="exceeds limit"):
        Transaction.from_bytes(raw)


def test_coinbase_detection() -> None:
    cb = Transaction(1, (TxIn(NULL_OUTPOINT, b"\x01\x01"),), (TxOut(50, b""),))
    assert cb.is_coinbase()
    assert not _witness_tx().is_coinbase()
