"""P2P between real aipgd processes on loopback: handshakes, bans for broken framing, a slow reader
and a slow sender that cannot stall the node, handshake timeouts, and peers.dat / banlist.dat across
restarts."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pytest
from framework import TestNode
from framework.p2p import MAGIC, REGTEST, RawPeer

from aipgd.net import messages as msg
from aipgd.net.protocol import MAX_PROTOCOL_MESSAGE_LENGTH, frame

NET = ["-debug=net"]


def _connected(node: TestNode, kind: str, count: int = 1) -> None:
    node.wait_for_log(rf"(?s)(New {kind} peer connected.*){{{count}}}")


def test_two_and_three_nodes_handshake_via_connect_and_addnode(make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=NET)
    a.start()
    b = make_node("b", extra_args=[*NET, f"-connect={a.p2p_address}"])
    c = make_node("c", extra_args=[*NET, f"-addnode={a.p2p_address}", "-listen=1"])
    b.start()
    c.start()
    _connected(b, "manual")
    _connected(c, "manual")
    _connected(a, "inbound", 2)
    assert "receive version message: /aipgd:" in b.log_since_start()
    # Pings flow right after the handshake.
    a.wait_for_log(r"received: pong \(8 bytes\)")
    for node in (c, b, a):
        assert node.stop() == 0


def _hostile_frames() -> dict[str, bytes]:
    ping = frame(MAGIC, "ping", struct.pack("<Q", 7))
    bad_checksum = bytearray(ping)
    bad_checksum[23] ^= 0xFF
    oversized = (MAGIC + b"ping".ljust(12, b"\x00") + struct.pack("<I", MAX_PROTOCOL_MESSAGE_LENGTH + 1)
                 + bytes(4))
    return {
        "127.0.0.2": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(40),  # garbage
        "127.0.0.3": frame(b"AI4E", "ping", struct.pack("<Q", 7)),  # mainnet magic on regtest
        "127.0.0.4": bytes(bad_checksum),
        "127.0.0.5": oversized,
    }


def test_broken_framing_is_banned_while_an_honest_peer_stays(make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=[*NET, "-banlocalpeers"])
    a.start()
    b = make_node("b", extra_args=[*NET, f"-connect={a.p2p_address}"])
    b.start()
    _connected(a, "inbound")

    for source, payload in _hostile_frames().items():
        peer = RawPeer(a.p2p_port, source)
        peer.handshake()
        peer.send_raw(payload)
        assert peer.closed_by_node(), f"{source} was not disconnected"
        peer.close()
        a.wait_for_log(rf"Banned {source}/32")
        again = RawPeer(a.p2p_port, source)
        assert again.closed_by_node(), f"{source} could reconnect while banned"
        again.close()
    log = a.log_since_start()
    assert log.count("BAN THRESHOLD EXCEEDED") == 4
    assert "disconnecting peer=0" not in log  # b, the honest peer, is still connected

    # Both files survive a restart, and the bans still hold.
    assert a.stop() == 0
    assert (a.netdir / "banlist.dat").exists() and (a.netdir / "peers.dat").exists()
    a.start()
    a.wait_for_log(r"Loaded 4 banned node ips/subnets from banlist.dat")
    a.wait_for_log(r"Loaded \d+ addresses from peers.dat")
    again = RawPeer(a.p2p_port, "127.0.0.3")
    assert again.closed_by_node()
    again.close()
    a.wait_for_log(r"connection from 127\.0\.0\.3:\d+ dropped \(banned\)")
    assert a.stop() == 0
    assert b.stop() == 0


def test_messages_before_version_cost_misbehaviour_not_a_ban(node: TestNode) -> None:
    node.start([*NET, "-banlocalpeers"])
    peer = RawPeer(node.p2p_port, "127.0.0.6")
    peer.send(msg.Ping(1))
    node.wait_for_log(r"Misbehaving: 127\.0\.0\.6:\d+ peer=0 \(0 -> 1\) reason: ping before version")
    peer.handshake()
    peer.close()
    assert "BAN THRESHOLD" not in node.log_since_start()
    assert node.stop() == 0


def test_handshake_timeout_disconnects_a_silent_peer(node: TestNode) -> None:
    node.start([*NET, "-peertimeout=2"])
    silent = RawPeer(node.p2p_port)
    assert silent.closed_by_node(timeout=20)
    node.wait_for_log("version handshake timeout from peer=0")
    silent.close()
    assert node.stop() == 0


@pytest.mark.timeout(120)
def test_slow_reader_does_not_stall_the_node(node: TestNode) -> None:
    node.start(["-maxsendbuffer=10"])
    slow = RawPeer(node.p2p_port, "127.0.0.7")
    slow.handshake()
    # Ask for far more pongs than socket buffers hold, and never read them.
    slow.send_raw(frame(MAGIC, "ping", struct.pack("<Q", 1)) * 60_000)
    # Meanwhile another peer is served promptly.
    fresh = RawPeer(node.p2p_port, "127.0.0.8")
    fresh.handshake()
    fresh.send(msg.Ping(99))
    fresh.wait_for("pong")
    fresh.close()
    slow.close()
    assert node.stop() == 0


@pytest.mark.timeout(120)
def test_slow_sender_dribbling_bytes_does_not_stall_the_node(node: TestNode) -> None:
    node.start()
    node.rpc().generate(1)  # out of initial download, where getheaders goes unanswered (Core)
    slow = RawPeer(node.p2p_port, "127.0.0.9")
    slow.handshake()
    dribble = frame(MAGIC, "ping", struct.pack("<Q", 5)) + frame(
        MAGIC, "getheaders", msg.GetHeaders(70028, (REGTEST.genesis_hash,), bytes(32)).serialize())
    fresh = RawPeer(node.p2p_port, "127.0.0.10")
    fresh.handshake()
    # One byte at a time, while the other peer is answered between every byte.
    for i, byte in enumerate(dribble):
        slow.send_raw(bytes([byte]))
        if i % 8 == 0:
            started = time.monotonic()
            fresh.received.clear()
            fresh.send(msg.Ping(i + 1))
            fresh.wait_for("pong", timeout=5)
            assert time.monotonic() - started < 2.0
    fresh.send(msg.GetHeaders(70028, (REGTEST.genesis_hash,), bytes(32)))
    fresh.wait_for("headers")
    # The dribbled messages were reassembled and answered too.
    slow.wait_for("pong")
    slow.wait_for("headers")
    fresh.close()
    slow.close()
    assert "Misbehaving" not in node.log_since_start()
    assert node.stop() == 0
