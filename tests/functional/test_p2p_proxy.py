"""Outbound connections through a SOCKS5 -proxy (Core: feature_proxy.py), against a tiny SOCKS5 server
of the test relaying to a second aipgd on loopback; host names are resolved by the proxy; -onion is
refused with a clear message."""

from __future__ import annotations

from collections.abc import Callable

from framework import TestNode
from framework.socks5 import Socks5Server

NET = ["-debug=net", "-debug=proxy"]


def test_the_handshake_completes_through_the_proxy_with_random_credentials(
        make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=NET)
    a.start()
    proxy = Socks5Server()
    b = make_node("b", extra_args=[*NET, f"-proxy={proxy.address}", f"-connect={a.p2p_address}"])
    try:
        b.start()
        b.wait_for_log(r"SOCKS5 connected 127\.0\.0\.1:\d+ via 127\.0\.0\.1:\d+")
        b.wait_for_log(r"New manual peer connected")
        a.wait_for_log(r"New inbound peer connected")
        command = proxy.commands[0]
        assert (command.host, command.port) == ("127.0.0.1", a.p2p_port)
        # Core: -proxyrandomize (default 1) gives each connection its own credentials (Tor isolation).
        assert command.username is not None and command.username == command.password
        ipv4 = {n["name"]: n for n in b.rpc().getnetworkinfo()["networks"]}["ipv4"]
        assert ipv4["proxy"] == proxy.address and ipv4["proxy_randomize_credentials"] is True
        # The peer sees the proxy's end of the connection: a loopback address.
        assert b.rpc().getpeerinfo()[0]["addr"] == a.p2p_address
        assert b.stop() == 0
    finally:
        proxy.stop()
    assert a.stop() == 0


def test_proxyrandomize_off_names_resolved_by_the_proxy_and_onion_refused(
        make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=NET)
    a.start()
    proxy = Socks5Server()
    b = make_node("b", extra_args=[*NET, f"-proxy={proxy.address}", "-proxyrandomize=0",
                                   f"-connect={a.p2p_address}"])
    try:
        b.start()
        b.wait_for_log(r"New manual peer connected")
        assert proxy.commands[0].username is None
        assert b.stop() == 0
    finally:
        proxy.stop()
    # A host name goes to the proxy to resolve (no DNS query from here), and names the peer.
    proxy = Socks5Server()
    c = make_node("c", extra_args=[*NET, f"-proxy={proxy.address}", f"-connect=localhost:{a.p2p_port}"])
    try:
        c.start()
        c.wait_for_log(r"New manual peer connected")
        assert (proxy.commands[0].host, proxy.commands[0].port) == ("localhost", a.p2p_port)
        assert c.rpc().getpeerinfo()[0]["addr"] == f"localhost:{a.p2p_port}"
        assert c.stop() == 0
    finally:
        proxy.stop()
    b.assert_start_raises_init_error(["-onion=127.0.0.1:9050"], "-onion is not supported by aipgd")
    b.assert_start_raises_init_error(["-proxy=not-an-address:x"], "Invalid -proxy address")
    assert a.stop() == 0
