"""PouwGossip: what a node does with the pouw* P2P messages (docs/pouw-protocol.md "Network").

Owns the PoUW side of every peer: receipt and attestation relay by inv/getdata (per-peer known
inventory, one request in flight per object, a bounded relay cache), workers' signed capability
adverts (kept in a WorkerDirectory as "peer" workers), remote jobs in both directions (requester:
`RemotePeerWorker`; worker: a pluggable executor) and the misbehaviour each bad PoUW message
earns. It talks only to peers that signalled NODE_POUW. It must never touch sockets (Peer does),
run models (the executor does) nor judge a receipt's output (the validator does).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aipgd.core.hashes import sha256
from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.message_base import Message
from aipgd.net.protocol import MSG_POUW_ATTESTATION, MSG_POUW_RECEIPT, NODE_POUW, POUW_PAYLOAD_LIMITS
from pouw.attestation import Attestation
from pouw.errors import PouwError
from pouw.jobspec import JobSpec
from pouw.limits import DEFAULT_LIMITS, PouwLimits, check_jobspec, check_receipt
from pouw.receipt import EmbeddingOutput, Receipt, TokenOutput
from pouw.router import ModelOffer, WorkerDirectory, WorkerInfo, WorkerLostError
from pouw.signing import PouwKey, verify_attestation_signature, verify_receipt_signature
from pouw.wire import (
    MAX_ERROR_CODE_BYTES,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_RESULT_TEXT_BYTES,
    POUW_MESSAGE_TYPES,
    ModelCapability,
    PouwAttestationMessage,
    PouwCancel,
    PouwCapsMessage,
    PouwErrorMessage,
    PouwJob,
    PouwReceiptMessage,
    PouwResult,
    PouwToken,
    WorkerCaps,
    split_text,
)
from pouw.worker import JobFailedError, JobOutcome, TextSink

__all__ = ["JobExecutor", "LocalAdvert", "PouwGossip", "PouwPeer", "RemotePeerWorker"]

logger = logging.getLogger(__name__)

# Misbehaviour (Core: Misbehaving). A payload that does not parse costs 20 in aipgd.net.messages, and
# an oversized one is a framing error (100, disconnect), as for every command. Duplicates cost nothing.
SCORE_BAD_SIGNATURE = 100  # caps, receipt or attestation whose signature does not verify (Core: invalid tx)
SCORE_BAD_RESULT = 100  # a pouwresult whose receipt is unsigned, foreign or does not match job or output
SCORE_UNSOLICITED = 20  # pouwtoken/pouwresult/pouwerror for a request never sent, pouwrcpt/pouwatt not asked
SCORE_NOT_SIGNALLED = 10  # a pouw* command from a peer that did not signal NODE_POUW

MAX_RELAY_OBJECTS = 20_000  # receipts and attestations kept to answer getdata
MAX_RELAY_BYTES = 64 * 1024 * 1024
MAX_SEEN = 100_000  # ids accepted lately: never requested again
MAX_KNOWN_PER_PEER = 50_000  # Core: the per-peer inventory filter
MAX_REQUESTS_PER_PEER = 1_000  # PoUW objects asked of one peer and not yet received
GETDATA_TIMEOUT = 60.0  # after this, another announcer may be asked for the same object
CAPS_MIN_INTERVAL = 1.0  # adverts more frequent than this are ignored
CAPS_MAX_FUTURE = 2 * 60 * 60  # Core's rule for block times, applied to advert times
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
    """What the gossip needs of a connection (aipgd.net.peer.Peer, or a test fake)."""

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


class _BoundedSet:
    """Insertion-ordered set that forgets its oldest members beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, item: Hashable) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class LocalAdvert:
    """What this node's worker advertises: signed per link with `key` (pouwcaps)."""

    key: PouwKey
    models: tuple[ModelCapability, ...]
    max_concurrency: int = 1
    tokens_per_second: float = 0.0
    backend: str = "llama.cpp"
    deterministic: bool = False

    def caps_for(self, link_nonce: int, now: int) -> WorkerCaps:
        tps_milli = min(round(self.tokens_per_second * 1000), 0xFFFFFFFF)
        return WorkerCaps(self.key.pubkey, self.models, self.max_concurrency, tps_milli, self.backend, now,
                          link_nonce, int(self.deterministic)).signed(self.key)


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
class _PeerState:
    known: _BoundedSet = field(default_factory=lambda: _BoundedSet(MAX_KNOWN_PER_PEER))
    requested: dict[tuple[int, bytes], float] = field(default_factory=dict)
    caps: WorkerCaps | None = None
    caps_at: float = float("-inf")
    worker_id: str | None = None
    pending: dict[int, _Pending] = field(default_factory=dict)
    finished: _BoundedSet = field(default_factory=lambda: _BoundedSet(MAX_RECENT_REQUESTS))
    serving: dict[int, _Serving] = field(default_factory=dict)


class PouwGossip:
    """The PoUW message logic of one node (aipgd.net.processing.PouwHandler)."""

    message_types = POUW_MESSAGE_TYPES
    payload_limits = POUW_PAYLOAD_LIMITS

    def __init__(self, directory: WorkerDirectory | None = None, *, limits: PouwLimits = DEFAULT_LIMITS,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        # The service passes its own directory, so that remote workers route like local ones.
        self.directory = directory if directory is not None else WorkerDirectory()
        self.limits = limits
        self._clock = clock
        self._monotonic = monotonic
        self._peers: Callable[[], Iterable[PouwPeer]] = list
        self._state: dict[int, _PeerState] = {}
        self._relay: OrderedDict[tuple[int, bytes], Message] = OrderedDict()
        self._relay_sizes: dict[tuple[int, bytes], int] = {}
        self._relay_bytes = 0
        self._seen = _BoundedSet(MAX_SEEN)
        self._asked: dict[tuple[int, bytes], tuple[int, float]] = {}
        self._worker_peer: dict[str, int] = {}
        self._advert: LocalAdvert | None = None
        self._executor: JobExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        # Called with each receipt / attestation / advert accepted from a peer (and the peer's id).
        self.receipt_listeners: list[Callable[[object, int | None], None]] = []
        self.attestation_listeners: list[Callable[[object, int | None], None]] = []
        self.caps_listeners: list[Callable[[WorkerCaps, int], None]] = []

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, peers: Callable[[], Iterable[PouwPeer]]) -> None:
        self._peers = peers

    async def close(self) -> None:
        """Stop the jobs run for peers and fail the jobs run on them (the node is shutting down)."""
        self._closing = True
        for state in self._state.values():
            for serving in state.serving.values():
                serving.stop.set()
            for pending in state.pending.values():
                pending.events.put_nowait(("lost", WorkerLostError("the node is shutting down")))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- this node's worker ------------------------------------------------------------------------------
    def set_local_worker(self, advert: LocalAdvert | None, executor: JobExecutor | None) -> None:
        """Serve remote jobs with `executor` and advertise `advert` to every PoUW peer (None: stop)."""
        self._advert = advert
        self._executor = executor
        if advert is not None:
            for peer in self._pouw_peers():
                self._send_caps(peer)

    def _send_caps(self, peer: PouwPeer) -> None:
        if self._advert is not None:
            peer.send(PouwCapsMessage(self._advert.caps_for(peer.remote.nonce, int(self._clock()))))

    # --- peers -----------------------------------------------------------------------------------------
    @staticmethod
    def speaks_pouw(peer: PouwPeer) -> bool:
        return bool(peer.remote.services & NODE_POUW)

    def _pouw_peers(self) -> list[PouwPeer]:
        return [p for p in self._peers() if p.successfully_connected and not p.closed and self.speaks_pouw(p)]

    def _find_peer(self, peer_id: int) -> PouwPeer | None:
        return next((p for p in self._peers() if p.id == peer_id and not p.closed), None)

    def _peer_state(self, peer: PouwPeer) -> _PeerState:
        state = self._state.get(peer.id)
        if state is None:
            state = self._state[peer.id] = _PeerState()
        return state

    def on_connected(self, peer: PouwPeer) -> None:
        """After verack: PoUW peers learn our worker's capabilities (others hear nothing from us)."""
        if not self.speaks_pouw(peer):
            return
        self._peer_state(peer)
        self._send_caps(peer)

    def on_disconnected(self, peer: PouwPeer) -> None:
        state = self._state.pop(peer.id, None)
        if state is None:
            return
        for key in state.requested:
            if self._asked.get(key, (None,))[0] == peer.id:
                del self._asked[key]
        for pending in state.pending.values():
            pending.events.put_nowait(("lost", WorkerLostError(f"peer={peer.id} disconnected mid-job")))
        for serving in state.serving.values():
            serving.stop.set()
            if serving.task is not None:
                serving.task.cancel()
        if state.worker_id is not None and self._worker_peer.get(state.worker_id) == peer.id:
            del self._worker_peer[state.worker_id]
            self.directory.remove(state.worker_id)
            log_print(logger, "net", "PoUW worker %s gone with peer=%d", state.worker_id, peer.id)

    # --- dispatch --------------------------------------------------------------------------------------
    async def handle(self, peer: PouwPeer, message: Message) -> None:
        if not self.speaks_pouw(peer):
            peer.misbehaving(SCORE_NOT_SIGNALLED, f"{message.command} without NODE_POUW")
            return
        state = self._peer_state(peer)
        if isinstance(message, PouwCapsMessage):
            self._on_caps(peer, state, message.caps)
        elif isinstance(message, PouwReceiptMessage):
            self._on_object(peer, state, MSG_POUW_RECEIPT, message)
        elif isinstance(message, PouwAttestationMessage):
            self._on_object(peer, state, MSG_POUW_ATTESTATION, message)
        elif isinstance(message, PouwJob):
            self._on_job(peer, state, message)
        elif isinstance(message, PouwCancel):
            serving = state.serving.get(message.request_id)
            if serving is not None:  # an unknown id: the job finished while the cancel was on its way
                serving.stop.set()
        elif isinstance(message, PouwToken | PouwResult | PouwErrorMessage):
            self._on_answer(peer, state, message)

    def on_inventory(self, peer: PouwPeer, command: str, items: list[msg.Inventory]) -> None:
        """PoUW items of an inv, getdata or notfound (aipgd.net.processing splits them out)."""
        if not self.speaks_pouw(peer):
            return  # Core ignores inventory types it does not know
        state = self._peer_state(peer)
        if command == "inv":
            self._on_inv(peer, state, items)
        elif command == "getdata":
            missing = []
            for item in items:
                found = self._relay.get((item.type, item.hash))
                if found is None:
                    missing.append(item)
                else:
                    state.known.add((item.type, item.hash))
                    peer.send(found)
            if missing:
                peer.send(msg.NotFound(tuple(missing)))
        elif command == "notfound":
            for item in items:
                key = (item.type, item.hash)
                state.requested.pop(key, None)
                if self._asked.get(key, (None,))[0] == peer.id:
                    del self._asked[key]

    # --- receipts and attestations -----------------------------------------------------------------------
    def _on_inv(self, peer: PouwPeer, state: _PeerState, items: list[msg.Inventory]) -> None:
        now = self._monotonic()
        wanted = []
        for item in items:
            key = (item.type, item.hash)
            state.known.add(key)
            if key in self._seen or key in state.requested:
                continue
            asked = self._asked.get(key)
            if asked is not None and now - asked[1] < GETDATA_TIMEOUT:
                continue
            if len(state.requested) >= MAX_REQUESTS_PER_PEER:
                break
            state.requested[key] = now
            self._asked[key] = (peer.id, now)
            wanted.append(item)
        if wanted:
            peer.send(msg.GetData(tuple(wanted)))

    def _on_object(self, peer: PouwPeer, state: _PeerState, inv_type: int,
                   message: PouwReceiptMessage | PouwAttestationMessage) -> None:
        obj = message.receipt if isinstance(message, PouwReceiptMessage) else message.attestation
        key = (inv_type, obj.id)
        if state.requested.pop(key, None) is None:
            if key not in self._seen:
                peer.misbehaving(SCORE_UNSOLICITED, f"unsolicited {message.command} {obj.id_hex}")
            return
        if self._asked.get(key, (None,))[0] == peer.id:
            del self._asked[key]
        state.known.add(key)
        if key in self._seen:
            return  # a duplicate (asked of two peers after a timeout): ignored, not punished
        verdict = self._accept(message, origin=peer)
        if verdict == "bad-signature":
            peer.misbehaving(SCORE_BAD_SIGNATURE, f"{message.command} {obj.id_hex}: bad signature")
        elif verdict is not None:
            log_print(logger, "net", "PoUW %s %s from peer=%d not relayed: %s", message.command, obj.id_hex,
                      peer.id, verdict)

    def _accept(self, message: PouwReceiptMessage | PouwAttestationMessage,
                origin: PouwPeer | None) -> str | None:
        """Check, keep and announce an object. None when accepted; else why not: "bad-signature"
        (misbehaviour) or a policy reason (over this node's limits: not relayed, not punished)."""
        obj: Receipt | Attestation
        if isinstance(message, PouwReceiptMessage):
            inv_type, obj = MSG_POUW_RECEIPT, message.receipt
            valid = verify_receipt_signature(message.receipt)
            listeners = self.receipt_listeners
        else:
            inv_type, obj = MSG_POUW_ATTESTATION, message.attestation
            valid = verify_attestation_signature(message.attestation)
            listeners = self.attestation_listeners
        if not valid:
            return "bad-signature"
        if isinstance(obj, Receipt):
            try:
                check_receipt(obj, self.limits)
            except PouwError as exc:
                return str(exc)
        key = (inv_type, obj.id)
        self._seen.add(key)
        self._remember(key, message)
        origin_id = origin.id if origin is not None else None
        log_print(logger, "net", "PoUW %s %s accepted from %s", message.command, obj.id_hex,
                  f"peer={origin_id}" if origin is not None else "this node")
        for listener in listeners:
            listener(obj, origin_id)
        item = msg.Inventory(inv_type, obj.id)
        for peer in self._pouw_peers():
            known = self._peer_state(peer).known
            if peer is not origin and key not in known:
                known.add(key)
                peer.send(msg.Inv((item,)))
        return None

    def _remember(self, key: tuple[int, bytes], message: Message) -> None:
        size = len(message.serialize())
        self._relay[key] = message
        self._relay_sizes[key] = size
        self._relay_bytes += size
        while len(self._relay) > MAX_RELAY_OBJECTS or self._relay_bytes > MAX_RELAY_BYTES:
            old, _ = self._relay.popitem(last=False)
            self._relay_bytes -= self._relay_sizes.pop(old)

    def submit_receipt(self, receipt: Receipt) -> bool:
        """Relay a receipt made or received off the P2P layer (this node's worker, the API).

        False when its signature does not verify or it breaks this node's limits; True also when it
        was known already.
        """
        if (MSG_POUW_RECEIPT, receipt.id) in self._seen:
            return True
        return self._accept(PouwReceiptMessage(receipt), origin=None) is None

    def submit_attestation(self, attestation: Attestation) -> bool:
        """Relay an attestation this node's validator signed (False: its signature does not verify)."""
        if (MSG_POUW_ATTESTATION, attestation.id) in self._seen:
            return True
        return self._accept(PouwAttestationMessage(attestation), origin=None) is None

    def relayed(self, inv_type: int, object_id: bytes) -> Message | None:
        """The pouwrcpt / pouwatt message kept for an object, if it is still in the relay cache."""
        return self._relay.get((inv_type, object_id))

    # --- capability adverts ------------------------------------------------------------------------------
    def _on_caps(self, peer: PouwPeer, state: _PeerState, caps: WorkerCaps) -> None:
        now = self._monotonic()
        if state.caps is not None and (caps.id == state.caps.id or now - state.caps_at < CAPS_MIN_INTERVAL
                                       or caps.time < state.caps.time):
            return  # a repeat, too soon, or older than the one we hold: ignored
        if caps.link_nonce != peer.local_nonce or not caps.verify():
            peer.misbehaving(SCORE_BAD_SIGNATURE, "pouwcaps: bad signature")
            return
        if caps.time > self._clock() + CAPS_MAX_FUTURE:
            log_print(logger, "net", "pouwcaps from peer=%d is timed in the future; ignored", peer.id)
            return
        state.caps = caps
        state.caps_at = now
        worker_id = f"p2p:{caps.worker_pubkey.hex()}"
        if state.worker_id is not None and state.worker_id != worker_id \
                and self._worker_peer.get(state.worker_id) == peer.id:
            del self._worker_peer[state.worker_id]
            self.directory.remove(state.worker_id)
        state.worker_id = worker_id
        self._worker_peer[worker_id] = peer.id
        old = self.directory.get(worker_id)
        self.directory.add(WorkerInfo(
            worker_id, tuple(ModelOffer(m.name, m.sha256 if any(m.sha256) else None, m.context_length)
                             for m in caps.models),
            max_concurrency=caps.max_concurrency, tokens_per_second=caps.tokens_per_second,
            trusted=old.trusted if old is not None else False, kind="peer", pubkey=caps.worker_pubkey,
            deterministic=caps.deterministic))
        logger.info("PoUW worker %s registered from peer=%d: %s", worker_id, peer.id,
                    ", ".join(m.name for m in caps.models))
        for listener in self.caps_listeners:
            listener(caps, peer.id)

    def remote_workers(self) -> list[WorkerInfo]:
        """The workers reached through PoUW peers (what pouw_listworkers shows as "peer" workers)."""
        return [w for w in self.directory.workers() if w.worker_id in self._worker_peer]

    def remote_worker(self, worker_id: str) -> RemotePeerWorker | None:
        peer_id = self._worker_peer.get(worker_id)
        info = self.directory.get(worker_id)
        if peer_id is None or info is None:
            return None
        return RemotePeerWorker(self, peer_id, info)

    # --- remote jobs: requester side ---------------------------------------------------------------------
    async def run_remote(self, peer_id: int, worker_pubkey: bytes, spec: JobSpec,
                         stop: threading.Event | None = None, on_text: TextSink | None = None) -> JobOutcome:
        """Run `spec` on the worker behind `peer_id`; WorkerLostError when it goes away or misbehaves."""
        peer = self._find_peer(peer_id)
        if peer is None or self._closing or not self.speaks_pouw(peer):
            raise WorkerLostError(f"peer={peer_id} is not connected")
        state = self._peer_state(peer)
        request_id = next(_request_ids)
        pending = _Pending(spec, worker_pubkey, on_text is not None, asyncio.Queue())
        state.pending[request_id] = pending
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
            if state.pending.pop(request_id, None) is not None:
                state.finished.add(request_id)

    def _on_answer(self, peer: PouwPeer, state: _PeerState,
                   message: PouwToken | PouwResult | PouwErrorMessage) -> None:
        pending = state.pending.get(message.request_id)
        if pending is None:
            if message.request_id not in state.finished:  # late answers to finished requests are fine
                peer.misbehaving(SCORE_UNSOLICITED, f"unsolicited {message.command} {message.request_id}")
            return
        if isinstance(message, PouwToken):
            if not pending.stream or message.seq != pending.next_seq:
                peer.misbehaving(SCORE_UNSOLICITED, f"pouwtoken {message.seq} out of order")
                return
            pending.next_seq += 1
            pending.streamed_bytes += len(message.text.encode("utf-8"))
            if pending.streamed_bytes > MAX_RESULT_TEXT_BYTES:
                # More text than any result may carry: the stream is not the job's output.
                peer.misbehaving(SCORE_UNSOLICITED, f"pouwtoken stream of request {message.request_id} "
                                 f"exceeds {MAX_RESULT_TEXT_BYTES} bytes")
                state.pending.pop(message.request_id)
                state.finished.add(message.request_id)
                peer.send(PouwCancel(message.request_id))
                pending.events.put_nowait(("error", WorkerLostError(f"peer={peer.id} streamed too much")))
                return
            pending.events.put_nowait(("token", message.text))
        elif isinstance(message, PouwErrorMessage):
            error: Exception
            if message.code in RETRYABLE_ERRORS:
                error = WorkerLostError(f"peer={peer.id}: {message.code}: {message.message}")
            else:
                error = JobFailedError(message.code, message.message)
            state.pending.pop(message.request_id)
            state.finished.add(message.request_id)
            pending.events.put_nowait(("error", error))
        else:
            state.pending.pop(message.request_id)
            state.finished.add(message.request_id)
            problem = _result_problem(pending, message)
            if problem is not None:
                peer.misbehaving(SCORE_BAD_RESULT, f"pouwresult: {problem}")
                pending.events.put_nowait(("error", WorkerLostError(f"peer={peer.id} sent a bad result: "
                                                                     f"{problem}")))
                return
            embeddings = message.embeddings or None
            pending.events.put_nowait(("done", JobOutcome(message.receipt, text=message.text,
                                                          embeddings=embeddings)))

    # --- remote jobs: worker side ------------------------------------------------------------------------
    def _on_job(self, peer: PouwPeer, state: _PeerState, job: PouwJob) -> None:
        rid = job.request_id
        if self._executor is None or self._advert is None or self._closing:
            peer.send(PouwErrorMessage(rid, "shutting-down" if self._closing else "not-a-worker",
                                       "this node runs no PoUW worker"))
            return
        if rid in state.serving:
            peer.send(PouwErrorMessage(rid, "duplicate-request", "this request id is running already"))
            return
        if len(state.serving) >= self._advert.max_concurrency:
            peer.send(PouwErrorMessage(rid, "busy", f"{len(state.serving)} jobs of this peer are running"))
            return
        try:
            check_jobspec(job.spec, self.limits, int(self._clock()))
        except PouwError as exc:
            peer.send(PouwErrorMessage(rid, "invalid-job", str(exc)[:MAX_ERROR_MESSAGE_BYTES // 4]))
            return
        serving = _Serving(threading.Event())
        state.serving[rid] = serving
        task = asyncio.get_running_loop().create_task(self._serve(peer, state, rid, job, serving),
                                                      name=f"pouw-remote-job-{peer.id}-{rid}")
        serving.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, peer: PouwPeer, state: _PeerState, rid: int, job: PouwJob,
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
            state.serving.pop(rid, None)
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


class RemotePeerWorker:
    """A worker reached over a PoUW link, with LocalWorker's `execute` shape (for run_routed)."""

    def __init__(self, gossip: PouwGossip, peer_id: int, info: WorkerInfo) -> None:
        self.gossip = gossip
        self.peer_id = peer_id
        self.worker_info = info
        self.worker_id = info.worker_id

    async def execute(self, spec: JobSpec, stop: threading.Event | None = None,
                      on_text: TextSink | None = None, *, queued_ms: int = 0) -> JobOutcome:
        """Runs `spec` on the remote worker; WorkerLostError when the peer goes away mid-job."""
        pubkey = self.worker_info.pubkey
        if pubkey is None:
            raise WorkerLostError(f"{self.worker_id} has no worker key")
        return await self.gossip.run_remote(self.peer_id, pubkey, spec, stop, on_text)
