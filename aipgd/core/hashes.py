"""Hash functions of the chain: sha256, sha256d, hash160 and X16RV2.

Owns the one place each digest is computed, so that a faster backend can be swapped in
without touching callers. It must never know about block or transaction layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from algomodule.x16rv2 import _x16rv2_hash
from Crypto.Hash import RIPEMD160

_sha256 = hashlib.sha256


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Core: Hash() / CHash256, the double SHA-256 behind txids and legacy merkle roots."""
    return _sha256(_sha256(data).digest()).digest()


def _ripemd160_pycryptodome(data: bytes) -> bytes:
    return RIPEMD160.new(data).digest()


def _make_ripemd160() -> Callable[[bytes], bytes]:
    """RIPEMD-160 from a copied hashlib prototype (about twice as fast as hashlib.new per call).

    OpenSSL 3 may drop RIPEMD-160 from its default provider; pycryptodome always has it.
    """
    try:
        proto = hashlib.new("ripemd160")
    except ValueError:  # pragma: no cover - depends on the OpenSSL build
        return _ripemd160_pycryptodome

    def ripemd160(data: bytes) -> bytes:
        h = proto.copy()
        h.update(data)
        return h.digest()

    return ripemd160


ripemd160 = _make_ripemd160()


def hash160(data: bytes) -> bytes:
    """Core: Hash160, RIPEMD-160 of SHA-256 (P2PKH/P2SH payloads)."""
    return ripemd160(_sha256(data).digest())


def x16rv2(header80: bytes) -> bytes:
    """Ravencoin's X16RV2 over a legacy 80-byte header; returns the internal (LE) digest."""
    if len(header80) != 80:
        raise ValueError(f"X16RV2 takes an 80-byte header, got {len(header80)} bytes")
    digest: bytes = _x16rv2_hash(header80)
    return digest
