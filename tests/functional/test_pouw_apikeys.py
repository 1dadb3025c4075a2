"""The paid tier's API-key RPCs on a real aipgd started with -pouwapi: create, list, credit, revoke,
their errors, aipg-cli, keys surviving a restart, the secret never written to disk or log, the
disabled answer without -pouwapi, -pouw* option errors and the -help category."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from framework import TestNode
from framework.rpc import JSONRPCException, assert_raises_rpc_error
from framework.util import free_port

RPC_METHOD_NOT_FOUND = -32601
RPC_INVALID_PARAMETER = -8
RPC_TYPE_ERROR = -3
RPC_MISC_ERROR = -1


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNode]:
    node = TestNode(tmp_path_factory.mktemp("pouwkeys") / "node0",
                    extra_args=["-pouwapi", f"-pouwapiport={free_port()}"])
    node.start()
    yield node
    node.cleanup()


def _cli(node: TestNode, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpc.cli", "-regtest", f"-datadir={node.datadir}",
                           f"-rpcport={node.rpc_port}", *words], capture_output=True, text=True, timeout=60)


def _files_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_api_keys_over_json_rpc_and_cli_survive_restart(node: TestNode) -> None:
    rpc = node.rpc()
    assert rpc.pouw_listapikeys() == []

    alice = rpc.pouw_createapikey("alice", "12.5")
    assert set(alice) == {"key", "id", "label", "credit", "trusted_only"}
    assert alice["key"].startswith("aipg_sk_") and len(alice["id"]) == 16
    assert (alice["label"], alice["credit"], alice["trusted_only"]) == ("alice", Decimal("12.5"), True)
    bob = rpc.pouw_createapikey(label="bob", trusted_only=False)
    assert bob["credit"] == 0 and bob["trusted_only"] is False and bob["key"] != alice["key"]

    out = _cli(node, "pouw_createapikey", "carol", "0.00000001", "true", "5", "1000")
    assert out.returncode == 0, out.stderr
    carol = json.loads(out.stdout, parse_float=Decimal)
    assert carol["credit"] == Decimal("0.00000001")

    listed = rpc.pouw_listapikeys()
    assert [k["label"] for k in listed] == ["alice", "bob", "carol"]
    first = listed[0]
    assert set(first) == {"id", "label", "credit", "spent", "requests", "trusted_only", "revoked", "created",
                          "requests_per_minute", "tokens_per_minute"}
    assert (first["id"], first["credit"], first["spent"], first["requests"], first["revoked"]) == (
        alice["id"], Decimal("12.5"), 0, 0, False)
    assert listed[2]["requests_per_minute"] == 5 and listed[2]["tokens_per_minute"] == 1000
    assert all("key" not in k for k in listed), "secrets are never listed"
    # The CLI prints the same list.
    out = _cli(node, "pouw_listapikeys")
    assert out.returncode == 0 and json.loads(out.stdout, parse_float=Decimal) == listed

    topped = rpc.pouw_creditapikey(bob["id"], "2")
    assert topped["credit"] == Decimal("2") and topped["id"] == bob["id"]
    assert rpc.pouw_revokeapikey(alice["id"]) is True
    assert rpc.pouw_revokeapikey(alice["id"].upper()) is True  # idempotent
    out = _cli(node, "pouw_revokeapikey", carol["id"])
    assert (out.returncode, out.stdout) == (0, "true\n")

    before = rpc.pouw_listapikeys()
    assert [k["revoked"] for k in before] == [True, False, True]
    assert node.stop() == 0

    # Only hashes reach the disk, and the secrets never reach debug.log.
    on_disk = _files_bytes(node.netdir)
    for created in (alice, bob, carol):
        assert created["key"].encode() not in on_disk
    assert (node.netdir / "pouw" / "apikeys").is_dir()

    node.start()
    rpc = node.rpc()
    assert rpc.pouw_listapikeys() == before


def test_api_key_rpc_errors(node: TestNode) -> None:
    rpc = node.rpc()
    assert_raises_rpc_error(RPC_INVALID_PARAMETER, "Unknown API key id: 0000000000000000",
                            rpc.pouw_revokeapikey, "0000000000000000")
    assert_raises_rpc_error(RPC_INVALID_PARAMETER, "id must be the 16 hexadecimal characters",
                            rpc.pouw_revokeapikey, "alice")
    assert_raises_rpc_error(RPC_INVALID_PARAMETER, "Unknown API key id",
                            rpc.pouw_creditapikey, "00000000000000ff", 1)
    key_id = rpc.pouw_createapikey("errors")["id"]
    assert_raises_rpc_error(RPC_TYPE_ERROR, "Invalid amount for credit", rpc.pouw_creditapikey, key_id, 0)
    assert_raises_rpc_error(RPC_TYPE_ERROR, "Amount out of range", rpc.pouw_creditapikey, key_id, -1)
    assert_raises_rpc_error(RPC_TYPE_ERROR, "Invalid amount", rpc.pouw_createapikey, "x", "1.000000001")
    assert_raises_rpc_error(RPC_INVALID_PARAMETER, "Invalid label", rpc.pouw_createapikey, "x" * 300)
    assert_raises_rpc_error(RPC_INVALID_PARAMETER, "requests_per_minute must not be negative",
                            rpc.pouw_createapikey, "x", 0, True, -1)
    # Parameter kinds come from the registry's checks (Core's texts).
    assert_raises_rpc_error(RPC_MISC_ERROR, "JSON value is not a string as expected",
                            rpc.pouw_createapikey, 5)
    assert_raises_rpc_error(RPC_MISC_ERROR, "JSON value is not a boolean as expected",
                            rpc.pouw_createapikey, "x", 1, "yes")
    assert_raises_rpc_error(RPC_MISC_ERROR, "pouw_revokeapikey \"id\"", rpc.pouw_revokeapikey)
    out = _cli(node, "pouw_revokeapikey", "0000000000000000")
    assert out.returncode == 8 and "Unknown API key id" in out.stderr
    help_text = rpc.help("pouw_createapikey")
    assert help_text.startswith('pouw_createapikey "label" ( credit trusted_only')
    assert "== Pouw ==" in rpc.help()


def test_api_key_rpcs_are_disabled_without_pouw(tmp_path: Path) -> None:
    node = TestNode(tmp_path / "plain")
    node.start()
    try:
        rpc = node.rpc()
        for method, params in (("pouw_listapikeys", []), ("pouw_createapikey", ["a"]),
                               ("pouw_revokeapikey", ["0" * 16]), ("pouw_creditapikey", ["0" * 16, 1])):
            with pytest.raises(JSONRPCException) as exc_info:
                rpc.call(method, params)
            assert exc_info.value.error["code"] == RPC_METHOD_NOT_FOUND
            assert "PoUW is off; start aipgd with -pouw or -pouwapi" in exc_info.value.error["message"]
        assert not (node.netdir / "pouw").exists()
    finally:
        node.stop()


@pytest.mark.parametrize(("arg", "message"), [
    ("-pouwmodel=tiny", "Error: Invalid -pouwmodel=tiny: expected <name>=<path.gguf>"),
    ("-pouwbackend=vllm:http://x", "Error: Invalid -pouwbackend=vllm:http://x"),
    ("-pouwcheckrate=2", "Error: Invalid -pouwcheckrate=2: expected a fraction between 0 and 1"),
    ("-pouwfreerpm=many", "Error: Invalid integer value -pouwfreerpm=many"),
    ("-pouwprice=-1", "Error: Invalid amount for -pouwprice=<amount>: '-1'"),
])
def test_bad_pouw_options_stop_start_up(tmp_path: Path, arg: str, message: str) -> None:
    TestNode(tmp_path / "bad").assert_start_raises_init_error([arg], message)


def test_missing_model_file_stops_start_up(tmp_path: Path) -> None:
    TestNode(tmp_path / "nomodel").assert_start_raises_init_error(
        ["-pouw", "-pouwmodel=tiny=/nonexistent/tiny.gguf"],
        "Error: -pouwmodel=tiny: model file /nonexistent/tiny.gguf does not exist")


def test_help_lists_the_pouw_options(tmp_path: Path) -> None:
    node = TestNode(tmp_path / "help")
    assert node.run_to_exit(["-help"]) == 0
    text = node.stdout()
    assert "\nProof of Useful Work options:\n\n  -pouw\n" in text
    for option in ("-pouwapi", "-pouwapiport=<port>", "-pouwmodel=<name>=<path.gguf>",
                   "-pouwbackend=[<name>=]openai:<url>", "-pouwconnect=<host:port>", "-pouwprice=<amt>",
                   "-pouwfreerpm=<n>", "-pouwfreetpm=<n>", "-pouwcheckrate=<rate>", "-pouwvalidator"):
        assert f"\n  {option}\n" in text, option
