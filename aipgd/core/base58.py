"""Base58 and Base58Check (Core: base58.cpp), on top of the `base58` package.

Owns the strict decoding rules: only the Base58 alphabet, a 4-byte sha256d checksum,
and a bounded input length so a pasted megabyte string cannot stall the node.
It must never know about address versions: see `address`.
"""

from __future__ import annotations

import base58 as _b58

from aipgd.core.hashes import sha256d

# Longest Base58Check string Core accepts anywhere (xprv/xpub are 111 characters).
MAX_BASE58_LENGTH = 200


class Base58Error(ValueError):
    """Malformed Base58/Base58Check text."""


def b58encode(data: bytes) -> str:
    return _b58.b58encode(data).decode("ascii")


def b58decode(text: str, max_length: int = MAX_BASE58_LENGTH) -> bytes:
    if not isinstance(text, str):
        raise Base58Error(f"base58 input must be text, not {type(text).__name__}")
    if len(text) > max_length:
        raise Base58Error(f"base58 string longer than {max_length} characters")
    try:
        return bytes(_b58.b58decode(text.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        raise Base58Error("invalid base58 character") from None


def b58encode_check(payload: bytes) -> str:
    return b58encode(payload + sha256d(payload)[:4])


def b58decode_check(text: str, max_length: int = MAX_BASE58_LENGTH) -> bytes:
    raw = b58decode(text, max_length)
    if len(raw) < 4:
        raise Base58Error("base58check string too short")
    payload, checksum = raw[:-4], raw[-4:]
    if sha256d(payload)[:4] != checksum:
        raise Base58Error("invalid base58check checksum")
    return payload
