"""Receipt: encoding, id scope (signatures excluded), strict decoding, rules, job matching."""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pouw_factories import (
    REQUESTER,
    SAMPLING,
    WORKER,
    chat_spec,
    completion_spec,
    embed_receipt,
    embed_spec,
    receipts,
    token_receipt,
)

from aipgd.core.serialize import DeserializationError
from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, UNSUPPORTED, PouwError
from pouw.limits import DEFAULT_LIMITS, PouwLimits, check_receipt
from pouw.receipt import (
    EmbeddingOutput,
    ExecutionFacts,
    FinishReason,
    Receipt,
    Timings,
    TokenOutput,
    Usage,
)
from pouw.signing import sign_receipt, sign_requester_ack


def test_fixed_receipt_id_is_stable() -> None:
    receipt = token_receipt()
    assert receipt.id_hex == "6690eed9ff950a77908742f4b42d2dd367a2cd4560fd79633f86a04d6f3ead39"
    assert receipt.serialize() == receipt.serialize_unsigned() + b"\x00\x00"


@pytest.mark.parametrize("make", [token_receipt, embed_receipt])
def test_round_trip(make: object) -> None:
    assert callable(make)
    receipt = make()
    assert isinstance(receipt, Receipt)
    signed = sign_requester_ack(sign_receipt(receipt, WORKER), REQUESTER)
    for r in (receipt, signed):
        assert Receipt.from_bytes(r.serialize()) == r


@settings(max_examples=200, deadline=None)
@given(receipts())
def test_random_receipts_round_trip(receipt: Receipt) -> None:
    raw = receipt.serialize()
    again = Receipt.from_bytes(raw)
    assert again == receipt
    assert again.serialize() == raw
    assert again.id == receipt.id


def test_id_excludes_signatures_only() -> None:
    receipt = token_receipt()
    signed = sign_requester_ack(sign_receipt(receipt, WORKER), REQUESTER)
    assert signed.id == receipt.id
    assert signed.serialize() != receipt.serialize()
    assert signed.unsigned() == receipt


@pytest.mark.parametrize("change", [
    {"finish_reason": FinishReason.LENGTH}, {"started": 1}, {"finished": 1_799_999_002},
    {"timings": Timings(3, 12, 41)}, {"usage": Usage(6, 3)},
    {"output": TokenOutput.from_text([17, 4, 98], " there was")},
    {"output": TokenOutput.from_text([17, 4, 99], " there were")},
    {"execution": ExecutionFacts("llama.cpp", "0.3.16", 8, True, SAMPLING)},
    {"execution": ExecutionFacts("llama.cpp", "0.3.16", 4, False, SAMPLING)},
    {"execution": ExecutionFacts("llama.cpp", "0.3.16", 4, True, replace(SAMPLING, seed=1))},
    {"model_hash": bytes(32)}, {"input_hash": bytes(32)}, {"job_id": bytes(32)},
])
def test_every_field_changes_the_id(change: dict[str, Any]) -> None:
    assert token_receipt(**change).id != token_receipt().id


def test_output_helpers() -> None:
    out = TokenOutput.from_text([1, 2], "héllo")
    assert out.text_sha256 == hashlib.sha256("héllo".encode()).digest()
    emb = EmbeddingOutput.from_vectors([[1.0, 2.0], [3.0, 4.0]])
    assert (emb.count, emb.dims) == (2, 2)
    assert emb.vectors_sha256 == hashlib.sha256(struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)).digest()
    with pytest.raises(PouwError, match="differ in length"):
        EmbeddingOutput.from_vectors([[1.0], [1.0, 2.0]])


def test_trailing_and_truncated_rejected() -> None:
    raw = sign_receipt(token_receipt(), WORKER).serialize()
    with pytest.raises(DeserializationError, match="trailing"):
        Receipt.from_bytes(raw + b"\x00")
    for n in range(len(raw)):
        with pytest.raises(DeserializationError):
            Receipt.from_bytes(raw[:n])


def test_bad_codes_rejected() -> None:
    receipt = token_receipt()
    raw = receipt.serialize()
    out_at = 1 + 32 + 33 + 32 + 32
    assert raw[out_at] == 1
    with pytest.raises(DeserializationError, match="unknown OutputType code 3"):
        Receipt.from_bytes(raw[:out_at] + b"\x03" + raw[out_at + 1:])
    finish_at = out_at + 1 + 1 + 3 * 4 + 32
    assert raw[finish_at] == FinishReason.EOS
    with pytest.raises(DeserializationError, match="unknown FinishReason code 6"):
        Receipt.from_bytes(raw[:finish_at] + b"\x06" + raw[finish_at + 1:])
    flag_at = raw.index(b"\x09llama.cpp\x060.3.16") + 1 + 9 + 1 + 6 + 2
    with pytest.raises(DeserializationError, match="boolean must be 0 or 1"):
        Receipt.from_bytes(raw[:flag_at] + b"\x02" + raw[flag_at + 1:])
    with pytest.raises(DeserializationError, match="signature must be 0 or 64 bytes"):
        Receipt.from_bytes(raw[:-2] + b"\x01\xaa\x00")
    with pytest.raises(DeserializationError, match="worker pubkey"):
        Receipt.from_bytes(raw[:33] + b"\x04" + raw[34:])


def test_decoded_rule_violation_is_a_deserialization_error() -> None:
    raw = token_receipt().serialize()
    # finished (last u32 before the signatures) set before started.
    bad = raw[:-6] + b"\x00\x00\x00\x00" + raw[-2:]
    with pytest.raises(DeserializationError, match="before started"):
        Receipt.from_bytes(bad)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_deserialization_error(data: bytes) -> None:
    try:
        receipt = Receipt.from_bytes(data)
    except DeserializationError:
        return
    assert receipt.serialize() == data


@settings(max_examples=300, deadline=None)
@given(receipts(), st.data())
def test_mutated_encodings_decode_canonically_or_fail(receipt: Receipt, data: st.DataObject) -> None:
    raw = bytearray(receipt.serialize())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        again = Receipt.from_bytes(bytes(raw))
    except DeserializationError:
        return
    assert again.serialize() == bytes(raw)


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"finished": 1_799_998_999}, "finished", "before started"),
    ({"usage": Usage(5, 2)}, "usage.completion_tokens", "differs from the 3 output tokens"),
    ({"execution": ExecutionFacts("llama.cpp", "", 4, True, None)}, "execution.sampling", "must echo"),
    ({"worker_signature": b"\x01" * 63}, "worker_signature", "0 or 64 bytes"),
    ({"requester_ack": b"\x01" * 65}, "requester_ack", "0 or 64 bytes"),
    ({"worker_pubkey": b"\x02" + b"\xff" * 32}, "worker_pubkey", "not a valid"),
    ({"job_id": b"\x00" * 31}, "job_id", "32 bytes"),
])
def test_constructor_rules(change: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PouwError) as info:
        token_receipt(**change)
    assert info.value.code == INVALID_FIELD
    assert info.value.field == field
    assert fragment in info.value.message


def test_other_versions_unsupported() -> None:
    with pytest.raises(PouwError) as info:
        token_receipt(version=2)
    assert (info.value.code, info.value.field) == (UNSUPPORTED, "version")


def test_embed_receipt_rules() -> None:
    with pytest.raises(PouwError, match="no sampling"):
        embed_receipt(execution=ExecutionFacts("llama.cpp", "", 4, True, SAMPLING))
    with pytest.raises(PouwError, match="generates no tokens"):
        embed_receipt(usage=Usage(4, 1))
    with pytest.raises(PouwError, match=r"outside 1\.\.65536"):
        EmbeddingOutput(1, 65537, bytes(32))


def test_execution_facts_rules() -> None:
    with pytest.raises(PouwError, match="empty"):
        ExecutionFacts("", "", 1, True, None)
    with pytest.raises(PouwError, match="bool"):
        ExecutionFacts("x", "", 1, 1, None)  # type: ignore[arg-type]
    with pytest.raises(PouwError, match=r"outside 0\.\.65535"):
        ExecutionFacts("x", "", 65536, True, None)


def test_token_count_hard_cap() -> None:
    with pytest.raises(PouwError) as info:
        TokenOutput((1,) * 131073, bytes(32))
    assert info.value.code == LIMIT_EXCEEDED
    assert "max_tokens=131072" in str(info.value)


# --- check_receipt ---------------------------------------------------------------------------------

def test_check_receipt_accepts_matching_receipts() -> None:
    check_receipt(token_receipt(), DEFAULT_LIMITS, completion_spec())
    check_receipt(embed_receipt(), DEFAULT_LIMITS, embed_spec())
    spec = chat_spec()
    check_receipt(token_receipt(spec), DEFAULT_LIMITS, spec)


@pytest.mark.parametrize(("receipt_change", "field"), [
    ({"job_id": bytes(32)}, "job_id"),
    ({"model_hash": bytes(32)}, "model_hash"),
    ({"input_hash": bytes(32)}, "input_hash"),
    ({"execution": ExecutionFacts("llama.cpp", "0.3.16", 4, True, replace(SAMPLING, top_k=41))},
     "execution.sampling"),
])
def test_check_receipt_refuses_mismatches(receipt_change: dict[str, Any], field: str) -> None:
    with pytest.raises(PouwError) as info:
        check_receipt(token_receipt(**receipt_change), DEFAULT_LIMITS, completion_spec())
    assert info.value.field == field
    assert "does not match" in info.value.message


def test_check_receipt_refuses_wrong_kind_count_and_length() -> None:
    spec = embed_spec()
    with pytest.raises(PouwError, match="does not match the job's number of inputs"):
        check_receipt(embed_receipt(output=EmbeddingOutput.from_vectors([[1.0]])), DEFAULT_LIMITS, spec)
    short = completion_spec(sampling=replace(SAMPLING, max_tokens=2))
    receipt = token_receipt(short)
    with pytest.raises(PouwError) as info:
        check_receipt(receipt, DEFAULT_LIMITS, short)
    assert info.value.code == LIMIT_EXCEEDED
    assert info.value.field == "output.token_ids"
    assert "3 tokens exceeds the job's max_tokens=2" in info.value.message


def test_check_receipt_policy_limits() -> None:
    with pytest.raises(PouwError, match=re.escape("execution.n_threads: 4 threads exceeds max_threads=2")):
        check_receipt(token_receipt(), PouwLimits(max_threads=2))
    with pytest.raises(PouwError, match=re.escape("output.dims: 3 dimensions exceeds max_embedding_dims=2")):
        check_receipt(embed_receipt(), PouwLimits(max_embedding_dims=2))
    two = ExecutionFacts("b", "", 1, True, replace(SAMPLING, max_tokens=2))
    with pytest.raises(PouwError, match=re.escape("output.token_ids: 3 tokens exceeds max_tokens=2")):
        check_receipt(token_receipt(execution=two), PouwLimits(max_tokens=2))
