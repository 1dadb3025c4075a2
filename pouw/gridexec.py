"""Today's AIPG grid workers as workers of this node: the bridge between the router and the grid
worker WebSocket (`pouw.gridws`).

Owns `GridExecutor` (runs a `JobSpec` on one connected grid worker) and `GridBridge` (keeps the
router's `WorkerDirectory` equal to the pool's connected workers, and authenticates workers with
the node's API keys). A grid worker sees text, not token ids, and signs the grid's EIP-191 receipt
over the output text; the node countersigns a text-only receipt (worker key = this node's, the
coordinator answering for the job; `deterministic = false`, backend "grid-ws") and keeps the grid
worker's own receipt and its verification status beside it in the job store's JSON form.

It must never hand a grid worker a job it did not register for, nor present an unverified grid
receipt as verified.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pouw.api import TextSink
from pouw.apikeys import ApiKeyStore
from pouw.backends.base import unhashed_model_id
from pouw.gridproto import GridJob, GridMessage, GridRegistration
from pouw.gridws import (
    GridAuthVerdict,
    GridError,
    GridJobFailedError,
    GridJobRejectedError,
    GridJobTimeoutError,
    GridWorkerInfo,
    GridWorkerPool,
    WorkerLost,
)
from pouw.jobspec import ChatInput, CompletionInput, JobSpec
from pouw.queue import until_set
from pouw.receipt import ExecutionFacts, FinishReason, Receipt, Timings, TokenOutput, Usage
from pouw.router import ModelOffer, WorkerDirectory, WorkerInfo, WorkerLostError
from pouw.signing import PouwKey, sign_receipt
from pouw.worker import JobFailedError, JobOutcome

__all__ = ["ApiKeyGridAuth", "GridBridge", "GridExecutor"]

GRID_PREFIX = "grid:"
MAX_GRID_RECEIPTS = 100_000
_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "cancelled": FinishReason.CANCELLED}


class GridExecutor:
    """One connected grid worker, as the router's JobExecutor."""

    def __init__(self, pool: GridWorkerPool, info: GridWorkerInfo, key: PouwKey,
                 grid_receipts: OrderedDict[bytes, dict[str, Any]],
                 clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.grid = info
        self.key = key
        self._clock = clock
        self.worker_info = WorkerInfo(
            GRID_PREFIX + info.worker_id,
            tuple(ModelOffer(m, unhashed_model_id(m), info.max_context_length) for m in info.models),
            max_concurrency=1, trusted=False, kind="grid", pubkey=key.pubkey, deterministic=False)
        self.grid_receipts = grid_receipts

    async def execute(self, spec: JobSpec, stop: threading.Event, on_text: TextSink | None = None, *,
                      queued_ms: int = 0) -> JobOutcome:
        sampling = spec.sampling
        if sampling is None or not isinstance(spec.input, CompletionInput | ChatInput):
            raise JobFailedError("model-mismatch", "grid workers run chat and completion jobs only")
        job = GridJob(spec.id_hex, spec.model.name, sampling.max_tokens,
                      prompt=spec.input.prompt if isinstance(spec.input, CompletionInput) else None,
                      messages=(tuple(GridMessage(m.role.label, m.content) for m in spec.input.messages)
                                if isinstance(spec.input, ChatInput) else None),
                      temperature=sampling.temperature, top_p=sampling.top_p,
                      top_k=sampling.top_k or None, seed=sampling.seed, stop=sampling.stop)
        started = int(self._clock())
        begin = time.perf_counter()
        watch = asyncio.get_running_loop().create_task(self._cancel_on(stop, job.job_id))
        try:
            result = await self.pool.run_job(self.grid.worker_id, job, on_token=on_text)
        except WorkerLost as exc:
            raise WorkerLostError(str(exc)) from exc
        except GridJobRejectedError as exc:
            raise WorkerLostError(f"grid worker refused the job: {exc}") from exc
        except (GridJobFailedError, GridJobTimeoutError, GridError) as exc:
            raise JobFailedError("backend-error", f"grid worker {self.grid.name}: {exc}") from exc
        finally:
            watch.cancel()
        text = result.full_text
        usage = result.usage
        completion = (usage.completion_tokens if usage is not None and usage.completion_tokens is not None
                      else result.token_frames)
        prompt_tokens = usage.prompt_tokens if usage is not None and usage.prompt_tokens is not None else 0
        finish = (FinishReason.CANCELLED if result.cancelled
                  else _FINISH.get(result.finish_reason, FinishReason.STOP))
        agent = re.sub(r"[^A-Za-z0-9._:/+-]", "-", self.grid.bridge_agent)[:64] or "grid-worker"
        facts = ExecutionFacts("grid-ws", agent, 0, False, sampling)
        elapsed_ms = round((time.perf_counter() - begin) * 1000)
        ttft = round((result.ttft_s or 0) * 1000)
        receipt = Receipt(spec.id, self.key.pubkey, spec.model.sha256, spec.input_hash,
                          TokenOutput.from_text((), text), finish, Usage(prompt_tokens, completion),
                          Timings(queued_ms, ttft, max(0, elapsed_ms - ttft)), facts, started,
                          max(started, int(self._clock())))
        signed = sign_receipt(receipt, self.key)
        r = result.receipt
        self.grid_receipts[signed.id] = {"scheme": r.scheme, "signer": r.signer, "signature": r.signature,
                                         "result_sha256": r.result_sha256, "status": r.status.value,
                                         "verified": r.verified, "worker": self.grid.name}
        while len(self.grid_receipts) > MAX_GRID_RECEIPTS:
            self.grid_receipts.popitem(last=False)
        return JobOutcome(signed, text=text)

    async def _cancel_on(self, stop: threading.Event, job_id: str) -> None:
        await until_set(stop)
        await self.pool.cancel(job_id)


class GridBridge:
    """Keeps the directory (and the gateway's executors) equal to the pool's connected workers."""

    def __init__(self, pool: GridWorkerPool, directory: WorkerDirectory, key: PouwKey,
                 add: Callable[[GridExecutor], None], remove: Callable[[str], None]) -> None:
        self.pool = pool
        self.directory = directory
        self.key = key
        self._add = add
        self._remove = remove
        self.executors: dict[str, GridExecutor] = {}
        # The grid workers' own receipts by our receipt id (scheme, signer, signature, status), the
        # most recent MAX_GRID_RECEIPTS of them.
        self.grid_receipts: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        pool.on_change = self.sync

    def sync(self) -> None:
        live = {w.worker_id: w for w in self.pool.workers()}
        for worker_id in [w for w in self.executors if w not in live]:
            self.executors.pop(worker_id)
            self._remove(GRID_PREFIX + worker_id)
        for worker_id, info in live.items():
            if worker_id not in self.executors:
                executor = GridExecutor(self.pool, info, self.key, self.grid_receipts)
                self.executors[worker_id] = executor
                self._add(executor)

    def grid_receipt(self, receipt_id: bytes) -> dict[str, Any] | None:
        return self.grid_receipts.get(receipt_id)


class ApiKeyGridAuth:
    """Grid workers authenticate with an API key of this node (pouw_createapikey); revoked keys are
    refused. The key's id is the worker's account (one account owns a worker name)."""

    def __init__(self, store: ApiKeyStore) -> None:
        self.store = store

    async def __call__(self, apikey: str, registration: GridRegistration) -> GridAuthVerdict:
        key = self.store.authenticate(apikey)
        if key is None:
            return GridAuthVerdict.refuse("Invalid API key")
        if key.revoked:
            return GridAuthVerdict.refuse("API key revoked", forbidden=True)
        return GridAuthVerdict.accept(key.key_id)
