"""Standard templates (solver) incl. Ravencoin asset scripts, signatures, and the signature cache."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey

from aipgd.core.hashes import hash160
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.script.asset_script import (
    AssetScriptType,
    asset_script_info,
    count_opcode,
    is_null_asset_tx_data,
    is_null_asset_verifier,
    is_null_global_restriction,
)
from aipgd.script.errors import ScriptError
from aipgd.script.flags import STANDARD_SCRIPT_VERIFY_FLAGS, format_flags, parse_flags
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script, p2sh_sigop_count, push_data, sigop_count
from aipgd.script.sigcache import CachingTransactionSignatureChecker, SignatureCache
from aipgd.script.sighash import legacy_signature_hash
from aipgd.script.signature import SECP256K1_N, is_low_s, parse_der_lax, verify_ecdsa
from aipgd.script.standard import KeyID, TxoutType, script_for_destination, solver
from aipgd.script.verify import verify_script

KEY = PrivateKey(hashlib.sha256(b"standard-tests").digest())
PUB = KEY.public_key.format(compressed=True)
PKH = hash160(PUB)
P2PKH = script_for_destination(KeyID(PKH))


def asset_script(kind: bytes, payload: bytes = b"\x04TEST" + b"\x00" * 8) -> bytes:
    """P2PKH + OP_RVN_ASSET <"rvn" + type + payload> OP_DROP, as Ravencoin builds them."""
    return P2PKH + bytes((Op.OP_AIPG_ASSET,)) + push_data(b"rvn" + kind + payload) + bytes((Op.OP_DROP,))


@pytest.mark.parametrize(("script", "kind", "solutions"), [
    (build_script(PUB, Op.OP_CHECKSIG), TxoutType.TX_PUBKEY, [PUB]),
    (P2PKH, TxoutType.TX_PUBKEYHASH, [PKH]),
    (build_script(Op.OP_HASH160, PKH, Op.OP_EQUAL), TxoutType.TX_SCRIPTHASH, [PKH]),
    (build_script(Op.OP_1, PUB, PUB, Op.OP_2, Op.OP_CHECKMULTISIG), TxoutType.TX_MULTISIG,
     [b"\x01", PUB, PUB, b"\x02"]),
    (build_script(Op.OP_0, PKH), TxoutType.TX_WITNESS_V0_KEYHASH, [PKH]),
    (build_script(Op.OP_0, b"\x22" * 32), TxoutType.TX_WITNESS_V0_SCRIPTHASH, [b"\x22" * 32]),
    (build_script(Op.OP_RETURN, b"hello"), TxoutType.TX_NULL_DATA, []),
    (asset_script(b"t"), TxoutType.TX_TRANSFER_ASSET, [PKH]),
    (asset_script(b"q"), TxoutType.TX_NEW_ASSET, [PKH]),
    (asset_script(b"o"), TxoutType.TX_NEW_ASSET, [PKH]),
    (asset_script(b"r"), TxoutType.TX_REISSUE_ASSET, [PKH]),
    (bytes((Op.OP_AIPG_ASSET,)) + push_data(PKH) + push_data(b"\x05#TAG\x01"),
     TxoutType.TX_RESTRICTED_ASSET_DATA, [PKH]),
    (bytes((Op.OP_AIPG_ASSET, Op.OP_RESERVED, Op.OP_RESERVED)) + push_data(b"$ABC\x01"),
     TxoutType.TX_RESTRICTED_ASSET_DATA, []),
])
def test_solver_templates(script: bytes, kind: TxoutType, solutions: list[bytes]) -> None:
    assert solver(script) == (kind, solutions)


@pytest.mark.parametrize("script", [
    b"", b"\x51", build_script(Op.OP_1, Op.OP_CHECKSIG),
    build_script(Op.OP_2, PUB, Op.OP_1, Op.OP_CHECKMULTISIG),
    build_script(Op.OP_0, PUB, Op.OP_1, Op.OP_CHECKMULTISIG), build_script(Op.OP_1, b"\x00" * 20),
    build_script(Op.OP_RETURN, Op.OP_DUP), b"\x4c",
])
def test_solver_nonstandard(script: bytes) -> None:
    assert solver(script) == (TxoutType.TX_NONSTANDARD, [])


def test_asset_detection_follows_core_byte_positions() -> None:
    assert asset_script_info(asset_script(b"t")) == (AssetScriptType.TX_TRANSFER_ASSET, False, 31)
    assert asset_script_info(asset_script(b"o")) == (AssetScriptType.TX_NEW_ASSET, True, 31)
    # A long payload pushed with OP_PUSHDATA1 moves the magic one byte right.
    long_issue = asset_script(b"q", b"\x00" * 100)
    assert long_issue[26] == Op.OP_PUSHDATA1
    assert asset_script_info(long_issue) == (AssetScriptType.TX_NEW_ASSET, False, 32)
    # Core looks behind byte 27 only when it is not 'r'.
    bad = bytearray(asset_script(b"t"))
    bad[27:31] = b"rrvn"
    assert asset_script_info(bytes(bad)) is None
    assert is_null_asset_tx_data(bytes((Op.OP_AIPG_ASSET,)) + push_data(PKH) + b"\x01\x02")
    assert is_null_global_restriction(bytes((Op.OP_AIPG_ASSET, Op.OP_RESERVED, Op.OP_RESERVED)) + b"$ABC")
    assert is_null_asset_verifier(bytes((Op.OP_AIPG_ASSET, Op.OP_RESERVED, 0x02)) + b"ab")


def test_asset_op_swallows_the_rest_of_the_script() -> None:
    script = asset_script(b"t")
    # The OP_DROP after the payload is data: one OP_RVN_ASSET, no OP_DROP, two sigops only from P2PKH.
    assert count_opcode(script, Op.OP_AIPG_ASSET) == 1
    assert count_opcode(script, Op.OP_DROP) == 0
    assert sigop_count(script + bytes((Op.OP_CHECKSIG,)), True) == 1


def test_asset_output_spends_like_p2pkh() -> None:
    spk = asset_script(b"t")
    tx = Transaction(2, (TxIn(OutPoint(b"\x01" * 32, 0)),), (TxOut(0, b""),), 0)
    sig = KEY.sign(legacy_signature_hash(spk, tx, 0, 1), hasher=None) + b"\x01"
    signed = Transaction(2, (TxIn(tx.vin[0].prevout, push_data(sig) + push_data(PUB)),), tx.vout, 0)
    from aipgd.script.checker import TransactionSignatureChecker
    err = verify_script(signed.vin[0].script_sig, spk, (), STANDARD_SCRIPT_VERIFY_FLAGS,
                        TransactionSignatureChecker(signed, 0, 0))
    assert err == ScriptError.SCRIPT_ERR_OK


def test_sigop_counting() -> None:
    multisig = build_script(Op.OP_2, PUB, PUB, PUB, Op.OP_3, Op.OP_CHECKMULTISIG)
    assert sigop_count(multisig, False) == 20
    assert sigop_count(multisig, True) == 3
    p2sh = build_script(Op.OP_HASH160, hash160(multisig), Op.OP_EQUAL)
    assert p2sh_sigop_count(p2sh, build_script(Op.OP_0, b"sig", multisig)) == 3
    assert p2sh_sigop_count(p2sh, build_script(Op.OP_0, Op.OP_NOP, multisig)) == 0


def test_flags_parse_and_format() -> None:
    assert parse_flags("P2SH,STRICTENC") == 3
    assert format_flags(parse_flags("WITNESS,P2SH")) == "P2SH,WITNESS"
    assert parse_flags("") == 0
    with pytest.raises(ValueError):
        parse_flags("BOGUS")


def test_lax_der_accepts_what_core_accepts() -> None:
    msg = hashlib.sha256(b"m").digest()
    der = KEY.sign(msg, hasher=None)
    r, s = parse_der_lax(der) or (0, 0)
    assert verify_ecdsa(PUB, der, msg)
    # Excess padding and a long-form length: invalid under BIP66 but parsed by the lax parser.
    r_bytes = b"\x00\x00" + r.to_bytes(32, "big")
    s_part = der[4 + der[3]:]
    padded = b"\x02\x81" + bytes((len(r_bytes),)) + r_bytes + s_part
    lax = b"\x30" + bytes((len(padded),)) + padded
    assert parse_der_lax(lax) == (r, s)
    assert verify_ecdsa(PUB, lax, msg)
    # High S verifies (Core normalizes) but fails the LOW_S rule.
    high = (SECP256K1_N - s).to_bytes(33, "big")
    high_der = der[:4 + der[3]] + b"\x02\x21" + high
    high_der = b"\x30" + bytes((len(high_der) - 2,)) + high_der[2:]
    assert verify_ecdsa(PUB, high_der, msg)
    assert not is_low_s(high_der)
    assert parse_der_lax(b"\x31\x00") is None


def test_signature_cache_stores_only_when_asked() -> None:
    spk = P2PKH
    tx = Transaction(2, (TxIn(OutPoint(b"\x02" * 32, 1)),), (TxOut(5, b""),), 0)
    sig = KEY.sign(legacy_signature_hash(spk, tx, 0, 1), hasher=None) + b"\x01"
    signed = Transaction(2, (TxIn(tx.vin[0].prevout, push_data(sig) + push_data(PUB)),), tx.vout, 0)
    cache = SignatureCache(b"\x07" * 32, max_entries=4)

    def check(store: bool) -> ScriptError:
        checker = CachingTransactionSignatureChecker(signed, 0, 5, cache, store)
        return verify_script(signed.vin[0].script_sig, spk, (), STANDARD_SCRIPT_VERIFY_FLAGS, checker)

    assert check(store=False) == ScriptError.SCRIPT_ERR_OK
    assert len(cache) == 0
    assert check(store=True) == ScriptError.SCRIPT_ERR_OK
    assert len(cache) == 1
    # Block validation (store=False) consumes the entry, as Core's erase-on-hit does.
    assert check(store=False) == ScriptError.SCRIPT_ERR_OK
    assert len(cache) == 0
    for i in range(10):
        cache.insert(bytes((i,)) * 32)
    assert len(cache) == 4
