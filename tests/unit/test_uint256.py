"""Compact targets and hash display order (Core: arith_uint256_tests SetCompact cases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipgd.core.uint256 import (
    block_proof,
    compact_to_target,
    hash_to_hex,
    hash_to_int,
    hex_to_hash,
    int_to_hash,
    target_to_compact,
)

# (compact, target, negative, overflow, re-encoded compact or None when not canonical)
CASES = [
    (0x00000000, 0, False, False, 0),
    (0x00123456, 0, False, False, 0),
    (0x01003456, 0, False, False, 0),
    (0x02000056, 0, False, False, 0),
    (0x03000000, 0, False, False, 0),
    (0x04000000, 0, False, False, 0),
    (0x00923456, 0, False, False, 0),
    (0x01803456, 0, False, False, 0),
    (0x02800056, 0, False, False, 0),
    (0x03800000, 0, False, False, 0),
    (0x04800000, 0, False, False, 0),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x04923456, 0x12345600, True, False, None),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x123456 << (8 * 29), False, False, 0x20123456),
    (0x01FEDCBA, 0x7E, True, False, None),
]


@pytest.mark.parametrize(("bits", "target", "negative", "overflow", "again"), CASES)
def test_set_compact(bits: int, target: int, negative: bool, overflow: bool, again: int | None) -> None:
    assert compact_to_target(bits) == (target, negative, overflow)
    if again is not None:
        assert target_to_compact(target) == again


@pytest.mark.parametrize(("bits", "overflow"), [
    (0xFF123456, True), (0x23000001, True), (0x22000100, True), (0x21010000, True),
    (0x220000FF, False), (0x2100FFFF, False), (0x207FFFFF, False),
])
def test_overflow(bits: int, overflow: bool) -> None:
    assert compact_to_target(bits)[2] is overflow


def test_known_difficulty_one() -> None:
    target, neg, over = compact_to_target(0x1E00FFFF)
    assert not neg and not over
    assert target == 0xFFFF << (8 * 27)
    assert target_to_compact(target) == 0x1E00FFFF
    assert block_proof(0x1E00FFFF) == (1 << 256) // (target + 1)
    assert block_proof(0x04923456) == 0  # negative targets prove nothing


@given(st.integers(min_value=1, max_value=(1 << 256) - 1))
def test_compact_round_trip_keeps_top_bits(target: int) -> None:
    bits = target_to_compact(target)
    decoded, neg, over = compact_to_target(bits)
    assert not neg and not over
    assert decoded <= target
    assert target_to_compact(decoded) == bits


def test_hash_display_order() -> None:
    internal = bytes(range(32))
    shown = hash_to_hex(internal)
    assert shown.startswith("1f1e1d")
    assert hex_to_hash(shown) == internal
    assert hash_to_int(internal) == int.from_bytes(internal, "little")
    assert int_to_hash(hash_to_int(internal)) == internal
    for bad in ("00", "zz" * 32, "0" * 65):
        with pytest.raises(ValueError):
            hex_to_hash(bad)
