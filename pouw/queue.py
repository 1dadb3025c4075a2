"""The job queue: admission order, the concurrency limit, per-job timeouts and cancellation.

Owns `JobQueue`. Jobs wait in one FIFO per priority class; dispatch is weighted round robin
between the non-empty classes (by default three paid jobs for every free one), so the paid tier
goes first without starving the free tier. At most `max_concurrency` jobs run at once. A job is
an async callable given a `threading.Event` that is set when the job must stop (cancelled or
timed out); backends that run in a thread poll it between tokens. Whatever a job raises is
caught and handed to its waiter: a crashing backend never takes the event loop down.

It must never hold a job's result beyond `retain` finished jobs (bounded memory), and never run
more than `max_concurrency` jobs, also while jobs are being cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRIORITY_FREE", "PRIORITY_PAID", "JobCancelledError", "JobHandle", "JobQueue", "JobState",
           "JobTimeoutError", "QueueError", "QueueFullError", "QueueStats", "until_set"]

PRIORITY_PAID = 0
PRIORITY_FREE = 1
DEFAULT_WEIGHTS = {PRIORITY_PAID: 3, PRIORITY_FREE: 1}

JobFn = Callable[[threading.Event], Awaitable[Any]]


class QueueError(Exception):
    """A job that could not be queued or did not finish."""


class QueueFullError(QueueError):
    """The queue holds `max_queued` jobs already (the API answers 503)."""


class JobCancelledError(QueueError):
    """The job was cancelled before it finished."""


class JobTimeoutError(QueueError):
    """The job ran past its timeout and was stopped."""


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass(eq=False)
class JobHandle:
    """One submitted job: its state, timings and the future its result lands in."""

    job_id: str
    priority: int
    timeout: float
    fn: JobFn
    future: asyncio.Future[Any]
    submitted: float
    stop: threading.Event = field(default_factory=threading.Event)
    state: JobState = JobState.QUEUED
    started: float | None = None
    finished: float | None = None
    task: asyncio.Task[Any] | None = None

    async def result(self) -> Any:
        """The result, or the exception the job ended with (JobCancelledError, JobTimeoutError, its own)."""
        return await asyncio.shield(self.future)

    @property
    def wait_seconds(self) -> float | None:
        return None if self.started is None else self.started - self.submitted


@dataclass(frozen=True, slots=True)
class QueueStats:
    queued: dict[int, int]
    running: int
    done: int
    failed: int
    cancelled: int
    timed_out: int
    max_concurrency: int


class JobQueue:
    """Priority classes with weighted round robin, a concurrency limit and timeouts."""

    def __init__(self, max_concurrency: int, *, max_queued: int = 1024, retain: int = 4096,
                 weights: dict[int, int] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        self.max_queued = max_queued
        self._retain = retain
        self._weights = dict(weights or DEFAULT_WEIGHTS)
        self._clock = clock
        self._waiting: dict[int, deque[JobHandle]] = {p: deque() for p in self._weights}
        self._credit: dict[int, int] = dict(self._weights)
        self._jobs: OrderedDict[str, JobHandle] = OrderedDict()
        self._finished: deque[JobHandle] = deque()
        self._running = 0
        self._counts = {state: 0 for state in JobState}
        self._closed = False

    # --- submission -------------------------------------------------------------------------------

    def submit(self, job_id: str, fn: JobFn, *, priority: int = PRIORITY_FREE,
               timeout: float = 300.0) -> JobHandle:
        """Queues `fn` under `job_id` (unique among the jobs still known) and returns its handle."""
        if self._closed:
            raise QueueError("the job queue is stopped")
        if priority not in self._waiting:
            raise ValueError(f"unknown priority class {priority}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if job_id in self._jobs and not self._jobs[job_id].state.finished:
            raise ValueError(f"job {job_id} is already queued or running")
        if self.queued >= self.max_queued:
            raise QueueFullError(f"the job queue is full ({self.max_queued} jobs waiting)")
        loop = asyncio.get_running_loop()
        handle = JobHandle(job_id, priority, timeout, fn, loop.create_future(), self._clock())
        handle.future.add_done_callback(_consume_exception)
        self._jobs[job_id] = handle
        self._jobs.move_to_end(job_id)
        self._waiting[priority].append(handle)
        self._counts[JobState.QUEUED] += 1
        self._dispatch()
        return handle

    def set_concurrency(self, max_concurrency: int) -> None:
        """Follows the number of worker slots the node can reach (workers come and go); running jobs
        above a lowered limit finish normally."""
        self.max_concurrency = max(1, max_concurrency)
        if not self._closed:
            self._dispatch()

    def get(self, job_id: str) -> JobHandle | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancels a queued or running job; False when it is unknown or already finished."""
        handle = self._jobs.get(job_id)
        if handle is None or handle.state.finished:
            return False
        handle.stop.set()
        if handle.state is JobState.QUEUED:
            self._waiting[handle.priority].remove(handle)
            self._finish(handle, JobState.CANCELLED, JobCancelledError(f"job {job_id} was cancelled"))
            return True
        assert handle.task is not None
        handle.task.cancel()
        return True

    async def stop(self) -> None:
        """Cancels everything and waits for the running jobs to unwind."""
        self._closed = True
        tasks = [h.task for h in self._jobs.values() if h.task is not None and not h.task.done()]
        for job_id in [j for j, h in self._jobs.items() if not h.state.finished]:
            self.cancel(job_id)
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # --- introspection ----------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def stats(self) -> QueueStats:
        c = self._counts
        return QueueStats({p: len(q) for p, q in self._waiting.items()}, self._running,
                          c[JobState.DONE], c[JobState.FAILED], c[JobState.CANCELLED],
                          c[JobState.TIMED_OUT], self.max_concurrency)

    # --- dispatch ---------------------------------------------------------------------------------

    def _next(self) -> JobHandle | None:
        """Weighted round robin: each class spends a credit per dispatch; credits refill when every
        class that has work is out of them. A class whose queue runs empty starts afresh next time
        (no debt carried over from a time it had the workers to itself)."""
        busy = [p for p in sorted(self._waiting) if self._waiting[p]]
        if not busy:
            return None
        chosen = next((p for p in busy if self._credit[p] > 0), None)
        if chosen is None:
            self._credit = dict(self._weights)
            chosen = busy[0]
        self._credit[chosen] -= 1
        handle = self._waiting[chosen].popleft()
        if not self._waiting[chosen]:
            self._credit[chosen] = self._weights[chosen]
        return handle

    def _dispatch(self) -> None:
        while self._running < self.max_concurrency:
            handle = self._next()
            if handle is None:
                return
            self._running += 1
            self._counts[JobState.QUEUED] -= 1
            self._counts[JobState.RUNNING] += 1
            handle.state = JobState.RUNNING
            handle.started = self._clock()
            handle.task = asyncio.get_running_loop().create_task(
                self._run(handle), name=f"pouw-job-{handle.job_id}")
            handle.task.add_done_callback(functools.partial(self._reap, handle))

    async def _run(self, handle: JobHandle) -> None:
        try:
            result = await asyncio.wait_for(handle.fn(handle.stop), handle.timeout)
        except TimeoutError:
            handle.stop.set()
            self._finish(handle, JobState.TIMED_OUT,
                         JobTimeoutError(f"job {handle.job_id} ran past its {handle.timeout:g} s timeout"))
        except asyncio.CancelledError:
            handle.stop.set()
            self._finish(handle, JobState.CANCELLED, JobCancelledError(f"job {handle.job_id} was cancelled"))
        except Exception as exc:  # a job's own failure goes to its waiter, never to the loop
            self._finish(handle, JobState.FAILED, exc)
        else:
            self._finish(handle, JobState.DONE, None, result)

    def _reap(self, handle: JobHandle, _task: asyncio.Task[Any]) -> None:
        # A task cancelled before its first step never runs `_run`, so nothing finished the job.
        if not handle.state.finished:
            handle.stop.set()
            self._finish(handle, JobState.CANCELLED, JobCancelledError(f"job {handle.job_id} was cancelled"))

    def _finish(self, handle: JobHandle, state: JobState, error: BaseException | None,
                result: Any = None) -> None:
        was = handle.state
        self._counts[was] -= 1
        self._counts[state] += 1
        handle.state = state
        handle.finished = self._clock()
        if was is JobState.RUNNING:
            self._running -= 1
        if not handle.future.done():
            if error is None:
                handle.future.set_result(result)
            else:
                handle.future.set_exception(error)
        self._finished.append(handle)
        while len(self._finished) > self._retain:
            old = self._finished.popleft()
            if self._jobs.get(old.job_id) is old:
                del self._jobs[old.job_id]
        if not self._closed:
            self._dispatch()


async def until_set(event: threading.Event, interval: float = 0.05) -> None:
    """Returns once `event` (a job's stop event, set from any thread) is set; polls, since a
    threading.Event cannot be awaited."""
    while not event.is_set():
        await asyncio.sleep(interval)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # A job nobody awaited must not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()
