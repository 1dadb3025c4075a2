"""signrawtransaction and combinerawtransaction on witness outputs (Core 0.15: ProduceSignature and
CombineSignatures for P2WPKH, P2SH-P2WPKH, P2WSH and P2SH-P2WSH), checked with verify_script."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import coincurve

from aipgd.core.address import encode_wif
from aipgd.core.hashes import hash160
from aipgd.core.params import get_params
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hash_to_hex
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError
from aipgd.script.flags import STANDARD_SCRIPT_VERIFY_FLAGS
from aipgd.script.script import push_data
from aipgd.script.verify import verify_script
from rpc.rawtransaction import _combinerawtransaction, _signrawtransaction

PARAMS = get_params("regtest")
SECRETS = [bytes(31) + bytes([i]) for i in (1, 2, 3, 4)]
PUBKEYS = [coincurve.PrivateKey(s).public_key.format(compressed=True) for s in SECRETS]
WIFS = [encode_wif(s, True, PARAMS.prefixes) for s in SECRETS]
UNCOMPRESSED_WIF = encode_wif(SECRETS[0], False, PARAMS.prefixes)
PREV_TXID = bytes(range(32))
AMOUNT = 123_456_789  # 1.23456789 AIPG
AMOUNT_TEXT = Decimal("1.23456789")


def _p2wpkh(pubkey: bytes) -> bytes:
    return b"\x00\x14" + hash160(pubkey)


def _p2sh(redeem: bytes) -> bytes:
    return b"\xa9\x14" + hash160(redeem) + b"\x87"


def _p2wsh(witness_script: bytes) -> bytes:
    return b"\x00\x20" + hashlib.sha256(witness_script).digest()


def _multisig(required: int, pubkeys: list[bytes]) -> bytes:
    return (bytes([0x50 + required]) + b"".join(push_data(p) for p in pubkeys)
            + bytes([0x50 + len(pubkeys), 0xAE]))


MULTISIG_2_OF_3 = _multisig(2, PUBKEYS[:3])


def _ctx(coins: dict[OutPoint, TxOut] | None = None) -> Any:
    known = coins or {}

    def get_coin(outpoint: OutPoint) -> Any:
        out = known.get(outpoint)
        return SimpleNamespace(out=out) if out is not None else None

    return SimpleNamespace(node=SimpleNamespace(get_coin=get_coin, mempool=None), params=PARAMS)


def _unsigned() -> Transaction:
    return Transaction(2, (TxIn(OutPoint(PREV_TXID, 0)),), (TxOut(AMOUNT - 10_000, _p2wpkh(PUBKEYS[3])),), 0)


def _prev(script_pubkey: bytes, redeem: bytes | None = None, amount: Any = AMOUNT_TEXT) -> dict[str, Any]:
    prev: dict[str, Any] = {"txid": hash_to_hex(PREV_TXID), "vout": 0, "scriptPubKey": script_pubkey.hex()}
    if redeem is not None:
        prev["redeemScript"] = redeem.hex()
    if amount is not None:
        prev["amount"] = amount
    return prev


def _sign(tx_hex: str, prevtxs: list[dict[str, Any]], wifs: list[str], ctx: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = _signrawtransaction(ctx or _ctx(), [tx_hex, prevtxs, wifs, None])
    return result


def _verify(tx_hex: str, script_pubkey: bytes, amount: int = AMOUNT) -> ScriptError:
    tx = Transaction.from_bytes(bytes.fromhex(tx_hex))
    txin = tx.vin[0]
    return verify_script(txin.script_sig, script_pubkey, txin.witness, STANDARD_SCRIPT_VERIFY_FLAGS,
                         TransactionSignatureChecker(tx, 0, amount))


def _input(tx_hex: str) -> TxIn:
    return Transaction.from_bytes(bytes.fromhex(tx_hex)).vin[0]


def test_p2wpkh_signs_and_verifies() -> None:
    spk = _p2wpkh(PUBKEYS[0])
    result = _sign(_unsigned().serialize().hex(), [_prev(spk)], [WIFS[0]])
    assert result["complete"] is True and "errors" not in result
    txin = _input(result["hex"])
    assert txin.script_sig == b"" and len(txin.witness) == 2 and txin.witness[1] == PUBKEYS[0]
    assert _verify(result["hex"], spk) == ScriptError.SCRIPT_ERR_OK
    # BIP143 commits to the amount: the same signature is invalid for any other value (a failed
    # signature that is not empty is NULLFAIL under the standard flags).
    assert _verify(result["hex"], spk, AMOUNT + 1) == ScriptError.SCRIPT_ERR_SIG_NULLFAIL


def test_p2sh_p2wpkh_signs_and_verifies() -> None:
    redeem = _p2wpkh(PUBKEYS[1])
    spk = _p2sh(redeem)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk, redeem)], [WIFS[1]])
    assert result["complete"] is True and "errors" not in result
    txin = _input(result["hex"])
    assert txin.script_sig == push_data(redeem) and txin.witness[1] == PUBKEYS[1]
    assert _verify(result["hex"], spk) == ScriptError.SCRIPT_ERR_OK


def test_p2wsh_multisig_signs_and_verifies() -> None:
    spk = _p2wsh(MULTISIG_2_OF_3)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk, MULTISIG_2_OF_3)], [WIFS[0], WIFS[2]])
    assert result["complete"] is True and "errors" not in result
    txin = _input(result["hex"])
    assert txin.script_sig == b"" and txin.witness[0] == b"" and txin.witness[-1] == MULTISIG_2_OF_3
    assert len(txin.witness) == 4
    assert _verify(result["hex"], spk) == ScriptError.SCRIPT_ERR_OK


def test_p2wsh_single_key_script_signs() -> None:
    witness_script = push_data(PUBKEYS[3]) + b"\xac"
    spk = _p2wsh(witness_script)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk, witness_script)], [WIFS[3]])
    assert result["complete"] is True
    assert _verify(result["hex"], spk) == ScriptError.SCRIPT_ERR_OK


def test_p2sh_p2wsh_with_both_scripts_listed() -> None:
    # Core 0.15 takes one redeemScript per prevtxs entry; listing the outpoint twice gives the keystore
    # both the P2SH redeem script (the P2WSH program) and the witness script.
    redeem = _p2wsh(MULTISIG_2_OF_3)
    spk = _p2sh(redeem)
    prevtxs = [_prev(spk, redeem), _prev(spk, MULTISIG_2_OF_3)]
    result = _sign(_unsigned().serialize().hex(), prevtxs, [WIFS[1], WIFS[2]])
    assert result["complete"] is True
    txin = _input(result["hex"])
    assert txin.script_sig == push_data(redeem) and txin.witness[-1] == MULTISIG_2_OF_3
    assert _verify(result["hex"], spk) == ScriptError.SCRIPT_ERR_OK


def test_wrong_key_leaves_p2wpkh_incomplete_with_cores_error() -> None:
    spk = _p2wpkh(PUBKEYS[0])
    raw = _unsigned().serialize().hex()
    result = _sign(raw, [_prev(spk)], [WIFS[1]])
    # Core: a P2WPKH witness must hold exactly two items, so an empty one is a mismatch.
    assert result["complete"] is False
    assert result["hex"] == raw
    assert result["errors"] == [{
        "txid": hash_to_hex(PREV_TXID), "vout": 0, "witness": [], "scriptSig": "",
        "sequence": 0xFFFFFFFF, "error": "Witness program hash mismatch",
    }]


def test_uncompressed_key_does_not_sign_witness() -> None:
    # Core: CreateSig refuses uncompressed keys under SIGVERSION_WITNESS_V0.
    uncompressed = coincurve.PrivateKey(SECRETS[0]).public_key.format(compressed=False)
    spk = _p2wpkh(uncompressed)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk)], [UNCOMPRESSED_WIF])
    assert result["complete"] is False
    assert result["errors"][0]["error"] == "Witness program hash mismatch"


def test_wrong_key_leaves_p2wsh_incomplete_with_cores_error() -> None:
    spk = _p2wsh(MULTISIG_2_OF_3)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk, MULTISIG_2_OF_3)], [WIFS[3]])
    assert result["complete"] is False
    assert result["errors"] == [{
        "txid": hash_to_hex(PREV_TXID), "vout": 0, "witness": ["", MULTISIG_2_OF_3.hex()], "scriptSig": "",
        "sequence": 0xFFFFFFFF,
        "error": "Unable to sign input, invalid stack size (possibly missing key)",
    }]


def test_p2wsh_without_witness_script_signs_nothing() -> None:
    spk = _p2wsh(MULTISIG_2_OF_3)
    result = _sign(_unsigned().serialize().hex(), [_prev(spk)], [WIFS[0], WIFS[1]])
    assert result["complete"] is False
    assert result["errors"][0]["witness"] == []
    assert result["errors"][0]["error"] == "Witness program was passed an empty witness"


def test_missing_amount_signs_for_zero_as_core() -> None:
    # Core 0.15 (and AIPG Core) has no "Missing amount" error: an absent amount is 0, so the
    # signature commits to 0 and only verifies against a zero-valued coin.
    spk = _p2wpkh(PUBKEYS[0])
    result = _sign(_unsigned().serialize().hex(), [_prev(spk, amount=None)], [WIFS[0]])
    assert result["complete"] is True
    assert _verify(result["hex"], spk, 0) == ScriptError.SCRIPT_ERR_OK
    assert _verify(result["hex"], spk, AMOUNT) == ScriptError.SCRIPT_ERR_SIG_NULLFAIL


def test_p2wsh_2_of_3_signed_in_two_calls_is_complete() -> None:
    spk = _p2wsh(MULTISIG_2_OF_3)
    prevtxs = [_prev(spk, MULTISIG_2_OF_3)]
    first = _sign(_unsigned().serialize().hex(), prevtxs, [WIFS[2]])
    assert first["complete"] is False
    assert first["errors"][0]["error"] == "Unable to sign input, invalid stack size (possibly missing key)"
    partial = _input(first["hex"]).witness
    assert len(partial) == 3 and partial[0] == b"" and partial[-1] == MULTISIG_2_OF_3
    second = _sign(first["hex"], prevtxs, [WIFS[0]])
    assert second["complete"] is True and "errors" not in second
    witness = _input(second["hex"]).witness
    # Signatures in the order of the script's pubkeys, whichever call made them.
    assert witness[0] == b"" and witness[2] == partial[1] and len(witness) == 4
    assert _verify(second["hex"], spk) == ScriptError.SCRIPT_ERR_OK
    # Signing again with a key already used changes nothing.
    again = _sign(second["hex"], prevtxs, [WIFS[0]])
    assert again["hex"] == second["hex"] and again["complete"] is True


def test_p2wsh_partial_signatures_merge_with_combinerawtransaction() -> None:
    spk = _p2wsh(MULTISIG_2_OF_3)
    raw = _unsigned().serialize().hex()
    prevtxs = [_prev(spk, MULTISIG_2_OF_3)]
    part_a = _sign(raw, prevtxs, [WIFS[1]])
    part_b = _sign(raw, prevtxs, [WIFS[2]])
    assert part_a["complete"] is False and part_b["complete"] is False
    ctx = _ctx({OutPoint(PREV_TXID, 0): TxOut(AMOUNT, spk)})
    merged = _combinerawtransaction(ctx, [[raw, part_a["hex"], part_b["hex"]]])
    assert _verify(merged, spk) == ScriptError.SCRIPT_ERR_OK
    # The coin is known to the node now: signing with no keys checks it and reports it complete.
    checked = _sign(merged, [], [], ctx)
    assert checked == {"hex": merged, "complete": True}


def test_p2sh_p2wpkh_partial_merge_keeps_the_signed_witness() -> None:
    redeem = _p2wpkh(PUBKEYS[1])
    spk = _p2sh(redeem)
    raw = _unsigned().serialize().hex()
    signed = _sign(raw, [_prev(spk, redeem)], [WIFS[1]])
    ctx = _ctx({OutPoint(PREV_TXID, 0): TxOut(AMOUNT, spk)})
    for order in ([raw, signed["hex"]], [signed["hex"], raw]):
        merged = _combinerawtransaction(ctx, [order])
        assert _verify(merged, spk) == ScriptError.SCRIPT_ERR_OK


def test_legacy_p2sh_2_of_3_still_signs_in_two_calls() -> None:
    spk = _p2sh(MULTISIG_2_OF_3)
    prevtxs = [_prev(spk, MULTISIG_2_OF_3)]
    first = _sign(_unsigned().serialize().hex(), prevtxs, [WIFS[2]])
    assert first["complete"] is False and first["errors"][0]["witness"] == []
    second = _sign(first["hex"], prevtxs, [WIFS[0]])
    assert second["complete"] is True
    assert _input(second["hex"]).witness == ()
    assert _verify(second["hex"], spk) == ScriptError.SCRIPT_ERR_OK
