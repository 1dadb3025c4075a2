"""Every parser fails on bad input with its own clear error, never another exception.

Property tests: truncated, oversized and random garbage input for transactions,
headers, blocks, compact sizes, base58/addresses/WIF and hashes.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipgd.core.address import AddressError, decode_address, decode_wif
from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import get_params
from aipgd.core.serialize import ByteReader, DeserializationError, ser_compact_size
from aipgd.core.transaction import Transaction
from aipgd.core.uint256 import hex_to_hash

REGTEST = get_params("regtest")
ACT = REGTEST.kawpow_activation_time
GENESIS_RAW = REGTEST.genesis.serialize()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=400))
def test_transaction_garbage(data: bytes) -> None:
    try:
        tx = Transaction.from_bytes(data)
    except DeserializationError:
        return
    assert tx.serialize() == data or tx.serialize(with_witness=False) == data


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_header_garbage(data: bytes, kawpow_era: bool) -> None:
    try:
        header = BlockHeader.from_bytes(data, ACT if kawpow_era else 1 << 40)
    except DeserializationError:
        return
    assert header.serialize() == data


@FUZZ
@given(st.integers(min_value=0, max_value=len(GENESIS_RAW) - 1))
def test_truncated_block(cut: int) -> None:
    try:
        Block.deserialize(GENESIS_RAW[:cut], ACT)
    except DeserializationError as exc:
        assert exc.offset <= cut
    else:
        raise AssertionError("a truncated block parsed")


@FUZZ
@given(st.integers(min_value=0, max_value=len(GENESIS_RAW) - 1), st.integers(min_value=0, max_value=255))
def test_mutated_block(pos: int, value: int) -> None:
    data = bytearray(GENESIS_RAW)
    data[pos] = value
    try:
        block = Block.deserialize(bytes(data), ACT)
    except DeserializationError:
        return
    assert block.serialize() == bytes(data)


@FUZZ
@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_compact_size_round_trip_and_limit(n: int) -> None:
    encoded = ser_compact_size(n)
    assert ByteReader(encoded).compact_size(limit=1 << 64) == n
    try:
        value = ByteReader(encoded).compact_size()
    except DeserializationError as exc:
        assert "exceeds limit" in str(exc)
    else:
        assert value == n <= 0x02000000


@FUZZ
@given(st.binary(max_size=12))
def test_compact_size_garbage(data: bytes) -> None:
    with contextlib.suppress(DeserializationError):
        ByteReader(data).compact_size()


@FUZZ
@given(st.text(max_size=120))
def test_address_and_wif_text(text: str) -> None:
    for parse in (decode_address, decode_wif):
        with contextlib.suppress(AddressError):
            parse(text, REGTEST.prefixes)


@FUZZ
@given(st.text(max_size=70))
def test_hash_text(text: str) -> None:
    with contextlib.suppress(ValueError):
        hex_to_hash(text)


def test_error_names_what_and_where() -> None:
    try:
        # One input whose scriptSig claims 80 bytes with 8 left.
        Transaction.from_bytes(bytes.fromhex("0100000001") + bytes(36) + b"\x50" + bytes(8))
    except DeserializationError as exc:
        assert exc.what == "scriptSig"
        assert exc.offset == 42
        assert "truncated: need 80 bytes, 8 left" in str(exc)
    else:
        raise AssertionError("expected DeserializationError")
    try:
        Transaction.from_bytes(bytes.fromhex("0100000001") + bytes(10))
    except DeserializationError as exc:
        assert exc.what == "tx inputs" and "remaining bytes" in exc.reason
    else:
        raise AssertionError("expected DeserializationError")
    try:
        ByteReader(b"\xfd\x01\x00").compact_size()
    except DeserializationError as exc:
        assert "non-canonical" in exc.reason
    else:
        raise AssertionError("expected DeserializationError")
