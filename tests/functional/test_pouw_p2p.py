"""PoUW over P2P between real aipgd processes: -pouwconnect links signalled with NODE_POUW, a worker's
signed capability advert registered by the node it reaches, receipts and attestations relayed across
three nodes by inv/getdata (each receipt with the job it answers), and broken PoUW messages scored while
honest and Core peers are unaffected.

Objects enter and leave the network through raw test peers that speak the wire protocol, so every
step inside the nodes is the production code path (no test-only RPC)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from framework import TestNode, wait_until
from framework.p2p import REGTEST, RawPeer

from aipgd.core.serialize import ser_u32, ser_u64
from aipgd.net import messages as msg
from aipgd.net.netaddress import NetAddr, Service
from aipgd.net.protocol import (
    MSG_POUW_ATTESTATION,
    MSG_POUW_RECEIPT,
    NODE_NETWORK,
    NODE_POUW,
    NODE_WITNESS,
    POUW_PAYLOAD_LIMITS,
    PROTOCOL_VERSION,
    frame,
)
from pouw.attestation import Attestation, CheckMethod, Verdict
from pouw.jobspec import CompletionInput, JobSpec, ModelRef, SamplingParams
from pouw.receipt import ExecutionFacts, FinishReason, Receipt, Timings, TokenOutput, Usage
from pouw.signing import PouwKey, sign_attestation, sign_receipt
from pouw.wire import (
    POUW_MESSAGE_TYPES,
    ModelCapability,
    PouwCapsMessage,
    PouwErrorMessage,
    PouwJob,
    WorkerCaps,
)

NET = ["-debug=net"]
POUW_CTX = msg.DecodeContext(REGTEST.kawpow_activation_time, POUW_MESSAGE_TYPES, POUW_PAYLOAD_LIMITS)
WORKER = PouwKey(bytes.fromhex("11" * 32))
VALIDATOR = PouwKey(bytes.fromhex("22" * 32))
MAGIC = REGTEST.message_start


POUW_SERVICES = NODE_NETWORK | NODE_WITNESS | NODE_POUW


def pouw_peer(node: TestNode, source: str, services: int = POUW_SERVICES) -> RawPeer:
    """A raw peer that signals `services` (NODE_POUW by default) and completes the handshake."""
    peer = RawPeer(node.p2p_port, source)
    here = msg.NetworkAddress(0, Service(NetAddr.parse(source), 0))
    peer.send(msg.Version(PROTOCOL_VERSION, services, int(time.time()), here, here, 0x5EED, "/pouwpeer/", 0,
                          True))
    peer.wait_for("version")
    peer.wait_for("verack")
    peer.send(msg.Verack())
    return peer


def node_nonce(peer: RawPeer) -> int:
    version = next(m for m in peer.messages if isinstance(m, msg.Version))
    return version.nonce


def pouw_message(peer: RawPeer, command: str, timeout: float = 30.0) -> msg.Message:
    """The next `command` the node sent (the framework's codec leaves pouw* commands unparsed)."""
    raw = peer.wait_for_message(lambda m: isinstance(m, msg.UnknownMessage) and m.name == command, timeout)
    assert isinstance(raw, msg.UnknownMessage)
    return msg.decode_message(command, raw.payload, POUW_CTX)


def has_inv(peer: RawPeer, inv_type: int, object_id: bytes) -> Callable[[msg.Message], bool]:
    def accept(m: msg.Message) -> bool:
        return type(m) is msg.Inv and msg.Inventory(inv_type, object_id) in m.items
    return accept


def make_spec(nonce: int = 1) -> JobSpec:
    sampling = SamplingParams(max_tokens=16, temperature_milli=0, seed=7)
    return JobSpec(ModelRef("tiny-llama-2l", bytes(range(32))), CompletionInput("Hello"), sampling,
                   deadline=int(time.time()) + 600, nonce=nonce)


def make_receipt(spec: JobSpec) -> Receipt:
    sampling = spec.sampling
    now = int(time.time())
    receipt = Receipt(spec.id, WORKER.pubkey, spec.model.sha256, spec.input_hash,
                      TokenOutput.from_text([1, 2, 3], " world"), FinishReason.EOS, Usage(2, 3),
                      Timings(0, 5, 9), ExecutionFacts("llama.cpp", "0.3", 2, True, sampling), now, now)
    return sign_receipt(receipt, WORKER)


def make_attestation(receipt: Receipt) -> Attestation:
    att = Attestation(receipt.id, VALIDATOR.pubkey, Verdict.VALID, 1_000_000, CheckMethod.TEACHER_FORCED, 3,
                      bytes(32), int(time.time()))
    return sign_attestation(att, VALIDATOR)


def caps_for(peer: RawPeer) -> WorkerCaps:
    models = (ModelCapability("tiny-llama-2l", bytes(range(32)), 2048),)
    caps = WorkerCaps(WORKER.pubkey, models, 2, 40_000, "llama.cpp", int(time.time()), node_nonce(peer))
    return caps.signed(WORKER)


def pouw_peers(node: TestNode, count: int) -> list[dict[str, object]]:
    rpc = node.rpc()

    def linked() -> bool:
        peers = [p for p in rpc.getpeerinfo() if int(str(p["services"]), 16) & NODE_POUW]
        return len(peers) >= count
    wait_until(linked, timeout=60, what=f"{count} PoUW peer(s) of {node.datadir.name}")
    peers = rpc.getpeerinfo()
    # getpeerinfo's "pouw" (an AIPG extension) says the same as the service bit.
    assert all(p["pouw"] is bool(int(str(p["services"]), 16) & NODE_POUW) for p in peers)
    return [p for p in peers if p["pouw"]]


def test_pouwconnect_link_and_a_workers_caps_reach_the_node(make_node: Callable[..., TestNode]) -> None:
    b = make_node("b", extra_args=[*NET, "-pouw"])
    b.start()
    a = make_node("a", extra_args=[*NET, f"-pouwconnect={b.p2p_address}"])
    a.start()
    # The link is up, kept like -addnode (manual) and signalled with NODE_POUW on both sides.
    [link] = pouw_peers(a, 1)
    assert link["addnode"] is True and link["inbound"] is False
    [back] = pouw_peers(b, 1)
    assert back["inbound"] is True
    for node in (a, b):
        assert int(node.rpc().getnetworkinfo()["localservices"], 16) & NODE_POUW
    a.wait_for_log(r"is the PoUW link -pouwconnect=")
    # A worker's signed capability advert, bound to this connection, registers it at the node.
    worker = pouw_peer(b, "127.0.0.21")
    worker.send(PouwCapsMessage(caps_for(worker)))
    b.wait_for_log(rf"PoUW worker p2p:{WORKER.pubkey.hex()} registered from peer=\d+: tiny-llama-2l")
    # The same advert replayed on another connection does not verify there: 100, disconnected.
    replay = pouw_peer(b, "127.0.0.22")
    replay.send(PouwCapsMessage(caps_for(worker)))
    assert replay.closed_by_node()
    worker.send(msg.Ping(42))
    worker.wait_for_message(lambda m: m == msg.Pong(42))
    # A job sent to a node that runs no worker is refused with pouwerror, not punished.
    requester = pouw_peer(b, "127.0.0.23")
    requester.send_raw(frame(MAGIC, "pouwjob", PouwJob(5, make_spec(), True).serialize()))
    refusal = pouw_message(requester, "pouwerror")
    assert isinstance(refusal, PouwErrorMessage) and (refusal.request_id, refusal.code) == (5, "not-a-worker")
    assert [p["banscore"] for p in b.rpc().getpeerinfo() if str(p["addr"]).startswith("127.0.0.23")] == [0]
    for node in (a, b):
        assert node.stop() == 0


def test_receipts_and_attestations_relay_across_three_nodes(make_node: Callable[..., TestNode]) -> None:
    b = make_node("b", extra_args=[*NET, "-pouwvalidator"])
    b.start()
    a = make_node("a", extra_args=[*NET, f"-pouwconnect={b.p2p_address}"])
    c = make_node("c", extra_args=[*NET, f"-pouwconnect={b.p2p_address}"])
    a.start()
    c.start()
    pouw_peers(b, 2)
    pouw_peers(a, 1)
    pouw_peers(c, 1)
    injector = pouw_peer(a, "127.0.0.31")
    observer = pouw_peer(c, "127.0.0.32")
    core_peer = pouw_peer(c, "127.0.0.33", NODE_NETWORK | NODE_WITNESS)  # an AIPG Core node: no NODE_POUW
    pouw_peers(a, 2)
    pouw_peers(c, 2)
    spec = make_spec()
    receipt = make_receipt(spec)
    att = make_attestation(receipt)
    for inv_type, object_id, command, payload in (
            (MSG_POUW_RECEIPT, receipt.id, "pouwrcpt", receipt.serialize() + spec.serialize()),
            (MSG_POUW_ATTESTATION, att.id, "pouwatt", att.serialize())):
        item = msg.Inventory(inv_type, object_id)
        injector.send(msg.Inv((item,)))
        injector.wait_for_message(lambda m, item=item: type(m) is msg.GetData and item in m.items)
        injector.send_raw(frame(MAGIC, command, payload))
        # a -> b -> c, then c announces it to its PoUW peer, which fetches it.
        observer.wait_for_message(has_inv(observer, inv_type, object_id), timeout=60)
        observer.send(msg.GetData((item,)))
        got = pouw_message(observer, command)
        assert got.serialize() == payload  # a receipt reaches c with the job it answers
    # The injector is never offered back what it sent (known inventory), and a Core peer hears nothing.
    observer.send(msg.Ping(7))
    observer.wait_for_message(lambda m: m == msg.Pong(7))
    core_peer.send(msg.Ping(8))
    core_peer.wait_for_message(lambda m: m == msg.Pong(8))
    assert not any(isinstance(m, msg.UnknownMessage) and m.name.startswith("pouw")
                   for m in core_peer.messages)
    assert not any(type(m) is msg.Inv and any(i.type in (MSG_POUW_RECEIPT, MSG_POUW_ATTESTATION)
                                              for i in m.items) for m in core_peer.messages)
    assert not any(type(m) is msg.Inv for m in injector.messages)
    assert [p["pouw"] for p in c.rpc().getpeerinfo() if str(p["addr"]).startswith("127.0.0.33")] == [False]
    scores = {p["addr"]: p["banscore"] for n in (a, b, c) for p in n.rpc().getpeerinfo()}
    assert set(scores.values()) == {0}
    for node in (c, a, b):
        assert node.stop() == 0


def test_broken_pouw_messages_are_scored_while_an_honest_peer_stays(
        make_node: Callable[..., TestNode]) -> None:
    node = make_node("a", extra_args=[*NET, "-pouw"])
    node.start()
    honest = pouw_peer(node, "127.0.0.41")
    # A malformed payload costs 20: the fifth one crosses -banscore=100.
    malformed = pouw_peer(node, "127.0.0.42")
    for _ in range(4):
        malformed.send_raw(frame(MAGIC, "pouwcaps", b"\x01\x02\x03"))
    node.wait_for_log(r"Misbehaving: .*\(60 -> 80\) reason: malformed pouwcaps message")
    malformed.send_raw(frame(MAGIC, "pouwcaps", b"\x01\x02\x03"))
    assert malformed.closed_by_node()
    # A receipt with a bad signature costs 100 at once.
    forger = pouw_peer(node, "127.0.0.43")
    spec = make_spec()
    receipt = make_receipt(spec)
    # The worker's signature, moved onto a receipt with another finish time: it no longer verifies.
    bad = replace(receipt, finished=receipt.finished + 1)
    assert bad.worker_signature == receipt.worker_signature and bad.id != receipt.id
    forger.send(msg.Inv((msg.Inventory(MSG_POUW_RECEIPT, bad.id),)))
    forger.wait_for("getdata")
    forger.send_raw(frame(MAGIC, "pouwrcpt", bad.serialize() + spec.serialize()))
    assert forger.closed_by_node()
    # A well-signed receipt served with a job it does not answer costs 100 at once too.
    mismatcher = pouw_peer(node, "127.0.0.46")
    mismatcher.send(msg.Inv((msg.Inventory(MSG_POUW_RECEIPT, receipt.id),)))
    mismatcher.wait_for("getdata")
    mismatcher.send_raw(frame(MAGIC, "pouwrcpt", receipt.serialize() + make_spec(nonce=2).serialize()))
    assert mismatcher.closed_by_node()
    node.wait_for_log(r"Misbehaving: .*reason: pouwrcpt [0-9a-f]{64}: wrong-job")
    # An oversized PoUW message is refused on its header: the stream is dropped.
    oversized = pouw_peer(node, "127.0.0.44")
    oversized.send_raw(frame(MAGIC, "pouwtoken", bytes(POUW_PAYLOAD_LIMITS["pouwtoken"] + 1)))
    assert oversized.closed_by_node()
    # Answers to requests that were never made cost 20 each.
    stray = pouw_peer(node, "127.0.0.45")
    stray.send_raw(frame(MAGIC, "pouwtoken", ser_u64(99) + ser_u32(0) + b"\x01x"))
    node.wait_for_log(r"Misbehaving: .*\(0 -> 20\) reason: unsolicited pouwtoken 99")
    # The honest peer saw none of it.
    honest.send(msg.Ping(9))
    honest.wait_for_message(lambda m: m == msg.Pong(9))
    scores = {p["addr"]: p["banscore"] for p in node.rpc().getpeerinfo()}
    assert [s for a, s in scores.items() if a.startswith("127.0.0.41")] == [0]
    assert node.stop() == 0
