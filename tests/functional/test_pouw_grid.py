"""The grid end to end over P2P, in real aipgd processes on loopback: a requester node serving the
OpenAI API routes jobs to two worker nodes (-pouwconnect), a validator node re-checks the receipts it
hears of and its attestations come back; a worker killed mid-job has its job retried on the other;
a forging worker behind a second requester is caught by the validator."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from framework import TestNode, wait_until
from framework.util import free_port

from pouw.signing import PouwKey
from pouw.tinymodel import write_tiny_llama


def start(tmp: Path, name: str, *args: str) -> TestNode:
    node = TestNode(tmp / name, extra_args=["-pouwthreads=1", *args])
    node.start()
    return node


def link(node: TestNode) -> str:
    return f"-pouwconnect=127.0.0.1:{node.p2p_port}"


def client(port: int, key: str = "no-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)


def remote_workers(node: TestNode) -> list[dict[str, Any]]:
    return [w for w in node.rpc().pouw_listworkers() if w["kind"] == "peer"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("grid")
    # Wide enough that a few hundred tokens take a moment (the kill test needs a job in flight).
    model = tmp / "grid.gguf"
    write_tiny_llama(model, seed=5, n_layers=4, n_embd=256, n_head=8, n_ff=768, n_ctx=512)
    worker_args = ("-pouw", f"-pouwmodel=grid={model}", "-pouwmaxconcurrency=2")
    nodes: dict[str, Any] = {}
    # w1's worker key is known in advance, so that the requester can trust it (-pouwtrustworker).
    trusted = PouwKey(hashlib.sha256(b"trusted grid worker").digest())
    key_file = tmp / "w1" / "regtest" / "pouw" / "worker.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(trusted.secret.hex() + "\n")
    nodes["trusted"] = trusted.pubkey.hex()
    try:
        nodes["w1"] = start(tmp, "w1", *worker_args)
        nodes["w2"] = start(tmp, "w2", *worker_args)
        nodes["cheat"] = start(tmp, "cheat", *worker_args, "-pouwtestcheat=random")
        nodes["port"], nodes["port2"] = free_port(), free_port()
        nodes["r"] = start(tmp, "r", "-pouwapi", f"-pouwapiport={nodes['port']}", link(nodes["w1"]),
                           link(nodes["w2"]), "-pouwfreerpm=1000", f"-pouwtrustworker={nodes['trusted']}")
        nodes["r2"] = start(tmp, "r2", "-pouwapi", f"-pouwapiport={nodes['port2']}", link(nodes["cheat"]),
                            "-pouwfreerpm=3")
        nodes["v"] = start(tmp, "v", "-pouwvalidator", "-pouwcheckrate=1", f"-pouwmodel=grid={model}",
                           link(nodes["r"]), link(nodes["r2"]))
        wait_until(lambda: len(remote_workers(nodes["r"])) == 2, timeout=60, what="two workers at r")
        wait_until(lambda: len(remote_workers(nodes["r2"])) == 1, timeout=60, what="the cheater at r2")
        yield nodes
    finally:
        for value in nodes.values():
            if isinstance(value, TestNode):
                value.cleanup()


def test_jobs_routed_to_peers_and_attested(grid: dict[str, Any]) -> None:
    r = grid["r"].rpc()
    c = client(grid["port"])
    assert [m.id for m in c.models.list().data] == ["grid"]
    out = c.completions.create(model="grid", prompt="over the wire", max_tokens=8, temperature=0)
    aipg = out.model_extra["aipg"]  # type: ignore[index]
    assert aipg["worker"].startswith("p2p:")
    worker_pubkeys = {n.rpc().pouw_getstats()["worker_pubkey"] for n in (grid["w1"], grid["w2"])}
    assert aipg["worker_pubkey"] in worker_pubkeys
    receipt = r.pouw_getreceipt(aipg["receipt_id"])
    assert receipt["signature_valid"]
    # The validator hears of the receipt (with its job) over P2P, re-checks it, and its attestation
    # travels back to the requester.
    wait_until(lambda: r.pouw_getreceipt(aipg["receipt_id"])["attestations"], timeout=60,
               what="the validator's attestation at the requester")
    attestation = r.pouw_getreceipt(aipg["receipt_id"])["attestations"][0]
    assert attestation["verdict"] == "valid"
    assert attestation["validator_pubkey"] == grid["v"].rpc().pouw_getstats()["worker_pubkey"]
    # Streaming through a peer: token frames become server-sent events.
    chunks = list(c.chat.completions.create(model="grid", messages=[{"role": "user", "content": "stream"}],
                                            max_tokens=12, stream=True, seed=2, temperature=0.8))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    plain = c.chat.completions.create(model="grid", messages=[{"role": "user", "content": "stream"}],
                                      max_tokens=12, seed=2, temperature=0.8)
    assert text == plain.choices[0].message.content


def test_paid_keys_use_trusted_workers_and_pay(grid: dict[str, Any]) -> None:
    r = grid["r"].rpc()
    trusted = {w["pubkey"] for w in remote_workers(grid["r"]) if w["trusted"]}
    assert trusted == {grid["trusted"]}
    key = r.pouw_createapikey("paying", 1)  # trusted_only by default
    for i in range(3):
        out = client(grid["port"], key["key"]).completions.create(model="grid", prompt=f"paid {i}",
                                                                   max_tokens=4)
        assert out.model_extra["aipg"]["worker_pubkey"] == grid["trusted"]  # type: ignore[index]
    assert {k["id"]: k for k in r.pouw_listapikeys()}[key["id"]]["spent"] > 0
    poor = r.pouw_createapikey("poor", "0.000001", False)
    with pytest.raises(openai.APIStatusError) as info:
        client(grid["port"], poor["key"]).completions.create(model="grid", prompt="dear", max_tokens=300)
    assert info.value.status_code == 402


def test_forging_worker_caught(grid: dict[str, Any]) -> None:
    r2 = grid["r2"].rpc()
    out = client(grid["port2"]).completions.create(model="grid", prompt="forged", max_tokens=10,
                                                   temperature=0)
    receipt_id = out.model_extra["aipg"]["receipt_id"]  # type: ignore[index]
    assert r2.pouw_getreceipt(receipt_id)["signature_valid"]  # a proper signature over a forgery
    wait_until(lambda: r2.pouw_getreceipt(receipt_id)["attestations"], timeout=60,
               what="the validator's verdict on the forgery")
    assert r2.pouw_getreceipt(receipt_id)["attestations"][0]["verdict"] == "invalid"


def test_free_tier_rate_limit(grid: dict[str, Any]) -> None:
    """r2 allows 3 free requests a minute per client (-pouwfreerpm=3)."""
    statuses = []
    for _ in range(4):
        try:
            client(grid["port2"]).completions.create(model="grid", prompt="again", max_tokens=2)
            statuses.append(200)
        except openai.RateLimitError as exc:
            statuses.append(exc.status_code)
            assert int(exc.response.headers["retry-after"]) >= 1
    assert statuses[-1] == 429 and statuses.count(429) >= 1


class LongJob:
    """A long completion through the requester, on a thread of its own."""

    def __init__(self, grid: dict[str, Any], prompt: str) -> None:
        self.grid = grid
        self.prompt = prompt
        self.result: dict[str, Any] = {}
        self.busy: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result["out"] = client(self.grid["port"]).completions.create(
                model="grid", prompt=self.prompt, max_tokens=400, temperature=0)
        except Exception as exc:  # the assertions report it
            self.result["error"] = exc

    def seen_running_or_done(self) -> bool:
        self.busy[:] = [w for w in remote_workers(self.grid["r"]) if w["running"]]
        return bool(self.busy) or not self.thread.is_alive()


def test_worker_killed_mid_job_is_retried(grid: dict[str, Any]) -> None:
    r = grid["r"].rpc()
    pubkeys = {n.rpc().pouw_getstats()["worker_pubkey"]: n for n in (grid["w1"], grid["w2"])}
    # A job long enough to be caught running: greedy decoding of a prompt may still end early at
    # EOS on some machine, so try prompts until one is seen on a worker before it finishes.
    for attempt in range(8):
        job = LongJob(grid, f"a long answer, take {attempt}")
        wait_until(job.seen_running_or_done, timeout=60, what="a worker running the long job")
        if job.busy and job.thread.is_alive():
            break
        job.thread.join(60)
    else:
        raise AssertionError("no job stayed running long enough to be interrupted")
    pubkeys[job.busy[0]["pubkey"]].kill()
    job.thread.join(120)
    assert "error" not in job.result, job.result.get("error")
    aipg = job.result["out"].model_extra["aipg"]
    assert aipg["worker_pubkey"] != job.busy[0]["pubkey"]  # finished by the other worker
    assert r.pouw_getstats()["retried"] >= 1
    assert job.result["out"].usage.completion_tokens > 0


def test_worker_only_node_behind_nolisten(tmp_path: Path) -> None:
    """`aipgd -pouw -nolisten`: a worker that accepts no connections dials the requester itself
    (-pouwconnect) and serves its jobs over that link."""
    model = tmp_path / "small.gguf"
    write_tiny_llama(model, seed=8)
    port = free_port()
    requester = start(tmp_path, "requester", "-pouwapi", f"-pouwapiport={port}")
    worker = start(tmp_path, "worker", "-pouw", f"-pouwmodel=small={model}", "-listen=0", link(requester))
    try:
        wait_until(lambda: len(remote_workers(requester)) == 1, timeout=60, what="the worker's advert")
        out = client(port).completions.create(model="small", prompt="dial out", max_tokens=5,
                                              temperature=0)
        pubkey = worker.rpc().pouw_getstats()["worker_pubkey"]
        assert out.model_extra["aipg"]["worker_pubkey"] == pubkey  # type: ignore[index]
    finally:
        worker.cleanup()
        requester.cleanup()
