"""Network methods: getnetworkinfo, getpeerinfo, getconnectioncount, addnode, disconnectnode,
getaddednodeinfo, getnettotals, ping, setban, listbanned, clearbanned, setnetworkactive
(Core: rpc/net.cpp), with Core's fields and error codes.

Owns the JSON shapes of the P2P layer's state. It must never reach into peers from a worker thread:
every read and change runs on the network's event loop through NetworkView.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aipgd.net.netaddress import AddressError, NetAddr, SubNet
from aipgd.net.protocol import NODE_POUW, PROTOCOL_VERSION
from rpc.control import DEFAULT_MIN_RELAY_TX_FEE, client_version
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import amount_value
from rpc.registry import Args, Kind, Method, Param, examples

T = TypeVar("T")

# Core: rpc/protocol.h P2P client errors.
RPC_CLIENT_NODE_ALREADY_ADDED = -23
RPC_CLIENT_NODE_NOT_ADDED = -24
RPC_CLIENT_NODE_NOT_CONNECTED = -29
RPC_CLIENT_INVALID_IP_OR_SUBNET = -30
# Core: DEFAULT_INCREMENTAL_RELAY_FEE (satoshis per kB).
DEFAULT_INCREMENTAL_RELAY_FEE = 1000
_NETWORKS = ("ipv4", "ipv6", "onion")


class NetworkView:
    """The ConnectionManager as the RPC methods see it; calls hop onto its event loop."""

    def __init__(self, connman: Any) -> None:
        self.connman = connman

    def call(self, fn: Callable[[], T]) -> T:
        loop: asyncio.AbstractEventLoop = self.connman.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(30)


def _net(ctx: RPCContext) -> NetworkView:
    view: NetworkView | None = getattr(ctx, "net", None)
    if view is None:
        raise RPCError(
            RPCErrorCode.RPC_CLIENT_P2P_DISABLED, "Error: Peer-to-peer functionality missing or disabled"
        )
    return view


def _services_hex(services: int) -> str:
    return f"{services:016x}"


def _getconnectioncount(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    return net.call(lambda: len(net.connman.peers))


def _peer_json(connman: Any, peer: Any, now: float) -> dict[str, Any]:
    stats = peer.stats
    remote = peer.remote
    st = peer.sync
    entry: dict[str, Any] = {"id": peer.id, "addr": peer.addr_name or str(peer.service)}
    if remote.addr_local is not None and remote.addr_local.port:
        entry["addrlocal"] = str(remote.addr_local)
    if peer.addr_bind:
        entry["addrbind"] = peer.addr_bind
    entry.update(
        {
            "services": _services_hex(remote.services),
            "relaytxes": remote.relay,
            "lastsend": int(stats.last_send),
            "lastrecv": int(stats.last_recv),
            "bytessent": stats.bytes_sent,
            "bytesrecv": stats.bytes_recv,
            "conntime": int(stats.connected_at),
            "timeoffset": remote.time_offset,
        }
    )
    if stats.last_ping_time:
        entry["pingtime"] = round(stats.last_ping_time, 6)
    if stats.min_ping_time != float("inf"):
        entry["minping"] = round(stats.min_ping_time, 6)
    if stats.ping_nonce_sent:
        entry["pingwait"] = round(now - stats.ping_start, 6)
    in_flight = []
    for block_hash in st.in_flight:
        index = connman.sync.chain.lookup(block_hash) if connman.sync is not None else None
        if index is not None:
            in_flight.append(index.height)
    entry.update(
        {
            "version": remote.version,
            "subver": remote.user_agent,
            "inbound": peer.inbound,
            "addnode": peer.manual,
            "startingheight": remote.start_height,
            "banscore": peer.misbehavior,
            "synced_headers": st.best_known_block.height if st.best_known_block is not None else -1,
            "synced_blocks": st.last_common_block.height if st.last_common_block is not None else -1,
            "inflight": in_flight,
            "whitelisted": peer.whitelisted,
            # Bitcoin Core 0.18's field (AIPG Core lacks it): the feefilter this peer sent us, per kB.
            "minfeefilter": amount_value(peer.fee_filter),
            "bytessent_per_msg": dict(sorted(stats.bytes_sent_per_msg.items())),
            "bytesrecv_per_msg": dict(sorted(stats.bytes_recv_per_msg.items())),
            # AIPG extension (no Core field): a PoUW peer, one that signalled NODE_POUW or that
            # -pouwconnect named (docs/pouw-protocol.md "Network").
            "pouw": bool(remote.services & NODE_POUW) or bool(getattr(peer, "pouw_link", False)),
        }
    )
    return entry


def _getpeerinfo(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    connman = net.connman
    return net.call(
        lambda: [
            _peer_json(connman, p, time.time()) for p in sorted(connman.peers.values(), key=lambda p: p.id)
        ]
    )


def _getnetworkinfo(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    connman = net.connman

    def info() -> dict[str, Any]:
        offsets = sorted(p.remote.time_offset for p in connman.peers.values())
        onlynet = connman.config.onlynet
        proxy = connman.config.proxy
        return {
            "version": client_version(),
            "subversion": connman.user_agent,
            "protocolversion": PROTOCOL_VERSION,
            "localservices": _services_hex(connman.local_services),
            "localrelay": not connman.config.blocks_only,
            "timeoffset": offsets[len(offsets) // 2] if len(offsets) >= 5 else 0,
            "networkactive": connman.network_active,
            "connections": len(connman.peers),
            "networks": [
                {
                    "name": name,
                    "limited": bool(onlynet) and i + 1 not in onlynet,
                    "reachable": name != "onion" and (not onlynet or i + 1 in onlynet),
                    "proxy": str(proxy) if proxy is not None and name != "onion" else "",
                    "proxy_randomize_credentials": proxy is not None and name != "onion"
                    and proxy.randomize_credentials,
                }
                for i, name in enumerate(_NETWORKS)
            ],
            "relayfee": amount_value(DEFAULT_MIN_RELAY_TX_FEE),
            "incrementalfee": amount_value(DEFAULT_INCREMENTAL_RELAY_FEE),
            "localaddresses": [],
            "warnings": "",
        }

    return net.call(info)


def _addnode(ctx: RPCContext, args: Args) -> Any:
    node, command = args[0], args[1]
    if command not in ("add", "remove", "onetry"):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, ADDNODE_HELP)
    net = _net(ctx)
    try:
        net.call(lambda: net.connman.add_node(node, command))
    except ValueError:
        raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: Node already added") from None
    except KeyError:
        raise RPCError(RPC_CLIENT_NODE_NOT_ADDED, "Error: Node has not been added.") from None
    return None


def _disconnectnode(ctx: RPCContext, args: Args) -> Any:
    address, node_id = args[0], args[1]
    net = _net(ctx)
    if (address not in (None, "")) == (node_id is not None):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMS, "Only one of address and nodeid should be provided.")

    def disconnect() -> bool:
        peer = net.connman.find_peer(address or None, node_id)
        if peer is None:
            return False
        peer.disconnect("disconnectnode RPC")
        return True

    if not net.call(disconnect):
        raise RPCError(RPC_CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes")
    return None


def _getaddednodeinfo(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    connman = net.connman
    wanted = args[0]

    def info() -> list[dict[str, Any]]:
        added = list(connman.added_nodes)
        if wanted is not None:
            if wanted not in added:
                raise RPCError(RPC_CLIENT_NODE_NOT_ADDED, "Error: Node has not been added.")
            added = [wanted]
        out = []
        for text in added:
            peer = connman.find_peer(text)
            entry: dict[str, Any] = {"addednode": text, "connected": peer is not None, "addresses": []}
            if peer is not None:
                entry["addresses"] = [
                    {"address": peer.addr_name or str(peer.service),
                     "connected": "inbound" if peer.inbound else "outbound"}
                ]
            out.append(entry)
        return out

    return net.call(info)


def _getnettotals(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    connman = net.connman

    def totals() -> dict[str, Any]:
        recv = connman.total_bytes_recv + sum(p.stats.bytes_recv for p in connman.peers.values())
        target = connman.config.max_upload_target
        cycle_left = max(0, int(connman._cycle_start + 24 * 60 * 60 - time.time())) if target else 0
        return {
            "totalbytesrecv": recv,
            "totalbytessent": connman.total_bytes_sent,
            "timemillis": int(time.time() * 1000),
            "uploadtarget": {
                "timeframe": 24 * 60 * 60,
                "target": target,
                "target_reached": connman.outbound_target_reached(False),
                "serve_historical_blocks": not connman.outbound_target_reached(True),
                "bytes_left_in_cycle": connman.outbound_bytes_left(),
                "time_left_in_cycle": cycle_left,
            },
        }

    return net.call(totals)


def _ping(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)

    def queue() -> None:
        for peer in net.connman.peers.values():
            peer.ping_requested = True

    net.call(queue)
    return None


def _setban(ctx: RPCContext, args: Args) -> Any:
    text, command = args[0], args[1]
    if command not in ("add", "remove"):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, SETBAN_HELP)
    net = _net(ctx)
    try:
        subnet = SubNet.parse(text) if "/" in text else SubNet.single(NetAddr.parse(text))
    except AddressError:
        raise RPCError(RPC_CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet") from None
    banman = net.connman.banman
    if command == "add":

        def add() -> bool:
            if any(s == subnet for s in banman.banned()) or (
                subnet.prefix_length in (32, 128) and banman.is_banned(subnet.network)
            ):
                return False
            ban_time = args[2] if isinstance(args[2], int) else 0
            net.connman.ban_subnet(subnet, ban_time or None, bool(args[3]))
            return True

        if not net.call(add):
            raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned")
    elif not net.call(lambda: banman.unban(subnet)):
        raise RPCError(
            RPC_CLIENT_INVALID_IP_OR_SUBNET,
            "Error: Unban failed. Requested address/subnet was not previously banned.",
        )
    return None


def _listbanned(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)

    def bans() -> list[dict[str, Any]]:
        return [
            {
                "address": str(subnet),
                "banned_until": entry.ban_until,
                "ban_created": entry.create_time,
                "ban_reason": entry.reason_text,
            }
            for subnet, entry in sorted(net.connman.banman.banned().items())
        ]

    return net.call(bans)


def _clearbanned(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    net.call(net.connman.banman.clear)
    return None


def _setnetworkactive(ctx: RPCContext, args: Args) -> Any:
    net = _net(ctx)
    active = bool(args[0])
    net.call(lambda: net.connman.set_network_active(active))
    return net.call(lambda: bool(net.connman.network_active))


GETCONNECTIONCOUNT_HELP = (
    "getconnectioncount\n\nReturns the number of connections to other nodes.\n"
    "\nResult:\nn          (numeric) The connection count\n" + examples("getconnectioncount")
)
GETPEERINFO_HELP = (
    "getpeerinfo\n\nReturns data about each connected network node as a json array of objects.\n"
    '\nResult:\n[ { "id": n, "addr": "host:port", "services": "xxxx", "relaytxes": '
    'true|false, "lastsend": ttt, "lastrecv": ttt, "bytessent": n, "bytesrecv": n, '
    '"conntime": ttt, "timeoffset": ttt, "pingtime": n, "minping": n, "pingwait": n, '
    '"version": v, "subver": "/aipgd:x.x.x/", "inbound": true|false, "addnode": '
    'true|false, "startingheight": n, "banscore": n, "synced_headers": n, '
    '"synced_blocks": n, "inflight": [n, ...], "whitelisted": true|false, '
    '"minfeefilter": x.xxxxxxxx, "bytessent_per_msg": {}, "bytesrecv_per_msg": {}, '
    '"pouw": true|false }, ... ]\n'
    '\n"pouw" is an AIPG extension (Core has no such field): true when the peer signalled\n'
    "NODE_POUW (service bit 24: it speaks the Proof-of-Useful-Work messages) or is a\n"
    "-pouwconnect link.\n"
    + examples("getpeerinfo")
)
GETNETWORKINFO_HELP = (
    "getnetworkinfo\nReturns an object containing various state info regarding P2P networking.\n"
    "\nResult: version, subversion, protocolversion, localservices, localrelay, timeoffset, "
    "networkactive, connections, networks, relayfee, incrementalfee, localaddresses, "
    "warnings\n" + examples("getnetworkinfo")
)
ADDNODE_HELP = (
    'addnode "node" "add|remove|onetry"\n\nAttempts to add or remove a node from the addnode list.\n'
    "Or try a connection to a node once.\n\nArguments:\n"
    '1. "node"     (string, required) The node (see getpeerinfo for nodes)\n'
    "2. \"command\"  (string, required) 'add' to add a node to the list, 'remove' to remove a node "
    "from the list, 'onetry' to try a connection to the node once\n"
    + examples("addnode", '"192.168.0.6:8865" "onetry"')
)
DISCONNECTNODE_HELP = (
    'disconnectnode "[address]" [nodeid]\n\nImmediately disconnects from the specified peer '
    "node.\n\nStrictly one out of 'address' and 'nodeid' can be provided to identify the node.\n"
    '\nArguments:\n1. "address"     (string, optional) The IP address/port of the node\n'
    '2. "nodeid"      (number, optional) The node ID (see getpeerinfo for node IDs)\n'
    + examples("disconnectnode", '"192.168.0.6:8865"')
)
GETADDEDNODEINFO_HELP = (
    'getaddednodeinfo ( "node" )\n\nReturns information about the given added node, or all '
    "added nodes\n(note that onetry addnodes are not listed here)\n\nArguments:\n"
    '1. "node"   (string, optional) If provided, return information about this specific '
    "node, otherwise all nodes are returned.\n" + examples("getaddednodeinfo")
)
GETNETTOTALS_HELP = (
    "getnettotals\n\nReturns information about network traffic, including bytes in, bytes out,\n"
    "and current time.\n" + examples("getnettotals")
)
PING_HELP = (
    "ping\n\nRequests that a ping be sent to all other nodes, to measure ping time.\n"
    "Results provided in getpeerinfo, pingtime and pingwait fields are decimal seconds.\n"
    "Ping command is handled in queue with all other commands, so it measures processing backlog, "
    "not just network ping.\n" + examples("ping")
)
SETBAN_HELP = (
    'setban "subnet" "add|remove" (bantime) (absolute)\n\nAttempts to add or remove an IP/Subnet '
    'from the banned list.\n\nArguments:\n1. "subnet"       (string, required) The IP/Subnet (see '
    "getpeerinfo for nodes IP) with an optional netmask (default is /32 = single IP)\n"
    "2. \"command\"      (string, required) 'add' to add an IP/Subnet to the list, 'remove' to remove "
    'an IP/Subnet from the list\n3. "bantime"      (numeric, optional) time in seconds how long (or '
    "until when if [absolute] is set) the IP is banned (0 or empty means using the default time of "
    '24h which can also be overwritten by the -bantime startup argument)\n4. "absolute"     '
    "(boolean, optional) If set, the bantime must be an absolute timestamp in seconds since epoch "
    "(Jan 1 1970 GMT)\n" + examples("setban", '"192.168.0.6" "add" 86400')
)
LISTBANNED_HELP = "listbanned\n\nList all banned IPs/Subnets.\n" + examples("listbanned")
CLEARBANNED_HELP = "clearbanned\n\nClear all banned IPs.\n" + examples("clearbanned")
SETNETWORKACTIVE_HELP = (
    "setnetworkactive true|false\n\nDisable/enable all p2p network activity.\n\nArguments:\n"
    '1. "state"        (boolean, required) true to enable networking, false to disable\n'
)

METHODS = (
    Method("getconnectioncount", "network", _getconnectioncount, (), GETCONNECTIONCOUNT_HELP),
    Method("ping", "network", _ping, (), PING_HELP),
    Method("getpeerinfo", "network", _getpeerinfo, (), GETPEERINFO_HELP),
    Method(
        "addnode", "network", _addnode, (Param("node", Kind.STR), Param("command", Kind.STR)), ADDNODE_HELP
    ),
    Method(
        "disconnectnode",
        "network",
        _disconnectnode,
        (Param("address", Kind.STR, False), Param("nodeid", Kind.INT, False)),
        DISCONNECTNODE_HELP,
    ),
    Method(
        "getaddednodeinfo",
        "network",
        _getaddednodeinfo,
        (Param("node", Kind.STR, False),),
        GETADDEDNODEINFO_HELP,
        max_extra=1,
    ),
    Method("getnettotals", "network", _getnettotals, (), GETNETTOTALS_HELP),
    Method("getnetworkinfo", "network", _getnetworkinfo, (), GETNETWORKINFO_HELP),
    Method(
        "setban",
        "network",
        _setban,
        (
            Param("subnet", Kind.STR),
            Param("command", Kind.STR),
            Param("bantime", Kind.INT64, False),
            Param("absolute", Kind.BOOL, False),
        ),
        SETBAN_HELP,
    ),
    Method("listbanned", "network", _listbanned, (), LISTBANNED_HELP),
    Method("clearbanned", "network", _clearbanned, (), CLEARBANNED_HELP),
    Method(
        "setnetworkactive", "network", _setnetworkactive, (Param("state", Kind.BOOL),), SETNETWORKACTIVE_HELP
    ),
)
