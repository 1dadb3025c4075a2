"""Ethash building blocks that KawPoW keeps: epoch seeds, sizes, light cache, dataset items.

Owns the ethash rules (Ethash spec, "Parameters" and "Cache/Dataset generation" sections,
with KawPoW's epoch length of 7500 blocks): the prime item counts, the light cache built
from the epoch seed, and 512/1024/2048-bit dataset items computed from the light cache.
It must never hold state between calls or pick an epoch on its own: callers pass sizes and arrays.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from kawpow.keccak import keccak256_words, keccak512_words

EPOCH_LENGTH = 7500  # KawPoW: ethash epochs of 7500 blocks (Ravencoin chainparams)
LIGHT_CACHE_ITEM_SIZE = 64  # bytes, a hash512
FULL_DATASET_ITEM_SIZE = 128  # bytes, a hash1024
LIGHT_CACHE_INIT_SIZE = 1 << 24  # Ethash spec: CACHE_BYTES_INIT
LIGHT_CACHE_GROWTH = 1 << 17  # Ethash spec: CACHE_BYTES_GROWTH
FULL_DATASET_INIT_SIZE = 1 << 30  # Ethash spec: DATASET_BYTES_INIT
FULL_DATASET_GROWTH = 1 << 23  # Ethash spec: DATASET_BYTES_GROWTH
LIGHT_CACHE_ROUNDS = 3  # Ethash spec: CACHE_ROUNDS
DATASET_PARENTS = 512  # KawPoW raised ethash's 256 to ProgPoW's 512
L1_CACHE_SIZE = 16 * 1024  # ProgPoW: PROGPOW_CACHE_BYTES, the first 16 KiB of the dataset
L1_CACHE_WORDS = L1_CACHE_SIZE // 4

FNV_PRIME = np.uint64(0x01000193)
_P32 = np.uint32(0x01000193)  # FNV_PRIME for the uint32 kernels
_U32 = np.uint32  # Numba widens uint32 arithmetic to 64 bits: wrap results back to 32
_M32 = np.uint64(0xFFFFFFFF)
_FOUR = np.uint64(4)


def _largest_prime_at_most(upper: int) -> int:
    """The largest prime <= ``upper`` by trial division (ethash keeps item counts prime)."""
    n = upper
    if n < 2:
        return 0
    if n == 2:
        return 2
    if n % 2 == 0:
        n -= 1
    while True:
        d = 3
        prime = True
        while d * d <= n:
            if n % d == 0:
                prime = False
                break
            d += 2
        if prime:
            return n
        n -= 2


@functools.lru_cache(maxsize=256)
def light_cache_num_items(epoch: int) -> int:
    """Number of 64-byte light cache items: the largest prime under the linear size bound."""
    bound = LIGHT_CACHE_INIT_SIZE // LIGHT_CACHE_ITEM_SIZE + epoch * (
        LIGHT_CACHE_GROWTH // LIGHT_CACHE_ITEM_SIZE
    )
    return _largest_prime_at_most(bound)


@functools.lru_cache(maxsize=256)
def full_dataset_num_items(epoch: int) -> int:
    """Number of 128-byte full dataset items: the largest prime under the linear size bound."""
    bound = FULL_DATASET_INIT_SIZE // FULL_DATASET_ITEM_SIZE + epoch * (
        FULL_DATASET_GROWTH // FULL_DATASET_ITEM_SIZE
    )
    return _largest_prime_at_most(bound)


def light_cache_size(epoch: int) -> int:
    """Light cache size in bytes for ``epoch``."""
    return light_cache_num_items(epoch) * LIGHT_CACHE_ITEM_SIZE


def full_dataset_size(epoch: int) -> int:
    """Full dataset (DAG) size in bytes for ``epoch``."""
    return full_dataset_num_items(epoch) * FULL_DATASET_ITEM_SIZE


@njit(cache=True, nogil=True)
def _epoch_seed_words(epoch: int) -> np.ndarray:
    # Ethash spec: seed_0 = 32 zero bytes, seed_{e+1} = keccak256(seed_e).
    seed = np.zeros(4, dtype=np.uint64)
    out = np.zeros(4, dtype=np.uint64)
    st = np.zeros(25, dtype=np.uint64)
    for _ in range(epoch):
        keccak256_words(seed, 4, out, st)
        for k in range(4):
            seed[k] = out[k]
    return seed


def epoch_seed(epoch: int) -> bytes:
    """The 32-byte epoch seed hash (what stratum sends as ``seed_hash``)."""
    return _epoch_seed_words(epoch).astype("<u8").tobytes()


@njit(cache=True, nogil=True)
def _build_light_cache(seed: np.ndarray, cache: np.ndarray) -> None:
    # Ethash spec, mkcache: a sequential keccak512 chain, then 3 rounds of RandMemoHash.
    n = cache.shape[0]
    nu = np.uint64(n)
    st = np.empty(25, dtype=np.uint64)
    tmp = np.empty(8, dtype=np.uint64)
    keccak512_words(seed, 4, cache[0], st)
    for i in range(1, n):
        keccak512_words(cache[i - 1], 8, cache[i], st)
    for _ in range(LIGHT_CACHE_ROUNDS):
        for i in range(n):
            # first index: the item's first 4 bytes as a little-endian u32; second: the previous item
            v = (cache[i, 0] & _M32) % nu
            w = (i + n - 1) % n
            for k in range(8):
                tmp[k] = cache[v, k] ^ cache[w, k]
            keccak512_words(tmp, 8, cache[i], st)


def aligned_empty(rows: int, cols: int, dtype: type[np.unsignedinteger], align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous 2-D array whose start is ``align``-byte aligned.

    Light cache rows are 64 bytes: aligned, each random parent read touches one cache line, not two.
    """
    nbytes = rows * cols * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + nbytes].view(dtype).reshape(rows, cols)


def build_light_cache(epoch: int) -> np.ndarray:
    """Build the light cache for ``epoch``: a C-contiguous ``(items, 8)`` uint64 array (LE words)."""
    seed = _epoch_seed_words(epoch)
    cache = aligned_empty(light_cache_num_items(epoch), 8, np.uint64)
    _build_light_cache(seed, cache)
    return cache


def _prefetch_typer(typingctx: object, arr: Any, index: Any) -> Any:
    """``_prefetch(a, i)``: ask the CPU to start loading the cache line of ``a[i]`` (``a`` 1-D, C order).

    A hint (LLVM ``llvm.prefetch``, read, high locality): it never faults and changes no value.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"):
        return None
    if not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])  # 1-D C-contiguous: element i is data + i
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        name = "llvm.prefetch.p0i8"  # LLVM re-mangles the suffix for opaque pointers when it parses
        fn = builder.module.globals.get(name) or ir.Function(builder.module, fnty, name)
        # arguments: address, rw = 0 (read), locality = 3 (keep in all levels), cache type = 1 (data)
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return types.void(arr, index), codegen


_prefetch: Any = intrinsic(_prefetch_typer)


@njit(cache=True, nogil=True, inline="always")
def _parent_row(seed: np.uint32, j: np.uint32, word: np.uint32, n: np.uint32) -> np.intp:
    # Ethash: parent = fnv1(seed ^ j, mix[j % 16]) % items, as the flat index of its first u32 word.
    return np.intp(_U32(_U32(_U32(seed ^ j) * _P32) ^ word) % n) * 16


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def dataset_items_512x4(
    cache64: np.ndarray,
    cache32: np.ndarray,
    first: np.uint64,
    mix64: np.ndarray,
    st: np.ndarray,
    out64: np.ndarray,
) -> None:
    """The 4 consecutive 512-bit dataset items ``first .. first+3`` into ``out64`` (4 rows of 8 u64).

    Ethash spec calc_dataset_item with KawPoW's 512 parents. Each item is a chain of dependent
    random reads of the light cache, so the four chains run interleaved and software-pipelined:
    step j+1's parent needs only one word of step j's parent row, so it is computed (and its row
    prefetched) before step j's full 16-word FNV update. The four cache misses of a step are then
    in flight together while the CPU does the previous step's arithmetic.
    ``mix64`` is (4, 8) uint64 C-contiguous scratch; ``cache32`` is the (items, 16) uint32 view.
    """
    nu = np.uint64(cache32.shape[0])
    n = _U32(cache32.shape[0])
    for s in range(4):
        idx = first + np.uint64(s)
        row = idx % nu
        for k in range(8):
            mix64[s, k] = cache64[row, k]
        mix64[s, 0] ^= idx & _M32  # the item index into the first 32-bit word
        keccak512_words(mix64[s], 8, mix64[s], st)
    m = mix64.reshape(32).view(np.uint32)  # item s is m[16s : 16s + 16]
    c = cache32.reshape(cache32.shape[0] * 16)
    s0 = _U32(first & _M32)
    s1 = _U32(s0 + _U32(1))
    s2 = _U32(s0 + _U32(2))
    s3 = _U32(s0 + _U32(3))
    b0 = _parent_row(s0, _U32(0), m[0], n)
    b1 = _parent_row(s1, _U32(0), m[16], n)
    b2 = _parent_row(s2, _U32(0), m[32], n)
    b3 = _parent_row(s3, _U32(0), m[48], n)
    for j in range(DATASET_PARENTS):
        # the next step's parents from the one word of this step's rows they depend on
        # (after the last step this computes and prefetches 4 unused rows: harmless)
        jn = _U32(j + 1)
        w = (j + 1) & 15
        n0 = _parent_row(s0, jn, _U32(m[w] * _P32) ^ c[b0 + w], n)
        n1 = _parent_row(s1, jn, _U32(m[16 + w] * _P32) ^ c[b1 + w], n)
        n2 = _parent_row(s2, jn, _U32(m[32 + w] * _P32) ^ c[b2 + w], n)
        n3 = _parent_row(s3, jn, _U32(m[48 + w] * _P32) ^ c[b3 + w], n)
        _prefetch(c, n0)
        _prefetch(c, n1)
        _prefetch(c, n2)
        _prefetch(c, n3)
        # this step's FNV-1 of every word with its parent row: (mix * FNV_PRIME) ^ parent
        for k in range(16):
            m[k] = _U32(m[k] * _P32) ^ c[b0 + k]
        for k in range(16):
            m[16 + k] = _U32(m[16 + k] * _P32) ^ c[b1 + k]
        for k in range(16):
            m[32 + k] = _U32(m[32 + k] * _P32) ^ c[b2 + k]
        for k in range(16):
            m[48 + k] = _U32(m[48 + k] * _P32) ^ c[b3 + k]
        b0 = n0
        b1 = n1
        b2 = n2
        b3 = n3
    for s in range(4):
        keccak512_words(mix64[s], 8, out64[s], st)


@njit(cache=True, nogil=True)
def dataset_item_2048(
    cache64: np.ndarray,
    cache32: np.ndarray,
    index: np.uint64,
    mix64: np.ndarray,
    st: np.ndarray,
    out64: np.ndarray,
) -> None:
    """The 2048-bit item ``index`` (ProgPoW reads the dataset in 256-byte items): 4 x 512-bit."""
    dataset_items_512x4(cache64, cache32, index * _FOUR, mix64, st, out64)


@njit(cache=True, nogil=True)
def build_l1_cache(cache64: np.ndarray, cache32: np.ndarray, out64: np.ndarray) -> None:
    """ProgPoW's L1 cache: the first 16 KiB of the dataset, as 64 items of 2048 bits.

    ``out64`` is (64, 4, 8) uint64 and is filled in dataset order.
    """
    mix64 = np.empty((4, 8), dtype=np.uint64)
    st = np.empty(25, dtype=np.uint64)
    for i in range(out64.shape[0]):
        dataset_item_2048(cache64, cache32, np.uint64(i), mix64, st, out64[i])
