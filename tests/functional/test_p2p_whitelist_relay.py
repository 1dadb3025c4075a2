"""-whitelistrelay and -whitelistforcerelay between a real aipgd and raw peers on loopback (Core 0.15:
ProcessMessage's "tx" branch and InitParameterInteraction): under -blocksonly a whitelisted peer's
transactions are taken only with -whitelistrelay; with -whitelistforcerelay a whitelisted peer's
transaction the pool already has is announced to the other peers again, one the pool rejects for
policy is logged as force-relayed yet, as in Core, never announced, since the trickle only sends what
the mempool holds."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from framework import TestNode
from framework.p2p import RawPeer
from framework.util import wait_until

from aipgd.core.transaction import COIN, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hex_to_hash
from aipgd.net import messages as msg

GATEWAY_IP = "127.0.0.41"  # the whitelisted peer
LISTENER_IP = "127.0.0.42"
FEE = 1_000_000


def _coinbase_spends(node: TestNode, count: int, fee: int = FEE) -> list[Transaction]:
    """Spends of the first `count` coinbases (regtest's generate pays OP_TRUE, so an empty scriptSig
    does); mines enough blocks for them to be mature."""
    rpc = node.rpc()
    hashes: list[str] = rpc.generate(100 + count)
    spends = []
    for block_hash in hashes[:count]:
        coinbase = hex_to_hash(rpc.getblock(block_hash)["tx"][0])
        value = int(Decimal(str(rpc.gettxout(coinbase[::-1].hex(), 0)["value"])) * COIN)
        spends.append(Transaction(2, (TxIn(OutPoint(coinbase, 0), b"", 0xFFFFFFFF),),
                                  (TxOut(value - fee, b"\x51"),), 0))
    return spends


def _announces(txid: bytes) -> Callable[[msg.Message], bool]:
    return lambda m: isinstance(m, msg.Inv) and any(i.hash == txid for i in m.items)


def _announced(peer: RawPeer, txid: bytes) -> bool:
    return any(map(_announces(txid), peer.messages))


def _handled(peer: RawPeer, nonce: int) -> None:
    """The node handles a peer's messages in order: its pong means everything before the ping is done."""
    peer.send(msg.Ping(nonce))
    peer.wait_for_message(lambda m: m == msg.Pong(nonce))


@pytest.mark.timeout(240)
def test_whitelistrelay_decides_whether_blocksonly_takes_a_whitelisted_peers_transactions(
        make_node: Callable[..., TestNode]) -> None:
    node = make_node("a", extra_args=["-debug=net", f"-whitelist={GATEWAY_IP}", "-blocksonly"])
    node.start()
    tx, = _coinbase_spends(node, 1)

    # Core: -blocksonly=1 soft-sets -whitelistrelay=0, and an explicit -whitelistrelay=0 is the same.
    for setting in ((), ("-whitelistrelay=0",)):
        node.stop()
        node.start(setting)
        rpc = node.rpc()  # a new cookie each start
        gateway = RawPeer(node.p2p_port, GATEWAY_IP)
        gateway.handshake()
        gateway.send(msg.TxMessage(tx))
        node.wait_for_log(r"transaction sent in violation of protocol peer=\d+")
        _handled(gateway, 1)
        assert rpc.getrawmempool() == []
        gateway.close()

    node.stop()
    node.start(["-whitelistrelay=1"])
    rpc = node.rpc()
    gateway = RawPeer(node.p2p_port, GATEWAY_IP)
    gateway.handshake()
    gateway.send(msg.TxMessage(tx))
    wait_until(lambda: rpc.getrawmempool() == [tx.txid_hex], what="the whitelisted peer's transaction")
    assert "in violation of protocol" not in node.log_since_start()
    # Other peers stay refused.
    stranger = RawPeer(node.p2p_port, "127.0.0.43")
    stranger.handshake()
    stranger.send(msg.TxMessage(tx))
    node.wait_for_log(r"transaction sent in violation of protocol peer=\d+")
    stranger.close()
    gateway.close()
    assert node.stop() == 0


@pytest.mark.timeout(240)
def test_whitelistforcerelay_announces_what_the_pool_already_has_from_a_whitelisted_peer(
        make_node: Callable[..., TestNode]) -> None:
    node = make_node("a", extra_args=["-debug=net", "-debug=mempool", f"-whitelist={GATEWAY_IP}"])
    node.start()
    spends = _coinbase_spends(node, 6)
    for force, (known, control, paying) in ((True, spends[:3]), (False, spends[3:])):
        node.stop()
        node.start([f"-whitelistforcerelay={int(force)}"])
        rpc = node.rpc()  # a new cookie each start
        # In the pool before the listener connects, so it is queued for nobody.
        rpc.sendrawtransaction(known.serialize().hex())
        # Pays no fee: the pool rejects it for policy (min relay fee), without a DoS score.
        cheap = Transaction(2, paying.vin, (TxOut(paying.vout[0].value + FEE, b"\x51"),), 0)
        listener = RawPeer(node.p2p_port, LISTENER_IP)
        listener.handshake()
        gateway = RawPeer(node.p2p_port, GATEWAY_IP)
        gateway.handshake()
        gateway.send(msg.TxMessage(known))
        gateway.send(msg.TxMessage(cheap))
        _handled(gateway, 7)
        log = node.log_since_start()
        assert (f"Force relaying tx {known.txid_hex} from whitelisted peer=" in log) is force
        assert (f"Force relaying tx {cheap.txid_hex} from whitelisted peer=" in log) is force
        assert f"{cheap.txid_hex} from peer=" in log and "min relay fee not met" in log
        if force:
            listener.wait_for_message(_announces(known.txid), timeout=30)
        # A transaction accepted now is announced with, or after, anything queued before it.
        rpc.sendrawtransaction(control.serialize().hex())
        listener.wait_for_message(_announces(control.txid), timeout=30)
        assert _announced(listener, known.txid) is force
        assert not _announced(listener, cheap.txid)
        assert not _announced(gateway, known.txid)  # the sender knows it
        listener.close()
        gateway.close()
    assert node.stop() == 0
