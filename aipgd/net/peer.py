"""Peer: one P2P connection, with one reader task, one writer task and a bounded send queue.

Owns the connection's byte streams, framing, its per-peer budget (receive buffer, send queue,
misbehaviour score, Core: CNode + CNodeState) and what the handshake learnt about the remote side.
Messages go to the owner's handler one at a time, in order. It must never decide protocol policy
(aipgd.net.processing does) nor open connections or ban (the ConnectionManager does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from aipgd.log import log_print
from aipgd.net.messages import MESSAGE_TYPES, DecodeContext, Message, command_of, decode_message
from aipgd.net.netaddress import Service
from aipgd.net.protocol import HEADER_SIZE, FrameDecoder, ProtocolError, frame
from aipgd.net.syncstate import PeerSyncState

logger = logging.getLogger(__name__)

# Core: net.h PING_INTERVAL, TIMEOUT_INTERVAL, DEFAULT_MAXRECEIVEBUFFER / DEFAULT_MAXSENDBUFFER (x1000 B).
PING_INTERVAL = 2 * 60
TIMEOUT_INTERVAL = 20 * 60
HANDSHAKE_TIMEOUT = 60
DEFAULT_MAX_RECEIVE_BUFFER = 5000
DEFAULT_MAX_SEND_BUFFER = 1000
DEFAULT_BANSCORE_THRESHOLD = 100
_READ_CHUNK = 64 * 1024
# Beyond this many times -maxsendbuffer the peer is not reading at all: drop it.
_SEND_OVERFLOW_FACTOR = 16


class ConnectionType(Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound-full-relay"
    MANUAL = "manual"  # -connect, -addnode
    FEELER = "feeler"
    SEED = "seednode"  # Core: fOneShot, disconnects after getaddr answers


@dataclass(slots=True)
class PeerLimits:
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    ping_interval: float = PING_INTERVAL
    inactivity_timeout: float = TIMEOUT_INTERVAL
    max_receive_buffer: int = DEFAULT_MAX_RECEIVE_BUFFER * 1000
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER * 1000
    ban_score: int = DEFAULT_BANSCORE_THRESHOLD


@dataclass(slots=True)
class RemoteInfo:
    """What the remote side said in its version message (Core: CNode nVersion, nServices, ...)."""

    version: int = 0
    send_version: int = 0
    services: int = 0
    user_agent: str = ""
    start_height: int = -1
    relay: bool = True
    time_offset: int = 0
    addr_local: Service | None = None
    nonce: int = 0  # its version nonce: PoUW capability advertisements are bound to it


@dataclass(slots=True)
class PeerStats:
    connected_at: float = field(default_factory=time.time)
    last_send: float = 0.0
    last_recv: float = 0.0
    bytes_sent: int = 0
    bytes_recv: int = 0
    ping_nonce_sent: int = 0
    ping_start: float = 0.0
    last_ping_time: float = 0.0
    min_ping_time: float = float("inf")
    last_block_time: float = 0.0
    last_tx_time: float = 0.0
    # Core: mapSendBytesPerMsgCmd / mapRecvBytesPerMsgCmd (getpeerinfo), header bytes included.
    bytes_sent_per_msg: dict[str, int] = field(default_factory=dict)
    bytes_recv_per_msg: dict[str, int] = field(default_factory=dict)


MessageHandler = Callable[["Peer", Message], Awaitable[None]]
CloseHandler = Callable[["Peer"], None]


class Peer:
    def __init__(self, peer_id: int, service: Service, conn_type: ConnectionType,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, magic: bytes,
                 decode_ctx: DecodeContext, limits: PeerLimits, whitelisted: bool = False,
                 on_message: MessageHandler, on_close: CloseHandler, on_ban_threshold: CloseHandler,
                 on_sent: Callable[[int], None] | None = None) -> None:
        self.id = peer_id
        self.service = service
        # Core: addrName, the destination string of a connection made by name (through -proxy).
        self.addr_name = ""
        self.conn_type = conn_type
        self.whitelisted = whitelisted
        self.magic = magic
        self.limits = limits
        self.remote = RemoteInfo()
        self.stats = PeerStats()
        self.local_nonce = 0  # the nonce of the version we sent (self-connection detection)
        self.version_sent = False
        self.successfully_connected = False  # verack received (Core: fSuccessfullyConnected)
        self.misbehavior = 0
        self.should_ban = False
        self.disconnect_reason: str | None = None
        self.prefers_headers = False
        self.fee_filter = 0
        self.wants_cmpct = False
        self.get_addr_sent = False
        # A -pouwconnect link: kept open like -addnode, and expected to speak PoUW.
        self.pouw_link = False
        self.sync = PeerSyncState()
        self.ping_requested = False  # the ping RPC: send one at the next maintenance tick
        sockname = writer.get_extra_info("sockname")
        # Core: addrBind, our end of the connection (getpeerinfo's addrbind).
        self.addr_bind = ""
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            host = str(sockname[0])
            self.addr_bind = f"[{host}]:{sockname[1]}" if ":" in host else f"{host}:{sockname[1]}"
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(magic, decode_ctx.payload_limits or None)
        self._ctx = decode_ctx
        self._on_message = on_message
        self._on_close = on_close
        self._on_ban_threshold = on_ban_threshold
        self._on_sent = on_sent
        self._send_queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._send_ready = asyncio.Event()
        self._send_drained = asyncio.Event()
        self._send_drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()

    # --- identity --------------------------------------------------------------------------------------
    @property
    def inbound(self) -> bool:
        return self.conn_type is ConnectionType.INBOUND

    @property
    def manual(self) -> bool:
        return self.conn_type is ConnectionType.MANUAL

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def __repr__(self) -> str:
        return f"Peer(id={self.id}, {self.service}, {self.conn_type.value})"

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._read_loop(), name=f"peer{self.id}-reader"),
                       asyncio.create_task(self._write_loop(), name=f"peer{self.id}-writer")]

    def disconnect(self, reason: str) -> None:
        """Close the connection (Core: fDisconnect); safe to call from any task, more than once."""
        if self._closed.is_set():
            return
        self.disconnect_reason = reason
        self._closed.set()
        log_print(logger, "net", "disconnecting peer=%d: %s", self.id, reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
        self._on_close(self)

    async def wait_closed(self) -> None:
        await self._closed.wait()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    # --- sending ---------------------------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Queue a message; the writer task sends queued messages in order (Core: PushMessage)."""
        if self._closed.is_set():
            return
        payload = message.serialize()
        command = command_of(message)
        self.send_payload(command, payload)

    def send_payload(self, command: str, payload: bytes) -> None:
        """Queue an already serialized payload (a block read from disk in the form asked for)."""
        if self._closed.is_set():
            return
        log_print(logger, "net", "sending %s (%d bytes) peer=%d", command, len(payload), self.id)
        per_msg = self.stats.bytes_sent_per_msg
        per_msg[command] = per_msg.get(command, 0) + len(payload) + HEADER_SIZE
        self.send_raw(frame(self.magic, command, payload))

    async def wait_send_drained(self) -> None:
        """Wait until the send queue is back under -maxsendbuffer (or the peer is gone)."""
        if self._send_drained.is_set() or self._closed.is_set():
            return
        closed = asyncio.ensure_future(self._closed.wait())
        drained = asyncio.ensure_future(self._send_drained.wait())
        try:
            await asyncio.wait((closed, drained), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            drained.cancel()

    def send_raw(self, data: bytes) -> None:
        if self._closed.is_set():
            return
        self._send_queue.append(data)
        self._queued_bytes += len(data)
        self._send_ready.set()
        if self._queued_bytes > self.limits.max_send_buffer:
            self._send_drained.clear()
        if self._queued_bytes > self.limits.max_send_buffer * _SEND_OVERFLOW_FACTOR + 8_000_000:
            self.disconnect("send buffer overflow (peer is not reading)")

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._send_ready.wait()
                while self._send_queue:
                    data = self._send_queue.popleft()
                    self._writer.write(data)
                    await self._writer.drain()
                    self._queued_bytes -= len(data)
                    self.stats.last_send = time.time()
                    self.stats.bytes_sent += len(data)
                    if self._on_sent is not None:
                        self._on_sent(len(data))
                    if self._queued_bytes <= self.limits.max_send_buffer:
                        self._send_drained.set()
                self._send_ready.clear()
        except (ConnectionError, OSError) as exc:
            self.disconnect(f"send error: {exc}")

    # --- receiving -------------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                # Core: fPauseSend. While our replies pile up unread, stop taking new requests.
                await self._send_drained.wait()
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    self.disconnect("socket closed")
                    return
                self.stats.last_recv = time.time()
                self.stats.bytes_recv += len(data)
                try:
                    frames = self._decoder.feed(data)
                except ProtocolError as exc:
                    self.protocol_violation(exc)
                    return
                for command, payload in frames:
                    if self._closed.is_set():
                        return
                    log_print(logger, "net", "received: %s (%d bytes) peer=%d",
                              command, len(payload), self.id)
                    per_msg = self.stats.bytes_recv_per_msg
                    known = command in MESSAGE_TYPES or command in self._ctx.extensions
                    key = command if known else "*other*"
                    per_msg[key] = per_msg.get(key, 0) + len(payload) + HEADER_SIZE
                    try:
                        message = decode_message(command, payload, self._ctx)
                    except ProtocolError as exc:
                        self.protocol_violation(exc)
                        if exc.disconnect:
                            return
                        continue
                    await self._on_message(self, message)
        except (ConnectionError, OSError) as exc:
            self.disconnect(f"receive error: {exc}")

    # --- misbehaviour ----------------------------------------------------------------------------------
    def misbehaving(self, howmuch: int, reason: str) -> None:
        """Core: Misbehaving. Crossing -banscore marks the peer for disconnection and a ban."""
        if howmuch <= 0:
            return
        before = self.misbehavior
        self.misbehavior += howmuch
        threshold = self.limits.ban_score
        if before < threshold <= self.misbehavior:
            logger.info("Misbehaving: %s peer=%d (%d -> %d) reason: %s BAN THRESHOLD EXCEEDED",
                        self.service, self.id, before, self.misbehavior, reason)
            self.should_ban = True
            self._on_ban_threshold(self)
        else:
            logger.info("Misbehaving: %s peer=%d (%d -> %d) reason: %s",
                        self.service, self.id, before, self.misbehavior, reason)

    def protocol_violation(self, exc: ProtocolError) -> None:
        self.misbehaving(exc.score, str(exc))
        if exc.disconnect:
            self.disconnect(str(exc))
