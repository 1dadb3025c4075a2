"""Shared field checks and readers of the PoUW encodings."""

from __future__ import annotations

import pytest
from pouw_factories import WORKER

from aipgd.core.serialize import ByteReader, DeserializationError
from pouw.codec import (
    WireEnum,
    check_identifier,
    check_int,
    is_valid_pubkey,
    read_bool,
    read_enum,
    read_identifier,
    read_optional_pubkey,
    read_signature,
)
from pouw.errors import PouwError
from pouw.jobspec import JobKind


class Color(WireEnum):
    DARK_RED = 1
    BLUE = 2


def test_wire_enum_labels() -> None:
    assert Color.DARK_RED.label == "dark_red"
    assert Color.from_label("blue") is Color.BLUE
    assert Color.labels() == ["dark_red", "blue"]
    with pytest.raises(ValueError):
        Color.from_label("BLUE")
    assert JobKind.from_label("llm.completion") is JobKind.LLM_COMPLETION
    assert JobKind.labels() == ["llm.completion", "llm.chat", "embed", "image.txt2img"]


def test_read_enum_and_bool() -> None:
    assert read_enum(ByteReader(b"\x02"), Color, "c") is Color.BLUE
    with pytest.raises(DeserializationError, match="unknown Color code 0"):
        read_enum(ByteReader(b"\x00"), Color, "c")
    assert read_bool(ByteReader(b"\x01"), "b") is True
    with pytest.raises(DeserializationError, match="0 or 1"):
        read_bool(ByteReader(b"\x02"), "b")


def test_pubkeys() -> None:
    assert is_valid_pubkey(WORKER.pubkey)
    assert not is_valid_pubkey(b"\x04" + WORKER.pubkey[1:])
    assert not is_valid_pubkey(WORKER.pubkey[:32])
    assert read_optional_pubkey(ByteReader(b"\x00"), "k") == b""
    with pytest.raises(DeserializationError, match="exceeds limit 33"):
        read_optional_pubkey(ByteReader(b"\x41" + b"\x04" * 65), "k")
    with pytest.raises(DeserializationError, match="not a valid"):
        read_optional_pubkey(ByteReader(b"\x21" + b"\x02" + b"\xff" * 32), "k")


def test_signatures() -> None:
    assert read_signature(ByteReader(b"\x00"), "s") == b""
    assert read_signature(ByteReader(b"\x40" + b"\x01" * 64), "s") == b"\x01" * 64
    with pytest.raises(DeserializationError, match="0 or 64"):
        read_signature(ByteReader(b"\x3f" + b"\x01" * 63), "s")
    with pytest.raises(DeserializationError, match="exceeds limit 64"):
        read_signature(ByteReader(b"\x48" + b"\x01" * 72), "s")


def test_identifiers() -> None:
    assert read_identifier(ByteReader(b"\x03a-b"), "n", 10) == "a-b"
    with pytest.raises(DeserializationError, match="printable ASCII"):
        read_identifier(ByteReader(b"\x02\xc3\xa9"), "n", 10)
    with pytest.raises(DeserializationError, match="empty"):
        read_identifier(ByteReader(b"\x00"), "n", 10)
    assert read_identifier(ByteReader(b"\x00"), "n", 10, allow_empty=True) == ""
    with pytest.raises(PouwError, match="printable"):
        check_identifier("tab\there", "n")


def test_check_int() -> None:
    assert check_int(5, 0, 5, "x") == 5
    for bad in (6, -1, True, 1.0, "1"):
        with pytest.raises(PouwError):
            check_int(bad, 0, 5, "x")
