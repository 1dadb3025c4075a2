"""PouwError: codes are a closed set, the message names the field, paths nest."""

from __future__ import annotations

import pytest

from aipgd.core.serialize import DeserializationError
from pouw.errors import BAD_JSON, ERROR_CODES, INVALID_ENCODING, LIMIT_EXCEEDED, PouwError
from pouw.jobspec import JobSpec


def test_codes_are_stable() -> None:
    assert sorted(ERROR_CODES) == ["bad-json", "bad-signature", "invalid-encoding", "invalid-field",
                                   "limit-exceeded", "unsupported"]


def test_message_and_field() -> None:
    err = PouwError(LIMIT_EXCEEDED, "9 exceeds max=8", "sampling.stop")
    assert str(err) == "sampling.stop: 9 exceeds max=8"
    assert (err.code, err.field, err.message) == (LIMIT_EXCEEDED, "sampling.stop", "9 exceeds max=8")
    assert str(PouwError(BAD_JSON, "no field")) == "no field"


def test_nesting() -> None:
    assert PouwError(BAD_JSON, "x", "role").at("input.messages[0]").field == "input.messages[0].role"
    assert PouwError(BAD_JSON, "x").at("input").field == "input"


def test_from_decode() -> None:
    with pytest.raises(DeserializationError) as info:
        JobSpec.from_bytes(b"\x01")
    err = PouwError.from_decode(info.value)
    assert err.code == INVALID_ENCODING
    assert str(err) == "job kind: truncated: need 1 bytes, 0 left (at byte 1)"


def test_unknown_code_refused() -> None:
    with pytest.raises(ValueError, match="unknown PoUW error code"):
        PouwError("oops", "x")
