"""WorkerDirectory selection and run_routed retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pouw.router import ModelOffer, NoWorkerError, WorkerDirectory, WorkerInfo, WorkerLostError, run_routed

H1 = bytes([1]) * 32
H2 = bytes([2]) * 32


def worker(wid: str, *models: ModelOffer, slots: int = 1, tps: float = 10.0,
           trusted: bool = False) -> WorkerInfo:
    return WorkerInfo(wid, models, max_concurrency=slots, tokens_per_second=tps, trusted=trusted)


def directory(*workers: WorkerInfo) -> WorkerDirectory:
    d = WorkerDirectory()
    for w in workers:
        d.add(w)
    return d


def test_eligible_filters_and_orders() -> None:
    d = directory(
        worker("slow", ModelOffer("tiny", H1), tps=5),
        worker("fast", ModelOffer("tiny", H1), tps=50),
        worker("trusted", ModelOffer("tiny", H1), tps=20, trusted=True),
        worker("other-hash", ModelOffer("tiny", H2), tps=99),
        worker("other-model", ModelOffer("big", H1), tps=99),
        worker("unhashed", ModelOffer("tiny"), tps=1),
    )
    ids = [w.worker_id for w in d.eligible("tiny", H1)]
    assert ids == ["fast", "trusted", "slow", "unhashed"]  # other-hash serves H2 only
    assert [w.worker_id for w in d.eligible("tiny", H1, trusted_only=True)] == ["trusted"]
    assert [w.worker_id for w in d.eligible("tiny")] == ["other-hash", "fast", "trusted", "slow", "unhashed"]
    assert [w.worker_id for w in d.eligible("tiny", H1, exclude=["fast"])] == ["trusted", "slow", "unhashed"]
    # A busy worker drops behind idle ones, and out of the list when it has no free slot.
    d.begin("fast")
    assert [w.worker_id for w in d.eligible("tiny", H1)] == ["trusted", "slow", "unhashed"]
    d.add(worker("fast", ModelOffer("tiny", H1), slots=4, tps=50))  # update keeps its load
    assert [w.worker_id for w in d.eligible("tiny", H1)] == ["trusted", "slow", "unhashed", "fast"]
    assert d.load("fast") == (1, 0, 0)
    assert d.serves("big") and not d.serves("big", trusted_only=True) and not d.serves("huge")
    expected = {("tiny", H1), ("tiny", H2), ("big", H1), ("tiny", None)}
    assert {(m.name, m.sha256) for m in d.models()} == expected


def test_run_routed_retries_after_lost_worker() -> None:
    d = directory(worker("a", ModelOffer("tiny"), tps=30), worker("b", ModelOffer("tiny"), tps=20),
                  worker("c", ModelOffer("tiny"), tps=10))
    calls: list[str] = []

    async def attempt(w: WorkerInfo) -> str:
        calls.append(w.worker_id)
        if w.worker_id == "a":
            raise WorkerLostError("disconnected mid-job")
        return f"done by {w.worker_id}"

    result, used, lost = asyncio.run(run_routed(d, "tiny", None, attempt))
    assert (result, used.worker_id, lost, calls) == ("done by b", "b", ["a"], ["a", "b"])
    assert d.load("a") == (0, 0, 1) and d.load("b") == (0, 1, 0)


def test_run_routed_gives_up_and_propagates_job_errors() -> None:
    d = directory(worker("a", ModelOffer("tiny")), worker("b", ModelOffer("tiny")))

    async def always_lost(w: WorkerInfo) -> None:
        raise WorkerLostError("gone")

    with pytest.raises(NoWorkerError, match="lost on 2 worker"):
        asyncio.run(run_routed(d, "tiny", None, always_lost))
    with pytest.raises(NoWorkerError, match="no trusted worker serves model 'tiny'"):
        asyncio.run(run_routed(d, "tiny", None, always_lost, trusted_only=True))
    with pytest.raises(NoWorkerError, match="no worker serves model 'huge'"):
        asyncio.run(run_routed(d, "huge", None, always_lost))

    async def bad_request(w: WorkerInfo) -> None:
        raise ValueError("prompt too long for this context")

    with pytest.raises(ValueError, match="prompt too long"):
        asyncio.run(run_routed(d, "tiny", None, bad_request))
    assert d.load("a")[0] == 0 and d.load("b")[0] == 0  # slots released on every path


def test_run_routed_waits_for_a_free_slot() -> None:
    async def main() -> tuple[Any, list[str]]:
        d = directory(worker("only", ModelOffer("tiny")))
        order: list[str] = []
        release = asyncio.Event()

        async def first(w: WorkerInfo) -> str:
            order.append("first-start")
            await release.wait()
            order.append("first-end")
            return "first"

        async def second(w: WorkerInfo) -> str:
            order.append("second-start")
            return "second"

        t1 = asyncio.create_task(run_routed(d, "tiny", None, first))
        await asyncio.sleep(0.01)
        t2 = asyncio.create_task(run_routed(d, "tiny", None, second, wait_for_slot=5))
        await asyncio.sleep(0.01)
        assert order == ["first-start"]
        release.set()
        results = [(await t1)[0], (await t2)[0]]
        with pytest.raises(NoWorkerError, match="busy"):
            d.begin("only")
            await run_routed(d, "tiny", None, second, wait_for_slot=0.05)
        return results, order

    results, order = asyncio.run(main())
    assert results == ["first", "second"]
    assert order == ["first-start", "first-end", "second-start"]
