"""Outbound connections (Core: OpenNetworkConnection, ConnectSocket, ThreadOpenConnections,
ThreadOpenAddedConnections, ThreadDNSAddressSeed).

Owns dialing (directly or through the -proxy SOCKS5 server, by address or, behind a proxy, by name) and
the loops that keep outbound peers: -connect, -addnode and the addnode RPC, -pouwconnect links, -seednode,
AddrMan picks with one peer per network group, and DNS seeds when AddrMan is empty. It must never build
a Peer or own a task: it hands each opened stream to the ConnectionManager, which also runs its loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from typing import TYPE_CHECKING

from aipgd.log import log_print
from aipgd.net.netaddress import AddressError, NetAddr, Service, split_host_port
from aipgd.net.peer import ConnectionType, Peer
from aipgd.net.socks5 import Socks5Error, next_random_credentials, socks5_connect

if TYPE_CHECKING:
    from aipgd.net.connman import ConnectionManager

logger = logging.getLogger(__name__)

ADDNODE_RETRY_INTERVAL = 60.0  # Core: ThreadOpenAddedConnections sleeps a minute between rounds
# A requester and its workers should find each other again quickly after a restart.
POUWCONNECT_RETRY_INTERVAL = 5.0
CONNECT_RETRY_INTERVAL = 1.0
DNS_SEED_DELAY = 11.0  # Core: let AddrMan's peers answer first


class OutboundDialer:
    """Opens the connections the ConnectionManager `connman` keeps; its loops run as connman's tasks."""

    def __init__(self, connman: ConnectionManager) -> None:
        self.connman = connman
        # Set by the addnode RPC so that a new entry is tried now, not at the next round.
        self.addnode_wakeup: asyncio.Event | None = None

    # --- dialing ---------------------------------------------------------------------------------------
    def connected_to(self, service: Service) -> bool:
        return any(p.service == service for p in self.connman.peers.values())

    def connected_to_name(self, text: str) -> bool:
        return any(p.addr_name == text for p in self.connman.peers.values())

    def reachable(self, addr: NetAddr) -> bool:
        onlynet = self.connman.config.onlynet
        return not onlynet or addr.reachable_network() in onlynet

    async def resolve(self, text: str) -> list[Service]:
        """An IP[:port] or, with -dns, a host name (resolved off the loop)."""
        cm = self.connman
        host, port = split_host_port(text, cm.params.default_port)
        try:
            return [Service(NetAddr.parse(host), port)]
        except AddressError:
            if not cm.config.name_lookup:
                return []
        try:
            infos = await cm.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return [Service(NetAddr.parse(str(info[4][0])), port) for info in infos]

    async def open_connection(self, service: Service, conn_type: ConnectionType) -> Peer | None:
        """Core: OpenNetworkConnection + ConnectNode; the version message goes out at once."""
        cm = self.connman
        if not cm.can_open_connections() or self.connected_to(service):
            return None
        if conn_type is not ConnectionType.MANUAL and cm.banman.is_banned(service.addr):
            return None
        log_print(logger, "net", "trying connection %s", service)
        try:
            reader, writer = await asyncio.wait_for(self._open_stream(service), cm.config.connect_timeout)
        except (TimeoutError, OSError, Socks5Error) as exc:
            log_print(logger, "net", "connection to %s failed: %s", service, exc or "timeout")
            if conn_type is ConnectionType.OUTBOUND:
                cm.addrman.attempt(service)
            return None
        return cm.adopt_outbound(service, conn_type, reader, writer)

    async def _open_stream(self, service: Service, name: str | None = None
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP stream to `service`, directly or through the -proxy SOCKS5 server (Core: ConnectSocket,
        ConnectThroughProxy); `name`, a host name the proxy resolves, replaces the service's address."""
        config = self.connman.config
        proxy = config.proxy
        limit = config.limits.max_receive_buffer
        if proxy is None:
            return await asyncio.open_connection(service.host, service.port, limit=limit)
        reader, writer = await asyncio.open_connection(proxy.service.host, proxy.service.port, limit=limit)
        destination = name if name is not None else service.host
        try:
            credentials = next_random_credentials() if proxy.randomize_credentials else None
            await socks5_connect(reader, writer, destination, service.port, credentials)
        except BaseException:
            writer.close()
            raise
        log_print(logger, "proxy", "SOCKS5 connected %s:%d via %s", destination, service.port, proxy)
        return reader, writer

    async def connect_to(self, text: str, conn_type: ConnectionType) -> Peer | None:
        """Core: OpenNetworkConnection with a destination string: an IP[:port] is dialled, a host name
        is resolved here, or, with -proxy, by the proxy so that no DNS query leaves this host."""
        try:
            host, port = split_host_port(text, self.connman.params.default_port)
        except AddressError:
            return None
        try:
            NetAddr.parse(host)
        except AddressError:
            if self.connman.config.proxy is not None:
                return await self._open_named(text, host, port, conn_type)
        for service in (await self.resolve(text))[:1]:
            return await self.open_connection(service, conn_type)
        return None

    async def _open_named(self, text: str, host: str, port: int, conn_type: ConnectionType) -> Peer | None:
        """A connection by name through the proxy; its address stays unknown (Core: addr is unset and
        addrName holds the destination)."""
        cm = self.connman
        if not cm.can_open_connections() or self.connected_to_name(text):
            return None
        service = Service(NetAddr.parse("0.0.0.0"), port)
        log_print(logger, "net", "trying connection %s through the proxy", text)
        try:
            reader, writer = await asyncio.wait_for(self._open_stream(service, host),
                                                    cm.config.connect_timeout)
        except (TimeoutError, OSError, Socks5Error) as exc:
            log_print(logger, "net", "connection to %s failed: %s", text, exc or "timeout")
            return None
        return cm.adopt_outbound(service, conn_type, reader, writer, addr_name=text)

    # --- the loops -------------------------------------------------------------------------------------
    async def connect_loop(self) -> None:
        """Core: ThreadOpenConnections with -connect: only these peers, kept open."""
        while True:
            for text in self.connman.config.connect:
                if not self.connected_to_name(text):
                    await self.connect_to(text, ConnectionType.MANUAL)
            await asyncio.sleep(CONNECT_RETRY_INTERVAL)

    async def addnode_loop(self) -> None:
        """Core: ThreadOpenAddedConnections."""
        wakeup = self.addnode_wakeup = asyncio.Event()
        while True:
            for text in list(self.connman.added_nodes):
                if self.connected_to_name(text):
                    continue
                if self.connman.config.proxy is not None:
                    await self.connect_to(text, ConnectionType.MANUAL)
                    continue
                services = await self.resolve(text)
                if services and not any(self.connected_to(s) for s in services):
                    await self.open_connection(services[0], ConnectionType.MANUAL)
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), ADDNODE_RETRY_INTERVAL)

    async def pouwconnect_loop(self) -> None:
        """-pouwconnect: PoUW links, kept open like -addnode ones (manual: never evicted nor banned)."""
        cm = self.connman
        while True:
            for text in cm.config.pouw_connect:
                peer = next((p for p in cm.peers.values() if p.addr_name == text), None)
                if peer is None and cm.config.proxy is None:
                    services = await self.resolve(text)
                    peer = next((p for p in cm.peers.values() if not p.inbound and p.service in services),
                                None)
                if peer is None:
                    peer = await self.connect_to(text, ConnectionType.MANUAL)
                if peer is not None and not peer.pouw_link:
                    peer.pouw_link = True
                    log_print(logger, "net", "peer=%d is the PoUW link -pouwconnect=%s", peer.id, text)
            await asyncio.sleep(POUWCONNECT_RETRY_INTERVAL)

    async def outbound_loop(self) -> None:
        """Core: ThreadOpenConnections: seed nodes first, then AddrMan, with DNS seeds when it is empty."""
        cm = self.connman
        for text in cm.config.seednode:
            await self.connect_to(text, ConnectionType.SEED)
        started = time.monotonic()
        dns_done = False
        while True:
            await asyncio.sleep(0.5)
            if not dns_done and cm.config.dns_seeds and len(cm.addrman) == 0 \
                    and time.monotonic() - started > DNS_SEED_DELAY:
                dns_done = True
                await self._query_dns_seeds()
            outbound = [p for p in cm.peers.values() if p.conn_type is ConnectionType.OUTBOUND]
            if len(outbound) >= cm.config.max_outbound:
                continue
            groups = {p.service.addr.group() for p in outbound}
            for tries in range(100):
                info = cm.addrman.select()
                if info is None:
                    break
                service = info.service
                if service.addr.group() in groups or self.connected_to(service) \
                        or not self.reachable(service.addr) or cm.banman.is_banned(service.addr):
                    continue
                # Core: avoid non-default ports for the first 50 tries.
                if service.port != cm.params.default_port and tries < 50:
                    continue
                await self.open_connection(service, ConnectionType.OUTBOUND)
                break

    async def _query_dns_seeds(self) -> None:
        """Core: ThreadDNSAddressSeed; seed answers enter AddrMan as if 3-7 days old. Behind -proxy the
        seeds are not queried but connected to by name, one-shot, so no DNS query leaks (AddOneShot)."""
        cm = self.connman
        port = cm.params.default_port
        for seed in cm.config.dns_seeds:
            if cm.config.proxy is not None:
                await self.connect_to(seed, ConnectionType.SEED)
                continue
            try:
                infos = await cm.loop.getaddrinfo(seed, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                log_print(logger, "net", "DNS seed %s failed: %s", seed, exc)
                continue
            now = int(time.time())
            found = []
            for info in infos:
                with contextlib.suppress(ValueError):
                    addr = NetAddr.parse(str(info[4][0]))
                    if self.reachable(addr):
                        found.append((Service(addr, port), cm.local_services,
                                      now - 3 * 86400 - secrets.randbelow(4 * 86400)))
            cm.addrman.add(found, NetAddr.parse("0.0.0.0"))
            logger.info("%d addresses found from DNS seed %s", len(found), seed)
