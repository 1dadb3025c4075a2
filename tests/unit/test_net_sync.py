"""Block download and announcement rules over a fake chain and fake peers (Core: FindNextBlocksToDownload,
the stall timer, ProcessHeadersMessage's unconnecting-headers score, SendMessages' announcements)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from net_fakes import BITS, FakeChain, FakePeer, _hash

from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.diskformat import BLOCK_VALID_SCRIPTS
from aipgd.core.block import BlockHeader
from aipgd.net import messages as msg
from aipgd.net.blocksync import BlockSync
from aipgd.net.protocol import MSG_BLOCK, NODE_NETWORK, NODE_WITNESS
from aipgd.net.syncstate import BLOCK_DOWNLOAD_WINDOW, MAX_BLOCKS_IN_TRANSIT_PER_PEER, SyncTimings


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _sync(chain: FakeChain, peers: list[FakePeer], loop: asyncio.AbstractEventLoop,
          stalling: float = 2.0) -> BlockSync:
    sync = BlockSync(chain, lambda: [p for p in peers if not p.closed], NODE_NETWORK | NODE_WITNESS,  # type: ignore[arg-type]
                     lambda historical: False, loop, timings=SyncTimings(stalling_timeout=stalling),
                     clock=lambda: chain.now)
    for peer in peers:
        peer.sync.best_known_block = chain.best_header()
        peer.sync.preferred_download = True
        sync.preferred_download += 1
    return sync


def test_blocks_are_spread_over_peers_16_at_a_time(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(100)
    peers = [FakePeer(0), FakePeer(1)]
    sync = _sync(chain, peers, loop)
    for peer in peers:
        sync._request_blocks(peer)  # type: ignore[arg-type]
    assert peers[0].requested() == list(range(1, 17))
    assert peers[1].requested() == list(range(17, 33))
    assert len(sync.in_flight) == 2 * MAX_BLOCKS_IN_TRANSIT_PER_PEER
    # Asking again while full changes nothing.
    sync._request_blocks(peers[0])  # type: ignore[arg-type]
    assert len(peers[0].requested()) == MAX_BLOCKS_IN_TRANSIT_PER_PEER


def test_a_peer_holding_up_the_window_is_dropped_and_its_blocks_reassigned(
        loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(BLOCK_DOWNLOAD_WINDOW + 100)
    slow, fast = FakePeer(0), FakePeer(1)
    sync = _sync(chain, [slow, fast], loop, stalling=2.0)
    sync._request_blocks(slow)  # type: ignore[arg-type]
    assert slow.requested() == list(range(1, 17))
    # Everything else in the window arrived (from elsewhere) but cannot connect without 1..16.
    for index in chain.indexes[17:BLOCK_DOWNLOAD_WINDOW + 1]:
        chain.have(index, connected=False)
    sync._request_blocks(fast)  # type: ignore[arg-type]
    assert fast.requested() == []
    assert slow.sync.stalling_since == chain.now
    sync.tick(slow)  # type: ignore[arg-type]
    assert not slow.closed
    chain.now += 2.5
    sync.tick(slow)  # type: ignore[arg-type]
    assert slow.closed and slow.disconnect_reason == "stalling block download"
    sync.on_disconnected(slow)  # type: ignore[arg-type]
    assert fast.requested() == list(range(1, 17))
    assert all(owner == fast.id for owner in sync.in_flight.values())


def test_a_block_arriving_clears_the_stall_timer(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(20)
    peer = FakePeer(0)
    sync = _sync(chain, [peer], loop)
    sync._request_blocks(peer)  # type: ignore[arg-type]
    peer.sync.stalling_since = chain.now
    sync._mark_received(peer, chain.indexes[1].block_hash)  # type: ignore[arg-type]
    assert peer.sync.stalling_since == 0.0
    assert chain.indexes[1].block_hash not in sync.in_flight


def test_unconnecting_headers_cost_20_every_tenth_time(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(5, active=5)
    peer = FakePeer(0)
    sync = _sync(chain, [peer], loop)
    orphan = BlockHeader(0x30000000, b"\x99" * 32, bytes(32), int(chain.now), BITS)
    for _ in range(9):
        loop.run_until_complete(sync.on_headers(peer, msg.Headers((orphan,))))  # type: ignore[arg-type]
    assert peer.misbehavior == 0
    assert sum(isinstance(m, msg.GetHeaders) for m in peer.sent) == 9
    loop.run_until_complete(sync.on_headers(peer, msg.Headers((orphan,))))  # type: ignore[arg-type]
    assert peer.misbehavior == 20


def test_non_continuous_headers_cost_20_without_any_check(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(5, active=5)
    peer = FakePeer(0)
    sync = _sync(chain, [peer], loop)
    tip = chain.tip()
    first = BlockHeader(0x30000000, tip.block_hash, bytes(32), int(chain.now), BITS)
    stray = BlockHeader(0x30000000, tip.block_hash, b"\x01" * 32, int(chain.now), BITS)
    loop.run_until_complete(sync.on_headers(peer, msg.Headers((first, stray))))  # type: ignore[arg-type]
    assert peer.misbehavior == 20
    assert sync.stats.header_pow_checks == 0


def test_new_blocks_are_announced_by_headers_or_inv(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(12, active=10)
    by_headers, by_inv = FakePeer(0, inbound=True), FakePeer(1, inbound=True)
    by_headers.prefers_headers = True
    sync = _sync(chain, [by_headers, by_inv], loop)
    for peer in (by_headers, by_inv):
        peer.sync.best_known_block = chain.indexes[10]
    sync.server._announced_tip = chain.indexes[10]
    chain.have(chain.indexes[11])
    chain.have(chain.indexes[12])
    chain.active = 12
    sync.server.new_tip(chain.indexes[12], False)
    headers = [m for m in by_headers.sent if isinstance(m, msg.Headers)]
    assert len(headers) == 1
    assert [h.prev_hash for h in headers[0].headers] == [chain.indexes[10].block_hash,
                                                         chain.indexes[11].block_hash]
    assert by_headers.sync.best_header_sent is chain.indexes[12]
    invs = [m for m in by_inv.sent if isinstance(m, msg.Inv)]
    assert invs == [msg.Inv((msg.Inventory(MSG_BLOCK, chain.indexes[12].block_hash),))]
    # A peer that already has the block hears nothing more.
    sync.server.new_tip(chain.indexes[12], False)
    assert len([m for m in by_headers.sent if isinstance(m, msg.Headers)]) == 1


def test_getheaders_answers_from_the_fork_point_up_to_hash_stop(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(30, active=30)
    peer = FakePeer(0, inbound=True)
    sync = _sync(chain, [peer], loop)
    ask = msg.GetHeaders(70028, (_hash(99), chain.indexes[10].block_hash), chain.indexes[14].block_hash)
    loop.run_until_complete(sync.handle(peer, ask))  # type: ignore[arg-type]
    answer = peer.sent[-1]
    assert isinstance(answer, msg.Headers)
    assert [h.prev_hash for h in answer.headers] == [chain.indexes[h].block_hash for h in range(10, 14)]
    assert peer.sync.best_header_sent is chain.indexes[14]
    # An oversized locator costs the connection.
    big = msg.GetHeaders(70028, tuple(_hash(i) for i in range(102)), bytes(32))
    loop.run_until_complete(sync.handle(peer, big))  # type: ignore[arg-type]
    assert peer.closed


def test_getblocks_stops_at_500_and_continues_from_the_last(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(600, active=600)
    peer = FakePeer(0, inbound=True)
    sync = _sync(chain, [peer], loop)
    loop.run_until_complete(sync.handle(peer, msg.GetBlocks(70028, (chain.indexes[0].block_hash,),  # type: ignore[arg-type]
                                                            bytes(32))))
    inv = peer.sent[-1]
    assert isinstance(inv, msg.Inv) and len(inv.items) == 500
    assert peer.sync.hash_continue == chain.indexes[500].block_hash
    ask = msg.GetData((msg.Inventory(MSG_BLOCK, chain.indexes[500].block_hash),))
    loop.run_until_complete(sync.handle(peer, ask))  # type: ignore[arg-type]
    assert peer.blocks_served() == [500]
    assert peer.sent[-1] == msg.Inv((msg.Inventory(MSG_BLOCK, chain.tip().block_hash),))


def test_historical_blocks_respect_the_upload_target(loop: asyncio.AbstractEventLoop) -> None:
    chain = FakeChain(20, active=20)
    old = BlockIndex(_hash(1, 7), BlockHeader(0x30000000, chain.indexes[0].block_hash, bytes(32),
                                               int(chain.now) - 8 * 24 * 3600, BITS), chain.indexes[0], 1)
    chain.by_hash[old.block_hash] = old
    reached: list[bool] = []
    peer, friend = FakePeer(0, inbound=True), FakePeer(1, inbound=True)
    friend.whitelisted = True
    sync = BlockSync(chain, lambda: [peer, friend], NODE_NETWORK | NODE_WITNESS,  # type: ignore[arg-type]
                     lambda historical: reached.append(historical) or historical, loop)
    recent = msg.GetData((msg.Inventory(MSG_BLOCK, chain.indexes[19].block_hash),
                          msg.Inventory(MSG_BLOCK, _hash(77))))
    loop.run_until_complete(sync.handle(peer, recent))  # type: ignore[arg-type]
    assert peer.blocks_served() == [19] and not peer.closed
    assert peer.sent[-1] == msg.NotFound((msg.Inventory(MSG_BLOCK, _hash(77)),))
    # A stale block off the active chain, more than a week old: only whitelisted peers get it now.
    chain.have(old)
    old.raise_validity(BLOCK_VALID_SCRIPTS)
    ask = msg.GetData((msg.Inventory(MSG_BLOCK, old.block_hash),))
    loop.run_until_complete(sync.handle(friend, ask))  # type: ignore[arg-type]
    assert friend.blocks_served() == [1]
    loop.run_until_complete(sync.handle(peer, ask))  # type: ignore[arg-type]
    assert peer.closed and reached == [True]
