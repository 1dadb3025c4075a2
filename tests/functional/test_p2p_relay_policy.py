"""Transaction relay policy between real aipgd processes (Core: p2p_feefilter, p2p_mempool,
mempool_reorg in spirit): -blocksonly refuses peers' transactions and says so with fRelay=0 and a
MAX_MONEY feefilter; the `mempool` message is answered for whitelisted peers only; transactions a
reorg returns to the pool are announced again."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from framework import TestNode
from framework.p2p import RawPeer
from framework.util import wait_until

from aipgd.core.transaction import COIN, MAX_MONEY, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hex_to_hash
from aipgd.net import messages as msg


def _spend(txid: bytes, value: int, fee: int = 1_000_000) -> Transaction:
    """Spends output 0 (regtest's generate pays OP_TRUE, so an empty scriptSig does)."""
    return Transaction(2, (TxIn(OutPoint(txid, 0), b"", 0xFFFFFFFF),), (TxOut(value - fee, b"\x51"),), 0)


def _announces(txid: bytes) -> Callable[[msg.Message], bool]:
    return lambda m: isinstance(m, msg.Inv) and any(i.hash == txid for i in m.items)


@pytest.mark.timeout(180)
def test_blocksonly_mempool_request_and_reorg_reannouncement(make_node: Callable[..., TestNode]) -> None:
    a = make_node("a", extra_args=["-debug=net", "-whitelist=127.0.0.21"])
    a.start()
    ra = a.rpc()
    hashes: list[str] = ra.generate(101)
    coinbase = hex_to_hash(ra.getblock(hashes[0])["tx"][0])
    value = int(Decimal(str(ra.gettxout(coinbase[::-1].hex(), 0)["value"])) * COIN)
    tx = _spend(coinbase, value)

    # -blocksonly: fRelay=0 in its version, a MAX_MONEY feefilter, and peers' transactions dropped.
    b = make_node("b", extra_args=["-debug=net", "-blocksonly", f"-connect={a.p2p_address}", "-listen=1"])
    b.start()
    rb = b.rpc()
    wait_until(lambda: rb.getblockcount() == 101, what="b to sync")
    wait_until(lambda: any(not p["relaytxes"] for p in ra.getpeerinfo()), what="b's fRelay=0 at a")
    assert rb.getnetworkinfo()["localrelay"] is False
    pusher = RawPeer(b.p2p_port, "127.0.0.20")
    pusher.handshake()
    pusher.wait_for_message(lambda m: m == msg.FeeFilter(MAX_MONEY))
    pusher.send(msg.TxMessage(tx))
    b.wait_for_log("transaction sent in violation of protocol peer=")
    assert rb.getrawmempool() == []
    pusher.close()
    assert b.stop() == 0

    # The mempool message: whitelisted peers get an inv of the pool, others are disconnected.
    assert ra.sendrawtransaction(tx.serialize().hex()) == tx.txid_hex
    gateway = RawPeer(a.p2p_port, "127.0.0.21")
    gateway.handshake()
    gateway.send(msg.MempoolRequest())
    gateway.wait_for_message(_announces(tx.txid))
    stranger = RawPeer(a.p2p_port, "127.0.0.22")
    stranger.handshake()
    stranger.send(msg.MempoolRequest())
    assert stranger.closed_by_node()
    stranger.close()

    # A reorg returns the mined transaction to the pool, and it is announced again.
    block = ra.generate(1)[0]
    assert ra.getrawmempool() == []
    listener = RawPeer(a.p2p_port, "127.0.0.23")
    listener.handshake()
    ra.invalidateblock(block)
    assert ra.getrawmempool() == [tx.txid_hex]
    listener.wait_for_message(_announces(tx.txid), timeout=20)
    listener.close()
    gateway.close()
    assert a.stop() == 0
