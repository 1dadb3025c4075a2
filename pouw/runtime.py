"""The running half of a node's PoUW service: backends, workers, queue, gateway, API server, validator.

Owns `PouwRuntime`, built from the typed `PouwConfig` and started on the node's event loop by
`pouw.service.PouwService`. It loads each -pouwmodel into an in-process llama.cpp backend (off the
loop: loading a model blocks), discovers the models of each -pouwbackend server, registers them as
local workers under this node's worker key (<datadir>/pouw/worker.key, created on first start),
keeps the queue's concurrency equal to the worker slots it can reach, serves the OpenAI-compatible
API on -pouwapibind/-pouwapiport, and, with -pouwvalidator, re-checks a beacon-chosen sample of the
receipts this node sees and stores the signed attestations.

It must never block the event loop on a model, and never start half-way: a model that fails to
load stops start-up with a message naming the option and the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from aipgd.errors import InitError
from pouw.api import make_app
from pouw.attestation import Attestation
from pouw.backends.base import BackendError, InferenceBackend, unhashed_model_id
from pouw.config import PouwConfig
from pouw.errors import PouwError
from pouw.gateway import JobGateway
from pouw.gossip import LocalAdvert, PouwGossip
from pouw.gridexec import ApiKeyGridAuth, GridBridge, GridExecutor
from pouw.gridws import GridWorkerPool
from pouw.jobspec import JobSpec, Tier
from pouw.queue import PRIORITY_FREE, PRIORITY_PAID, JobQueue, until_set
from pouw.receipt import Receipt
from pouw.router import WorkerDirectory
from pouw.signing import PouwKey
from pouw.store import JobStore
from pouw.tiers import AdmissionPolicy
from pouw.validator import UncheckableError, Validator
from pouw.wire import ModelCapability
from pouw.worker import JobFailedError, JobOutcome, LocalWorker, TextSink

logger = logging.getLogger(__name__)

__all__ = ["PouwRuntime", "load_or_create_key"]

KEY_FILENAME = "worker.key"
JOBS_DIRNAME = "jobs"
MEASURE_TOKENS = 16


def load_or_create_key(path: Path) -> PouwKey:
    """The node's PoUW key: 64 hex digits in `path` (mode 0600), created on first use."""
    if path.exists():
        text = path.read_text(encoding="ascii", errors="replace").strip()
        try:
            return PouwKey(bytes.fromhex(text))
        except (ValueError, PouwError) as exc:
            raise InitError(f"The PoUW key file {path} is corrupt ({exc}). Restore it from a backup; "
                            "moving it away makes a new worker identity.") from exc
    key = PouwKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.secret.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


class PouwRuntime:
    """Everything of the PoUW service that lives on the event loop."""

    def __init__(self, config: PouwConfig, pouw_dir: Path, admission: AdmissionPolicy,
                 loop: asyncio.AbstractEventLoop, *, directory: WorkerDirectory | None = None,
                 gossip: PouwGossip | None = None, tip_hash: Callable[[], bytes] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.dir = pouw_dir
        self.loop = loop
        self._tip_hash = tip_hash or (lambda: bytes(32))
        self._clock = clock
        self.key = load_or_create_key(pouw_dir / KEY_FILENAME)
        self.store = JobStore(pouw_dir / JOBS_DIRNAME)
        self.directory = directory if directory is not None else WorkerDirectory()
        self.gossip = gossip
        self.queue = JobQueue(1, max_queued=4096)
        self.admission = admission
        self.gateway = JobGateway(admission, self.queue, self.directory, self.store, self.key,
                                  job_timeout=float(config.job_timeout), clock=clock)
        if gossip is not None:
            # Peers' workers run jobs like local ones; receipts and attestations go out to the network.
            self.gateway.executor_lookup = gossip.remote_worker
            self.gateway.receipt_listeners.append(lambda spec, receipt: self._relay_receipt(receipt, spec))
            gossip.receipt_listeners.append(self._on_peer_receipt)
            gossip.attestation_listeners.append(self._on_peer_attestation)
            gossip.caps_listeners.append(lambda caps, peer: self._on_peer_worker(caps.worker_pubkey))
        slots = config.max_concurrency * max(1, len(config.models) + len(config.backends))
        self.executor = ThreadPoolExecutor(max_workers=max(4, 2 * slots), thread_name_prefix="pouw")
        self.backends: list[InferenceBackend] = []
        self.local_workers: list[LocalWorker] = []
        self.validator: Validator | None = None
        self._beacon_secret = os.urandom(32)
        self._runner: web.AppRunner | None = None
        self.grid_pool: GridWorkerPool | None = None
        self.grid_bridge: GridBridge | None = None
        self.api_endpoints: list[tuple[str, int]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle (coroutines on the node's loop) -----------------------------------------------------

    async def start(self) -> None:
        await self.loop.run_in_executor(None, self.store.open)
        try:
            await self._load_backends()
            if self.config.validator:
                scorers: dict[bytes, InferenceBackend] = {
                    w.backend_info.model_sha256: w.backend for w in self.local_workers
                    if w.backend_info.name == "llama.cpp"}
                self.validator = Validator(scorers, self.key, self.executor,
                                           rate=float(self.config.check_rate), clock=self._clock)
                self.gateway.receipt_listeners.append(
                    lambda spec, receipt: self.spawn(self.consider(spec, receipt)))
            self._update_concurrency()
            if self.gossip is not None and self.config.worker and self.local_workers:
                self.gossip.set_local_worker(self._advert(), self.run_for_peer)
            if self.config.api:
                await self._start_api()
        except BaseException:
            await self.stop()
            raise
        logger.info("PoUW: worker key %s, %d local worker(s), %d model(s)%s", self.key.pubkey.hex(),
                    len(self.local_workers), len(self.directory.models()),
                    "".join(f", API on {h}:{p}" for h, p in self.api_endpoints))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.queue.stop()
        if self.grid_pool is not None:
            await self.grid_pool.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for backend in self.backends:
            backend.close()
        self.backends.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    async def _load_backends(self) -> None:
        cfg = self.config
        threads = cfg.threads or max(1, os.cpu_count() or 1)
        for model in cfg.models:
            def load(path: Path = model.path, name: str = model.name) -> InferenceBackend:
                from pouw.backends.llamacpp import LlamaCppBackend
                return LlamaCppBackend(path, model_name=name, n_threads=threads, slots=cfg.max_concurrency)
            try:
                backend = await self.loop.run_in_executor(None, load)
            except (BackendError, OSError, ValueError) as exc:
                raise InitError(f"-pouwmodel={model.name}={model.path}: cannot load the model: "
                                f"{exc}") from exc
            await self._add_backend(backend, f"local-{model.name}")
        for spec in cfg.backends:
            def discover(url: str = spec.url, name: str | None = spec.name) -> list[InferenceBackend]:
                from pouw.backends.openai_http import OpenAIHttpBackend
                names = [name] if name else [b.info().model_name for b in OpenAIHttpBackend.discover(url)]
                return [OpenAIHttpBackend(url, model=n, max_concurrency=cfg.max_concurrency,
                                          model_sha256=unhashed_model_id(n)) for n in names]
            try:
                found = await self.loop.run_in_executor(None, discover)
            except (BackendError, OSError, ValueError) as exc:
                raise InitError(f"-pouwbackend={spec.name + '=' if spec.name else ''}openai:{spec.url}: "
                                f"{exc}") from exc
            for backend in found:
                await self._add_backend(backend, f"http-{backend.info().model_name}")

    async def _add_backend(self, backend: InferenceBackend, worker_id: str) -> None:
        self.backends.append(backend)
        # The speed a worker declares is measured at start-up (16 greedy tokens), not configured.
        try:
            speed = await self.loop.run_in_executor(None, backend.measure_tokens_per_second, MEASURE_TOKENS)
        except BackendError as exc:
            logger.warning("PoUW: could not measure %s: %s", worker_id, exc)
            speed = 0.0
        logger.info("PoUW: worker %s serves %s at %.1f tokens/s", worker_id, backend.info().model_name, speed)
        worker = LocalWorker(worker_id, backend, self.key, self.executor, trusted=True,
                             tokens_per_second=speed, clock=self._clock)
        self.local_workers.append(worker)
        if self.config.test_cheat:
            from pouw.cheat import CheatingWorker
            logger.warning("PoUW: -pouwtestcheat=%s: worker %s forges its outputs", self.config.test_cheat,
                           worker_id)
            self.gateway.add_executor(CheatingWorker(worker, self.config.test_cheat))
        else:
            self.gateway.add_executor(worker)

    def _on_peer_worker(self, pubkey: bytes) -> None:
        """A peer's worker advertised itself: trust it when the operator said so (-pouwtrustworker)."""
        if pubkey in self.config.trusted_workers:
            for info in self.directory.workers():
                if info.kind == "peer" and info.pubkey == pubkey and not info.trusted:
                    self.directory.set_trusted(info.worker_id, True)
        self._update_concurrency()

    def _add_grid_worker(self, executor: GridExecutor) -> None:
        self.gateway.add_executor(executor)
        self._update_concurrency()

    def _remove_grid_worker(self, worker_id: str) -> None:
        self.gateway.remove_executor(worker_id)
        self._update_concurrency()

    def _update_concurrency(self) -> None:
        # Workers join and leave (peers' adverts): the queue runs as many jobs as there are slots.
        slots = sum(w.max_concurrency for w in self.directory.workers())
        self.queue.set_concurrency(max(1, slots))

    async def _start_api(self) -> None:
        app = make_app(self.gateway, clock=self._clock)
        # Today's grid workers connect at /v1/workers/ws with one of this node's API keys.
        self.grid_pool = GridWorkerPool(ApiKeyGridAuth(self.admission.store))
        self.grid_pool.add_routes(app)
        self.grid_bridge = GridBridge(self.grid_pool, self.directory, self.key, self._add_grid_worker,
                                      self._remove_grid_worker)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for endpoint in self.config.api_binds:
            site = web.TCPSite(self._runner, endpoint.host, endpoint.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise InitError(f"Unable to bind the PoUW API on {endpoint} ({exc.strerror}). "
                                "Is another aipgd running, or set -pouwapiport.") from exc
        self.api_endpoints = [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    def spawn(self, coro: Any) -> None:
        """Runs `coro` in the background; it is cancelled at stop, and its failure is logged."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("PoUW background task failed: %r", t.exception())
        task.add_done_callback(done)

    # --- the network -------------------------------------------------------------------------------------

    def _advert(self) -> LocalAdvert:
        infos = [w.backend_info for w in self.local_workers]
        models = tuple(ModelCapability(i.model_name, i.model_sha256 or bytes(32), i.context_length)
                       for i in infos)
        return LocalAdvert(self.key, models, max_concurrency=sum(i.max_concurrency for i in infos),
                           tokens_per_second=max(w.worker_info.tokens_per_second for w in self.local_workers),
                           backend=infos[0].name, deterministic=all(i.deterministic for i in infos))

    async def run_for_peer(self, spec: JobSpec, stop: threading.Event,
                           on_text: TextSink | None) -> JobOutcome:
        """A peer's job on this node's own workers, through this node's queue (so the operator's
        concurrency limit holds); never forwarded again (no routing loops)."""
        local = [w for w in self._local_executors()
                 if w.worker_info.offer(spec.model.name, spec.model.sha256)]
        if not local:
            raise JobFailedError("model-mismatch", f"this worker does not serve {spec.model.name} "
                                 f"({spec.model.sha256.hex()})")
        executor = local[0]

        async def job(queue_stop: threading.Event) -> JobOutcome:
            watch = self.loop.create_task(_follow(stop, queue_stop))
            try:
                done: JobOutcome = await executor.execute(spec, queue_stop, on_text)
                return done
            finally:
                watch.cancel()

        priority = PRIORITY_PAID if spec.tier is Tier.PAID else PRIORITY_FREE
        handle = self.queue.submit(f"peer-{spec.id_hex}-{os.urandom(4).hex()}", job, priority=priority,
                                   timeout=float(self.config.job_timeout))
        outcome: JobOutcome = await handle.result()
        return outcome

    def _local_executors(self) -> list[Any]:
        return [self.gateway.executor(w.worker_id) for w in self.local_workers]

    def _relay_receipt(self, receipt: Receipt, spec: JobSpec) -> None:
        if self.gossip is not None:
            self.gossip.submit_receipt(receipt, spec)

    def _on_peer_receipt(self, receipt: Receipt, spec: JobSpec, *_: Any) -> None:
        """A receipt (and its job) from the network: kept, and re-checked when the beacon says so."""
        self.store.put_job(spec)
        self.store.put_receipt(receipt)
        if self.validator is not None:
            self.spawn(self.consider(spec, receipt))

    def _on_peer_attestation(self, attestation: object, *_: Any) -> None:
        if isinstance(attestation, Attestation):
            self.store.put_attestation(attestation)

    # --- validation ------------------------------------------------------------------------------------

    def beacon(self) -> bytes:
        """The sampling beacon: sha256(validator secret || current tip). The worker signed its receipt
        without knowing either; a later consensus version replaces it by a public block-hash beacon."""
        return hashlib.sha256(self._beacon_secret + self._tip_hash()).digest()

    async def consider(self, spec: JobSpec, receipt: Receipt, *, force: bool = False) -> Attestation | None:
        """Checks `receipt` when the beacon selects it (or `force`), storing the attestation."""
        if self.validator is None:
            return None
        beacon = self.beacon()
        if not force and not self.validator.selects(receipt, beacon):
            return None
        try:
            result = await self.validator.check(spec, receipt, beacon)
        except UncheckableError as exc:
            logger.info("PoUW: cannot check receipt %s: %s", receipt.id_hex, exc)
            return None
        self.store.put_attestation(result.attestation)
        if self.gossip is not None:
            self.gossip.submit_attestation(result.attestation)
        logger.info("PoUW: receipt %s of worker %s: %s (%s, %.0f ms)", receipt.id_hex,
                    receipt.worker_pubkey.hex()[:16], result.attestation.verdict.label, result.reason,
                    result.seconds * 1000)
        return result.attestation


async def _follow(source: threading.Event, target: threading.Event) -> None:
    """Sets `target` once `source` is set (a peer's cancel reaching the queued job)."""
    await until_set(source)
    target.set()
