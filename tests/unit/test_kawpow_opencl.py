"""OpenCL kernels give exactly the Numba results (on pocl in CI, on a GPU when present)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("pyopencl", reason="pyopencl (the gpu extra) is not installed")

from kawpow import opencl
from kawpow.api import hash_with_context
from kawpow.context import ContextCache, EpochContext

REASON = opencl.available()
pytestmark = [
    pytest.mark.opencl,
    pytest.mark.skipif(REASON is not None, reason=f"no OpenCL device: {REASON}"),
]


@pytest.fixture(scope="module")
def ctx() -> Iterator[EpochContext]:
    cache = ContextCache(capacity=1, prefetch_window=0)
    yield cache.get(0)
    cache.close()


@pytest.fixture(scope="module")
def hasher(ctx: EpochContext) -> opencl.OpenCLHasher:
    return opencl.OpenCLHasher(ctx)


def test_64_random_inputs_equal_numba(ctx: EpochContext, hasher: opencl.OpenCLHasher) -> None:
    rng = random.Random(20240607)
    for _ in range(4):  # 4 headers x 16 nonces, random periods of epoch 0
        bn = rng.randrange(7500)
        header = rng.randbytes(32)
        nonces = np.array([rng.getrandbits(64) for _ in range(16)], dtype=np.uint64)
        cl_mix, cl_final = hasher.hash_words(bn, header, nonces)
        nb_mix, nb_final = hash_with_context(ctx, bn, header, nonces)
        assert np.array_equal(cl_mix, nb_mix.astype(np.uint32))
        assert np.array_equal(cl_final, nb_final.astype(np.uint32))


def test_reference_fact_on_opencl(hasher: opencl.OpenCLHasher) -> None:
    [(mix, final)] = hasher.hash(0, bytes(32), [0])
    assert mix.hex() == "6e97b47b134fda0c7888802988e1a373affeb28bcd813b6e9a0fc669c935d03a"
    assert final.hex() == "e601a7257a70dc48fccc97a7330d704d776047623b92883d77111fb36870f3d1"


def test_search_equals_numba_search(ctx: EpochContext, hasher: opencl.OpenCLHasher) -> None:
    import kawpow

    cache = ContextCache(capacity=1, prefetch_window=0)
    cache._contexts[0] = ctx
    boundary = b"\x1f" + b"\xff" * 31
    want = kawpow.search(2, bytes(32), boundary, 100, 32, contexts=cache)
    assert want is not None
    assert hasher.search(2, bytes(32), boundary, 100, 32) == want
    assert hasher.search(2, bytes(32), bytes(32), 100, 8) is None


def test_device_dag_hash_equals_light_hash(ctx: EpochContext) -> None:
    tiny = dataclasses.replace(ctx, full_dataset_num_items=2063)
    with_dag = opencl.OpenCLHasher(tiny, use_dag=True)
    nonces = np.arange(8, dtype=np.uint64)
    got = with_dag.hash_words(5, bytes(range(32)), nonces)
    want = hash_with_context(tiny, 5, bytes(range(32)), nonces)
    assert np.array_equal(got[0], want[0].astype(np.uint32))
    assert np.array_equal(got[1], want[1].astype(np.uint32))


@pytest.fixture(scope="module")
def tiny_dag(ctx: EpochContext) -> tuple[EpochContext, opencl.OpenCLHasher]:
    tiny = dataclasses.replace(ctx, full_dataset_num_items=2063)
    return tiny, opencl.OpenCLHasher(tiny, use_dag=True)


def test_period_kernels_64_inputs_equal_numba(tiny_dag: tuple[EpochContext, opencl.OpenCLHasher]) -> None:
    tiny, hasher = tiny_dag
    assert hasher.period_kernels  # the default with a device DAG
    rng = random.Random(99)
    for k in (17, 1, 30, 16):  # 64 inputs over 4 periods; counts that are not group multiples
        bn = rng.randrange(7500)
        header = rng.randbytes(32)
        nonces = np.array([rng.getrandbits(64) for _ in range(k)], dtype=np.uint64)
        got = hasher.hash_words(bn, header, nonces)
        want = hash_with_context(tiny, bn, header, nonces)
        assert np.array_equal(got[0], want[0].astype(np.uint32))
        assert np.array_equal(got[1], want[1].astype(np.uint32))


def test_period_search_equals_numba_search(tiny_dag: tuple[EpochContext, opencl.OpenCLHasher]) -> None:
    import kawpow

    tiny, hasher = tiny_dag
    cache = ContextCache(capacity=1, prefetch_window=0)
    cache._contexts[0] = tiny
    boundary = b"\x1f" + b"\xff" * 31
    want = kawpow.search(2, bytes(32), boundary, 2**64 - 20, 40, contexts=cache)  # wraps past 2**64
    assert want is not None
    assert hasher.search(2, bytes(32), boundary, 2**64 - 20, 40) == want
    assert hasher.search(2, bytes(32), bytes(32), 100, 8) is None


def test_generic_dag_kernel_still_equals_numba(tiny_dag: tuple[EpochContext, opencl.OpenCLHasher]) -> None:
    tiny, hasher = tiny_dag
    nonces = np.arange(5, dtype=np.uint64)
    hasher.period_kernels = False
    try:
        got = hasher.hash_words(4, bytes(range(32)), nonces)
    finally:
        hasher.period_kernels = True
    want = hash_with_context(tiny, 4, bytes(range(32)), nonces)
    assert np.array_equal(got[0], want[0].astype(np.uint32))
    assert np.array_equal(got[1], want[1].astype(np.uint32))


def test_period_source_is_the_program() -> None:
    from kawpow import opencl_kernel, progpow

    a, b = progpow.Program(0), progpow.Program(1)
    src_a = opencl_kernel.period_kernel_source(a.cache_ops, a.math_ops, a.dag_ops, 64)
    src_b = opencl_kernel.period_kernel_source(b.cache_ops, b.math_ops, b.dag_ops, 64)
    assert src_a != src_b and "#define GROUP_SIZE 64" in src_a
    assert "mix[0] = rotate(mix[0], 15u) ^ d.s0;" in src_a  # period 0's first DAG merge
    with pytest.raises(ValueError, match="multiple of 16"):
        opencl_kernel.period_kernel_source(a.cache_ops, a.math_ops, a.dag_ops, 24)


def test_bad_device_name_is_clear() -> None:
    with pytest.raises(opencl.KawpowError, match="not found"):
        opencl.select_device("99:99")
