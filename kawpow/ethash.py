"""Ethash building blocks that KawPoW keeps: epoch seeds, sizes, light cache, dataset items.

Owns the ethash rules (Ethash spec, "Parameters" and "Cache/Dataset generation" sections,
with KawPoW's epoch length of 7500 blocks): the prime item counts, the light cache built
from the epoch seed, and 512/1024/2048-bit dataset items computed from the light cache.
It must never hold state between calls or pick an epoch on its own: callers pass sizes and arrays.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

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
_M32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
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


@njit(cache=True, nogil=True, inline="always")
def _fnv1(u: np.uint64, v: np.uint64) -> np.uint64:
    # FNV-1 as ethash uses it: (u * FNV_PRIME) ^ v on 32-bit words.
    return ((u * FNV_PRIME) ^ v) & _M32


@njit(cache=True, nogil=True)
def dataset_items_512(
    cache64: np.ndarray,
    cache32: np.ndarray,
    first: np.uint64,
    count: int,
    mix64: np.ndarray,
    mix32: np.ndarray,
    st: np.ndarray,
    out64: np.ndarray,
) -> None:
    """Compute ``count`` (<= 4) consecutive 512-bit dataset items from ``first`` into ``out64``.

    Ethash spec calc_dataset_item with KawPoW's 512 parents. The items are computed
    interleaved, since each one is a chain of dependent random reads of the light cache.
    ``mix64``/``mix32`` are one (4, 8) uint64 scratch buffer and its (4, 16) uint32 view.
    ``out64`` receives ``count`` rows of 8 uint64 words.
    """
    nu = np.uint64(cache32.shape[0])
    for s in range(count):
        idx = first + np.uint64(s)
        row = idx % nu
        for k in range(8):
            mix64[s, k] = cache64[row, k]
        mix32[s, 0] ^= idx & _M32
        keccak512_words(mix64[s], 8, mix64[s], st)
    for j in range(DATASET_PARENTS):
        ju = np.uint64(j)
        jw = j & 15
        for s in range(count):
            seed = (first + np.uint64(s)) & _M32
            parent = _fnv1(seed ^ ju, np.uint64(mix32[s, jw])) % nu
            for k in range(16):
                mix32[s, k] = _fnv1(np.uint64(mix32[s, k]), np.uint64(cache32[parent, k]))
    for s in range(count):
        keccak512_words(mix64[s], 8, out64[s], st)


@njit(cache=True, nogil=True)
def dataset_item_2048(
    cache64: np.ndarray,
    cache32: np.ndarray,
    index: np.uint64,
    mix64: np.ndarray,
    mix32: np.ndarray,
    st: np.ndarray,
    out64: np.ndarray,
) -> None:
    """The 2048-bit item ``index`` (ProgPoW reads the dataset in 256-byte items): 4 x 512-bit."""
    dataset_items_512(cache64, cache32, index * _FOUR, 4, mix64, mix32, st, out64)


@njit(cache=True, nogil=True)
def build_l1_cache(cache64: np.ndarray, cache32: np.ndarray, out64: np.ndarray) -> None:
    """ProgPoW's L1 cache: the first 16 KiB of the dataset, as 64 items of 2048 bits.

    ``out64`` is (64, 4, 8) uint64 and is filled in dataset order.
    """
    mix64 = np.empty((4, 8), dtype=np.uint64)
    mix32 = mix64.view(np.uint32)
    st = np.empty(25, dtype=np.uint64)
    for i in range(out64.shape[0]):
        dataset_item_2048(cache64, cache32, np.uint64(i), mix64, mix32, st, out64[i])
