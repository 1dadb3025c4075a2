"""Routing jobs to workers: who can serve a model, who is trusted, who has room, and retries.

Owns `WorkerDirectory` (the workers a node knows: its own backends, workers reached through
-pouwconnect or P2P, and grid workers on the WebSocket) and `run_routed`, which runs a job on
the best eligible worker and moves it to the next one when a worker is lost mid-job. It decides
nothing about what a job's output means; that is the worker's and the validator's business.

Selection order (documented in docs/pouw-protocol.md): serves the model (name, and content hash
when the job names one); trusted if the job is paid; not already tried for this job; has a free
slot; then the least loaded (running / max_concurrency), then the fastest measured tokens/s,
then the worker id (a stable tie-break).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

__all__ = ["ModelOffer", "NoWorkerError", "WorkerDirectory", "WorkerInfo", "WorkerLostError", "run_routed"]

R = TypeVar("R")


class WorkerLostError(Exception):
    """The worker went away (disconnect, crash, backend failure) before the job finished; the job
    may be retried on another worker."""


class NoWorkerError(Exception):
    """No eligible worker serves the job (the API answers 503 with this message)."""


@dataclass(frozen=True, slots=True)
class ModelOffer:
    """A model a worker serves: its name, the sha256 of its weights file when known, its context."""

    name: str
    sha256: bytes | None = None
    context_length: int = 0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's declared capabilities; `kind` says how the node reaches it."""

    worker_id: str
    models: tuple[ModelOffer, ...]
    max_concurrency: int = 1
    tokens_per_second: float = 0.0
    trusted: bool = False
    kind: str = "local"  # local | peer | grid
    pubkey: bytes | None = None
    deterministic: bool = False

    def offer(self, model: str, sha256: bytes | None = None) -> ModelOffer | None:
        for m in self.models:
            if m.name == model and (sha256 is None or m.sha256 is None or m.sha256 == sha256):
                return m
        return None


@dataclass
class _Entry:
    info: WorkerInfo
    running: int = 0
    served: int = 0
    lost: int = 0


@dataclass
class WorkerDirectory:
    """The workers known to this node and their current load. Single-threaded (the event loop)."""

    _workers: dict[str, _Entry] = field(default_factory=dict)
    _changed: asyncio.Event | None = None

    def add(self, info: WorkerInfo) -> None:
        """Adds or updates a worker (its load is kept across an update)."""
        old = self._workers.get(info.worker_id)
        if old is None:
            self._workers[info.worker_id] = _Entry(info)
        else:
            old.info = info
        self._notify()

    def remove(self, worker_id: str) -> bool:
        removed = self._workers.pop(worker_id, None) is not None
        self._notify()
        return removed

    def set_trusted(self, worker_id: str, trusted: bool) -> None:
        entry = self._workers[worker_id]
        entry.info = replace(entry.info, trusted=trusted)

    def get(self, worker_id: str) -> WorkerInfo | None:
        entry = self._workers.get(worker_id)
        return None if entry is None else entry.info

    def workers(self) -> list[WorkerInfo]:
        return [e.info for e in self._workers.values()]

    def load(self, worker_id: str) -> tuple[int, int, int]:
        """(running, served, lost) for a known worker."""
        e = self._workers[worker_id]
        return e.running, e.served, e.lost

    def models(self) -> list[ModelOffer]:
        """Every model some worker serves, one entry per (name, sha256)."""
        seen: dict[tuple[str, bytes | None], ModelOffer] = {}
        for e in self._workers.values():
            for m in e.info.models:
                seen.setdefault((m.name, m.sha256), m)
        return list(seen.values())

    def eligible(self, model: str, sha256: bytes | None = None, *, trusted_only: bool = False,
                 exclude: Iterable[str] = ()) -> list[WorkerInfo]:
        """The workers that may take the job, best first (see the module docstring); those with
        no free slot are left out."""
        skip = set(exclude)
        ranked: list[tuple[float, float, str, WorkerInfo]] = []
        for wid, e in self._workers.items():
            info = e.info
            if wid in skip or (trusted_only and not info.trusted) or info.offer(model, sha256) is None:
                continue
            if e.running >= info.max_concurrency:
                continue
            ranked.append((e.running / info.max_concurrency, -info.tokens_per_second, wid, info))
        ranked.sort(key=lambda r: r[:3])
        return [r[3] for r in ranked]

    def serves(self, model: str, sha256: bytes | None = None, *, trusted_only: bool = False) -> bool:
        """Whether any worker (busy or not) serves the model under the constraint."""
        return any(e.info.offer(model, sha256) is not None and (e.info.trusted or not trusted_only)
                   for e in self._workers.values())

    def begin(self, worker_id: str) -> None:
        self._workers[worker_id].running += 1

    def end(self, worker_id: str, *, lost: bool = False) -> None:
        e = self._workers.get(worker_id)
        if e is None:
            return
        e.running -= 1
        if lost:
            e.lost += 1
        else:
            e.served += 1
        self._notify()

    async def wait_changed(self, timeout: float) -> None:
        """Waits until a worker is added, removed or frees a slot (or `timeout` passes)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._changed.clear()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()


async def run_routed(directory: WorkerDirectory, model: str, sha256: bytes | None,
                     attempt: Callable[[WorkerInfo], Awaitable[R]], *, trusted_only: bool = False,
                     max_attempts: int = 3, wait_for_slot: float = 30.0) -> tuple[R, WorkerInfo, list[str]]:
    """Runs `attempt` on the best eligible worker; on WorkerLostError, on the next one.

    Returns (result, the worker that produced it, the ids of the workers that were lost). Waits up
    to `wait_for_slot` seconds in all for a busy worker to free a slot; raises NoWorkerError when no
    worker serves the model at all, every eligible worker was lost, or no slot freed in time.
    """
    tried: list[str] = []
    lost: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_for_slot
    while len(lost) < max_attempts:
        if not directory.serves(model, sha256, trusted_only=trusted_only):
            raise NoWorkerError(f"no {'trusted ' if trusted_only else ''}worker serves model {model!r}")
        candidates = directory.eligible(model, sha256, trusted_only=trusted_only, exclude=tried)
        if not candidates:
            if not [w for w in directory.workers()
                    if w.worker_id not in tried and w.offer(model, sha256) is not None
                    and (w.trusted or not trusted_only)]:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoWorkerError(f"every worker serving {model!r} stayed busy for {wait_for_slot:g} s")
            await directory.wait_changed(remaining)
            continue
        worker = candidates[0]
        tried.append(worker.worker_id)
        directory.begin(worker.worker_id)
        try:
            result = await attempt(worker)
        except WorkerLostError:
            directory.end(worker.worker_id, lost=True)
            lost.append(worker.worker_id)
            continue
        except BaseException:
            directory.end(worker.worker_id)
            raise
        directory.end(worker.worker_id)
        return result, worker, lost
    raise NoWorkerError(f"the job was lost on {len(lost)} worker(s) ({', '.join(lost)}) and no other "
                        f"worker serves {model!r}")
