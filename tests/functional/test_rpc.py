"""The JSON-RPC server and aipg-cli against a real aipgd: methods, errors, protocol, auth, limits."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from framework import REGTEST_GENESIS_HASH, TestNode
from framework.rpc import RPCProxy, assert_raises_rpc_error

from rpc.auth import make_rpcauth

# Regtest keys: WIF of secret 1 (compressed) and its P2PKH script.
WIF_ONE = "cMahea7zqjxrtgAbB7LSGbcQUr1uX1ojuat9jZodMN87JcbXMTcA"
PUBKEY_ONE = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
P2PKH_ONE = "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"
ADDR_ONE = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    node = TestNode(tmp_path_factory.mktemp("rpc") / "node0")
    node.start()
    yield node
    node.cleanup()


@pytest.fixture
def rpc(shared: TestNode) -> RPCProxy:
    return shared.rpc()


def test_blockchain_methods(rpc: RPCProxy) -> None:
    assert rpc.getblockcount() == 0
    assert rpc.getbestblockhash() == REGTEST_GENESIS_HASH
    assert rpc.getblockhash(0) == REGTEST_GENESIS_HASH
    header = rpc.getblockheader(REGTEST_GENESIS_HASH)
    assert header["height"] == 0 and header["confirmations"] == 1 and header["bits"] == "1e00ffff"
    assert "previousblockhash" not in header and header["versionHex"] == "00000004"
    assert len(rpc.getblockheader(REGTEST_GENESIS_HASH, False)) == 160
    block = rpc.getblock(REGTEST_GENESIS_HASH)
    assert block["tx"] == ["e04a78dcf0ad3d5c7f1ac4460c4c04bc333e677d52371b7453b5b09603b41d54"]
    assert block["size"] == 298 and block["weight"] == 1192
    full = rpc.getblock(REGTEST_GENESIS_HASH, 2)
    assert full["tx"][0]["vout"][0]["value"] == Decimal("5000.00000000")
    assert full["tx"][0]["vout"][0]["scriptPubKey"]["type"] == "pubkey"
    assert rpc.getblock(REGTEST_GENESIS_HASH, False).startswith("04000000")
    assert rpc.getblock(blockhash=REGTEST_GENESIS_HASH,
                        verbose=False) == rpc.getblock(REGTEST_GENESIS_HASH, 0)
    info = rpc.getblockchaininfo()
    assert info["chain"] == "regtest" and info["blocks"] == 0
    assert info["bestblockhash"] == REGTEST_GENESIS_HASH
    assert rpc.getdifficulty() == info["difficulty"]


def test_blockchain_errors(rpc: RPCProxy) -> None:
    assert_raises_rpc_error(-8, "Block height out of range", rpc.getblockhash, 1)
    assert_raises_rpc_error(-8, "Block height out of range", rpc.getblockhash, -1)
    assert_raises_rpc_error(-5, "Block not found", rpc.getblockheader, "00" * 32)
    assert_raises_rpc_error(-5, "Block not found", rpc.getblock, "nothex")
    assert_raises_rpc_error(-1, "JSON value is not an integer as expected", rpc.getblockhash, "0")
    assert_raises_rpc_error(-1, "getblockhash height", rpc.getblockhash)  # arity: the help text
    assert_raises_rpc_error(-8, "Unknown named parameter foo", rpc.getblockhash, foo=1)


def test_control_methods(rpc: RPCProxy) -> None:
    assert rpc.uptime() >= 0
    assert rpc.getmemoryinfo()["locked"]["used"] == 0
    assert "<malloc" in rpc.getmemoryinfo("mallocinfo")
    assert_raises_rpc_error(-8, "unknown mode foo", rpc.getmemoryinfo, "foo")
    active = rpc.getrpcinfo()["active_commands"]
    assert [c["method"] for c in active] == ["getrpcinfo"]
    info = rpc.getinfo()
    assert info["blocks"] == 0 and info["connections"] == 0 and info["testnet"] is False
    text = rpc.help()
    assert "== Blockchain ==" in text and "getblockcount" in text and "waitfornewblock" not in text
    assert rpc.help("getblockhash").startswith("getblockhash height\n")
    assert rpc.help("nosuch") == "help: unknown command: nosuch"


def test_util_methods(rpc: RPCProxy) -> None:
    valid = rpc.validateaddress(ADDR_ONE)
    assert valid == {"isvalid": True, "address": ADDR_ONE, "scriptPubKey": P2PKH_ONE, "ismine": False,
                     "iswatchonly": False, "isscript": False}
    assert rpc.validateaddress("notanaddress") == {"isvalid": False}
    multisig = rpc.createmultisig(1, [PUBKEY_ONE])
    assert multisig["redeemScript"] == "5121" + PUBKEY_ONE + "51ae"
    assert rpc.validateaddress(multisig["address"])["isscript"] is True  # regtest has a P2SH prefix
    assert_raises_rpc_error(-1, "Invalid public key", rpc.createmultisig, 1, ["00"])
    assert_raises_rpc_error(-1, "at least one key", rpc.createmultisig, 0, [PUBKEY_ONE])
    signature = rpc.signmessagewithprivkey(WIF_ONE, "hello")
    assert rpc.verifymessage(ADDR_ONE, signature, "hello") is True
    assert rpc.verifymessage(ADDR_ONE, signature, "hullo") is False
    assert_raises_rpc_error(-5, "Invalid private key", rpc.signmessagewithprivkey, "x", "m")
    assert_raises_rpc_error(-3, "Invalid address", rpc.verifymessage, "x", signature, "m")
    assert_raises_rpc_error(-5, "Malformed base64 encoding", rpc.verifymessage, ADDR_ONE, "!!", "m")
    assert rpc.estimatesmartfee(6) == {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    assert_raises_rpc_error(-8, "Invalid conf_target", rpc.estimatesmartfee, 0)
    assert_raises_rpc_error(-3, "Expected type number, got string", rpc.estimatesmartfee, "6")
    assert_raises_rpc_error(-32, "estimatefee is deprecated", rpc.estimatefee, 6)


def test_raw_transactions(rpc: RPCProxy) -> None:
    prev = "aa" * 32
    raw = rpc.createrawtransaction([{"txid": prev, "vout": 1}], {ADDR_ONE: "1.5", "data": "cafe"})
    decoded = rpc.decoderawtransaction(raw)
    assert decoded["vin"][0]["txid"] == prev and decoded["vin"][0]["vout"] == 1
    assert decoded["vout"][0]["value"] == Decimal("1.5")
    assert decoded["vout"][0]["scriptPubKey"]["hex"] == P2PKH_ONE
    assert decoded["vout"][1]["scriptPubKey"]["type"] == "nulldata"
    assert rpc.decodescript(P2PKH_ONE)["addresses"] == [ADDR_ONE]
    assert_raises_rpc_error(-22, "TX decode failed", rpc.decoderawtransaction, "00")
    assert_raises_rpc_error(-8, "txid must be of length 64", rpc.createrawtransaction, [{"txid": "aa",
                                                                                         "vout": 0}], {})
    assert_raises_rpc_error(-5, "Invalid Aipg address", rpc.createrawtransaction, [], {"bad": 1})
    assert_raises_rpc_error(-3, "Amount out of range", rpc.createrawtransaction, [], {ADDR_ONE: -1})
    prevtxs = [{"txid": prev, "vout": 1, "scriptPubKey": P2PKH_ONE, "amount": 2}]
    unsigned = rpc.signrawtransaction(raw, prevtxs, [])
    assert unsigned["complete"] is False and "errors" in unsigned
    signed = rpc.signrawtransaction(raw, prevtxs, [WIF_ONE])
    assert signed["complete"] is True and "errors" not in signed
    assert "[ALL]" in rpc.decoderawtransaction(signed["hex"])["vin"][0]["scriptSig"]["asm"]
    assert_raises_rpc_error(-8, "Invalid sighash param", rpc.signrawtransaction, raw, prevtxs, [WIF_ONE], "X")
    # No coin is known for the input, as Core answers for a spent or unknown one.
    assert_raises_rpc_error(-25, "Input not found or already spent", rpc.combinerawtransaction,
                            [signed["hex"], raw])
    # Its input is unknown: the orphan answer.
    assert_raises_rpc_error(-25, "Missing inputs", rpc.sendrawtransaction, signed["hex"])


def _post(rpc: RPCProxy, payload: object) -> tuple[int, object]:
    status, body = rpc.post(json.dumps(payload))
    return status, json.loads(body) if body else None


def test_protocol_batch_named_ids_and_status_codes(shared: TestNode, rpc: RPCProxy) -> None:
    status, reply = _post(rpc, [{"id": "a", "method": "getblockcount"}, {"id": [1], "method": "nosuch"},
                                {"id": 3, "method": "getblockhash", "params": {"height": 0}}, 7])
    assert status == 200 and isinstance(reply, list)
    assert reply[0] == {"result": 0, "error": None, "id": "a"}
    assert reply[1]["error"]["code"] == -32601 and reply[1]["id"] == [1]
    assert reply[2]["result"] == REGTEST_GENESIS_HASH
    assert reply[3]["error"] == {"code": -32600, "message": "Invalid Request object"}
    assert _post(rpc, {"id": {"x": 1}, "method": "nosuch"})[0] == 404
    status, reply = _post(rpc, {"id": 1, "method": "getblockhash", "params": [9]})
    assert status == 500 and reply == {"result": None, "error": {"code": -8,
                                                                 "message": "Block height out of range"},
                                       "id": 1}
    assert _post(rpc, {"id": 1})[0] == 400
    status, body = rpc.post("{not json")
    assert status == 500 and json.loads(body)["error"]["code"] == -32700
    status, reply = _post(rpc, {"jsonrpc": "2.0", "id": 5, "method": "getblockcount"})
    assert status == 200 and reply == {"jsonrpc": "2.0", "result": 0, "id": 5}
    status, reply = _post(rpc, {"jsonrpc": "2.0", "id": 5, "method": "nosuch"})
    assert status == 200 and reply["error"]["code"] == -32601 and "result" not in reply
    assert _post(rpc, {"jsonrpc": "2.0", "method": "getblockcount"}) == (204, None)
    assert rpc.post("", method="GET")[0] == 405
    assert rpc.post("{}", path="/other")[0] == 404
    assert RPCProxy(shared.rpc_port, "").post("{}", headers={"Authorization": ""})[0] == 401
    start = time.monotonic()
    assert RPCProxy(shared.rpc_port, "__cookie__:wrong").post("{}")[0] == 401
    assert time.monotonic() - start >= 0.2  # Core's delay after a wrong password


def test_cli_round_trips(shared: TestNode) -> None:
    base = [sys.executable, "-m", "rpc.cli", "-regtest", f"-datadir={shared.datadir}",
            f"-rpcport={shared.rpc_port}"]

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, input=stdin, timeout=60)

    assert cli("getblockcount").stdout == "0\n"
    assert cli("getblockhash", "0").stdout.strip() == REGTEST_GENESIS_HASH
    out = cli("-named", "getblock", f"blockhash={REGTEST_GENESIS_HASH}", "verbosity=1")
    assert json.loads(out.stdout)["height"] == 0 and out.stdout.startswith("{\n  \"hash\"")
    assert '"value": 5000.00000000' in cli("getblock", REGTEST_GENESIS_HASH, "2").stdout
    assert cli("-stdin", "getblockhash", stdin="0\n").stdout.strip() == REGTEST_GENESIS_HASH
    failed = cli("getblockhash", "5")
    assert failed.returncode == 8
    assert failed.stderr == "error code: -8\nerror message:\nBlock height out of range\n"
    down = subprocess.run([*base[:-1], f"-rpcport={shared.rpc_port + 1 if shared.rpc_port < 65535 else 1}",
                           "getblockcount"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "error: Could not connect to the server 127.0.0.1:" in down.stderr
    assert "Make sure the aipgd server is running" in down.stderr


def test_fuzzed_requests_never_kill_the_server(rpc: RPCProxy) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12)
    methods = st.sampled_from(["getblockhash", "getblockheader", "getblock", "createrawtransaction",
                               "validateaddress", "decodescript", "help", "estimatesmartfee", "x"])
    request = st.fixed_dictionaries({"method": methods | json_values, "params": json_values,
                                     "id": json_values})

    def chunked(data: bytes, sizes: list[int]) -> bytes:
        out, pos = bytearray(), 0
        for size in [*sizes, len(data)]:
            piece = data[pos:pos + size]
            pos += len(piece)
            if piece:
                out += b"%x;n=%d\r\n%s\r\n" % (len(piece), pos, piece)
        return bytes(out + b"0\r\nX-Trailer: t\r\n\r\n")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(request.map(json.dumps), st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                     st.integers(1, 3000).map(lambda n: "[" * n)),
           st.lists(st.integers(1, 50), max_size=8))
    def check(body: str, sizes: list[int]) -> None:
        data = body.encode("utf-8", "surrogatepass")
        status, raw = rpc.post(data)
        assert status in (200, 204, 400, 404, 500)
        # The same body in chunks (as evhttp accepts them) gets the same answer.
        assert rpc.post(chunked(data, sizes), headers={"Transfer-Encoding": "chunked"}) == (status, raw)
        if status != 204:
            reply = json.loads(raw)
            assert isinstance(reply, dict | list)
            if status != 200:
                assert isinstance(reply["error"]["code"], int)

    check()
    assert rpc.getblockcount() == 0


def test_full_work_queue_answers_503(make_node: Callable[..., TestNode]) -> None:
    node = make_node(extra_args=["-rpcthreads=1", "-rpcworkqueue=1"])
    node.start()
    rpc = node.rpc()
    statuses: list[int] = []

    def slow() -> None:
        statuses.append(rpc.post(json.dumps({"id": 1, "method": "waitfornewblock", "params": [1500]}))[0])

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    # Cheap calls are answered on the event loop even while the workers are busy.
    assert rpc.getblockcount() == 0
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 200, 503, 503]
    assert "work queue depth exceeded" in node.log_since_start()
    assert rpc.stop() == "Aipg server stopping"
    assert node.wait_for_exit() == 0
    assert not node.cookie_file.exists()


def test_auth_options_cookie_mode_and_rpcallowip(make_node: Callable[..., TestNode]) -> None:
    node = make_node()
    node.start(["-rpcuser=alice", "-rpcpassword=secret", f"-rpcauth={make_rpcauth('bob', 'pw')}"])
    assert not node.cookie_file.exists()
    assert node.rpc("alice:secret").getblockcount() == 0
    assert node.rpc("bob:pw").getblockcount() == 0
    assert RPCProxy(node.rpc_port, "bob:wrong").post("{}")[0] == 401
    assert RPCProxy(node.rpc_port, "alice:wrong").post("{}")[0] == 401
    assert node.stop() == 0

    node.start(["-rpcallowip=10.0.0.0/8", "-rpcbind=127.0.0.1"])
    assert stat.S_IMODE(os.stat(node.cookie_file).st_mode) == 0o600
    assert node.rpc().getblockcount() == 0  # loopback is always allowed
    assert node.stop() == 0
    node.assert_start_raises_init_error(["-rpcallowip=not-an-ip"], "Invalid -rpcallowip subnet specification")


def test_server_off_and_port_in_use(make_node: Callable[..., TestNode]) -> None:
    first = make_node("a")
    first.start(["-server=0"])
    assert not first.cookie_file.exists()
    second = make_node("b")
    second.rpc_port = first.rpc_port
    second.start()
    # The port is taken by no one: -server=0 listened nowhere.
    assert second.rpc().getblockcount() == 0
    third = make_node("c")
    third.rpc_port = second.rpc_port
    third.assert_start_raises_init_error(expected_msg="Unable to bind any endpoint for RPC server")
    assert first.stop() == 0 and second.stop() == 0


def test_rpc_stop_before_shutdown_completes(node: TestNode) -> None:
    node.start()
    assert node.rpc().stop() == "Aipg server stopping"
    assert node.wait_for_exit() == 0
    assert "Shutdown: done" in node.log_since_start()
    assert not Path(node.cookie_file).exists()
