"""An AIPG grid worker (the grid's WebSocket protocol, as grid-text-worker speaks it) serving jobs
through a real aipgd: it registers with one of the node's API keys at /v1/workers/ws, receives the
job of an OpenAI request, streams tokens, signs the grid's EIP-191 receipt; the requester gets the
text, and the node keeps the grid receipt, verified, beside its own."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from framework import TestNode, wait_until
from framework.util import free_port

from pouw.gridreceipt import grid_address, sign_grid_receipt

SIGNER = hashlib.sha256(b"grid worker signer").digest()
MODEL = "grid/tiny-chat"
PIECES = ("Hello", ", ", "grid", "!")


class GridWorker:
    """A scripted grid worker on its own event loop thread."""

    def __init__(self, url: str, apikey: str) -> None:
        self.url, self.apikey = url, apikey
        self.ready = threading.Event()
        self.jobs: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        # Stopped by the test, or refused by the node.
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            self.loop.run_until_complete(self.run())

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            await ws.send_str(json.dumps({
                "apikey": self.apikey, "name": "rig-1", "models": [MODEL], "max_length": 512,
                "max_context_length": 4096, "api_formats": ["openai-chat"], "modalities": ["text"],
                "signer_address": grid_address(SIGNER),
                "bridge_agent": "Grid Inference Worker:2.1.0:streaming"}))
            async for msg in ws:
                frame = json.loads(msg.data)
                if frame.get("type") == "ready":
                    self.ready.set()
                elif frame.get("type") == "ping":
                    await ws.send_str(json.dumps({"type": "pong"}))
                elif frame.get("type") == "job":
                    self.jobs.append(frame)
                    job_id = frame["id"]
                    for piece in PIECES:
                        await ws.send_str(json.dumps({"type": "token", "id": job_id,
                                                      "delta": {"content": piece}, "finish_reason": None}))
                    text = "".join(PIECES)
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    await ws.send_str(json.dumps({
                        "type": "done", "id": job_id, "full_text": text, "full_reasoning": "",
                        "finish_reason": "stop",
                        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
                        "receipt": {"signer": grid_address(SIGNER), "result_sha256": digest,
                                    "sig": sign_grid_receipt(job_id, text, SIGNER)}}))
                    await ws.receive()  # the ack

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
        self.loop.call_soon_threadsafe(cancel_all)
        self.thread.join(10)


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[tuple[TestNode, int]]:
    port = free_port()
    node = TestNode(tmp_path / "node", extra_args=["-pouwapi", f"-pouwapiport={port}"])
    node.start()
    yield node, port
    node.cleanup()


def test_grid_worker_serves_through_the_node(node: tuple[TestNode, int]) -> None:
    aipgd, port = node
    rpc = aipgd.rpc()
    key = rpc.pouw_createapikey("rig-1 worker", 0, False)["key"]
    worker = GridWorker(f"ws://127.0.0.1:{port}/v1/workers/ws", key)
    worker.start()
    try:
        assert worker.ready.wait(20)
        wait_until(lambda: [w["kind"] for w in rpc.pouw_listworkers()] == ["grid"], timeout=10)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="free", max_retries=0)
        assert [m.id for m in client.models.list().data] == [MODEL]
        out = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=20, temperature=0.5)
        assert out.choices[0].message.content == "Hello, grid!"
        assert worker.jobs[0]["payload"]["request"]["messages"] == [{"role": "user", "content": "hi"}]
        aipg = out.model_extra["aipg"]  # type: ignore[index]
        assert aipg["worker"].startswith("grid:")
        got = rpc.pouw_getreceipt(aipg["receipt_id"])
        assert got["signature_valid"] and got["receipt"]["execution"]["backend"] == "grid-ws"
        grid = got["grid_receipt"]
        assert grid["verified"] is True and grid["signer"].lower() == grid_address(SIGNER).lower()
        assert grid["result_sha256"] == hashlib.sha256(b"Hello, grid!").hexdigest()
    finally:
        worker.stop()
    wait_until(lambda: rpc.pouw_listworkers() == [], timeout=10)  # gone with its connection


def test_grid_worker_with_a_bad_key_is_refused(node: tuple[TestNode, int]) -> None:
    aipgd, port = node
    worker = GridWorker(f"ws://127.0.0.1:{port}/v1/workers/ws", "aipg_sk_" + "1" * 40)
    worker.start()
    try:
        assert not worker.ready.wait(3)
        assert aipgd.rpc().pouw_listworkers() == []
    finally:
        worker.stop()
