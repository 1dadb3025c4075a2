"""The mempool against a real aipgd: sendrawtransaction -> getrawmempool -> getblocktemplate ->
generate -> confirmed, Core's error codes, and mempool.dat across a restart."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from framework import TestNode
from framework.rpc import assert_raises_rpc_error

from aipgd.core.transaction import COIN, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hex_to_hash

OP_TRUE = b"\x51"
FEE = 1_000_000


def _spend(txid_hex: str, value: int, fee: int = FEE) -> Transaction:
    prevout = OutPoint(hex_to_hash(txid_hex), 0)
    return Transaction(2, (TxIn(prevout, b"", 0xFFFFFFFF),), (TxOut(value - fee, OP_TRUE),), 0)


def test_send_mine_confirm_and_restart(make_node: Callable[..., TestNode]) -> None:
    node = make_node(extra_args=["-maxtxfee=1"])
    node.start()
    rpc = node.rpc()
    # The default maxtries budget (1,000,000 hashes) easily covers 101 regtest blocks: Core charges
    # one try per hash, not a whole inner loop per block.
    hashes = rpc.generate(101)
    coinbases = [rpc.getblock(h)["tx"][0] for h in hashes[:2]]
    values = [int(Decimal(str(rpc.gettxout(t, 0)["value"])) * COIN) for t in coinbases]
    tx = _spend(coinbases[0], values[0])
    txid = rpc.sendrawtransaction(tx.serialize().hex())
    assert txid == tx.txid_hex
    assert rpc.getrawmempool() == [txid]
    entry = rpc.getmempoolentry(txid)
    assert Decimal(str(entry["fee"])) == Decimal("0.01") and entry["ancestorcount"] == 1
    assert rpc.getrawmempool(True)[txid]["size"] == entry["size"]
    info = rpc.getmempoolinfo()
    assert info["size"] == 1 and info["maxmempool"] == 300_000_000
    assert rpc.getrawtransaction(txid) == tx.serialize().hex()
    assert rpc.gettxout(txid, 0)["confirmations"] == 0
    assert rpc.gettxout(coinbases[0], 0) is None  # spent by the pool
    assert rpc.gettxout(coinbases[0], 0, False)["confirmations"] == 101
    # Sending it again is harmless; a double spend is refused with Core's "code: reason".
    assert rpc.sendrawtransaction(tx.serialize().hex()) == txid
    double = _spend(coinbases[0], values[0], fee=2 * FEE)
    assert_raises_rpc_error(-26, "18: txn-mempool-conflict", rpc.sendrawtransaction, double.serialize().hex())
    assert rpc.testmempoolaccept([double.serialize().hex()]) == [
        {"txid": double.txid_hex, "allowed": False, "reject-reason": "18: txn-mempool-conflict"}]
    cheap = _spend(coinbases[1], values[1], fee=1000)
    assert_raises_rpc_error(-26, "66: min relay fee not met", rpc.sendrawtransaction, cheap.serialize().hex())
    assert_raises_rpc_error(-26, "256: absurdly-high-fee", rpc.sendrawtransaction,
                            _spend(coinbases[1], values[1], fee=2 * COIN).serialize().hex())
    assert_raises_rpc_error(-5, "Transaction not in mempool", rpc.getmempoolentry, "ab" * 32)

    child = _spend(txid, values[0] - FEE)
    # Signing sees the unconfirmed parent's output (Core: CCoinsViewMemPool).
    assert "errors" not in rpc.signrawtransaction(child.serialize().hex(), [], [])
    assert rpc.sendrawtransaction(child.serialize().hex()) == child.txid_hex
    assert rpc.getmempoolancestors(child.txid_hex) == [txid]
    assert list(rpc.getmempooldescendants(txid, True)) == [child.txid_hex]
    assert rpc.getmempoolentry(txid)["descendantcount"] == 2
    assert rpc.savemempool() is None

    # mempool.dat carries them across a restart.
    node.stop()
    assert (node.netdir / "mempool.dat").exists()
    node.start()
    rpc = node.rpc()
    assert sorted(rpc.getrawmempool()) == sorted([txid, child.txid_hex])

    template = rpc.getblocktemplate()
    assert [t["txid"] for t in template["transactions"]] == [txid, child.txid_hex]
    assert template["transactions"][0]["fee"] == FEE and template["transactions"][1]["depends"] == [1]
    block_hash = rpc.generate(1)[0]
    assert rpc.getrawmempool() == []
    assert rpc.getblock(block_hash)["tx"][1:] == [txid, child.txid_hex]
    assert rpc.getrawtransaction(child.txid_hex, True)["confirmations"] == 1
    assert_raises_rpc_error(-27, "transaction already in block chain", rpc.sendrawtransaction,
                            child.serialize().hex())
    # Disconnecting the block returns its transactions to the pool.
    rpc.invalidateblock(block_hash)
    assert sorted(rpc.getrawmempool()) == sorted([txid, child.txid_hex])
    assert rpc.getmininginfo()["pooledtx"] == 2
    assert rpc.getmempoolentry(child.txid_hex)["ancestorcount"] == 2
