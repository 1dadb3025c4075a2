"""Signatures: domain tags, tamper detection, cross-type replay, low S, key checks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from coincurve import PrivateKey
from coincurve.ecdsa import der_to_cdata, serialize_compact
from hypothesis import given, settings
from hypothesis import strategies as st
from pouw_factories import (
    REQUESTER,
    VALIDATOR,
    WORKER,
    attestation,
    chat_spec,
    completion_spec,
    token_receipt,
)

from aipgd.core.hashes import sha256d
from aipgd.script.signature import SECP256K1_N
from pouw.attestation import Verdict
from pouw.errors import BAD_SIGNATURE, PouwError
from pouw.receipt import FinishReason, Timings
from pouw.signing import (
    ATTESTATION_TAG,
    RECEIPT_ACK_TAG,
    RECEIPT_TAG,
    PouwKey,
    WorkerKey,
    is_low_s_compact,
    sign_attestation,
    sign_receipt,
    sign_requester_ack,
    signature_digest,
    verify_attestation_signature,
    verify_digest,
    verify_receipt_signature,
    verify_requester_ack,
)


def _high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big")


def test_digest_is_sha256d_of_tag_and_id() -> None:
    object_id = bytes(range(32))
    assert signature_digest(RECEIPT_TAG, object_id) == sha256d(b"aipg-pouw/receipt/v1" + object_id)
    assert len({RECEIPT_TAG, RECEIPT_ACK_TAG, ATTESTATION_TAG}) == 3


def test_fixed_signature_vector() -> None:
    # RFC6979 makes the signature a function of key and digest: a hard-coded vector pins both.
    receipt = sign_receipt(token_receipt(), WORKER)
    assert receipt.worker_signature.hex() == (
        "2b892feeef4bf7301a4c35b06352d2193f4c765afefd42566c83f1cbaae1cb43"
        "2194f171d4aa6034c1dba92627237d095de60561e0c6ee6f13d01b9d3a8429b3")
    # libsecp256k1's plain (non-recoverable) signer gives the same r || s.
    der = PrivateKey(WORKER.secret).sign(signature_digest(RECEIPT_TAG, receipt.id), hasher=None)
    assert serialize_compact(der_to_cdata(der)) == receipt.worker_signature


def test_sign_and_verify_receipt() -> None:
    receipt = sign_receipt(token_receipt(), WORKER)
    assert len(receipt.worker_signature) == 64
    assert is_low_s_compact(receipt.worker_signature)
    assert verify_receipt_signature(receipt)
    assert not verify_receipt_signature(token_receipt())  # unsigned


@pytest.mark.parametrize("change", [
    {"finish_reason": FinishReason.LENGTH}, {"timings": Timings(0, 0, 0)}, {"started": 0},
    {"model_hash": bytes(32)}, {"job_id": b"\x01" * 32},
])
def test_tampered_receipt_fails(change: dict[str, Any]) -> None:
    signed = sign_receipt(token_receipt(), WORKER)
    tampered = replace(signed, **change)
    assert tampered.id != signed.id
    assert not verify_receipt_signature(tampered)


def test_signature_by_another_key_fails() -> None:
    signed = sign_receipt(token_receipt(), WORKER)
    moved = replace(signed, worker_pubkey=VALIDATOR.pubkey)
    assert not verify_receipt_signature(moved)
    with pytest.raises(PouwError) as info:
        sign_receipt(token_receipt(), VALIDATOR)
    assert info.value.code == BAD_SIGNATURE


def test_high_s_rejected() -> None:
    signed = sign_receipt(token_receipt(), WORKER)
    flipped = replace(signed, worker_signature=_high_s(signed.worker_signature))
    assert not is_low_s_compact(flipped.worker_signature)
    assert not verify_receipt_signature(flipped)
    # The same (r, n - s) is mathematically valid: libsecp256k1 accepts it once normalized.
    digest = signature_digest(RECEIPT_TAG, signed.id)
    assert verify_digest(WORKER.pubkey, signed.worker_signature, digest)
    assert not verify_digest(WORKER.pubkey, flipped.worker_signature, digest)


def test_cross_type_replay_rejected() -> None:
    # Replay the worker's receipt signature, presented as an acknowledgement or attestation of the same id.
    receipt = sign_receipt(token_receipt(), WORKER)
    receipt_digest = signature_digest(RECEIPT_TAG, receipt.id)
    ack_digest = signature_digest(RECEIPT_ACK_TAG, receipt.id)
    att_digest = signature_digest(ATTESTATION_TAG, receipt.id)
    assert verify_digest(WORKER.pubkey, receipt.worker_signature, receipt_digest)
    assert not verify_digest(WORKER.pubkey, receipt.worker_signature, ack_digest)
    assert not verify_digest(WORKER.pubkey, receipt.worker_signature, att_digest)
    # A worker that is also the requester cannot pass its worker signature off as the ack.
    spec = chat_spec(requester=WORKER.pubkey)
    as_ack = replace(sign_receipt(token_receipt(spec), WORKER), requester_ack=b"")
    as_ack = replace(as_ack, requester_ack=sign_receipt(as_ack, WORKER).worker_signature)
    assert not verify_requester_ack(as_ack, spec)


def test_requester_ack() -> None:
    spec = chat_spec()
    receipt = sign_requester_ack(sign_receipt(token_receipt(spec), WORKER), REQUESTER)
    assert verify_requester_ack(receipt, spec)
    assert verify_receipt_signature(receipt)
    assert not verify_requester_ack(receipt, chat_spec(nonce=99))  # another job
    assert not verify_requester_ack(sign_requester_ack(token_receipt(spec), VALIDATOR), spec)  # wrong key
    anonymous = completion_spec()
    assert not verify_requester_ack(sign_requester_ack(token_receipt(anonymous), REQUESTER), anonymous)


def test_attestation_signatures() -> None:
    signed = sign_attestation(attestation(), VALIDATOR)
    assert verify_attestation_signature(signed)
    assert not verify_attestation_signature(replace(signed, verdict=Verdict.INVALID))
    assert not verify_attestation_signature(replace(signed, signature=_high_s(signed.signature)))
    with pytest.raises(PouwError, match="validator key"):
        sign_attestation(attestation(), WORKER)


def test_keys() -> None:
    assert WorkerKey is PouwKey
    key = PouwKey.generate()
    assert key.pubkey == PrivateKey(key.secret).public_key.format(compressed=True)
    assert key.secret.hex() not in repr(key)
    for bad in (b"", bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(PouwError) as info:
            PouwKey(bad)
        assert info.value.code == BAD_SIGNATURE
    receipt = sign_receipt(token_receipt(), WORKER.secret)  # raw secrets work too
    assert verify_receipt_signature(receipt)


def test_verify_digest_refuses_junk() -> None:
    digest = bytes(32)
    sig = WORKER.sign_digest(digest)
    assert verify_digest(WORKER.pubkey, sig, digest)
    assert not verify_digest(WORKER.pubkey, sig[:63], digest)
    assert not verify_digest(WORKER.pubkey, bytes(64), digest)
    assert not verify_digest(WORKER.pubkey, SECP256K1_N.to_bytes(32, "big") + sig[32:], digest)
    assert not verify_digest(b"\x02" * 33, sig, digest)
    assert not verify_digest(WORKER.pubkey, sig, digest[:31])


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_signatures_are_low_s_and_deterministic(digest: bytes) -> None:
    sig = WORKER.sign_digest(digest)
    assert sig == WORKER.sign_digest(digest)
    assert is_low_s_compact(sig)
    assert verify_digest(WORKER.pubkey, sig, digest)
