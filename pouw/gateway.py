"""The requester side of a node: admit a request, queue it, route it to a worker, check and keep
the receipt, bill it.

Owns `JobGateway`, what the OpenAI-compatible API and the `pouw_submitjob` RPC call. The steps:
admission by tier (pouw.tiers: rate limits, API keys, credit), a `JobSpec` built for the request
(model hash, tier, requester = this node's key for paid jobs, fee, deadline, a random nonce), the
job queue (priority and concurrency), `run_routed` over the known workers (local backends, peers,
grid WebSocket workers), then the receipt is checked before anything is billed or stored: its
worker signature, and that it answers this very job (`Receipt.check_matches`). A paid job's receipt
gets the requester's acknowledgement signature.

It must never bill a request whose job failed, never hand out a receipt that does not verify,
and never retry a streamed job on another worker once text has reached the requester.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pouw.api import ApiError, ApiRequest, ApiResult, Caller, TextSink
from pouw.errors import PouwError
from pouw.jobspec import ChatInput, EmbedInput, JobSpec, ModelRef, Tier
from pouw.queue import JobCancelledError, JobQueue, JobTimeoutError, QueueFullError
from pouw.receipt import Receipt
from pouw.router import ModelOffer, NoWorkerError, WorkerDirectory, WorkerInfo, WorkerLostError, run_routed
from pouw.signing import PouwKey, sign_requester_ack, verify_receipt_signature
from pouw.store import JobStore, parse_id
from pouw.tiers import AdmissionPolicy, AdmissionRequest
from pouw.worker import JobFailedError, JobOutcome

logger = logging.getLogger(__name__)

__all__ = ["GatewayStats", "JobExecutor", "JobGateway", "token_budget"]

# Tokens a chat template, BOS or role markers may add per message (admission's upper bound).
TEMPLATE_TOKENS = 16
_LATENCY_WINDOW = 1024


class JobExecutor(Protocol):
    """Something that runs jobs for the router: a LocalWorker, a remote peer, a grid worker."""

    worker_info: WorkerInfo

    async def execute(self, spec: JobSpec, stop: threading.Event, on_text: TextSink | None = None, *,
                      queued_ms: int = 0) -> JobOutcome: ...


@dataclass
class GatewayStats:
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    retried: int = 0
    bad_receipts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_tier: dict[str, int] = field(default_factory=lambda: {"free": 0, "paid": 0})
    # Seconds from submission to a worker starting the job (queue wait + routing).
    routing_latency: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))

    def latency_percentile(self, q: float) -> float | None:
        values = sorted(self.routing_latency)
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]


def token_budget(request: ApiRequest) -> int:
    """An upper bound of the tokens a request can be billed for, reserved at admission: the prompt
    counted as one token per UTF-8 byte (no tokenizer makes a token of less than a byte) plus what
    a chat template adds, then max_tokens. Settlement bills what was really used."""
    job_input = request.input
    if isinstance(job_input, EmbedInput):
        return sum(len(t.encode("utf-8")) + TEMPLATE_TOKENS for t in job_input.inputs)
    if isinstance(job_input, ChatInput):
        prompt = sum(len(m.content.encode("utf-8")) + TEMPLATE_TOKENS for m in job_input.messages)
    else:
        prompt = len(job_input.prompt.encode("utf-8")) + TEMPLATE_TOKENS
    return prompt + (request.sampling.max_tokens if request.sampling is not None else 0)


class JobGateway:
    """Implements pouw.api.Gateway over the node's queue, workers, store and admission policy."""

    def __init__(self, admission: AdmissionPolicy, queue: JobQueue, directory: WorkerDirectory,
                 store: JobStore, key: PouwKey, *, job_timeout: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.admission = admission
        self.queue = queue
        self.directory = directory
        self.store = store
        self.key = key
        self.job_timeout = job_timeout
        self._clock = clock
        self._executors: dict[str, JobExecutor] = {}
        self.stats = GatewayStats()
        # Workers this gateway does not hold itself (peers' workers, reached through the P2P layer).
        self.executor_lookup: Callable[[str], JobExecutor | None] = lambda worker_id: None
        # Called with each checked, stored receipt and its job (the validator, gossip).
        self.receipt_listeners: list[Callable[[JobSpec, Receipt], None]] = []

    # --- workers -------------------------------------------------------------------------------------

    def add_executor(self, executor: JobExecutor) -> None:
        self._executors[executor.worker_info.worker_id] = executor
        self.directory.add(executor.worker_info)

    def remove_executor(self, worker_id: str) -> None:
        self._executors.pop(worker_id, None)
        self.directory.remove(worker_id)

    def executor(self, worker_id: str) -> JobExecutor | None:
        return self._executors.get(worker_id) or self.executor_lookup(worker_id)

    def list_models(self) -> list[ModelOffer]:
        return self.directory.models()

    def resolve_model(self, name: str) -> ModelRef:
        """`name` or `name@<sha256 hex>` to the model reference a job names."""
        wanted_hash: bytes | None = None
        if "@" in name:
            name, _, hex_hash = name.partition("@")
            try:
                wanted_hash = bytes.fromhex(hex_hash)
            except ValueError:
                wanted_hash = None
            if wanted_hash is None or len(wanted_hash) != 32:
                raise ApiError(400, f"model: {hex_hash!r} is not a sha256 in hex", param="model",
                               code="invalid_value")
        for offer in self.directory.models():
            if offer.name == name and offer.sha256 is not None and wanted_hash in (None, offer.sha256):
                return ModelRef(name, offer.sha256)
        raise ApiError(404, f"The model '{name}' is not served by any worker of this node", param="model",
                       code="model_not_found")

    # --- running a request ---------------------------------------------------------------------------

    def build_job(self, request: ApiRequest, tier: Tier, fee: int) -> JobSpec:
        now = int(self._clock())
        try:
            nonce = int.from_bytes(os.urandom(8), "little")
            return JobSpec(self.resolve_model(request.model), request.input, request.sampling,
                           deadline=now + int(self.job_timeout), nonce=nonce, tier=tier,
                           requester=self.key.pubkey if tier is Tier.PAID else b"", fee=fee)
        except PouwError as exc:
            raise ApiError(400, str(exc), param=exc.field or None, code=exc.code) from exc

    async def run(self, request: ApiRequest, caller: Caller, on_text: TextSink | None) -> ApiResult:
        budget = token_budget(request)
        self.resolve_model(request.model)  # 404 before anything is reserved
        admission = self.admission.admit(AdmissionRequest(caller.remote, budget, caller.api_key,
                                                          caller.forwarded_for))
        if not admission.admitted:
            self.stats.rejected += 1
            body = admission.error_body() or {}
            err = body.get("error", {})
            raise ApiError(admission.http_status, admission.message,
                           type=err.get("type", "invalid_request_error"), code=err.get("code"),
                           retry_after=admission.retry_after, headers=admission.headers)
        fee = admission.reservation.amount if admission.reservation is not None else 0
        try:
            spec = self.build_job(request, admission.tier, fee)
            result = await self._execute(spec, on_text, admission.priority, admission.trusted_only)
        except BaseException:
            self.admission.release(admission)
            self.stats.failed += 1
            raise
        receipt = result.outcome.receipt
        self.admission.settle(admission, receipt.usage.prompt_tokens + receipt.usage.completion_tokens)
        self.stats.by_tier[admission.tier.label] += 1
        return ApiResult(result.outcome, result.job_id_hex, result.worker_id,
                         tuple(admission.headers.items()))

    async def submit(self, spec: JobSpec, on_text: TextSink | None = None, *, priority: int = 1,
                     trusted_only: bool = False) -> ApiResult:
        """Runs an already-built job (the RPC path: no HTTP admission)."""
        return await self._execute(spec, on_text, priority, trusted_only)

    async def _execute(self, spec: JobSpec, on_text: TextSink | None, priority: int,
                       trusted_only: bool) -> ApiResult:
        self.stats.submitted += 1
        # The store syncs each write to disk: off the event loop.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.put_job, spec)
        submitted = self._clock()
        streamed = False

        async def forward(text: str) -> None:
            nonlocal streamed
            streamed = True
            if on_text is not None:
                await on_text(text)

        async def attempt_on(worker: WorkerInfo, stop: threading.Event) -> JobOutcome:
            executor = self.executor(worker.worker_id)
            if executor is None:
                raise WorkerLostError(f"worker {worker.worker_id} is gone")
            started = self._clock()
            self.stats.routing_latency.append(started - submitted)
            try:
                return await executor.execute(spec, stop, forward if on_text is not None else None,
                                              queued_ms=round((started - submitted) * 1000))
            except WorkerLostError:
                if streamed:  # text already went out: another worker's text would not continue it
                    raise JobFailedError("worker-lost",
                                         f"worker {worker.worker_id} was lost mid-stream") from None
                self.stats.retried += 1
                raise

        async def job(stop: threading.Event) -> tuple[JobOutcome, WorkerInfo]:
            outcome, worker, _lost = await run_routed(
                self.directory, spec.model.name, spec.model.sha256,
                lambda w: attempt_on(w, stop), trusted_only=trusted_only, wait_for_slot=self.job_timeout)
            return outcome, worker

        try:
            handle = self.queue.submit(spec.id_hex, job, priority=priority, timeout=self.job_timeout)
            outcome, worker = await handle.result()
        except QueueFullError as exc:
            raise ApiError(503, str(exc), type="server_error", code="queue_full", retry_after=5) from exc
        except NoWorkerError as exc:
            raise ApiError(503, str(exc), type="server_error", code="no_worker") from exc
        except JobTimeoutError as exc:
            raise ApiError(504, str(exc), type="server_error", code="timeout") from exc
        except JobCancelledError as exc:
            raise ApiError(499, str(exc), type="server_error", code="cancelled") from exc
        except ApiError:
            raise
        except JobFailedError as exc:
            status = 400 if exc.code in ("context-overflow", "model-mismatch") else 502
            kind = "server_error" if status == 502 else "invalid_request_error"
            raise ApiError(status, str(exc), type=kind, code=exc.code.replace("-", "_")) from exc
        except Exception as exc:  # a worker's bug or bad data: the requester gets 502, the node goes on
            logger.exception("PoUW: job %s failed on its worker", spec.id_hex)
            raise ApiError(502, f"the worker failed: {exc}", type="server_error",
                           code="worker_error") from exc
        receipt = self._checked(outcome.receipt, spec, worker)
        if spec.tier is Tier.PAID:
            receipt = sign_requester_ack(receipt, self.key)
        await loop.run_in_executor(None, self.store.put_receipt, receipt)
        for listener in self.receipt_listeners:
            listener(spec, receipt)
        self.stats.completed += 1
        self.stats.prompt_tokens += receipt.usage.prompt_tokens
        self.stats.completion_tokens += receipt.usage.completion_tokens
        return ApiResult(JobOutcome(receipt, outcome.text, outcome.embeddings), spec.id_hex, worker.worker_id)

    def _checked(self, receipt: Receipt, spec: JobSpec, worker: WorkerInfo) -> Receipt:
        problem = None
        if not verify_receipt_signature(receipt):
            problem = "its signature does not verify"
        elif worker.pubkey is not None and receipt.worker_pubkey != worker.pubkey:
            problem = "it is signed by another key than the worker's"
        else:
            try:
                receipt.check_matches(spec)
            except PouwError as exc:
                problem = str(exc)
        if problem is not None:
            self.stats.bad_receipts += 1
            raise ApiError(502, f"worker {worker.worker_id} returned an invalid receipt: {problem}",
                           type="server_error", code="bad_receipt")
        return receipt

    # --- lookups -------------------------------------------------------------------------------------

    def get_receipt(self, receipt_id_hex: str) -> Receipt | None:
        rid = parse_id(receipt_id_hex)
        return None if rid is None else self.store.get_receipt(rid)

