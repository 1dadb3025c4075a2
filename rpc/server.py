"""The HTTP JSON-RPC server, a Node component (Core: httpserver.cpp, httprpc.cpp, -server options).

Owns listening sockets (-rpcbind/-rpcport), the allow list (-rpcallowip), authentication, the
request-size limit and -rpcservertimeout (idle connections, slow requests), the worker threads
(-rpcthreads) with a bounded queue (-rpcworkqueue, HTTP 503 when full), the warm-up state, and a
clean stop that answers in-flight requests. Cheap methods run on the event loop; anything that reads
disk or verifies signatures runs on a worker thread, so the loop never blocks. It must never touch
chain internals: see rpc.interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aipgd.config import ArgsManager
from aipgd.core.params import ChainParams
from aipgd.errors import InitError
from rpc.auth import COOKIE_FILENAME, Authenticator, delete_cookie, generate_cookie, parse_rpcauth
from rpc.dispatch import Dispatcher, ParsedRequest, RPCContext, error_reply
from rpc.errors import RPCError
from rpc.http import HTTPProtocol, Reply, Request
from rpc.interface import NodeInterface
from rpc.methods import build_table
from rpc.rest import handle_rest

logger = logging.getLogger("rpc")

DEFAULT_HTTP_THREADS = 4
DEFAULT_HTTP_WORKQUEUE = 16
DEFAULT_HTTP_SERVER_TIMEOUT = 30
# Bodies larger than this are parsed on a worker thread, not on the loop.
_INLINE_PARSE_LIMIT = 256 * 1024
# Core: MilliSleep(250) after a wrong password, to deter brute-forcing.
AUTH_FAILURE_DELAY = 0.25
_WWW_AUTH = (("WWW-Authenticate", 'Basic realm="jsonrpc"'),)
_ALLOW_CACHE_LIMIT = 1024
_REPLY_CACHE_LIMIT = 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RPCServerConfig:
    endpoints: tuple[tuple[str, int], ...]
    allow: tuple[Network, ...]
    threads: int
    work_queue: int
    timeout: int
    cookie_file: Path | None  # None when -rpcpassword is set
    user_colon_pass: str  # for -rpcuser/-rpcpassword; the cookie's is made at start
    rpcauth: tuple[str, ...] = field(default=())


def _parse_subnet(text: str) -> Network:
    """Core: LookupSubNet for an IP, IP/CIDR or IP/netmask."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InitError(
            f"Invalid -rpcallowip subnet specification: {text}. Valid are a single IP (e.g. 1.2.3.4), a "
            "network/netmask (e.g. 1.2.3.4/255.255.255.0) or a network/CIDR (e.g. 1.2.3.4/24).") from exc


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """Core: SplitHostPort, `host`, `host:port`, `[v6]:port`."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end > 0:
            host = text[1:end]
            rest = text[end + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        return host, port
    if text.count(":") == 1:
        name, _, number = text.partition(":")
        if number.isdigit() and 0 < int(number) < 65536:
            return name, int(number)
    return host, port


def rpc_server_config(args: ArgsManager, netdir: Path, params: ChainParams) -> RPCServerConfig:
    """Resolve the -rpc* options the way Core's InitHTTPServer / HTTPBindAddresses do."""
    port = args.get_int("rpcport", params.rpc_port) or params.rpc_port
    if not 0 < port < 65536:
        raise InitError(f"Invalid port specified in -rpcport: '{port}'")
    allow_args = args.get_all("rpcallowip")
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    allow += [_parse_subnet(a) for a in allow_args]
    endpoints: list[tuple[str, int]]
    if not allow_args:
        endpoints = [("::1", port), ("127.0.0.1", port)]
        if args.get_all("rpcbind"):
            logger.warning("WARNING: option -rpcbind was ignored because -rpcallowip was not specified, "
                           "refusing to allow everyone to connect")
    elif args.get_all("rpcbind"):
        endpoints = [_split_host_port(b, port) for b in args.get_all("rpcbind")]
    else:
        endpoints = [("::", port), ("0.0.0.0", port)]
    password = args.get("rpcpassword", "") or ""
    cookie_file: Path | None = None
    user_colon_pass = ""
    if password == "":
        cookie = Path(args.get("rpccookiefile", COOKIE_FILENAME) or COOKIE_FILENAME)
        cookie_file = cookie if cookie.is_absolute() else netdir / cookie
    else:
        user_colon_pass = f"{args.get('rpcuser', '') or ''}:{password}"
    return RPCServerConfig(
        endpoints=tuple(endpoints), allow=tuple(allow),
        threads=max(args.get_int("rpcthreads", DEFAULT_HTTP_THREADS) or 1, 1),
        work_queue=max(args.get_int("rpcworkqueue", DEFAULT_HTTP_WORKQUEUE) or 1, 1),
        timeout=max(args.get_int("rpcservertimeout", DEFAULT_HTTP_SERVER_TIMEOUT) or 1, 1),
        cookie_file=cookie_file, user_colon_pass=user_colon_pass, rpcauth=tuple(args.get_all("rpcauth")),
    )


class RPCServer:
    """The component. start()/stop() are called from the Node's start-up thread, never the loop."""

    name = "RPC server"

    def __init__(self, config: RPCServerConfig, node: NodeInterface, params: ChainParams,
                 loop: asyncio.AbstractEventLoop, request_shutdown: Callable[[], None],
                 options: dict[str, Any] | None = None) -> None:
        self.config = config
        self._loop = loop
        self.ctx = RPCContext(node=node, params=params, table=build_table(),
                              request_shutdown=request_shutdown, options=dict(options or {}))
        self.dispatcher = Dispatcher(self.ctx)
        self._executor: ThreadPoolExecutor | None = None
        self._auth: Authenticator | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[HTTPProtocol] = set()
        self._in_queue = 0
        self._stopping = False
        self._allowed_cache: dict[str, bool] = {}
        # Whole replies to identical single requests for tip-cacheable methods, valid for one tip.
        self._reply_cache: dict[bytes, tuple[bytes, Reply]] = {}
        self.bound: list[tuple[str, int]] = []

    # -- lifecycle (called off the loop) ------------------------------------------------------

    def _run_on_loop(self, coro: Any, timeout: float | None = None) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("RPCServer.start/stop must be called off the event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        cfg = self.config
        if cfg.cookie_file is not None:
            logger.info("No rpcpassword set - using random cookie authentication")
            try:
                user_colon_pass = generate_cookie(cfg.cookie_file)
            except OSError as exc:
                raise InitError(f"Unable to write the RPC authentication cookie {cfg.cookie_file}: "
                                f"{exc.strerror}") from exc
            logger.info("Generated RPC authentication cookie %s", cfg.cookie_file)
        else:
            user_colon_pass = cfg.user_colon_pass
        self._auth = Authenticator(user_colon_pass, parse_rpcauth(list(cfg.rpcauth)))
        logger.info("HTTP: creating work queue of depth %d", cfg.work_queue)
        logger.info("HTTP: starting %d worker threads", cfg.threads)
        self._executor = ThreadPoolExecutor(max_workers=cfg.threads, thread_name_prefix="aipg-httpworker")
        try:
            self._run_on_loop(self._start())
        except BaseException:
            self._cleanup_after_failed_start()
            raise

    def _cleanup_after_failed_start(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self.config.cookie_file is not None:
            delete_cookie(self.config.cookie_file)

    async def _start(self) -> None:
        cfg = self.config
        for host, port in cfg.endpoints:
            try:
                server = await self._loop.create_server(
                    self._make_protocol, host=host or None, port=port, reuse_address=True,
                    family=socket.AF_INET6 if ":" in host else socket.AF_UNSPEC)
            except OSError as exc:
                logger.info("Binding RPC on address %s port %d failed. (%s)", host, port, exc.strerror)
                continue
            self._servers.append(server)
            self.bound.append((host, port))
            logger.info("Binding RPC on address %s port %d", host, port)
        if not self._servers:
            raise InitError("Unable to bind any endpoint for RPC server")
        logger.info("Starting HTTP RPC server")

    def _make_protocol(self) -> HTTPProtocol:
        protocol = HTTPProtocol(self._handle, float(self.config.timeout), self._connections.discard)
        self._connections.add(protocol)
        return protocol

    def set_warmup_status(self, status: str) -> None:
        self.dispatcher.warmup_status = status

    def set_warmup_finished(self) -> None:
        self.dispatcher.warmup_status = None

    def stop(self) -> None:
        """Core: InterruptHTTPServer, StopHTTPRPC, StopHTTPServer: refuse new work, let running calls
        answer, then release the port and delete the cookie."""
        self.ctx.interrupted.set()
        try:
            self._run_on_loop(self._stop(), timeout=60)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
            if self.config.cookie_file is not None:
                delete_cookie(self.config.cookie_file)
            logger.info("Stopped HTTP RPC server")

    async def _stop(self) -> None:
        self._stopping = True
        for server in self._servers:
            server.close()
        # Let requests already on a worker thread answer (Core joins its workers), then close idle ones.
        deadline = self._loop.time() + 10
        while self._in_queue and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        for protocol in list(self._connections):
            protocol.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- requests (on the loop) ---------------------------------------------------------------

    def _client_allowed(self, remote: str | None) -> bool:
        """Core: ClientAllowed."""
        if remote is None:
            return False
        cached = self._allowed_cache.get(remote)
        if cached is not None:
            return cached
        try:
            addr = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            allowed = False
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            allowed = any(addr.version == net.version and addr in net for net in self.config.allow)
        if len(self._allowed_cache) >= _ALLOW_CACHE_LIMIT:
            self._allowed_cache.clear()
        self._allowed_cache[remote] = allowed
        return allowed

    def _handle(self, request: Request) -> Reply | Awaitable[Reply]:
        """Core: http_request_cb then HTTPReq_JSONRPC. Cheap requests are answered right here."""
        if not self._client_allowed(request.peer):
            return Reply(403, content_type=None)
        if self._stopping:
            return Reply(503, content_type=None)
        if request.path.startswith("/rest/") and self.ctx.options.get("rest"):
            return self._run_rest(request)
        if request.path != "/":
            return Reply(404, content_type=None)
        if request.method != "POST":
            return Reply(405, b"JSONRPC server handles only POST requests", "text/html")
        if request.authorization is None:
            return Reply(401, content_type=None, extra_headers=_WWW_AUTH)
        assert self._auth is not None
        if self._auth.check(request.authorization) is None:
            logger.info("ThreadRPCServer incorrect password attempt from %s", request.peer)
            return self._deny_later()
        body = request.body
        tip = self.ctx.node.tip() if self.dispatcher.warmup_status is None else None
        if tip is not None:
            hit = self._reply_cache.get(body)
            if hit is not None and hit[0] == tip.block_hash:
                return hit[1]
        dispatcher = self.dispatcher
        if len(body) > _INLINE_PARSE_LIMIT:
            return self._run_on_worker(request.body, parsed=None)
        try:
            parsed = dispatcher.parse(request.body)
        except RPCError as exc:
            status, error_body = error_reply(exc)
            return Reply(status, error_body)
        if dispatcher.needs_worker(parsed):
            return self._run_on_worker(request.body, parsed)
        status, reply_body = dispatcher.process(parsed)
        reply = Reply(status, reply_body)
        if tip is not None and status == 200 and dispatcher.tip_cacheable(parsed):
            if len(self._reply_cache) >= _REPLY_CACHE_LIMIT:
                self._reply_cache.clear()
            self._reply_cache[body] = (tip.block_hash, reply)
        return reply

    async def _deny_later(self) -> Reply:
        # Core: MilliSleep(250) to deter brute-forcing; here it delays only this connection.
        await asyncio.sleep(AUTH_FAILURE_DELAY)
        return Reply(401, content_type=None, extra_headers=_WWW_AUTH)

    def _run_on_worker(self, body: bytes, parsed: ParsedRequest | None) -> Reply | Awaitable[Reply]:
        cfg = self.config
        # Core: WorkQueue::Enqueue fails once `depth` requests wait; `threads` more are running.
        if self._in_queue >= cfg.threads + cfg.work_queue or self._executor is None:
            logger.warning("WARNING: request rejected because http work queue depth exceeded, it can be "
                           "increased with the -rpcworkqueue= setting")
            return Reply(503, b"Work queue depth exceeded", "text/html")
        self._in_queue += 1
        dispatcher = self.dispatcher
        if parsed is not None:
            def job() -> tuple[int, bytes]:
                return dispatcher.process(parsed)
        else:
            def job() -> tuple[int, bytes]:
                return dispatcher.process_body(body)
        future = self._loop.run_in_executor(self._executor, job)
        return self._await_worker(future)

    def _run_rest(self, request: Request) -> Reply | Awaitable[Reply]:
        """Core: the REST handlers, unauthenticated, on the same worker threads and queue limit."""
        cfg = self.config
        if self._in_queue >= cfg.threads + cfg.work_queue or self._executor is None:
            return Reply(503, b"Work queue depth exceeded", "text/html")
        self._in_queue += 1
        ctx, status = self.ctx, self.dispatcher.warmup_status
        future = self._loop.run_in_executor(
            self._executor, lambda: handle_rest(ctx, request.path, request.body, status))
        return self._await_rest(future)

    async def _await_rest(self, future: Awaitable[Reply]) -> Reply:
        try:
            return await future
        finally:
            self._in_queue -= 1

    async def _await_worker(self, future: Awaitable[tuple[int, bytes]]) -> Reply:
        try:
            status, body = await future
        finally:
            self._in_queue -= 1
        return Reply(status, body)
