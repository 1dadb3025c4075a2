"""The ConnectionManager's settings, read from -options with Core's defaults and interactions.

Owns ConnmanConfig and `connman_config`, which applies Core's parameter interactions (AppInitMain /
InitParameterInteraction): -connect turns off -listen and -dnsseed unless given explicitly, regtest
has no DNS seeds, -blocksonly turns off -whitelistrelay unless given, -maxuploadtarget is MiB per 24 h.
It must never open sockets or read files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aipgd.config import ArgsManager, ConfigError
from aipgd.core.params import ChainParams
from aipgd.net.banman import DEFAULT_MISBEHAVING_BANTIME
from aipgd.net.netaddress import NETWORK_NAMES, AddressError, NetAddr, Service, SubNet
from aipgd.net.peer import (
    DEFAULT_BANSCORE_THRESHOLD,
    DEFAULT_MAX_RECEIVE_BUFFER,
    DEFAULT_MAX_SEND_BUFFER,
    HANDSHAKE_TIMEOUT,
    PING_INTERVAL,
    TIMEOUT_INTERVAL,
    PeerLimits,
)
from aipgd.net.protocol import LOCAL_SERVICES
from aipgd.net.socks5 import ProxyConfig
from aipgd.net.syncstate import BLOCK_STALLING_TIMEOUT, SyncTimings
from aipgd.net.txrelay import DEFAULT_WHITELISTFORCERELAY, DEFAULT_WHITELISTRELAY

# Core: net.h / netbase.h defaults (AIPG Core raised outbound peers to 12).
MAX_OUTBOUND_CONNECTIONS = 12
DEFAULT_MAX_PEER_CONNECTIONS = 125
DEFAULT_CONNECT_TIMEOUT_MS = 5000
DEFAULT_NAME_LOOKUP = True
DEFAULT_PROXYRANDOMIZE = True
DEFAULT_BLOCKSONLY = False


@dataclass(slots=True)
class ConnmanConfig:
    listen: bool = True
    binds: list[Service] = field(default_factory=list)
    explicit_bind: bool = False
    connect: list[str] = field(default_factory=list)
    connect_only: bool = False  # -connect given (even -connect=0): no automatic outbound
    addnode: list[str] = field(default_factory=list)
    seednode: list[str] = field(default_factory=list)
    dns_seeds: tuple[str, ...] = ()
    max_connections: int = DEFAULT_MAX_PEER_CONNECTIONS
    max_outbound: int = MAX_OUTBOUND_CONNECTIONS
    whitelist: list[SubNet] = field(default_factory=list)
    max_upload_target: int = 0  # bytes per 24 h, 0 = unlimited
    onlynet: frozenset[int] = frozenset()
    limits: PeerLimits = field(default_factory=PeerLimits)
    ban_time: int = DEFAULT_MISBEHAVING_BANTIME
    ban_local_peers: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_MS / 1000
    name_lookup: bool = DEFAULT_NAME_LOOKUP
    local_services: int = LOCAL_SERVICES
    user_agent: str = "/aipgd:0.1.0/"
    sync_timings: SyncTimings = field(default_factory=SyncTimings)
    proxy: ProxyConfig | None = None
    blocks_only: bool = DEFAULT_BLOCKSONLY
    whitelist_relay: bool = DEFAULT_WHITELISTRELAY
    whitelist_force_relay: bool = DEFAULT_WHITELISTFORCERELAY
    # PoUW (docs/pouw-protocol.md "Network"): on with -pouw, -pouwapi, -pouwvalidator or -pouwconnect;
    # -pouwconnect peers are kept connected like -addnode ones and flagged as PoUW links.
    pouw: bool = False
    pouw_connect: list[str] = field(default_factory=list)


def _positive(args: ArgsManager, name: str, default: int, minimum: int = 1) -> int:
    value = args.get_int(name, default)
    assert value is not None
    if value < minimum:
        raise ConfigError(f"Invalid -{name}={value} (minimum {minimum})")
    return value


def connman_config(args: ArgsManager, params: ChainParams, user_agent: str) -> ConnmanConfig:
    proxy = None
    proxy_text = args.get("proxy")
    if proxy_text not in (None, "", "0"):
        assert proxy_text is not None
        try:
            proxy = ProxyConfig.parse(proxy_text, args.get_bool("proxyrandomize", DEFAULT_PROXYRANDOMIZE))
        except AddressError:
            raise ConfigError(f"Invalid -proxy address: '{proxy_text}'") from None
    if args.get("onion") not in (None, "", "0"):
        raise ConfigError("-onion is not supported by aipgd: Tor onion peers cannot be reached (use -proxy "
                          "for clearnet peers through Tor)")
    connect_values = [v for v in args.get_all("connect") if v is not None]
    connect_only = args.is_set("connect")
    connect = [v for v in connect_values if v not in ("0", "")]
    # Core: InitParameterInteraction, -connect and -proxy soft-disable -listen; -connect -dnsseed.
    listen = args.get_bool("listen", not connect_only and proxy is None)
    dnsseed = args.get_bool("dnsseed", not connect_only)
    port = args.get_int("port", params.default_port)
    assert port is not None
    if not 0 < port <= 0xFFFF:
        raise ConfigError(f"Invalid port specified in -port: '{port}'")
    binds: list[Service] = []
    try:
        binds = [Service.parse(b, port) for b in args.get_all("bind") if b]
        whitelist = [SubNet.parse(w) for w in args.get_all("whitelist") if w]
    except AddressError as exc:
        raise ConfigError(f"Invalid -bind or -whitelist address: {exc}") from None
    explicit = bool(binds)
    if not binds:
        binds = [Service(NetAddr.parse("::"), port), Service(NetAddr.parse("0.0.0.0"), port)]
    onlynet = set()
    for net in args.get_all("onlynet"):
        if net is None:
            continue
        if net.lower() not in NETWORK_NAMES:
            raise ConfigError(f"Unknown network specified in -onlynet: '{net}'")
        onlynet.add(NETWORK_NAMES[net.lower()])
    max_connections = _positive(args, "maxconnections", DEFAULT_MAX_PEER_CONNECTIONS, 0)
    limits = PeerLimits(
        handshake_timeout=_positive(args, "peertimeout", HANDSHAKE_TIMEOUT),
        ping_interval=_positive(args, "pinginterval", PING_INTERVAL),
        inactivity_timeout=_positive(args, "inactivitytimeout", TIMEOUT_INTERVAL),
        max_receive_buffer=_positive(args, "maxreceivebuffer", DEFAULT_MAX_RECEIVE_BUFFER) * 1000,
        max_send_buffer=_positive(args, "maxsendbuffer", DEFAULT_MAX_SEND_BUFFER) * 1000,
        ban_score=_positive(args, "banscore", DEFAULT_BANSCORE_THRESHOLD),
    )
    timeout_ms = args.get_int("timeout", DEFAULT_CONNECT_TIMEOUT_MS) or DEFAULT_CONNECT_TIMEOUT_MS
    blocks_only = args.get_bool("blocksonly", DEFAULT_BLOCKSONLY)
    # Core: InitParameterInteraction soft-sets -whitelistrelay=0 under -blocksonly first, so the
    # -whitelistforcerelay=1 -> -whitelistrelay=1 soft-set that follows only acts without -blocksonly,
    # where -whitelistrelay changes nothing. Only an explicit -whitelistrelay=1 lets whitelisted peers
    # relay to a -blocksonly node.
    whitelist_relay = args.get_bool("whitelistrelay", DEFAULT_WHITELISTRELAY and not blocks_only)
    # pouw.config checks the -pouwconnect values (host:port) when the node is built.
    pouw_connect = [v for v in args.get_all("pouwconnect") if v]
    pouw = bool(pouw_connect) or any(args.get_bool(name, False)
                                     for name in ("pouw", "pouwapi", "pouwvalidator"))
    return ConnmanConfig(
        listen=listen, binds=binds, explicit_bind=explicit, connect=connect, connect_only=connect_only,
        addnode=[v for v in args.get_all("addnode") if v],
        seednode=[v for v in args.get_all("seednode") if v],
        dns_seeds=params.dns_seeds if dnsseed else (),
        max_connections=max_connections, max_outbound=min(MAX_OUTBOUND_CONNECTIONS, max_connections),
        whitelist=whitelist,
        max_upload_target=_positive(args, "maxuploadtarget", 0, 0) * 1024 * 1024,
        onlynet=frozenset(onlynet), limits=limits,
        ban_time=_positive(args, "bantime", DEFAULT_MISBEHAVING_BANTIME),
        ban_local_peers=args.get_bool("banlocalpeers", False),
        connect_timeout=max(timeout_ms, 1) / 1000, name_lookup=args.get_bool("dns", DEFAULT_NAME_LOOKUP),
        user_agent=user_agent, proxy=proxy, blocks_only=blocks_only, whitelist_relay=whitelist_relay,
        whitelist_force_relay=args.get_bool("whitelistforcerelay", DEFAULT_WHITELISTFORCERELAY),
        sync_timings=SyncTimings(stalling_timeout=_positive(
            args, "blockstallingtimeout", int(BLOCK_STALLING_TIMEOUT * 1000)) / 1000),
        pouw=pouw, pouw_connect=pouw_connect,
    )
