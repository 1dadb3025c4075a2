"""aipg-cli round trips for every registered RPC method against one regtest node.

The list of methods comes from the server's own table at test time; CLI_WORDS must give every one of
them the words a user would type, so a new method fails this test until it adds an entry. Read-only
methods must print exactly what the same JSON-RPC call returns (strings raw, everything else as
JSON); state-changing ones go through the CLI only and their effect is checked over JSON-RPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from framework import TestNode, wait_until
from framework.p2p import RawPeer
from framework.rpc import JSONRPCException, RPCProxy
from framework.util import free_port

import kawpow
from aipgd.core.block import Block, BlockHeader
from aipgd.core.merkle import merkle_root
from aipgd.core.params import get_params
from aipgd.core.transaction import NULL_OUTPOINT, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hex_to_hash
from aipgd.mining.assembler import coinbase_script_sig
from pouw.tinymodel import write_tiny_llama
from rpc.methods import build_table
from rpc.registry import Kind

WIF_ONE = "cMahea7zqjxrtgAbB7LSGbcQUr1uX1ojuat9jZodMN87JcbXMTcA"
PUBKEY_ONE = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
P2PKH_ONE = "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"
ADDR_ONE = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
OP_TRUE = b"\x51"
BANNED = "192.168.0.1"
ADDED = "127.0.0.1:1"

# Every registered method: the command-line words after the method name, as a user types them.
# "{name}" fields are filled from the prepared chain (see _prepare); JSON braces are doubled.
CLI_WORDS: dict[str, tuple[str, ...]] = {
    "addnode": (ADDED, "add"),
    "clearbanned": (),
    "combinerawtransaction": ('["{tx2}"]',),
    "createmultisig": ("1", f'["{PUBKEY_ONE}"]'),
    "createrawtransaction": ('[{{"txid": "{cb2}", "vout": 0}}]', f'{{{{"{ADDR_ONE}": 1.5, "data": "cafe"}}}}',
                             "7"),
    "decoderawtransaction": ("{tx2}",),
    "decodescript": (P2PKH_ONE,),
    "disconnectnode": ("", "{peerid}"),
    "estimatefee": ("6",),
    "estimatesmartfee": ("6", "CONSERVATIVE"),
    "generate": ("1",),
    "generatetoaddress": ("1", ADDR_ONE, "1000000"),
    "getaddednodeinfo": (),
    "getbestblockhash": (),
    "getblock": ("{tip}", "2"),
    "getblockchaininfo": (),
    "getblockcount": (),
    "getblockhash": ("100",),
    "getblockheader": ("{tip}", "true"),
    "getblocktemplate": ('{{"rules": []}}',),
    "getchaintips": (),
    "getchaintxstats": ("10", "{tip}"),
    "getconnectioncount": (),
    "getdifficulty": (),
    "getinfo": (),
    "getkawpowhash": ("{headerhash}", "00" * 32, "0x1", "{nextheight}", "{target}"),
    "getmemoryinfo": ("stats",),
    "getmempoolancestors": ("{txid}",),
    "getmempooldescendants": ("{txid}", "true"),
    "getmempoolentry": ("{txid}",),
    "getmempoolinfo": (),
    "getmininginfo": (),
    "getnettotals": (),
    "getnetworkhashps": ("10", "-1"),
    "getnetworkinfo": (),
    "getpeerinfo": (),
    "getrawmempool": ("true",),
    "getrawtransaction": ("{txid}", "true"),
    "getrpcinfo": (),
    "gettxout": ("{cb2}", "0", "true"),
    "gettxoutproof": ('["{cb2}"]',),
    "gettxoutsetinfo": (),
    "help": ("getblock",),
    "invalidateblock": ("{tip}",),
    "listbanned": (),
    "ping": (),
    "pouw_createapikey": ("cli key", "2.5", "false", "30", "5000"),
    "pouw_creditapikey": ("{keyid}", "1.5"),
    "pouw_getjob": ("{jobid}",),
    "pouw_getreceipt": ("{receiptid}",),
    "pouw_getstats": (),
    "pouw_listapikeys": (),
    "pouw_listworkers": (),
    "pouw_submitjob": ('{{"model": "tiny", "prompt": "cli", "max_tokens": 3, "temperature": 0}}',),
    "pouw_verifyreceipt": ("{receiptid}",),
    "pouw_revokeapikey": ("{keyid}",),
    "pprpcsb": ("{headerhash}", "{mixhash}", "{nonce}"),
    "preciousblock": ("{tip}",),
    "prioritisetransaction": ("{txid}", "0", "5000"),
    "pruneblockchain": ("10",),
    "reconsiderblock": ("{tip}",),
    "savemempool": (),
    "sendrawtransaction": ("{tx1}", "false"),
    "setban": (BANNED, "add", "600"),
    "setnetworkactive": ("false",),
    "signmessagewithprivkey": (WIF_ONE, "hello world"),
    "signrawtransaction": ("{tx2u}", "[]", f'["{WIF_ONE}"]', "ALL"),
    "stop": (),
    "submitblock": ("{block}",),
    "testmempoolaccept": ('["{tx2}"]', "false"),
    "uptime": (),
    "validateaddress": (ADDR_ONE,),
    "verifychain": ("1", "5"),
    "verifymessage": (ADDR_ONE, "{signature}", "hello world"),
    "verifytxoutproof": ("{proof}",),
    "waitforblock": ("{tip}", "1000"),
    "waitforblockheight": ("101", "1000"),
    "waitfornewblock": ("1",),
}

# Called through the CLI only, in this order, each checked by its effect; `stop` comes last.
STATE_CHANGING = (
    "prioritisetransaction", "savemempool", "generate", "generatetoaddress", "pprpcsb", "submitblock",
    "invalidateblock", "reconsiderblock", "preciousblock", "setban", "clearbanned", "addnode",
    "disconnectnode", "setnetworkactive", "pruneblockchain", "pouw_createapikey", "pouw_creditapikey",
    "pouw_revokeapikey", "pouw_submitjob", "stop",
)
# Results that change from one call to the next: only their shape (keys, types) must agree.
SHAPE_ONLY = frozenset({"uptime", "getmemoryinfo", "getnettotals", "getpeerinfo", "getrpcinfo", "ping",
                        "waitforblock", "waitforblockheight", "waitfornewblock"})
# Fields that depend on the clock (or on the disk) rather than on the chain.
VOLATILE_KEYS: dict[str, frozenset[str]] = {
    "getblockchaininfo": frozenset({"verificationprogress"}),
    "getblocktemplate": frozenset({"curtime"}),
    "gettxoutsetinfo": frozenset({"disk_size"}),
}


def _direct_params(method: str, words: list[str]) -> list[Any]:
    """The JSON-RPC params a user means by `words`: JSON for non-string parameters (Core's
    vRPCConvertParams), the word itself for string ones."""
    declared = build_table().get(method)
    assert declared is not None
    kinds = [p.kind for p in declared.params]
    return [word if i >= len(kinds) or kinds[i] is Kind.STR else json.loads(word)
            for i, word in enumerate(words)]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(value)
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float, Decimal)):
        return "number"
    return type(value).__name__


def _drop(value: Any, keys: frozenset[str]) -> Any:
    return {k: v for k, v in value.items() if k not in keys} if isinstance(value, dict) else value


class CLI:
    def __init__(self, node: TestNode) -> None:
        self.base = [sys.executable, "-m", "rpc.cli", "-regtest", f"-datadir={node.datadir}",
                     f"-rpcport={node.rpc_port}"]
        self.fields: dict[str, Any] = {}

    def words(self, method: str) -> list[str]:
        return [w.format(**self.fields) for w in CLI_WORDS[method]]

    def __call__(self, method: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, method, *self.words(method)], capture_output=True, text=True,
                              timeout=60)

    def ok(self, method: str) -> str:
        out = self(method)
        assert out.returncode == 0, (method, out.returncode, out.stderr)
        return out.stdout


def _printed(stdout: str, result: Any) -> Any:
    """What the CLI printed, read back: strings raw, null as nothing, anything else as JSON."""
    if result is None:
        assert stdout == ""
        return None
    if isinstance(result, str):
        assert stdout.endswith("\n")
        return stdout[:-1]
    return json.loads(stdout, parse_float=Decimal)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    model = tmp_path_factory.mktemp("model") / "tiny.gguf"
    write_tiny_llama(model, seed=3)
    node = TestNode(tmp_path_factory.mktemp("cli") / "node0", extra_args=[
        f"-miningaddress={ADDR_ONE}", "-deprecatedrpc=estimatefee", "-pouwapi",
        f"-pouwapiport={free_port()}", "-pouw", f"-pouwmodel=tiny={model}", "-pouwthreads=1"])
    node.start()
    yield node
    node.cleanup()


def _prepare(node: TestNode, rpc: RPCProxy, cli: CLI) -> RawPeer:
    """101 blocks (coinbases pay ADDR_ONE), one signed transaction in the pool, one more signed but not
    sent, one raw P2P peer so the network methods have something to show, one PoUW API key and one
    PoUW job run on the node's own worker."""
    hashes = rpc.generate(101)
    cb1, cb2 = (rpc.getblock(h)["tx"][0] for h in hashes[:2])
    raw: dict[str, str] = {}
    for name, coinbase in (("tx1", cb1), ("tx2", cb2)):
        amount = str(rpc.gettxout(coinbase, 0)["value"] - Decimal("0.01"))
        raw[name + "u"] = rpc.createrawtransaction([{"txid": coinbase, "vout": 0}], {ADDR_ONE: amount})
        raw[name] = rpc.signrawtransaction(raw[name + "u"], [], [WIF_ONE])["hex"]
    txid = rpc.sendrawtransaction(raw["tx1"])
    tmpl = rpc.getblocktemplate()
    peer = RawPeer(node.p2p_port)
    peer.handshake()
    wait_until(lambda: len(rpc.getpeerinfo()) == 1, timeout=10)
    cli.fields.update(
        raw, cb1=cb1, cb2=cb2, txid=txid, tip=rpc.getbestblockhash(), headerhash=tmpl["pprpcheader"],
        nextheight=tmpl["height"], target=tmpl["target"],
        signature=rpc.signmessagewithprivkey(WIF_ONE, "hello world"), proof=rpc.gettxoutproof([cb2]),
        peerid=rpc.getpeerinfo()[0]["id"], keyid=rpc.pouw_createapikey("rpc key", 1)["id"])
    job = rpc.pouw_submitjob({"model": "tiny", "prompt": "prepared", "max_tokens": 4})
    cli.fields.update(jobid=job["job_id"], receiptid=job["receipt_id"])
    return peer


def _read_only(cli: CLI, rpc: RPCProxy, method: str) -> None:
    out = cli.ok(method)
    result = rpc.call(method, _direct_params(method, cli.words(method)))
    printed = _printed(out, result)
    if method in SHAPE_ONLY:
        if isinstance(result, list):
            assert isinstance(printed, list) and len(printed) == len(result), method
            assert [_shape(v) for v in printed] == [_shape(v) for v in result], method
        else:
            assert _shape(printed) == _shape(result), method
        return
    keys = VOLATILE_KEYS.get(method, frozenset())
    assert _drop(printed, keys) == _drop(result, keys), method


def _failure(cli: CLI, rpc: RPCProxy, method: str) -> str:
    try:
        _read_only(cli, rpc, method)
    except AssertionError as exc:
        return f"{method}: {exc}"
    return ""


def _solved_block(rpc: RPCProxy) -> Block:
    """The next block on the template, as a pool would build it, with a KawPoW solution."""
    tmpl = rpc.getblocktemplate()
    height = tmpl["height"]
    coinbase = Transaction(
        1, (TxIn(NULL_OUTPOINT, coinbase_script_sig(height, 9), witness=(bytes(32),)),),
        (TxOut(tmpl["coinbasevalue"], OP_TRUE),
         TxOut(tmpl["CommunityAutonomousValue"], get_params("regtest").community_autonomous_script),
         TxOut(0, bytes.fromhex(tmpl["default_witness_commitment"]))), 0)
    root, _ = merkle_root([coinbase.txid])
    header = BlockHeader(tmpl["version"], hex_to_hash(tmpl["previousblockhash"]), root, tmpl["curtime"],
                         int(tmpl["bits"], 16), height=height, kawpow=True)
    found = kawpow.search(height, header.kawpow_input(), bytes.fromhex(tmpl["target"]), 0, 1 << 16)
    assert found is not None
    return Block(header.with_fields(nonce64=found.nonce, mix_hash=found.mix_hash[::-1]), (coinbase,))


def _state_changing(node: TestNode, cli: CLI, rpc: RPCProxy, peer: RawPeer) -> None:
    f = cli.fields
    before = rpc.getmempoolentry(f["txid"])["modifiedfee"]
    assert cli.ok("prioritisetransaction") == "true\n"
    assert rpc.getmempoolentry(f["txid"])["modifiedfee"] == before + Decimal("0.00005")

    dump = Path(node.netdir) / "mempool.dat"
    dump.unlink(missing_ok=True)
    assert cli.ok("savemempool") == ""
    assert dump.exists()

    height = rpc.getblockcount()
    assert json.loads(cli.ok("generate")) == [rpc.getbestblockhash()]
    assert rpc.getblockcount() == height + 1 and rpc.getrawmempool() == []
    assert f["txid"] in rpc.getblock(rpc.getbestblockhash())["tx"]
    assert json.loads(cli.ok("generatetoaddress")) == [rpc.getbestblockhash()]
    assert rpc.getblock(rpc.getbestblockhash(), 2)["tx"][0]["vout"][0]["scriptPubKey"]["hex"] == P2PKH_ONE

    tmpl = rpc.getblocktemplate()
    found = kawpow.search(tmpl["height"], bytes.fromhex(tmpl["pprpcheader"]), bytes.fromhex(tmpl["target"]),
                          0, 1 << 16)
    assert found is not None
    f.update(headerhash=tmpl["pprpcheader"], mixhash=found.mix_hash.hex(), nonce=hex(found.nonce))
    assert cli.ok("pprpcsb") == "true\n"
    assert rpc.getblockcount() == tmpl["height"]
    assert rpc.getblock(rpc.getbestblockhash())["headerhash"] == tmpl["pprpcheader"]

    block = _solved_block(rpc)
    f["block"] = block.serialize().hex()
    assert cli.ok("submitblock") == ""
    assert rpc.getbestblockhash() == block.hash_hex

    tip, parent = block.hash_hex, rpc.getblockheader(block.hash_hex)["previousblockhash"]
    f["tip"] = tip
    assert cli.ok("invalidateblock") == ""
    assert rpc.getbestblockhash() == parent
    invalid = {"height": tmpl["height"] + 1, "hash": tip, "branchlen": 1, "status": "invalid"}
    assert invalid in rpc.getchaintips()
    assert cli.ok("reconsiderblock") == ""
    assert rpc.getbestblockhash() == tip
    assert cli.ok("preciousblock") == ""
    assert rpc.getbestblockhash() == tip

    assert cli.ok("setban") == ""
    assert [b["address"] for b in rpc.listbanned()] == [f"{BANNED}/32"]
    assert cli.ok("clearbanned") == ""
    assert rpc.listbanned() == []

    assert cli.ok("addnode") == ""
    assert [n["addednode"] for n in rpc.getaddednodeinfo()] == [ADDED]
    rpc.addnode(ADDED, "remove")

    # The raw peer never answered the ping RPC's ping, seconds ago: still connected (Core: a queued ping
    # replaces the outstanding nonce and restarts the clock of its 20-minute timeout).
    assert [p["id"] for p in rpc.getpeerinfo()] == [f["peerid"]]
    assert cli.ok("disconnectnode") == ""
    assert peer.closed_by_node()
    wait_until(lambda: rpc.getpeerinfo() == [], timeout=10)
    assert cli.ok("setnetworkactive") == "false\n"  # Core: the new state
    assert rpc.getnetworkinfo()["networkactive"] is False
    rpc.setnetworkactive(True)

    # Core: not a pruned node, RPC_MISC_ERROR, exit status abs(code).
    failed = cli("pruneblockchain")
    try:
        rpc.call("pruneblockchain", _direct_params("pruneblockchain", cli.words("pruneblockchain")))
    except JSONRPCException as exc:
        code, message = exc.error["code"], exc.error["message"]
    else:
        raise AssertionError("pruneblockchain succeeded on a node that does not prune")
    assert failed.returncode == abs(code) and failed.stdout == ""
    assert failed.stderr == f"error code: {code}\nerror message:\n{message}\n"

    created = json.loads(cli.ok("pouw_createapikey"), parse_float=Decimal)
    assert created["key"].startswith("aipg_sk_") and created["label"] == "cli key"
    assert created["credit"] == Decimal("2.5") and created["trusted_only"] is False
    new = {k["id"]: k for k in rpc.pouw_listapikeys()}[created["id"]]
    assert (new["requests_per_minute"], new["tokens_per_minute"]) == (30, 5000)
    assert json.loads(cli.ok("pouw_creditapikey"), parse_float=Decimal)["credit"] == Decimal("2.5")
    assert cli.ok("pouw_revokeapikey") == "true\n"
    assert {k["id"]: k for k in rpc.pouw_listapikeys()}[f["keyid"]]["revoked"] is True

    completed = rpc.pouw_getstats()["completed"]
    ran = json.loads(cli.ok("pouw_submitjob"))
    assert ran["usage"]["completion_tokens"] <= 3 and ran["worker"] == "local-tiny"
    assert rpc.pouw_getjob(ran["job_id"])["receipt_id"] == ran["receipt_id"]
    assert rpc.pouw_getreceipt(ran["receipt_id"])["signature_valid"] is True
    assert rpc.pouw_getstats()["completed"] == completed + 1

    assert cli.ok("stop") == "Aipg server stopping\n"
    assert node.wait_for_exit() == 0


def test_cli_matches_json_rpc_for_every_method(node: TestNode) -> None:
    registered = set(build_table().methods)
    assert not registered - set(CLI_WORDS), f"add CLI_WORDS entries for {sorted(registered - set(CLI_WORDS))}"
    assert not set(CLI_WORDS) - registered, f"not registered: {sorted(set(CLI_WORDS) - registered)}"
    assert set(STATE_CHANGING) <= registered and STATE_CHANGING[-1] == "stop"
    rpc = node.rpc()
    cli = CLI(node)
    peer = _prepare(node, rpc, cli)
    try:
        # getmininginfo reports the last template's size: run it before the others, with nothing beside
        # it. ping comes after them all, so that the raw peer (which never answers) outlives it for a while.
        serial = ("getmininginfo", "ping")
        read_only = sorted(registered - set(STATE_CHANGING) - set(serial))
        _read_only(cli, rpc, serial[0])
        with ThreadPoolExecutor(max_workers=4) as pool:
            # One connection per call: RPCProxy is not shared between threads.
            failures = [f for f in pool.map(lambda m: _failure(cli, node.rpc(), m), read_only) if f]
        assert not failures, "\n".join(failures)
        _read_only(cli, rpc, serial[1])
        _state_changing(node, cli, rpc, peer)
    finally:
        peer.close()
