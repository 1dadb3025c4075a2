"""The grid's EIP-191 receipts: known-answer vectors, address derivation, tamper and format checks."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from aipgd.script.signature import SECP256K1_N
from pouw.gridreceipt import (
    address_of_pubkey,
    eip191_digest,
    grid_address,
    grid_receipt_message,
    keccak256,
    recover_grid_signer,
    sign_grid_receipt,
    to_checksum_address,
    verify_grid_receipt,
)

# web3.js documentation's accounts.sign example: key, message, EIP-191 hash and signature.
WEB3_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
WEB3_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
WEB3_HASH = "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
WEB3_SIGNATURE = ("0xb91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd"
                  "6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c")

# A grid receipt computed once with this module and pinned: a change of format shows up here.
GRID_KEY = bytes.fromhex("07" * 32)
GRID_JOB = "job-1"
GRID_TEXT = "hello"
GRID_ADDRESS = "0x4a62316623ad457F02cDC5D997deD67a383EC569"
GRID_SIGNATURE = ("0x78976056cc078b60801af02bf6192f83346dd81cbb17ca6fb8c85d131e6dc918"
                  "2db3beafdcc95b3a302f8e1fdf345fe60e1072a0d5be04d81950b483ed4b55e21b")


def test_keccak256_known_answer() -> None:
    # keccak256("") (the pre-NIST padding: not sha3-256).
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_private_key_one_address() -> None:
    assert grid_address((1).to_bytes(32, "big")) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def test_web3_vector() -> None:
    assert grid_address(WEB3_KEY) == WEB3_ADDRESS
    assert eip191_digest(b"Some data").hex() == WEB3_HASH
    assert recover_grid_signer("Some data", WEB3_SIGNATURE) == WEB3_ADDRESS.lower()


def test_grid_message_format() -> None:
    text = "héllo wörld"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert grid_receipt_message("abc-123", text) == f"aipg-receipt:v1:abc-123:{digest}"


def test_fixed_grid_receipt_vector() -> None:
    assert sign_grid_receipt(GRID_JOB, GRID_TEXT, GRID_KEY) == GRID_SIGNATURE
    address = grid_address(GRID_KEY)
    assert address == GRID_ADDRESS
    assert address.lower() == address_of_pubkey(PrivateKey(GRID_KEY).public_key)
    assert verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE, address)
    assert verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE, address.lower())
    assert verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE[2:], address.upper().replace("0X", "0x"))


def test_tampering_fails() -> None:
    address = grid_address(GRID_KEY)
    assert not verify_grid_receipt("job-2", GRID_TEXT, GRID_SIGNATURE, address)
    assert not verify_grid_receipt(GRID_JOB, "hello!", GRID_SIGNATURE, address)
    assert not verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE, WEB3_ADDRESS)
    flipped = GRID_SIGNATURE[:-2] + "1c"  # v 27 -> 28 recovers another key
    assert not verify_grid_receipt(GRID_JOB, GRID_TEXT, flipped, address)


def test_v_of_zero_or_one_accepted() -> None:
    address = grid_address(GRID_KEY)
    v = int(GRID_SIGNATURE[-2:], 16)
    assert verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE[:-2] + f"{v - 27:02x}", address)


@pytest.mark.parametrize("signature", [
    "", "0x", GRID_SIGNATURE[:-2], GRID_SIGNATURE + "00", GRID_SIGNATURE[:-2] + "1d",
    GRID_SIGNATURE[:-2] + "02",
    "0x" + "zz" * 65, "0x" + "00" * 65,
])
def test_malformed_signatures_refused(signature: str) -> None:
    assert not verify_grid_receipt(GRID_JOB, GRID_TEXT, signature, grid_address(GRID_KEY))


def test_high_s_refused() -> None:
    raw = bytes.fromhex(GRID_SIGNATURE[2:])
    s = int.from_bytes(raw[32:64], "big")
    high = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((raw[64] ^ 1,))  # same key, other parity
    assert not verify_grid_receipt(GRID_JOB, GRID_TEXT, "0x" + high.hex(), grid_address(GRID_KEY))


@pytest.mark.parametrize("address", ["", "0x1234", "7E5F4552091A69125d5DfCb7b8C2659029395Bdf00",
                                     "0xZZ5F4552091A69125d5DfCb7b8C2659029395Bdf"])
def test_malformed_addresses_refused(address: str) -> None:
    assert not verify_grid_receipt(GRID_JOB, GRID_TEXT, GRID_SIGNATURE, address)


def test_checksum_address() -> None:
    assert to_checksum_address("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf") == \
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    with pytest.raises(ValueError):
        to_checksum_address("0x123")


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=40), st.text(max_size=200), st.integers(1, SECP256K1_N - 1))
def test_sign_then_verify(job_id: str, text: str, secret: int) -> None:
    key = secret.to_bytes(32, "big")
    signature = sign_grid_receipt(job_id, text, key)
    assert int(signature[-2:], 16) in (27, 28)
    assert verify_grid_receipt(job_id, text, signature, grid_address(key))
