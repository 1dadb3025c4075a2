"""The OpenAI-compatible API over the gateway: the official `openai` client against a real aiohttp
server on loopback, real llama.cpp inference, real admission (rate limits, API keys, credit)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from pouw.api import make_app
from pouw.apikeys import ApiKeyStore
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.gateway import JobGateway
from pouw.jobspec import Tier
from pouw.queue import JobQueue
from pouw.ratelimit import RateLimiter, RateLimits
from pouw.receipt import Receipt
from pouw.router import WorkerDirectory, WorkerLostError
from pouw.signing import PouwKey, verify_receipt_signature, verify_requester_ack
from pouw.store import JobStore
from pouw.tiers import AdmissionPolicy, TierPolicy
from pouw.tinymodel import write_tiny_llama
from pouw.worker import LocalWorker

NODE_KEY = PouwKey(bytes(31) + b"\x21")
WORKER_KEY = PouwKey(bytes(31) + b"\x22")


@dataclass
class Server:
    base: str
    gateway: JobGateway
    store: ApiKeyStore
    loop: asyncio.AbstractEventLoop
    backend: LlamaCppBackend
    pool: ThreadPoolExecutor

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("api")
    model_path = tmp / "tiny.gguf"
    write_tiny_llama(model_path, seed=21)
    backend = LlamaCppBackend(model_path, model_name="tiny", n_ctx=256, slots=2)
    pool = ThreadPoolExecutor(2)
    keys = ApiKeyStore(tmp / "apikeys")
    keys.open()
    store = JobStore(tmp / "jobs")
    store.open()
    policy = TierPolicy(free_limits=RateLimits(4, 10_000), paid_limits=RateLimits(1000, 1_000_000),
                        price_per_1k_tokens=1_000_000)  # 0.01 AIPG per 1000 tokens
    admission = AdmissionPolicy(policy, keys, RateLimiter())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            gateway = JobGateway(admission, JobQueue(2), WorkerDirectory(), store, NODE_KEY, job_timeout=60)
            gateway.add_executor(LocalWorker("local-0", backend, WORKER_KEY, pool))
            runner = web.AppRunner(make_app(gateway))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            holder["port"] = runner.addresses[0][1]
            holder["gateway"] = gateway
            holder["runner"] = runner
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    srv = Server(f"http://127.0.0.1:{holder['port']}", holder["gateway"], keys, loop, backend, pool)
    yield srv
    srv.call(holder["runner"].cleanup())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    backend.close()
    pool.shutdown()
    keys.close()
    store.close()


def client(server: Server, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0, timeout=60)


def http(server: Server, method: str, path: str, body: object = None, key: str | None = None,
         raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession() as s:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            async with s.request(method, server.base + path, data=data, headers=headers) as r:
                text = await r.text()
                return r.status, dict(r.headers), json.loads(text) if text.startswith("{") else text
    return asyncio.run(go())


def test_models_and_completion_with_receipt(server: Server) -> None:
    c = client(server)
    models = c.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    out = c.completions.create(model="tiny", prompt="The grid", max_tokens=8, temperature=0, seed=3)
    assert out.object == "text_completion" and out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.completion_tokens <= 8
    aipg = out.model_extra["aipg"]  # type: ignore[index]
    status, _, body = http(server, "GET", f"/v1/aipg/receipts/{aipg['receipt_id']}")
    assert status == 200
    receipt = Receipt.from_bytes(bytes.fromhex(body["hex"]))
    assert receipt.id_hex == aipg["receipt_id"] and verify_receipt_signature(receipt)
    assert receipt.worker_pubkey == WORKER_KEY.pubkey
    assert receipt.usage.completion_tokens == out.usage.completion_tokens
    # The same greedy request again gives the same text (deterministic worker).
    again = c.completions.create(model="tiny", prompt="The grid", max_tokens=8, temperature=0, seed=3)
    assert again.choices[0].text == out.choices[0].text


def test_chat_streaming_and_embeddings(server: Server) -> None:
    key, _ = server.store.create("streamer", credit=10**8)
    c = client(server, key)
    stream = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}],
                                       max_tokens=10, stream=True, seed=1, temperature=0.7)
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    receipt_id = chunks[-1].model_extra["aipg"]["receipt_id"]  # type: ignore[index]
    receipt = server.gateway.get_receipt(receipt_id)
    assert receipt is not None and verify_receipt_signature(receipt)
    spec = server.gateway.store.get_job(receipt.job_id)
    assert spec is not None and spec.tier is Tier.PAID
    assert verify_requester_ack(receipt, spec)  # the node acknowledged the paid job
    plain = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}],
                                      max_tokens=10, seed=1, temperature=0.7)
    assert plain.choices[0].message.content == text  # same seed: streamed == non-streamed
    emb = c.embeddings.create(model="tiny", input=["a", "bb"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == server.backend.info().embedding_dims


def test_paid_key_billing_and_402(server: Server) -> None:
    # 0.0001 AIPG of credit at 0.01 AIPG per 1000 tokens: 100 tokens' worth. Admission reserves
    # the prompt's bytes + 16 + max_tokens.
    key, record = server.store.create("small", credit=100_000)
    c = client(server, key)
    with pytest.raises(openai.APIStatusError) as info:
        c.completions.create(model="tiny", prompt="x", max_tokens=100)
    assert info.value.status_code == 402
    assert info.value.body["code"] == "insufficient_quota"  # type: ignore[index]
    ok = c.completions.create(model="tiny", prompt="x", max_tokens=4)
    assert ok.usage is not None
    spent = server.store.get(record.key_id).spent
    assert spent == -(-(ok.usage.total_tokens * 1_000_000) // 1000)
    with pytest.raises(openai.AuthenticationError):
        client(server, "aipg_sk_" + "1" * 40).completions.create(model="tiny", prompt="x", max_tokens=2)


def test_free_tier_rate_limit_and_bad_requests(server: Server) -> None:
    statuses = []
    for _ in range(6):
        status, headers, _ = http(server, "POST", "/v1/completions",
                                  {"model": "tiny", "prompt": "rate", "max_tokens": 1})
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
    assert 429 in statuses and statuses[0] in (200, 429)
    status, _, body = http(server, "POST", "/v1/completions", {"model": "nope", "prompt": "x"})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, _, body = http(server, "POST", "/v1/completions", raw=b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    hot = {"model": "tiny", "prompt": "x", "temperature": 9}
    status, _, body = http(server, "POST", "/v1/completions", hot)
    assert status == 400 and body["error"]["param"] == "temperature"
    bad_role = {"model": "tiny", "messages": [{"role": "x"}]}
    status, _, body = http(server, "POST", "/v1/chat/completions", bad_role)
    assert status == 400 and "role" in body["error"]["message"]
    status, _, body = http(server, "GET", "/v1/nothing")
    assert status == 404
    status, _, body = http(server, "GET", "/v1/aipg/receipts/zz")
    assert status == 404


def test_lost_worker_is_retried_elsewhere(server: Server) -> None:
    class Flaky:
        def __init__(self, inner: LocalWorker) -> None:
            from dataclasses import replace
            self.inner = inner
            self.worker_info = replace(inner.worker_info, worker_id="flaky", tokens_per_second=1e9)
            self.calls = 0

        async def execute(self, spec: Any, stop: Any, on_text: Any = None, *, queued_ms: int = 0) -> Any:
            self.calls += 1
            raise WorkerLostError("connection reset")

    local = next(iter(server.gateway._executors.values()))
    flaky = Flaky(local)  # type: ignore[arg-type]
    server.call(_add(server.gateway, flaky))
    try:
        key, _ = server.store.create("retry", credit=10**8)
        out = client(server, key).completions.create(model="tiny", prompt="retry me", max_tokens=3)
        assert out.model_extra["aipg"]["worker"] == "local-0"  # type: ignore[index]
        assert flaky.calls == 1 and server.gateway.stats.retried >= 1
    finally:
        server.call(_remove(server.gateway, "flaky"))


async def _add(gateway: JobGateway, executor: Any) -> None:
    gateway.add_executor(executor)


async def _remove(gateway: JobGateway, worker_id: str) -> None:
    gateway.remove_executor(worker_id)


def test_store_survives_reopen(server: Server, tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    store.open()
    receipt_ids = []
    for job_id_hex in list(server.gateway.queue._jobs)[:2]:
        r = server.gateway.store.receipt_for_job(bytes.fromhex(job_id_hex)[::-1])
        if r is not None:
            store.put_receipt(r)
            receipt_ids.append(r.id)
    store.close()
    store = JobStore(tmp_path / "jobs")
    store.open()
    assert receipt_ids and all(store.get_receipt(rid) is not None for rid in receipt_ids)
    assert store.put_receipt(store.get_receipt(receipt_ids[0])) is False  # type: ignore[arg-type]
    store.close()
