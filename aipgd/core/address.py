"""Base58Check addresses and WIF private keys for a network's prefixes.

Owns the text forms users type. AIPG main and test give P2PKH and P2SH the same
version byte; Core then decodes every such address as P2PKH (CBitcoinAddress tries
PUBKEY_ADDRESS first), and so do we, for compatibility (see aipg-network.md).
It must never pick a network by itself: prefixes are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipgd.core.base58 import Base58Error, b58decode_check, b58encode_check
from aipgd.script.standard import Destination, KeyID, ScriptID

# Order of the secp256k1 group: a private key must lie in [1, n-1] (Core: CKey::Check).
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class AddressError(ValueError):
    """Text that is not a valid address or key for the given network."""


@dataclass(frozen=True, slots=True)
class Base58Prefixes:
    pubkey_address: bytes
    script_address: bytes
    secret_key: bytes
    ext_public_key: bytes
    ext_secret_key: bytes

    @property
    def script_is_distinct(self) -> bool:
        """False on AIPG main/test, where P2SH cannot be told apart from P2PKH."""
        return self.pubkey_address != self.script_address


def encode_address(dest: Destination, prefixes: Base58Prefixes) -> str:
    if isinstance(dest, KeyID):
        return b58encode_check(prefixes.pubkey_address + dest.hash160)
    return b58encode_check(prefixes.script_address + dest.hash160)


def decode_address(text: str, prefixes: Base58Prefixes) -> Destination:
    """Core: DecodeDestination. P2PKH is tried first, so a shared prefix means P2PKH."""
    try:
        payload = b58decode_check(text)
    except Base58Error as exc:
        raise AddressError(f"invalid address: {exc}") from None
    for version, kind in ((prefixes.pubkey_address, KeyID), (prefixes.script_address, ScriptID)):
        if payload[:len(version)] == version and len(payload) == len(version) + 20:
            return kind(payload[len(version):])
    raise AddressError("invalid address: wrong version or length for this network")


def is_valid_address(text: str, prefixes: Base58Prefixes) -> bool:
    try:
        decode_address(text, prefixes)
    except AddressError:
        return False
    return True


def encode_wif(secret: bytes, compressed: bool, prefixes: Base58Prefixes) -> str:
    """Core: CBitcoinSecret — version, 32-byte key, 0x01 when the public key is compressed."""
    if len(secret) != 32:
        raise ValueError("a private key is 32 bytes")
    return b58encode_check(prefixes.secret_key + secret + (b"\x01" if compressed else b""))


def decode_wif(text: str, prefixes: Base58Prefixes) -> tuple[bytes, bool]:
    """Returns (secret, compressed)."""
    try:
        payload = b58decode_check(text)
    except Base58Error as exc:
        raise AddressError(f"invalid private key encoding: {exc}") from None
    version = prefixes.secret_key
    if payload[:len(version)] != version:
        raise AddressError("invalid private key encoding: wrong version for this network")
    body = payload[len(version):]
    if len(body) == 33 and body[32] == 1:
        secret, compressed = body[:32], True
    elif len(body) == 32:
        secret, compressed = body, False
    else:
        raise AddressError("invalid private key encoding: bad length")
    if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
        raise AddressError("invalid private key: out of range")
    return secret, compressed
