"""JobQueue: weighted priority order, the concurrency limit, timeouts, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from pouw.queue import (
    PRIORITY_FREE,
    PRIORITY_PAID,
    JobCancelledError,
    JobQueue,
    JobState,
    JobTimeoutError,
    QueueFullError,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def settle() -> None:
    """Lets every ready task take its steps (a job starts two loop iterations after dispatch)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Gate:
    """Jobs that wait for the test to release them, recording the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.events: dict[str, asyncio.Event] = {}
        self.concurrent = 0
        self.peak = 0

    def job(self, name: str, result: object = None):  # type: ignore[no-untyped-def]
        self.events[name] = asyncio.Event()

        async def fn(stop: threading.Event) -> object:
            self.started.append(name)
            self.concurrent += 1
            self.peak = max(self.peak, self.concurrent)
            try:
                await self.events[name].wait()
            finally:
                self.concurrent -= 1
            return result if result is not None else name
        return fn


def test_weighted_round_robin_order_and_concurrency_limit() -> None:
    async def main() -> tuple[list[str], int]:
        gate = Gate()
        q = JobQueue(1)
        handles = [q.submit("first", gate.job("first"), priority=PRIORITY_FREE)]
        for i in range(4):
            handles.append(q.submit(f"free{i}", gate.job(f"free{i}"), priority=PRIORITY_FREE))
        for i in range(7):
            handles.append(q.submit(f"paid{i}", gate.job(f"paid{i}"), priority=PRIORITY_PAID))
        for _ in range(len(handles)):
            await settle()
            name = gate.started[-1]
            gate.events[name].set()
            await q.get(name).result()  # type: ignore[union-attr]
        return gate.started, gate.peak

    started, peak = run(main())
    assert peak == 1
    # "first" ran at once; then three paid for every free one, FIFO within each class.
    assert started == ["first", "paid0", "paid1", "paid2", "free0", "paid3", "paid4", "paid5", "free1",
                       "paid6", "free2", "free3"]


def test_concurrency_limit_holds_with_many_jobs() -> None:
    async def main() -> tuple[int, list[object]]:
        gate = Gate()
        q = JobQueue(3)
        handles = [q.submit(f"j{i}", gate.job(f"j{i}", i), priority=PRIORITY_PAID if i % 2 else PRIORITY_FREE)
                   for i in range(20)]
        assert q.running == 3 and q.queued == 17
        for _ in range(20):
            await settle()
            running = [n for n in gate.started if not gate.events[n].is_set()]
            assert 1 <= len(running) <= 3
            gate.events[running[0]].set()
        results = [await h.result() for h in handles]
        return gate.peak, results

    peak, results = run(main())
    assert peak == 3
    assert results == list(range(20))


def test_timeout_sets_stop_and_reports() -> None:
    async def main() -> tuple[JobState, bool, bool]:
        seen = threading.Event()
        q = JobQueue(1)

        async def slow(stop: threading.Event) -> None:
            await asyncio.sleep(30)

        async def quick(stop: threading.Event) -> str:
            seen.set()
            return "ok"

        h = q.submit("slow", slow, timeout=0.05)
        h2 = q.submit("quick", quick)
        with pytest.raises(JobTimeoutError, match="timeout"):
            await h.result()
        assert await h2.result() == "ok"
        return h.state, h.stop.is_set(), seen.is_set()

    state, stopped, quick_ran = run(main())
    assert state is JobState.TIMED_OUT and stopped and quick_ran


def test_cancel_queued_and_running() -> None:
    async def main() -> dict[str, Any]:
        gate = Gate()
        q = JobQueue(1)
        running = q.submit("running", gate.job("running"))
        waiting = q.submit("waiting", gate.job("waiting"))
        after = q.submit("after", gate.job("after"))
        await settle()
        assert q.cancel("waiting") is True
        assert q.cancel("running") is True
        with pytest.raises(JobCancelledError):
            await waiting.result()
        with pytest.raises(JobCancelledError):
            await running.result()
        await settle()
        gate.events["after"].set()
        out = {"after": await after.result(), "started": list(gate.started),
               "states": (running.state, waiting.state), "stop": running.stop.is_set(),
               "again": q.cancel("running"), "unknown": q.cancel("nope"), "stats": q.stats()}
        return out

    out = run(main())
    assert out["after"] == "after"
    assert out["started"] == ["running", "after"]  # the cancelled queued job never started
    assert out["states"] == (JobState.CANCELLED, JobState.CANCELLED)
    assert out["stop"] is True and out["again"] is False and out["unknown"] is False
    assert out["stats"].cancelled == 2 and out["stats"].done == 1 and out["stats"].running == 0


def test_failing_job_reaches_its_waiter_only() -> None:
    async def main() -> tuple[str, str, JobState]:
        q = JobQueue(2)

        async def crash(stop: threading.Event) -> None:
            raise RuntimeError("backend crashed")

        async def fine(stop: threading.Event) -> str:
            return "fine"

        bad = q.submit("bad", crash)
        good = q.submit("good", fine)
        with pytest.raises(RuntimeError) as info:
            await bad.result()
        q.submit("unawaited", crash)  # nobody awaits it: no "never retrieved" warning, no crash
        await asyncio.sleep(0.01)
        return str(info.value), await good.result(), bad.state

    msg, good, state = run(main())
    assert msg == "backend crashed" and good == "fine" and state is JobState.FAILED


def test_queue_full_and_bad_arguments() -> None:
    async def main() -> None:
        gate = Gate()
        q = JobQueue(1, max_queued=2)
        q.submit("a", gate.job("a"))
        q.submit("b", gate.job("b"))
        q.submit("c", gate.job("c"))
        with pytest.raises(QueueFullError, match="full"):
            q.submit("d", gate.job("d"))
        with pytest.raises(ValueError, match="already"):
            q.submit("b", gate.job("b2"))
        with pytest.raises(ValueError, match="priority"):
            q.submit("e", gate.job("e"), priority=7)
        await q.stop()
        assert all(q.get(n).state is JobState.CANCELLED for n in "abc")  # type: ignore[union-attr]

    run(main())
    with pytest.raises(ValueError):
        JobQueue(0)


def test_finished_jobs_are_forgotten_beyond_retain() -> None:
    async def main() -> tuple[int, bool, bool]:
        q = JobQueue(4, retain=10)

        async def fn(stop: threading.Event) -> int:
            return 1

        handles = [q.submit(f"j{i}", fn) for i in range(50)]
        for h in handles:
            await h.result()
        await asyncio.sleep(0)
        return len(q._jobs), q.get("j0") is None, q.get("j49") is not None

    count, old_gone, new_kept = run(main())
    assert count == 10 and old_gone and new_kept
