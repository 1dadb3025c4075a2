"""Signatures of the PoUW objects: secp256k1 ECDSA over a domain-tagged object id.

Owns the signing rule: the signed digest is sha256d(tag || id), with a tag per object type and role,
so a signature made for one type can never be replayed as another's. Signatures are 64-byte compact
r || s (big-endian) with low S (BIP62/BIP146); verification refuses high S. It must never decide
whether a signer is allowed to sign: registration and bonds belong to the chain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from coincurve import PrivateKey

from aipgd.core.hashes import sha256d
from aipgd.script.signature import SECP256K1_N, verify_compact
from pouw.codec import HASH_SIZE, SIGNATURE_SIZE, is_valid_pubkey
from pouw.errors import BAD_SIGNATURE, PouwError

if TYPE_CHECKING:
    from pouw.attestation import Attestation
    from pouw.jobspec import JobSpec
    from pouw.receipt import Receipt

# One tag per (object type, signer role). Never reuse a tag for a new meaning: add a new one.
RECEIPT_TAG = b"aipg-pouw/receipt/v1"  # the worker's signature of a receipt
RECEIPT_ACK_TAG = b"aipg-pouw/receipt-ack/v1"  # the requester's acknowledgement of a receipt
ATTESTATION_TAG = b"aipg-pouw/attestation/v1"  # the validator's signature of an attestation
CAPS_TAG = b"aipg-pouw/caps/v1"  # a worker's capability advert (pouw.wire.WorkerCaps), bound to one link

_HALF_N = SECP256K1_N // 2


def signature_digest(tag: bytes, object_id: bytes) -> bytes:
    """The 32 bytes that are signed: sha256d(tag || id), id in internal byte order."""
    if len(object_id) != HASH_SIZE:
        raise ValueError(f"an object id is {HASH_SIZE} bytes, got {len(object_id)}")
    return sha256d(tag + object_id)


def is_low_s_compact(signature: bytes) -> bool:
    """A 64-byte r || s with 0 < r < n and 0 < s <= n/2."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    return 0 < r < SECP256K1_N and 0 < s <= _HALF_N


def verify_digest(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    """Verify a compact low-S signature of a 32-byte digest by a compressed public key."""
    if not is_valid_pubkey(pubkey) or not is_low_s_compact(signature) or len(digest) != 32:
        return False
    return verify_compact(pubkey, signature, digest)


@dataclass(frozen=True, slots=True)
class PouwKey:
    """A secp256k1 key of a worker, validator or requester (32-byte secret, compressed pubkey)."""

    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != 32:
            raise PouwError(BAD_SIGNATURE, "a private key is 32 bytes", "key")
        if not 0 < int.from_bytes(self.secret, "big") < SECP256K1_N:
            raise PouwError(BAD_SIGNATURE, "private key is outside 1..n-1", "key")

    @classmethod
    def generate(cls) -> PouwKey:
        while True:
            secret = os.urandom(32)
            if 0 < int.from_bytes(secret, "big") < SECP256K1_N:
                return cls(secret)

    @property
    def pubkey(self) -> bytes:
        return PrivateKey(self.secret).public_key.format(compressed=True)

    def sign_digest(self, digest: bytes) -> bytes:
        """RFC6979 deterministic ECDSA; libsecp256k1 always produces low S."""
        if len(digest) != 32:
            raise ValueError(f"a digest is 32 bytes, got {len(digest)}")
        # The recoverable form's first 64 bytes are the compact r || s of the same signature.
        return PrivateKey(self.secret).sign_recoverable(digest, hasher=None)[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"PouwKey(pubkey={self.pubkey.hex()})"


# The worker side calls its key by its role.
WorkerKey = PouwKey


def _as_key(key: PouwKey | bytes) -> PouwKey:
    return key if isinstance(key, PouwKey) else PouwKey(key)


# --- receipts ------------------------------------------------------------------------------------

def sign_receipt(receipt: Receipt, key: PouwKey | bytes) -> Receipt:
    """The receipt with its worker signature; the key must be the receipt's worker key."""
    key = _as_key(key)
    if key.pubkey != receipt.worker_pubkey:
        raise PouwError(BAD_SIGNATURE, "the key is not the receipt's worker key", "worker_pubkey")
    return replace(receipt, worker_signature=key.sign_digest(signature_digest(RECEIPT_TAG, receipt.id)))


def verify_receipt_signature(receipt: Receipt) -> bool:
    return verify_digest(receipt.worker_pubkey, receipt.worker_signature,
                         signature_digest(RECEIPT_TAG, receipt.id))


def sign_requester_ack(receipt: Receipt, key: PouwKey | bytes) -> Receipt:
    """The receipt with the requester's acknowledgement (paid tier: "I got this output")."""
    ack = _as_key(key).sign_digest(signature_digest(RECEIPT_ACK_TAG, receipt.id))
    return replace(receipt, requester_ack=ack)


def verify_requester_ack(receipt: Receipt, spec: JobSpec) -> bool:
    """Whether the receipt answers `spec` and carries an acknowledgement by its requester."""
    if receipt.job_id != spec.id or not spec.requester:
        return False
    return verify_digest(spec.requester, receipt.requester_ack, signature_digest(RECEIPT_ACK_TAG, receipt.id))


# --- attestations --------------------------------------------------------------------------------

def sign_attestation(attestation: Attestation, key: PouwKey | bytes) -> Attestation:
    key = _as_key(key)
    if key.pubkey != attestation.validator_pubkey:
        raise PouwError(BAD_SIGNATURE, "the key is not the attestation's validator key", "validator_pubkey")
    return replace(attestation, signature=key.sign_digest(signature_digest(ATTESTATION_TAG, attestation.id)))


def verify_attestation_signature(attestation: Attestation) -> bool:
    return verify_digest(attestation.validator_pubkey, attestation.signature,
                         signature_digest(ATTESTATION_TAG, attestation.id))
