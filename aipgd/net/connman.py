"""ConnectionManager: opens, accepts, times out, evicts and bans P2P connections (Core: CConnman).

Owns the peer table, the listening sockets (-listen, -bind, -port), the tasks of the outbound dialer
(aipgd.net.outbound: -connect, -addnode, -seednode, AddrMan and DNS seeds, 12 full-relay peers as AIPG
Core), inbound slots up to -maxconnections with Core's eviction, -whitelist, the -maxuploadtarget byte
count, the per-peer timers (handshake, ping, inactivity) and the AddrMan/BanMan it persists.
It must never interpret messages (aipgd.net.processing does) and never blocks the event loop on disk
or DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aipgd.core.params import ChainParams
from aipgd.errors import InitError
from aipgd.log import log_print
from aipgd.net.addrman import PEERS_FILENAME, AddrMan
from aipgd.net.banman import BAN_REASON_MANUALLY_ADDED, BAN_REASON_NODE_MISBEHAVING, BANLIST_FILENAME, BanMan
from aipgd.net.blocksync import BlockSync
from aipgd.net.chainview import ChainView
from aipgd.net.connman_config import ConnmanConfig
from aipgd.net.eviction import EvictionCandidate, select_node_to_evict
from aipgd.net.messages import DecodeContext, Message, NetworkAddress
from aipgd.net.netaddress import NetAddr, Service, SubNet
from aipgd.net.outbound import ADDNODE_RETRY_INTERVAL as ADDNODE_RETRY_INTERVAL
from aipgd.net.outbound import CONNECT_RETRY_INTERVAL as CONNECT_RETRY_INTERVAL
from aipgd.net.outbound import DNS_SEED_DELAY as DNS_SEED_DELAY
from aipgd.net.outbound import POUWCONNECT_RETRY_INTERVAL as POUWCONNECT_RETRY_INTERVAL
from aipgd.net.outbound import OutboundDialer
from aipgd.net.peer import ConnectionType, Peer
from aipgd.net.processing import PeerLogic, PouwHandler
from aipgd.net.protocol import NODE_POUW
from aipgd.net.txrelay import TxRelay

if TYPE_CHECKING:
    from aipgd.chain.progress import ProgressReporter

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FEELER_CONNECTIONS = 1
DUMP_INTERVAL = 15 * 60  # Core: DUMP_ADDRESSES_INTERVAL
MAX_UPLOAD_TIMEFRAME = 24 * 60 * 60
_MAINTENANCE_INTERVAL = 1.0


class ConnectionManager:
    name = "network"

    def __init__(self, config: ConnmanConfig | Callable[[], ConnmanConfig], params: ChainParams, netdir: Path,
                 chain: ChainView, loop: asyncio.AbstractEventLoop, *,
                 progress: ProgressReporter | None = None, mempool: Any = None,
                 pouw: PouwHandler | None = None) -> None:
        # A factory defers option errors to start(), where they fail start-up cleanly.
        self._config_source = config
        self.config = config if isinstance(config, ConnmanConfig) else ConnmanConfig()
        self.params = params
        self.loop = loop
        self.addrman = AddrMan(netdir / PEERS_FILENAME, params.message_start)
        self.banman = BanMan(netdir / BANLIST_FILENAME, params.message_start)
        self.local_services = self.config.local_services
        self.user_agent = self.config.user_agent
        self.chain = chain
        self.logic = PeerLogic(self, self.addrman, chain)
        self._progress = progress
        self._mempool = mempool
        self.sync: BlockSync | None = None
        # The PoUW message logic (docs/pouw-protocol.md "Network"); None: the node does not speak PoUW.
        self.pouw = pouw
        # Core: fNetworkActive (setnetworkactive).
        self.network_active = True
        # -addnode entries plus those of the addnode RPC (Core: vAddedNodes).
        self.added_nodes: list[str] = []
        self.dialer = OutboundDialer(self)
        self.peers: dict[int, Peer] = {}
        self._next_id = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._decode_ctx = DecodeContext(params.kawpow_activation_time)
        self._stopping = False
        # Core: -maxuploadtarget accounting over a 24-hour cycle.
        self.total_bytes_sent = 0
        self.total_bytes_recv = 0
        self._cycle_start = 0.0
        self._cycle_bytes_sent = 0

    # --- component -------------------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        """Core: CConnman::Start. Loads peers.dat and banlist.dat, binds, then starts the threads."""
        if not isinstance(self._config_source, ConnmanConfig):
            self.config = self._config_source()
            self.local_services = self.config.local_services
            self.user_agent = self.config.user_agent
        self.added_nodes = list(self.config.addnode)
        self.logic.blocks_only = self.config.blocks_only
        self._setup_pouw()
        if hasattr(self.chain, "accept_headers"):
            self.sync = BlockSync(self.chain, lambda: list(self.peers.values()),  # type: ignore[arg-type]
                                  self.local_services, self.outbound_target_reached, self.loop,
                                  timings=self.config.sync_timings, progress=self._progress)
            self.logic.sync = self.sync
            if self._mempool is not None:
                self.sync.tx_relay = TxRelay(self._mempool, lambda: list(self.peers.values()), self.loop,
                                             self.sync.chain.initial_block_download,
                                             blocks_only=self.config.blocks_only,
                                             whitelist_relay=self.config.whitelist_relay,
                                             whitelist_force_relay=self.config.whitelist_force_relay)
                self.sync.server.tx_relay = self.sync.tx_relay
                self.sync.mempool_txs = self._mempool_transactions
        self.banman.default_ban_time = self.config.ban_time
        self.banman.start()
        self.addrman.start()
        self._run(self._start_async())

    def stop(self) -> None:
        try:
            self._run(self._stop_async(), timeout=60.0)
        finally:
            if self.sync is not None:
                if self.sync.tx_relay is not None:
                    self.sync.tx_relay.stop()
                self.sync.stop()
            self.addrman.stop()
            self.banman.stop()

    def _setup_pouw(self) -> None:
        """With a PoUW handler: advertise NODE_POUW, parse the pouw* commands and hand it messages."""
        # The node passes its PoUW service's handler when PoUW is on (-pouw, -pouwapi, -pouwvalidator,
        # -pouwconnect); the network layer never builds one itself.
        if self.pouw is None:
            return
        self.local_services |= NODE_POUW
        self.logic.pouw = self.pouw
        self._decode_ctx = DecodeContext(self.params.kawpow_activation_time, self.pouw.message_types,
                                         self.pouw.payload_limits)

    async def _start_async(self) -> None:
        cfg = self.config
        if cfg.listen:
            errors = []
            for bind in cfg.binds:
                try:
                    await self._bind(bind)
                except InitError as exc:
                    # Core: the default any-address binds may fail one by one (no IPv6), not all.
                    if cfg.explicit_bind:
                        raise
                    errors.append(exc)
            if not self._servers and errors:
                raise errors[-1]
        if self.sync is not None:
            self.sync.start()
            if self.sync.tx_relay is not None:
                self.sync.tx_relay.start()
        self._spawn(self._maintenance_loop(), "net-maintenance")
        if cfg.connect_only:
            self._spawn(self.dialer.connect_loop(), "net-connect")
        else:
            self._spawn(self.dialer.outbound_loop(), "net-outbound")
        self._spawn(self.dialer.addnode_loop(), "net-addnode")
        if self.pouw is not None:
            self.pouw.start(lambda: list(self.peers.values()))
            if cfg.pouw_connect:
                self._spawn(self.dialer.pouwconnect_loop(), "net-pouwconnect")

    async def _bind(self, service: Service) -> None:
        try:
            server = await asyncio.start_server(self._accept, host=service.host, port=service.port,
                                                limit=self.config.limits.max_receive_buffer,
                                                reuse_address=True)
        except OSError as exc:
            raise InitError(f"Unable to bind to {service} on this computer. aipgd is probably already "
                            f"running. ({exc.strerror})") from None
        self._servers.append(server)
        logger.info("Bound to %s", service)

    async def _stop_async(self) -> None:
        self._stopping = True
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pouw is not None:
            await self.pouw.close()
        peers = list(self.peers.values())
        for peer in peers:
            peer.disconnect("shutdown")
        await asyncio.gather(*(p.wait_closed() for p in peers), return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _mempool_transactions(self) -> list[Any]:
        """The pool's transactions, for rebuilding compact blocks."""
        pool = self._mempool.pool
        with pool.lock:
            return [tx for tx in (pool.get_tx(t) for t in pool.txids()) if tx is not None]

    # --- hooks for PeerLogic ---------------------------------------------------------------------------
    def is_own_nonce(self, nonce: int) -> bool:
        """Core: CheckIncomingNonce, our own outbound version coming back to us."""
        return any(not p.inbound and not p.successfully_connected and p.local_nonce == nonce
                   for p in self.peers.values())

    def local_address_for(self, peer: Peer) -> NetworkAddress:
        return NetworkAddress(self.local_services, Service(NetAddr(bytes(16)), 0))

    # --- peers -----------------------------------------------------------------------------------------
    def _is_whitelisted(self, addr: NetAddr) -> bool:
        return any(subnet.matches(addr) for subnet in self.config.whitelist)

    def _new_peer(self, service: Service, conn_type: ConnectionType, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> Peer:
        peer_id = self._next_id
        self._next_id += 1
        peer = Peer(peer_id, service, conn_type, reader, writer, magic=self.params.message_start,
                    decode_ctx=self._decode_ctx, limits=self.config.limits,
                    whitelisted=self._is_whitelisted(service.addr), on_message=self._on_message,
                    on_close=self._on_close, on_ban_threshold=self._punish, on_sent=self._record_sent)
        self.peers[peer_id] = peer
        return peer

    async def _on_message(self, peer: Peer, message: Message) -> None:
        try:
            await self.logic.handle(peer, message)
        except Exception:
            # A bug must cost this connection, never the peer's reader task silently (nor the node).
            logger.exception("error handling %s from peer=%d", message.command or "message", peer.id)
            peer.disconnect("internal error handling a message")

    def _on_close(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        if self.sync is not None:
            self.sync.on_disconnected(peer)
        if self.pouw is not None:
            self.pouw.on_disconnected(peer)
        self.total_bytes_recv += peer.stats.bytes_recv
        log_print(logger, "net", "peer=%d disconnected (%s)", peer.id, peer.disconnect_reason)

    def _punish(self, peer: Peer) -> None:
        """Core: SendRejectsAndCheckIfBanned, once a peer crosses -banscore."""
        if peer.whitelisted:
            logger.warning("Warning: not punishing whitelisted peer %s!", peer.service)
            return
        if peer.manual:
            logger.warning("Warning: not punishing manually-connected peer %s!", peer.service)
            return
        peer.disconnect("misbehaving")
        if peer.addr_name and not peer.service.addr.is_valid():
            return  # reached by name through the proxy: there is no address to ban
        if peer.service.addr.is_local() and not self.config.ban_local_peers:
            logger.warning("Warning: not banning local peer %s!", peer.service)
            return
        self.ban(peer.service.addr)

    def ban(self, addr: NetAddr) -> None:
        subnet = SubNet.single(addr)
        self.banman.ban(subnet, BAN_REASON_NODE_MISBEHAVING)
        logger.info("Banned %s until %d", subnet, self.banman.banned()[subnet].ban_until)
        for peer in list(self.peers.values()):
            if subnet.matches(peer.service.addr) and not peer.whitelisted:
                peer.disconnect("banned")

    # --- the network RPCs (call on the event loop) ------------------------------------------------------
    def add_node(self, text: str, command: str) -> None:
        """Core: addnode add|remove|onetry. Raises KeyError (not added) / ValueError (already added)."""
        if command == "onetry":
            async def once() -> None:
                await self.connect_to(text, ConnectionType.MANUAL)
            self._spawn(once(), "net-onetry")
        elif command == "add":
            if text in self.added_nodes:
                raise ValueError(text)
            self.added_nodes.append(text)
            if self.dialer.addnode_wakeup is not None:
                self.dialer.addnode_wakeup.set()
        elif command == "remove":
            if text not in self.added_nodes:
                raise KeyError(text)
            self.added_nodes.remove(text)

    def find_peer(self, address: str | None = None, peer_id: int | None = None) -> Peer | None:
        for peer in self.peers.values():
            if peer_id is not None and peer.id == peer_id:
                return peer
            if address is not None and address in (str(peer.service), peer.service.host, peer.addr_name):
                return peer
        return None

    def set_network_active(self, active: bool) -> None:
        """Core: CConnman::SetNetworkActive, off drops every connection and opens none."""
        if self.network_active == active:
            return
        self.network_active = active
        logger.info("SetNetworkActive: %s", str(active).lower())
        if not active:
            for peer in list(self.peers.values()):
                peer.disconnect("network disabled")

    def ban_subnet(self, subnet: SubNet, ban_time: int | None = None, absolute: bool = False) -> None:
        """The setban RPC: ban and drop every peer inside `subnet` (whitelisted ones too, as Core)."""
        self.banman.ban(subnet, BAN_REASON_MANUALLY_ADDED, ban_time, absolute)
        for peer in list(self.peers.values()):
            if subnet.matches(peer.service.addr):
                peer.disconnect("banned")

    def _record_sent(self, n: int) -> None:
        now = time.time()
        self.total_bytes_sent += n
        if self._cycle_start + MAX_UPLOAD_TIMEFRAME < now:
            self._cycle_start = now
            self._cycle_bytes_sent = 0
        self._cycle_bytes_sent += n

    def outbound_target_reached(self, historical_block_serving: bool,
                                max_block_size: int = 8_000_000) -> bool:
        """Core: OutboundTargetReached; serving old blocks stops one day's worth of blocks early."""
        limit = self.config.max_upload_target
        if limit == 0:
            return False
        if historical_block_serving:
            time_left = max(0.0, self._cycle_start + MAX_UPLOAD_TIMEFRAME - time.time())
            buffer = int(time_left / 60) * max_block_size
            return buffer >= limit or self._cycle_bytes_sent >= limit - buffer
        return self._cycle_bytes_sent >= limit

    def outbound_bytes_left(self) -> int:
        limit = self.config.max_upload_target
        return 0 if limit == 0 else max(0, limit - self._cycle_bytes_sent)

    def count(self, *types: ConnectionType) -> int:
        return sum(1 for p in self.peers.values() if p.conn_type in types)

    # --- inbound ---------------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        if not self.network_active:
            log_print(logger, "net", "connection from %s dropped: not accepting new connections", peername)
            writer.close()
            return
        try:
            service = Service(NetAddr.parse(peername[0]), int(peername[1]))
        except (TypeError, ValueError, IndexError):
            writer.close()
            return
        whitelisted = self._is_whitelisted(service.addr)
        if self._stopping:
            writer.close()
            return
        if not whitelisted and self.banman.is_banned(service.addr):
            log_print(logger, "net", "connection from %s dropped (banned)", service)
            writer.close()
            return
        max_inbound = self.config.max_connections - (self.config.max_outbound + MAX_FEELER_CONNECTIONS)
        if self.count(ConnectionType.INBOUND) >= max_inbound and not self._evict_one():
            log_print(logger, "net", "failed to find an eviction candidate - connection dropped (full)")
            writer.close()
            return
        peer = self._new_peer(service, ConnectionType.INBOUND, reader, writer)
        log_print(logger, "net", "connection from %s accepted, peer=%d", service, peer.id)
        peer.start()

    def _evict_one(self) -> bool:
        candidates = [
            EvictionCandidate(p.id, p.stats.connected_at, p.stats.min_ping_time, p.stats.last_block_time,
                              p.stats.last_tx_time, p.service.addr.group(), p.remote.relay)
            for p in self.peers.values() if p.inbound and not p.whitelisted and not p.closed
        ]
        victim = select_node_to_evict(candidates, secrets.token_bytes(32))
        if victim is None:
            return False
        self.peers[victim].disconnect("evicted to free an inbound slot")
        return True

    # --- outbound (dialing lives in aipgd.net.outbound) --------------------------------------------------
    def can_open_connections(self) -> bool:
        return not self._stopping and self.network_active

    def adopt_outbound(self, service: Service, conn_type: ConnectionType, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, addr_name: str | None = None) -> Peer | None:
        """A stream the dialer opened becomes a peer, and our version goes out at once (Core: ConnectNode
        then PushNodeVersion); `addr_name` is the destination of a connection made by name."""
        if self._stopping:
            writer.close()
            return None
        peer = self._new_peer(service, conn_type, reader, writer)
        if addr_name is not None:
            peer.addr_name = addr_name
        log_print(logger, "net", "connected to %s, peer=%d (%s)", addr_name or service, peer.id,
                  conn_type.value)
        self.logic.push_version(peer)
        peer.start()
        return peer

    async def resolve(self, text: str) -> list[Service]:
        return await self.dialer.resolve(text)

    async def open_connection(self, service: Service, conn_type: ConnectionType) -> Peer | None:
        return await self.dialer.open_connection(service, conn_type)

    async def connect_to(self, text: str, conn_type: ConnectionType) -> Peer | None:
        return await self.dialer.connect_to(text, conn_type)

    # --- timers ----------------------------------------------------------------------------------------
    async def _maintenance_loop(self) -> None:
        last_dump = time.monotonic()
        while True:
            await asyncio.sleep(_MAINTENANCE_INTERVAL)
            now = time.time()
            for peer in list(self.peers.values()):
                self._check_timeouts(peer, now)
                if not peer.closed:
                    queued, peer.ping_requested = peer.ping_requested, False
                    self.logic.maybe_send_ping(peer, queued)
            if self.sync is not None:
                try:
                    self.sync.maintenance()
                except Exception:
                    logger.exception("block sync maintenance failed")
            if time.monotonic() - last_dump > DUMP_INTERVAL:
                last_dump = time.monotonic()
                await self._in_thread(self.addrman.dump)
                await self._in_thread(self.banman.dump)

    async def _in_thread(self, fn: Callable[[], None]) -> None:
        await self.loop.run_in_executor(None, fn)

    def _check_timeouts(self, peer: Peer, now: float) -> None:
        """Core: InactivityCheck, plus the version-handshake timeout of later Core versions."""
        limits = peer.limits
        stats = peer.stats
        since_connect = now - stats.connected_at
        if not peer.successfully_connected and since_connect > limits.handshake_timeout:
            logger.info("version handshake timeout from peer=%d", peer.id)
            peer.disconnect("version handshake timeout")
        elif since_connect > limits.inactivity_timeout and now - stats.last_send > limits.inactivity_timeout:
            logger.info("socket sending timeout: %ds peer=%d", int(now - stats.last_send), peer.id)
            peer.disconnect("socket sending timeout")
        elif since_connect > limits.inactivity_timeout and now - stats.last_recv > limits.inactivity_timeout:
            logger.info("socket receive timeout: %ds peer=%d", int(now - stats.last_recv), peer.id)
            peer.disconnect("socket receive timeout")
        elif stats.ping_nonce_sent and now - stats.ping_start > limits.inactivity_timeout:
            logger.info("ping timeout: %fs peer=%d", now - stats.ping_start, peer.id)
            peer.disconnect("ping timeout")

