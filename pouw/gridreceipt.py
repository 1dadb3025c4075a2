"""Receipts of today's AIPG grid workers: EIP-191 personal_sign with an Ethereum key.

Owns the second signature scheme a node accepts next to its own. A grid worker signs the text
`aipg-receipt:v1:{job_id}:{sha256(full_text) as lowercase hex}` (eth_account's encode_defunct),
and reports the 20-byte Ethereum address of its key (signer_address). It must never sign with a
node's PoUW keys: Ethereum digests and ours never mix.
"""

from __future__ import annotations

import hashlib
from string import hexdigits

from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak

from aipgd.script.signature import SECP256K1_N

GRID_RECEIPT_PREFIX = "aipg-receipt:v1"
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
_HALF_N = SECP256K1_N // 2
_HEX = frozenset(hexdigits)


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def grid_receipt_message(job_id: str, full_text: str) -> str:
    result_sha256 = hashlib.sha256(full_text.encode("utf-8")).hexdigest()
    return f"{GRID_RECEIPT_PREFIX}:{job_id}:{result_sha256}"


def eip191_digest(message: bytes) -> bytes:
    """EIP-191 version 0x45 (personal_sign): keccak256 of the prefix, the decimal byte length and
    the message."""
    return keccak256(_EIP191_PREFIX + str(len(message)).encode("ascii") + message)


def address_of_pubkey(pubkey: PublicKey) -> str:
    """The Ethereum address (lowercase 0x hex): the last 20 bytes of keccak256(x || y)."""
    return "0x" + keccak256(pubkey.format(compressed=False)[1:])[-20:].hex()


def to_checksum_address(address: str) -> str:
    """EIP-55 mixed-case form of a 0x address."""
    body = _parse_address(address)
    if body is None:
        raise ValueError(f"not an Ethereum address: {address!r}")
    digest = keccak256(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(body, digest[:40], strict=True))


def _parse_address(address: str) -> str | None:
    """The 40 lowercase hex digits of a 0x address, else None."""
    if not isinstance(address, str) or len(address) != 42 or address[:2] not in ("0x", "0X"):
        return None
    body = address[2:]
    if not _HEX.issuperset(body):
        return None
    return body.lower()


def _parse_signature(signature_hex: str) -> bytes | None:
    """65 bytes r || s || recid (v of 27/28 or 0/1 mapped to 0/1), low S only (EIP-2), else None."""
    if not isinstance(signature_hex, str):
        return None
    text = signature_hex[2:] if signature_hex[:2] in ("0x", "0X") else signature_hex
    if len(text) != 130 or not _HEX.issuperset(text):
        return None
    raw = bytes.fromhex(text)
    v = raw[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1):
        return None
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= _HALF_N):
        return None
    return raw[:64] + bytes((v,))


def recover_grid_signer(message: str, signature_hex: str) -> str | None:
    """The lowercase address that signed `message` with personal_sign, or None."""
    sig = _parse_signature(signature_hex)
    if sig is None:
        return None
    try:
        digest = eip191_digest(message.encode("utf-8"))
        pubkey = PublicKey.from_signature_and_message(sig, digest, hasher=None)
    except ValueError:
        return None
    return address_of_pubkey(pubkey)


def verify_grid_receipt(job_id: str, full_text: str, signature_hex: str, signer_address: str) -> bool:
    """Whether `signature_hex` is the grid receipt of `full_text` for `job_id` by `signer_address`.

    The address compares case-insensitively, so EIP-55 checksummed and lowercase forms both match.
    """
    wanted = _parse_address(signer_address)
    if wanted is None or not isinstance(job_id, str) or not isinstance(full_text, str):
        return False
    try:
        message = grid_receipt_message(job_id, full_text)
    except UnicodeEncodeError:
        return False
    recovered = recover_grid_signer(message, signature_hex)
    return recovered is not None and recovered[2:] == wanted


def sign_grid_receipt(job_id: str, full_text: str, secret: bytes) -> str:
    """A grid worker's receipt signature (0x + 130 hex digits, v = 27 or 28), as eth_account makes."""
    digest = eip191_digest(grid_receipt_message(job_id, full_text).encode("utf-8"))
    raw = PrivateKey(secret).sign_recoverable(digest, hasher=None)
    return "0x" + (raw[:64] + bytes((raw[64] + 27,))).hex()


def grid_address(secret: bytes) -> str:
    """The EIP-55 address of an Ethereum private key."""
    return to_checksum_address(address_of_pubkey(PrivateKey(secret).public_key))
