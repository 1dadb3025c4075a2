"""The paid tier's API key store: hashed secrets, credits through reservations, persistence, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipgd.chain.dbwrapper import DatabaseError, LevelDB
from aipgd.core.base58 import b58decode
from aipgd.core.transaction import COIN, MAX_MONEY
from pouw.apikeys import (
    KEY_PREFIX,
    ApiKey,
    ApiKeyStore,
    InsufficientCreditError,
    RevokedApiKeyError,
    UnknownApiKeyError,
    hash_key,
    looks_like_api_key,
)
from pouw.errors import PouwError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "pouw" / "apikeys"


@pytest.fixture
def store(store_path: Path) -> Iterator[ApiKeyStore]:
    s = ApiKeyStore(store_path, clock=FakeClock())
    s.open()
    yield s
    s.close()


def _reopen(store: ApiKeyStore) -> ApiKeyStore:
    store.close()
    again = ApiKeyStore(store.path)
    again.open()
    return again


def test_created_key_is_a_random_secret_shown_once(store: ApiKeyStore) -> None:
    secret, key = store.create("alice", credit=5 * COIN)
    assert secret.startswith(KEY_PREFIX) and looks_like_api_key(secret)
    assert len(b58decode(secret[len(KEY_PREFIX):])) == 32
    assert key.key_hash == hashlib.sha256(secret.encode()).digest()
    assert key.key_id == key.key_hash[:8].hex() and len(key.key_id) == 16
    assert (key.label, key.credit, key.spent, key.requests) == ("alice", 5 * COIN, 0, 0)
    assert key.trusted_only and not key.revoked
    assert key.created == 1_750_000_000
    other, key2 = store.create("bob")
    assert other != secret and key2.key_id != key.key_id
    assert [k.label for k in store.list_keys()] == ["alice", "bob"]


def test_authenticate_finds_only_the_exact_secret(store: ApiKeyStore) -> None:
    secret, key = store.create("alice")
    assert store.authenticate(secret) == key
    assert store.authenticate(secret[:-1]) is None
    assert store.authenticate(secret + "x") is None
    assert store.authenticate("sk-no-key") is None
    assert store.authenticate(KEY_PREFIX + "1" * 500) is None
    assert store.authenticate("") is None


def test_secret_is_never_stored_only_its_hash(store: ApiKeyStore, store_path: Path) -> None:
    secrets = [store.create(f"k{i}", credit=COIN)[0] for i in range(3)]
    store.close()
    blobs = b"".join(p.read_bytes() for p in store_path.iterdir() if p.is_file())
    for secret in secrets:
        raw = b58decode(secret[len(KEY_PREFIX):])
        for needle in (secret.encode(), secret[len(KEY_PREFIX):].encode(), raw, raw.hex().encode()):
            assert needle not in blobs
        # The search does look at the records: each hash is there, in the clear.
        assert hash_key(secret) in blobs


def test_reserve_settle_refunds_the_difference(store: ApiKeyStore) -> None:
    _, key = store.create("alice", credit=1000)
    res = store.reserve(key.key_hash, 600)
    assert store.available(key.key_id) == 400
    assert store.get(key.key_id).credit == 1000, "nothing is debited before settle"
    with pytest.raises(InsufficientCreditError) as exc_info:
        store.reserve(key.key_hash, 401)
    assert (exc_info.value.needed, exc_info.value.available) == (401, 400)
    assert isinstance(exc_info.value, PouwError) and exc_info.value.code == "limit-exceeded"
    after = store.settle(res, 250)
    assert (after.credit, after.spent, after.requests) == (750, 250, 1)
    assert store.available(key.key_id) == 750
    with pytest.raises(ValueError, match="already closed"):
        store.settle(res, 1)
    assert store.get(key.key_id).credit == 750


def test_settle_charges_at_most_the_reservation(store: ApiKeyStore) -> None:
    _, key = store.create("alice", credit=1000)
    res = store.reserve(key.key_hash, 100)
    assert store.settle(res, 5000).credit == 900


def test_release_bills_nothing(store: ApiKeyStore) -> None:
    _, key = store.create("alice", credit=1000)
    res = store.reserve(key.key_hash, 1000)
    assert store.available(key.key_id) == 0
    store.release(res)
    assert store.available(key.key_id) == 1000
    assert store.get(key.key_id).requests == 0
    with pytest.raises(ValueError):
        store.release(res)


def test_concurrent_reservations_cannot_overspend(store: ApiKeyStore) -> None:
    _, key = store.create("alice", credit=1000)
    held = [store.reserve(key.key_hash, 300) for _ in range(3)]
    with pytest.raises(InsufficientCreditError):
        store.reserve(key.key_hash, 300)
    for res in held:
        store.settle(res, 300)
    assert store.get(key.key_id).credit == 100
    assert store.get(key.key_id).spent == 900


def test_zero_reservation_with_no_credit_is_allowed(store: ApiKeyStore) -> None:
    _, key = store.create("free-of-charge")
    res = store.reserve(key.key_hash, 0)
    assert store.settle(res, 0).requests == 1


def test_keys_survive_reopen_and_reservations_do_not_leak(store: ApiKeyStore) -> None:
    secret, key = store.create("alice", credit=1000, trusted_only=False, requests_per_minute=5,
                               tokens_per_minute=7000)
    store.settle(store.reserve(key.key_hash, 100), 40)
    store.reserve(key.key_hash, 500)  # in flight when the node "crashes"
    store.create("bob")
    again = _reopen(store)
    try:
        loaded = again.authenticate(secret)
        assert loaded is not None
        assert (loaded.credit, loaded.spent, loaded.requests) == (960, 40, 1)
        assert not loaded.trusted_only
        assert (loaded.requests_per_minute, loaded.tokens_per_minute) == (5, 7000)
        # The in-flight reservation was never debited and does not hold credit after the restart.
        assert again.available(key.key_id) == 960
        assert [k.label for k in again.list_keys()] == ["alice", "bob"]
    finally:
        again.close()


def test_revocation_persists_and_blocks_reservations(store: ApiKeyStore) -> None:
    secret, key = store.create("alice", credit=1000)
    held = store.reserve(key.key_hash, 100)
    revoked = store.revoke(key.key_id)
    assert revoked.revoked
    assert store.revoke(key.key_id.upper()).revoked, "idempotent, ids are case-insensitive"
    with pytest.raises(RevokedApiKeyError):
        store.reserve(key.key_hash, 1)
    # Work admitted before the revocation is still billed.
    assert store.settle(held, 100).credit == 900
    again = _reopen(store)
    try:
        loaded = again.authenticate(secret)
        assert loaded is not None and loaded.revoked
    finally:
        again.close()


def test_credit_tops_up_and_is_bounded(store: ApiKeyStore) -> None:
    _, key = store.create("alice", credit=10)
    assert store.credit(key.key_id, 90).credit == 100
    with pytest.raises(PouwError, match="exceed"):
        store.credit(key.key_id, MAX_MONEY)
    with pytest.raises(PouwError):
        store.credit(key.key_id, -1)
    assert store.get(key.key_id).credit == 100


def test_unknown_ids_are_refused(store: ApiKeyStore) -> None:
    for action in (store.get, store.revoke, lambda i: store.credit(i, 1), store.available):
        with pytest.raises(UnknownApiKeyError):
            action("00" * 8)
    with pytest.raises(UnknownApiKeyError):
        store.reserve(bytes(32), 0)


def test_bad_arguments_are_refused(store: ApiKeyStore) -> None:
    with pytest.raises(PouwError, match="label"):
        store.create("x" * 257)
    with pytest.raises(PouwError, match="credit"):
        store.create("a", credit=MAX_MONEY + 1)
    with pytest.raises(PouwError, match="requests_per_minute"):
        store.create("a", requests_per_minute=0)
    assert store.list_keys() == []


def test_record_encoding_round_trips() -> None:
    key = ApiKey(bytes(range(32)), "ünïcode", 123, 456, 7, 8, False, True, None, 99, 5)
    assert ApiKey.deserialize(key.key_hash, key.serialize()) == key


def test_corrupt_record_is_a_database_error(store_path: Path) -> None:
    db = LevelDB(store_path, label="x", obfuscate=False, cache_bytes=1 << 20)
    store_path.parent.mkdir(parents=True)
    db.open()
    db.write_batch([(b"k" + bytes(32), b"\x09garbage")])
    db.close()
    store = ApiKeyStore(store_path)
    with pytest.raises(DatabaseError, match="PoUW API key database"):
        store.open()
