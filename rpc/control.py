"""Control methods: help, stop, uptime, getmemoryinfo, getrpcinfo, getinfo (Core: rpc/server.cpp, misc.cpp).

Owns the server-level methods. It must never stop the node itself: `stop` only asks for a shutdown,
which the daemon carries out after this reply has been sent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from typing import Any

from aipgd.options import version_string
from rpc.blockchain import difficulty_of
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import amount_value
from rpc.registry import Args, Kind, Method, Param, examples

# Core: version.h PROTOCOL_VERSION of AIPG Core.
PROTOCOL_VERSION = 70028
# Core: validation.h DEFAULT_MIN_RELAY_TX_FEE (satoshis per kB), AIPG's value.
DEFAULT_MIN_RELAY_TX_FEE = 1_000_000


def client_version() -> int:
    """Core: CLIENT_VERSION = 1000000*major + 10000*minor + 100*revision + build."""
    parts = [int(p) if p.isdigit() else 0 for p in version_string().lstrip("v").split(".")[:4]]
    parts += [0] * (4 - len(parts))
    return parts[0] * 1_000_000 + parts[1] * 10_000 + parts[2] * 100 + parts[3]


def _help(ctx: RPCContext, args: Args) -> Any:
    command = args[0] or ""
    return ctx.table.help_text(command)


def _stop(ctx: RPCContext, args: Args) -> Any:
    # Core accepts a hidden 'wait' argument (milliseconds to sleep before answering; for tests).
    if ctx.request_shutdown is not None:
        ctx.request_shutdown()
    if isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] > 0:
        ctx.interrupted.wait(min(args[0], 60_000) / 1000)
    return "Aipg server stopping"


def _uptime(ctx: RPCContext, args: Args) -> Any:
    return int(time.time()) - int(ctx.start_time)


def _getrpcinfo(ctx: RPCContext, args: Args) -> Any:
    now = time.monotonic()
    return {"active_commands": [{"method": c.method, "duration": int((now - c.start) * 1_000_000)}
                                for c in ctx.active_commands()]}


def _malloc_info() -> str | None:
    """glibc's malloc_info(3) XML, as Core's RPCMallocInfo, or None where it is unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        open_memstream = libc.open_memstream
        malloc_info = libc.malloc_info
    except (OSError, AttributeError):
        return None
    open_memstream.restype = ctypes.c_void_p
    open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    libc.fclose.argtypes = [ctypes.c_void_p]
    malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    buf = ctypes.c_char_p()
    size = ctypes.c_size_t()
    stream = open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not stream:
        return None
    malloc_info(0, stream)
    libc.fclose(stream)
    text = ctypes.string_at(buf, size.value).decode("utf-8", "replace")
    libc.free(ctypes.cast(buf, ctypes.c_void_p))
    return text


def _getmemoryinfo(ctx: RPCContext, args: Args) -> Any:
    mode = args[0] if args[0] is not None else "stats"
    if mode == "stats":
        # aipgd has no locked (mlock'ed) secure allocator yet: it manages no locked memory.
        return {"locked": {"used": 0, "free": 0, "total": 0, "locked": 0, "chunks_used": 0, "chunks_free": 0}}
    if mode == "mallocinfo":
        info = _malloc_info()
        if info is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           "mallocinfo is only available when compiled with glibc 2.10+")
        return info
    raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"unknown mode {mode}")


def _getinfo(ctx: RPCContext, args: Args) -> Any:
    node = ctx.node
    tip = node.tip()
    entry = node.block_entry(tip.block_hash) if tip is not None else None
    return {
        "deprecation-warning": "WARNING: getinfo is deprecated and will be fully removed in 0.16. Projects "
                               "should transition to using getblockchaininfo, getnetworkinfo, and "
                               "getwalletinfo "
                               "before upgrading to 0.16",
        "version": client_version(),
        "protocolversion": PROTOCOL_VERSION,
        "blocks": tip.height if tip is not None else -1,
        "timeoffset": 0,  # no peers yet, so no network-adjusted time
        "connections": node.peer_count(),
        "proxy": "",
        "difficulty": difficulty_of(entry.header.bits if entry is not None else None),
        "testnet": ctx.params.network == "test",
        "relayfee": amount_value(DEFAULT_MIN_RELAY_TX_FEE),
        "errors": "",
    }


HELP_HELP = (
    'help ( "command" )\n'
    "\nList all commands, or get help for a specified command.\n"
    "\nArguments:\n"
    '1. "command"     (string, optional) The command to get help on\n'
    "\nResult:\n"
    '"text"     (string) The help text\n'
)
STOP_HELP = "stop\n\nStop Aipg server."
UPTIME_HELP = (
    "uptime\n"
    "\nReturns the total uptime of the server.\n"
    "\nResult:\n"
    "ttt        (numeric) The number of seconds that the server has been running\n"
    + examples("uptime")
)
GETRPCINFO_HELP = (
    "getrpcinfo\n"
    "Returns details of the RPC server.\n"
    "\nResult:\n"
    "{\n"
    ' "active_commands" (array) All active commands\n'
    "  [\n"
    "   {               (object) Information about an active command\n"
    '    "method"       (string)  The name of the RPC command \n'
    '    "duration"     (numeric)  The running time in microseconds\n'
    "   },...\n"
    "  ],\n"
    "}\n"
    + examples("getrpcinfo")
)
GETMEMORYINFO_HELP = (
    'getmemoryinfo ("mode")\n'
    "Returns an object containing information about memory usage.\n"
    "Arguments:\n"
    '1. "mode" determines what kind of information is returned. This argument is optional, the default '
    'mode is "stats".\n'
    '  - "stats" returns general statistics about memory usage in the daemon.\n'
    '  - "mallocinfo" returns an XML string describing low-level heap state (only available if compiled '
    "with glibc 2.10+).\n"
    '\nResult (mode "stats"):\n'
    "{\n"
    '  "locked": {               (json object) Information about locked memory manager\n'
    '    "used": xxxxx,          (numeric) Number of bytes used\n'
    '    "free": xxxxx,          (numeric) Number of bytes available in current arenas\n'
    '    "total": xxxxxxx,       (numeric) Total number of bytes managed\n'
    '    "locked": xxxxxx,       (numeric) Amount of bytes that succeeded locking. If this number is smaller '
    "than total, locking pages failed at some point and key data could be swapped to disk.\n"
    '    "chunks_used": xxxxx,   (numeric) Number allocated chunks\n'
    '    "chunks_free": xxxxx,   (numeric) Number unused chunks\n'
    "  }\n"
    "}\n"
    '\nResult (mode "mallocinfo"):\n'
    '"<malloc version="1">..."\n'
    + examples("getmemoryinfo")
)
GETINFO_HELP = (
    "getinfo\n"
    "\nDEPRECATED. Returns an object containing various state info.\n"
    "\nResult:\n"
    "{\n"
    '  "deprecation-warning": "..." (string) warning that the getinfo command is deprecated and will be '
    "removed in 0.16\n"
    '  "version": xxxxx,           (numeric) the server version\n'
    '  "protocolversion": xxxxx,   (numeric) the protocol version\n'
    '  "blocks": xxxxxx,           (numeric) the current number of blocks processed in the server\n'
    '  "timeoffset": xxxxx,        (numeric) the time offset\n'
    '  "connections": xxxxx,       (numeric) the number of connections\n'
    '  "proxy": "host:port",       (string, optional) the proxy used by the server\n'
    '  "difficulty": xxxxxx,       (numeric) the current difficulty\n'
    '  "testnet": true|false,      (boolean) if the server is using testnet or not\n'
    '  "relayfee": x.xxxx,         (numeric) minimum relay fee for transactions in AIPG/kB\n'
    '  "errors": "..."             (string) any error messages\n'
    "}\n"
    + examples("getinfo")
)

METHODS = (
    Method("getrpcinfo", "control", _getrpcinfo, (), GETRPCINFO_HELP),
    Method("help", "control", _help, (Param("command", Kind.STR, required=False),), HELP_HELP),
    Method("stop", "control", _stop, (Param("wait", Kind.ANY, required=False),), STOP_HELP, offload=True),
    Method("uptime", "control", _uptime, (), UPTIME_HELP),
    Method("getinfo", "control", _getinfo, (), GETINFO_HELP),
    Method("getmemoryinfo", "control", _getmemoryinfo, (Param("mode", Kind.STR, required=False),),
           GETMEMORYINFO_HELP),
)
