"""Core's tx_valid.json / tx_invalid.json: CheckTransaction plus every input's scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipgd.consensus.tx_check import check_transaction
from aipgd.core.transaction import OutPoint, Transaction
from aipgd.core.uint256 import hex_to_hash
from aipgd.script.asm import script_from_asm
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError
from aipgd.script.flags import parse_flags
from aipgd.script.sighash import PrecomputedTxData
from aipgd.script.verify import verify_script

DATA = Path(__file__).resolve().parent.parent / "data"

# Cases that cannot apply to AIPG, keyed by (file, serialized tx), with the reason. Must stay short.
SKIP: dict[tuple[str, str], str] = {}


def _cases(name: str) -> list[Any]:
    with open(DATA / name) as f:
        rows: list[Any] = json.load(f)
    return [pytest.param(row, id=f"{i}") for i, row in enumerate(rows) if isinstance(row[0], list)]


def _prevouts(row: list[Any]) -> dict[OutPoint, tuple[bytes, int]]:
    prevouts: dict[OutPoint, tuple[bytes, int]] = {}
    for entry in row[0]:
        assert 3 <= len(entry) <= 4, f"bad test: {row}"
        outpoint = OutPoint(hex_to_hash(entry[0]), entry[1] & 0xFFFFFFFF)
        prevouts[outpoint] = (script_from_asm(entry[2]), entry[3] if len(entry) == 4 else 0)
    return prevouts


def verify_case(row: list[Any]) -> tuple[bool, str]:
    """(valid, why not) exactly as Core's tx_valid_test/tx_invalid_test decide it."""
    prevouts = _prevouts(row)
    tx = Transaction.from_bytes(bytes.fromhex(row[1]))
    flags = parse_flags(row[2] if row[2] != "NONE" else "")
    state = check_transaction(tx)
    if not state.is_valid():
        return False, state.reject_reason
    txdata = PrecomputedTxData(tx)
    for i, txin in enumerate(tx.vin):
        assert txin.prevout in prevouts, f"bad test: {row}"
        script_pubkey, amount = prevouts[txin.prevout]
        err = verify_script(txin.script_sig, script_pubkey, txin.witness, flags,
                            TransactionSignatureChecker(tx, i, amount, txdata))
        if err != ScriptError.SCRIPT_ERR_OK:
            return False, err.name
    return True, ""


@pytest.mark.parametrize("row", _cases("tx_valid.json"))
def test_tx_valid(row: list[Any]) -> None:
    if ("tx_valid.json", row[1]) in SKIP:
        pytest.skip(SKIP["tx_valid.json", row[1]])
    ok, why = verify_case(row)
    assert ok, f"{why}: {row}"


@pytest.mark.parametrize("row", _cases("tx_invalid.json"))
def test_tx_invalid(row: list[Any]) -> None:
    if ("tx_invalid.json", row[1]) in SKIP:
        pytest.skip(SKIP["tx_invalid.json", row[1]])
    ok, _ = verify_case(row)
    assert not ok, f"accepted: {row}"


def test_skip_table_is_short() -> None:
    for (name, raw), reason in SKIP.items():
        print(f"SKIP {name} {raw[:40]}...: {reason}")
    assert len(SKIP) <= 5
