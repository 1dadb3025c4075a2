"""Shared pieces of the PoUW binary encodings: one-byte enums, field checks and strict readers.

Owns the rules every PoUW object applies the same way: integers fit their wire type, byte strings
have their exact length, keys are valid compressed secp256k1 points, text is valid UTF-8. Field
checks raise `PouwError`; readers raise `DeserializationError`. It must never know object layouts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import IntEnum
from typing import Self, TypeVar

from coincurve import PublicKey

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import ByteReader, DeserializationError
from aipgd.core.uint256 import hash_to_hex
from pouw.errors import INVALID_FIELD, PouwError

PUBKEY_SIZE = 33  # compressed secp256k1 point
SIGNATURE_SIZE = 64  # compact r || s
HASH_SIZE = 32

U8_MAX = 0xFF
U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF
I64_MAX = 0x7FFFFFFFFFFFFFFF


class WireEnum(IntEnum):
    """An enum written as one byte (its value); `label` is its JSON and display form.

    Code 0 is never assigned, so a zeroed buffer never parses as a meaningful value.
    """

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Self:
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(f"unknown {cls.__name__} {label!r}")

    @classmethod
    def labels(cls) -> list[str]:
        return [member.label for member in cls]


E = TypeVar("E", bound=WireEnum)
T = TypeVar("T")


# --- field checks (constructors) -----------------------------------------------------------------

def check_int(value: object, lo: int, hi: int, field: str) -> int:
    # bool is an int subclass: True must not pass as 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise PouwError(INVALID_FIELD, f"must be an integer, not {type(value).__name__}", field)
    if not lo <= value <= hi:
        raise PouwError(INVALID_FIELD, f"{value} is outside {lo}..{hi}", field)
    return value


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise PouwError(INVALID_FIELD, f"must be a bool, not {type(value).__name__}", field)
    return value


def check_bytes(value: object, sizes: tuple[int, ...], field: str) -> bytes:
    if not isinstance(value, bytes):
        raise PouwError(INVALID_FIELD, f"must be bytes, not {type(value).__name__}", field)
    if len(value) not in sizes:
        wanted = " or ".join(str(n) for n in sizes)
        raise PouwError(INVALID_FIELD, f"must be {wanted} bytes, got {len(value)}", field)
    return value


def check_enum(value: object, enum_type: type[E], field: str) -> E:
    if not isinstance(value, enum_type):
        raise PouwError(INVALID_FIELD, f"must be a {enum_type.__name__}, not {type(value).__name__}", field)
    return value


def is_valid_pubkey(data: bytes) -> bool:
    """A 33-byte compressed secp256k1 point that libsecp256k1 parses (x on the curve)."""
    if len(data) != PUBKEY_SIZE or data[0] not in (2, 3):
        return False
    try:
        PublicKey(data)
    except ValueError:
        return False
    return True


def check_pubkey(value: object, field: str, allow_empty: bool = False) -> bytes:
    sizes = (0, PUBKEY_SIZE) if allow_empty else (PUBKEY_SIZE,)
    data = check_bytes(value, sizes, field)
    if data and not is_valid_pubkey(data):
        raise PouwError(INVALID_FIELD, "is not a valid compressed secp256k1 public key", field)
    return data


def check_signature_field(value: object, field: str) -> bytes:
    """Empty (unsigned) or a 64-byte compact signature; whether it verifies is signing's job."""
    return check_bytes(value, (0, SIGNATURE_SIZE), field)


def text_bytes(value: object, field: str) -> bytes:
    """The UTF-8 bytes of a text field. Lone surrogates have no UTF-8 form and are refused."""
    if not isinstance(value, str):
        raise PouwError(INVALID_FIELD, f"must be a string, not {type(value).__name__}", field)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise PouwError(INVALID_FIELD, "is not encodable as UTF-8 (lone surrogate)", field) from None


def is_identifier_text(raw: bytes) -> bool:
    """Names (models, templates, backends) are printable ASCII: no control or look-alike characters."""
    return all(0x20 <= b <= 0x7E for b in raw)


def check_identifier(value: object, field: str, allow_empty: bool = False) -> str:
    raw = text_bytes(value, field)
    if not raw and not allow_empty:
        raise PouwError(INVALID_FIELD, "must not be empty", field)
    if not is_identifier_text(raw):
        raise PouwError(INVALID_FIELD, "must be printable ASCII (0x20..0x7e)", field)
    assert isinstance(value, str)
    return value


def check_tuple(value: object, field: str) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise PouwError(INVALID_FIELD, f"must be a tuple, not {type(value).__name__}", field)
    return value


# --- readers (decoders) ---------------------------------------------------------------------------

def read_enum(r: ByteReader, enum_type: type[E], what: str) -> E:
    start = r.pos
    code = r.u8(what)
    try:
        return enum_type(code)
    except ValueError:
        raise DeserializationError(what, start, f"unknown {enum_type.__name__} code {code}") from None


def read_bool(r: ByteReader, what: str) -> bool:
    start = r.pos
    flag = r.u8(what)
    if flag > 1:
        raise DeserializationError(what, start, f"boolean must be 0 or 1, got {flag}")
    return flag == 1


def read_pubkey(r: ByteReader, what: str) -> bytes:
    start = r.pos
    data = r.read(PUBKEY_SIZE, what)
    if not is_valid_pubkey(data):
        raise DeserializationError(what, start, "not a valid compressed secp256k1 public key")
    return data


def read_optional_pubkey(r: ByteReader, what: str) -> bytes:
    start = r.pos
    data = r.var_bytes(what, PUBKEY_SIZE)
    if data and not is_valid_pubkey(data):
        raise DeserializationError(what, start, "not empty and not a valid compressed secp256k1 public key")
    return data


def read_signature(r: ByteReader, what: str) -> bytes:
    start = r.pos
    data = r.var_bytes(what, SIGNATURE_SIZE)
    if len(data) not in (0, SIGNATURE_SIZE):
        raise DeserializationError(what, start, f"signature must be 0 or 64 bytes, got {len(data)}")
    return data


def read_text(r: ByteReader, what: str, limit: int) -> str:
    """A compact-size length then UTF-8 bytes (Python's strict decoder refuses overlong forms and
    surrogates, so each string has exactly one encoding)."""
    return r.var_str(what, limit)


def read_identifier(r: ByteReader, what: str, limit: int, allow_empty: bool = False) -> str:
    start = r.pos
    raw = r.var_bytes(what, limit)
    if not raw and not allow_empty:
        raise DeserializationError(what, start, "must not be empty")
    if not is_identifier_text(raw):
        raise DeserializationError(what, start, "must be printable ASCII")
    return raw.decode("ascii")


def invalid_object(what: str, start: int, exc: PouwError) -> DeserializationError:
    """A decoded object whose fields break a constructor rule: still an encoding error."""
    return DeserializationError(what, start, str(exc))


class HashedObject(ABC):
    """The id of a PoUW object: sha256d of `hashed_bytes()` (the canonical encoding, or for signed
    objects everything but the signatures), cached, shown reversed like a txid."""

    __slots__ = ()
    _cache: dict[str, bytes]

    @abstractmethod
    def hashed_bytes(self) -> bytes:
        """The bytes the id hashes."""

    @property
    def id(self) -> bytes:
        cached = self._cache.get("id")
        if cached is None:
            cached = self._cache["id"] = sha256d(self.hashed_bytes())
        return cached

    @property
    def id_hex(self) -> str:
        return hash_to_hex(self.id)


def decode_exact(read: Callable[[ByteReader], T], data: bytes, what: str, limit: int) -> T:
    """One whole object from `data` (at most `limit` bytes, nothing after it)."""
    if len(data) > limit:
        raise DeserializationError(what, 0, f"{len(data)} bytes exceed {limit}")
    r = ByteReader(data)
    obj = read(r)
    r.expect_end(what)
    return obj
