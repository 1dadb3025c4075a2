"""EpochContext LRU: capacity, sharing of concurrent builds, background next-epoch preparation."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import kawpow
from kawpow.context import ContextCache, EpochContext


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    built: list[int] = []
    real = EpochContext.build.__func__  # type: ignore[attr-defined]

    def fake_build(cls: type[EpochContext], epoch: int, **kwargs: int) -> EpochContext:
        built.append(epoch)
        ctx = real(cls, 0, **kwargs)  # reuse epoch 0's arrays: the LRU logic is under test
        return dataclasses.replace(ctx, epoch=epoch)

    monkeypatch.setattr(EpochContext, "build", classmethod(fake_build))
    return built


def test_lru_keeps_three_by_default(counting: list[int]) -> None:
    cache = ContextCache(prefetch_window=0)
    for e in (0, 1, 2, 0, 3):
        assert cache.get(e).epoch == e
    assert cache.cached_epochs() == [2, 0, 3]  # 1 was least recently used
    cache.get(1)
    assert counting == [0, 1, 2, 3, 1]


def test_concurrent_requests_share_one_build(counting: list[int]) -> None:
    cache = ContextCache(prefetch_window=0)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(5).epoch)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [5, 5, 5, 5]
    assert counting.count(5) == 1


def test_next_epoch_prepared_near_epoch_end(counting: list[int]) -> None:
    cache = ContextCache(prefetch_window=100)
    cache.for_block(kawpow.EPOCH_LENGTH - 200)
    assert cache.cached_epochs() == [0]
    cache.for_block(kawpow.EPOCH_LENGTH - 50)
    fut = cache.prepare(1)
    if fut is not None:
        fut.result(timeout=120)
    cache.close()
    assert sorted(cache.cached_epochs()) == [0, 1]
    assert counting.count(1) == 1


def test_failed_build_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(cls: type[EpochContext], epoch: int, **kwargs: int) -> EpochContext:
        raise kawpow.KawpowError("boom")

    monkeypatch.setattr(EpochContext, "build", classmethod(boom))
    cache = ContextCache(prefetch_window=0)
    with pytest.raises(kawpow.KawpowError, match="boom"):
        cache.get(0)
    assert cache.cached_epochs() == []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(kawpow.KawpowError):
        ContextCache(0)


def test_verify_in_parallel_threads() -> None:
    # nogil kernels: several threads verify at once and all agree with the sequential answer
    cache = ContextCache(prefetch_window=0)
    header = bytes(range(32))
    proofs = [kawpow.hash(3, header, n, contexts=cache) for n in range(4)]
    ok: list[bool] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        r = kawpow.verify(3, header, proofs[n][0], n, proofs[n][1], contexts=cache)
        with lock:
            ok.append(r)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ok == [True] * 4
