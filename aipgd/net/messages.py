"""Payloads of every P2P message AIPG Core speaks, as immutable objects with exact encodings.

Owns one frozen class per command (Core: NetMsgType) with `serialize()` and `read()`, and
`decode_message`, which turns a checked frame's payload into one of them. Counts and lengths are
bounded here (ByteReader), so a forged count never allocates. It must never act on a message:
protocol rules that need state (limits that earn misbehaviour, ordering) live in aipgd.net.processing.
Like Core, bytes after the fields a command defines are ignored (older and newer peers interoperate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aipgd.core.block import Block, BlockHeader
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_i32,
    ser_i64,
    ser_u8,
    ser_u32,
    ser_u64,
    ser_var_bytes,
    ser_var_str,
    ser_vector,
)
from aipgd.core.transaction import Transaction
from aipgd.net.blockmessages import (
    AssetData,
    AssetNotFound,
    BlockTxn,
    CmpctBlock,
    GetAssetData,
    GetBlockTxn,
    PrefilledTransaction,
)
from aipgd.net.message_base import DecodeContext, EmptyMessage, Message
from aipgd.net.netaddress import NetAddr, Service
from aipgd.net.protocol import (
    COMMAND_SIZE,
    MAX_BLOOM_FILTER_SIZE,
    MAX_REJECT_MESSAGE_LENGTH,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SUBVERSION_LENGTH,
    ProtocolError,
)

_HEADER_MIN = 80


class Verack(EmptyMessage):
    command = "verack"


class GetAddr(EmptyMessage):
    command = "getaddr"


class MempoolRequest(EmptyMessage):
    command = "mempool"


class SendHeaders(EmptyMessage):
    command = "sendheaders"


class FilterClear(EmptyMessage):
    command = "filterclear"


# --- addresses ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NetworkAddress:
    """An address as version carries it: services and IP:port, no time (Core: CAddress, no nTime)."""

    services: int
    service: Service

    def serialize(self) -> bytes:
        return ser_u64(self.services) + self.service.serialize()

    @classmethod
    def read(cls, r: ByteReader) -> NetworkAddress:
        return cls(r.u64("address services"), Service.read(r))


@dataclass(frozen=True, slots=True)
class TimedAddress:
    """An address in an addr message (Core: CAddress with nTime, CADDR_TIME_VERSION on)."""

    time: int
    services: int
    service: Service

    def serialize(self) -> bytes:
        return ser_u32(self.time) + ser_u64(self.services) + self.service.serialize()

    @classmethod
    def read(cls, r: ByteReader) -> TimedAddress:
        return cls(r.u32("address time"), r.u64("address services"), Service.read(r))


@dataclass(frozen=True, slots=True)
class Version(Message):
    command: ClassVar[str] = "version"
    version: int
    services: int
    timestamp: int
    addr_recv: NetworkAddress
    addr_from: NetworkAddress
    nonce: int
    user_agent: str
    start_height: int
    relay: bool = True

    def serialize(self) -> bytes:
        return (ser_i32(self.version) + ser_u64(self.services) + ser_i64(self.timestamp)
                + self.addr_recv.serialize() + self.addr_from.serialize() + ser_u64(self.nonce)
                + ser_var_str(self.user_agent) + ser_i32(self.start_height) + ser_u8(int(self.relay)))

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Version:
        version = r.i32("version nVersion")
        services = r.u64("version nServices")
        timestamp = r.i64("version nTime")
        addr_recv = NetworkAddress.read(r)
        # Core: the remaining fields are optional, each read only when bytes remain.
        addr_from = NetworkAddress(0, Service(NetAddr(bytes(16)), 0))
        nonce, user_agent, start_height, relay = 1, "", -1, True
        if r.remaining:
            addr_from = NetworkAddress.read(r)
            nonce = r.u64("version nonce")
        if r.remaining:
            raw = r.var_bytes("version user agent", MAX_SUBVERSION_LENGTH)
            user_agent = raw.decode("utf-8", "replace")
        if r.remaining:
            start_height = r.i32("version start height")
        if r.remaining:
            relay = r.u8("version relay") != 0
        return cls(version, services, timestamp, addr_recv, addr_from, nonce, user_agent, start_height, relay)


@dataclass(frozen=True, slots=True)
class Ping(Message):
    command: ClassVar[str] = "ping"
    nonce: int

    def serialize(self) -> bytes:
        return ser_u64(self.nonce)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Ping:
        # BIP31: older peers send an empty ping; no pong is expected then (nonce 0 here).
        return cls(r.u64("ping nonce") if r.remaining >= 8 else 0)


@dataclass(frozen=True, slots=True)
class Pong(Message):
    command: ClassVar[str] = "pong"
    nonce: int

    def serialize(self) -> bytes:
        return ser_u64(self.nonce)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Pong:
        return cls(r.u64("pong nonce"))


@dataclass(frozen=True, slots=True)
class Addr(Message):
    command: ClassVar[str] = "addr"
    addresses: tuple[TimedAddress, ...]

    def serialize(self) -> bytes:
        return ser_vector(self.addresses, TimedAddress.serialize)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Addr:
        return cls(tuple(r.vector(TimedAddress.read, "addr", 30)))


# --- inventory ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Inventory:
    type: int
    hash: bytes

    def serialize(self) -> bytes:
        return ser_u32(self.type) + self.hash

    @classmethod
    def read(cls, r: ByteReader) -> Inventory:
        return cls(r.u32("inv type"), r.hash256("inv hash"))


@dataclass(frozen=True, slots=True)
class Inv(Message):
    command: ClassVar[str] = "inv"
    items: tuple[Inventory, ...]

    def serialize(self) -> bytes:
        return ser_vector(self.items, Inventory.serialize)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Inv:
        return cls(tuple(r.vector(Inventory.read, cls.command, 36)))


@dataclass(frozen=True, slots=True)
class GetData(Inv):
    command: ClassVar[str] = "getdata"


@dataclass(frozen=True, slots=True)
class NotFound(Inv):
    command: ClassVar[str] = "notfound"


# --- headers and blocks ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GetHeaders(Message):
    command: ClassVar[str] = "getheaders"
    version: int
    locator: tuple[bytes, ...]
    hash_stop: bytes

    def serialize(self) -> bytes:
        return ser_u32(self.version) + ser_vector(self.locator, bytes) + self.hash_stop

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> GetHeaders:
        version = r.u32(f"{cls.command} version")
        locator = r.vector(lambda rr: rr.hash256("locator hash"), f"{cls.command} locator", 32)
        return cls(version, tuple(locator), r.hash256(f"{cls.command} hash_stop"))


@dataclass(frozen=True, slots=True)
class GetBlocks(GetHeaders):
    command: ClassVar[str] = "getblocks"


@dataclass(frozen=True, slots=True)
class Headers(Message):
    """Headers, each followed by a transaction count of 0 (Core sends them as empty CBlocks)."""

    command: ClassVar[str] = "headers"
    headers: tuple[BlockHeader, ...]

    def serialize(self) -> bytes:
        return ser_vector(self.headers, lambda h: h.serialize() + b"\x00")

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Headers:
        def read_one(rr: ByteReader) -> BlockHeader:
            header = BlockHeader.read(rr, ctx.kawpow_activation_time)
            rr.compact_size("headers tx count")  # Core: ignored, assumed 0
            return header
        return cls(tuple(r.vector(read_one, "headers", _HEADER_MIN + 1)))


@dataclass(frozen=True, slots=True)
class BlockMessage(Message):
    command: ClassVar[str] = "block"
    block: Block

    def serialize(self) -> bytes:
        return self.block.serialize()

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> BlockMessage:
        return cls(Block.read(r, ctx.kawpow_activation_time))


@dataclass(frozen=True, slots=True)
class TxMessage(Message):
    command: ClassVar[str] = "tx"
    tx: Transaction

    def serialize(self) -> bytes:
        return self.tx.serialize()

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> TxMessage:
        return cls(Transaction.read(r))


@dataclass(frozen=True, slots=True)
class MerkleBlock(Message):
    """BIP37 filtered block; parsed for completeness, never requested (we do not serve NODE_BLOOM)."""

    command: ClassVar[str] = "merkleblock"
    header: BlockHeader
    total_transactions: int
    hashes: tuple[bytes, ...]
    flags: bytes

    def serialize(self) -> bytes:
        return (self.header.serialize() + ser_u32(self.total_transactions) + ser_vector(self.hashes, bytes)
                + ser_var_bytes(self.flags))

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> MerkleBlock:
        header = BlockHeader.read(r, ctx.kawpow_activation_time)
        total = r.u32("merkleblock total")
        hashes = r.vector(lambda rr: rr.hash256("merkleblock hash"), "merkleblock hashes", 32)
        return cls(header, total, tuple(hashes), r.var_bytes("merkleblock flags"))


# --- small announcements -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FeeFilter(Message):
    command: ClassVar[str] = "feefilter"
    feerate: int  # satoshis per 1000 bytes

    def serialize(self) -> bytes:
        return ser_i64(self.feerate)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> FeeFilter:
        return cls(r.i64("feefilter rate"))


@dataclass(frozen=True, slots=True)
class SendCmpct(Message):
    command: ClassVar[str] = "sendcmpct"
    announce: bool
    version: int

    def serialize(self) -> bytes:
        return ser_u8(int(self.announce)) + ser_u64(self.version)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> SendCmpct:
        return cls(r.u8("sendcmpct announce") != 0, r.u64("sendcmpct version"))


@dataclass(frozen=True, slots=True)
class Reject(Message):
    command: ClassVar[str] = "reject"
    message: str
    code: int
    reason: str
    data: bytes = b""  # the rejected block or tx hash, for those two commands

    def serialize(self) -> bytes:
        return ser_var_str(self.message) + ser_u8(self.code) + ser_var_str(self.reason) + self.data

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> Reject:
        message = r.var_bytes("reject message", COMMAND_SIZE).decode("ascii", "replace")
        code = r.u8("reject code")
        reason = r.var_bytes("reject reason", MAX_REJECT_MESSAGE_LENGTH).decode("utf-8", "replace")
        data = r.hash256("reject hash") if message in ("block", "tx") and r.remaining >= 32 else b""
        return cls(message, code, reason, data)


@dataclass(frozen=True, slots=True)
class FilterLoad(Message):
    command: ClassVar[str] = "filterload"
    filter: bytes
    hash_funcs: int
    tweak: int
    flags: int

    def serialize(self) -> bytes:
        return (ser_var_bytes(self.filter) + ser_u32(self.hash_funcs) + ser_u32(self.tweak)
                + ser_u8(self.flags))

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> FilterLoad:
        data = r.var_bytes("filterload filter", MAX_BLOOM_FILTER_SIZE)
        return cls(data, r.u32("filterload nHashFuncs"), r.u32("filterload nTweak"), r.u8("filterload flags"))


@dataclass(frozen=True, slots=True)
class FilterAdd(Message):
    command: ClassVar[str] = "filteradd"
    data: bytes

    def serialize(self) -> bytes:
        return ser_var_bytes(self.data)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> FilterAdd:
        return cls(r.var_bytes("filteradd data", MAX_SCRIPT_ELEMENT_SIZE))


@dataclass(frozen=True, slots=True)
class UnknownMessage(Message):
    """A command we do not know; Core logs it and carries on."""

    command: ClassVar[str] = ""
    name: str
    payload: bytes

    def serialize(self) -> bytes:
        return self.payload

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> UnknownMessage:
        """The whole payload, unparsed; `decode_message` names the command it came with."""
        return cls("", r.read(r.remaining, "unknown message payload"))


__all__ = [
    "Addr", "AssetData", "AssetNotFound", "BlockMessage", "BlockTxn", "CmpctBlock", "DecodeContext",
    "FeeFilter", "FilterAdd", "FilterClear", "FilterLoad", "GetAddr", "GetAssetData", "GetBlockTxn",
    "GetBlocks", "GetData", "GetHeaders", "Headers", "Inv", "Inventory", "MempoolRequest", "MerkleBlock",
    "Message", "NetworkAddress", "NotFound", "Ping", "Pong", "PrefilledTransaction", "Reject", "SendCmpct",
    "SendHeaders", "TimedAddress", "TxMessage", "UnknownMessage", "Verack", "Version", "command_of",
    "decode_message",
]

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.command: cls for cls in (
        Version, Verack, Addr, Inv, GetData, MerkleBlock, GetBlocks, GetHeaders, TxMessage, Headers,
        BlockMessage, GetAddr, MempoolRequest, Ping, Pong, NotFound, FilterLoad, FilterAdd, FilterClear,
        Reject, SendHeaders, FeeFilter, SendCmpct, CmpctBlock, GetBlockTxn, BlockTxn, GetAssetData,
        AssetData, AssetNotFound,
    )
}


def command_of(message: Message) -> str:
    return message.name if isinstance(message, UnknownMessage) else message.command


def decode_message(command: str, payload: bytes, ctx: DecodeContext) -> Message:
    """Parse a frame's payload; malformed input raises ProtocolError (never another exception).

    The framing was sound, so the stream stays in step: the error costs misbehaviour (20, as
    Core scores oversized vectors) but does not by itself end the connection.
    """
    cls = MESSAGE_TYPES.get(command) or ctx.extensions.get(command)
    if cls is None:
        return UnknownMessage(command, payload)  # no parsing: keep the bytes under their command
    try:
        return cls.read(ByteReader(payload), ctx)
    except DeserializationError as exc:
        raise ProtocolError(f"malformed {command} message: {exc}", score=20, disconnect=False) from None
