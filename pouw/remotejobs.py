"""Remote PoUW jobs over P2P links: pouwjob, pouwtoken, pouwresult, pouwerror and pouwcancel.

Owns both directions of a remote job: the requester side (`RemoteJobs.run_remote`, reached through
`RemotePeerWorker`, which the router drives like a local worker) checks every answer against the
request it made; the worker side runs a peer's job through a pluggable executor within the advertised
concurrency. It also owns what the PoUW layer needs of a connection (`PouwPeer`). It must never
touch sockets (Peer does), run models (the executor does) nor relay objects (pouw.gossip does).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aipgd.core.hashes import sha256
from aipgd.net.message_base import Message
from aipgd.net.protocol import NODE_POUW
from aipgd.net.txrelay import BoundedSet
from pouw.errors import PouwError
from pouw.jobspec import JobSpec
from pouw.limits import DEFAULT_LIMITS, PouwLimits, check_jobspec
from pouw.receipt import EmbeddingOutput, TokenOutput
from pouw.router import WorkerInfo, WorkerLostError
from pouw.signing import verify_receipt_signature
from pouw.wire import (
    MAX_ERROR_CODE_BYTES,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_RESULT_TEXT_BYTES,
    PouwCancel,
    PouwErrorMessage,
    PouwJob,
    PouwResult,
    PouwToken,
    split_text,
)
from pouw.worker import JobFailedError, JobOutcome, TextSink

__all__ = [
    "RETRYABLE_ERRORS", "SCORE_BAD_RESULT", "SCORE_UNSOLICITED", "BoundedSet", "JobExecutor", "PouwPeer",
    "RemoteJobs", "RemotePeerWorker", "speaks_pouw",
]

logger = logging.getLogger(__name__)

# Misbehaviour (Core: Misbehaving); the other PoUW scores are pouw.gossip's.
SCORE_BAD_RESULT = 100  # a pouwresult whose receipt is unsigned, foreign or does not match job or output
SCORE_UNSOLICITED = 20  # pouwtoken/pouwresult/pouwerror for a request never sent, pouwrcpt/pouwatt not asked

MAX_RECENT_REQUESTS = 1024  # finished request ids per peer whose late answers are ignored
STOP_POLL_INTERVAL = 0.25
# Codes after which the job may run elsewhere (the router moves on, as for a lost worker).
RETRYABLE_ERRORS = frozenset({"not-a-worker", "busy", "shutting-down", "duplicate-request"})

_FLOAT = struct.Struct("<f")
_request_ids = itertools.count(secrets.randbits(32) + 1)

# The worker side's job runner: LocalWorker.execute has this shape (spec, stop, on_text).
JobExecutor = Callable[[JobSpec, threading.Event, TextSink | None], Awaitable[JobOutcome]]


class _RemoteView(Protocol):
    @property
    def services(self) -> int: ...

    @property
    def nonce(self) -> int: ...


class PouwPeer(Protocol):
    """What the PoUW layer needs of a connection (aipgd.net.peer.Peer, or a test fake)."""

    @property
    def id(self) -> int: ...

    @property
    def remote(self) -> _RemoteView: ...

    @property
    def local_nonce(self) -> int: ...

    @property
    def successfully_connected(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def send(self, message: Message) -> None: ...

    def misbehaving(self, howmuch: int, reason: str) -> None: ...


def speaks_pouw(peer: PouwPeer) -> bool:
    """Whether the peer signalled NODE_POUW: only such peers are sent, or may send, PoUW traffic."""
    return bool(peer.remote.services & NODE_POUW)


@dataclass(eq=False)
class _Pending:
    """A job this node asked a peer to run."""

    spec: JobSpec
    worker_pubkey: bytes
    stream: bool
    events: asyncio.Queue[tuple[str, object]]
    next_seq: int = 0
    streamed_bytes: int = 0


@dataclass(eq=False)
class _Serving:
    """A job a peer asked this node to run."""

    stop: threading.Event
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _LinkJobs:
    """The remote jobs of one connection, in both directions."""

    pending: dict[int, _Pending] = field(default_factory=dict)
    finished: BoundedSet = field(default_factory=lambda: BoundedSet(MAX_RECENT_REQUESTS))
    serving: dict[int, _Serving] = field(default_factory=dict)


class RemoteJobs:
    """The remote-job half of a node's PoUW message logic (pouw.gossip.PouwGossip delegates to it)."""

    def __init__(self, find_peer: Callable[[int], PouwPeer | None], *, limits: PouwLimits = DEFAULT_LIMITS,
                 clock: Callable[[], float] = time.time) -> None:
        self._find_peer = find_peer
        self.limits = limits
        self._clock = clock
        self._links: dict[int, _LinkJobs] = {}
        self._executor: JobExecutor | None = None
        self._max_concurrency = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def set_executor(self, executor: JobExecutor | None, max_concurrency: int) -> None:
        """Serve peers' jobs with `executor`, at most `max_concurrency` per peer (None: refuse them)."""
        self._executor = executor
        self._max_concurrency = max_concurrency

    def link(self, peer_id: int) -> _LinkJobs | None:
        """The jobs of one connection (None when it has had none)."""
        return self._links.get(peer_id)

    def _link(self, peer: PouwPeer) -> _LinkJobs:
        jobs = self._links.get(peer.id)
        if jobs is None:
            jobs = self._links[peer.id] = _LinkJobs()
        return jobs

    # --- lifecycle -------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the jobs run for peers and fail the jobs run on them (the node is shutting down)."""
        self._closing = True
        for jobs in self._links.values():
            for serving in jobs.serving.values():
                serving.stop.set()
            for pending in jobs.pending.values():
                pending.events.put_nowait(("lost", WorkerLostError("the node is shutting down")))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_disconnected(self, peer: PouwPeer) -> None:
        jobs = self._links.pop(peer.id, None)
        if jobs is None:
            return
        for pending in jobs.pending.values():
            pending.events.put_nowait(("lost", WorkerLostError(f"peer={peer.id} disconnected mid-job")))
        for serving in jobs.serving.values():
            serving.stop.set()
            if serving.task is not None:
                serving.task.cancel()

    def handle(self, peer: PouwPeer, message: PouwJob | PouwCancel | PouwToken | PouwResult
               | PouwErrorMessage) -> None:
        """One remote-job message from a peer that signalled NODE_POUW."""
        jobs = self._link(peer)
        if isinstance(message, PouwJob):
            self._on_job(peer, jobs, message)
        elif isinstance(message, PouwCancel):
            serving = jobs.serving.get(message.request_id)
            if serving is not None:  # an unknown id: the job finished while the cancel was on its way
                serving.stop.set()
        else:
            self._on_answer(peer, jobs, message)

    # --- requester side --------------------------------------------------------------------------------
    async def run_remote(self, peer_id: int, worker_pubkey: bytes, spec: JobSpec,
                         stop: threading.Event | None = None, on_text: TextSink | None = None) -> JobOutcome:
        """Run `spec` on the worker behind `peer_id`; WorkerLostError when it goes away or misbehaves."""
        peer = self._find_peer(peer_id)
        if peer is None or self._closing or not speaks_pouw(peer):
            raise WorkerLostError(f"peer={peer_id} is not connected")
        jobs = self._link(peer)
        request_id = next(_request_ids)
        pending = _Pending(spec, worker_pubkey, on_text is not None, asyncio.Queue())
        jobs.pending[request_id] = pending
        cancel_sent = False
        try:
            peer.send(PouwJob(request_id, spec, on_text is not None))
            while True:
                # The stop event is a threading.Event (set by the queue or a backend thread): poll it.
                poll = STOP_POLL_INTERVAL if stop is not None and not cancel_sent else None
                try:
                    kind, value = await asyncio.wait_for(pending.events.get(), poll)
                except TimeoutError:
                    if stop is not None and stop.is_set():
                        cancel_sent = True
                        peer.send(PouwCancel(request_id))
                    continue
                if kind == "token":
                    assert isinstance(value, str)
                    if on_text is not None:
                        result = on_text(value)
                        if result is not None:
                            await result
                elif kind == "done":
                    assert isinstance(value, JobOutcome)
                    return value
                else:
                    assert isinstance(value, Exception)
                    raise value
        except asyncio.CancelledError:
            if not cancel_sent and not peer.closed:
                peer.send(PouwCancel(request_id))
            raise
        finally:
            if jobs.pending.pop(request_id, None) is not None:
                jobs.finished.add(request_id)

    def _finish(self, jobs: _LinkJobs, request_id: int) -> None:
        jobs.pending.pop(request_id, None)
        jobs.finished.add(request_id)

    def _on_answer(self, peer: PouwPeer, jobs: _LinkJobs,
                   message: PouwToken | PouwResult | PouwErrorMessage) -> None:
        rid = message.request_id
        pending = jobs.pending.get(rid)
        if pending is None:
            if rid not in jobs.finished:  # late answers to finished requests are fine
                peer.misbehaving(SCORE_UNSOLICITED, f"unsolicited {message.command} {rid}")
            return
        if isinstance(message, PouwToken):
            if not pending.stream or message.seq != pending.next_seq:
                peer.misbehaving(SCORE_UNSOLICITED, f"pouwtoken {message.seq} out of order")
                return
            pending.next_seq += 1
            pending.streamed_bytes += len(message.text.encode("utf-8"))
            if pending.streamed_bytes > MAX_RESULT_TEXT_BYTES:
                # More text than any result may carry: the stream is not the job's output.
                peer.misbehaving(SCORE_UNSOLICITED, f"pouwtoken stream of request {rid} "
                                 f"exceeds {MAX_RESULT_TEXT_BYTES} bytes")
                self._finish(jobs, rid)
                peer.send(PouwCancel(rid))
                pending.events.put_nowait(("error", WorkerLostError(f"peer={peer.id} streamed too much")))
                return
            pending.events.put_nowait(("token", message.text))
        elif isinstance(message, PouwErrorMessage):
            error: Exception
            if message.code in RETRYABLE_ERRORS:
                error = WorkerLostError(f"peer={peer.id}: {message.code}: {message.message}")
            else:
                error = JobFailedError(message.code, message.message)
            self._finish(jobs, rid)
            pending.events.put_nowait(("error", error))
        else:
            self._finish(jobs, rid)
            problem = _result_problem(pending, message)
            if problem is not None:
                peer.misbehaving(SCORE_BAD_RESULT, f"pouwresult: {problem}")
                pending.events.put_nowait(("error", WorkerLostError(f"peer={peer.id} sent a bad result: "
                                                                     f"{problem}")))
                return
            embeddings = message.embeddings or None
            pending.events.put_nowait(("done", JobOutcome(message.receipt, text=message.text,
                                                          embeddings=embeddings)))

    # --- worker side -----------------------------------------------------------------------------------
    def _on_job(self, peer: PouwPeer, jobs: _LinkJobs, job: PouwJob) -> None:
        rid = job.request_id
        if self._executor is None or self._closing:
            peer.send(PouwErrorMessage(rid, "shutting-down" if self._closing else "not-a-worker",
                                       "this node runs no PoUW worker"))
            return
        if rid in jobs.serving:
            peer.send(PouwErrorMessage(rid, "duplicate-request", "this request id is running already"))
            return
        if len(jobs.serving) >= self._max_concurrency:
            peer.send(PouwErrorMessage(rid, "busy", f"{len(jobs.serving)} jobs of this peer are running"))
            return
        try:
            check_jobspec(job.spec, self.limits, int(self._clock()))
        except PouwError as exc:
            peer.send(PouwErrorMessage(rid, "invalid-job", str(exc)[:MAX_ERROR_MESSAGE_BYTES // 4]))
            return
        serving = _Serving(threading.Event())
        jobs.serving[rid] = serving
        task = asyncio.get_running_loop().create_task(self._serve(peer, jobs, rid, job, serving),
                                                      name=f"pouw-remote-job-{peer.id}-{rid}")
        serving.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, peer: PouwPeer, jobs: _LinkJobs, rid: int, job: PouwJob,
                     serving: _Serving) -> None:
        executor = self._executor
        assert executor is not None
        seq = itertools.count()

        def on_text(text: str) -> None:
            for piece in split_text(text):
                peer.send(PouwToken(rid, next(seq), piece))

        reply: Message
        try:
            outcome = await executor(job.spec, serving.stop, on_text if job.stream else None)
            reply = _result_message(rid, outcome)
        except asyncio.CancelledError:
            return  # the peer left or the node stops: nobody to answer
        except JobFailedError as exc:
            reply = PouwErrorMessage(rid, _error_code(exc.code), str(exc)[:MAX_ERROR_MESSAGE_BYTES // 4])
        except Exception as exc:  # an executor's failure is the job's, never the node's
            logger.warning("PoUW job %d of peer=%d failed: %s", rid, peer.id, exc)
            reply = PouwErrorMessage(rid, "failed", type(exc).__name__)
        finally:
            jobs.serving.pop(rid, None)
        peer.send(reply)


def _error_code(code: str) -> str:
    """A code as pouwerror carries it: 1..32 printable ASCII characters."""
    clean = "".join(c for c in code if " " < c <= "~")[:MAX_ERROR_CODE_BYTES]
    return clean or "failed"


def _result_message(rid: int, outcome: JobOutcome) -> Message:
    text = outcome.text or ""
    if len(text.encode("utf-8")) > MAX_RESULT_TEXT_BYTES:
        return PouwErrorMessage(rid, "output-too-large", f"the output exceeds {MAX_RESULT_TEXT_BYTES} bytes")
    vectors = tuple(tuple(float(x) for x in v) for v in outcome.embeddings or ())
    return PouwResult(rid, outcome.receipt, text, vectors)


def _result_problem(pending: _Pending, result: PouwResult) -> str | None:
    """Why a worker's result cannot be taken (None: it is the signed answer to the job we sent)."""
    receipt = result.receipt
    if receipt.worker_pubkey != pending.worker_pubkey:
        return "the receipt names another worker"
    if not verify_receipt_signature(receipt):
        return "bad receipt signature"
    try:
        receipt.check_matches(pending.spec)
    except PouwError as exc:
        return f"the receipt does not answer the job ({exc})"
    if isinstance(receipt.output, TokenOutput):
        if sha256(result.text.encode("utf-8")) != receipt.output.text_sha256:
            return "the text is not the receipt's output"
    elif isinstance(receipt.output, EmbeddingOutput):
        out = receipt.output
        vectors = result.embeddings
        packed = b"".join(_FLOAT.pack(x) for v in vectors for x in v)
        if len(vectors) != out.count or any(len(v) != out.dims for v in vectors) \
                or sha256(packed) != out.vectors_sha256:
            return "the vectors are not the receipt's output"
    return None


class _RemoteRunner(Protocol):
    async def run_remote(self, peer_id: int, worker_pubkey: bytes, spec: JobSpec,
                         stop: threading.Event | None = None,
                         on_text: TextSink | None = None) -> JobOutcome: ...


class RemotePeerWorker:
    """A worker reached over a PoUW link, with LocalWorker's `execute` shape (for run_routed)."""

    def __init__(self, runner: _RemoteRunner, peer_id: int, info: WorkerInfo) -> None:
        self.runner = runner
        self.peer_id = peer_id
        self.worker_info = info
        self.worker_id = info.worker_id

    async def execute(self, spec: JobSpec, stop: threading.Event | None = None,
                      on_text: TextSink | None = None, *, queued_ms: int = 0) -> JobOutcome:
        """Runs `spec` on the remote worker; WorkerLostError when the peer goes away mid-job."""
        pubkey = self.worker_info.pubkey
        if pubkey is None:
            raise WorkerLostError(f"{self.worker_id} has no worker key")
        return await self.runner.run_remote(self.peer_id, pubkey, spec, stop, on_text)
