"""Attestation: encoding, id, strict decoding, rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pouw_factories import VALIDATOR, attestation, attestations

from aipgd.core.serialize import DeserializationError
from pouw.attestation import Attestation, CheckMethod, Verdict
from pouw.errors import INVALID_FIELD, UNSUPPORTED, PouwError
from pouw.signing import sign_attestation


def test_fixed_attestation_encoding_and_id() -> None:
    att = attestation()
    raw = att.serialize()
    assert len(raw) == 1 + 32 + 33 + 1 + 4 + 1 + 4 + 32 + 4 + 1
    # verdict, score 987654 (0x0f1206), method, checked positions
    assert raw[66:76].hex() == "01" "06120f00" "01" "10000000"
    assert att.id_hex == "bb96af71376a4c0ee26284d32657f2f98a96cfd37a60a2699a21b75382e6a6e0"
    assert att.score == 0.987654


def test_other_versions_unsupported() -> None:
    with pytest.raises(PouwError) as info:
        attestation(version=2)
    assert (info.value.code, info.value.field) == (UNSUPPORTED, "version")


def test_round_trip_signed_and_unsigned() -> None:
    att = attestation()
    signed = sign_attestation(att, VALIDATOR)
    assert Attestation.from_bytes(att.serialize()) == att
    assert Attestation.from_bytes(signed.serialize()) == signed
    assert signed.id == att.id
    assert signed.unsigned() == att


@settings(max_examples=200, deadline=None)
@given(attestations)
def test_random_attestations_round_trip(att: Attestation) -> None:
    assert Attestation.from_bytes(att.serialize()) == att


@pytest.mark.parametrize("change", [
    {"verdict": Verdict.INVALID}, {"score_micro": 1}, {"method": CheckMethod.RERUN}, {"checked_positions": 1},
    {"beacon": bytes(32)}, {"time": 0}, {"receipt_id": bytes(32)},
])
def test_every_field_changes_the_id(change: dict[str, Any]) -> None:
    assert attestation(**change).id != attestation().id


def test_strict_decoding() -> None:
    raw = attestation().serialize()
    with pytest.raises(DeserializationError, match="trailing"):
        Attestation.from_bytes(raw + b"\x00")
    for n in range(len(raw)):
        with pytest.raises(DeserializationError):
            Attestation.from_bytes(raw[:n])
    with pytest.raises(DeserializationError, match="unknown Verdict code 4"):
        Attestation.from_bytes(raw[:66] + b"\x04" + raw[67:])
    with pytest.raises(DeserializationError, match="unknown CheckMethod code 0"):
        Attestation.from_bytes(raw[:71] + b"\x00" + raw[72:])
    with pytest.raises(DeserializationError, match=r"outside 0\.\.1000000"):
        Attestation.from_bytes(raw[:67] + b"\x41\x42\x0f\x00" + raw[71:])  # score 1000001
    with pytest.raises(DeserializationError, match="unsupported version 0"):
        Attestation.from_bytes(b"\x00" + raw[1:])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_deserialization_error(data: bytes) -> None:
    try:
        att = Attestation.from_bytes(data)
    except DeserializationError:
        return
    assert att.serialize() == data


@pytest.mark.parametrize(("change", "field"), [
    ({"score_micro": 1_000_001}, "score"), ({"verdict": 1}, "verdict"), ({"beacon": b"\x00"}, "beacon"),
    ({"validator_pubkey": b""}, "validator_pubkey"), ({"signature": b"\x00" * 65}, "signature"),
    ({"checked_positions": -1}, "checked_positions"), ({"time": 2**32}, "time"),
])
def test_constructor_rules(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PouwError) as info:
        attestation(**change)
    assert info.value.code == INVALID_FIELD
    assert info.value.field == field
