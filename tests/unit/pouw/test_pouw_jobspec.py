"""JobSpec: canonical encoding, id stability, strict decoding, constructor rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pouw_factories import MODEL, SAMPLING, chat_spec, completion_spec, embed_spec, jobspecs

from aipgd.core.serialize import DeserializationError, ser_compact_size
from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, UNSUPPORTED, PouwError
from pouw.jobspec import (
    ChatInput,
    ChatMessage,
    ChatRole,
    CompletionInput,
    EmbedInput,
    JobKind,
    JobSpec,
    ModelRef,
    SamplingParams,
    Tier,
)

# A fixed job, its encoding and id: if any of these change, the version-1 format has drifted.
FIXED = JobSpec(
    model=ModelRef("llama-3.2-1b-instruct.Q4_K_M", bytes.fromhex("5f" * 16 + "a0" * 16)),
    input=ChatInput((ChatMessage(ChatRole.SYSTEM, "You are terse."), ChatMessage(ChatRole.USER, "2+2=?")),
                    "chatml"),
    sampling=SamplingParams(max_tokens=32, temperature_milli=0, top_k=1, top_p_micro=1_000_000, seed=7,
                            stop=("</s>",)),
    deadline=1_767_225_600, nonce=0x0102030405060708, tier=Tier.PAID,
    requester=bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
    fee=250_000,
)
FIXED_HEX = (
    "01" "02"  # version 1, kind llm.chat
    "1c" + b"llama-3.2-1b-instruct.Q4_K_M".hex() + "5f" * 16 + "a0" * 16  # model name, sha256
    + "02" "01" "0e" + b"You are terse.".hex() + "02" "05" + b"2+2=?".hex()  # messages
    + "06" + b"chatml".hex()  # chat template
    + "20000000" "00000000" "01000000" "40420f00" "0700000000000000"  # max_tokens, temp, top_k, top_p, seed
    + "01" "04" + b"</s>".hex()  # stop strings
    + "02"  # tier paid
    + "21" "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # requester
    + "90d0030000000000"  # fee 250000
    + "00b95569"  # deadline 1767225600 (0x6955b900)
    + "0807060504030201"  # nonce
)
FIXED_ID = "7bcb67626d3b35b81aa43660da486b9106e03f900a0f570aff3ddff9b2b4f591"


def test_fixed_jobspec_encoding_and_id_are_stable() -> None:
    assert FIXED.serialize().hex() == FIXED_HEX
    assert FIXED.id_hex == FIXED_ID
    # Display hex is the reversed sha256d, like a txid.
    assert FIXED.id[::-1].hex() == FIXED_ID
    assert FIXED.input_hash.hex() == "1249feb6cdf239529e081b8f7555b9362f8fdc45e81b0ac77b53bd50f3f21166"
    assert JobSpec.from_bytes(bytes.fromhex(FIXED_HEX)) == FIXED


def test_embed_job_has_no_sampling_section() -> None:
    spec = JobSpec(ModelRef("e5-small", bytes(32)), EmbedInput(("héllo",)), None, deadline=1, nonce=2)
    assert spec.serialize().hex() == (
        "01" "03" "08" + b"e5-small".hex() + "00" * 32 + "01" "06" + "héllo".encode().hex()
        + "01" "00" "0000000000000000" "01000000" "0200000000000000")
    assert spec.kind is JobKind.EMBED


@pytest.mark.parametrize("make", [completion_spec, chat_spec, embed_spec])
def test_round_trip_each_kind(make: object) -> None:
    assert callable(make)
    spec = make()
    assert isinstance(spec, JobSpec)
    again = JobSpec.from_bytes(spec.serialize())
    assert again == spec
    assert again.id == spec.id


@settings(max_examples=200, deadline=None)
@given(jobspecs())
def test_random_jobspecs_round_trip(spec: JobSpec) -> None:
    raw = spec.serialize()
    again = JobSpec.from_bytes(raw)
    assert again == spec
    assert again.serialize() == raw
    assert again.id == spec.id


def test_nonce_makes_identical_requests_distinct() -> None:
    assert completion_spec(nonce=1).id != completion_spec(nonce=2).id


@pytest.mark.parametrize("change", [
    {"nonce": 99}, {"deadline": 5}, {"model": ModelRef("other", bytes(32))},
    {"input": CompletionInput("Once upon a tim")}, {"sampling": replace(SAMPLING, seed=43)},
    {"sampling": replace(SAMPLING, temperature_milli=701)}, {"sampling": replace(SAMPLING, stop=())},
])
def test_every_field_changes_the_id(change: dict[str, Any]) -> None:
    assert completion_spec(**change).id != completion_spec().id


def test_trailing_byte_rejected() -> None:
    with pytest.raises(DeserializationError, match="trailing"):
        JobSpec.from_bytes(FIXED.serialize() + b"\x00")


def test_every_truncation_rejected() -> None:
    raw = FIXED.serialize()
    for n in range(len(raw)):
        with pytest.raises(DeserializationError):
            JobSpec.from_bytes(raw[:n])


def test_non_minimal_compact_size_rejected() -> None:
    raw = completion_spec().serialize()
    # The model name's length 13 written as 0xfd 0x0d 0x00 is the same number, not the same bytes.
    name_len = 2
    assert raw[name_len] == 13
    bad = raw[:name_len] + b"\xfd\x0d\x00" + raw[name_len + 1:]
    with pytest.raises(DeserializationError, match="non-canonical compact size"):
        JobSpec.from_bytes(bad)


def test_unknown_version_and_kind_rejected() -> None:
    raw = completion_spec().serialize()
    with pytest.raises(DeserializationError, match="unsupported version 2"):
        JobSpec.from_bytes(b"\x02" + raw[1:])
    with pytest.raises(DeserializationError, match="unknown JobKind code 9"):
        JobSpec.from_bytes(raw[:1] + b"\x09" + raw[2:])
    with pytest.raises(DeserializationError, match="unknown JobKind code 0"):
        JobSpec.from_bytes(raw[:1] + b"\x00" + raw[2:])


def test_image_kind_is_known_but_unsupported() -> None:
    assert JobKind(4) is JobKind.IMAGE_TXT2IMG
    assert JobKind.IMAGE_TXT2IMG.label == "image.txt2img"
    assert not JobKind.IMAGE_TXT2IMG.supported
    raw = completion_spec().serialize()
    with pytest.raises(DeserializationError, match=r"image\.txt2img is not supported"):
        JobSpec.from_bytes(raw[:1] + b"\x04" + raw[2:])


def test_invalid_utf8_rejected() -> None:
    spec = completion_spec(input=CompletionInput("ab"))
    raw = spec.serialize()
    at = raw.index(ser_compact_size(2) + b"ab")
    for bad_text in (b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0"):  # invalid, overlong '/', surrogate half
        bad = raw[:at] + ser_compact_size(2) + bad_text + raw[at + 3:]
        with pytest.raises(DeserializationError, match="invalid UTF-8"):
            JobSpec.from_bytes(bad)


def test_bad_enum_codes_and_pubkey_rejected() -> None:
    raw = chat_spec().serialize()
    role_at = raw.index(b"\x01\x09Be brief.")
    with pytest.raises(DeserializationError, match="unknown ChatRole code 7"):
        JobSpec.from_bytes(raw[:role_at] + b"\x07" + raw[role_at + 1:])
    key_at = raw.index(chat_spec().requester)
    with pytest.raises(DeserializationError, match="public key"):
        JobSpec.from_bytes(raw[:key_at] + b"\x05" + raw[key_at + 1:])
    tier_at = key_at - 2
    with pytest.raises(DeserializationError, match="unknown Tier code 3"):
        JobSpec.from_bytes(raw[:tier_at] + b"\x03" + raw[tier_at + 1:])


def test_decoded_rule_violation_is_a_deserialization_error() -> None:
    # A free job with a fee breaks a constructor rule; the decoder reports it as an encoding error.
    raw = chat_spec().serialize()
    tier_at = raw.index(chat_spec().requester) - 2
    with pytest.raises(DeserializationError, match="free job carries no fee"):
        JobSpec.from_bytes(raw[:tier_at] + b"\x01" + raw[tier_at + 1:])


def test_hard_caps_enforced_by_decoder() -> None:
    # A prompt one byte over the format's 2 MiB cap: refused before reading it.
    raw = completion_spec(input=CompletionInput("")).serialize()
    at = raw.index(b"\x00" + SAMPLING.serialize())
    big = 2 * 1024 * 1024 + 1
    with pytest.raises(DeserializationError, match="exceeds limit"):
        JobSpec.from_bytes(raw[:at] + ser_compact_size(big) + b"x" * big + raw[at + 1:])
    with pytest.raises(DeserializationError, match="exceed 4000000"):
        JobSpec.from_bytes(b"\x01" * 4_000_001)


def test_forged_huge_counts_do_not_allocate() -> None:
    raw = chat_spec().serialize()
    at = raw.index(b"\x02\x01\x09Be brief.")
    with pytest.raises(DeserializationError):
        JobSpec.from_bytes(raw[:at] + b"\xfe\xff\xff\xff\x00" + raw[at + 1:])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_deserialization_error(data: bytes) -> None:
    try:
        spec = JobSpec.from_bytes(data)
    except DeserializationError:
        return
    assert spec.serialize() == data


@settings(max_examples=300, deadline=None)
@given(jobspecs(), st.data())
def test_mutated_encodings_decode_canonically_or_fail(spec: JobSpec, data: st.DataObject) -> None:
    raw = bytearray(spec.serialize())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        again = JobSpec.from_bytes(bytes(raw))
    except DeserializationError:
        return
    assert again.serialize() == bytes(raw)


# --- constructor rules ----------------------------------------------------------------------------

def test_kind_follows_input() -> None:
    assert completion_spec().kind is JobKind.LLM_COMPLETION
    assert chat_spec().kind is JobKind.LLM_CHAT
    assert embed_spec().kind is JobKind.EMBED


@pytest.mark.parametrize(("build", "field", "fragment"), [
    (lambda: completion_spec(sampling=None), "sampling", "need SamplingParams"),
    (lambda: embed_spec(sampling=SAMPLING), "sampling", "take no sampling"),
    (lambda: completion_spec(tier=Tier.PAID), "requester", "paid job must name"),
    (lambda: completion_spec(fee=1), "fee", "free job carries no fee"),
    (lambda: completion_spec(fee=-1), "fee", "outside"),
    (lambda: completion_spec(deadline=2**32), "deadline", "outside"),
    (lambda: completion_spec(nonce=-1), "nonce", "outside"),
    (lambda: completion_spec(nonce=True), "nonce", "integer"),
    (lambda: completion_spec(requester=b"\x02" * 32), "requester", "33 bytes"),
    (lambda: completion_spec(requester=b"\x04" + b"\x01" * 32), "requester", "not a valid"),
    (lambda: completion_spec(requester=b"\x02" + b"\xff" * 32), "requester", "not a valid"),
    (lambda: ModelRef("", bytes(32)), "model.name", "empty"),
    (lambda: ModelRef("a\tb", bytes(32)), "model.name", "printable ASCII"),
    (lambda: ModelRef("m", bytes(31)), "model.sha256", "32 bytes"),
    (lambda: SamplingParams(0), "sampling.max_tokens", "outside"),
    (lambda: SamplingParams(1, top_p_micro=1_000_001), "sampling.top_p", "outside"),
    (lambda: SamplingParams(1, temperature_milli=2**32), "sampling.temperature", "outside"),
    (lambda: SamplingParams(1, seed=2**64), "sampling.seed", "outside"),
    (lambda: SamplingParams(1, stop=("",)), "sampling.stop[0]", "empty"),
    (lambda: SamplingParams(1, stop=["x"]), "sampling.stop", "tuple"),  # type: ignore[arg-type]
    (lambda: CompletionInput("\ud800"), "input.prompt", "UTF-8"),
    (lambda: ChatInput(()), "input.messages", "at least one"),
    (lambda: ChatInput((ChatMessage(ChatRole.USER, "x"),), "bad\x00name"), "input.chat_template", "ASCII"),
    (lambda: ChatMessage(2, "x"), "message.role", "ChatRole"),  # type: ignore[arg-type]
    (lambda: EmbedInput(()), "input.inputs", "at least one"),
    (lambda: EmbedInput(("ok", "")), "input.inputs[1]", "empty"),
    (lambda: completion_spec(version=2), "version", "not supported"),
])
def test_constructor_rules(build: object, field: str, fragment: str) -> None:
    assert callable(build)
    with pytest.raises(PouwError) as info:
        build()
    assert info.value.field == field
    assert fragment in info.value.message
    assert info.value.code in (INVALID_FIELD, UNSUPPORTED)


def test_constructor_enforces_hard_caps() -> None:
    with pytest.raises(PouwError) as info:
        SamplingParams(1, stop=("x",) * 33)
    assert info.value.code == LIMIT_EXCEEDED
    assert info.value.field == "sampling.stop"
    with pytest.raises(PouwError, match="max_tokens=131072") as info:
        completion_spec(sampling=SamplingParams(131073))
    assert info.value.code == LIMIT_EXCEEDED


def test_properties() -> None:
    assert SAMPLING.temperature == 0.7
    assert SAMPLING.top_p == 0.95
    assert not SAMPLING.greedy
    assert SamplingParams(5).greedy
    assert MODEL.to_json()["sha256"] == bytes(range(32)).hex()  # forward hex, as sha256sum prints
