"""Coin records: Core's VARINT, amount/script compression and the height/coinbase code."""

from __future__ import annotations

import contextlib

import pytest
from coincurve import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from aipgd.chain.coins import Coin, compress_amount, compress_script, decompress_amount
from aipgd.core.serialize import ByteReader, DeserializationError, ser_varint
from aipgd.core.transaction import COIN, TxOut


@pytest.mark.parametrize(("n", "encoded"), [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8000"), (255, "807f"), (256, "8100"),
    (16383, "fe7f"), (16384, "ff00"), (16511, "ff7f"), (0x1234, "a334"), (0xFFFF, "82fe7f"),
    (0x123456, "c7e756"), (0x80123456, "86ffc7e756"), (0xFFFFFFFF, "8efefefe7f"),
    (0x7FFFFFFFFFFFFFFF, "fefefefefefefefe7f"), (0xFFFFFFFFFFFFFFFF, "80fefefefefefefefe7f"),
])
def test_varint_matches_core(n: int, encoded: str) -> None:
    # Core: serialize_tests.cpp varints_bitpatterns.
    assert ser_varint(n).hex() == encoded
    assert ByteReader(bytes.fromhex(encoded)).varint() == n


def test_varint_overflow_rejected() -> None:
    with pytest.raises(DeserializationError, match="too large"):
        ByteReader(b"\x80" * 20 + b"\x00").varint()
    with pytest.raises(DeserializationError, match="too large"):
        ByteReader(bytes.fromhex("80fefefefefefefefeff00")).varint()
    with pytest.raises(DeserializationError, match="too large"):
        ByteReader(ser_varint(1 << 32)).varint(max_value=0xFFFFFFFF)


@pytest.mark.parametrize(("amount", "compressed"), [
    (0, 0x0), (1, 0x1), (1_000_000, 0x7), (COIN, 0x9), (50 * COIN, 0x32), (21_000_000 * COIN, 0x1406F40),
])
def test_compress_amount_core_vectors(amount: int, compressed: int) -> None:
    # Core: compress_tests.cpp's fixed points.
    assert compress_amount(amount) == compressed
    assert decompress_amount(compressed) == amount


@given(st.integers(min_value=0, max_value=21_000_000_000 * COIN))
def test_amount_round_trip(amount: int) -> None:
    assert decompress_amount(compress_amount(amount)) == amount


def test_script_special_forms_round_trip() -> None:
    key = PrivateKey(b"\x01" * 32)
    compressed = key.public_key.format(compressed=True)
    uncompressed = key.public_key.format(compressed=False)
    cases = {
        bytes.fromhex("76a914") + bytes(20) + bytes.fromhex("88ac"): 21,
        bytes.fromhex("a914") + bytes(20) + b"\x87": 21,
        b"\x21" + compressed + b"\xac": 33,
        b"\x41" + uncompressed + b"\xac": 33,
        b"\x6a\x04test": 1 + 6,
    }
    for script, size in cases.items():
        encoded = compress_script(script)
        assert len(encoded) == size
        coin = Coin(TxOut(12345, script), 777, True)
        again = Coin.from_bytes(coin.serialize())
        assert again == coin


def test_invalid_uncompressed_key_is_stored_verbatim() -> None:
    script = b"\x41\x04" + bytes(64) + b"\xac"
    assert compress_script(script)[0] == 67 + 6


def test_coin_code() -> None:
    coin = Coin(TxOut(50 * COIN, b"\x51"), 120_000, True)
    raw = coin.serialize()
    assert ByteReader(raw).varint() == 240_001
    with pytest.raises(DeserializationError):
        Coin.from_bytes(raw[:-1])
    with pytest.raises(DeserializationError, match="trailing"):
        Coin.from_bytes(raw + b"\x00")


@given(st.binary(max_size=60))
def test_coin_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(DeserializationError):
        Coin.from_bytes(data)
