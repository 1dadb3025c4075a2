"""Full DAG: hashing with it equals light hashing; the file is checksummed and rebuilt if corrupt.

The real epoch 0 DAG is 1 GiB (minutes on 2 cores), so these tests give a real epoch 0 context
a tiny dataset size: light and DAG hashing then address the same small set of items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import kawpow
from kawpow import dag
from kawpow.api import hash_with_context
from kawpow.context import ContextCache, EpochContext

TINY_ITEMS = 2063  # a prime number of 1024-bit items, like real epochs


@pytest.fixture(scope="module")
def tiny() -> Iterator[EpochContext]:
    cache = ContextCache(capacity=1, prefetch_window=0)
    yield dataclasses.replace(cache.get(0), full_dataset_num_items=TINY_ITEMS)
    cache.close()


def test_dag_items_match_light_items(tiny: EpochContext) -> None:
    from kawpow.ethash import build_l1_cache

    l1 = np.empty((64, 4, 8), dtype=np.uint64)
    build_l1_cache(tiny.light_cache, tiny.light_cache_words, l1)
    # the L1 cache is the first 16 KiB of the dataset: 128 items of 1024 bits
    assert np.array_equal(dag.compute_items(tiny, 0, 128).reshape(-1), l1.reshape(-1).view(np.uint32))


def test_dag_hash_equals_light_hash(tiny: EpochContext, tmp_path: Path) -> None:
    full = dag.load_or_build(tiny, tmp_path, progress=False, chunk_items=500)
    nonces = np.arange(2**64 - 6, 2**64, dtype=np.uint64)
    for bn in (0, 1, 7):
        light = hash_with_context(tiny, bn, bytes(range(32)), nonces)
        heavy = hash_with_context(tiny, bn, bytes(range(32)), nonces, full)
        assert np.array_equal(light[0], heavy[0]) and np.array_equal(light[1], heavy[1])


def test_dag_search_equals_light_search(tiny: EpochContext, tmp_path: Path) -> None:
    full = dag.load_or_build(tiny, tmp_path, progress=False)
    cache = ContextCache(capacity=1, prefetch_window=0)
    cache._contexts[0] = tiny  # serve the tiny context for epoch 0
    boundary = b"\x3f" + b"\xff" * 31
    assert kawpow.search(4, bytes(32), boundary, 10, 40, contexts=cache, dag=full) == kawpow.search(
        4, bytes(32), boundary, 10, 40, contexts=cache
    )


def test_dag_file_reused_and_rebuilt_when_corrupt(tiny: EpochContext, tmp_path: Path) -> None:
    first = dag.load_or_build(tiny, tmp_path, progress=True)
    good = np.array(first.items)
    mtime = first.path.stat().st_mtime_ns
    again = dag.load_or_build(tiny, tmp_path, progress=False)
    assert again.path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    with first.path.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    del first, again
    rebuilt = dag.load_or_build(tiny, tmp_path, progress=False)
    assert np.array_equal(rebuilt.items, good)
    assert not list(tmp_path.glob("*.tmp*"))


def test_dag_of_other_epoch_refused(tiny: EpochContext, tmp_path: Path) -> None:
    full = dag.load_or_build(tiny, tmp_path, progress=False)
    other = dataclasses.replace(tiny, epoch=1)
    with pytest.raises(kawpow.KawpowError, match="does not match"):
        hash_with_context(other, 7500, bytes(32), np.zeros(1, dtype=np.uint64), full)


def _spec_item_512(cache32: np.ndarray, index: int) -> np.ndarray:
    """Ethash calc_dataset_item (KawPoW: 512 parents) in plain Python, straight from the spec."""
    from kawpow.keccak import keccak512

    n = cache32.shape[0]
    mix = [int(w) for w in cache32[index % n]]
    mix[0] ^= index & 0xFFFFFFFF
    mix = list(np.frombuffer(keccak512(np.array(mix, "<u4").tobytes()), "<u4"))
    seed = index & 0xFFFFFFFF
    for j in range(512):
        parent = (((seed ^ j) * 0x01000193) ^ int(mix[j % 16])) & 0xFFFFFFFF
        row = cache32[parent % n]
        mix = [((int(m) * 0x01000193) ^ int(r)) & 0xFFFFFFFF for m, r in zip(mix, row, strict=True)]
    return np.frombuffer(keccak512(np.array(mix, "<u4").tobytes()), "<u4")


def test_pipelined_items_equal_spec(tiny: EpochContext) -> None:
    from kawpow.ethash import dataset_items_512x4

    cache32 = tiny.light_cache_words
    mix64 = np.empty((4, 8), dtype=np.uint64)
    st = np.empty(25, dtype=np.uint64)
    out = np.empty((4, 8), dtype=np.uint64)
    for first in (0, 12345, 2**32 - 2):  # the last one wraps the 32-bit seed inside the group
        dataset_items_512x4(tiny.light_cache, cache32, np.uint64(first), mix64, st, out)
        got = out.view(np.uint32).reshape(4, 16)
        for s in range(4):
            assert np.array_equal(got[s], _spec_item_512(cache32, first + s))
    # an odd start and an odd count (the parallel builder works on pairs of 1024-bit items)
    items = dag.compute_items(tiny, 7, 3)
    for i in range(3):
        j = 2 * (7 + i)
        want = np.concatenate([_spec_item_512(cache32, j), _spec_item_512(cache32, j + 1)])
        assert np.array_equal(items[i], want)
