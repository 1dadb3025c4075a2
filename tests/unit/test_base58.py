"""Base58, Base58Check, addresses and WIF against Core's base58 vectors.

The vectors use Ravencoin's prefixes (main 60/122/128, test 111/196/239), so they are
checked with those prefix sets; the AIPG prefixes are checked separately.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipgd.core.address import (
    AddressError,
    Base58Prefixes,
    decode_address,
    decode_wif,
    encode_address,
    encode_wif,
)
from aipgd.core.base58 import Base58Error, b58decode, b58decode_check, b58encode, b58encode_check
from aipgd.core.params import get_params
from aipgd.script.standard import KeyID, ScriptID

DATA = Path(__file__).resolve().parent.parent / "data"
VECTOR_MAIN = Base58Prefixes(bytes([60]), bytes([122]), bytes([128]), bytes(4), bytes(4))
VECTOR_TEST = Base58Prefixes(bytes([111]), bytes([196]), bytes([239]), bytes(4), bytes(4))


def load(name: str) -> list[Any]:
    with open(DATA / name) as f:
        return list(json.load(f))


@pytest.mark.parametrize(("hex_data", "text"), load("base58_encode_decode.json"))
def test_encode_decode(hex_data: str, text: str) -> None:
    assert b58encode(bytes.fromhex(hex_data)) == text
    assert b58decode(text) == bytes.fromhex(hex_data)


def test_decode_rejects_bad_characters_and_checksums() -> None:
    for bad in ("0", "O", "I", "l", "3mJr7AoUXx2Wqd\x00", "é"):
        with pytest.raises(Base58Error):
            b58decode(bad)
    good = b58encode_check(b"\x17" + bytes(20))
    assert b58decode_check(good) == b"\x17" + bytes(20)
    corrupted = good[:-1] + ("2" if good[-1] != "2" else "3")
    with pytest.raises(Base58Error, match="checksum"):
        b58decode_check(corrupted)
    with pytest.raises(Base58Error, match="longer than"):
        b58decode("1" * 10_000)


@pytest.mark.parametrize("vector", load("base58_keys_valid.json"), ids=lambda v: v[0])
def test_keys_valid(vector: list[Any]) -> None:
    text, payload_hex, meta = vector
    payload = bytes.fromhex(payload_hex)
    prefixes = VECTOR_TEST if meta["isTestnet"] else VECTOR_MAIN
    other = VECTOR_MAIN if meta["isTestnet"] else VECTOR_TEST
    if meta["isPrivkey"]:
        secret, compressed = decode_wif(text, prefixes)
        assert secret == payload
        assert compressed == meta["isCompressed"]
        assert encode_wif(secret, compressed, prefixes) == text
        with pytest.raises(AddressError):
            decode_address(text, prefixes)
    else:
        dest = decode_address(text, prefixes)
        expected = KeyID(payload) if meta["addrType"] == "pubkey" else ScriptID(payload)
        assert dest == expected
        assert encode_address(dest, prefixes) == text
        with pytest.raises(AddressError):
            decode_wif(text, prefixes)
        with pytest.raises(AddressError):
            decode_address(text, other)


@pytest.mark.parametrize("vector", load("base58_keys_invalid.json"), ids=lambda v: v[0][:20])
def test_keys_invalid(vector: list[Any]) -> None:
    (text,) = vector
    for prefixes in (VECTOR_MAIN, VECTOR_TEST):
        with pytest.raises(AddressError):
            decode_address(text, prefixes)
        with pytest.raises(AddressError):
            decode_wif(text, prefixes)


def test_aipg_main_addresses_decode_as_p2pkh_like_core() -> None:
    prefixes = get_params("main").prefixes
    h = bytes(range(20))
    p2pkh = encode_address(KeyID(h), prefixes)
    p2sh = encode_address(ScriptID(h), prefixes)
    assert p2pkh.startswith("A")
    # Same version byte: the P2SH text is identical and decodes as P2PKH (Core's behaviour).
    assert p2sh == p2pkh
    assert decode_address(p2sh, prefixes) == KeyID(h)
    assert not prefixes.script_is_distinct


def test_aipg_regtest_addresses_are_distinct() -> None:
    prefixes = get_params("regtest").prefixes
    h = bytes(20)
    assert decode_address(encode_address(ScriptID(h), prefixes), prefixes) == ScriptID(h)
    assert decode_address(encode_address(KeyID(h), prefixes), prefixes) == KeyID(h)
    assert prefixes.script_is_distinct


def test_wif_rejects_out_of_range_keys() -> None:
    prefixes = get_params("main").prefixes
    zero = b58encode_check(prefixes.secret_key + bytes(32) + b"\x01")
    with pytest.raises(AddressError, match="out of range"):
        decode_wif(zero, prefixes)
    assert decode_wif(encode_wif(b"\x01" * 32, True, prefixes), prefixes) == (b"\x01" * 32, True)
