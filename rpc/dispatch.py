"""JSON-RPC request processing, independent of HTTP (Core: JSONRPCRequest::parse, CRPCTable::execute,
JSONRPCExecBatch, JSONErrorReply's status choice).

Owns turning a request body into (HTTP status, reply bytes): parsing, batches, named arguments,
JSON-RPC 1.0 replies as Core writes them and 2.0 replies as later Core does, the warm-up refusal and
the per-tip result cache. It must never touch sockets or threads: rpc.server decides where it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aipgd.core.params import ChainParams
from rpc.errors import RPCError, RPCErrorCode
from rpc.interface import NodeInterface
from rpc.jsonutil import dumps, loads
from rpc.registry import Method, RPCTable

logger = logging.getLogger("rpc")

_INVALID_REQUEST = RPCErrorCode.RPC_INVALID_REQUEST
HTTP_OK = 200
HTTP_NO_CONTENT = 204
HTTP_BAD_REQUEST = 400
HTTP_NOT_FOUND = 404
HTTP_INTERNAL_SERVER_ERROR = 500

# A batch longer than this runs on a worker thread even when every call in it is cheap.
INLINE_BATCH_LIMIT = 64
_CACHE_LIMIT = 4096


@dataclass
class ActiveCommand:
    method: str
    start: float


@dataclass
class RPCContext:
    """What handlers may use: the node view, the method table and the server's own state."""

    node: NodeInterface
    params: ChainParams
    table: RPCTable
    start_time: float = field(default_factory=time.time)
    request_shutdown: Any = None  # () -> None, schedules a clean shutdown of the node
    interrupted: threading.Event = field(default_factory=threading.Event)
    options: dict[str, Any] = field(default_factory=dict)
    # The P2P layer (rpc.network.NetworkView); None with no networking.
    net: Any = None
    # The PoUW component (pouw.service.PouwService); None unless -pouw, -pouwapi or -pouwvalidator.
    pouw: Any = None
    # Per-area state kept across calls (the mining templates for pprpcsb, prioritised deltas, ...).
    state: dict[str, Any] = field(default_factory=dict)
    active: dict[int, ActiveCommand] = field(default_factory=dict)
    _active_lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 0

    def begin(self, method: str) -> int:
        with self._active_lock:
            self._next_id += 1
            token = self._next_id
            self.active[token] = ActiveCommand(method, time.monotonic())
        return token

    def end(self, token: int) -> None:
        with self._active_lock:
            self.active.pop(token, None)

    def active_commands(self) -> list[ActiveCommand]:
        with self._active_lock:
            return list(self.active.values())


class ParsedRequest:
    """A decoded body: one request object, or a batch (a list of anything)."""

    __slots__ = ("batch", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.batch = isinstance(value, list)


def _error_obj(exc: RPCError) -> dict[str, object]:
    return {"code": exc.code, "message": exc.message}


class Dispatcher:
    def __init__(self, ctx: RPCContext) -> None:
        self.ctx = ctx
        self.table = ctx.table
        self.warmup_status: str | None = "Loading block index..."
        self._cache: dict[tuple[str, str], tuple[bytes, str]] = {}

    # -- parsing ------------------------------------------------------------------------------

    @staticmethod
    def parse(body: bytes) -> ParsedRequest:
        """Core: valRequest.read(); a body that is no JSON object or array is a parse error."""
        try:
            value = loads(body)
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            raise RPCError(RPCErrorCode.RPC_PARSE_ERROR, "Parse error") from exc
        if not isinstance(value, dict | list):
            raise RPCError(RPCErrorCode.RPC_PARSE_ERROR, "Top-level object parse error")
        return ParsedRequest(value)

    def method_of(self, request: Any) -> Method | None:
        if isinstance(request, dict):
            name = request.get("method")
            if isinstance(name, str):
                return self.table.get(name)
        return None

    def needs_worker(self, parsed: ParsedRequest) -> bool:
        """Whether processing may take more than microseconds (and so belongs on a worker thread)."""
        if parsed.batch:
            if len(parsed.value) > INLINE_BATCH_LIMIT:
                return True
            return any((m := self.method_of(r)) is not None and m.offload for r in parsed.value)
        method = self.method_of(parsed.value)
        return method is not None and method.offload

    def tip_cacheable(self, parsed: ParsedRequest) -> bool:
        """A single request whose reply depends only on its text and the chain tip."""
        if parsed.batch:
            return False
        method = self.method_of(parsed.value)
        return method is not None and method.tip_cacheable

    # -- execution ----------------------------------------------------------------------------

    def execute(self, name: str, params: Any) -> Any:
        """Core: CRPCTable::execute. Returns the result value (not yet encoded)."""
        if self.warmup_status is not None:
            raise RPCError(RPCErrorCode.RPC_IN_WARMUP, self.warmup_status)
        method = self.table.get(name)
        if method is None:
            raise RPCError(RPCErrorCode.RPC_METHOD_NOT_FOUND, "Method not found")
        args = self.table.named_to_positional(method, params) if isinstance(params, dict) else params
        args = self.table.check_args(method, args)
        token = self.ctx.begin(name)
        try:
            return method.handler(self.ctx, args)
        except RPCError:
            raise
        except RecursionError:
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "Nesting too deep") from None
        except Exception as exc:  # Core: catch (std::exception) -> RPC_MISC_ERROR
            logger.debug("RPC %s raised %s", name, exc, exc_info=True)
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, str(exc) or type(exc).__name__) from exc
        finally:
            self.ctx.end(token)

    def _result_text(self, name: str, params: Any) -> str:
        """The encoded result, from the per-tip cache when the method allows it."""
        method = self.table.get(name)
        if method is None or not method.tip_cacheable or self.warmup_status is not None:
            return dumps(self.execute(name, params))
        tip = self.ctx.node.tip()
        tip_key = tip.block_hash if tip is not None else b""
        try:
            key = (name, dumps(params))
        except (TypeError, ValueError, RecursionError):
            return dumps(self.execute(name, params))
        hit = self._cache.get(key)
        if hit is not None and hit[0] == tip_key:
            return hit[1]
        text = dumps(self.execute(name, params))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (tip_key, text)
        return text

    @staticmethod
    def _request_fields(request: Any) -> tuple[Any, str, Any, bool, bool]:
        """Core: JSONRPCRequest::parse. Returns (id, method, params, is_v2, is_notification)."""
        if not isinstance(request, dict):
            raise RPCError(_INVALID_REQUEST, "Invalid Request object")
        req_id = request.get("id")
        v2 = request.get("jsonrpc") == "2.0"
        notification = v2 and "id" not in request
        method = request.get("method")
        if method is None:
            raise _BadRequestError(RPCError(_INVALID_REQUEST, "Missing method"), req_id, v2)
        if not isinstance(method, str):
            raise _BadRequestError(RPCError(_INVALID_REQUEST, "Method must be a string"), req_id, v2)
        params = request.get("params")
        if params is None:
            params = []
        elif not isinstance(params, list | dict):
            # (sic) AIPG Core's text, from a blanket Params() -> GetParams() rename.
            raise _BadRequestError(RPCError(_INVALID_REQUEST, "GetParams must be an array or object"),
                          req_id, v2)
        return req_id, method, params, v2, notification

    def _reply_one(self, request: Any) -> tuple[str | None, RPCError | None]:
        """One request's reply text (None for a 2.0 notification) and its error, if any."""
        req_id: Any = None
        v2 = False
        notification = False
        try:
            req_id, method, params, v2, notification = self._request_fields(request)
            result = self._result_text(method, params)
        except _BadRequestError as wrapped:
            return _reply_text(None, wrapped.error, wrapped.req_id, wrapped.v2), wrapped.error
        except RPCError as exc:
            if notification:
                return None, exc
            return _reply_text(None, exc, req_id, v2), exc
        if notification:
            return None, None
        id_text = "null" if req_id is None else dumps(req_id)
        if v2:
            return f'{{"jsonrpc":"2.0","result":{result},"id":{id_text}}}', None
        return f'{{"result":{result},"error":null,"id":{id_text}}}', None

    def process(self, parsed: ParsedRequest) -> tuple[int, bytes]:
        """(HTTP status, body) for a parsed request (Core: HTTPReq_JSONRPC after authentication)."""
        if parsed.batch:
            parts = [text for text, _ in map(self._reply_one, parsed.value) if text is not None]
            if not parts and parsed.value:
                return HTTP_NO_CONTENT, b""
            return HTTP_OK, ("[" + ",".join(parts) + "]\n").encode()
        text, error = self._reply_one(parsed.value)
        if text is None:
            return HTTP_NO_CONTENT, b""
        if error is None or (isinstance(parsed.value, dict) and parsed.value.get("jsonrpc") == "2.0"):
            return HTTP_OK, (text + "\n").encode()
        return error_status(error.code), (text + "\n").encode()

    def process_body(self, body: bytes) -> tuple[int, bytes]:
        try:
            parsed = self.parse(body)
        except RPCError as exc:
            return error_reply(exc)
        return self.process(parsed)


class _BadRequestError(Exception):
    """An invalid request whose id is already known (so the error reply echoes it)."""

    def __init__(self, error: RPCError, req_id: Any, v2: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.req_id = req_id
        self.v2 = v2


def _reply_text(result: Any, error: RPCError | None, req_id: Any, v2: bool = False) -> str:
    id_text = "null" if req_id is None else dumps(req_id)
    if error is not None:
        err = dumps(_error_obj(error))
        if v2:
            return f'{{"jsonrpc":"2.0","error":{err},"id":{id_text}}}'
        return f'{{"result":null,"error":{err},"id":{id_text}}}'
    return f'{{"result":{dumps(result)},"error":null,"id":{id_text}}}'


def error_status(code: int) -> int:
    """Core: JSONErrorReply's HTTP status for a single request's error."""
    if code == RPCErrorCode.RPC_INVALID_REQUEST:
        return HTTP_BAD_REQUEST
    if code == RPCErrorCode.RPC_METHOD_NOT_FOUND:
        return HTTP_NOT_FOUND
    return HTTP_INTERNAL_SERVER_ERROR


def error_reply(error: RPCError, req_id: Any = None) -> tuple[int, bytes]:
    return error_status(error.code), (_reply_text(None, error, req_id) + "\n").encode()
