"""The grid worker WebSocket served by a real aiohttp server on 127.0.0.1, driven by a scripted client
that behaves as grid-text-worker's ws_client.py does: the same registration, the same frames and field
names in the same order, a cancel watcher during a job, the wait for an ack after `done`, and an EIP-191
receipt signed with a test Ethereum key (coincurve + keccak, written here)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from coincurve import PrivateKey
from Crypto.Hash import keccak

from pouw.gridproto import GridFrameLimits, GridJob, GridMessage, GridRegistration, ReceiptStatus
from pouw.gridws import (
    GridAuthVerdict,
    GridJobFailedError,
    GridJobRejectedError,
    GridJobTimeoutError,
    GridPoolConfig,
    GridWorkerPool,
    StaticGridAuth,
    WorkerBusyError,
    WorkerLost,
)

FAST = GridPoolConfig(handshake_timeout=1.0, ping_interval=0.1, idle_timeout=0.6, cancel_grace=0.4,
                      close_timeout=0.5, send_timeout=1.0, max_bad_frames=8,
                      limits=GridFrameLimits(max_frame_bytes=64 * 1024))
KEYS = {"grid-key-1": "acct-1", "grid-key-2": "acct-2"}
MODEL = "grid/tiny-llama"
TOKENS = ("Hel", "lo", ",", " grid", "!")
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


class EthKey:
    def __init__(self, secret: bytes) -> None:
        self.key = PrivateKey(secret)
        body = _keccak(self.key.public_key.format(compressed=False)[1:])[-20:].hex()
        nibbles = _keccak(body.encode()).hex()
        # EIP-55, as eth_account's Account.address reads.
        cased = (c.upper() if int(n, 16) >= 8 else c for c, n in zip(body, nibbles[:40], strict=True))
        self.address = "0x" + "".join(cased)

    def personal_sign(self, text: str) -> str:
        data = text.encode()
        digest = _keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
        sig = self.key.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes((sig[64] + 27,))).hex()


WORKER_KEY = EthKey(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
OTHER_KEY = EthKey(bytes(31) + b"\x2a")


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(30):
            await coro

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def grid_node(config: GridPoolConfig = FAST,
                    auth: Any = None) -> AsyncIterator[tuple[GridWorkerPool, str]]:
    pool = GridWorkerPool(auth or StaticGridAuth(KEYS), config)
    app = web.Application()
    pool.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield pool, f"ws://127.0.0.1:{port}/v1/workers/ws"
    finally:
        await pool.close()
        await runner.cleanup()


class ScriptedGridWorker:
    """grid-text-worker's StreamingWorker, with the inference backend replaced by a token script."""

    def __init__(self, url: str, *, name: str = "rig-a", apikey: str = "grid-key-1", key: EthKey = WORKER_KEY,
                 sign_with: EthKey | None = None, tokens: tuple[str, ...] = TOKENS, mode: str = "stream",
                 pause_after: int | None = None, token_delay: float = 0.0,
                 registration: dict[str, Any] | None = None) -> None:
        self.url = url
        self.name = name
        self.apikey = apikey
        self.key = key
        self.sign_with = sign_with or key
        self.tokens = tokens
        self.mode = mode  # stream | error | hang | drop
        self.pause_after = pause_after
        self.token_delay = token_delay
        self.registration_override = registration
        self.received: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.cancels: list[str] = []
        self.worker_id = ""
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._loop_task: asyncio.Task[None] | None = None

    def registration(self) -> dict[str, Any]:
        # ws_client.py connect(): the same keys in the same order.
        frame = {
            "apikey": self.apikey,
            "name": self.name,
            "models": [MODEL],
            "max_length": 32768,
            "max_context_length": 4096,
            "api_formats": ["openai-chat"],
            "modalities": ["text"],
            "signer_address": self.key.address,
            "bridge_agent": "Grid Inference Worker:2.1.0:streaming",
        }
        return self.registration_override if self.registration_override is not None else frame

    async def connect(self) -> dict[str, Any]:
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(self.url)
        await self.ws.send_str(json.dumps(self.registration()))
        msg = await self.ws.receive(timeout=5)
        answer: dict[str, Any] = json.loads(msg.data)
        if answer.get("type") == "ready":
            self.worker_id = answer["worker_id"]
            self._loop_task = asyncio.create_task(self._message_loop())
        return answer

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        try:
            if self.ws is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close()
        finally:
            if self._session is not None:
                await self._session.close()

    async def closed_code(self) -> int | None:
        """Wait for the node to close this connection; its close code."""
        assert self.ws is not None
        if self._loop_task is not None:
            self._loop_task.cancel()  # the loop may be stuck in a job (mode "hang"): read here instead
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        while not self.ws.closed:
            await self.ws.receive(timeout=5)
        return self.ws.close_code

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame))

    async def _message_loop(self) -> None:
        assert self.ws is not None
        while True:
            msg = await self.ws.receive()
            if msg.type is not WSMsgType.TEXT:
                return
            frame = json.loads(msg.data)
            self.received.append(frame)
            kind = frame.get("type")
            if kind == "job":
                await self._handle_job(frame)
            elif kind == "ping":
                await self._send({"type": "pong"})

    async def _watch(self, job_id: str, cancel: asyncio.Event) -> None:
        assert self.ws is not None
        while not cancel.is_set():
            msg = await self.ws.receive()
            if msg.type is not WSMsgType.TEXT:
                return
            frame = json.loads(msg.data)
            self.received.append(frame)
            if frame.get("type") == "cancel" and frame.get("id") == job_id:
                self.cancels.append(job_id)
                cancel.set()

    async def _handle_job(self, job: dict[str, Any]) -> None:
        assert self.ws is not None
        self.jobs.append(job)
        job_id = job["id"]
        if self.mode == "error":
            await self._send({"type": "error", "id": job_id,
                              "message": "backend rejected request (HTTP 400): bad", "client_error": True})
            return
        cancel = asyncio.Event()
        watcher = asyncio.create_task(self._watch(job_id, cancel))
        full_text = ""
        cancelled = False
        try:
            for count, piece in enumerate(self.tokens, 1):
                if cancel.is_set():
                    cancelled = True
                    break
                if self.mode == "drop" and count == 3:
                    await self.ws.close()
                    return
                await self._send({"type": "token", "id": job_id, "delta": {"content": piece},
                                  "finish_reason": None})
                full_text += piece
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                if self.pause_after == count:
                    await cancel.wait()  # a slow backend: the next chunk comes after the cancel
                if self.mode == "hang" and count == 2:
                    await asyncio.Event().wait()
            else:
                cancelled = cancel.is_set()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        done: dict[str, Any] = {"type": "done", "id": job_id, "full_text": full_text, "full_reasoning": "",
                                "finish_reason": "cancelled" if cancelled else "stop"}
        if cancelled:
            done["cancelled"] = True
        done["usage"] = USAGE
        digest = hashlib.sha256(full_text.encode()).hexdigest()
        done["receipt"] = {"signer": self.key.address,
                           "sig": self.sign_with.personal_sign(f"aipg-receipt:v1:{job_id}:{digest}"),
                           "result_sha256": digest}
        await self._send(done)
        msg = await self.ws.receive(timeout=10)
        self.acks.append(json.loads(msg.data))


def chat_job(job_id: str = "job-1", **kwargs: Any) -> GridJob:
    return GridJob(job_id, MODEL, 64, messages=(GridMessage("user", "Say hello"),), temperature=0.0, seed=42,
                   **kwargs)


def test_eth_key_matches_eth_account_docs() -> None:
    assert WORKER_KEY.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"


def test_registration_ready_and_worker_listed() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url)
            answer = await worker.connect()
            assert answer["type"] == "ready" and len(answer["worker_id"]) == 32
            [info] = await pool.wait_for_workers(1, 2)
            assert info.worker_id == answer["worker_id"]
            assert (info.name, info.account, info.models) == ("rig-a", "acct-1", (MODEL,))
            assert (info.max_length, info.max_context_length) == (32768, 4096)
            assert info.api_formats == ("openai-chat",) and info.modalities == ("text",)
            assert info.signer_address == WORKER_KEY.address
            assert info.remote == "127.0.0.1" and not info.busy
            assert [w.worker_id for w in pool.idle_workers(MODEL)] == [info.worker_id]
            assert pool.idle_workers("other-model") == []
            await worker.close()

    run(scenario())


def test_job_streams_tokens_and_returns_a_verified_result() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url)
            await worker.connect()
            seen: list[str] = []

            async def on_token(text: str) -> None:
                seen.append(text)

            result = await pool.run_job(worker.worker_id, chat_job(stop=("###",)), on_token, timeout=5)
            assert seen == list(TOKENS)
            assert result.full_text == "Hello, grid!"
            assert (result.job_id, result.worker_name, result.model) == ("job-1", "rig-a", MODEL)
            assert result.finish_reason == "stop" and not result.cancelled
            assert result.usage is not None
            usage = result.usage
            assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 5, 12)
            assert result.token_frames == 5 and result.ttft_s is not None
            assert result.verified and result.receipt.status is ReceiptStatus.VALID
            assert result.receipt.signer == WORKER_KEY.address
            assert result.receipt.result_sha256 == hashlib.sha256(b"Hello, grid!").hexdigest()
            # The job frame the worker got, and the ack it waited for.
            [job] = worker.jobs
            assert (job["type"], job["id"], job["model"]) == ("job", "job-1", MODEL)
            request = job["payload"]["request"]
            assert request["messages"] == [{"role": "user", "content": "Say hello"}]
            assert (request["max_tokens"], request["temperature"], request["seed"], request["stop"]) == \
                (64, 0.0, 42, ["###"])
            assert job["payload"]["api_format"] == "openai-chat" and job["payload"]["max_length"] == 64
            await eventually(lambda: len(worker.acks) == 1)
            assert worker.acks == [{"type": "ack", "id": "job-1", "den": 0.0}]
            # The connection is idle again and takes the next job.
            second = await pool.run_job(worker.worker_id, chat_job("job-2"), None, timeout=5)
            assert second.full_text == "Hello, grid!" and second.verified
            assert pool.workers()[0].jobs_done == 2
            await worker.close()

    run(scenario())


def test_cancel_returns_the_partial_output_with_its_receipt() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, pause_after=2)
            await worker.connect()
            seen: list[str] = []

            async def on_token(text: str) -> None:
                seen.append(text)
                if len(seen) == 2:
                    assert await pool.cancel("job-1")

            result = await pool.run_job(worker.worker_id, chat_job(), on_token, timeout=5)
            assert worker.cancels == ["job-1"]
            assert result.cancelled and result.finish_reason == "cancelled"
            assert result.full_text == "Hello" and seen == ["Hel", "lo"]
            assert result.verified
            assert not await pool.cancel("job-1")  # nothing runs any more
            await worker.close()

    run(scenario())


def test_worker_disconnect_mid_job_raises_worker_lost() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, mode="drop")
            await worker.connect()
            seen: list[str] = []

            async def on_token(text: str) -> None:
                seen.append(text)

            with pytest.raises(WorkerLost, match="disconnected during job job-1"):
                await pool.run_job(worker.worker_id, chat_job(), on_token, timeout=5)
            assert seen == ["Hel", "lo"]
            assert pool.workers() == []
            with pytest.raises(WorkerLost):
                await pool.run_job(worker.worker_id, chat_job("job-2"), None, timeout=5)
            await worker.close()

    run(scenario())


@pytest.mark.parametrize(("apikey", "change", "code", "message"), [
    ("wrong-key", {}, 4001, "Invalid API key"),
    ("", {}, 4001, "Missing apikey or name"),
    ("grid-key-1", {"models": "grid/tiny-llama"}, 4002, "models: expected a list, got str"),
    ("grid-key-1", {"job_types": ["image"]}, 4003, "this node serves openai-chat text jobs only"),
    ("grid-key-1", {"max_length": "many"}, 4002, "max_length: expected an integer, got str"),
])
def test_refused_registrations(apikey: str, change: dict[str, Any], code: int, message: str) -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, apikey=apikey)
            worker.registration_override = {**worker.registration(), **change}
            answer = await worker.connect()
            assert answer == {"type": "error", "message": message}
            assert await worker.closed_code() == code
            assert pool.workers() == []
            await worker.close()

    run(scenario())


def test_a_name_belongs_to_one_account_and_a_reconnect_replaces_the_old_socket() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            first = ScriptedGridWorker(url, mode="hang")
            await first.connect()
            thief = ScriptedGridWorker(url, apikey="grid-key-2")
            assert await thief.connect() == {"type": "error",
                                             "message": "worker name already registered to another account"}
            assert await thief.closed_code() == 4003
            job = asyncio.create_task(pool.run_job(first.worker_id, chat_job(), None, timeout=5))
            await eventually(lambda: len(first.jobs) == 1)
            second = ScriptedGridWorker(url)
            assert (await second.connect())["type"] == "ready"
            with pytest.raises(WorkerLost):
                await job
            assert await first.closed_code() == 1012
            assert [w.worker_id for w in pool.workers()] == [second.worker_id]
            for w in (first, second, thief):
                await w.close()

    run(scenario())


def test_auth_errors_and_forbidden_keys() -> None:
    async def flaky(apikey: str, registration: GridRegistration) -> GridAuthVerdict:
        if apikey == "boom":
            raise RuntimeError("database down")
        return GridAuthVerdict.refuse("API key lacks worker.connect scope", forbidden=True)

    async def scenario() -> None:
        async with grid_node(auth=flaky) as (_pool, url):
            for apikey, code, message in (("boom", 1011, "authentication unavailable"),
                                          ("scoped", 4003, "API key lacks worker.connect scope")):
                worker = ScriptedGridWorker(url, apikey=apikey)
                assert await worker.connect() == {"type": "error", "message": message}
                assert await worker.closed_code() == code
                await worker.close()

    run(scenario())


def test_malformed_frames_leave_the_server_and_an_honest_worker_unaffected() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            honest = ScriptedGridWorker(url)
            await honest.connect()
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as rogue:
                await rogue.send_str("not json at all")
                first = await rogue.receive(timeout=2)
                assert json.loads(first.data) == {"type": "error",
                                                  "message": "frame is not JSON: JSONDecodeError"}
                while not rogue.closed:
                    await rogue.receive(timeout=2)
                assert rogue.close_code == 4002
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as rogue:
                registration = {**honest.registration(), "name": "rogue"}
                await rogue.send_str(json.dumps(registration))
                assert json.loads((await rogue.receive(timeout=2)).data)["type"] == "ready"
                replies = []
                bad_frames = ("{not json", json.dumps({"type": "token", "id": 5}),
                              json.dumps({"type": "telepathy"}),
                              json.dumps({"type": "done", "id": "job-404", "full_text": "x"}),
                              json.dumps([1, 2]))
                for bad in bad_frames:
                    await rogue.send_str(bad)
                    while True:
                        reply = json.loads((await rogue.receive(timeout=2)).data)
                        if reply["type"] == "error":
                            replies.append(reply["message"])
                            break
                await rogue.send_bytes(b"\x00\x01")
                while True:
                    reply = json.loads((await rogue.receive(timeout=2)).data)
                    if reply["type"] == "error":
                        replies.append(reply["message"])
                        break
                assert replies == [
                    "bad frame: frame is not JSON: JSONDecodeError",
                    "bad frame: id: expected a string, got int",
                    "bad frame: unknown frame type 'telepathy'",
                    "bad frame: frame for job 'job-404', which is not running here",
                    "bad frame: frame is a JSON list, not an object",
                    "bad frame: binary frames are not part of the protocol",
                ]
                # The honest worker runs a job while the rogue is still connected.
                result = await pool.run_job(honest.worker_id, chat_job(), None, timeout=5)
                assert result.full_text == "Hello, grid!" and result.verified
                # An oversized frame closes the rogue's socket (1009); the honest one stays.
                await rogue.send_str(json.dumps({"type": "pong", "pad": "x" * 70_000}))
                while not rogue.closed:
                    await rogue.receive(timeout=2)
                assert rogue.close_code == 1009
            assert [w.name for w in pool.workers()] == ["rig-a"]
            result = await pool.run_job(honest.worker_id, chat_job("job-2"), None, timeout=5)
            assert result.full_text == "Hello, grid!"
            await honest.close()

    run(scenario())


def test_too_many_malformed_frames_close_the_connection() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url), aiohttp.ClientSession() as http, http.ws_connect(url) as rogue:
            worker = ScriptedGridWorker(url, name="rogue")
            await rogue.send_str(json.dumps(worker.registration()))
            assert json.loads((await rogue.receive(timeout=2)).data)["type"] == "ready"
            for _ in range(FAST.max_bad_frames + 1):
                await rogue.send_str("{")
            while not rogue.closed:
                await rogue.receive(timeout=2)
            assert rogue.close_code == 1008
            await asyncio.sleep(0.05)
            assert pool.workers() == []

    run(scenario())


def test_receipt_signed_by_another_key_is_returned_unverified() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, sign_with=OTHER_KEY)
            await worker.connect()
            result = await pool.run_job(worker.worker_id, chat_job(), None, timeout=5)
            assert result.full_text == "Hello, grid!"
            assert not result.verified
            assert result.receipt.status is ReceiptStatus.BAD_SIGNATURE
            assert result.receipt.signer == WORKER_KEY.address
            await worker.close()

    run(scenario())


def test_timeout_sends_cancel_and_drops_a_worker_that_never_finishes() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, mode="hang")
            await worker.connect()
            with pytest.raises(GridJobTimeoutError, match=r"not finished within 0\.3 s"):
                await pool.run_job(worker.worker_id, chat_job(), None, timeout=0.3)
            await eventually(lambda: worker.cancels == ["job-1"])
            assert pool.workers()[0].busy  # the worker still owes its `done`: no new job until then
            assert await worker.closed_code() == 1011
            assert pool.workers() == []
            await worker.close()

    run(scenario())


def test_worker_error_frame_fails_the_job_and_the_worker_stays() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, mode="error")
            await worker.connect()
            with pytest.raises(GridJobFailedError) as info:
                await pool.run_job(worker.worker_id, chat_job(), None, timeout=5)
            assert info.value.client_error
            assert info.value.message == "backend rejected request (HTTP 400): bad"
            assert not pool.workers()[0].busy
            await worker.close()

    run(scenario())


def test_empty_completion_is_a_failure() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, tokens=())
            await worker.connect()
            with pytest.raises(GridJobFailedError, match="empty completion"):
                await pool.run_job(worker.worker_id, chat_job(), None, timeout=5)
            await eventually(lambda: len(worker.acks) == 1)
            assert worker.acks == [{"type": "ack", "id": "job-1", "den": 0.0}]
            await worker.close()

    run(scenario())


def test_busy_worker_unknown_model_and_duplicate_job() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, pause_after=1)
            await worker.connect()
            with pytest.raises(GridJobRejectedError, match="does not serve model"):
                await pool.run_job(worker.worker_id, GridJob("j", "other", 8, prompt="x"), None, timeout=5)
            job = asyncio.create_task(pool.run_job(worker.worker_id, chat_job(), None, timeout=5))
            await eventually(lambda: len(worker.jobs) == 1)
            assert pool.workers()[0].busy and pool.idle_workers(MODEL) == []
            with pytest.raises(WorkerBusyError):
                await pool.run_job(worker.worker_id, chat_job("job-2"), None, timeout=5)
            assert await pool.cancel("job-1")
            assert (await job).cancelled
            await worker.close()

    run(scenario())


def test_a_failing_token_callback_cancels_the_job_and_frees_the_worker() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, pause_after=2)
            await worker.connect()

            async def on_token(text: str) -> None:
                if text == "lo":
                    raise ConnectionResetError("requester went away")

            with pytest.raises(ConnectionResetError):
                await pool.run_job(worker.worker_id, chat_job(), on_token, timeout=5)
            await eventually(lambda: len(worker.acks) == 1)
            assert worker.cancels == ["job-1"]
            worker.pause_after = None
            result = await pool.run_job(worker.worker_id, chat_job("job-2"), None, timeout=5)
            assert result.full_text == "Hello, grid!"
            await worker.close()

    run(scenario())


def test_keepalive_pings_idle_workers_and_drops_silent_ones() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url), aiohttp.ClientSession() as http, \
                http.ws_connect(url, autoping=True) as silent:
            worker = ScriptedGridWorker(url)
            await worker.connect()
            await silent.send_str(json.dumps({**worker.registration(), "name": "silent"}))
            assert json.loads((await silent.receive(timeout=2)).data)["type"] == "ready"
            codes = []
            while not silent.closed:
                msg = await silent.receive(timeout=3)  # pings arrive; this client never answers
                if msg.type is WSMsgType.TEXT:
                    codes.append(json.loads(msg.data)["type"])
            assert silent.close_code == 1008 and set(codes) == {"ping"}
            assert {"type": "ping"} in worker.received
            assert [w.name for w in pool.workers()] == ["rig-a"]
            await worker.close()

    run(scenario())


def test_registration_timeout() -> None:
    async def scenario() -> None:
        async with grid_node() as (_pool, url), aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            msg = await ws.receive(timeout=3)
            assert json.loads(msg.data) == {"type": "error", "message": "registration timeout"}
            while not ws.closed:
                await ws.receive(timeout=3)
            assert ws.close_code == 1008

    run(scenario())


def test_a_stream_past_max_tokens_fails_the_job_and_cancels_it() -> None:
    async def scenario() -> None:
        async with grid_node() as (pool, url):
            worker = ScriptedGridWorker(url, tokens=("x",) * 200, token_delay=0.002)
            await worker.connect()
            job = GridJob("job-1", MODEL, 8, prompt="Count forever")
            with pytest.raises(GridJobFailedError, match=r"more than max_tokens \(8\)"):
                await pool.run_job(worker.worker_id, job, None, timeout=5)
            await eventually(lambda: len(worker.acks) == 1)  # the worker ended the job: the node acked it
            await eventually(lambda: not pool.workers()[0].busy)
            assert worker.cancels == ["job-1"]
            assert worker.acks == [{"type": "ack", "id": "job-1", "den": 0.0}]
            worker.tokens = TOKENS
            result = await pool.run_job(worker.worker_id, chat_job("job-2"), None, timeout=5)
            assert result.full_text == "Hello, grid!"
            await worker.close()

    run(scenario())
