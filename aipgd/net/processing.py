"""PeerLogic: what a node does with each message a peer sends (Core: net_processing ProcessMessage).

Owns the handshake (version/verack, with Core's obsolete-version, unwanted-services and
self-connection rules), pings, address gossip into AddrMan, and the misbehaviour scores Core gives
for each offence. It must never touch sockets (Peer does) nor chain state: header and block sync
messages go to aipgd.net.blocksync when the node has a chain (here they are only bounded and logged).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar, Protocol

from aipgd.core.transaction import MAX_MONEY
from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.addrman import AddrMan
from aipgd.net.chainview import ChainView
from aipgd.net.peer import ConnectionType, Peer
from aipgd.net.protocol import (
    BIP0031_VERSION,
    KAWPOW_VERSION,
    MAX_ADDR_TO_SEND,
    MAX_ASSET_INV_SZ,
    MAX_ASSET_LENGTH,
    MAX_HEADERS_RESULTS,
    MAX_INV_SZ,
    MAX_LOCATOR_SZ,
    NO_BLOOM_VERSION,
    NODE_NETWORK,
    NODE_WITNESS,
    POUW_INV_TYPES,
    PROTOCOL_VERSION,
    REJECT_DUPLICATE,
    REJECT_NONSTANDARD,
    REJECT_OBSOLETE,
    SENDHEADERS_VERSION,
    SHORT_IDS_BLOCKS_VERSION,
)

if TYPE_CHECKING:
    from aipgd.net.blocksync import BlockSync

logger = logging.getLogger(__name__)

# AIPG Core requires KAWPOW_VERSION once its transfer-script deployment is active, which it is on
# every public network; MIN_PEER_PROTO_VERSION (X16RV2_VERSION) is only the pre-deployment floor.
REQUIRED_PEER_VERSION = KAWPOW_VERSION
# Core: GetDesirableServiceFlags for automatic outbound peers.
DESIRABLE_SERVICES = NODE_NETWORK | NODE_WITNESS
# Core: addr from peers is aged by 2 hours before it enters AddrMan.
ADDR_TIME_PENALTY = 2 * 60 * 60


class ConnmanHooks(Protocol):
    """What message handling needs from the ConnectionManager."""

    local_services: int
    user_agent: str

    def is_own_nonce(self, nonce: int) -> bool: ...

    def local_address_for(self, peer: Peer) -> msg.NetworkAddress: ...


class PouwHandler(Protocol):
    """The node's Proof-of-Useful-Work message logic (pouw.gossip.PouwGossip), when it has one.

    Without one, the pouw* commands stay unknown messages and PoUW inventory is ignored, as AIPG
    Core does; with one, the ConnectionManager advertises NODE_POUW and parses the pouw* commands.
    """

    @property
    def message_types(self) -> Mapping[str, type[msg.Message]]: ...

    @property
    def payload_limits(self) -> Mapping[str, int]: ...

    def start(self, peers: Callable[[], Iterable[Peer]]) -> None: ...

    async def close(self) -> None: ...

    def on_connected(self, peer: Peer) -> None: ...

    def on_disconnected(self, peer: Peer) -> None: ...

    async def handle(self, peer: Peer, message: msg.Message) -> None: ...

    def on_inventory(self, peer: Peer, command: str, items: list[msg.Inventory]) -> None: ...


class PeerLogic:
    def __init__(self, connman: ConnmanHooks, addrman: AddrMan, chain: ChainView,
                 clock: Callable[[], float] = time.time) -> None:
        self.connman = connman
        self.addrman = addrman
        self.chain = chain
        self.clock = clock
        # Header and block sync, when the chain view supports it (not in unit tests of the handshake).
        self.sync: BlockSync | None = None
        # Core: -blocksonly, our version message asks peers not to relay transactions (fRelay=0).
        self.blocks_only = False
        # The PoUW message logic, when the node speaks PoUW (set by the ConnectionManager).
        self.pouw: PouwHandler | None = None

    # --- outgoing --------------------------------------------------------------------------------------
    def push_version(self, peer: Peer) -> None:
        """Core: PushNodeVersion."""
        peer.local_nonce = secrets.randbits(64)
        their = msg.NetworkAddress(peer.remote.services, peer.service)
        version = msg.Version(PROTOCOL_VERSION, self.connman.local_services, int(self.clock()), their,
                              self.connman.local_address_for(peer), peer.local_nonce, self.connman.user_agent,
                              self.chain.tip_height(), not self.blocks_only)
        peer.send(version)
        peer.version_sent = True
        log_print(logger, "net", "send version message: version %d, blocks=%d, us=%s, them=%s, peer=%d",
                  PROTOCOL_VERSION, version.start_height, version.addr_from.service, peer.service, peer.id)

    def maybe_send_ping(self, peer: Peer, queued: bool = False) -> None:
        """Core: SendMessages' ping: every PING_INTERVAL once no ping is outstanding, or at once when the
        ping RPC queued one (fPingQueued), replacing any outstanding nonce and restarting its clock."""
        now = self.clock()
        if not peer.successfully_connected:
            return
        due = not peer.stats.ping_nonce_sent and now - peer.stats.ping_start >= peer.limits.ping_interval
        if not (queued or due):
            return
        nonce = secrets.randbits(64) or 1
        peer.stats.ping_nonce_sent = nonce
        peer.stats.ping_start = now
        peer.send(msg.Ping(nonce))

    # --- incoming --------------------------------------------------------------------------------------
    async def handle(self, peer: Peer, message: msg.Message) -> None:
        if isinstance(message, msg.Version):
            self._on_version(peer, message)
            return
        if peer.remote.version == 0:
            peer.misbehaving(1, f"{msg.command_of(message)} before version")
            return
        if isinstance(message, msg.Verack):
            self._on_verack(peer)
            return
        if not peer.successfully_connected:
            peer.misbehaving(1, f"{msg.command_of(message)} before verack")
            return
        if self.pouw is not None:
            if type(message) in self.pouw.message_types.values():
                await self.pouw.handle(peer, message)
                return
            if isinstance(message, msg.Inv) and len(message.items) <= MAX_INV_SZ:
                pouw_items = [i for i in message.items if i.type in POUW_INV_TYPES]
                if pouw_items:
                    self.pouw.on_inventory(peer, message.command, pouw_items)
                    rest = tuple(i for i in message.items if i.type not in POUW_INV_TYPES)
                    if not rest:
                        return
                    message = type(message)(rest)
        if self.sync is not None and await self.sync.handle(peer, message):
            return
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(self, peer, message)
        elif isinstance(message, msg.UnknownMessage):
            log_print(logger, "net", "Unknown command \"%s\" from peer=%d", message.name[:12], peer.id)
        else:
            log_print(logger, "net", "ignoring %s from peer=%d (not handled yet)", message.command, peer.id)

    def _reject(self, peer: Peer, command: str, code: int, reason: str) -> None:
        peer.send(msg.Reject(command, code, reason))

    def _on_version(self, peer: Peer, v: msg.Version) -> None:
        if peer.remote.version != 0:
            self._reject(peer, "version", REJECT_DUPLICATE, "Duplicate version message")
            peer.misbehaving(1, "duplicate version message")
            return
        automatic_outbound = peer.conn_type in (ConnectionType.OUTBOUND,)
        if automatic_outbound and (v.services & DESIRABLE_SERVICES) != DESIRABLE_SERVICES:
            log_print(logger, "net", "peer=%d does not offer the expected services (%08x offered, %08x "
                      "expected); disconnecting", peer.id, v.services, DESIRABLE_SERVICES)
            self._reject(peer, "version", REJECT_NONSTANDARD,
                         f"Expected to offer services {DESIRABLE_SERVICES:08x}")
            peer.disconnect("unwanted services")
            return
        if v.version < REQUIRED_PEER_VERSION:
            logger.info("peer=%d using obsolete version %d; disconnecting", peer.id, v.version)
            self._reject(peer, "version", REJECT_OBSOLETE,
                         f"Version must be {REQUIRED_PEER_VERSION} or greater")
            peer.disconnect("obsolete version")
            return
        if peer.inbound and self.connman.is_own_nonce(v.nonce):
            logger.info("connected to self at %s, disconnecting", peer.service)
            peer.disconnect("connected to self")
            return
        remote = peer.remote
        remote.version = v.version
        remote.send_version = min(v.version, PROTOCOL_VERSION)
        remote.services = v.services
        remote.user_agent = "".join(c for c in v.user_agent if c.isprintable())
        remote.start_height = v.start_height
        remote.relay = v.relay
        remote.time_offset = v.timestamp - int(self.clock())
        remote.addr_local = v.addr_recv.service
        remote.nonce = v.nonce
        if peer.inbound:
            self.push_version(peer)
        peer.send(msg.Verack())
        if not peer.inbound:
            self.addrman.set_services(peer.service, v.services)
            peer.send(msg.GetAddr())
            peer.get_addr_sent = True
            self.addrman.good(peer.service)
        logger.info("receive version message: %s: version %d, blocks=%d, us=%s, peer=%d",
                    remote.user_agent, v.version, v.start_height, v.addr_recv.service, peer.id)

    def _on_verack(self, peer: Peer) -> None:
        if peer.successfully_connected:
            return
        if peer.remote.version >= SENDHEADERS_VERSION:
            peer.send(msg.SendHeaders())
        if peer.remote.version >= SHORT_IDS_BLOCKS_VERSION:
            # Core: willing to provide compact blocks (v2 with witnesses, then v1); no announcements.
            if self.connman.local_services & NODE_WITNESS:
                peer.send(msg.SendCmpct(False, 2))
            peer.send(msg.SendCmpct(False, 1))
        peer.successfully_connected = True
        logger.info("New %s peer connected: version: %d, blocks=%d, peer=%d", peer.conn_type.value,
                    peer.remote.version, peer.remote.start_height, peer.id)
        if self.sync is not None:
            self.sync.on_connected(peer)
        if self.pouw is not None:
            self.pouw.on_connected(peer)

    def _on_addr(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Addr)
        if len(m.addresses) > MAX_ADDR_TO_SEND:
            peer.misbehaving(20, f"message addr size() = {len(m.addresses)}")
            return
        now = int(self.clock())
        fresh = []
        for a in m.addresses:
            t = a.time
            if t <= 100_000_000 or t > now + 10 * 60:
                t = now - 5 * 24 * 60 * 60
            fresh.append((a.service, a.services, t))
        added = self.addrman.add(fresh, peer.service.addr, ADDR_TIME_PENALTY)
        log_print(logger, "net", "received %d addresses (%d new) from peer=%d",
                  len(m.addresses), added, peer.id)
        if peer.conn_type is ConnectionType.SEED:
            peer.disconnect("seed node answered getaddr")

    def _on_getaddr(self, peer: Peer, m: msg.Message) -> None:
        # Core: only answer inbound peers, once per connection (fingerprinting defence).
        if not peer.inbound:
            log_print(logger, "net", "Ignoring \"getaddr\" from outbound connection. peer=%d", peer.id)
            return
        if peer.get_addr_sent:
            log_print(logger, "net", "Ignoring repeated \"getaddr\". peer=%d", peer.id)
            return
        peer.get_addr_sent = True
        entries = self.addrman.get_addr()
        for i in range(0, len(entries), MAX_ADDR_TO_SEND):
            chunk = entries[i:i + MAX_ADDR_TO_SEND]
            peer.send(msg.Addr(tuple(msg.TimedAddress(e.time, e.services, e.service) for e in chunk)))

    def _on_ping(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Ping)
        if peer.remote.version > BIP0031_VERSION:
            peer.send(msg.Pong(m.nonce))

    def _on_pong(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Pong)
        stats = peer.stats
        if not stats.ping_nonce_sent:
            log_print(logger, "net", "pong peer=%d: unsolicited pong without ping", peer.id)
            return
        if m.nonce == stats.ping_nonce_sent:
            elapsed = self.clock() - stats.ping_start
            stats.last_ping_time = elapsed
            stats.min_ping_time = min(stats.min_ping_time, elapsed)
            stats.ping_nonce_sent = 0
        elif m.nonce == 0:
            log_print(logger, "net", "pong peer=%d: nonce zero", peer.id)
            stats.ping_nonce_sent = 0
        else:
            log_print(logger, "net", "pong peer=%d: nonce mismatch", peer.id)

    def _on_reject(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Reject)
        log_print(logger, "net", "Reject %s code %d: %s%s", m.message, m.code, m.reason,
                  f": hash {m.data[::-1].hex()}" if m.data else "")

    def _on_sendheaders(self, peer: Peer, m: msg.Message) -> None:
        peer.prefers_headers = True

    def _on_feefilter(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.FeeFilter)
        if 0 <= m.feerate <= MAX_MONEY:
            peer.fee_filter = m.feerate

    def _on_sendcmpct(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.SendCmpct)
        if m.version in (1, 2):
            peer.wants_cmpct = peer.wants_cmpct or m.announce

    def _on_bloom(self, peer: Peer, m: msg.Message) -> None:
        # We do not offer NODE_BLOOM (Core: -peerbloomfilters=0).
        if peer.remote.version >= NO_BLOOM_VERSION:
            peer.misbehaving(100, f"{m.command} without NODE_BLOOM")
        else:
            peer.disconnect(f"{m.command} without NODE_BLOOM")

    def _on_inv_like(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Inv)
        if len(m.items) > MAX_INV_SZ:
            peer.misbehaving(20, f"message {m.command} size() = {len(m.items)}")
            return
        log_print(logger, "net", "received %s (%d invsz) peer=%d", m.command, len(m.items), peer.id)

    def _on_headers(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.Headers)
        if len(m.headers) > MAX_HEADERS_RESULTS:
            peer.misbehaving(20, f"headers message size = {len(m.headers)}")

    def _on_locator(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.GetHeaders)
        if len(m.locator) > MAX_LOCATOR_SZ:
            peer.disconnect(f"{m.command} locator size {len(m.locator)} > {MAX_LOCATOR_SZ}")

    def _on_getassetdata(self, peer: Peer, m: msg.Message) -> None:
        assert isinstance(m, msg.GetAssetData)
        if len(m.names) > MAX_ASSET_INV_SZ:
            peer.misbehaving(20, f"message getassetdata size() = {len(m.names)}")
        elif any(len(name.encode()) > MAX_ASSET_LENGTH for name in m.names):
            peer.misbehaving(100, "message getassetdata assetname too long")

    def _on_mempool(self, peer: Peer, m: msg.Message) -> None:
        # Core: without NODE_BLOOM only whitelisted peers may ask for the whole mempool.
        if not peer.whitelisted:
            log_print(logger, "net", "mempool request with bloom filters disabled, disconnect peer=%d",
                      peer.id)
            peer.disconnect("mempool request with bloom filters disabled")
            return
        relay = self.sync.tx_relay if self.sync is not None else None
        if relay is not None:
            relay.send_mempool(peer)

    _handlers: ClassVar[dict[type, Callable[[PeerLogic, Peer, msg.Message], None]]] = {
        msg.Addr: _on_addr, msg.GetAddr: _on_getaddr, msg.Ping: _on_ping, msg.Pong: _on_pong,
        msg.Reject: _on_reject, msg.SendHeaders: _on_sendheaders, msg.FeeFilter: _on_feefilter,
        msg.SendCmpct: _on_sendcmpct, msg.FilterLoad: _on_bloom, msg.FilterAdd: _on_bloom,
        msg.Inv: _on_inv_like, msg.GetData: _on_inv_like, msg.NotFound: _on_inv_like,
        msg.Headers: _on_headers, msg.GetHeaders: _on_locator, msg.GetBlocks: _on_locator,
        msg.GetAssetData: _on_getassetdata, msg.MempoolRequest: _on_mempool,
    }

