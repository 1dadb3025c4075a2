"""kawpow.verify and kawpow.search: accept the true proof, reject every single change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kawpow
from kawpow.context import ContextCache

HEADER = bytes.fromhex("ffeeddccbbaa9988776655443322110000112233445566778899aabbccddeeff")
BLOCK = 30000
NONCE = 0x123456789ABCDEF0


@pytest.fixture(scope="module")
def contexts() -> Iterator[ContextCache]:
    cache = ContextCache(capacity=2, prefetch_window=0)
    yield cache
    cache.close()


@pytest.fixture(scope="module")
def proof(contexts: ContextCache) -> tuple[bytes, bytes]:
    return kawpow.hash(BLOCK, HEADER, NONCE, contexts=contexts)


def _minus_one(b: bytes) -> bytes:
    return (int.from_bytes(b, "big") - 1).to_bytes(32, "big")


def test_accepts_true_proof_at_exact_boundary(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    mix, final = proof
    assert kawpow.verify(BLOCK, HEADER, mix, NONCE, final, contexts=contexts)
    assert kawpow.verify(BLOCK, HEADER, mix, NONCE, b"\xff" * 32, contexts=contexts)


def test_rejects_boundary_one_below_final(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    mix, final = proof
    assert not kawpow.verify(BLOCK, HEADER, mix, NONCE, _minus_one(final), contexts=contexts)


@pytest.mark.parametrize("position", [0, 13, 31])
def test_rejects_changed_mix_byte(contexts: ContextCache, proof: tuple[bytes, bytes], position: int) -> None:
    mix = bytearray(proof[0])
    mix[position] ^= 0x01
    assert not kawpow.verify(BLOCK, HEADER, bytes(mix), NONCE, b"\xff" * 32, contexts=contexts)


def test_rejects_other_period_same_epoch(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    mix, _ = proof
    assert (BLOCK + 3) // kawpow.EPOCH_LENGTH == BLOCK // kawpow.EPOCH_LENGTH
    assert not kawpow.verify(BLOCK + 3, HEADER, mix, NONCE, b"\xff" * 32, contexts=contexts)


def test_same_period_gives_same_hash(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    # 30000 and 30002 share period 10000, hence the same program and the same epoch
    assert kawpow.hash(BLOCK + 2, HEADER, NONCE, contexts=contexts) == proof


def test_rejects_wrong_nonce(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    mix, _ = proof
    assert not kawpow.verify(BLOCK, HEADER, mix, NONCE + 1, b"\xff" * 32, contexts=contexts)


def test_rejects_wrong_header(contexts: ContextCache, proof: tuple[bytes, bytes]) -> None:
    mix, _ = proof
    assert not kawpow.verify(BLOCK, bytes(32), mix, NONCE, b"\xff" * 32, contexts=contexts)


def test_search_finds_the_first_nonce_within_boundary(contexts: ContextCache) -> None:
    boundary = b"\x1f" + b"\xff" * 31  # about 1 in 8 hashes
    found = kawpow.search(0, bytes(32), boundary, 0, 64, contexts=contexts)
    assert found is not None
    assert found.final_hash <= boundary
    for n in range(found.nonce):
        assert kawpow.hash(0, bytes(32), n, contexts=contexts)[1] > boundary
    assert (found.mix_hash, found.final_hash) == kawpow.hash(0, bytes(32), found.nonce, contexts=contexts)
    assert kawpow.verify(0, bytes(32), found.mix_hash, found.nonce, boundary, contexts=contexts)


def test_search_none_when_nothing_within_boundary(contexts: ContextCache) -> None:
    assert kawpow.search(0, bytes(32), bytes(32), 0, 3, contexts=contexts) is None


def test_search_wraps_nonce_space(contexts: ContextCache) -> None:
    found = kawpow.search(0, bytes(32), b"\xff" * 32, 2**64 - 1, 2, contexts=contexts)
    assert found is not None and found.nonce == 2**64 - 1
