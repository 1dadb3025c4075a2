"""Protocol constants and message framing (Core: version.h, protocol.h, net.h CNetMessage).

Owns the numbers peers agree on (protocol versions, service bits, inventory types, size limits) and
the 24-byte frame: magic, NUL-padded command, payload length, sha256d checksum. The frame decoder
checks magic, command, length and checksum before any payload is handed on. It must never parse
payloads: that is aipgd.net.messages.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import MAX_PROTOCOL_MESSAGE_LENGTH, MAX_SIZE

# Core: version.h (AIPG Core 70028 on top of Ravencoin's protocol history).
PROTOCOL_VERSION = 70028
INIT_PROTO_VERSION = 209
GETHEADERS_VERSION = 31800
CADDR_TIME_VERSION = 31402
BIP0031_VERSION = 60000
NO_BLOOM_VERSION = 70011
SENDHEADERS_VERSION = 70012
FEEFILTER_VERSION = 70013
SHORT_IDS_BLOCKS_VERSION = 70014
INVALID_CB_NO_BAN_VERSION = 70015
ASSETDATA_VERSION = 70017
X16RV2_VERSION = 70025
MESSAGING_RESTRICTED_ASSETS_VERSION = 70026
KAWPOW_VERSION = 70027
MIN_PEER_PROTO_VERSION = X16RV2_VERSION

# Core: protocol.h ServiceFlags.
NODE_NONE = 0
NODE_NETWORK = 1 << 0
NODE_GETUTXO = 1 << 1
NODE_BLOOM = 1 << 2
NODE_WITNESS = 1 << 3
NODE_XTHIN = 1 << 4
# Proof of Useful Work (docs/pouw-protocol.md "Network"): the node speaks the pouw* commands. Bit 24
# lies in the range Core reserves for experiments (24..31), so no Core service bit can ever clash.
NODE_POUW = 1 << 24
# We serve the chain and witness data; bloom filters (BIP37) are not implemented, so never advertised.
LOCAL_SERVICES = NODE_NETWORK | NODE_WITNESS

# Core: protocol.h GetDataMsg.
MSG_WITNESS_FLAG = 1 << 30
MSG_TYPE_MASK = 0xFFFFFFFF >> 2
MSG_TX = 1
MSG_BLOCK = 2
MSG_FILTERED_BLOCK = 3
MSG_CMPCT_BLOCK = 4
MSG_WITNESS_BLOCK = MSG_BLOCK | MSG_WITNESS_FLAG
MSG_WITNESS_TX = MSG_TX | MSG_WITNESS_FLAG
# PoUW inventory: bit 29 set, bits 30/31 clear, so that no Core type (masked or with the witness
# flag) can equal them; only peers that signalled NODE_POUW are sent them.
MSG_POUW_RECEIPT = 0x20000001
MSG_POUW_ATTESTATION = 0x20000002
POUW_INV_TYPES = frozenset({MSG_POUW_RECEIPT, MSG_POUW_ATTESTATION})

# Core: net.h / validation.h / bloom.h limits.
MAX_INV_SZ = 50000
MAX_LOCATOR_SZ = 101
MAX_ASSET_INV_SZ = 1024
MAX_ASSET_LENGTH = 32
MAX_ADDR_TO_SEND = 1000
MAX_SUBVERSION_LENGTH = 256
MAX_REJECT_MESSAGE_LENGTH = 111
MAX_HEADERS_RESULTS = 2000
MAX_BLOOM_FILTER_SIZE = 36000
MAX_HASH_FUNCS = 50
MAX_SCRIPT_ELEMENT_SIZE = 520
# AIPG Core caps every message, blocks included, at MAX_PROTOCOL_MESSAGE_LENGTH (4 MB), although
# blocks may reach 8 MB after HIP2 (consensus.h MAX_BLOCK_SERIALIZED_SIZE_HIP2). We accept
# block-carrying messages up to that consensus size, so that such a block can still reach us;
# a Core peer would drop the connection instead.
MAX_BLOCK_MESSAGE_LENGTH = 8_000_000
BLOCK_CARRYING_COMMANDS = frozenset({"block", "cmpctblock", "blocktxn"})
# The PoUW commands' payload caps, checked on the frame header (before any payload is read) by a
# node that speaks PoUW; a node without a PoUW handler treats them as unknown commands, as Core does.
POUW_PAYLOAD_LIMITS: dict[str, int] = {
    "pouwcaps": 16 * 1024,
    "pouwjob": 512 * 1024,
    "pouwtoken": 4 * 1024,
    "pouwresult": MAX_PROTOCOL_MESSAGE_LENGTH,  # text up to 1 MiB, or embedding vectors
    "pouwerror": 1024,
    "pouwcancel": 64,
    # A receipt with the job it answers: the largest pair the version-1 hard caps allow is ~2.7 MB
    # (a 2 MiB chat job and 131072 output tokens; tests/unit/pouw/test_wire.py builds it).
    "pouwrcpt": MAX_PROTOCOL_MESSAGE_LENGTH,
    "pouwatt": 1024,
}

# Core: reject codes (consensus/validation.h).
REJECT_MALFORMED = 0x01
REJECT_INVALID = 0x10
REJECT_OBSOLETE = 0x11
REJECT_DUPLICATE = 0x12
REJECT_NONSTANDARD = 0x40
REJECT_INSUFFICIENTFEE = 0x42
REJECT_CHECKPOINT = 0x43

MESSAGE_START_SIZE = 4
COMMAND_SIZE = 12
HEADER_SIZE = 24
_HEADER = struct.Struct("<4s12sI4s")


class ProtocolError(Exception):
    """A peer broke the wire protocol; `score` is the misbehaviour it earns (Core: Misbehaving).

    `disconnect` is set when the byte stream can no longer be trusted to be in step (bad framing).
    """

    def __init__(self, message: str, score: int = 100, disconnect: bool = True) -> None:
        super().__init__(message)
        self.score = score
        self.disconnect = disconnect


def max_payload_length(command: str, extra_limits: Mapping[str, int] | None = None) -> int:
    if extra_limits is not None and command in extra_limits:
        return extra_limits[command]
    return MAX_BLOCK_MESSAGE_LENGTH if command in BLOCK_CARRYING_COMMANDS else MAX_PROTOCOL_MESSAGE_LENGTH


def checksum(payload: bytes) -> bytes:
    return sha256d(payload)[:4]


def encode_command(command: str) -> bytes:
    raw = command.encode("ascii")
    if not 0 < len(raw) <= COMMAND_SIZE:
        raise ValueError(f"bad command {command!r}")
    return raw.ljust(COMMAND_SIZE, b"\x00")


def frame(magic: bytes, command: str, payload: bytes) -> bytes:
    """The bytes sent for one message (Core: CConnman::PushMessage)."""
    return _HEADER.pack(magic, encode_command(command), len(payload), checksum(payload)) + payload


def decode_command(raw: bytes) -> str:
    """Core: CMessageHeader::IsValid's command rule: printable ASCII, then only NUL padding."""
    text = raw.rstrip(b"\x00")
    if b"\x00" in text or not text:
        raise ProtocolError("malformed command (NUL inside)")
    if any(c < 0x20 or c > 0x7E for c in text):
        raise ProtocolError("malformed command (non-printable)")
    return text.decode("ascii")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    command: str
    length: int
    checksum: bytes


def parse_frame_header(magic: bytes, raw: bytes,
                       extra_limits: Mapping[str, int] | None = None) -> FrameHeader:
    """Check a 24-byte header before reading the payload it announces; `extra_limits` caps the
    payloads of commands beyond Core's (the PoUW ones, when the node speaks PoUW)."""
    start, command_raw, length, check = _HEADER.unpack(raw)
    if start != magic:
        raise ProtocolError(f"invalid message start {start.hex()}")
    command = decode_command(command_raw)
    if length > MAX_SIZE:
        raise ProtocolError(f"{command} ({length} bytes) exceeds MAX_SIZE")
    if length > max_payload_length(command, extra_limits):
        raise ProtocolError(f"oversized {command} message ({length} bytes)")
    return FrameHeader(command, length, check)


class FrameDecoder:
    """Incremental frame splitter for bytes as they arrive; raises ProtocolError on a bad frame."""

    def __init__(self, magic: bytes, extra_limits: Mapping[str, int] | None = None) -> None:
        self.magic = magic
        self.extra_limits = extra_limits
        self._buf = bytearray()
        self._header: FrameHeader | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buf += data
        out: list[tuple[str, bytes]] = []
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_SIZE:
                    return out
                self._header = parse_frame_header(self.magic, bytes(self._buf[:HEADER_SIZE]),
                                                  self.extra_limits)
                del self._buf[:HEADER_SIZE]
            header = self._header
            if len(self._buf) < header.length:
                return out
            payload = bytes(self._buf[:header.length])
            del self._buf[:header.length]
            self._header = None
            if checksum(payload) != header.checksum:
                raise ProtocolError(f"checksum error in {header.command} message")
            out.append((header.command, payload))
