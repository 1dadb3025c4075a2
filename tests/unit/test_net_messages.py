"""P2P codec: every message round-trips byte-exactly, framing is checked before payloads, and
arbitrary bytes only ever raise ProtocolError."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import get_params
from aipgd.core.serialize import ByteReader, ser_compact_size
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.net import messages as m
from aipgd.net.netaddress import NetAddr, Service
from aipgd.net.protocol import (
    HEADER_SIZE,
    MAX_BLOCK_MESSAGE_LENGTH,
    MAX_PROTOCOL_MESSAGE_LENGTH,
    PROTOCOL_VERSION,
    FrameDecoder,
    ProtocolError,
    frame,
)

REGTEST = get_params("regtest")
MAIN = get_params("main")
CTX = m.DecodeContext(MAIN.kawpow_activation_time)
MAGIC = MAIN.message_start
GENESIS: Block = MAIN.genesis
LEGACY_HEADER = GENESIS.header
KAWPOW_HEADER = BlockHeader(0x30000000, b"\x11" * 32, b"\x22" * 32, MAIN.kawpow_activation_time + 60,
                            0x1D00FFFF, height=1234, nonce64=0x0123456789ABCDEF, mix_hash=b"\x33" * 32,
                            kawpow=True)
TX = Transaction(version=2, vin=(TxIn(OutPoint(b"\x44" * 32, 1), b"\x51", 0xFFFFFFFE),),
                 vout=(TxOut(1000, b"\x6a"),), locktime=7)
SERVICE4 = Service(NetAddr.parse("1.2.3.4"), 8865)
SERVICE6 = Service(NetAddr.parse("2001:470::1"), 18865)


def _version() -> m.Version:
    return m.Version(PROTOCOL_VERSION, 9, 1_700_000_000, m.NetworkAddress(1, SERVICE4),
                     m.NetworkAddress(9, SERVICE6), 0xDEADBEEF, "/aipgd:0.1.0/", 12345, False)


SAMPLES: list[m.Message] = [
    _version(), m.Verack(), m.GetAddr(), m.MempoolRequest(), m.SendHeaders(), m.FilterClear(),
    m.Ping(42), m.Pong(2**64 - 1),
    m.Addr((m.TimedAddress(1_700_000_000, 1, SERVICE4), m.TimedAddress(5, 9, SERVICE6))),
    m.Inv((m.Inventory(1, b"\x01" * 32), m.Inventory(2 | 1 << 30, b"\x02" * 32))),
    m.GetData((m.Inventory(2, b"\x03" * 32),)), m.NotFound(()),
    m.GetHeaders(PROTOCOL_VERSION, (b"\x04" * 32, b"\x05" * 32), b"\x00" * 32),
    m.GetBlocks(PROTOCOL_VERSION, (b"\x06" * 32,), b"\x07" * 32),
    m.Headers((LEGACY_HEADER, KAWPOW_HEADER)), m.Headers(()),
    m.BlockMessage(GENESIS), m.BlockMessage(Block(KAWPOW_HEADER, (TX,))), m.TxMessage(TX),
    m.MerkleBlock(KAWPOW_HEADER, 3, (b"\x08" * 32,), b"\x01"),
    m.FeeFilter(1000), m.SendCmpct(False, 2), m.SendCmpct(True, 1),
    m.Reject("tx", 0x10, "bad-txns-inputs-missingorspent", b"\x09" * 32), m.Reject("version", 0x11, "old"),
    m.FilterLoad(b"\xff" * 10, 5, 77, 1), m.FilterAdd(b"\x00" * 20),
    m.CmpctBlock(KAWPOW_HEADER, 99, (0xFFFFFFFFFFFF, 1, 0x123456789A),
                 (m.PrefilledTransaction(0, TX), m.PrefilledTransaction(5, TX))),
    m.GetBlockTxn(b"\x0a" * 32, (0, 1, 7, 65535)), m.BlockTxn(b"\x0b" * 32, (TX, TX)),
    m.GetAssetData(("AIPG_TOKEN", "ABC/SUB")), m.AssetNotFound(("NOPE",)),
    m.AssetData("ASSET", 100 * 10**8, 8, 1, 1, "Qm" + "a" * 44, 5000),
]


def test_every_core_command_has_a_sample() -> None:
    assert {m.command_of(s) for s in SAMPLES} == set(m.MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: m.command_of(s))
def test_round_trip(message: m.Message) -> None:
    payload = message.serialize()
    decoded = m.decode_message(message.command, payload, CTX)
    assert decoded == message
    assert decoded.serialize() == payload
    # And through the framing layer.
    decoder = FrameDecoder(MAGIC)
    raw = frame(MAGIC, message.command, payload)
    assert decoder.feed(raw[:7]) == []
    assert decoder.feed(raw[7:]) == [(message.command, payload)]


def test_version_layout_matches_core() -> None:
    raw = _version().serialize()
    assert struct.unpack_from("<iQq", raw) == (PROTOCOL_VERSION, 9, 1_700_000_000)
    # addr_recv: services, ::ffff:1.2.3.4, big-endian port
    assert raw[20:28] == struct.pack("<Q", 1)
    assert raw[28:44] == bytes(10) + b"\xff\xff\x01\x02\x03\x04"
    assert raw[44:46] == (8865).to_bytes(2, "big")
    assert raw[-1] == 0 and raw[-5:-1] == struct.pack("<i", 12345)


def test_version_optional_tail_fields() -> None:
    # Core reads addr_from/nonce, subver, start height and relay only while bytes remain.
    full = _version().serialize()
    short = m.decode_message("version", full[:46], CTX)
    assert isinstance(short, m.Version) and short.start_height == -1 and short.relay and short.nonce == 1
    no_relay = m.decode_message("version", full[:-1], CTX)
    assert isinstance(no_relay, m.Version) and no_relay.relay and no_relay.start_height == 12345


def test_headers_carry_zero_tx_count_and_kawpow_length() -> None:
    raw = m.Headers((KAWPOW_HEADER,)).serialize()
    assert raw == b"\x01" + KAWPOW_HEADER.serialize() + b"\x00"
    assert len(raw) == 1 + 120 + 1


def test_compact_indexes_are_differential() -> None:
    raw = m.GetBlockTxn(b"\x00" * 32, (0, 1, 7)).serialize()
    assert raw[32:] == bytes((3, 0, 0, 5))
    overflow = b"\x00" * 32 + bytes((2,)) + b"\xfd\xff\xff" + b"\x00"
    with pytest.raises(ProtocolError, match="overflowed"):
        m.decode_message("getblocktxn", overflow, CTX)


def test_malformed_payload_is_a_soft_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        m.decode_message("pong", b"\x01", CTX)
    assert info.value.score == 20 and not info.value.disconnect


def test_forged_count_does_not_allocate() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        m.decode_message("inv", ser_compact_size(MAX_PROTOCOL_MESSAGE_LENGTH), CTX)


def test_unknown_command_is_kept_not_rejected() -> None:
    decoded = m.decode_message("checkpoint", b"xyz", CTX)
    assert isinstance(decoded, m.UnknownMessage) and decoded.name == "checkpoint"


# --- framing -----------------------------------------------------------------------------------------

def _header(magic: bytes, command: bytes, length: int, check: bytes = b"\x00" * 4) -> bytes:
    return magic + command.ljust(12, b"\x00") + struct.pack("<I", length) + check


def test_wrong_magic_rejected_before_payload() -> None:
    with pytest.raises(ProtocolError, match="message start") as info:
        FrameDecoder(MAGIC).feed(_header(REGTEST.message_start, b"ping", 8))
    assert info.value.disconnect and info.value.score == 100


def test_bad_checksum_rejected() -> None:
    raw = bytearray(frame(MAGIC, "ping", struct.pack("<Q", 1)))
    raw[HEADER_SIZE - 1] ^= 1
    with pytest.raises(ProtocolError, match="checksum"):
        FrameDecoder(MAGIC).feed(bytes(raw))


def test_oversized_length_rejected_from_the_header_alone() -> None:
    with pytest.raises(ProtocolError, match="oversized"):
        FrameDecoder(MAGIC).feed(_header(MAGIC, b"ping", MAX_PROTOCOL_MESSAGE_LENGTH + 1))
    # Block-carrying messages may be as large as a post-HIP2 block.
    assert FrameDecoder(MAGIC).feed(_header(MAGIC, b"block", MAX_BLOCK_MESSAGE_LENGTH)) == []
    with pytest.raises(ProtocolError, match="oversized"):
        FrameDecoder(MAGIC).feed(_header(MAGIC, b"block", MAX_BLOCK_MESSAGE_LENGTH + 1))


@pytest.mark.parametrize("command", [b"pi\x00ng", b"ping\x01", b"", b"p\xffg"])
def test_malformed_command_rejected(command: bytes) -> None:
    with pytest.raises(ProtocolError, match="command"):
        FrameDecoder(MAGIC).feed(_header(MAGIC, command, 0))


def test_several_frames_in_one_chunk() -> None:
    raw = frame(MAGIC, "verack", b"") + frame(MAGIC, "ping", struct.pack("<Q", 5))
    assert FrameDecoder(MAGIC).feed(raw) == [("verack", b""), ("ping", struct.pack("<Q", 5))]


# --- fuzz --------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.sampled_from(sorted(m.MESSAGE_TYPES)), st.binary(max_size=300))
def test_decoder_garbage_only_raises_protocol_error(command: str, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        m.decode_message(command, payload, CTX)


@FUZZ
@given(st.sampled_from(SAMPLES), st.integers(min_value=0, max_value=10_000),
       st.binary(min_size=1, max_size=8))
def test_decoder_mutated_samples(message: m.Message, position: int, patch: bytes) -> None:
    payload = bytearray(message.serialize())
    if payload:
        pos = position % len(payload)
        payload[pos:pos + len(patch)] = patch
    for cut in (len(payload), len(payload) // 2):
        with contextlib.suppress(ProtocolError):
            m.decode_message(message.command, bytes(payload[:cut]), CTX)


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_frame_decoder_garbage_only_raises_protocol_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(MAGIC)
    try:
        for chunk in chunks:
            for command, payload in decoder.feed(MAGIC[: len(chunk) % 5] + chunk):
                m.decode_message(command, payload, CTX)
    except ProtocolError:
        pass


def test_unknown_command_keeps_its_payload() -> None:
    message = m.decode_message("assetmagic", b"\x01\x02\x03", CTX)
    assert isinstance(message, m.UnknownMessage)
    assert m.command_of(message) == "assetmagic"
    assert message.serialize() == b"\x01\x02\x03"
    assert m.UnknownMessage.read(ByteReader(b"\x09"), CTX).payload == b"\x09"
