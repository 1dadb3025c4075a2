"""The network RPCs against two real nodes (Core: rpc_net.py, p2p_disconnect_ban.py): each method's
success path and one error path, with Core's fields and error codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from framework import TestNode
from framework.rpc import assert_raises_rpc_error
from framework.util import wait_until

NET = ["-debug=net"]


@pytest.mark.timeout(120)
def test_network_rpcs(make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=NET)
    b = make_node("b", extra_args=NET)
    a.start()
    b.start()
    ra, rb = a.rpc(), b.rpc()
    assert ra.getconnectioncount() == 0

    # addnode: add, then the duplicate and an unknown removal fail with Core's codes.
    rb.addnode(a.p2p_address, "add")
    assert_raises_rpc_error(-23, "Error: Node already added", rb.addnode, a.p2p_address, "add")
    assert_raises_rpc_error(-24, "Error: Node has not been added.", rb.addnode, "127.0.0.1:1", "remove")
    assert_raises_rpc_error(-1, None, rb.addnode, a.p2p_address, "bogus")
    wait_until(lambda: ra.getconnectioncount() == 1 and rb.getconnectioncount() == 1, what="a connection")
    assert ra.getinfo()["connections"] == 1

    added = rb.getaddednodeinfo()
    assert added[0]["addednode"] == a.p2p_address
    wait_until(lambda: rb.getaddednodeinfo(a.p2p_address)[0]["connected"], what="the added node")
    assert rb.getaddednodeinfo(a.p2p_address)[0]["addresses"][0]["connected"] == "outbound"
    assert_raises_rpc_error(-24, "Error: Node has not been added.", rb.getaddednodeinfo, "10.0.0.1")

    peers = rb.getpeerinfo()
    assert len(peers) == 1
    peer = peers[0]
    for key in ("id", "addr", "services", "relaytxes", "lastsend", "lastrecv", "bytessent", "bytesrecv",
                "conntime", "timeoffset", "version", "subver", "inbound", "addnode", "startingheight",
                "banscore", "synced_headers", "synced_blocks", "inflight", "whitelisted"):
        assert key in peer, key
    assert peer["addr"] == a.p2p_address and peer["addnode"] is True and peer["inbound"] is False
    assert ra.getpeerinfo()[0]["addrbind"] == a.p2p_address
    assert peer["bytessent_per_msg"]["version"] == peer["bytesrecv_per_msg"]["version"] > 24
    assert ra.getpeerinfo()[0]["inbound"] is True

    info = ra.getnetworkinfo()
    assert info["connections"] == 1 and info["networkactive"] is True
    assert info["localservices"] == "0000000000000009"
    assert info["subversion"].startswith("/aipgd:") and info["protocolversion"] == 70028
    assert [n["name"] for n in info["networks"]] == ["ipv4", "ipv6", "onion"]

    totals = ra.getnettotals()
    assert totals["totalbytessent"] > 0 and totals["totalbytesrecv"] > 0
    assert totals["uploadtarget"]["target"] == 0 and totals["uploadtarget"]["target_reached"] is False

    # ping: a pong comes back and getpeerinfo shows the round trip.
    assert rb.ping() is None
    wait_until(lambda: "pingtime" in rb.getpeerinfo()[0], what="a ping time")

    # disconnectnode: by address; unknown addresses and ambiguous arguments fail.
    assert_raises_rpc_error(-29, "Node not found in connected nodes", rb.disconnectnode, "127.0.0.1:2")
    assert_raises_rpc_error(-32602, "Only one of address and nodeid should be provided.",
                            rb.disconnectnode, a.p2p_address, 0)
    rb.addnode(a.p2p_address, "remove")
    rb.disconnectnode(a.p2p_address)
    wait_until(lambda: rb.getconnectioncount() == 0, what="the disconnection")

    # setban / listbanned / clearbanned.
    ra.setban("192.168.0.0/24", "add", 3600)
    ra.setban("10.1.2.3", "add")
    assert_raises_rpc_error(-23, "Error: IP/Subnet already banned", ra.setban, "10.1.2.3", "add")
    assert_raises_rpc_error(-30, "Error: Invalid IP/Subnet", ra.setban, "not-an-ip", "add")
    assert_raises_rpc_error(-30, "Error: Unban failed", ra.setban, "10.9.9.9", "remove")
    banned = {entry["address"]: entry for entry in ra.listbanned()}
    assert set(banned) == {"192.168.0.0/24", "10.1.2.3/32"}
    entry = banned["192.168.0.0/24"]
    assert entry["ban_reason"] == "manually added"
    assert 3590 <= entry["banned_until"] - entry["ban_created"] <= 3610
    ra.setban("10.1.2.3", "remove")
    assert [e["address"] for e in ra.listbanned()] == ["192.168.0.0/24"]
    ra.clearbanned()
    assert ra.listbanned() == []

    # setnetworkactive: off drops every connection and refuses new ones; on again reconnects.
    rb.addnode(a.p2p_address, "onetry")
    wait_until(lambda: ra.getconnectioncount() == 1, what="the one-try connection")
    assert ra.setnetworkactive(False) is False
    assert ra.getnetworkinfo()["networkactive"] is False
    wait_until(lambda: ra.getconnectioncount() == 0 and rb.getconnectioncount() == 0, what="no connections")
    assert_raises_rpc_error(-1, "JSON value is not a boolean as expected", ra.setnetworkactive, "yes")
    assert ra.setnetworkactive(True) is True
    rb.addnode(a.p2p_address, "onetry")
    wait_until(lambda: ra.getconnectioncount() == 1, what="a connection again")
    for node in (b, a):
        assert node.stop() == 0
