"""Transaction relay rules over a fake mempool (Core: RelayTransaction, the inventory trickle with the
peer's feefilter and known-inventory filter, AlreadyHave, the orphan pool's limits, -whitelistrelay and
-whitelistforcerelay)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from net_fakes import FakePeer

from aipgd.consensus.validation_state import ValidationState
from aipgd.core.transaction import MAX_MONEY, OutPoint, Transaction, TxIn, TxOut
from aipgd.mempool.policy import FeeRate
from aipgd.net import messages as msg
from aipgd.net.protocol import MAX_INV_SZ, MSG_TX, MSG_WITNESS_TX
from aipgd.net.txrelay import MAX_ORPHAN_TRANSACTIONS, BoundedSet, TxRelay


def _tx(n: int, parent: bytes | None = None) -> Transaction:
    prev = parent if parent is not None else n.to_bytes(32, "little")
    return Transaction(2, (TxIn(OutPoint(prev, 0), b""),), (TxOut(1000 + n, b"\x51"),))


class FakePool:
    def __init__(self, mempool: FakeMempool) -> None:
        self.lock = threading.Lock()
        self._mempool = mempool

    def get(self, txid: bytes) -> Any:
        return SimpleNamespace(modified_fee=2000, vsize=100) if txid in self._mempool.txs else None

    def __len__(self) -> int:
        return len(self._mempool.txs)

    @property
    def entries(self) -> dict[bytes, Any]:
        return {txid: SimpleNamespace(fee=2000 + 1000 * (tx.vout[0].value % 2), vsize=100)
                for txid, tx in self._mempool.txs.items()}


class FakeMempool:
    def __init__(self) -> None:
        self.txs: dict[bytes, Transaction] = {}
        self.pool = FakePool(self)
        self.tx_listeners: list[Any] = []
        self.block_listeners: list[Any] = []
        self.known_parents: set[bytes] = set()
        self.rejects: dict[bytes, ValidationState] = {}  # txid -> the verdict accept() gives

    def get_transaction(self, txid: bytes) -> Transaction | None:
        return self.txs.get(txid)

    def min_fee_rate(self) -> FeeRate:
        return FeeRate(1000)

    def accept(self, tx: Transaction) -> Any:
        if tx.txid in self.rejects:
            return SimpleNamespace(accepted=False, missing_inputs=False, state=self.rejects[tx.txid],
                                   reject_reason=self.rejects[tx.txid].reject_reason)
        if any(i.prevout.txid not in self.known_parents and i.prevout.txid not in self.txs for i in tx.vin):
            return SimpleNamespace(accepted=False, missing_inputs=True, state=None)
        self.txs[tx.txid] = tx
        for listener in self.tx_listeners:
            listener(tx)
        return SimpleNamespace(accepted=True, missing_inputs=False, state=None)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _relay(loop: asyncio.AbstractEventLoop, peers: list[FakePeer], *, blocks_only: bool = False,
           initial_download: bool = False, **whitelist: bool) -> tuple[TxRelay, FakeMempool]:
    pool = FakeMempool()
    for peer in peers:
        peer.remote.relay = True
        peer.remote.version = 70028
        peer.fee_filter = 0
        peer.stats.last_tx_time = 0.0
    relay = TxRelay(pool, lambda: peers, loop, lambda: initial_download, clock=lambda: 1000.0,  # type: ignore[arg-type]
                    blocks_only=blocks_only, **whitelist)
    relay.start()
    return relay, pool


def test_accepted_transactions_are_trickled_above_the_feefilter_once(loop: asyncio.AbstractEventLoop) -> None:
    cheap, generous = FakePeer(0, inbound=True), FakePeer(1, inbound=True)
    relay, pool = _relay(loop, [cheap, generous])
    cheap.fee_filter = 50_000  # sat/kB, above the 20_000 the fake entry pays
    tx = _tx(1)
    pool.known_parents.add(tx.vin[0].prevout.txid)
    pool.accept(tx)
    loop.run_until_complete(asyncio.sleep(0))  # the listener hops onto the loop
    for peer in (cheap, generous):
        relay.trickle(peer)  # type: ignore[arg-type]
    assert msg.Inv((msg.Inventory(MSG_TX, tx.txid),)) in generous.sent
    assert not any(isinstance(m, msg.Inv) for m in cheap.sent)
    # Both got our feefilter (the mempool minimum); nothing is announced twice.
    assert msg.FeeFilter(1000) in cheap.sent and msg.FeeFilter(1000) in generous.sent
    relay._queue(tx.txid, 20_000)
    generous_st = relay._st(generous)  # type: ignore[arg-type]
    generous_st.next_trickle = 0.0
    relay.trickle(generous)  # type: ignore[arg-type]
    assert sum(isinstance(m, msg.Inv) for m in generous.sent) == 1


def test_inv_asks_once_and_orphans_wait_for_their_parent(loop: asyncio.AbstractEventLoop) -> None:
    peer, other = FakePeer(0), FakePeer(1)
    relay, pool = _relay(loop, [peer, other])
    parent = _tx(1)
    pool.known_parents.add(parent.vin[0].prevout.txid)
    child = _tx(2, parent=parent.txid)
    relay.on_tx_inv(peer, [child.txid])  # type: ignore[arg-type]
    relay.on_tx_inv(other, [child.txid])  # type: ignore[arg-type]
    assert peer.sent == [msg.GetData((msg.Inventory(MSG_WITNESS_TX, child.txid),))] and other.sent == []
    loop.run_until_complete(relay.on_tx(peer, child))  # type: ignore[arg-type]
    assert child.txid in relay.orphans
    assert peer.sent[-1] == msg.GetData((msg.Inventory(MSG_WITNESS_TX, parent.txid),))
    loop.run_until_complete(relay.on_tx(peer, parent))  # type: ignore[arg-type]
    assert set(pool.txs) == {parent.txid, child.txid} and not relay.orphans


def test_the_orphan_pool_is_bounded(loop: asyncio.AbstractEventLoop) -> None:
    peer = FakePeer(0)
    relay, _ = _relay(loop, [peer])
    for n in range(MAX_ORPHAN_TRANSACTIONS + 30):
        loop.run_until_complete(relay.on_tx(peer, _tx(1000 + n, parent=(5000 + n).to_bytes(32, "little"))))  # type: ignore[arg-type]
    assert len(relay.orphans) == MAX_ORPHAN_TRANSACTIONS
    relay.on_disconnected(peer)  # type: ignore[arg-type]
    assert not relay.orphans


def test_bounded_set_forgets_the_oldest() -> None:
    known = BoundedSet(2)
    for item in (b"a", b"b", b"c"):
        known.add(item)
    assert b"a" not in known and b"b" in known and b"c" in known


def test_blocksonly_refuses_peer_transactions_except_from_whitelisted_peers(
        loop: asyncio.AbstractEventLoop) -> None:
    peer, gateway = FakePeer(0), FakePeer(1)
    gateway.whitelisted = True
    relay, pool = _relay(loop, [peer, gateway], blocks_only=True)
    tx = _tx(1)
    pool.known_parents.add(tx.vin[0].prevout.txid)
    relay.on_tx_inv(peer, [tx.txid])  # type: ignore[arg-type]
    loop.run_until_complete(relay.on_tx(peer, tx))  # type: ignore[arg-type]
    assert peer.sent == [] and not pool.txs and peer.misbehavior == 0
    relay.on_tx_inv(gateway, [tx.txid])  # type: ignore[arg-type]
    loop.run_until_complete(relay.on_tx(gateway, tx))  # type: ignore[arg-type]
    assert gateway.sent == [msg.GetData((msg.Inventory(MSG_WITNESS_TX, tx.txid),))] and tx.txid in pool.txs
    # No transaction is wanted from ordinary peers, so our feefilter says so.
    relay.trickle(peer)  # type: ignore[arg-type]
    assert msg.FeeFilter(MAX_MONEY) in peer.sent


def test_feefilter_is_max_money_during_initial_download_and_lifted_at_once_after(
        loop: asyncio.AbstractEventLoop) -> None:
    peer = FakePeer(0)
    relay, _ = _relay(loop, [peer], initial_download=True)
    relay.trickle(peer)  # type: ignore[arg-type]
    assert peer.sent == [msg.FeeFilter(MAX_MONEY)]
    relay.trickle(peer)  # type: ignore[arg-type]
    assert peer.sent == [msg.FeeFilter(MAX_MONEY)]
    relay._initial_download = lambda: False
    relay.trickle(peer)  # type: ignore[arg-type]
    assert peer.sent == [msg.FeeFilter(MAX_MONEY), msg.FeeFilter(1000)]


def test_mempool_request_lists_the_pool_above_the_peer_feefilter_in_bounded_invs(
        loop: asyncio.AbstractEventLoop) -> None:
    peer = FakePeer(0)
    relay, pool = _relay(loop, [peer])
    txs = [_tx(n) for n in range(MAX_INV_SZ + 10)]
    for tx in txs:
        pool.txs[tx.txid] = tx
    peer.fee_filter = 25_000  # only the odd-valued ones pay 30_000 sat/kB in the fake pool
    relay.send_mempool(peer)  # type: ignore[arg-type]
    invs = [m for m in peer.sent if isinstance(m, msg.Inv)]
    listed = [i.hash for m in invs for i in m.items]
    assert all(len(m.items) <= MAX_INV_SZ for m in invs)
    assert set(listed) == {tx.txid for tx in txs if tx.vout[0].value % 2}
    # Nothing listed goes out again in the trickle.
    pool.accept(txs[1])
    loop.run_until_complete(asyncio.sleep(0))
    relay._st(peer).next_trickle = 0.0  # type: ignore[arg-type]
    relay.trickle(peer)  # type: ignore[arg-type]
    assert len([m for m in peer.sent if isinstance(m, msg.Inv)]) == len(invs)


def test_orphans_confirmed_or_conflicted_by_a_block_are_erased(loop: asyncio.AbstractEventLoop) -> None:
    peer = FakePeer(0)
    relay, _ = _relay(loop, [peer])
    confirmed = _tx(1, parent=b"\x01" * 32)
    conflicted = _tx(2, parent=b"\x02" * 32)
    unrelated = _tx(3, parent=b"\x03" * 32)
    for tx in (confirmed, conflicted, unrelated):
        loop.run_until_complete(relay.on_tx(peer, tx))  # type: ignore[arg-type]
    double_spend = Transaction(2, (TxIn(OutPoint(b"\x02" * 32, 0), b""),), (TxOut(5, b"\x52"),))
    block = SimpleNamespace(vtx=(confirmed, double_spend))
    assert set(relay.orphans) == {confirmed.txid, conflicted.txid, unrelated.txid}
    relay._on_block_any_thread(block)
    loop.run_until_complete(asyncio.sleep(0))
    assert set(relay.orphans) == {unrelated.txid}


def test_blocksonly_without_whitelistrelay_refuses_whitelisted_peers_too(
        loop: asyncio.AbstractEventLoop) -> None:
    gateway = FakePeer(0)
    gateway.whitelisted = True
    relay, pool = _relay(loop, [gateway], blocks_only=True, whitelist_relay=False)
    tx = _tx(1)
    pool.known_parents.add(tx.vin[0].prevout.txid)
    relay.on_tx_inv(gateway, [tx.txid])  # type: ignore[arg-type]
    loop.run_until_complete(relay.on_tx(gateway, tx))  # type: ignore[arg-type]
    assert gateway.sent == [] and not pool.txs and gateway.misbehavior == 0
    # Core: AddInventoryKnown comes before the refusal, so the peer is never offered it back.
    assert tx.txid in relay._st(gateway).known  # type: ignore[arg-type]


def _announced(peer: FakePeer, txid: bytes) -> bool:
    return any(isinstance(m, msg.Inv) and any(i.hash == txid for i in m.items) for m in peer.sent)


@pytest.mark.parametrize("force", [True, False])
def test_whitelistforcerelay_announces_a_whitelisted_peers_transaction_the_pool_already_has(
        loop: asyncio.AbstractEventLoop, force: bool) -> None:
    gateway, listener = FakePeer(0), FakePeer(1)
    relay, pool = _relay(loop, [gateway], whitelist_force_relay=force)
    gateway.whitelisted = True
    tx = _tx(1)
    pool.txs[tx.txid] = tx  # in the pool before `listener` connected: never queued for it
    relay._peers = lambda: [gateway, listener]
    for peer in (gateway, listener):
        peer.remote.relay, peer.remote.version, peer.fee_filter = True, 70028, 0
    loop.run_until_complete(relay.on_tx(gateway, tx))  # type: ignore[arg-type]
    for peer in (gateway, listener):
        relay.trickle(peer)  # type: ignore[arg-type]
    assert _announced(listener, tx.txid) is force
    assert not _announced(gateway, tx.txid)  # never back to the sender, which knows it


def test_whitelistforcerelay_skips_dos_rejects_and_the_trickle_skips_what_the_pool_lacks(
        loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    gateway, listener = FakePeer(0), FakePeer(1)
    gateway.whitelisted = True
    relay, pool = _relay(loop, [gateway, listener])
    cheap, invalid = _tx(1), _tx(2)
    pool.rejects[cheap.txid] = ValidationState.invalid("min relay fee not met")
    pool.rejects[invalid.txid] = ValidationState.invalid("bad-txns-in-belowout", dos=100)
    with caplog.at_level("INFO", logger="aipgd.net.txrelay"):
        loop.run_until_complete(relay.on_tx(gateway, cheap))  # type: ignore[arg-type]
        loop.run_until_complete(relay.on_tx(gateway, invalid))  # type: ignore[arg-type]
    assert f"Force relaying tx {cheap.txid_hex} from whitelisted peer=0" in caplog.text
    assert f"Not relaying invalid transaction {invalid.txid_hex} from whitelisted peer=0" in caplog.text
    assert cheap.txid in relay._st(listener).to_send  # type: ignore[arg-type]
    assert invalid.txid not in relay._st(listener).to_send  # type: ignore[arg-type]
    # Core's SendMessages: "Not in the mempool anymore? don't bother sending it."
    relay.trickle(listener)  # type: ignore[arg-type]
    assert not any(isinstance(m, msg.Inv) for m in listener.sent)
    assert gateway.misbehavior == 100  # scored as in Core; the ConnectionManager never bans the whitelist


@pytest.mark.parametrize("force", [True, False])
def test_whitelisted_peers_get_no_feefilter_only_under_whitelistforcerelay(
        loop: asyncio.AbstractEventLoop, force: bool) -> None:
    gateway = FakePeer(0)
    gateway.whitelisted = True
    relay, _ = _relay(loop, [gateway], whitelist_force_relay=force)
    relay.trickle(gateway)  # type: ignore[arg-type]
    assert (msg.FeeFilter(1000) in gateway.sent) is not force
