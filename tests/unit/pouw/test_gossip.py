"""PouwGossip without sockets: nodes joined by in-memory links whose messages really go through the
wire encoding (serialize, then decode with the PoUW context), as aipgd.net would deliver them."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from pouw_factories import (
    VALIDATOR,
    WORKER,
    attestation,
    completion_spec,
    embed_receipt,
    embed_spec,
    token_receipt,
)

from aipgd.config import ArgsManager
from aipgd.core.params import get_params
from aipgd.net import messages as msg
from aipgd.net.connman_config import connman_config
from aipgd.net.message_base import Message
from aipgd.net.processing import PeerLogic
from aipgd.net.protocol import (
    MSG_POUW_ATTESTATION,
    MSG_POUW_RECEIPT,
    MSG_TX,
    NODE_NETWORK,
    NODE_POUW,
    NODE_WITNESS,
    POUW_PAYLOAD_LIMITS,
)
from pouw import gossip as gossip_module
from pouw import remotejobs as remotejobs_module
from pouw.attestation import Attestation
from pouw.gossip import LocalAdvert, PouwGossip, RemotePeerWorker
from pouw.jobspec import JobSpec
from pouw.limits import DEFAULT_LIMITS, PouwLimits
from pouw.receipt import EmbeddingOutput, FinishReason, Receipt, Usage
from pouw.router import WorkerDirectory, WorkerLostError, run_routed
from pouw.signing import PouwKey, sign_attestation, sign_receipt
from pouw.wire import (
    POUW_MESSAGE_TYPES,
    ModelCapability,
    PouwCancel,
    PouwCapsMessage,
    PouwErrorMessage,
    PouwJob,
    PouwReceiptMessage,
    PouwResult,
    PouwToken,
    WorkerCaps,
)
from pouw.worker import JobFailedError, JobOutcome, TextSink

REGTEST = get_params("regtest")
CTX = msg.DecodeContext(REGTEST.kawpow_activation_time, POUW_MESSAGE_TYPES, POUW_PAYLOAD_LIMITS)
NOW = 1_800_000_000 - 600  # the factories' jobs have deadline 1_800_000_000
OTHER = PouwKey(bytes.fromhex("55" * 32))
MODEL = ModelCapability("tiny-llama-2l", bytes(range(32)), 2048)
POUW_SERVICES = NODE_NETWORK | NODE_WITNESS | NODE_POUW
CORE_SERVICES = NODE_NETWORK | NODE_WITNESS


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class LinkPeer:
    """One end of an in-memory connection, as the gossip of `owner` sees the other node."""

    def __init__(self, net: Net, owner: Node, peer_id: int) -> None:
        self.net = net
        self.owner = owner
        self.id = peer_id
        self.remote = SimpleNamespace(services=POUW_SERVICES, nonce=0)
        self.local_nonce = 0
        self.successfully_connected = True
        self.closed = False
        self.other: LinkPeer | None = None
        self.sent: list[Message] = []
        self.misbehavior = 0
        self.reasons: list[str] = []

    def send(self, m: Message) -> None:
        if self.closed:
            return
        self.sent.append(m)
        assert self.other is not None
        self.net.queue.append((self.other, m.command, m.serialize()))

    def misbehaving(self, howmuch: int, reason: str) -> None:
        self.misbehavior += howmuch
        self.reasons.append(reason)

    def disconnect(self) -> None:
        for end in (self, self.other):
            assert end is not None
            if not end.closed:
                end.closed = True
                end.owner.peers.remove(end)
                end.owner.gossip.on_disconnected(end)

    def sent_of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.sent if type(m) is kind]


class Node:
    def __init__(self, name: str, directory: WorkerDirectory | None = None,
                 limits: PouwLimits = DEFAULT_LIMITS) -> None:
        self.name = name
        self.gossip = PouwGossip(directory, limits=limits, clock=lambda: NOW)
        self.peers: list[LinkPeer] = []
        self.gossip.start(lambda: list(self.peers))
        self.receipts: list[tuple[Receipt, JobSpec]] = []
        self.gossip.receipt_listeners.append(lambda r, spec: self.receipts.append((r, spec)))
        self.attestations: list[tuple[Attestation, int | None]] = []
        self.gossip.attestation_listeners.append(lambda a, origin: self.attestations.append((a, origin)))


class Net:
    """Delivers what the links carry, decoding each payload as a node's Peer would."""

    def __init__(self) -> None:
        self.queue: deque[tuple[LinkPeer, str, bytes]] = deque()
        self._ids = 0

    def connect(self, a: Node, b: Node, *, a_services: int = POUW_SERVICES,
                b_services: int = POUW_SERVICES) -> tuple[LinkPeer, LinkPeer]:
        """Returns (b as a sees it, a as b sees it), after the handshake."""
        self._ids += 2
        pa, pb = LinkPeer(self, a, self._ids), LinkPeer(self, b, self._ids + 1)
        pa.other, pb.other = pb, pa
        pa.remote.services, pb.remote.services = b_services, a_services
        pa.local_nonce = pb.remote.nonce = 1000 + self._ids  # a's version nonce to b
        pb.local_nonce = pa.remote.nonce = 2000 + self._ids
        a.peers.append(pa)
        b.peers.append(pb)
        a.gossip.on_connected(pa)
        b.gossip.on_connected(pb)
        return pa, pb

    async def deliver_one(self) -> bool:
        if not self.queue:
            return False
        dest, command, raw = self.queue.popleft()
        if dest.closed:
            return True
        m = msg.decode_message(command, raw, CTX)
        if isinstance(m, msg.Inv):
            dest.owner.gossip.on_inventory(dest, command, list(m.items))
        else:
            await dest.owner.gossip.handle(dest, m)
        return True

    async def settle(self) -> None:
        idle = 0
        while idle < 5:
            if await self.deliver_one():
                idle = 0
            else:
                idle += 1
                await asyncio.sleep(0)

    async def pumping(self, coro: Awaitable[Any], timeout: float = 5.0) -> Any:
        """Run `coro` while delivering messages in the background."""
        stop = asyncio.Event()

        async def pump() -> None:
            while not stop.is_set():
                if not await self.deliver_one():
                    await asyncio.sleep(0.001)

        task = asyncio.create_task(pump())
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            stop.set()
            await task


def advert(key: PouwKey = WORKER, concurrency: int = 2, tps: float = 25.0) -> LocalAdvert:
    return LocalAdvert(key, (MODEL,), concurrency, tps, "llama.cpp", deterministic=True)


def outcome_for(spec: JobSpec, key: PouwKey = WORKER, text: str = " there was") -> JobOutcome:
    receipt = replace(token_receipt(spec), worker_pubkey=key.pubkey)
    return JobOutcome(sign_receipt(receipt, key), text=text)


def streaming_executor(key: PouwKey = WORKER, pieces: tuple[str, ...] = (" there", " was"),
                       seen: list[JobSpec] | None = None) -> Callable[..., Awaitable[JobOutcome]]:
    async def execute(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
        if seen is not None:
            seen.append(spec)
        for piece in pieces:
            if on_text is not None:
                result = on_text(piece)
                if result is not None:
                    await result
            await asyncio.sleep(0)
        return outcome_for(spec, key, "".join(pieces))
    return execute


SPEC = completion_spec()  # the job token_receipt() answers


def signed_receipt(**changes: Any) -> Receipt:
    return sign_receipt(token_receipt(**changes), WORKER)


# --- capability adverts -------------------------------------------------------------------------------

def test_worker_caps_reach_a_pouw_peer_and_register_a_peer_worker() -> None:
    async def scenario() -> None:
        net, worker, requester = Net(), Node("worker"), Node("requester")
        worker.gossip.set_local_worker(advert(), streaming_executor())
        _, at_requester = net.connect(worker, requester)
        await net.settle()
        infos = requester.gossip.remote_workers()
        assert len(infos) == 1
        info = infos[0]
        assert info.worker_id == f"p2p:{WORKER.pubkey.hex()}"
        assert info.kind == "peer" and info.pubkey == WORKER.pubkey and not info.trusted
        assert info.max_concurrency == 2 and info.tokens_per_second == 25.0 and info.deterministic
        assert info.offer("tiny-llama-2l", MODEL.sha256) is not None
        assert at_requester.misbehavior == 0
        assert worker.gossip.remote_workers() == []  # the requester serves nothing
        # The worker goes away: so does its directory entry.
        at_requester.disconnect()
        assert requester.gossip.remote_workers() == []
        assert requester.gossip.directory.workers() == []
    run(scenario())


def test_caps_set_after_connecting_are_sent_to_every_pouw_peer_only() -> None:
    async def scenario() -> None:
        net, worker, pouw_peer, core_peer = Net(), Node("w"), Node("p"), Node("core")
        net.connect(worker, pouw_peer)
        to_core, _ = net.connect(worker, core_peer, b_services=CORE_SERVICES)
        worker.gossip.set_local_worker(advert(), streaming_executor())
        await net.settle()
        assert len(pouw_peer.gossip.remote_workers()) == 1
        assert to_core.sent == []  # never any PoUW traffic to a peer that did not signal NODE_POUW
    run(scenario())


def test_trust_set_by_the_operator_survives_a_caps_update() -> None:
    async def scenario() -> None:
        net, worker, requester = Net(), Node("w"), Node("r")
        worker.gossip.set_local_worker(advert(), streaming_executor())
        to_requester, at_requester = net.connect(worker, requester)
        await net.settle()
        wid = f"p2p:{WORKER.pubkey.hex()}"
        requester.gossip.directory.set_trusted(wid, True)
        requester.gossip._state[at_requester.id].caps_at -= 10  # past the minimum interval
        newer = advert(concurrency=3).caps_for(at_requester.local_nonce, NOW + 5)
        to_requester.send(PouwCapsMessage(newer))
        await net.settle()
        info = requester.gossip.directory.get(wid)
        assert info is not None and info.trusted and info.max_concurrency == 3
    run(scenario())


def test_caps_with_a_bad_signature_or_replayed_to_another_link_cost_100() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        to_b, at_b = net.connect(a, b)
        good = advert().caps_for(at_b.local_nonce, NOW)
        forged = replace(good, signature=advert(OTHER).caps_for(at_b.local_nonce, NOW).signature)
        to_b.send(PouwCapsMessage(forged))
        await net.settle()
        assert at_b.misbehavior == 100 and b.gossip.remote_workers() == []
        # Signed by the worker, but for another connection (its version nonce): a replay.
        c = Node("c")
        to_c, at_c = net.connect(a, c)
        to_c.send(PouwCapsMessage(good))
        await net.settle()
        assert at_c.misbehavior == 100 and c.gossip.remote_workers() == []
    run(scenario())


def test_repeated_caps_are_ignored_not_punished() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        to_b, at_b = net.connect(a, b)
        caps = advert().caps_for(at_b.local_nonce, NOW)
        for _ in range(5):
            to_b.send(PouwCapsMessage(caps))
        await net.settle()
        assert at_b.misbehavior == 0 and len(b.gossip.remote_workers()) == 1
    run(scenario())


def test_caps_from_the_far_future_are_ignored() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        to_b, at_b = net.connect(a, b)
        to_b.send(PouwCapsMessage(advert().caps_for(at_b.local_nonce, NOW + 3 * 3600)))
        await net.settle()
        assert at_b.misbehavior == 0 and b.gossip.remote_workers() == []
    run(scenario())


def test_pouw_messages_from_a_peer_without_node_pouw_cost_10_and_do_nothing() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        to_b, at_b = net.connect(a, b, a_services=CORE_SERVICES)
        to_b.send(PouwCapsMessage(advert().caps_for(at_b.local_nonce, NOW)))
        await net.settle()
        assert at_b.misbehavior == 10 and b.gossip.remote_workers() == []
        # Unknown inventory types from such a peer are ignored, as Core does.
        b.gossip.on_inventory(at_b, "inv", [msg.Inventory(MSG_POUW_RECEIPT, bytes(32))])
        assert at_b.sent == [] and at_b.misbehavior == 10
    run(scenario())


# --- receipts and attestations ---------------------------------------------------------------------------

def test_receipts_and_attestations_relay_across_three_nodes_once() -> None:
    async def scenario() -> None:
        net, a, b, c = Net(), Node("a"), Node("b"), Node("c")
        a_to_b, b_from_a = net.connect(a, b)
        b_to_c, c_from_b = net.connect(b, c)
        receipt = signed_receipt()
        att = sign_attestation(attestation(receipt_id=receipt.id), VALIDATOR)
        assert a.gossip.submit_receipt(receipt, SPEC)
        assert a.gossip.submit_attestation(att)
        await net.settle()
        for node in (b, c):
            assert node.gossip.relayed(MSG_POUW_RECEIPT, receipt.id) == PouwReceiptMessage(receipt, SPEC)
            assert node.gossip.relayed_receipt(receipt.id) == (receipt, SPEC)
            assert node.gossip.relayed(MSG_POUW_ATTESTATION, att.id) is not None
        # The job travels with its receipt, so every node's validator can re-check it; the node that
        # submitted it is not told of its own receipt.
        assert b.receipts == c.receipts == [(receipt, SPEC)] and a.receipts == []
        assert [o for a_, o in c.attestations] == [c_from_b.id]
        # Known-inventory filters: nobody announces an object back to where it came from.
        assert b_from_a.sent_of(msg.Inv) == []
        assert c_from_b.sent_of(msg.Inv) == []
        assert len(a_to_b.sent_of(msg.Inv)) == 2 and len(b_to_c.sent_of(msg.Inv)) == 2
        # Submitting again changes nothing.
        assert a.gossip.submit_receipt(receipt, SPEC)
        await net.settle()
        assert len(a_to_b.sent_of(msg.Inv)) == 2
        assert all(p.misbehavior == 0 for n in (a, b, c) for p in n.peers)
    run(scenario())


def test_an_object_announced_by_two_peers_is_asked_of_one() -> None:
    async def scenario() -> None:
        net, a1, a2, b = Net(), Node("a1"), Node("a2"), Node("b")
        net.connect(a1, b)
        net.connect(a2, b)
        receipt = signed_receipt()
        a1.gossip.submit_receipt(receipt, SPEC)
        a2.gossip.submit_receipt(receipt, SPEC)
        await net.settle()
        getdatas = [m for p in b.peers for m in p.sent_of(msg.GetData)]
        assert len(getdatas) == 1
        assert len(b.receipts) == 1
    run(scenario())


def test_a_receipt_with_a_bad_signature_costs_100_and_is_not_relayed() -> None:
    async def scenario() -> None:
        net, a, b, c = Net(), Node("a"), Node("b"), Node("c")
        a_to_b, b_from_a = net.connect(a, b)
        net.connect(b, c)
        bad = replace(signed_receipt(), worker_signature=sign_receipt(
            replace(token_receipt(), worker_pubkey=OTHER.pubkey), OTHER).worker_signature)
        # a lies: it announces and serves a receipt it could never have accepted itself.
        a.gossip._remember((MSG_POUW_RECEIPT, bad.id), PouwReceiptMessage(bad, SPEC))
        a_to_b.send(msg.Inv((msg.Inventory(MSG_POUW_RECEIPT, bad.id),)))
        await net.settle()
        assert b_from_a.misbehavior == 100
        assert b.gossip.relayed(MSG_POUW_RECEIPT, bad.id) is None and b.receipts == []
        assert c.receipts == []
        assert not a.gossip.submit_receipt(bad, SPEC)  # nor does a node relay its own bad receipt
    run(scenario())


def test_a_receipt_with_the_wrong_job_costs_100_and_is_not_relayed() -> None:
    async def scenario() -> None:
        net, a, b, c = Net(), Node("a"), Node("b"), Node("c")
        a_to_b, b_from_a = net.connect(a, b)
        b_to_c, _ = net.connect(b, c)
        receipt = signed_receipt()
        other_job = completion_spec(nonce=99)  # same model and input, another job id
        # a lies: it serves a well-signed receipt with a job it does not answer.
        a.gossip._remember((MSG_POUW_RECEIPT, receipt.id), PouwReceiptMessage(receipt, other_job))
        a_to_b.send(msg.Inv((msg.Inventory(MSG_POUW_RECEIPT, receipt.id),)))
        await net.settle()
        assert b_from_a.misbehavior == 100 and "wrong-job" in b_from_a.reasons[0]
        assert b.gossip.relayed(MSG_POUW_RECEIPT, receipt.id) is None and b.receipts == []
        assert b_to_c.sent_of(msg.Inv) == [] and c.receipts == []
        # Nor is such a pair accepted from this node's own side.
        assert not b.gossip.submit_receipt(receipt, other_job)
        assert not b.gossip.submit_receipt(sign_receipt(embed_receipt(), WORKER), SPEC)
        assert b.gossip.relayed(MSG_POUW_RECEIPT, receipt.id) is None
        # With its own job the same receipt is fine, and a later bad pairing does not stick to it.
        assert b.gossip.submit_receipt(receipt, SPEC)
        assert not b.gossip.submit_receipt(receipt, other_job)
        await net.settle()
        assert c.receipts == [(receipt, SPEC)]
    run(scenario())


def test_a_failing_receipt_listener_does_not_stop_the_relay() -> None:
    async def scenario() -> None:
        net, a, b, c = Net(), Node("a"), Node("b"), Node("c")
        net.connect(a, b)
        net.connect(b, c)

        def broken(receipt: Receipt, spec: JobSpec) -> None:
            raise RuntimeError("store is full")

        b.gossip.receipt_listeners.insert(0, broken)
        receipt = signed_receipt()
        assert a.gossip.submit_receipt(receipt, SPEC)
        await net.settle()
        assert b.receipts == c.receipts == [(receipt, SPEC)]
    run(scenario())


def test_a_receipt_whose_job_breaks_this_nodes_limits_is_kept_back_without_punishment() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b", limits=PouwLimits(max_prompt_bytes=4))
        _, b_from_a = net.connect(a, b)
        receipt = signed_receipt()  # its job's prompt is 16 bytes
        assert a.gossip.submit_receipt(receipt, SPEC)
        await net.settle()
        assert b_from_a.misbehavior == 0 and b.receipts == []
        assert b.gossip.relayed(MSG_POUW_RECEIPT, receipt.id) is None
    run(scenario())


def test_a_receipt_over_this_nodes_limits_is_kept_back_without_punishment() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b", limits=PouwLimits(max_tokens=2))
        _, b_from_a = net.connect(a, b)
        receipt = signed_receipt()  # 3 output tokens
        assert a.gossip.submit_receipt(receipt, SPEC)
        assert not b.gossip.submit_receipt(receipt, SPEC)
        await net.settle()
        assert b_from_a.misbehavior == 0 and b.receipts == []
        assert b.gossip.relayed(MSG_POUW_RECEIPT, receipt.id) is None
    run(scenario())


def test_unsolicited_objects_cost_20_but_duplicates_of_known_ones_nothing() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        a_to_b, b_from_a = net.connect(a, b)
        receipt = signed_receipt()
        a_to_b.send(PouwReceiptMessage(receipt, SPEC))
        await net.settle()
        assert b_from_a.misbehavior == 20 and b.receipts == []
        b.gossip.submit_receipt(receipt, SPEC)
        a_to_b.send(PouwReceiptMessage(receipt, SPEC))
        await net.settle()
        assert b_from_a.misbehavior == 20
    run(scenario())


def test_getdata_for_an_unknown_object_is_answered_with_notfound() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        a_to_b, b_from_a = net.connect(a, b)
        item = msg.Inventory(MSG_POUW_ATTESTATION, bytes(range(32)))
        a_to_b.send(msg.GetData((item,)))
        await net.settle()
        assert b_from_a.sent_of(msg.NotFound) == [msg.NotFound((item,))]
    run(scenario())


def test_notfound_lets_another_announcer_be_asked() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        a_to_b, b_from_a = net.connect(a, b)
        item = msg.Inventory(MSG_POUW_RECEIPT, signed_receipt().id)
        a_to_b.send(msg.Inv((item,)))
        await net.settle()  # b asks, a has nothing: notfound
        assert b.gossip._asked == {} and b.gossip._state[b_from_a.id].requested == {}
    run(scenario())


def test_the_relay_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gossip_module, "MAX_RELAY_OBJECTS", 3)
    node = Node("a")
    receipts = [signed_receipt(started=i, finished=i) for i in range(5)]
    for receipt in receipts:
        assert node.gossip.submit_receipt(receipt, SPEC)
    kept = [r for r in receipts if node.gossip.relayed(MSG_POUW_RECEIPT, r.id) is not None]
    assert kept == receipts[2:]
    # The cache counts what it serves: each receipt with its job.
    assert node.gossip._relay_bytes == sum(len(r.serialize()) + len(SPEC.serialize()) for r in kept)


def test_a_peer_can_have_only_so_many_objects_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gossip_module, "MAX_REQUESTS_PER_PEER", 2)

    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        a_to_b, b_from_a = net.connect(a, b)
        a_to_b.send(msg.Inv(tuple(msg.Inventory(MSG_POUW_RECEIPT, bytes([i]) * 32) for i in range(5))))
        await net.deliver_one()
        assert [len(g.items) for g in b_from_a.sent_of(msg.GetData)] == [2]
    run(scenario())


def test_peer_logic_hands_pouw_inventory_and_commands_to_the_handler_only() -> None:
    class Recorder:
        message_types = POUW_MESSAGE_TYPES
        payload_limits = POUW_PAYLOAD_LIMITS

        def __init__(self) -> None:
            self.inventory: list[tuple[str, list[msg.Inventory]]] = []
            self.handled: list[Message] = []

        async def handle(self, peer: Any, message: Message) -> None:
            self.handled.append(message)

        def on_inventory(self, peer: Any, command: str, items: list[msg.Inventory]) -> None:
            self.inventory.append((command, items))

    async def scenario() -> None:
        logic = PeerLogic(SimpleNamespace(), SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
        peer = SimpleNamespace(id=1, remote=SimpleNamespace(version=70028), successfully_connected=True)
        pouw_item, tx_item = msg.Inventory(MSG_POUW_RECEIPT, bytes(32)), msg.Inventory(MSG_TX, bytes(32))
        # Without a handler: PoUW inventory and commands are ignored, as AIPG Core does.
        await logic.handle(peer, msg.Inv((pouw_item,)))  # type: ignore[arg-type]
        await logic.handle(peer, msg.UnknownMessage("pouwcancel", b"\x00" * 8))  # type: ignore[arg-type]
        recorder = Recorder()
        logic.pouw = recorder  # type: ignore[assignment]
        seen: list[Message] = []

        async def sync_handle(p: Any, m: Message) -> bool:
            seen.append(m)
            return True
        logic.sync = SimpleNamespace(handle=sync_handle)  # type: ignore[assignment]
        await logic.handle(peer, msg.Inv((pouw_item, tx_item)))  # type: ignore[arg-type]
        await logic.handle(peer, msg.GetData((pouw_item,)))  # type: ignore[arg-type]
        await logic.handle(peer, PouwCancel(3))  # type: ignore[arg-type]
        assert recorder.inventory == [("inv", [pouw_item]), ("getdata", [pouw_item])]
        assert seen == [msg.Inv((tx_item,))]  # the rest of a mixed inv goes on to block/tx sync
        assert recorder.handled == [PouwCancel(3)]
    run(scenario())


# --- remote jobs ------------------------------------------------------------------------------------------

async def connected(executor: Callable[..., Awaitable[JobOutcome]] | None = None
                    ) -> tuple[Net, Node, Node, LinkPeer, LinkPeer, RemotePeerWorker]:
    net, worker, requester = Net(), Node("worker"), Node("requester")
    worker.gossip.set_local_worker(advert(), executor or streaming_executor())
    to_requester, to_worker = net.connect(worker, requester)
    await net.settle()
    remote = requester.gossip.remote_worker(f"p2p:{WORKER.pubkey.hex()}")
    assert remote is not None
    return net, worker, requester, to_requester, to_worker, remote


def test_a_streamed_remote_job_returns_tokens_then_the_checked_outcome() -> None:
    async def scenario() -> None:
        seen: list[JobSpec] = []
        net, _, _, to_requester, to_worker, remote = await connected(streaming_executor(seen=seen))
        spec = completion_spec()
        pieces: list[str] = []
        outcome = await net.pumping(remote.execute(spec, threading.Event(), pieces.append))
        assert seen == [spec]
        assert pieces == [" there", " was"]
        assert outcome.text == " there was" and outcome.receipt.job_id == spec.id
        assert [t.seq for t in to_requester.sent_of(PouwToken)] == [0, 1]
        assert to_worker.sent_of(PouwJob)[0].stream
        assert to_requester.misbehavior == to_worker.misbehavior == 0
        # Without a text sink, no tokens are sent at all.
        outcome = await net.pumping(remote.execute(spec))
        assert outcome.text == " there was"
        assert len(to_requester.sent_of(PouwToken)) == 2 and not to_worker.sent_of(PouwJob)[1].stream
    run(scenario())


def test_remote_embeddings_are_checked_against_the_receipt() -> None:
    vectors = ((0.5, -1.0, 2.0), (0.0, 0.25, 1.5))

    async def embed(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
        output = EmbeddingOutput.from_vectors(vectors)
        template = token_receipt()
        receipt = Receipt(spec.id, WORKER.pubkey, spec.model.sha256, spec.input_hash, output,
                          FinishReason.STOP, Usage(4, 0), template.timings,
                          replace(template.execution, sampling=None), 10, 10)
        return JobOutcome(sign_receipt(receipt, WORKER), embeddings=vectors)

    async def scenario() -> None:
        net, _, _, _, _, remote = await connected(embed)
        outcome = await net.pumping(remote.execute(embed_spec()))
        assert outcome.embeddings == vectors
    run(scenario())


def test_a_worker_lost_mid_job_raises_worker_lost_and_the_router_moves_on() -> None:
    async def scenario() -> None:
        directory = WorkerDirectory()
        net, requester = Net(), Node("requester", directory)
        hung, good = Node("hung"), Node("good")
        begun = asyncio.Event()

        async def hang(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            begun.set()
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        hung.gossip.set_local_worker(advert(WORKER, tps=50.0), hang)
        good.gossip.set_local_worker(advert(OTHER), streaming_executor(OTHER))
        to_hung, _ = net.connect(requester, hung)
        net.connect(requester, good)
        await net.settle()
        # The hung worker is preferred (faster), then dies mid-job.
        assert directory.eligible("tiny-llama-2l")[0].pubkey == WORKER.pubkey

        async def attempt(info: Any) -> JobOutcome:
            remote = requester.gossip.remote_worker(info.worker_id)
            assert remote is not None
            return await remote.execute(completion_spec())

        async def kill_when_begun() -> None:
            await begun.wait()
            to_hung.disconnect()

        killer = asyncio.create_task(kill_when_begun())
        outcome, used, lost = await net.pumping(run_routed(directory, "tiny-llama-2l", None, attempt))
        await killer
        assert used.pubkey == OTHER.pubkey and lost == [f"p2p:{WORKER.pubkey.hex()}"]
        assert outcome.receipt.worker_pubkey == OTHER.pubkey
        assert not any(link.serving for link in hung.gossip.jobs._links.values())  # the worker stopped too
    run(scenario())


@pytest.mark.parametrize("cheat", ["foreign-key", "wrong-text", "other-job", "unsigned"])
def test_a_bad_result_costs_100_and_counts_as_a_lost_worker(cheat: str) -> None:
    async def cheater(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
        good = outcome_for(spec)
        if cheat == "foreign-key":
            return outcome_for(spec, OTHER)
        if cheat == "wrong-text":
            return replace(good, text=" something else")
        if cheat == "other-job":
            return outcome_for(completion_spec(nonce=99))
        return replace(good, receipt=good.receipt.unsigned())

    async def scenario() -> None:
        net, _, _, _, to_worker, remote = await connected(cheater)
        with pytest.raises(WorkerLostError, match="bad result"):
            await net.pumping(remote.execute(completion_spec()))
        assert to_worker.misbehavior == 100
    run(scenario())


def test_worker_errors_reach_the_requester() -> None:
    async def failing(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
        raise JobFailedError("context-overflow", "too long")

    async def crashing(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
        raise RuntimeError("backend crashed")

    async def scenario() -> None:
        net, _, _, _, _, remote = await connected(failing)
        with pytest.raises(JobFailedError, match="too long") as info:
            await net.pumping(remote.execute(completion_spec()))
        assert info.value.code == "context-overflow"
        net, _, _, _, _, remote = await connected(crashing)
        with pytest.raises(JobFailedError) as info:
            await net.pumping(remote.execute(completion_spec()))
        assert info.value.code == "failed"
    run(scenario())


def test_a_node_without_a_worker_or_a_stale_job_is_refused_without_punishment() -> None:
    async def scenario() -> None:
        net, plain, requester = Net(), Node("plain"), Node("requester")
        _, to_plain = net.connect(plain, requester)
        with pytest.raises(WorkerLostError, match="not-a-worker"):
            await net.pumping(requester.gossip.run_remote(to_plain.id, WORKER.pubkey, completion_spec()))
        net, _, _, _, to_worker, remote = await connected()
        with pytest.raises(JobFailedError, match="deadline") as info:
            await net.pumping(remote.execute(completion_spec(deadline=NOW - 1)))
        assert info.value.code == "invalid-job"
        assert to_worker.misbehavior == to_plain.misbehavior == 0
    run(scenario())


def test_cancel_sets_the_executors_stop_and_the_worker_answers() -> None:
    async def scenario() -> None:
        stopped = asyncio.Event()

        async def slow(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            while not stop.is_set():
                await asyncio.sleep(0.01)
            stopped.set()
            raise JobFailedError("cancelled", "stopped on request")

        net, _, _, _, to_worker, remote = await connected(slow)
        stop = threading.Event()

        async def cancel_soon() -> None:
            await asyncio.sleep(0.05)
            stop.set()

        canceller = asyncio.create_task(cancel_soon())
        with pytest.raises(JobFailedError, match="stopped on request"):
            await net.pumping(remote.execute(completion_spec(), stop))
        await canceller
        assert stopped.is_set() and len(to_worker.sent_of(PouwCancel)) == 1
    run(scenario())


def test_cancelling_the_requesting_task_sends_pouwcancel() -> None:
    async def scenario() -> None:
        async def hang(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            while not stop.is_set():
                await asyncio.sleep(0.01)
            raise JobFailedError("cancelled", "stopped")

        net, worker, _, _, to_worker, remote = await connected(hang)
        task = asyncio.create_task(remote.execute(completion_spec()))
        await net.pumping(asyncio.sleep(0.05))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await net.pumping(asyncio.sleep(0.1))
        assert len(to_worker.sent_of(PouwCancel)) == 1
        assert not any(link.serving for link in worker.gossip.jobs._links.values())
        # The worker's late pouwerror for the cancelled request is ignored, not punished.
        assert to_worker.misbehavior == 0
    run(scenario())


def test_unsolicited_answers_cost_20() -> None:
    async def scenario() -> None:
        net, a, b = Net(), Node("a"), Node("b")
        a_to_b, b_from_a = net.connect(a, b)
        a_to_b.send(PouwToken(77, 0, "x"))
        a_to_b.send(PouwResult(77, signed_receipt(), " there was"))
        a_to_b.send(PouwErrorMessage(77, "busy"))
        await net.settle()
        assert b_from_a.misbehavior == 60
        # A cancel for a job that is not running is a harmless race.
        a_to_b.send(PouwCancel(77))
        await net.settle()
        assert b_from_a.misbehavior == 60
    run(scenario())


def test_out_of_order_tokens_are_punished_and_dropped() -> None:
    async def scenario() -> None:
        async def skipping(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            return outcome_for(spec)

        net, _, requester, to_requester, to_worker, remote = await connected(skipping)
        pieces: list[str] = []
        task = asyncio.create_task(remote.execute(completion_spec(), None, pieces.append))
        await asyncio.sleep(0)
        link = requester.gossip.jobs.link(to_worker.id)
        assert link is not None
        rid = next(iter(link.pending))
        to_requester.send(PouwToken(rid, 5, "late"))
        await net.pumping(task)
        assert pieces == [] and to_worker.misbehavior == 20
    run(scenario())


def test_a_token_stream_longer_than_any_result_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remotejobs_module, "MAX_RESULT_TEXT_BYTES", 10)

    async def scenario() -> None:
        net, _, _, _, to_worker, remote = await connected(streaming_executor(pieces=("0123456", "789abc")))
        with pytest.raises(WorkerLostError, match="streamed too much"):
            await net.pumping(remote.execute(completion_spec(), None, lambda text: None))
        assert to_worker.misbehavior == 20
    run(scenario())


def test_a_peer_cannot_run_more_jobs_than_the_advertised_concurrency() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def gated(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            await release.wait()
            return outcome_for(spec)

        net, _, _, _, to_worker, remote = await connected(gated)  # advertised concurrency: 2
        jobs = [asyncio.create_task(remote.execute(completion_spec())) for _ in range(3)]

        async def finish() -> list[Any]:
            await asyncio.sleep(0.05)
            release.set()
            return await asyncio.gather(*jobs, return_exceptions=True)

        results = await net.pumping(finish())
        assert sum(isinstance(r, JobOutcome) for r in results) == 2
        busy = [r for r in results if isinstance(r, WorkerLostError)]
        assert len(busy) == 1 and "busy" in str(busy[0])
        assert to_worker.misbehavior == 0
    run(scenario())


def test_close_fails_pending_jobs_as_lost() -> None:
    async def scenario() -> None:
        async def hang(spec: JobSpec, stop: threading.Event, on_text: TextSink | None) -> JobOutcome:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        net, worker, requester, _, _, remote = await connected(hang)
        task = asyncio.create_task(remote.execute(completion_spec()))
        await net.pumping(asyncio.sleep(0.05))
        await requester.gossip.close()
        await worker.gossip.close()
        with pytest.raises(WorkerLostError, match="shutting down"):
            await task
    run(scenario())


def test_caps_wire_object_is_what_the_directory_reflects() -> None:
    caps = advert().caps_for(5, NOW)
    assert isinstance(caps, WorkerCaps) and caps.verify() and caps.link_nonce == 5


def test_pouw_options_turn_the_network_side_on() -> None:
    params = get_params("regtest")
    for argv, on, links in ((["-pouwconnect=127.0.0.1:18444"], True, ["127.0.0.1:18444"]),
                            (["-pouw"], True, []), (["-pouwvalidator"], True, []), (["-pouwapi"], True, []),
                            ([], False, [])):
        args = ArgsManager()
        args.parse_command_line(argv)
        cfg = connman_config(args, params, "/t/")
        assert (cfg.pouw, cfg.pouw_connect) == (on, links)
