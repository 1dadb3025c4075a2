"""The table of every command-line / aipg.conf option aipgd accepts, and its -help text.

Owns option names, value kinds, defaults and the Core-style help layout (Core: HelpMessage,
HelpMessageGroup, HelpMessageOpt). It must never read files, the environment or argv: parsing lives
in aipgd.config, which consults this table to reject unknown names.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from enum import Enum
from importlib import metadata

from aipgd.log import LOG_CATEGORIES

CONF_FILENAME = "aipg.conf"
PID_FILENAME = "aipgd.pid"
DEFAULT_DATADIR_DISPLAY = "~/.aipg"
PACKAGE_NAME = "aipgd"

# Core: util.cpp screenWidth / optIndent / msgIndent.
_SCREEN_WIDTH = 79
_OPT_INDENT = 2
_MSG_INDENT = 7


class Kind(Enum):
    """How an option's value is interpreted."""

    BOOL = "bool"  # -name, -name=1, -name=0, -noname
    STRING = "string"  # one value; the highest-precedence occurrence wins
    INT = "int"  # one integer value
    MULTI = "multi"  # every occurrence kept in order (e.g. -debug)


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # without the leading dash
    kind: Kind
    help: str
    group: str
    arg: str | None = None  # placeholder shown in -help, e.g. "<file>"
    default: str | None = None  # shown as "(default: x)"; None means no default is printed
    debug_only: bool = False  # only listed by -help -help-debug (Core: showDebug)
    regtest_only: bool = False

    @property
    def usage(self) -> str:
        return f"-{self.name}={self.arg}" if self.arg else f"-{self.name}"


GROUP_OPTIONS = "Options:"
GROUP_CHAIN = "Chain selection options:"
GROUP_DEBUG = "Debugging/Testing options:"
GROUP_RPC = "RPC server options:"
GROUP_CONNECTION = "Connection options:"
GROUP_ZMQ = "ZeroMQ notification options:"
GROUP_RELAY = "Node relay options:"
GROUP_POUW = "Proof of Useful Work options:"
GROUP_ORDER = (GROUP_OPTIONS, GROUP_CONNECTION, GROUP_ZMQ, GROUP_CHAIN, GROUP_DEBUG, GROUP_RELAY, GROUP_RPC,
               GROUP_POUW)


def _debug_help() -> str:
    return (
        "Output debugging information (supplying <category> is optional). If <category> is not "
        "supplied or if <category> = 1 or all, output all debugging information; 0 or none turns "
        "it off. <category> can be: " + ", ".join(LOG_CATEGORIES) + "."
    )


OPTIONS: tuple[Option, ...] = (
    Option("?", Kind.BOOL, "Print this help message and exit", GROUP_OPTIONS),
    Option("version", Kind.BOOL, "Print version and exit", GROUP_OPTIONS),
    Option(
        "assumevalid", Kind.STRING,
        "If this block is in the chain assume that it and its ancestors are valid and potentially skip "
        "their script verification (0 to verify all, default: "
        "000000fe8c99a7aacc5aff074278a8378e625c0d02e4894db8f09bab185f4eb6, testnet: "
        "000000f798386703ae778eeaf8a2f426dc2715eb8989b4226cddc1681b567760)",
        GROUP_OPTIONS, arg="<hex>",
    ),
    Option(
        "conf", Kind.STRING,
        "Specify configuration file. Relative paths will be prefixed by datadir location.",
        GROUP_OPTIONS, arg="<file>", default=CONF_FILENAME,
    ),
    Option(
        "daemon", Kind.BOOL,
        "Run in the background as a daemon; the starting process exits once the node is up",
        GROUP_OPTIONS, default="0",
    ),
    Option("datadir", Kind.STRING, "Specify data directory", GROUP_OPTIONS, arg="<dir>",
           default=DEFAULT_DATADIR_DISPLAY),
    Option("dbcache", Kind.INT, "Set database cache size in megabytes (4 to 16384, default: 450)",
           GROUP_OPTIONS, arg="<n>"),
    Option("maxreorg", Kind.INT, "Set the Maximum reorg depth", GROUP_OPTIONS, arg="<n>", default="60"),
    Option(
        "minreorgpeers", Kind.INT,
        "Set the Minimum amount of peers required to disallow reorg of chains of depth >= maxreorg. Peers "
        "must be greater than.", GROUP_OPTIONS, arg="<n>", default="4",
    ),
    Option(
        "minreorgage", Kind.INT,
        "Set the Minimum tip age (in seconds) required to allow reorg of a chain of depth >= maxreorg on a "
        "node with more than minreorgpeers peers.", GROUP_OPTIONS, arg="<n>", default="43200",
    ),
    Option(
        "par", Kind.INT,
        f"Set the number of script verification threads (-{os.cpu_count() or 1} to 16, 0 = auto, <0 = leave "
        "that many cores free, default: 0)", GROUP_OPTIONS, arg="<n>",
    ),
    Option(
        "pid", Kind.STRING,
        "Specify pid file. Relative paths will be prefixed by a net-specific datadir location.",
        GROUP_OPTIONS, arg="<file>", default=PID_FILENAME,
    ),
    Option("testnet", Kind.BOOL, "Use the test chain", GROUP_CHAIN, default="0"),
    Option(
        "regtest", Kind.BOOL,
        "Enter regression test mode, which uses a special chain in which blocks can be solved "
        "instantly. This is intended for regression testing tools and app development.",
        GROUP_CHAIN, default="0",
    ),
    Option(
        "kawpowactivationtime", Kind.INT,
        "Block time (nTime) from which headers are KawPoW headers (regtest only). aipgd's regtest "
        "mines KawPoW from height 1; AIPG Core's value is 3582830167.",
        GROUP_CHAIN, arg="<n>", default="KawPoW from height 1", debug_only=True, regtest_only=True,
    ),
    Option("checkblocks", Kind.INT, "How many blocks to check at startup (default: 6, 0 = all)", GROUP_DEBUG,
           arg="<n>", debug_only=True),
    Option("checklevel", Kind.INT, "How thorough the block verification of -checkblocks is (0-4, default: 3)",
           GROUP_DEBUG, arg="<n>", debug_only=True),
    Option("debug", Kind.MULTI, _debug_help(), GROUP_DEBUG, arg="<category>", default="0"),
    Option(
        "debugexclude", Kind.MULTI,
        "Exclude debugging information for a category. Can be used in conjunction with -debug=1 to "
        "output debug logs for all categories except one or more specified categories.",
        GROUP_DEBUG, arg="<category>", default="none",
    ),
    Option("help-debug", Kind.BOOL, "Show all debugging options (usage: --help -help-debug)", GROUP_DEBUG),
    Option(
        "printtoconsole", Kind.BOOL, "Send trace/debug info to the console as well as to debug.log",
        GROUP_DEBUG, default="0",
    ),
)

# Core: init.cpp HelpMessage's "RPC server options" (defaults in httpserver.h).
RPC_OPTIONS: tuple[Option, ...] = (
    Option("server", Kind.BOOL, "Accept command line and JSON-RPC commands", GROUP_RPC, default="1"),
    Option("rpcbind", Kind.MULTI,
           "Bind to given address to listen for JSON-RPC connections. This option is ignored unless "
           "-rpcallowip is also passed. Port is optional and overrides -rpcport. Use [host]:port "
           "notation for "
           "IPv6. This option can be specified multiple times (default: 127.0.0.1 and ::1 i.e., "
           "localhost, or "
           "if -rpcallowip has been specified, 0.0.0.0 and :: i.e., all addresses)",
           GROUP_RPC, arg="<addr>[:port]"),
    Option("rpccookiefile", Kind.STRING, "Location of the auth cookie (default: data dir)", GROUP_RPC,
           arg="<loc>"),
    Option("rpcuser", Kind.STRING, "Username for JSON-RPC connections", GROUP_RPC, arg="<user>"),
    Option("rpcpassword", Kind.STRING, "Password for JSON-RPC connections", GROUP_RPC, arg="<pw>"),
    Option("rpcauth", Kind.MULTI,
           "Username and hashed password for JSON-RPC connections. The field <userpw> comes in the format: "
           "<USERNAME>:<SALT>$<HASH>. A canonical python script is included in share/rpcauth. The "
           "client then "
           "connects normally using the rpcuser=<USERNAME>/rpcpassword=<PASSWORD> pair of arguments. This "
           "option can be specified multiple times",
           GROUP_RPC, arg="<userpw>"),
    Option("rpcport", Kind.INT,
           "Listen for JSON-RPC connections on <port> (default: 9788, testnet: 19788, regtest: 19555)",
           GROUP_RPC, arg="<port>"),
    Option("rpcallowip", Kind.MULTI,
           "Allow JSON-RPC connections from specified source. Valid for <ip> are a single IP (e.g. 1.2.3.4), "
           "a network/netmask (e.g. 1.2.3.4/255.255.255.0) or a network/CIDR (e.g. 1.2.3.4/24). This option "
           "can be specified multiple times",
           GROUP_RPC, arg="<ip>"),
    Option("rpcthreads", Kind.INT, "Set the number of threads to service RPC calls", GROUP_RPC, arg="<n>",
           default="4"),
    Option("rpcworkqueue", Kind.INT, "Set the depth of the work queue to service RPC calls", GROUP_RPC,
           arg="<n>", default="16", debug_only=True),
    Option("rpcservertimeout", Kind.INT, "Timeout during HTTP requests", GROUP_RPC, arg="<n>", default="30",
           debug_only=True),
    Option("deprecatedrpc", Kind.MULTI, "Allows deprecated RPC method(s) to be used", GROUP_RPC,
           arg="<method>", debug_only=True),
)
OPTIONS = OPTIONS + RPC_OPTIONS

# Core: init.cpp HelpMessage's "Connection options" (defaults in net.h, netbase.h, validation.h).
NET_OPTIONS: tuple[Option, ...] = (
    Option("addnode", Kind.MULTI,
           "Add a node to connect to and attempt to keep the connection open (see the `addnode` RPC command "
           "help for more info)", GROUP_CONNECTION, arg="<ip>"),
    Option("banscore", Kind.INT, "Threshold for disconnecting misbehaving peers", GROUP_CONNECTION, arg="<n>",
           default="100"),
    Option("bantime", Kind.INT, "Number of seconds to keep misbehaving peers from reconnecting",
           GROUP_CONNECTION, arg="<n>", default="86400"),
    Option("bind", Kind.MULTI,
           "Bind to given address and always listen on it. Use [host]:port notation for IPv6",
           GROUP_CONNECTION, arg="<addr>"),
    Option("connect", Kind.MULTI,
           "Connect only to the specified node(s); -connect=0 disables automatic connections (the rules for "
           "this peer are the same as for -addnode)", GROUP_CONNECTION, arg="<ip>"),
    Option("dns", Kind.BOOL, "Allow DNS lookups for -addnode, -seednode and -connect", GROUP_CONNECTION,
           default="1"),
    Option("dnsseed", Kind.BOOL,
           "Query for peer addresses via DNS lookup, if low on addresses (default: 1 unless -connect used)",
           GROUP_CONNECTION),
    Option("listen", Kind.BOOL, "Accept connections from outside (default: 1 if no -proxy or -connect)",
           GROUP_CONNECTION),
    Option("maxconnections", Kind.INT, "Maintain at most <n> connections to peers", GROUP_CONNECTION,
           arg="<n>", default="125"),
    Option("maxreceivebuffer", Kind.INT, "Maximum per-connection receive buffer, <n>*1000 bytes",
           GROUP_CONNECTION, arg="<n>", default="5000"),
    Option("maxsendbuffer", Kind.INT, "Maximum per-connection send buffer, <n>*1000 bytes", GROUP_CONNECTION,
           arg="<n>", default="1000"),
    Option("onlynet", Kind.MULTI, "Only connect to nodes in network <net> (ipv4, ipv6 or onion)",
           GROUP_CONNECTION, arg="<net>"),
    Option("port", Kind.INT, "Listen for connections on <port> (default: 8865 or testnet: 18865)",
           GROUP_CONNECTION, arg="<port>"),
    Option("proxy", Kind.STRING, "Connect through SOCKS5 proxy", GROUP_CONNECTION, arg="<ip:port>"),
    Option("proxyrandomize", Kind.BOOL,
           "Randomize credentials for every proxy connection. This enables Tor stream isolation",
           GROUP_CONNECTION, default="1"),
    Option("onion", Kind.STRING, "Use separate SOCKS5 proxy to reach peers via Tor hidden services "
           "(not supported by aipgd)", GROUP_CONNECTION, arg="<ip:port>"),
    Option("blocksonly", Kind.BOOL, "Whether to operate in a blocks only mode", GROUP_CONNECTION,
           default="0"),
    Option("seednode", Kind.MULTI, "Connect to a node to retrieve peer addresses, and disconnect",
           GROUP_CONNECTION, arg="<ip>"),
    Option("timeout", Kind.INT, "Specify connection timeout in milliseconds (minimum: 1)", GROUP_CONNECTION,
           arg="<n>", default="5000"),
    Option("whitelist", Kind.MULTI,
           "Whitelist peers connecting from the given IP address (e.g. 1.2.3.4) or CIDR notated network "
           "(e.g. 1.2.3.0/24). Can be specified multiple times. Whitelisted peers cannot be DoS banned and "
           "their transactions are always relayed, even if they are already in the mempool, useful e.g. for "
           "a gateway", GROUP_CONNECTION, arg="<IP address or network>"),
    Option("maxuploadtarget", Kind.INT,
           "Tries to keep outbound traffic under the given target (in MiB per 24h), 0 = no limit",
           GROUP_CONNECTION, arg="<n>", default="0"),
    # Testing knobs (shown with -help-debug only).
    Option("peertimeout", Kind.INT,
           "Seconds a new connection may take to complete the version handshake", GROUP_CONNECTION,
           arg="<n>", default="60", debug_only=True),
    Option("pinginterval", Kind.INT, "Seconds between pings to each peer", GROUP_CONNECTION, arg="<n>",
           default="120", debug_only=True),
    Option("inactivitytimeout", Kind.INT,
           "Seconds without sending, receiving or a ping reply before a peer is dropped", GROUP_CONNECTION,
           arg="<n>", default="1200", debug_only=True),
    Option("blockstallingtimeout", Kind.INT,
           "Milliseconds a peer may hold up the block download window before it is dropped",
           GROUP_CONNECTION, arg="<n>", default="2000", debug_only=True),
    Option("banlocalpeers", Kind.BOOL,
           "Ban misbehaving peers on local addresses too (Core never bans them)", GROUP_CONNECTION,
           default="0", debug_only=True),
)
OPTIONS = OPTIONS + NET_OPTIONS

# Core: init.cpp's block storage options (-loadblock, -prune, -reindex, -reindex-chainstate).
STORAGE_OPTIONS: tuple[Option, ...] = (
    Option("loadblock", Kind.MULTI, "Imports blocks from external blk000??.dat file on startup",
           GROUP_OPTIONS, arg="<file>"),
    Option("prune", Kind.INT,
           "Reduce storage requirements by enabling pruning (deleting) of old blocks. This allows the "
           "pruneblockchain RPC to be called to delete specific blocks, and enables automatic pruning of old "
           "blocks if a target size in MiB is provided. This mode is incompatible with -txindex and "
           "-reindex-chainstate. Warning: Reverting this setting requires re-downloading the entire "
           "blockchain. (default: 0 = disable pruning blocks, 1 = allow manual pruning via RPC, >550 = "
           "automatically prune block files to stay under the specified target size in MiB)",
           GROUP_OPTIONS, arg="<n>"),
    Option("reindex-chainstate", Kind.BOOL, "Rebuild chain state from the currently indexed blocks",
           GROUP_OPTIONS),
    Option("reindex", Kind.BOOL, "Rebuild chain state and block index from the blk*.dat files on disk",
           GROUP_OPTIONS),
    Option("stopafterblockimport", Kind.BOOL, "Stop running after importing blocks from disk", GROUP_DEBUG,
           default="0", debug_only=True),
    Option("fastprune", Kind.BOOL, "Use smaller block files (64 KiB) for testing pruning", GROUP_DEBUG,
           default="0", debug_only=True),
)
OPTIONS = OPTIONS + STORAGE_OPTIONS

# Core: init.cpp's -txindex, -blocknotify, -rest, the ZMQ publishers, and AIPG's -miningaddress.
NOTIFY_OPTIONS: tuple[Option, ...] = (
    Option("blocknotify", Kind.STRING,
           "Execute command when the best block changes (%s in cmd is replaced by block hash)", GROUP_OPTIONS,
           arg="<cmd>"),
    Option("txindex", Kind.BOOL,
           "Maintain a full transaction index, used by the getrawtransaction rpc call", GROUP_OPTIONS,
           default="0"),
    Option("zmqpubhashblock", Kind.STRING, "Enable publish hash block in <address>", GROUP_ZMQ,
           arg="<address>"),
    Option("zmqpubhashtx", Kind.STRING, "Enable publish hash transaction in <address>", GROUP_ZMQ,
           arg="<address>"),
    Option("zmqpubrawblock", Kind.STRING, "Enable publish raw block in <address>", GROUP_ZMQ,
           arg="<address>"),
    Option("zmqpubrawtx", Kind.STRING, "Enable publish raw transaction in <address>", GROUP_ZMQ,
           arg="<address>"),
    Option("rest", Kind.BOOL, "Accept public REST requests", GROUP_RPC, default="0"),
    Option("miningaddress", Kind.STRING,
           "Pay getblocktemplate's coinbase to this address and add the KawPoW header hash (pprpcheader) for "
           "pprpcsb", GROUP_RPC, arg="<address>"),
)
OPTIONS = OPTIONS + NOTIFY_OPTIONS

# Core: the mempool and relay policy options (AIPG Core's defaults).
MEMPOOL_OPTIONS: tuple[Option, ...] = (
    Option("maxmempool", Kind.INT, "Keep the transaction memory pool below <n> megabytes", GROUP_OPTIONS,
           arg="<n>", default="300"),
    Option("mempoolexpiry", Kind.INT, "Do not keep transactions in the mempool longer than <n> hours",
           GROUP_OPTIONS, arg="<n>", default="336"),
    Option("persistmempool", Kind.BOOL, "Whether to save the mempool on shutdown and load on restart",
           GROUP_OPTIONS, default="1"),
    Option("mempoolreplacement", Kind.BOOL, "Enable transaction replacement in the memory pool",
           GROUP_OPTIONS, default="0"),
    Option("limitancestorcount", Kind.INT,
           "Do not accept transactions if number of in-mempool ancestors is <n> or more", GROUP_DEBUG,
           arg="<n>", default="200", debug_only=True),
    Option("limitancestorsize", Kind.INT,
           "Do not accept transactions whose size with all in-mempool ancestors exceeds <n> kilobytes",
           GROUP_DEBUG, arg="<n>", default="250", debug_only=True),
    Option("limitdescendantcount", Kind.INT,
           "Do not accept transactions if any ancestor would have <n> or more in-mempool descendants",
           GROUP_DEBUG, arg="<n>", default="200", debug_only=True),
    Option("limitdescendantsize", Kind.INT,
           "Do not accept transactions if any ancestor would have more than <n> kilobytes of in-mempool "
           "descendants", GROUP_DEBUG, arg="<n>", default="250", debug_only=True),
    Option("acceptnonstdtxn", Kind.BOOL,
           "Relay and mine \"non-standard\" transactions (testnet/regtest only)", GROUP_RELAY,
           debug_only=True),
    Option("bytespersigop", Kind.INT, "Equivalent bytes per sigop in transactions for relay and mining",
           GROUP_RELAY, default="20"),
    Option("datacarrier", Kind.BOOL, "Relay and mine data carrier transactions", GROUP_RELAY, default="1"),
    Option("datacarriersize", Kind.INT, "Maximum size of data in data carrier transactions we relay and mine",
           GROUP_RELAY, arg="<n>", default="83"),
    Option("permitbaremultisig", Kind.BOOL, "Relay non-P2SH multisig", GROUP_RELAY, default="1"),
    Option("minrelaytxfee", Kind.STRING,
           "Fees (in AIPG/kB) smaller than this are considered zero fee for relaying, mining and transaction "
           "creation", GROUP_RELAY, arg="<amt>", default="0.01"),
    Option("incrementalrelayfee", Kind.STRING,
           "Fee rate (in AIPG/kB) used to define cost of relay, used for mempool limiting and BIP 125 "
           "replacement", GROUP_RELAY, arg="<amt>", default="0.00001", debug_only=True),
    Option("dustrelayfee", Kind.STRING,
           "Fee rate (in AIPG/kB) used to defined dust, the value of an output such that it will cost about "
           "1/3 of its value in fees at this fee rate to spend it", GROUP_RELAY, arg="<amt>",
           default="0.00003", debug_only=True),
    Option("maxtxfee", Kind.STRING,
           "Maximum total fees (in AIPG) to use in a single transaction; sendrawtransaction refuses higher "
           "fees unless allowhighfees is set", GROUP_RELAY, arg="<amt>", default="1000.00"),
    Option("whitelistrelay", Kind.BOOL,
           "Accept relayed transactions received from whitelisted peers even when not relaying transactions",
           GROUP_RELAY, default="1"),
    Option("whitelistforcerelay", Kind.BOOL,
           "Force relay of transactions from whitelisted peers even if they violate local relay policy",
           GROUP_RELAY, default="1"),
)
OPTIONS = OPTIONS + MEMPOOL_OPTIONS

# The AI job layer (pouw/); values are checked by pouw.config, defaults live there too.
POUW_OPTIONS: tuple[Option, ...] = (
    Option("pouw", Kind.BOOL,
           "Run a Proof of Useful Work worker: execute AI jobs on the models of -pouwmodel and -pouwbackend",
           GROUP_POUW, default="0"),
    Option("pouwapi", Kind.BOOL,
           "Serve the OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/embeddings, "
           "/v1/models): free without a key, paid with one (see pouw_createapikey)", GROUP_POUW, default="0"),
    Option("pouwapiport", Kind.INT,
           "Listen for API connections on <port> (default: 8766, testnet: 18766, regtest: 18866)",
           GROUP_POUW, arg="<port>"),
    Option("pouwapibind", Kind.MULTI,
           "Bind the API to the given address. Port is optional and overrides -pouwapiport. Use "
           "[host]:port notation for IPv6. This option can be specified multiple times",
           GROUP_POUW, arg="<addr>[:port]", default="127.0.0.1"),
    Option("pouwmodel", Kind.MULTI,
           "Serve the GGUF model file <path> as <name> through llama.cpp, in process. A relative path is "
           "taken from the data directory. This option can be specified multiple times",
           GROUP_POUW, arg="<name>=<path.gguf>"),
    Option("pouwbackend", Kind.MULTI,
           "Serve jobs through an OpenAI-compatible HTTP server (llama.cpp server, vLLM, Ollama); "
           "without <name>, the server's /v1/models says which models it has. This option can be "
           "specified multiple times", GROUP_POUW, arg="[<name>=]openai:<url>"),
    Option("pouwconnect", Kind.MULTI,
           "Exchange jobs, receipts and attestations with the PoUW node at <host:port> (its P2P port). "
           "This option can be specified multiple times", GROUP_POUW, arg="<host:port>"),
    Option("pouwthreads", Kind.INT, "CPU threads per llama.cpp model (0 = all cores)", GROUP_POUW,
           arg="<n>", default="0"),
    Option("pouwmaxconcurrency", Kind.INT, "Run at most <n> jobs at once (1 to 1024)", GROUP_POUW,
           arg="<n>", default="1"),
    Option("pouwjobtimeout", Kind.INT, "Give up on a job after <n> seconds (1 to 86400)", GROUP_POUW,
           arg="<n>", default="120"),
    Option("pouwfreerpm", Kind.INT,
           "Requests per minute allowed to each free-tier client (0 = no free tier: an API key is "
           "required)", GROUP_POUW, arg="<n>", default="10"),
    Option("pouwfreetpm", Kind.INT,
           "Tokens per minute allowed to each free-tier client (0 = no free tier)", GROUP_POUW, arg="<n>",
           default="10000"),
    Option("pouwpaidrpm", Kind.INT,
           "Requests per minute allowed to each API key without a limit of its own", GROUP_POUW, arg="<n>",
           default="600"),
    Option("pouwpaidtpm", Kind.INT,
           "Tokens per minute allowed to each API key without a limit of its own", GROUP_POUW, arg="<n>",
           default="1000000"),
    Option("pouwprice", Kind.STRING,
           "Price (in AIPG per 1000 tokens) charged to API keys' credit", GROUP_POUW, arg="<amt>",
           default="0.01"),
    Option("pouwcheckrate", Kind.STRING,
           "Fraction of receipts a validator re-checks (0 to 1)", GROUP_POUW, arg="<rate>", default="0.05"),
    Option("pouwvalidator", Kind.BOOL, "Re-check sampled receipts and sign attestations", GROUP_POUW,
           default="0"),
    Option("pouwtrustworker", Kind.MULTI,
           "Trust the worker with this public key (hex): paid jobs of keys with trusted_only may run on "
           "it. This node's own workers are always trusted. This option can be specified multiple times",
           GROUP_POUW, arg="<pubkey>"),
    Option("pouwtestcheat", Kind.STRING,
           "Make this node's workers forge their outputs, to test validators (regtest only): random (random "
           "tokens), truncate (half the output, claimed finished) or text (the requester gets other text)",
           GROUP_DEBUG, arg="<mode>", debug_only=True, regtest_only=True),
    Option("pouwtrustedproxy", Kind.MULTI,
           "Take free-tier clients' addresses from X-Forwarded-For when the connection comes from this "
           "reverse proxy (an IP address or network). This option can be specified multiple times",
           GROUP_POUW, arg="<ip>"),
)
OPTIONS = OPTIONS + POUW_OPTIONS

# -h and -help are accepted spellings of -? (Core: AppInit checks all three).
HELP_ALIASES = ("h", "help")

_BY_NAME: dict[str, Option] = {opt.name: opt for opt in OPTIONS}
for _alias in HELP_ALIASES:
    _BY_NAME[_alias] = _BY_NAME["?"]


def find_option(name: str) -> Option | None:
    """The option called `name` (no dash), or None if aipgd does not know it."""
    return _BY_NAME.get(name)


def version_string() -> str:
    try:
        return "v" + metadata.version("aipg-node")
    except metadata.PackageNotFoundError:
        return "v0.0.0-unknown"


def _help_opt(option: Option) -> str:
    message = option.help
    if option.default is not None:
        message += f" (default: {option.default})"
    wrapped = textwrap.fill(
        message, width=_SCREEN_WIDTH, initial_indent=" " * _MSG_INDENT,
        subsequent_indent=" " * _MSG_INDENT, break_long_words=False, break_on_hyphens=False,
    )
    return " " * _OPT_INDENT + option.usage + "\n" + wrapped + "\n\n"


def help_message(show_debug: bool = False) -> str:
    """The option list in Core's layout: a group header, then each option and its indented text."""
    out: list[str] = []
    for group in GROUP_ORDER:
        members = [o for o in OPTIONS if o.group == group and (show_debug or not o.debug_only)]
        if not members:
            continue
        out.append(group + "\n\n")
        out.extend(_help_opt(o) for o in members)
    return "".join(out)


def usage_text(show_debug: bool = False) -> str:
    """Full -help output (Core: AppInit's strUsage)."""
    return (
        f"{PACKAGE_NAME} (aipg-node) version {version_string()}\n\n"
        "Usage:\n"
        f"  {PACKAGE_NAME} [options]                     Start the AIPG node daemon\n\n"
        + help_message(show_debug)
    )


def version_text() -> str:
    return (
        f"{PACKAGE_NAME} (aipg-node) version {version_string()}\n"
        "A Python full node for the AI Power Grid (AIPG) network.\n"
        "Distributed under the MIT software license.\n"
    )
