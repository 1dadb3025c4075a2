"""PouwGossip: what a node does with the pouw* P2P messages (docs/pouw-protocol.md "Network").

Owns the PoUW side of every peer: relay by inv/getdata of receipts (each with the job it answers)
and attestations (per-peer known inventory, one request in flight per object, a bounded relay
cache), workers' signed capability adverts (kept in a WorkerDirectory as "peer" workers) and the
misbehaviour each bad PoUW message earns; remote jobs are delegated to pouw.remotejobs. It talks
only to peers that signalled NODE_POUW. It must never touch sockets (Peer does), run models (the
executor does) nor judge a receipt's output (the validator does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aipgd.log import log_print
from aipgd.net import messages as msg
from aipgd.net.message_base import Message
from aipgd.net.protocol import MSG_POUW_ATTESTATION, MSG_POUW_RECEIPT, POUW_PAYLOAD_LIMITS
from pouw.attestation import Attestation
from pouw.errors import PouwError
from pouw.jobspec import JobSpec
from pouw.limits import DEFAULT_LIMITS, PouwLimits, check_jobspec, check_receipt
from pouw.receipt import Receipt
from pouw.remotejobs import (
    SCORE_UNSOLICITED,
    BoundedSet,
    JobExecutor,
    PouwPeer,
    RemoteJobs,
    RemotePeerWorker,
    speaks_pouw,
)
from pouw.router import ModelOffer, WorkerDirectory, WorkerInfo
from pouw.signing import PouwKey, verify_attestation_signature, verify_receipt_signature
from pouw.wire import (
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
)
from pouw.worker import JobOutcome, TextSink

# RemotePeerWorker, JobExecutor and PouwPeer live in pouw.remotejobs; importable from here as before.
__all__ = ["JobExecutor", "LocalAdvert", "PouwGossip", "PouwPeer", "RemotePeerWorker"]

logger = logging.getLogger(__name__)

# Misbehaviour (Core: Misbehaving). A payload that does not parse costs 20 in aipgd.net.messages, and
# an oversized one is a framing error (100, disconnect), as for every command. Duplicates cost nothing.
# The remote-job scores (bad result, unsolicited answer) are pouw.remotejobs'.
SCORE_BAD_SIGNATURE = 100  # caps, receipt or attestation whose signature does not verify (Core: invalid tx)
SCORE_WRONG_JOB = 100  # a pouwrcpt whose job is not the one its receipt answers: it can never be valid
SCORE_NOT_SIGNALLED = 10  # a pouw* command from a peer that did not signal NODE_POUW

MAX_RELAY_OBJECTS = 20_000  # receipts (with their jobs) and attestations kept to answer getdata
MAX_RELAY_BYTES = 64 * 1024 * 1024
MAX_SEEN = 100_000  # ids accepted lately: never requested again
MAX_KNOWN_PER_PEER = 50_000  # Core: the per-peer inventory filter
MAX_REQUESTS_PER_PEER = 1_000  # PoUW objects asked of one peer and not yet received
GETDATA_TIMEOUT = 60.0  # after this, another announcer may be asked for the same object
CAPS_MIN_INTERVAL = 1.0  # adverts more frequent than this are ignored
CAPS_MAX_FUTURE = 2 * 60 * 60  # Core's rule for block times, applied to advert times

_JOB_MESSAGES = (PouwJob, PouwCancel, PouwToken, PouwResult, PouwErrorMessage)


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


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why an object was not accepted: `score` is the sender's misbehaviour (0: policy, not punished)."""

    score: int
    reason: str


@dataclass(eq=False)
class _PeerState:
    known: BoundedSet = field(default_factory=lambda: BoundedSet(MAX_KNOWN_PER_PEER))
    requested: dict[tuple[int, bytes], float] = field(default_factory=dict)
    caps: WorkerCaps | None = None
    caps_at: float = float("-inf")
    worker_id: str | None = None


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
        self._seen = BoundedSet(MAX_SEEN)
        self._asked: dict[tuple[int, bytes], tuple[int, float]] = {}
        self._worker_peer: dict[str, int] = {}
        self._advert: LocalAdvert | None = None
        self.jobs = RemoteJobs(self._find_peer, limits=limits, clock=clock)
        # Called with each receipt accepted from a peer and the job it answers, so that a validator
        # can re-check it (receipts submitted here are not echoed: their submitter has them); with
        # each attestation accepted and the sending peer's id (None: submitted here); with each
        # capability advert accepted and the peer's id.
        self.receipt_listeners: list[Callable[[Receipt, JobSpec], None]] = []
        self.attestation_listeners: list[Callable[[Attestation, int | None], None]] = []
        self.caps_listeners: list[Callable[[WorkerCaps, int], None]] = []

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, peers: Callable[[], Iterable[PouwPeer]]) -> None:
        self._peers = peers

    async def close(self) -> None:
        """Stop the jobs run for peers and fail the jobs run on them (the node is shutting down)."""
        await self.jobs.close()

    # --- this node's worker ------------------------------------------------------------------------------
    def set_local_worker(self, advert: LocalAdvert | None, executor: JobExecutor | None) -> None:
        """Serve remote jobs with `executor` and advertise `advert` to every PoUW peer (None: stop)."""
        self._advert = advert
        if advert is None or executor is None:
            self.jobs.set_executor(None, 0)
            return
        self.jobs.set_executor(executor, advert.max_concurrency)
        for peer in self._pouw_peers():
            self._send_caps(peer)

    def _send_caps(self, peer: PouwPeer) -> None:
        if self._advert is not None:
            peer.send(PouwCapsMessage(self._advert.caps_for(peer.remote.nonce, int(self._clock()))))

    # --- peers -----------------------------------------------------------------------------------------
    @staticmethod
    def speaks_pouw(peer: PouwPeer) -> bool:
        return speaks_pouw(peer)

    def _pouw_peers(self) -> list[PouwPeer]:
        return [p for p in self._peers() if p.successfully_connected and not p.closed and speaks_pouw(p)]

    def _find_peer(self, peer_id: int) -> PouwPeer | None:
        return next((p for p in self._peers() if p.id == peer_id and not p.closed), None)

    def _peer_state(self, peer: PouwPeer) -> _PeerState:
        state = self._state.get(peer.id)
        if state is None:
            state = self._state[peer.id] = _PeerState()
        return state

    def on_connected(self, peer: PouwPeer) -> None:
        """After verack: PoUW peers learn our worker's capabilities (others hear nothing from us)."""
        if not speaks_pouw(peer):
            return
        self._peer_state(peer)
        self._send_caps(peer)

    def on_disconnected(self, peer: PouwPeer) -> None:
        self.jobs.on_disconnected(peer)
        state = self._state.pop(peer.id, None)
        if state is None:
            return
        for key in state.requested:
            if self._asked.get(key, (None,))[0] == peer.id:
                del self._asked[key]
        if state.worker_id is not None and self._worker_peer.get(state.worker_id) == peer.id:
            del self._worker_peer[state.worker_id]
            self.directory.remove(state.worker_id)
            log_print(logger, "net", "PoUW worker %s gone with peer=%d", state.worker_id, peer.id)

    # --- dispatch --------------------------------------------------------------------------------------
    async def handle(self, peer: PouwPeer, message: Message) -> None:
        if not speaks_pouw(peer):
            peer.misbehaving(SCORE_NOT_SIGNALLED, f"{message.command} without NODE_POUW")
            return
        if isinstance(message, _JOB_MESSAGES):
            self.jobs.handle(peer, message)
            return
        state = self._peer_state(peer)
        if isinstance(message, PouwCapsMessage):
            self._on_caps(peer, state, message.caps)
        elif isinstance(message, PouwReceiptMessage):
            self._on_object(peer, state, MSG_POUW_RECEIPT, message)
        elif isinstance(message, PouwAttestationMessage):
            self._on_object(peer, state, MSG_POUW_ATTESTATION, message)

    def on_inventory(self, peer: PouwPeer, command: str, items: list[msg.Inventory]) -> None:
        """PoUW items of an inv, getdata or notfound (aipgd.net.processing splits them out)."""
        if not speaks_pouw(peer):
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
        refusal = self._accept(message, origin=peer)
        if refusal is None:
            return
        if refusal.score:
            peer.misbehaving(refusal.score, f"{message.command} {obj.id_hex}: {refusal.reason}")
        else:
            log_print(logger, "net", "PoUW %s %s from peer=%d not relayed: %s", message.command, obj.id_hex,
                      peer.id, refusal.reason)

    def _check(self, message: PouwReceiptMessage | PouwAttestationMessage) -> _Refusal | None:
        """Whether an object may be kept and relayed: consensus-like rules first (a break costs the
        sender 100), then this node's policy (over its limits: not relayed, not punished)."""
        if isinstance(message, PouwAttestationMessage):
            if not verify_attestation_signature(message.attestation):
                return _Refusal(SCORE_BAD_SIGNATURE, "bad-signature")
            return None
        receipt, spec = message.receipt, message.spec
        try:
            receipt.check_matches(spec)
        except PouwError as exc:
            return _Refusal(SCORE_WRONG_JOB, f"wrong-job ({exc})")
        if not verify_receipt_signature(receipt):
            return _Refusal(SCORE_BAD_SIGNATURE, "bad-signature")
        try:
            check_jobspec(spec, self.limits)  # no deadline check: a receipt outlives its job's deadline
            check_receipt(receipt, self.limits)
        except PouwError as exc:
            return _Refusal(0, str(exc))
        return None

    def _accept(self, message: PouwReceiptMessage | PouwAttestationMessage,
                origin: PouwPeer | None) -> _Refusal | None:
        """Check, keep and announce an object; None when accepted, else why not."""
        refusal = self._check(message)
        if refusal is not None:
            return refusal
        obj: Receipt | Attestation
        if isinstance(message, PouwReceiptMessage):
            inv_type, obj = MSG_POUW_RECEIPT, message.receipt
        else:
            inv_type, obj = MSG_POUW_ATTESTATION, message.attestation
        key = (inv_type, obj.id)
        self._seen.add(key)
        self._remember(key, message)
        origin_id = origin.id if origin is not None else None
        log_print(logger, "net", "PoUW %s %s accepted from %s", message.command, obj.id_hex,
                  f"peer={origin_id}" if origin is not None else "this node")
        self._notify(message, origin_id)
        item = msg.Inventory(inv_type, obj.id)
        for peer in self._pouw_peers():
            known = self._peer_state(peer).known
            if peer is not origin and key not in known:
                known.add(key)
                peer.send(msg.Inv((item,)))
        return None

    def _notify(self, message: PouwReceiptMessage | PouwAttestationMessage, origin_id: int | None) -> None:
        if isinstance(message, PouwReceiptMessage):
            if origin_id is not None:
                for receipt_listener in self.receipt_listeners:
                    _call_listener(message.command, receipt_listener, message.receipt, message.spec)
        else:
            for attestation_listener in self.attestation_listeners:
                _call_listener(message.command, attestation_listener, message.attestation, origin_id)

    def _remember(self, key: tuple[int, bytes], message: Message) -> None:
        size = len(message.serialize())
        self._relay[key] = message
        self._relay_sizes[key] = size
        self._relay_bytes += size
        while len(self._relay) > MAX_RELAY_OBJECTS or self._relay_bytes > MAX_RELAY_BYTES:
            old, _ = self._relay.popitem(last=False)
            self._relay_bytes -= self._relay_sizes.pop(old)

    def submit_receipt(self, receipt: Receipt, spec: JobSpec) -> bool:
        """Relay a receipt made or received off the P2P layer (this node's worker, the API), with the
        job it answers so that validators can re-check it.

        False when it does not answer `spec`, its signature does not verify, or it or its job breaks
        this node's limits; True also when it was known already.
        """
        try:
            receipt.check_matches(spec)
        except PouwError:
            return False
        if (MSG_POUW_RECEIPT, receipt.id) in self._seen:
            return True
        return self._accept(PouwReceiptMessage(receipt, spec), origin=None) is None

    def submit_attestation(self, attestation: Attestation) -> bool:
        """Relay an attestation this node's validator signed (False: its signature does not verify)."""
        if (MSG_POUW_ATTESTATION, attestation.id) in self._seen:
            return True
        return self._accept(PouwAttestationMessage(attestation), origin=None) is None

    def relayed(self, inv_type: int, object_id: bytes) -> Message | None:
        """The pouwrcpt / pouwatt message kept for an object, if it is still in the relay cache."""
        return self._relay.get((inv_type, object_id))

    def relayed_receipt(self, receipt_id: bytes) -> tuple[Receipt, JobSpec] | None:
        """A receipt still in the relay cache, with the job it answers."""
        found = self._relay.get((MSG_POUW_RECEIPT, receipt_id))
        return (found.receipt, found.spec) if isinstance(found, PouwReceiptMessage) else None

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
        return RemotePeerWorker(self.jobs, peer_id, info)

    # --- remote jobs (pouw.remotejobs) -------------------------------------------------------------------
    async def run_remote(self, peer_id: int, worker_pubkey: bytes, spec: JobSpec,
                         stop: threading.Event | None = None, on_text: TextSink | None = None) -> JobOutcome:
        """Run `spec` on the worker behind `peer_id`; WorkerLostError when it goes away or misbehaves."""
        return await self.jobs.run_remote(peer_id, worker_pubkey, spec, stop, on_text)


def _call_listener(command: str, listener: Callable[..., None], *args: object) -> None:
    try:
        listener(*args)
    except Exception:  # a listener's failure (the store's, the validator's) is its own: relay goes on
        logger.exception("PoUW %s listener failed", command)
