"""Mining, chain-state and transaction RPCs, REST, -txindex, -blocknotify and ZMQ against a real aipgd.

One regtest node runs with every option these need; the tests run in file order on the chain it
builds (generate first), each checking one area's success path and its error codes.
"""

from __future__ import annotations

import http.client
import json
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from framework import REGTEST_GENESIS_HASH, TestNode
from framework.rpc import RPCProxy, assert_raises_rpc_error
from framework.util import free_port, wait_until

import kawpow
from aipgd.core.block import Block, BlockHeader
from aipgd.core.merkle import merkle_root
from aipgd.core.params import get_params
from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import compact_to_target, hash_to_hex, hex_to_hash
from aipgd.mining.assembler import coinbase_script_sig

ADDR_ONE = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
P2PKH_ONE = "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"
WIF_ONE = "cMahea7zqjxrtgAbB7LSGbcQUr1uX1ojuat9jZodMN87JcbXMTcA"  # the key of ADDR_ONE


@pytest.fixture(scope="module")
def mining_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestNode, dict[str, Any]]]:
    base = tmp_path_factory.mktemp("mining")
    notify_file = base / "notified.txt"
    zmq_port = free_port()
    extra = {"notify_file": notify_file, "zmq": f"tcp://127.0.0.1:{zmq_port}"}
    node = TestNode(base / "node0", extra_args=[
        "-rest", "-txindex", f"-miningaddress={ADDR_ONE}", f"-blocknotify=echo %s >> {notify_file}",
        f"-zmqpubhashblock={extra['zmq']}", f"-zmqpubrawblock={extra['zmq']}",
        f"-zmqpubhashtx={extra['zmq']}"])
    node.start()
    yield node, extra
    node.cleanup()


@pytest.fixture
def rpc(mining_node: tuple[TestNode, dict[str, Any]]) -> RPCProxy:
    return mining_node[0].rpc()


def _subscriber(address: str) -> Any:
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVTIMEO, 20_000)
    for topic in (b"hashblock", b"rawblock", b"hashtx"):
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(address)
    return sock


def test_generate_zmq_and_blocknotify(mining_node: tuple[TestNode, dict[str, Any]], rpc: RPCProxy) -> None:
    extra = mining_node[1]
    sub = _subscriber(extra["zmq"])
    time.sleep(0.5)  # ZMQ's slow joiner: let the subscription reach the publisher
    hashes = rpc.generate(3)
    assert len(hashes) == 3 and rpc.getblockcount() == 3
    assert rpc.getbestblockhash() == hashes[-1]
    block = rpc.getblock(hashes[-1])
    assert block["height"] == 3 and block["previousblockhash"] == hashes[1]
    assert rpc.getblockhash(1) == hashes[0]
    more = rpc.generatetoaddress(2, ADDR_ONE)
    assert rpc.getblockcount() == 5 and rpc.getbestblockhash() == more[-1]
    assert_raises_rpc_error(-5, "Error: Invalid address", rpc.generatetoaddress, 1, "notanaddress")
    assert_raises_rpc_error(-1, "JSON value is not an integer as expected", rpc.generate, "x")
    # ZMQ: hashblock, rawblock and hashtx with their own increasing sequence numbers.
    seen: dict[str, list[tuple[bytes, int]]] = {"hashblock": [], "rawblock": [], "hashtx": []}
    while len(seen["hashblock"]) < 5 or len(seen["rawblock"]) < 5:
        topic, body, seq = sub.recv_multipart()
        seen[topic.decode()].append((body, struct.unpack("<I", seq)[0]))
    sub.close()
    all_hashes = hashes + more
    assert [b.hex() for b, _ in seen["hashblock"]] == all_hashes
    assert [s for _, s in seen["hashblock"]] == [0, 1, 2, 3, 4]
    assert [s for _, s in seen["rawblock"]] == [0, 1, 2, 3, 4]
    assert seen["rawblock"][0][0].hex() == rpc.getblock(all_hashes[0], 0)
    assert seen["hashtx"][0][0].hex() == rpc.getblock(all_hashes[0])["tx"][0]
    # -blocknotify ran once per new tip with the hash.
    wait_until(lambda: extra["notify_file"].exists()
               and len(extra["notify_file"].read_text().split()) == 5, timeout=20)
    assert extra["notify_file"].read_text().split() == all_hashes


def test_utxo_methods_agree(rpc: RPCProxy) -> None:
    info = rpc.gettxoutsetinfo()
    assert info["height"] == rpc.getblockcount() and info["bestblock"] == rpc.getbestblockhash()
    assert info["transactions"] == info["height"] and info["txouts"] == 2 * info["height"]
    assert len(info["hash_serialized_2"]) == 64 and info["bogosize"] > 0 and info["disk_size"] > 0
    total = Decimal(0)
    for height in range(1, info["height"] + 1):
        txid = rpc.getblock(rpc.getblockhash(height))["tx"][0]
        for n in (0, 1):
            out = rpc.gettxout(txid, n)
            assert out["coinbase"] is True and out["bestblock"] == info["bestblock"]
            assert out["confirmations"] == info["height"] - height + 1
            total += out["value"]
    assert total == info["total_amount"]
    tip_tx = rpc.getblock(info["bestblock"])["tx"][0]
    assert rpc.gettxout(tip_tx, 0)["scriptPubKey"]["hex"] == P2PKH_ONE
    assert rpc.gettxout(tip_tx, 7) is None and rpc.gettxout("00" * 32, 0) is None
    assert_raises_rpc_error(-1, "JSON value is not an integer as expected", rpc.gettxout, tip_tx, "0")


def test_chain_tips_stats_verify_and_operator_actions(rpc: RPCProxy) -> None:
    height = rpc.getblockcount()
    tip = rpc.getbestblockhash()
    assert rpc.getchaintips() == [{"height": height, "hash": tip, "branchlen": 0, "status": "active"}]
    stats = rpc.getchaintxstats()
    assert stats["txcount"] == height + 1 and stats["window_block_count"] == height - 1
    assert rpc.getchaintxstats(1, tip)["window_tx_count"] == 1
    assert_raises_rpc_error(-8, "Invalid block count", rpc.getchaintxstats, height)
    assert_raises_rpc_error(-5, "Block not found", rpc.getchaintxstats, 1, "00" * 32)
    assert rpc.verifychain(4, 0) is True and rpc.verifychain() is True
    # invalidate the tip's parent: the tip goes back two blocks; reconsider brings it back.
    parent = rpc.getblockhash(height - 1)
    assert rpc.invalidateblock(parent) is None
    assert rpc.getblockcount() == height - 2
    tips = {t["hash"]: t for t in rpc.getchaintips()}
    assert tips[tip]["status"] == "invalid" and tips[tip]["branchlen"] == 2
    utxo_before = rpc.gettxoutsetinfo()["hash_serialized_2"]
    assert rpc.reconsiderblock(parent) is None
    assert rpc.getbestblockhash() == tip
    assert rpc.gettxoutsetinfo()["hash_serialized_2"] != utxo_before
    # A competing block of equal work: preciousblock switches to it, and back.
    rpc.invalidateblock(tip)
    other = rpc.generate(1)[0]
    assert rpc.getbestblockhash() == other
    rpc.reconsiderblock(tip)
    assert rpc.getbestblockhash() == tip  # equal work: the block received first wins again
    assert rpc.preciousblock(other) is None and rpc.getbestblockhash() == other
    assert {t["status"] for t in rpc.getchaintips()} == {"active", "valid-fork"}
    rpc.preciousblock(tip)
    assert rpc.getbestblockhash() == tip
    for method in (rpc.invalidateblock, rpc.reconsiderblock, rpc.preciousblock):
        assert_raises_rpc_error(-5, "Block not found", method, "00" * 32)
    assert_raises_rpc_error(-1, "Cannot prune blocks because node is not in prune mode.",
                            rpc.pruneblockchain, 1)


def test_waitfor_methods_wake_on_new_blocks(rpc: RPCProxy, mining_node: tuple[TestNode, Any]) -> None:
    node = mining_node[0]
    height = rpc.getblockcount()
    assert rpc.waitfornewblock(50)["height"] == height  # times out on the current tip
    result: dict[str, Any] = {}

    def waiter() -> None:
        result["new"] = node.rpc().waitfornewblock(30_000)
        result["height"] = node.rpc().waitforblockheight(height + 1, 30_000)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    new = rpc.generate(1)[0]
    thread.join(30)
    assert time.monotonic() - started < 10
    assert result["new"] == {"hash": new, "height": height + 1} == result["height"]
    assert rpc.waitforblock(new, 1000) == {"hash": new, "height": height + 1}


def test_getblocktemplate_pool_build_submitblock(rpc: RPCProxy) -> None:
    tmpl = rpc.getblocktemplate()
    height = rpc.getblockcount() + 1
    assert tmpl["height"] == height and tmpl["previousblockhash"] == rpc.getbestblockhash()
    assert tmpl["version"] == 0x30000000 and tmpl["transactions"] == []
    for key in ("coinbaseaux", "CommunityAutonomousAddress", "CommunityAutonomousValue", "longpollid",
                "target", "mintime", "mutable", "noncerange", "sigoplimit", "sizelimit", "weightlimit",
                "curtime", "bits", "capabilities", "rules", "vbavailable", "vbrequired",
                "default_witness_commitment", "pprpcheader", "pprpcepoch"):
        assert key in tmpl, key
    assert tmpl["sigoplimit"] == 80000 and tmpl["sizelimit"] == tmpl["weightlimit"] == 8000000
    assert tmpl["pprpcepoch"] == 0
    # Build the block as a pool would: coinbase from the template's values, merkle root, KawPoW.
    coinbase = Transaction(
        1, (TxIn(NULL_OUTPOINT, coinbase_script_sig(height, 77), witness=(bytes(32),)),),
        (TxOut(tmpl["coinbasevalue"], bytes.fromhex(P2PKH_ONE)),
         TxOut(tmpl["CommunityAutonomousValue"], get_params("regtest").community_autonomous_script),
         TxOut(0, bytes.fromhex(tmpl["default_witness_commitment"]))), 0)
    root, _ = merkle_root([coinbase.txid])
    header = BlockHeader(tmpl["version"], hex_to_hash(tmpl["previousblockhash"]), root, tmpl["curtime"],
                         int(tmpl["bits"], 16), height=height, kawpow=True)
    assert int(tmpl["target"], 16) == compact_to_target(header.bits)[0]
    found = kawpow.search(height, header.kawpow_input(), bytes.fromhex(tmpl["target"]), 0, 1 << 16)
    assert found is not None
    solved = Block(header.with_fields(nonce64=found.nonce, mix_hash=found.mix_hash[::-1]), (coinbase,))
    raw = solved.serialize().hex()
    assert rpc.getblocktemplate({"mode": "proposal", "data": raw}) is None
    assert rpc.submitblock(raw) is None
    assert rpc.getbestblockhash() == solved.hash_hex
    assert rpc.submitblock(raw) == "duplicate"
    assert_raises_rpc_error(-22, "Block decode failed", rpc.submitblock, "00")
    spend = Transaction(1, (TxIn(OutPoint(hex_to_hash("11" * 32), 0), b""),), (TxOut(1, b""),), 0)
    bad = Block(solved.header, (spend,))
    assert_raises_rpc_error(-22, "Block does not start with a coinbase", rpc.submitblock,
                            bad.serialize().hex())
    assert_raises_rpc_error(-8, "Invalid mode", rpc.getblocktemplate, {"mode": "nosuch"})
    # A stale header (bad proof of work) is refused with Core's reason.
    stale = Block(solved.header.with_fields(nonce64=found.nonce + 1), (coinbase,))
    assert rpc.submitblock(stale.serialize().hex()) in ("high-hash", "invalid-mix-hash")


def _proposal_block(tmpl: dict[str, Any], txs: tuple[Transaction, ...], prev: str | None = None) -> Block:
    """An unsolved block on the template (proposals skip proof of work), without witness data."""
    height = tmpl["height"]
    coinbase = Transaction(
        1, (TxIn(NULL_OUTPOINT, coinbase_script_sig(height, 5)),),
        (TxOut(tmpl["coinbasevalue"], bytes.fromhex(P2PKH_ONE)),
         TxOut(tmpl["CommunityAutonomousValue"], get_params("regtest").community_autonomous_script)), 0)
    root, _ = merkle_root([tx.txid for tx in (coinbase, *txs)])
    prev_hash = hex_to_hash(prev or tmpl["previousblockhash"])
    header = BlockHeader(tmpl["version"], prev_hash, root, tmpl["curtime"], int(tmpl["bits"], 16),
                         height=height, kawpow=True)
    return Block(header, (coinbase, *txs))


def test_getblocktemplate_versionbits_and_proposals(rpc: RPCProxy) -> None:
    tmpl = rpc.getblocktemplate({"rules": ["assets"]})
    # Regtest's deployments start with the first 144-block period: before it, DEFINED everywhere.
    assert tmpl["height"] < 144
    assert (tmpl["version"], tmpl["rules"], tmpl["vbavailable"]) == (0x30000000, [], {})
    assert tmpl["vbrequired"] == 0
    assert "version/force" not in tmpl["mutable"]
    assert "version/force" in rpc.getblocktemplate({"maxversion": 4})["mutable"]
    assert_raises_rpc_error(-1, "JSON value is not a string as expected", rpc.getblocktemplate,
                            {"rules": [1]})
    forks = rpc.getblockchaininfo()["bip9_softforks"]
    assert list(forks) == ["assets", "messaging_restricted", "transfer_script", "enforce", "coinbase"]
    assert forks["assets"] == {"status": "defined", "startTime": 0, "timeout": 999999999999, "since": 0}
    best = rpc.getbestblockhash()
    # A valid (unsolved) block on the tip: null, and nothing about the chain changes.
    valid = _proposal_block(tmpl, ())
    assert rpc.getblocktemplate({"mode": "proposal", "data": valid.serialize().hex()}) is None
    assert rpc.getbestblockhash() == best
    assert_raises_rpc_error(-5, "Block not found", rpc.getblockheader, valid.hash_hex)
    # ConnectBlock runs on a scratch view: a missing input is found there.
    spend = Transaction(1, (TxIn(OutPoint(hex_to_hash("22" * 32), 0), b""),), (TxOut(1, b"\x51"),), 0)
    missing = _proposal_block(tmpl, (spend,))
    assert rpc.getblocktemplate({"mode": "proposal", "data": missing.serialize().hex()}) == \
        "bad-txns-inputs-missingorspent"
    # Only blocks on the tip can be tested.
    stale = _proposal_block(tmpl, (), prev="33" * 32)
    assert rpc.getblocktemplate({"mode": "proposal", "data": stale.serialize().hex()}) == \
        "inconclusive-not-best-prevblk"
    # Header rules come first (Core: ContextualCheckBlockHeader).
    bad_bits = Block(valid.header.with_fields(bits=0x1D00FFFF), valid.vtx)
    assert rpc.getblocktemplate({"mode": "proposal", "data": bad_bits.serialize().hex()}) == "bad-diffbits"
    assert rpc.getblocktemplate({"mode": "proposal", "data": rpc.getblock(best, 0)}) == "duplicate"
    assert rpc.getbestblockhash() == best


def test_pprpcsb_and_getkawpowhash(rpc: RPCProxy) -> None:
    tmpl = rpc.getblocktemplate()
    header_hash = tmpl["pprpcheader"]
    assert rpc.getblocktemplate()["pprpcheader"] == header_hash  # remembered for 30 s
    target = bytes.fromhex(tmpl["target"])
    found = kawpow.search(tmpl["height"], bytes.fromhex(header_hash), target, 0, 1 << 16)
    assert found is not None
    check = rpc.getkawpowhash(header_hash, found.mix_hash.hex(), hex(found.nonce), tmpl["height"],
                              tmpl["target"])
    assert check == {"result": "true", "digest": found.final_hash.hex(), "mix_hash": found.mix_hash.hex(),
                     "info": "", "meets_target": "true"}
    assert rpc.getkawpowhash(header_hash, "00" * 32, hex(found.nonce), tmpl["height"])["result"] == "false"
    assert_raises_rpc_error(-32602, "Invalid nonce hex string", rpc.getkawpowhash, header_hash, "00", "zz", 1)
    assert_raises_rpc_error(-22, "Block height is to large", rpc.getkawpowhash, header_hash, "00", "1",
                            10 ** 6)
    assert_raises_rpc_error(-32602, "Block header hash not found in block data", rpc.pprpcsb, "00" * 32,
                            found.mix_hash.hex(), hex(found.nonce))
    assert_raises_rpc_error(-32602, "Invalid hex nonce", rpc.pprpcsb, header_hash, "00", "xyz")
    assert_raises_rpc_error(-22, "Block does not solve the boundary", rpc.pprpcsb, header_hash, "00" * 32,
                            hex(found.nonce))
    before = rpc.getblockcount()
    assert rpc.pprpcsb(header_hash, found.mix_hash.hex(), hex(found.nonce)) is True
    assert rpc.getblockcount() == before + 1
    block = rpc.getblock(rpc.getbestblockhash())
    assert block["headerhash"] == header_hash and block["mixhash"] == found.mix_hash.hex()
    assert block["nonce64"] == found.nonce
    assert rpc.getblock(rpc.getbestblockhash(), 2)["tx"][0]["vout"][0]["scriptPubKey"]["hex"] == P2PKH_ONE
    info = rpc.getmininginfo()
    assert info["blocks"] == before + 1 and info["chain"] == "regtest" and info["pooledtx"] == 0
    assert rpc.getnetworkhashps() > 0 and rpc.getnetworkhashps(-1, 0) == 0
    assert rpc.prioritisetransaction("aa" * 32, 0, 1000) is True
    assert_raises_rpc_error(-8, "Priority is no longer supported", rpc.prioritisetransaction, "aa" * 32, 1,
                            1000)


def test_raw_transactions_and_proofs(rpc: RPCProxy) -> None:
    block_hash = rpc.getblockhash(2)
    txid = rpc.getblock(block_hash)["tx"][0]
    raw = rpc.getrawtransaction(txid)
    assert rpc.decoderawtransaction(raw)["txid"] == txid
    verbose = rpc.getrawtransaction(txid, True)
    assert verbose["blockhash"] == block_hash and verbose["height"] == 2 and verbose["hex"] == raw
    assert verbose["confirmations"] == rpc.getblockcount() - 1 and verbose["vout"][0]["valueSat"] > 0
    assert rpc.getrawtransaction(txid, 1) == verbose
    assert_raises_rpc_error(-5, "No such mempool or blockchain transaction", rpc.getrawtransaction, "ab" * 32)
    assert_raises_rpc_error(-8, "parameter 1 must be of length 64", rpc.getrawtransaction, "abcd")
    assert_raises_rpc_error(-3, "Verbose parameter must be a boolean", rpc.getrawtransaction, txid, "x")
    proof = rpc.gettxoutproof([txid])
    assert rpc.verifytxoutproof(proof) == [txid]
    assert rpc.gettxoutproof([txid], block_hash) == proof
    assert_raises_rpc_error(-8, "Invalid txid", rpc.gettxoutproof, ["00"])
    assert_raises_rpc_error(-8, "duplicated txid", rpc.gettxoutproof, [txid, txid])
    assert_raises_rpc_error(-5, "Not all transactions found", rpc.gettxoutproof, [txid],
                            rpc.getblockhash(3))
    assert_raises_rpc_error(-5, "Transaction not yet in block", rpc.gettxoutproof, ["cd" * 32])
    # A proof whose block is no longer on the active chain.
    rpc.invalidateblock(block_hash)
    assert_raises_rpc_error(-5, "Block not found in chain", rpc.verifytxoutproof, proof)
    rpc.reconsiderblock(block_hash)
    assert rpc.verifytxoutproof(proof) == [txid]


def test_getrawtransaction_without_txindex(make_node: Any) -> None:
    node = make_node()
    node.start()
    rpc = node.rpc()
    txid = rpc.getblock(rpc.generate(1)[0])["tx"][0]
    assert rpc.getrawtransaction(txid, True)["txid"] == txid  # found through its unspent output
    assert_raises_rpc_error(-5, "No such mempool transaction. Use -txindex to enable blockchain transaction "
                            "queries. Use gettransaction for wallet transactions.", rpc.getrawtransaction,
                            "ab" * 32)
    node.stop()


def test_versionbits_deployments_walk_on_regtest(make_node: Any) -> None:
    """Regtest's deployments start at height 144 (144-block periods; transfer_script 288, coinbase
    500). Our miner signals every STARTED bit, and testdummy's bit 28 lies inside the top bits."""
    node = make_node()
    node.start()
    rpc = node.rpc()
    rpc.generate(143)
    tmpl = rpc.getblocktemplate()
    assert tmpl["version"] == 0x300002C0 and tmpl["rules"] == []
    assert tmpl["vbavailable"] == {"testdummy": 28, "assets": 6, "messaging_restricted": 7,
                                   "enforce_value": 9}
    forks = rpc.getblockchaininfo()["bip9_softforks"]
    assert forks["assets"] == {
        "status": "started", "bit": 6, "startTime": 0, "timeout": 999999999999, "since": 144,
        "statistics": {"period": 144, "threshold": 108, "elapsed": 0, "count": 0, "possible": True}}
    assert forks["transfer_script"]["status"] == "defined"
    rpc.generate(10)
    stats = rpc.getblockchaininfo()["bip9_softforks"]["enforce"]["statistics"]
    assert (stats["elapsed"], stats["count"]) == (10, 10)
    rpc.generate(134)  # tip 287: the 144-block deployments lock in, transfer_script starts
    tmpl = rpc.getblocktemplate()
    assert tmpl["version"] == 0x300003C0
    assert tmpl["vbavailable"]["transfer_script"] == 8
    forks = rpc.getblockchaininfo()["bip9_softforks"]
    assert (forks["assets"]["status"], forks["assets"]["since"]) == ("locked_in", 288)
    assert "bit" not in forks["assets"] and "statistics" not in forks["assets"]
    rpc.generate(144)  # tip 431
    tmpl = rpc.getblocktemplate()
    assert tmpl["rules"] == ["testdummy", "assets", "messaging_restricted", "enforce_value"]
    assert tmpl["vbavailable"] == {"transfer_script": 8}
    assert tmpl["version"] == 0x30000100
    assert rpc.getblockchaininfo()["bip9_softforks"]["enforce"] == {
        "status": "active", "startTime": 0, "timeout": 999999999999, "since": 432}
    assert rpc.getblock(rpc.getbestblockhash())["version"] == 0x30000100 | 0x2C0
    node.stop()


def _get(port: int, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST" if body is not None else "GET", path, body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def test_rest_formats(mining_node: tuple[TestNode, Any], rpc: RPCProxy) -> None:
    port = mining_node[0].rpc_port
    tip = rpc.getbestblockhash()
    status, ctype, body = _get(port, f"/rest/block/{tip}.bin")
    assert status == 200 and ctype == "application/octet-stream" and body.hex() == rpc.getblock(tip, 0)
    status, ctype, body = _get(port, f"/rest/block/{tip}.hex")
    assert (status, ctype, body.decode()) == (200, "text/plain", rpc.getblock(tip, 0) + "\n")
    status, ctype, body = _get(port, f"/rest/block/{tip}.json")
    assert json.loads(body)["tx"][0]["txid"] == rpc.getblock(tip)["tx"][0]
    status, _, body = _get(port, f"/rest/block/notxdetails/{tip}.json")
    assert json.loads(body)["tx"] == rpc.getblock(tip)["tx"]
    assert _get(port, f"/rest/block/{tip}.xml")[0] == 400  # Core: an unknown suffix stays in the hash
    assert _get(port, f"/rest/block/{tip}")[2].startswith(b"output format not found (available: .bin")
    assert _get(port, "/rest/block/nothash.json")[2].startswith(b"Invalid hash: nothash")
    assert _get(port, f"/rest/block/{'00' * 32}.json")[0] == 404
    txid = rpc.getblock(tip)["tx"][0]
    status, _, body = _get(port, f"/rest/tx/{txid}.hex")
    assert body.decode().strip() == rpc.getrawtransaction(txid)
    assert json.loads(_get(port, f"/rest/tx/{txid}.json")[2])["txid"] == txid
    first = rpc.getblockhash(1)
    status, _, body = _get(port, f"/rest/headers/3/{first}.bin")
    assert status == 200 and len(body) == 3 * 120
    headers = json.loads(_get(port, f"/rest/headers/2/{first}.json")[2])
    assert [h["height"] for h in headers] == [1, 2]
    assert _get(port, f"/rest/headers/0/{first}.json")[0] == 400
    assert _get(port, f"/rest/headers/{first}.json")[0] == 400
    info = json.loads(_get(port, "/rest/chaininfo.json")[2])
    assert info["bestblockhash"] == tip and info["chain"] == "regtest"
    assert _get(port, "/rest/chaininfo.bin")[0] == 404
    assert json.loads(_get(port, "/rest/mempool/info.json")[2])["size"] == 0
    assert json.loads(_get(port, "/rest/mempool/contents.json")[2]) == {}
    utxos = json.loads(_get(port, f"/rest/getutxos/checkmempool/{txid}-0/{txid}-9.json")[2])
    assert utxos["bitmap"] == "10" and utxos["chaintipHash"] == tip and len(utxos["utxos"]) == 1
    # The binary request (BIP64): fCheckMemPool, then the outpoints; the reply ends with the coins.
    request = b"\x00\x01" + hex_to_hash(txid) + struct.pack("<I", 0)
    status, _, body = _get(port, "/rest/getutxos.bin", request)
    assert status == 200 and body[4:36] == hex_to_hash(tip) and body[36:38] == b"\x01\x01"
    assert _get(port, "/rest/getutxos.json")[0] == 400
    assert _get(port, f"/rest/getutxos/{txid}-x.json")[2].startswith(b"Parse error")
    too_many = "/".join(f"{txid}-{n}" for n in range(16))
    assert b"max outpoints exceeded" in _get(port, f"/rest/getutxos/{too_many}.json")[2]
    assert hash_to_hex(hex_to_hash(tip)) == tip and tip != REGTEST_GENESIS_HASH
    # With a transaction in the pool, the mempool resources answer what getmempoolinfo and
    # getrawmempool(true) do (Core: rest_mempool_info, rest_mempool_contents).
    rpc.generate(max(0, 101 - rpc.getblockcount()))
    coinbase = rpc.getblock(rpc.getblockhash(1))["tx"][0]
    value = rpc.gettxout(coinbase, 0)["value"]
    raw = rpc.createrawtransaction([{"txid": coinbase, "vout": 0}], {ADDR_ONE: str(value - Decimal("0.01"))})
    sent = rpc.sendrawtransaction(rpc.signrawtransaction(raw, [], [WIF_ONE])["hex"])
    contents = json.loads(_get(port, "/rest/mempool/contents.json")[2], parse_float=Decimal)
    assert list(contents) == [sent] and contents == rpc.getrawmempool(True)
    info = json.loads(_get(port, "/rest/mempool/info.json")[2], parse_float=Decimal)
    assert info["size"] == 1 and info == rpc.getmempoolinfo()
    assert _get(port, "/rest/mempool/info.bin")[0] == 404


def test_rest_is_off_by_default_and_gbt_needs_peers_on_testnet(make_node: Any) -> None:
    node = make_node()
    node.start()
    assert _get(node.rpc_port, "/rest/chaininfo.json")[0] == 404
    node.stop()
    testnet = make_node("testnode", network="test")
    testnet.start()
    assert_raises_rpc_error(-9, "Aipg is not connected!", testnet.rpc().getblocktemplate)
    testnet.stop()


def test_cli_round_trips_new_methods(mining_node: tuple[TestNode, Any], rpc: RPCProxy) -> None:
    node = mining_node[0]

    def cli(*words: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "rpc.cli", "-regtest", f"-datadir={node.datadir}",
             f"-rpcport={node.rpc_port}", *words], capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip()

    tip = rpc.getbestblockhash()
    txid = rpc.getblock(tip)["tx"][0]
    assert json.loads(cli("gettxout", txid, "0", "true"))["coinbase"] is True
    assert json.loads(cli("getchaintxstats", "1"))["window_block_count"] == 1
    assert cli("verifychain", "1", "2") == "true"
    assert json.loads(cli("getrawtransaction", txid, "true"))["txid"] == txid
    assert cli("gettxoutproof", json.dumps([txid])) == rpc.gettxoutproof([txid])
    assert json.loads(cli("getblocktemplate", '{"rules": []}'))["height"] == rpc.getblockcount() + 1
    assert json.loads(cli("getnetworkhashps", "10", "-1")) >= 0
    assert cli("prioritisetransaction", "aa" * 32, "0", "5") == "true"
    hashes = json.loads(cli("generatetoaddress", "1", ADDR_ONE, "100000"))
    assert hashes == [rpc.getbestblockhash()]
    assert Path(node.datadir).exists()
