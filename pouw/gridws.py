"""Serves the AIPG grid's worker WebSocket (`GET /v1/workers/ws`), so that today's grid workers
(grid-text-worker, grid-inference-worker) run jobs for this node unchanged.

Owns the live sessions of connected grid workers: registration and the API-key check (a pluggable
`GridAuth`), keepalive, one job at a time per connection, token relay, cancel, timeouts and receipt
checks, behind `GridWorkerPool`, the async API the node's job router calls. It must never let a
worker's frame reach the router unchecked, let a worker's fault escape into aiohttp, or pay anyone:
it reports results, with the receipt's verdict, and the router decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from pouw.gridproto import (
    CLOSE_AUTH,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_REPLACED,
    CLOSE_TRY_LATER,
    GRID_WS_PATH,
    OPENAI_CHAT,
    DoneFrame,
    GridFrameError,
    GridJob,
    GridRegistration,
    PongFrame,
    TokenFrame,
    WorkerErrorFrame,
    ack_frame,
    cancel_frame,
    check_grid_receipt,
    error_frame,
    job_frame,
    parse_registration,
    parse_worker_frame,
    ping_frame,
    ready_frame,
)
from pouw.gridtypes import (  # the router-facing types, re-exported
    GridAuth,
    GridAuthVerdict,
    GridError,
    GridJobFailedError,
    GridJobRejectedError,
    GridJobTimeoutError,
    GridPoolConfig,
    GridResult,
    GridWorkerInfo,
    StaticGridAuth,
    WorkerBusyError,
    WorkerLost,
)

log = logging.getLogger("pouw.gridws")

TokenCallback = Callable[[str], Awaitable[None]]
_TOKEN_FRAME_SLACK = 64  # token frames a worker may send beyond max_tokens (chunking differs by backend)

__all__ = ["GridAuth", "GridAuthVerdict", "GridError", "GridJobFailedError", "GridJobRejectedError",
           "GridJobTimeoutError", "GridPoolConfig", "GridResult", "GridWorkerInfo", "GridWorkerPool",
           "StaticGridAuth", "WorkerBusyError", "WorkerLost"]


# ---------------------------------------------------------------------------------------------
# Sessions


@dataclass(eq=False, slots=True)
class _End:
    result: GridResult | None = None
    error: GridError | None = None


@dataclass(eq=False, slots=True)
class _Flight:
    job: GridJob
    started: float  # loop time
    last_frame_at: float
    events: asyncio.Queue[str | _End] = field(default_factory=asyncio.Queue)
    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    token_frames: int = 0
    tool_calls: bool = False
    last_finish: str | None = None
    first_token_at: float | None = None
    cancel_sent: bool = False
    abandoned_at: float | None = None  # the caller stopped waiting (timeout, cancellation, callback error)
    ended_by_worker: bool = False  # its `done` or `error` frame arrived
    delivered: bool = False  # the caller has its outcome (the worker may still owe its `done`)
    finished: bool = False  # the worker ended the job (or is gone): the session is free again


@dataclass(eq=False, slots=True)
class _Session:
    worker_id: str
    account: str
    reg: GridRegistration
    ws: web.WebSocketResponse
    remote: str
    connected_at: float
    last_frame_at: float
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    current: _Flight | None = None
    bad_frames: int = 0
    jobs_done: int = 0
    closing: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    close_task: asyncio.Task[None] | None = None

    def info(self) -> GridWorkerInfo:
        r = self.reg
        return GridWorkerInfo(self.worker_id, r.name, self.account, r.models, r.max_length,
                              r.max_context_length, r.api_formats, r.modalities, r.signer_address,
                              r.bridge_agent, self.remote, self.connected_at, self.current is not None,
                              self.jobs_done)


class GridWorkerPool:
    """The grid workers connected to this node, and the door through which jobs reach them."""

    def __init__(self, auth: GridAuth, config: GridPoolConfig | None = None) -> None:
        self._auth = auth
        self._cfg = config or GridPoolConfig()
        self._sessions: dict[str, _Session] = {}
        self._by_name: dict[str, _Session] = {}
        self._flights: dict[str, _Flight] = {}
        self._changed = asyncio.Condition()
        self._closed = False
        # Called (on the loop) after a worker registers or leaves: the node's router follows the pool.
        self.on_change: Callable[[], None] | None = None

    # -- router API -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application, path: str = GRID_WS_PATH) -> None:
        app.router.add_get(path, self.handle)

    def workers(self) -> list[GridWorkerInfo]:
        return [s.info() for s in self._sessions.values() if not s.closing]

    def idle_workers(self, model: str) -> list[GridWorkerInfo]:
        """Connected, idle workers that registered `model`, longest-connected first."""
        return [s.info() for s in self._sessions.values()
                if not s.closing and s.current is None and model in s.reg.models]

    async def wait_for_workers(self, count: int, timeout: float) -> list[GridWorkerInfo]:
        """Wait until at least `count` workers are connected (raises TimeoutError)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.workers()) >= count)
        return self.workers()

    async def run_job(self, worker_id: str, job: GridJob, on_token: TokenCallback | None = None,
                      timeout: float | None = None) -> GridResult:
        """Send `job` to one worker and wait for its result. `on_token` gets each piece of streamed
        content, in order, awaited before the next. Raises `WorkerLost`, `WorkerBusyError`,
        `GridJobRejectedError`, `GridJobTimeoutError` or `GridJobFailedError`; a receipt that fails its
        check does not raise: the result comes back with `verified` False and the receipt's status."""
        session = self._sessions.get(worker_id)
        if session is None or session.closing:
            raise WorkerLost(f"no connected grid worker {worker_id}")
        if job.model not in session.reg.models:
            raise GridJobRejectedError(f"worker {session.reg.name!r} does not serve model {job.model!r}")
        if session.current is not None:
            raise WorkerBusyError(f"worker {session.reg.name!r} is running job {session.current.job.job_id}")
        if job.job_id in self._flights:
            raise GridJobRejectedError(f"job {job.job_id} is already running")
        loop = asyncio.get_running_loop()
        now = loop.time()
        flight = _Flight(job, now, now)
        session.current = flight
        self._flights[job.job_id] = flight
        if not await self._send(session, job_frame(job)):
            self._finish(session, flight, _End(error=WorkerLost(f"worker {session.reg.name!r} is gone")))
        deadline = None if timeout is None else now + timeout
        try:
            while True:
                now = loop.time()
                wait = flight.last_frame_at + self._cfg.frame_timeout - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        item = await flight.events.get()
                except TimeoutError:
                    if not flight.events.empty():
                        continue
                    silent = deadline is None or loop.time() < deadline
                    raise GridJobTimeoutError(
                        f"worker {session.reg.name!r} silent for {self._cfg.frame_timeout:g} s" if silent
                        else f"job {job.job_id} not finished within {timeout:g} s") from None
                if isinstance(item, str):
                    if on_token is not None:
                        await on_token(item)
                    continue
                if item.error is not None:
                    raise item.error
                assert item.result is not None
                return item.result
        except BaseException:
            if not flight.finished and flight.abandoned_at is None:
                self._abandon(session, flight)
            raise

    async def cancel(self, job_id: str) -> bool:
        """Ask the worker running `job_id` to stop. The worker answers with a `done` frame holding the
        partial output (`cancelled` True), which `run_job` returns. False if no such job runs."""
        flight = self._flights.get(job_id)
        session = self._session_of(flight)
        if flight is None or session is None or flight.finished:
            return False
        if not flight.cancel_sent:
            flight.cancel_sent = True
            await self._send_cancel(session, flight)
        return True

    async def close(self) -> None:
        """Close every session (1001); running jobs fail with `WorkerLost`."""
        self._closed = True
        sessions = list(self._sessions.values())
        for session in sessions:
            self._request_close(session, CLOSE_GOING_AWAY, "node shutting down")
        for session in sessions:
            await self._drop(session)

    # -- the WebSocket handler ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        cfg = self._cfg
        ws = web.WebSocketResponse(max_msg_size=cfg.limits.max_frame_bytes, heartbeat=cfg.heartbeat,
                                   timeout=cfg.close_timeout, compress=False)
        await ws.prepare(request)
        session: _Session | None = None
        try:
            session = await self._register(ws, request.remote or "")
            if session is not None:
                await self._serve(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("grid session failed")
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_INTERNAL, message=b"internal error")
        finally:
            if session is not None:
                await self._drop(session)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close(code=CLOSE_GOING_AWAY)
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        # grid-core: an error frame with the reason, then the close code. The worker raises on the
        # error frame (ConnectionRefusedError) and retries with backoff.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._cfg.send_timeout):
                await ws.send_str(error_frame(reason))
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=reason.encode("utf-8")[:120])

    async def _register(self, ws: web.WebSocketResponse, remote: str) -> _Session | None:
        cfg = self._cfg
        try:
            async with asyncio.timeout(cfg.handshake_timeout):
                msg = await ws.receive()
        except TimeoutError:
            await self._refuse(ws, CLOSE_POLICY, "registration timeout")
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None  # closed, or aiohttp already closed it (1009 for an oversized frame)
        try:
            reg = parse_registration(msg.data, cfg.limits)
        except GridFrameError as exc:
            await self._refuse(ws, exc.close_code, exc.reason)
            return None
        try:
            verdict = await self._auth(reg.apikey, reg)
        except Exception:
            log.exception("grid auth failed for worker %r", reg.name)
            await self._refuse(ws, CLOSE_INTERNAL, "authentication unavailable")
            return None
        if verdict.account is None:
            log.info("grid worker %r from %s refused: %s", reg.name, remote, verdict.reason)
            await self._refuse(ws, verdict.close_code or CLOSE_AUTH, verdict.reason or "Invalid API key")
            return None
        if "text" not in reg.job_types or OPENAI_CHAT not in reg.api_formats:
            await self._refuse(ws, CLOSE_FORBIDDEN, "this node serves openai-chat text jobs only")
            return None
        if self._closed:
            await self._refuse(ws, CLOSE_GOING_AWAY, "node shutting down")
            return None
        now = asyncio.get_running_loop().time()
        session = _Session(uuid.uuid4().hex, verdict.account, reg, ws, remote, time.time(), now)
        refusal: tuple[int, str] | None = None
        async with self._changed:  # the name check and the claim happen with no await between them
            previous = self._by_name.get(reg.name)
            if previous is not None and previous.account != verdict.account:
                # grid-core: a worker name belongs to the account that first registered it.
                refusal = CLOSE_FORBIDDEN, "worker name already registered to another account"
            elif previous is None and len(self._sessions) >= cfg.max_sessions:
                refusal = CLOSE_TRY_LATER, "node at grid worker capacity"
            else:
                self._sessions[session.worker_id] = session
                self._by_name[reg.name] = session
                self._changed.notify_all()
                if self.on_change is not None:
                    self.on_change()
        if refusal is not None:
            await self._refuse(ws, *refusal)
            return None
        if previous is not None:
            # One live connection per worker name, as grid-core: the newer one wins (1012).
            self._request_close(previous, CLOSE_REPLACED, "replaced by a newer connection")
            await self._drop(previous)
        if not await self._send(session, ready_frame(session.worker_id)):
            return session  # _drop in handle() cleans up
        log.info("grid worker %r (%s) connected from %s: models=%s signer=%s", reg.name, session.worker_id,
                 remote, list(reg.models), reg.signer_address or "-")
        return session

    async def _serve(self, session: _Session) -> None:
        self._spawn(session, self._keepalive(session))
        ws = session.ws
        async for msg in ws:
            session.last_frame_at = asyncio.get_running_loop().time()
            if msg.type is WSMsgType.TEXT:
                await self._on_frame(session, msg.data)
            elif msg.type is WSMsgType.BINARY:
                await self._bad_frame(session, "binary frames are not part of the protocol")
            else:
                break  # ERROR: aiohttp closed the socket (1009 for an oversized frame)
            if session.closing:
                break

    async def _on_frame(self, session: _Session, data: str) -> None:
        try:
            frame = parse_worker_frame(data, self._cfg.limits)
        except GridFrameError as exc:
            flight = session.current
            if flight is not None and exc.job_id == flight.job.job_id and exc.frame_type in ("done", "error"):
                # The worker ended our job with a broken frame: the job fails (retry elsewhere). The error
                # frame also stands in for the ack the worker waits for after `done`.
                flight.ended_by_worker = True
                await self._bad_frame(session, exc.reason)
                failed = GridJobFailedError(f"protocol violation: {exc.reason}")
                self._finish(session, flight, _End(error=failed))
            else:
                await self._bad_frame(session, exc.reason)
            return
        if isinstance(frame, PongFrame):
            return
        flight = session.current
        job_id = frame.job_id
        if flight is None or job_id != flight.job.job_id or flight.finished:
            await self._bad_frame(session, f"frame for job {job_id!r}, which is not running here")
            return
        flight.last_frame_at = session.last_frame_at
        flight.ended_by_worker = not isinstance(frame, TokenFrame)
        if isinstance(frame, TokenFrame):
            self._on_token(session, flight, frame)
        elif isinstance(frame, DoneFrame):
            await self._on_done(session, flight, frame)
        elif isinstance(frame, WorkerErrorFrame):
            kind = "client error" if frame.client_error else "worker error"
            log.info("grid worker %r failed job %s (%s): %s", session.reg.name, job_id, kind, frame.message)
            self._finish(session, flight, _End(error=GridJobFailedError(frame.message,
                                                                   client_error=frame.client_error)))

    def _on_token(self, session: _Session, flight: _Flight, frame: TokenFrame) -> None:
        flight.token_frames += 1
        if flight.token_frames > flight.job.max_tokens + _TOKEN_FRAME_SLACK:
            # A backend honours max_tokens (the worker forwards it as is); a stream that runs past it is
            # a fault. The caller hears now; the session stays busy until the worker ends the job.
            if not flight.delivered:
                self._deliver(flight, _End(error=GridJobFailedError(
                    f"worker streamed more than max_tokens ({flight.job.max_tokens}) token frames")))
                self._abandon(session, flight)
            return
        if flight.first_token_at is None:
            flight.first_token_at = flight.last_frame_at
        if frame.finish_reason:
            flight.last_finish = frame.finish_reason
        flight.tool_calls = flight.tool_calls or frame.has_tool_calls
        if frame.reasoning:
            flight.reasoning.append(frame.reasoning)
        if frame.content:
            flight.parts.append(frame.content)
            if not flight.delivered and flight.abandoned_at is None:
                flight.events.put_nowait(frame.content)

    async def _on_done(self, session: _Session, flight: _Flight, frame: DoneFrame) -> None:
        # The worker blocks on one reply after `done` (it reads any next frame as the ack), so the ack
        # goes out before the session is idle again and can take the next job.
        await self._send(session, ack_frame(frame.job_id, 0.0))
        streamed = "".join(flight.parts)
        # grid-core keeps the streamed text when `done.full_text` is empty.
        full_text = frame.full_text or streamed
        full_reasoning = frame.full_reasoning or "".join(flight.reasoning)
        if not frame.cancelled and not full_text.strip() and not full_reasoning.strip() \
                and not flight.tool_calls and flight.token_frames == 0:
            empty = GridJobFailedError("worker returned an empty completion")
            self._finish(session, flight, _End(error=empty))
            return
        receipt = check_grid_receipt(flight.job.job_id, full_text, streamed if flight.parts else None,
                                     frame.receipt, frame.receipt_malformed, session.reg.signer_address)
        if not receipt.verified:
            log.info("grid worker %r: receipt of job %s unverified (%s)", session.reg.name, flight.job.job_id,
                     receipt.status.value)
        finish = "cancelled" if frame.cancelled else (frame.finish_reason or flight.last_finish or "stop")
        now = asyncio.get_running_loop().time()
        result = GridResult(
            job_id=flight.job.job_id,
            worker_id=session.worker_id,
            worker_name=session.reg.name,
            model=flight.job.model,
            full_text=full_text,
            full_reasoning=full_reasoning,
            finish_reason=finish,
            usage=frame.usage,
            receipt=receipt,
            cancelled=frame.cancelled,
            token_frames=flight.token_frames,
            elapsed_s=now - flight.started,
            ttft_s=None if flight.first_token_at is None else flight.first_token_at - flight.started,
        )
        session.jobs_done += 1
        self._finish(session, flight, _End(result=result))

    async def _bad_frame(self, session: _Session, reason: str) -> None:
        session.bad_frames += 1
        log.info("grid worker %r sent a bad frame (%d): %s", session.reg.name, session.bad_frames, reason)
        if session.bad_frames > self._cfg.max_bad_frames:
            self._request_close(session, CLOSE_POLICY, "too many malformed frames")
            return
        await self._send(session, error_frame(f"bad frame: {reason}"))

    async def _keepalive(self, session: _Session) -> None:
        cfg = self._cfg
        loop = asyncio.get_running_loop()
        while not session.closing:
            await asyncio.sleep(cfg.ping_interval)
            now = loop.time()
            flight = session.current
            if flight is None:
                if now - session.last_frame_at > cfg.idle_timeout:
                    self._request_close(session, CLOSE_POLICY, "keepalive timeout")
                    return
                await self._send(session, ping_frame())
            elif flight.abandoned_at is not None and now - flight.abandoned_at > cfg.cancel_grace:
                # The worker did not end a job we gave up on: its state is unknown, so it starts afresh.
                self._request_close(session, CLOSE_INTERNAL, "job not finished after cancel")
                return
            elif now - flight.last_frame_at > cfg.frame_timeout + cfg.cancel_grace:
                self._request_close(session, CLOSE_INTERNAL, "job stalled")
                return

    # -- plumbing -------------------------------------------------------------------------------

    def _session_of(self, flight: _Flight | None) -> _Session | None:
        if flight is None:
            return None
        for session in self._sessions.values():
            if session.current is flight:
                return session
        return None

    def _spawn(self, session: _Session, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _send(self, session: _Session, text: str, *, cancelling: _Flight | None = None) -> bool:
        """Send one frame; False (and the session closing) if the socket is gone or stuck. A cancel for
        `cancelling` is dropped once that job's `done`/`error` has arrived: the worker reads the frame
        after its `done` as the ack, so nothing but the ack may follow it."""
        if session.closing or session.ws.closed:
            return False
        try:
            async with session.send_lock, asyncio.timeout(self._cfg.send_timeout):
                if cancelling is not None and cancelling.ended_by_worker:
                    return False
                await session.ws.send_str(text)
            return True
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            log.info("grid worker %r: send failed (%s)", session.reg.name, type(exc).__name__)
            self._request_close(session, CLOSE_INTERNAL, "send failed")
            return False

    def _finish(self, session: _Session, flight: _Flight, end: _End) -> None:
        if flight.finished:
            return
        flight.finished = True
        if session.current is flight:
            session.current = None
        if self._flights.get(flight.job.job_id) is flight:
            del self._flights[flight.job.job_id]
        self._deliver(flight, end)

    @staticmethod
    def _deliver(flight: _Flight, end: _End) -> None:
        if not flight.delivered:
            flight.delivered = True
            flight.events.put_nowait(end)

    def _abandon(self, session: _Session, flight: _Flight) -> None:
        """The caller stopped waiting: tell the worker to stop, and give it `cancel_grace` to finish."""
        flight.abandoned_at = asyncio.get_running_loop().time()
        if not flight.cancel_sent and not session.closing:
            flight.cancel_sent = True
            self._spawn(session, self._send_cancel(session, flight))

    async def _send_cancel(self, session: _Session, flight: _Flight) -> None:
        await self._send(session, cancel_frame(flight.job.job_id), cancelling=flight)

    def _request_close(self, session: _Session, code: int, reason: str) -> None:
        """Start closing the socket. The close runs in its own task, which `_drop` awaits (bounded by the
        close timeout) instead of cancelling, so the close frame and its handshake are never cut short;
        aiohttp lets it run beside the handler's pending receive."""
        if session.closing:
            return
        session.closing = True
        log.info("grid worker %r: closing (%d %s)", session.reg.name, code, reason)
        session.close_task = asyncio.get_running_loop().create_task(
            self._close_socket(session.ws, code, reason))

    @staticmethod
    async def _close_socket(ws: web.WebSocketResponse, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=reason.encode("utf-8")[:120])

    async def _drop(self, session: _Session) -> None:
        session.closing = True
        async with self._changed:
            if self._sessions.get(session.worker_id) is session:
                del self._sessions[session.worker_id]
            if self._by_name.get(session.reg.name) is session:
                del self._by_name[session.reg.name]
            self._changed.notify_all()
        if self.on_change is not None:
            self.on_change()
        flight = session.current
        if flight is not None:
            self._finish(session, flight, _End(error=WorkerLost(
                f"grid worker {session.reg.name!r} disconnected during job {flight.job.job_id}")))
        current = asyncio.current_task()
        for task in list(session.tasks):
            if task is not current:
                task.cancel()
        closing = session.close_task
        if closing is not None and closing is not current and not closing.done():
            await asyncio.wait({closing}, timeout=self._cfg.close_timeout + 1.0)
            closing.cancel()
