"""Bad input to kawpow gets a clear KawpowError (a ValueError), never a crash or a hang."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kawpow
from kawpow import KawpowError
from kawpow.context import ContextCache, EpochContext

GOOD = bytes(32)


@pytest.fixture(scope="module")
def contexts() -> Iterator[ContextCache]:
    # a limit of 16 MiB + 1 MiB admits epochs 0..8 only; the test never builds a context
    cache = ContextCache(capacity=1, max_light_cache_bytes=(1 << 24) + (1 << 20), prefetch_window=0)
    yield cache
    cache.close()


def test_kawpow_error_is_value_error() -> None:
    assert issubclass(KawpowError, ValueError)


@settings(max_examples=40, deadline=None)
@given(st.binary().filter(lambda b: len(b) != 32))
def test_wrong_length_header(b: bytes) -> None:
    with pytest.raises(KawpowError, match="header_hash must be 32 bytes"):
        kawpow.hash(0, b, 0)


@settings(max_examples=40, deadline=None)
@given(st.binary().filter(lambda b: len(b) != 32))
def test_wrong_length_mix_and_boundary(b: bytes) -> None:
    with pytest.raises(KawpowError, match="mix_hash"):
        kawpow.verify(0, GOOD, b, 0, GOOD)
    with pytest.raises(KawpowError, match="boundary"):
        kawpow.verify(0, GOOD, GOOD, 0, b)
    with pytest.raises(KawpowError, match="boundary"):
        kawpow.search(0, GOOD, b, 0, 1)


@pytest.mark.parametrize("value", ["00" * 32, None, 12, [0] * 32, 1.5])
def test_non_bytes(value: object) -> None:
    with pytest.raises(KawpowError, match="must be 32 bytes"):
        kawpow.hash(0, value, 0)  # type: ignore[arg-type]
    with pytest.raises(KawpowError, match="must be 32 bytes"):
        kawpow.verify(0, GOOD, value, 0, GOOD)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=kawpow.MAX_BLOCK_NUMBER + 1)))
def test_block_number_out_of_range(bn: int) -> None:
    with pytest.raises(KawpowError, match="block_number"):
        kawpow.hash(bn, GOOD, 0)
    with pytest.raises(KawpowError, match="block_number"):
        kawpow.verify(bn, GOOD, GOOD, 0, b"\xff" * 32)


@pytest.mark.parametrize("bn", ["1", 1.0, True, None])
def test_block_number_wrong_type(bn: object) -> None:
    with pytest.raises(KawpowError, match="block_number must be an int"):
        kawpow.hash(bn, GOOD, 0)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64)))
def test_nonce_out_of_range(nonce: int) -> None:
    with pytest.raises(KawpowError, match="nonce"):
        kawpow.hash(0, GOOD, nonce)
    with pytest.raises(KawpowError, match="start_nonce"):
        kawpow.search(0, GOOD, GOOD, nonce, 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=9, max_value=kawpow.MAX_BLOCK_NUMBER // kawpow.EPOCH_LENGTH))
def test_epoch_over_memory_limit_is_refused_not_built(contexts: ContextCache, epoch: int) -> None:
    # the C reference allocates blindly (and segfaults on huge epochs); we refuse up front
    with pytest.raises(KawpowError, match="over the limit"):
        contexts.for_block(epoch * kawpow.EPOCH_LENGTH)
    assert contexts.cached_epochs() == []


def test_huge_epoch_refused_by_default_limit() -> None:
    with pytest.raises(KawpowError, match="over the limit"):
        EpochContext.build(kawpow.MAX_BLOCK_NUMBER // kawpow.EPOCH_LENGTH)
    with pytest.raises(KawpowError, match="epoch"):
        EpochContext.build(-1)


def test_cheap_boundary_check_needs_no_context(contexts: ContextCache) -> None:
    # a final hash above the boundary is rejected before any epoch context is needed,
    # even for an epoch this cache refuses to build
    assert not kawpow.verify(100 * kawpow.EPOCH_LENGTH, GOOD, GOOD, 0, bytes(32), contexts=contexts)
    assert contexts.cached_epochs() == []


def test_bad_search_iterations() -> None:
    with pytest.raises(KawpowError, match="iterations"):
        kawpow.search(0, GOOD, GOOD, 0, -1)
