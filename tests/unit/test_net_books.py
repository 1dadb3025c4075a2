"""AddrMan (Core's buckets, peers.dat round trip), BanMan (banlist.dat), address groups, subnets,
eviction and the connection options."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aipgd.config import ArgsManager, ConfigError
from aipgd.core.params import get_params
from aipgd.core.serialize import DeserializationError
from aipgd.net.addrman import AddrMan
from aipgd.net.banman import BanMan, deserialize_banmap, serialize_banmap
from aipgd.net.connman_config import connman_config
from aipgd.net.eviction import EvictionCandidate, select_node_to_evict
from aipgd.net.netaddress import NET_IPV4, NET_UNROUTABLE, NetAddr, Service, SubNet, split_host_port

MAGIC = get_params("regtest").message_start
SOURCE = NetAddr.parse("8.8.8.8")


def _svc(text: str, port: int = 18550) -> Service:
    return Service(NetAddr.parse(text), port)


def test_groups_follow_core() -> None:
    assert NetAddr.parse("1.2.3.4").group() == bytes((NET_IPV4, 1, 2))
    assert NetAddr.parse("127.0.0.1").group() == bytes((NET_UNROUTABLE,))
    assert NetAddr.parse("10.1.2.3").group() == bytes((NET_UNROUTABLE,))
    assert NetAddr.parse("2a01:4f8:1:2::1").group() == bytes((2, 0x2A, 0x01, 0x04, 0xF8))
    assert NetAddr.parse("2001:470:1:2::1").group() == bytes((2, 0x20, 0x01, 0x04, 0x70, 0x0F))  # he.net /36
    assert NetAddr.parse("2002:0102:0304::1").group() == bytes((NET_IPV4, 1, 2))  # 6to4


def test_subnets_and_host_port() -> None:
    net = SubNet.parse("1.2.3.0/24")
    assert net.matches(NetAddr.parse("1.2.3.200")) and not net.matches(NetAddr.parse("1.2.4.1"))
    assert SubNet.parse("1.2.3.0/255.255.255.0") == net and str(net) == "1.2.3.0/24"
    assert SubNet.parse("2001:db8::/32").matches(NetAddr.parse("2001:db8:ffff::1"))
    assert split_host_port("[::1]:99", 1) == ("::1", 99) and split_host_port("::1", 1) == ("::1", 1)
    assert split_host_port("1.2.3.4", 7) == ("1.2.3.4", 7) and split_host_port("h:5", 7) == ("h", 5)


def test_addrman_add_good_select_and_peers_dat_round_trip(tmp_path: Path) -> None:
    book = AddrMan(tmp_path / "peers.dat", MAGIC, random.Random(1))
    now = book.now()
    added = book.add([(_svc(f"{i}.{i}.1.1"), 1, now - 100) for i in range(1, 60)], SOURCE)
    # 10.10.1.1 is private; a slot collision may drop one more (Core still counts it as new).
    assert added == 58 and 50 <= len(book) <= 58
    assert book.add([(_svc("127.0.0.1"), 1, now)], SOURCE) == 0  # not routable
    count = len(book)
    book.good(book.entries()[3].service)
    assert book.n_tried == 1 and book.n_new == count - 1
    assert book.select() is not None
    book.dump()
    again = AddrMan(tmp_path / "peers.dat", MAGIC)
    again.start()
    assert again.key == book.key and len(again) == count and again.n_tried == 1
    assert {e.service for e in again.entries()} == {e.service for e in book.entries()}


def test_addrman_buckets_are_keyed() -> None:
    a, b = AddrMan(None, MAGIC, random.Random(1)), AddrMan(None, MAGIC, random.Random(2))
    service = _svc("9.9.9.9")
    a.add([(service, 1, a.now())], SOURCE)
    b.add([(service, 1, b.now())], SOURCE)
    ia, ib = a.entries()[0], b.entries()[0]
    assert (ia.new_bucket(a.key), ia.bucket_position(a.key, True, 0)) != \
        (ib.new_bucket(b.key), ib.bucket_position(b.key, True, 0))


def test_peers_dat_rejects_corruption_and_other_networks(tmp_path: Path) -> None:
    book = AddrMan(None, MAGIC, random.Random(3))
    book.add([(_svc("1.1.1.1"), 1, book.now())], SOURCE)
    raw = bytearray(book.dump_bytes())
    other = AddrMan(None, b"AI4E")
    with pytest.raises(DeserializationError, match="magic"):
        other.load_bytes(bytes(raw))
    raw[40] ^= 1
    with pytest.raises(DeserializationError, match="checksum"):
        AddrMan(None, MAGIC).load_bytes(bytes(raw))


def test_banlist_round_trip_and_expiry(tmp_path: Path) -> None:
    bans = BanMan(tmp_path / "banlist.dat", MAGIC, default_ban_time=100)
    bans.start()
    bans.ban(SubNet.parse("1.2.3.4"))
    bans.ban(SubNet.parse("10.0.0.0/8"), ban_time=5)
    assert bans.is_banned(NetAddr.parse("10.9.9.9")) and not bans.is_banned(NetAddr.parse("1.2.3.5"))
    loaded = BanMan(tmp_path / "banlist.dat", MAGIC)
    loaded.start()
    assert set(loaded.banned()) == {SubNet.parse("1.2.3.4"), SubNet.parse("10.0.0.0/8")}
    data = serialize_banmap(MAGIC, {SubNet.parse("1.2.3.4"): loaded.banned()[SubNet.parse("1.2.3.4")]})
    assert len(data) == 4 + 1 + 33 + 21 + 32  # Core: magic, map, sha256d
    assert deserialize_banmap(MAGIC, data).keys() == {SubNet.parse("1.2.3.4")}
    bans.ban(SubNet.parse("2.2.2.2"), ban_time=1, absolute=True)  # already expired
    assert not bans.is_banned(NetAddr.parse("2.2.2.2"))


def test_eviction_protects_and_picks_the_biggest_group() -> None:
    crowd = [EvictionCandidate(i, 1000 + i, 0.05, 0, 0, b"\x01\x05\x05", True) for i in range(20)]
    loners = [EvictionCandidate(100 + i, 10 + i, 0.01, 0, 0, bytes((1, i, 0)), True) for i in range(20)]
    victim = select_node_to_evict(crowd + loners, b"k" * 32)
    assert victim is not None and victim < 100
    assert select_node_to_evict([], b"k" * 32) is None


def test_connection_options_follow_core_interactions() -> None:
    params = get_params("main")
    args = ArgsManager()
    args.parse_command_line(["-connect=1.2.3.4", "-whitelist=10.0.0.0/8", "-maxuploadtarget=5",
                             "-onlynet=ipv4", "-maxconnections=8"])
    cfg = connman_config(args, params, "/t/")
    assert cfg.connect_only and not cfg.listen and cfg.dns_seeds == ()
    assert cfg.max_upload_target == 5 * 1024 * 1024 and cfg.max_outbound == 8 and cfg.onlynet == {NET_IPV4}
    plain = ArgsManager()
    plain.parse_command_line([])
    cfg = connman_config(plain, params, "/t/")
    assert cfg.listen and cfg.dns_seeds == params.dns_seeds and cfg.max_outbound == 12
    assert cfg.limits.ban_score == 100 and cfg.limits.max_receive_buffer == 5_000_000
    bad = ArgsManager()
    bad.parse_command_line(["-onlynet=carrier-pigeon"])
    with pytest.raises(ConfigError, match="onlynet"):
        connman_config(bad, params, "/t/")


@pytest.mark.parametrize(("argv", "relay", "force"), [
    ([], True, True),
    (["-blocksonly"], False, True),  # Core: -blocksonly=1 -> setting -whitelistrelay=0
    (["-blocksonly", "-whitelistforcerelay=1"], False, True),  # too late to set -whitelistrelay=1
    (["-blocksonly", "-whitelistrelay"], True, True),
    (["-blocksonly=0", "-nowhitelistrelay"], False, True),
    (["-whitelistforcerelay=0"], True, False),
])
def test_whitelist_relay_options_follow_core_interactions(argv: list[str], relay: bool, force: bool) -> None:
    args = ArgsManager()
    args.parse_command_line(argv)
    cfg = connman_config(args, get_params("main"), "/t/")
    assert (cfg.whitelist_relay, cfg.whitelist_force_relay) == (relay, force)


def test_proxy_options_follow_core_interactions() -> None:
    params = get_params("main")
    args = ArgsManager()
    args.parse_command_line(["-proxy=127.0.0.1:9050", "-blocksonly"])
    cfg = connman_config(args, params, "/t/")
    # Core: a default proxy soft-disables -listen, and -proxyrandomize defaults on.
    assert cfg.proxy is not None and str(cfg.proxy) == "127.0.0.1:9050" and cfg.proxy.randomize_credentials
    assert not cfg.listen and cfg.blocks_only
    explicit = ArgsManager()
    explicit.parse_command_line(["-proxy=127.0.0.1", "-proxyrandomize=0", "-listen=1"])
    cfg = connman_config(explicit, params, "/t/")
    assert cfg.listen and cfg.proxy is not None and cfg.proxy.service.port == 9050
    assert not cfg.proxy.randomize_credentials
    for bad_args, error in ((["-onion=127.0.0.1:9050"], "-onion is not supported"),
                            (["-proxy=tor.example:x"], "Invalid -proxy address")):
        bad = ArgsManager()
        bad.parse_command_line(bad_args)
        with pytest.raises(ConfigError, match=error):
            connman_config(bad, params, "/t/")
