"""The paid tier's API keys: hashed secrets with credit balances, kept in <datadir>/pouw/apikeys.

Owns creating keys (a random 32-byte secret shown once as `aipg_sk_<base58>`), authenticating a
presented secret, revocation, top-ups, and charging credit through reservations. Only sha256 of a
secret is ever stored or kept in memory. It must never log or persist a secret, and it must never
decide admission (pouw.tiers does).

Crash safety: a reservation lives in memory only and the balance is debited once, at settle, in one
synced LevelDB batch. A crash between reserve and settle therefore bills nothing for the jobs then in
flight (bounded by the node's concurrency), and can never debit twice or lose a top-up.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aipgd.chain.dbwrapper import DatabaseError, LevelDB
from aipgd.core.base58 import b58encode
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_i64,
    ser_u8,
    ser_u64,
    ser_var_str,
)
from aipgd.core.transaction import MAX_MONEY
from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, PouwError

KEY_PREFIX = "aipg_sk_"
SECRET_BYTES = 32
KEY_ID_BYTES = 8  # the public id: the first 8 bytes of sha256(secret), in hex
MAX_KEY_TEXT = 128  # longer bearer tokens are never hashed
MAX_LABEL_BYTES = 256

_RECORD = b"k"  # b"k" + sha256(secret) -> serialized ApiKey
_RECORD_VERSION = 1
_FLAG_TRUSTED_ONLY = 1
_FLAG_REVOKED = 2
_CACHE_BYTES = 1 << 20


class UnknownApiKeyError(PouwError):
    """No key has this id."""

    def __init__(self, key_id: str) -> None:
        super().__init__(INVALID_FIELD, f"no API key with id {key_id!r}", "id")
        self.key_id = key_id


class RevokedApiKeyError(PouwError):
    """The key was revoked: it can no longer reserve credit."""

    def __init__(self, key_id: str) -> None:
        super().__init__(INVALID_FIELD, f"API key {key_id} has been revoked", "key")
        self.key_id = key_id


class InsufficientCreditError(PouwError):
    """The key's available balance (credit minus what is reserved) is below the amount asked for."""

    def __init__(self, key_id: str, needed: int, available: int) -> None:
        super().__init__(LIMIT_EXCEEDED, f"API key {key_id} needs {needed} credit but has {available} "
                         "available", "credit")
        self.key_id = key_id
        self.needed = needed
        self.available = available


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored. Amounts are in the smallest AIPG unit (1e-8 AIPG)."""

    key_hash: bytes  # sha256 of the secret's text
    label: str
    created: int  # unix time
    credit: int  # balance left
    spent: int = 0
    requests: int = 0  # settled requests
    trusted_only: bool = True  # paid requests go to trusted workers only
    revoked: bool = False
    requests_per_minute: int | None = None  # overrides of the paid tier's limits; None: the default
    tokens_per_minute: int | None = None
    seq: int = 0  # creation order (keys created in the same second list in the order made)

    @property
    def key_id(self) -> str:
        return self.key_hash[:KEY_ID_BYTES].hex()

    def serialize(self) -> bytes:
        flags = (_FLAG_TRUSTED_ONLY if self.trusted_only else 0) | (_FLAG_REVOKED if self.revoked else 0)
        return b"".join((
            ser_u8(_RECORD_VERSION), ser_var_str(self.label), ser_i64(self.created), ser_i64(self.credit),
            ser_i64(self.spent), ser_u64(self.requests), ser_u8(flags),
            ser_u64(self.requests_per_minute or 0), ser_u64(self.tokens_per_minute or 0), ser_u64(self.seq),
        ))

    @classmethod
    def deserialize(cls, key_hash: bytes, data: bytes) -> ApiKey:
        r = ByteReader(data)
        version = r.u8("api key version")
        if version != _RECORD_VERSION:
            raise r.error("api key version", f"unknown version {version}")
        label = r.var_str("api key label", MAX_LABEL_BYTES)
        created, credit, spent = r.i64("created"), r.i64("credit"), r.i64("spent")
        requests, flags = r.u64("requests"), r.u8("flags")
        rpm, tpm = r.u64("requests per minute"), r.u64("tokens per minute")
        seq = r.u64("sequence")
        r.expect_end("api key")
        if not (0 <= credit <= MAX_MONEY and spent >= 0):
            raise r.error("api key", "amount out of range")
        return cls(key_hash, label, created, credit, spent, requests, bool(flags & _FLAG_TRUSTED_ONLY),
                   bool(flags & _FLAG_REVOKED), rpm or None, tpm or None, seq)


@dataclass(slots=True)
class Reservation:
    """Credit held for one admitted request until it is settled or released."""

    key_hash: bytes
    amount: int
    serial: int
    closed: bool = False

    @property
    def key_id(self) -> str:
        return self.key_hash[:KEY_ID_BYTES].hex()


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def looks_like_api_key(token: str) -> bool:
    """Whether a bearer token is in this node's key format (others, e.g. "sk-no-key", are not keys)."""
    return token.startswith(KEY_PREFIX)


def _check_amount(name: str, amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_MONEY:
        raise PouwError(INVALID_FIELD, f"must be an amount between 0 and {MAX_MONEY}, not {amount!r}", name)


def _check_limit(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 63:
        raise PouwError(INVALID_FIELD, f"must be a positive integer, not {value!r}", name)


class ApiKeyStore:
    """The key table: LevelDB for durability, a dict of the same records for lookups. Thread-safe.

    Every change is one synced batch, written before the in-memory copy changes, so what the node
    answers is always what a restart would read back.
    """

    name = "PoUW API key database"

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._db = LevelDB(path, label="PoUW API key", obfuscate=False, cache_bytes=_CACHE_BYTES,
                           advice="Move the directory away to start with no API keys, or restore it "
                                  "from a backup.")
        self._clock = clock
        self._lock = threading.Lock()
        self._by_hash: dict[bytes, ApiKey] = {}
        self._by_id: dict[str, bytes] = {}
        self._reserved: dict[bytes, int] = {}
        self._serials = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db.open()
        by_hash: dict[bytes, ApiKey] = {}
        for db_key, value in self._db.iterate_prefix(_RECORD):
            key_hash = db_key[len(_RECORD):]
            try:
                if len(key_hash) != 32:
                    raise DeserializationError("api key", 0, "bad database key length")
                record = ApiKey.deserialize(key_hash, value)
            except DeserializationError as exc:
                self._db.close()
                raise DatabaseError(f"Error reading the {self.name} {self.path}: {exc}. "
                                    f"{self._db.advice}") from exc
            by_hash[key_hash] = record
        with self._lock:
            self._by_hash = by_hash
            self._by_id = {r.key_id: h for h, r in by_hash.items()}
            self._reserved.clear()

    def close(self) -> None:
        self._db.close()

    # -- keys ----------------------------------------------------------------------------------

    def create(self, label: str, credit: int = 0, trusted_only: bool = True,
               requests_per_minute: int | None = None,
               tokens_per_minute: int | None = None) -> tuple[str, ApiKey]:
        """A new key: (the secret, to show once, and its record)."""
        if len(label.encode("utf-8")) > MAX_LABEL_BYTES:
            raise PouwError(LIMIT_EXCEEDED, f"longer than {MAX_LABEL_BYTES} bytes", "label")
        _check_amount("credit", credit)
        _check_limit("requests_per_minute", requests_per_minute)
        _check_limit("tokens_per_minute", tokens_per_minute)
        with self._lock:
            while True:
                secret = KEY_PREFIX + b58encode(os.urandom(SECRET_BYTES))
                key_hash = hash_key(secret)
                if key_hash[:KEY_ID_BYTES].hex() not in self._by_id:  # ids stay unique
                    break
            seq = 1 + max((r.seq for r in self._by_hash.values()), default=0)
            record = ApiKey(key_hash, label, int(self._clock()), credit, trusted_only=trusted_only,
                            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
                            seq=seq)
            self._put(record)
            self._by_id[record.key_id] = key_hash
        return secret, record

    def authenticate(self, secret: str) -> ApiKey | None:
        """The record of a presented secret (revoked ones too), or None for an unknown secret.

        The secret is hashed before any lookup, so timing reveals nothing about stored secrets.
        """
        if len(secret) > MAX_KEY_TEXT or not looks_like_api_key(secret):
            return None
        key_hash = hash_key(secret)
        with self._lock:
            record = self._by_hash.get(key_hash)
        if record is None or not hmac.compare_digest(record.key_hash, key_hash):
            return None
        return record

    def get(self, key_id: str) -> ApiKey:
        with self._lock:
            return self._by_hash[self._hash_of(key_id)]

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self._lock:
            return sorted(self._by_hash.values(), key=lambda r: (r.seq, r.key_id))

    def available(self, key_id: str) -> int:
        """Credit not yet reserved by requests in flight."""
        with self._lock:
            key_hash = self._hash_of(key_id)
            return self._by_hash[key_hash].credit - self._reserved.get(key_hash, 0)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent). Requests already admitted still settle."""
        with self._lock:
            record = self._by_hash[self._hash_of(key_id)]
            if not record.revoked:
                record = replace(record, revoked=True)
                self._put(record)
            return record

    def credit(self, key_id: str, amount: int) -> ApiKey:
        """Top up a key's balance by `amount`."""
        _check_amount("amount", amount)
        with self._lock:
            record = self._by_hash[self._hash_of(key_id)]
            if record.credit + amount > MAX_MONEY:
                raise PouwError(LIMIT_EXCEEDED, f"the balance would exceed {MAX_MONEY}", "amount")
            record = replace(record, credit=record.credit + amount)
            self._put(record)
            return record

    # -- credit --------------------------------------------------------------------------------

    def reserve(self, key_hash: bytes, amount: int) -> Reservation:
        """Hold `amount` of a key's credit for one request (nothing is written)."""
        _check_amount("amount", amount)
        with self._lock:
            record = self._by_hash.get(key_hash)
            if record is None:
                raise UnknownApiKeyError(key_hash[:KEY_ID_BYTES].hex())
            if record.revoked:
                raise RevokedApiKeyError(record.key_id)
            available = record.credit - self._reserved.get(key_hash, 0)
            if amount > available:
                raise InsufficientCreditError(record.key_id, amount, available)
            self._reserved[key_hash] = self._reserved.get(key_hash, 0) + amount
            return Reservation(key_hash, amount, next(self._serials))

    def settle(self, reservation: Reservation, actual: int) -> ApiKey:
        """Debit the real cost (at most the amount reserved; the rest is refunded) and count the request.

        A reservation settles once; a second call raises ValueError.
        """
        _check_amount("actual", actual)
        with self._lock:
            self._close(reservation)
            record = self._by_hash[reservation.key_hash]
            charge = min(actual, reservation.amount, record.credit)
            record = replace(record, credit=record.credit - charge, spent=record.spent + charge,
                             requests=record.requests + 1)
            self._put(record)
            return record

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back untouched: the request never ran (nothing is billed or counted)."""
        with self._lock:
            self._close(reservation)

    # -- internals (called with the lock held) ---------------------------------------------------

    def _close(self, reservation: Reservation) -> None:
        if reservation.closed:
            raise ValueError(f"reservation {reservation.serial} of key {reservation.key_id} is already "
                             "closed")
        reservation.closed = True
        left = self._reserved.get(reservation.key_hash, 0) - reservation.amount
        if left > 0:
            self._reserved[reservation.key_hash] = left
        else:
            self._reserved.pop(reservation.key_hash, None)

    def _hash_of(self, key_id: str) -> bytes:
        key_hash = self._by_id.get(key_id.lower()) if isinstance(key_id, str) else None
        if key_hash is None:
            raise UnknownApiKeyError(key_id)
        return key_hash

    def _put(self, record: ApiKey) -> None:
        self._db.write_batch([(_RECORD + record.key_hash, record.serialize())])
        self._by_hash[record.key_hash] = record
