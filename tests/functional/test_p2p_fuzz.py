"""A live node under hostile peers (Core: p2p_invalid_messages, p2p_invalid_block, p2p_unrequested_blocks
in spirit): for every message type of the codec, garbage and truncated payloads, length fields beyond
the payload and beyond the limit, bad checksums and foreign magic, plus semantically invalid headers,
blocks and floods, each from its own 127.x.y.z source. The node stays up, scores and bans as Core,
and an honest peer connected throughout still gets a new block."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest
from framework import TestNode
from framework.p2p import MAGIC, REGTEST, RawPeer
from framework.util import wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import get_params
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.net import messages as msg
from aipgd.net.netaddress import NetAddr, Service
from aipgd.net.protocol import MAX_ADDR_TO_SEND, MAX_INV_SZ, MSG_BLOCK, MSG_TX, ProtocolError, frame

COMMANDS = sorted(msg.MESSAGE_TYPES)
MAINNET_MAGIC = get_params("main").message_start
CTX = msg.DecodeContext(REGTEST.kawpow_activation_time)
MALFORMED_PER_PEER = 4  # 4 x 20: scored, not yet banned


def _malformed(command: str, payload: bytes) -> bool:
    try:
        msg.decode_message(command, payload, CTX)
    except ProtocolError:
        return True
    return False


def _malformed_payloads(command: str) -> list[bytes]:
    """Payloads the codec must refuse: hypothesis-drawn garbage and truncations of it."""
    found: list[bytes] = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=1, max_size=160), st.integers(min_value=0, max_value=160))
    def draw(blob: bytes, cut: int) -> None:
        for payload in (blob, blob[:cut]):
            if len(found) < MALFORMED_PER_PEER and _malformed(command, payload):
                found.append(payload)

    draw()
    return found


def _source(group: int, n: int) -> str:
    return f"127.{group}.{n // 250}.{n % 250 + 1}"


def _framing_variants(command: str) -> dict[str, bytes]:
    payload = random.Random(command).randbytes(8)
    good = frame(MAGIC, command, payload)
    bad_checksum = bytearray(good)
    bad_checksum[20] ^= 0xFF
    over_limit = MAGIC + command.encode().ljust(12, b"\x00") + struct.pack("<I", 8_000_001) + bytes(4)
    return {"checksum": bytes(bad_checksum), "oversized": over_limit,
            "magic": frame(MAINNET_MAGIC, command, payload)}


def _unconnected_header(seed: int) -> BlockHeader:
    return BlockHeader(0x30000000, random.Random(seed).randbytes(32), bytes(32), 1_700_000_000,
                       0x207FFFFF, 0, height=5, nonce64=seed, mix_hash=bytes(32), kawpow=True)


def _semantic_offences() -> dict[str, tuple[list[msg.Message], int, str | None]]:
    """name -> (messages, the banscore Core gives, the reply Core sends or None)."""
    genesis_child = BlockHeader(0x30000000, REGTEST.genesis_hash, bytes(32), 1_700_000_000, 0x207FFFFF, 0,
                                height=1, nonce64=1, mix_hash=bytes([7]) * 32, kawpow=True)
    coinbase = Transaction(2, (TxIn(OutPoint(bytes(32), 0xFFFFFFFF), b"\x01\x05", 0xFFFFFFFF),),
                           (TxOut(0, b"\x51"),), 0)
    hashes = [struct.pack("<Q", n).ljust(32, b"\x00") for n in range(MAX_INV_SZ + 1)]
    here = Service(NetAddr.parse("10.0.0.1"), 8865)
    return {
        "unconnecting-headers": ([msg.Headers((_unconnected_header(1),))], 0, "getheaders"),
        "invalid-pow-headers": ([msg.Headers((genesis_child,))], 100, None),
        "unrequested-block": ([msg.BlockMessage(Block(_unconnected_header(2), (coinbase,)))], 0,
                              "getheaders"),
        "inv-flood": ([msg.Inv(tuple(msg.Inventory(MSG_TX, h) for h in hashes))], 20, None),
        "getdata-flood": ([msg.GetData(tuple(msg.Inventory(MSG_BLOCK, h) for h in hashes))], 20, None),
        "addr-flood": ([msg.Addr(tuple(msg.TimedAddress(1_700_000_000, 1, here)
                                       for _ in range(MAX_ADDR_TO_SEND + 1)))], 20, None),
    }


def _banscores(node: TestNode) -> dict[str, int]:
    return {p["addr"].rsplit(":", 1)[0]: p["banscore"] for p in node.rpc().getpeerinfo()}


@pytest.mark.timeout(120)
def test_hostile_peers_are_scored_and_banned_while_the_node_serves_an_honest_one(
        make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=["-banlocalpeers", "-debug=net"])
    a.start()
    honest = make_node("b", extra_args=[f"-connect={a.p2p_address}"])
    honest.start()
    a.wait_for_log(r"New inbound peer connected")
    rpc = a.rpc()

    # 1. Framing broken three ways, for every command: each offender is banned at once.
    banned: set[str] = set()
    n = 0
    for command in COMMANDS:
        for data in _framing_variants(command).values():
            source = _source(1, n)
            n += 1
            peer = RawPeer(a.p2p_port, source)
            peer.send_raw(data)
            assert peer.closed_by_node(), f"{source} ({command}) was not disconnected"
            peer.close()
            banned.add(f"{source}/32")

    # 2. Malformed payloads, for every command that has any: scored 20 each, kept connected under 100.
    scored: dict[str, int] = {}
    open_peers: list[RawPeer] = []
    no_payload = []
    for i, command in enumerate(COMMANDS):
        payloads = _malformed_payloads(command)
        if not payloads:
            no_payload.append(command)
            continue
        source = _source(2, i)
        peer = RawPeer(a.p2p_port, source)
        peer.handshake()
        for payload in payloads:
            peer.send_raw(frame(MAGIC, command, payload))
        # Then a length field beyond the bytes that follow: the node waits for the rest, nothing more.
        peer.send_raw(MAGIC + command.encode().ljust(12, b"\x00") + struct.pack("<I", 1000) + bytes(5))
        scored[source] = 20 * len(payloads)
        open_peers.append(peer)
    # Only messages without a payload cannot be malformed (trailing bytes are ignored, as in Core), and
    # ping, whose nonce is optional for pre-BIP31 peers.
    assert set(no_payload) <= {"verack", "getaddr", "mempool", "sendheaders", "filterclear", "ping"}, \
        no_payload
    wait_until(lambda: all(_banscores(a).get(s) == score for s, score in scored.items()),
               timeout=30, what="malformed messages to be scored")
    for peer in open_peers:
        peer.close()

    # 3. Semantically invalid messages, each from its own source.
    for j, (name, (messages, score, reply)) in enumerate(_semantic_offences().items()):
        source = _source(3, j)
        peer = RawPeer(a.p2p_port, source, timeout=30)
        peer.handshake()
        for m in messages:
            peer.send(m)
        if reply is not None:
            peer.wait_for(reply, timeout=30)
        if score >= 100:
            assert peer.closed_by_node(timeout=30), name
            banned.add(f"{source}/32")
        else:
            wait_until(lambda s=source, sc=score: _banscores(a).get(s) == sc,  # type: ignore[misc]
                       timeout=30, what=f"{name} scored {score}")
        peer.close()

    # The node is up, every offender that crossed -banscore is banned, the honest peer never dropped.
    wait_until(lambda: {b["address"] for b in rpc.listbanned()} >= banned, timeout=30, what="bans")
    assert len(rpc.listbanned()) == len(banned)
    log = a.log_since_start()
    assert log.count("BAN THRESHOLD EXCEEDED") == len(banned)
    assert "disconnecting peer=0" not in log
    tip = rpc.generate(1)[0]
    wait_until(lambda: honest.rpc().getbestblockhash() == tip, timeout=30,
               what="the honest peer to get the block")
    assert rpc.getblockcount() == 1
    assert honest.stop() == 0
    assert a.stop() == 0
