"""Core's script_tests.json through verify_script, case by case (Core: script_json_test)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.script.asm import script_from_asm
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError
from aipgd.script.flags import (
    SCRIPT_VERIFY_CLEANSTACK,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_WITNESS,
    parse_flags,
)
from aipgd.script.script import push_int
from aipgd.script.verify import verify_script

DATA = Path(__file__).resolve().parent.parent / "data"

# Cases that cannot apply to AIPG, keyed by the case's JSON text, with the reason. Must stay short.
SKIP: dict[str, str] = {}

# The vector files name errors without the SCRIPT_ERR_ prefix; SIG_NULLFAIL is spelt NULLFAIL.
_ERROR_NAMES = {e.name.removeprefix("SCRIPT_ERR_"): e for e in ScriptError}
_ERROR_NAMES["NULLFAIL"] = ScriptError.SCRIPT_ERR_SIG_NULLFAIL


def _cases() -> list[Any]:
    with open(DATA / "script_tests.json") as f:
        rows: list[Any] = json.load(f, parse_float=Decimal)
    out = []
    for row in rows:
        pos = 1 if row and isinstance(row[0], list) else 0
        if len(row) < 4 + pos:
            continue  # comment
        out.append(pytest.param(row, id=f"{len(out)}"))
    return out


def crediting_tx(script_pubkey: bytes, value: int) -> Transaction:
    """Core: BuildCreditingTransaction."""
    coinbase_in = TxIn(NULL_OUTPOINT, push_int(0) + push_int(0))
    return Transaction(1, (coinbase_in,), (TxOut(value, script_pubkey),), 0)


def spending_tx(script_sig: bytes, witness: tuple[bytes, ...], credit: Transaction) -> Transaction:
    """Core: BuildSpendingTransaction."""
    txin = TxIn(OutPoint(credit.txid, 0), script_sig, 0xFFFFFFFF, witness)
    return Transaction(1, (txin,), (TxOut(credit.vout[0].value, b""),), 0)


def run_case(row: list[Any]) -> tuple[ScriptError, ScriptError]:
    witness: tuple[bytes, ...] = ()
    value = 0
    pos = 0
    if isinstance(row[0], list):
        witness = tuple(bytes.fromhex(item) for item in row[0][:-1])
        value = int(Decimal(row[0][-1]) * 100_000_000)
        pos = 1
    script_sig = script_from_asm(row[pos])
    script_pubkey = script_from_asm(row[pos + 1])
    flags = parse_flags(row[pos + 2])
    expected = _ERROR_NAMES[row[pos + 3]]
    if flags & SCRIPT_VERIFY_CLEANSTACK:
        flags |= SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS
    credit = crediting_tx(script_pubkey, value)
    tx = spending_tx(script_sig, witness, credit)
    got = verify_script(script_sig, script_pubkey, witness, flags, TransactionSignatureChecker(tx, 0, value))
    return got, expected


@pytest.mark.parametrize("row", _cases())
def test_script_json(row: list[Any]) -> None:
    key = json.dumps(row, default=str)
    if key in SKIP:
        pytest.skip(SKIP[key])
    got, expected = run_case(row)
    assert got == expected, f"{got.name} where {expected.name} expected: {key}"


def test_skip_table_is_short() -> None:
    for key, reason in SKIP.items():
        print(f"SKIP script_tests {key}: {reason}")
    assert len(SKIP) <= 5
