"""PoUW P2P messages: exact round trips, hard caps before allocation, link-bound signed adverts, and
numbers (commands, inventory types, service bit) that cannot clash with AIPG Core's."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pouw_factories import (
    REQUESTER,
    VALIDATOR,
    WORKER,
    attestation,
    completion_spec,
    embed_receipt,
    embed_spec,
    token_receipt,
)

from aipgd.core.params import get_params
from aipgd.core.serialize import (
    MAX_PROTOCOL_MESSAGE_LENGTH,
    ByteReader,
    DeserializationError,
    ser_compact_size,
    ser_u32,
    ser_u64,
)
from aipgd.net import messages as m
from aipgd.net.protocol import (
    COMMAND_SIZE,
    MSG_BLOCK,
    MSG_CMPCT_BLOCK,
    MSG_FILTERED_BLOCK,
    MSG_POUW_ATTESTATION,
    MSG_POUW_RECEIPT,
    MSG_TX,
    MSG_TYPE_MASK,
    MSG_WITNESS_FLAG,
    NODE_BLOOM,
    NODE_GETUTXO,
    NODE_NETWORK,
    NODE_POUW,
    NODE_WITNESS,
    NODE_XTHIN,
    POUW_PAYLOAD_LIMITS,
    FrameDecoder,
    ProtocolError,
    frame,
)
from pouw import wire
from pouw.jobspec import ChatInput, ChatMessage, ChatRole, JobSpec, ModelRef, SamplingParams, Tier
from pouw.limits import HARD_LIMITS
from pouw.receipt import ExecutionFacts, FinishReason, Receipt, Timings, TokenOutput, Usage
from pouw.signing import CAPS_TAG, PouwKey, sign_attestation, sign_receipt, sign_requester_ack
from pouw.wire import (
    MAX_TOKEN_TEXT_BYTES,
    POUW_MESSAGE_TYPES,
    ModelCapability,
    PouwAttestationMessage,
    PouwCancel,
    PouwCapsMessage,
    PouwErrorMessage,
    PouwJob,
    PouwReceiptMessage,
    PouwResult,
    PouwToken,
    WorkerCaps,
    split_text,
)

REGTEST = get_params("regtest")
POUW_CTX = m.DecodeContext(REGTEST.kawpow_activation_time, POUW_MESSAGE_TYPES, POUW_PAYLOAD_LIMITS)
CORE_CTX = m.DecodeContext(REGTEST.kawpow_activation_time)
MODEL_CAP = ModelCapability("tiny-llama-2l", bytes(range(32)), 2048)


def caps(nonce: int = 7, key: PouwKey = WORKER, **changes: object) -> WorkerCaps:
    unsigned = WorkerCaps(key.pubkey, (MODEL_CAP,), 2, 12_500, "llama.cpp", 1_800_000_000, nonce, 1)
    return replace(unsigned, **changes).signed(key) if changes else unsigned.signed(key)  # type: ignore[arg-type]


def samples() -> list[m.Message]:
    receipt = sign_receipt(token_receipt(), WORKER)
    return [
        PouwCapsMessage(caps()),
        PouwJob(1, completion_spec(), True),
        PouwJob(2**64 - 1, completion_spec(), False),
        PouwToken(5, 0, "Once upon"),
        PouwResult(5, receipt, " there was"),
        PouwResult(6, sign_receipt(embed_receipt(), WORKER), "", ((0.5, -1.0, 2.0), (0.0, 0.25, 1.5))),
        PouwErrorMessage(7, "busy", "3 jobs of this peer are running"),
        PouwCancel(8),
        PouwReceiptMessage(receipt, completion_spec()),
        PouwAttestationMessage(sign_attestation(attestation(), VALIDATOR)),
    ]


@pytest.mark.parametrize("message", samples(), ids=lambda x: type(x).__name__)
def test_every_pouw_message_round_trips_byte_exactly(message: m.Message) -> None:
    raw = message.serialize()
    assert len(raw) <= POUW_PAYLOAD_LIMITS[message.command]
    decoded = m.decode_message(message.command, raw, POUW_CTX)
    assert decoded == message
    assert decoded.serialize() == raw


def test_commands_fit_the_frame_and_every_command_has_a_cap() -> None:
    assert set(POUW_MESSAGE_TYPES) == set(POUW_PAYLOAD_LIMITS)
    for command in POUW_MESSAGE_TYPES:
        assert len(command) <= COMMAND_SIZE
        assert command not in m.MESSAGE_TYPES


def test_inventory_types_and_service_bit_cannot_clash_with_core() -> None:
    core_types = {MSG_TX, MSG_BLOCK, MSG_FILTERED_BLOCK, MSG_CMPCT_BLOCK, 5}  # 5: Core's later MSG_WTX
    for inv_type in (MSG_POUW_RECEIPT, MSG_POUW_ATTESTATION):
        assert inv_type & MSG_WITNESS_FLAG == 0 and inv_type >> 31 == 0
        assert inv_type & MSG_TYPE_MASK not in core_types
        assert inv_type not in {t | MSG_WITNESS_FLAG for t in core_types}
    # Core's bits, with the later NODE_COMPACT_FILTERS (6), NODE_NETWORK_LIMITED (10), NODE_P2P_V2 (11).
    core_bits = (NODE_NETWORK | NODE_GETUTXO | NODE_BLOOM | NODE_WITNESS | NODE_XTHIN
                 | (1 << 6) | (1 << 10) | (1 << 11))
    assert NODE_POUW & core_bits == 0
    assert 24 <= NODE_POUW.bit_length() - 1 <= 31  # Core reserves bits 24..31 for experiments


def test_a_node_without_pouw_leaves_the_commands_unknown_as_core_does() -> None:
    message = PouwCancel(8)
    decoded = m.decode_message("pouwcancel", message.serialize(), CORE_CTX)
    assert isinstance(decoded, m.UnknownMessage)
    assert m.command_of(decoded) == "pouwcancel"
    # Not even a broken payload costs anything there.
    assert isinstance(m.decode_message("pouwcaps", b"\xff", CORE_CTX), m.UnknownMessage)


@pytest.mark.parametrize("message", samples(), ids=lambda x: type(x).__name__)
def test_truncated_or_padded_payloads_are_malformed(message: m.Message) -> None:
    raw = message.serialize()
    for bad in (raw[:-1], raw + b"\x00", b""):
        with pytest.raises(ProtocolError) as info:
            m.decode_message(message.command, bad, POUW_CTX)
        assert info.value.score == 20 and not info.value.disconnect


def test_oversized_pouw_frames_are_refused_on_the_header_before_the_payload() -> None:
    magic = REGTEST.message_start
    limit = POUW_PAYLOAD_LIMITS["pouwtoken"]
    decoder = FrameDecoder(magic, POUW_PAYLOAD_LIMITS)
    header_only = frame(magic, "pouwtoken", bytes(limit + 1))[:24]
    with pytest.raises(ProtocolError, match="oversized pouwtoken"):
        decoder.feed(header_only)
    # At the cap it passes; a node without PoUW keeps Core's 4 MB rule for the unknown command.
    assert FrameDecoder(magic, POUW_PAYLOAD_LIMITS).feed(frame(magic, "pouwtoken", bytes(limit)))
    assert FrameDecoder(magic).feed(frame(magic, "pouwtoken", bytes(limit + 1)))


def test_caps_signature_is_bound_to_key_content_and_link() -> None:
    advert = caps(nonce=99)
    assert advert.verify()
    assert advert.deterministic and advert.tokens_per_second == 12.5
    assert not replace(advert, link_nonce=100).verify()
    assert not replace(advert, max_concurrency=3).verify()
    assert not replace(advert, signature=b"").verify()
    other = PouwKey(bytes.fromhex("44" * 32))
    forged = replace(advert, signature=caps(nonce=99, key=other).signature)
    assert not forged.verify()
    with pytest.raises(Exception, match="worker key"):
        advert.signed(other)


def test_caps_field_rules() -> None:
    with pytest.raises(Exception, match="models"):
        caps(models=())
    with pytest.raises(Exception, match="max_concurrency"):
        caps(max_concurrency=0)
    with pytest.raises(Exception, match="printable"):
        caps(backend="llama\ncpp")


def test_caps_model_count_is_capped_before_reading_models() -> None:
    raw = bytearray(caps().serialize())
    # version(1) + pubkey(33), then the model vector's compact-size count.
    raw[34:35] = ser_compact_size(65)
    with pytest.raises(ProtocolError, match="exceeds limit"):
        m.decode_message("pouwcaps", bytes(raw), POUW_CTX)


def test_result_vectors_must_fill_the_payload_exactly() -> None:
    receipt = sign_receipt(embed_receipt(), WORKER)
    head = ser_u64(1) + receipt.serialize() + b"\x00"
    for count, dims, body in ((2, 3, bytes(23)), (2, 3, bytes(25)), (0, 3, b""), (5000, 1, bytes(20000)),
                              (0xFFFFFFFF, 0xFFFFFFFF, b"")):
        with pytest.raises(ProtocolError, match="vectors"):
            m.decode_message("pouwresult", head + ser_u32(count) + ser_u32(dims) + body, POUW_CTX)


def test_token_text_cap_and_split_text_never_breaks_a_character() -> None:
    n = MAX_TOKEN_TEXT_BYTES + 1
    too_long = ser_u64(1) + ser_u32(0) + ser_compact_size(n) + b"a" * n
    with pytest.raises(ProtocolError):
        m.decode_message("pouwtoken", too_long, POUW_CTX)
    text = "ab€𝄞" * 3000
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(0 < len(p.encode()) <= MAX_TOKEN_TEXT_BYTES for p in pieces)
    assert split_text("") == []


def test_error_code_is_an_identifier() -> None:
    raw = ser_u64(1) + ser_compact_size(4) + b"b\x00sy" + ser_compact_size(0)
    with pytest.raises(ProtocolError, match="printable"):
        m.decode_message("pouwerror", raw, POUW_CTX)


def test_job_stream_flag_is_canonical() -> None:
    raw = bytearray(PouwJob(1, completion_spec(), True).serialize())
    raw[-1] = 2
    with pytest.raises(ProtocolError, match="0 or 1"):
        m.decode_message("pouwjob", bytes(raw), POUW_CTX)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(POUW_MESSAGE_TYPES)), st.binary(max_size=600))
def test_arbitrary_payloads_only_raise_protocol_error(command: str, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        m.decode_message(command, payload, POUW_CTX)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_valid_payloads_only_raise_protocol_error(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(samples()))
    raw = bytearray(message.serialize())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        m.decode_message(message.command, bytes(raw), POUW_CTX)


def test_decoded_caps_reject_non_canonical_bytes_directly() -> None:
    r = ByteReader(b"\x02" + caps().serialize()[1:])
    with pytest.raises(DeserializationError, match="unsupported version"):
        WorkerCaps.read(r)


def test_a_receipt_travels_with_its_job_in_one_pouwrcpt() -> None:
    receipt = sign_receipt(token_receipt(), WORKER)
    spec = completion_spec()
    message = PouwReceiptMessage(receipt, spec)
    raw = message.serialize()
    assert raw == receipt.serialize() + spec.serialize()  # receipt first: its id is the inventory hash
    # The decoder checks the layout, not the pairing: a job that the receipt does not answer still
    # decodes (the receiver scores it), but a receipt alone is no longer a pouwrcpt.
    other = m.decode_message("pouwrcpt", receipt.serialize() + embed_spec().serialize(), POUW_CTX)
    assert isinstance(other, PouwReceiptMessage) and other.spec == embed_spec()
    with pytest.raises(ProtocolError):
        m.decode_message("pouwrcpt", receipt.serialize(), POUW_CTX)


def test_the_largest_receipt_with_the_largest_job_fits_the_pouwrcpt_cap() -> None:
    h = HARD_LIMITS
    stop = tuple("s" * (h.max_stop_bytes - 1) + chr(0x41 + i) for i in range(h.max_stop_strings))
    sampling = SamplingParams(max_tokens=h.max_tokens, temperature_milli=h.max_temperature_milli,
                              top_k=2**32 - 1, top_p_micro=1_000_000, seed=2**64 - 1, stop=stop)
    # The input budget spread over the most messages costs the most length prefixes.
    each = h.max_prompt_bytes // h.max_messages
    messages = tuple(ChatMessage(ChatRole.USER, "x" * each) for _ in range(h.max_messages))
    spec = JobSpec(ModelRef("m" * h.max_model_name_bytes, bytes(32)),
                   ChatInput(messages, "t" * h.max_chat_template_bytes), sampling, deadline=2**32 - 1,
                   nonce=2**64 - 1, tier=Tier.PAID, requester=REQUESTER.pubkey, fee=h.max_fee)
    receipt = Receipt(spec.id, WORKER.pubkey, spec.model.sha256, spec.input_hash,
                      TokenOutput.from_text([2**32 - 1] * h.max_tokens, "z"), FinishReason.LENGTH,
                      Usage(2**32 - 1, h.max_tokens), Timings(2**32 - 1, 2**32 - 1, 2**32 - 1),
                      ExecutionFacts("b" * h.max_backend_bytes, "v" * h.max_backend_bytes, h.max_threads,
                                     True, sampling), 0, 2**32 - 1)
    receipt = sign_requester_ack(sign_receipt(receipt, WORKER), REQUESTER)
    receipt.check_matches(spec)
    raw = PouwReceiptMessage(receipt, spec).serialize()
    assert 2_500_000 < len(raw) <= POUW_PAYLOAD_LIMITS["pouwrcpt"] == MAX_PROTOCOL_MESSAGE_LENGTH
    assert m.decode_message("pouwrcpt", raw, POUW_CTX) == PouwReceiptMessage(receipt, spec)


def test_the_caps_tag_is_a_signing_tag_beside_the_others() -> None:
    assert wire.CAPS_TAG is CAPS_TAG == b"aipg-pouw/caps/v1"
