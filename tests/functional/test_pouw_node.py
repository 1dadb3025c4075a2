"""The PoUW job layer in real aipgd processes: the OpenAI API with the official client (free tier,
rate limits, paid keys, 402, streaming, embeddings), receipts, a validator's attestations, and a
forging worker (-pouwtestcheat) whose receipts another node's validator finds invalid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from framework import TestNode, wait_until
from framework.rpc import JSONRPCException
from framework.util import free_port

from pouw.receipt import Receipt
from pouw.signing import verify_receipt_signature
from pouw.tinymodel import write_tiny_llama


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pouw-model") / "tiny.gguf"
    write_tiny_llama(path, seed=77)
    return path


def pouw_node(tmp: Path, name: str, model: Path, *extra: str) -> tuple[TestNode, int]:
    port = free_port()
    node = TestNode(tmp / name, extra_args=[
        "-pouw", "-pouwapi", f"-pouwapiport={port}", f"-pouwmodel=tiny={model}", "-pouwthreads=1",
        "-pouwmaxconcurrency=2", *extra])
    node.start()
    return node, port


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Iterator[tuple[TestNode, int]]:
    node, port = pouw_node(tmp_path_factory.mktemp("honest"), "node", model, "-pouwvalidator",
                           "-pouwcheckrate=1", "-pouwfreerpm=4", "-pouwprice=0.01")
    yield node, port
    node.cleanup()


def client(port: int, key: str = "no-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)


def test_api_receipts_and_attestations(honest: tuple[TestNode, int]) -> None:
    node, port = honest
    rpc = node.rpc()
    c = client(port)
    assert [m.id for m in c.models.list().data] == ["tiny"]
    out = c.completions.create(model="tiny", prompt="Hello grid", max_tokens=6, temperature=0)
    receipt_id = out.model_extra["aipg"]["receipt_id"]  # type: ignore[index]
    got = rpc.pouw_getreceipt(receipt_id)
    receipt = Receipt.from_bytes(bytes.fromhex(got["hex"]))
    assert got["signature_valid"] and verify_receipt_signature(receipt)
    assert receipt.worker_pubkey.hex() == rpc.pouw_getstats()["worker_pubkey"]
    # -pouwcheckrate=1: the node's validator re-checks every receipt and stores its attestation.
    wait_until(lambda: rpc.pouw_getreceipt(receipt_id)["attestations"], timeout=30)
    attestation = rpc.pouw_getreceipt(receipt_id)["attestations"][0]
    assert attestation["verdict"] == "valid" and attestation["receipt_id"] == receipt_id
    verified = rpc.pouw_verifyreceipt(receipt_id)
    assert verified["signature_valid"] and verified["matches_job"] and verified["verdict"] == "valid"
    job = rpc.pouw_getjob(got["receipt"]["job_id"])
    assert job["state"] == "done" and job["receipt_id"] == receipt_id

    chunks = list(c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=5, stream=True, seed=4, temperature=0.9))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    emb = c.embeddings.create(model="tiny", input="vector")
    assert len(emb.data) == 1 and len(emb.data[0].embedding) > 0
    workers = rpc.pouw_listworkers()
    assert [w["id"] for w in workers] == ["local-tiny"] and workers[0]["served"] >= 3


def test_free_limit_paid_key_and_402(honest: tuple[TestNode, int]) -> None:
    node, port = honest
    rpc = node.rpc()
    statuses = []
    for _ in range(6):
        try:
            client(port).completions.create(model="tiny", prompt="rate", max_tokens=1)
            statuses.append(200)
        except openai.RateLimitError as exc:
            statuses.append(exc.status_code)
    assert 429 in statuses
    rich = rpc.pouw_createapikey("rich", 1)
    poor = rpc.pouw_createapikey("poor", "0.00000100")
    ok = client(port, rich["key"]).completions.create(model="tiny", prompt="paid", max_tokens=4)
    assert ok.usage is not None
    spent = {k["id"]: k for k in rpc.pouw_listapikeys()}[rich["id"]]["spent"]
    assert spent > 0
    with pytest.raises(openai.APIStatusError) as info:
        client(port, poor["key"]).completions.create(model="tiny", prompt="too dear", max_tokens=50)
    assert info.value.status_code == 402
    rpc.pouw_revokeapikey(rich["id"])
    with pytest.raises(openai.AuthenticationError):
        client(port, rich["key"]).completions.create(model="tiny", prompt="revoked", max_tokens=1)
    with pytest.raises(JSONRPCException) as rpc_err:
        rpc.pouw_getreceipt("00" * 32)
    assert rpc_err.value.error["code"] == -5


def test_forging_worker_caught_by_another_validator(honest: tuple[TestNode, int], model: Path,
                                                     tmp_path: Path) -> None:
    validator, _ = honest
    for mode in ("random", "truncate", "text"):
        cheat, port = pouw_node(tmp_path, f"cheat-{mode}", model, f"-pouwtestcheat={mode}")
        try:
            out = client(port).completions.create(model="tiny", prompt=f"forge {mode}", max_tokens=12,
                                                  temperature=0)
            rpc = cheat.rpc()
            receipt = rpc.pouw_getreceipt(out.model_extra["aipg"]["receipt_id"])  # type: ignore[index]
            assert receipt["signature_valid"]  # the forgery is properly signed by the cheater
            job = rpc.pouw_getjob(receipt["receipt"]["job_id"])
            verdict = validator.rpc().pouw_verifyreceipt(receipt["hex"], job["hex"])
            assert verdict["signature_valid"] and verdict["matches_job"], verdict
            assert verdict["verdict"] == "invalid", (mode, verdict)
        finally:
            cheat.cleanup()


def test_bad_pouw_options_refused(tmp_path: Path, model: Path) -> None:
    node = TestNode(tmp_path / "bad")
    for args, message in (
        (["-pouw", "-pouwtestcheat=sometimes"], "Invalid -pouwtestcheat=sometimes"),
        (["-pouw", f"-pouwmodel=tiny={tmp_path / 'missing.gguf'}"], "does not exist"),
        (["-pouw", f"-pouwmodel=tiny={model.parent / 'corrupt.gguf'}"], "cannot load the model"),
    ):
        if "corrupt" in args[1]:
            (model.parent / "corrupt.gguf").write_bytes(b"GGUF" + bytes(64))
        node.assert_start_raises_init_error(args, message)


def test_http_backend_crash_leaves_node_up(honest: tuple[TestNode, int], tmp_path: Path, model: Path) -> None:
    """A node whose worker fronts another server (-pouwbackend=openai:...) answers 502 when that server
    dies, stays up, and serves again once the server is back."""
    server, server_port = pouw_node(tmp_path, "server", model)
    front_port = free_port()
    front = TestNode(tmp_path / "front", extra_args=[
        "-pouw", "-pouwapi", f"-pouwapiport={front_port}",
        f"-pouwbackend=tiny=openai:http://127.0.0.1:{server_port}"])
    try:
        front.start()
        workers = front.rpc().pouw_listworkers()
        assert [(w["id"], w["deterministic"]) for w in workers] == [("http-tiny", False)]
        ok = client(front_port).completions.create(model="tiny", prompt="relay", max_tokens=4, temperature=0)
        direct = client(server_port).completions.create(model="tiny", prompt="relay", max_tokens=4,
                                                        temperature=0)
        assert ok.choices[0].text == direct.choices[0].text
        server.kill()
        with pytest.raises(openai.APIStatusError) as info:
            client(front_port).completions.create(model="tiny", prompt="relay", max_tokens=4)
        assert info.value.status_code == 502
        assert front.rpc().getblockcount() == 0  # still serving
        server.start()
        again = client(front_port).completions.create(model="tiny", prompt="relay", max_tokens=4,
                                                      temperature=0)
        assert again.choices[0].text == direct.choices[0].text
    finally:
        front.cleanup()
        server.cleanup()
