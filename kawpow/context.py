"""Epoch contexts: the light cache and L1 cache of one epoch, and a thread-safe LRU of them.

Owns building an ``EpochContext`` (ethash light cache + ProgPoW's 16 KiB L1 cache), the memory
limit that refuses epochs too large to build, and ``ContextCache`` (LRU, default 3 epochs, with
background preparation of the next epoch near an epoch's end). It must never hash headers:
the kernels in ``progpow.py`` take a context's arrays.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from kawpow import ethash
from kawpow.errors import KawpowError

# Ravencoin/the reference keep block numbers in a C int; larger values are refused, never wrapped.
MAX_BLOCK_NUMBER = 2**31 - 1
MAX_EPOCH = MAX_BLOCK_NUMBER // ethash.EPOCH_LENGTH
DEFAULT_MAX_LIGHT_CACHE_BYTES = 512 * 1024 * 1024  # epoch ~3900, block ~29M: decades of chain
DEFAULT_CAPACITY = 3
DEFAULT_PREFETCH_WINDOW = 750  # start building epoch e+1 in the last 10% of epoch e


def check_block_number(block_number: object) -> int:
    """``block_number`` as an int in [0, MAX_BLOCK_NUMBER], else ``KawpowError``."""
    if isinstance(block_number, bool) or not isinstance(block_number, (int, np.integer)):
        raise KawpowError(f"block_number must be an int, got {type(block_number).__name__}")
    bn = int(block_number)
    if not 0 <= bn <= MAX_BLOCK_NUMBER:
        raise KawpowError(f"block_number {bn} out of range [0, {MAX_BLOCK_NUMBER}]")
    return bn


def check_epoch(epoch: object) -> int:
    """``epoch`` as an int in [0, MAX_EPOCH], else ``KawpowError``."""
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise KawpowError(f"epoch must be an int, got {type(epoch).__name__}")
    e = int(epoch)
    if not 0 <= e <= MAX_EPOCH:
        raise KawpowError(f"epoch {e} out of range [0, {MAX_EPOCH}]")
    return e


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, slots=True)
class EpochContext:
    """Everything light verification of one epoch needs; immutable and shareable across threads.

    ``light_cache``: (items, 8) uint64, the ethash light cache as little-endian words;
    ``light_cache_words``: the same memory as (items, 16) uint32; ``l1_cache``: 4096 uint32
    words, ProgPoW's cache (the first 16 KiB of the dataset); ``full_dataset_num_items``:
    the number of 1024-bit dataset items (a prime, per the ethash spec).
    """

    epoch: int
    light_cache: np.ndarray
    light_cache_words: np.ndarray
    l1_cache: np.ndarray
    full_dataset_num_items: int

    @classmethod
    def build(cls, epoch: int, *, max_light_cache_bytes: int = DEFAULT_MAX_LIGHT_CACHE_BYTES) -> EpochContext:
        """Build the context of ``epoch`` (about 1 s at epoch 0, growing with the cache size)."""
        e = check_epoch(epoch)
        size = ethash.light_cache_size(e)
        if size > max_light_cache_bytes:
            raise KawpowError(
                f"epoch {e} needs a {size} byte light cache, over the limit of {max_light_cache_bytes} bytes"
            )
        cache = _readonly(ethash.build_light_cache(e))
        words = _readonly(cache.view(np.uint32))
        l1 = np.empty((ethash.L1_CACHE_SIZE // 256, 4, 8), dtype=np.uint64)
        ethash.build_l1_cache(cache, words, l1)
        l1_words = _readonly(l1.reshape(-1).view(np.uint32))
        return cls(e, cache, words, l1_words, ethash.full_dataset_num_items(e))

    @property
    def dataset_items_2048(self) -> int:
        """ProgPoW addresses the dataset in 256-byte items; an odd trailing 128-byte item is unused."""
        return self.full_dataset_num_items // 2

    @property
    def nbytes(self) -> int:
        return int(self.light_cache.nbytes + self.l1_cache.nbytes)


class ContextCache:
    """A thread-safe LRU of ``EpochContext`` (default 3), with next-epoch preparation.

    Concurrent requests for one epoch share a single build. With ``prefetch_window`` > 0,
    a request for a block within that many blocks of its epoch's end starts building the
    next epoch on a background thread (the kernels release the GIL, so it truly overlaps).
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        max_light_cache_bytes: int = DEFAULT_MAX_LIGHT_CACHE_BYTES,
        prefetch_window: int = DEFAULT_PREFETCH_WINDOW,
    ) -> None:
        if capacity < 1:
            raise KawpowError("capacity must be at least 1")
        self.capacity = capacity
        self.max_light_cache_bytes = max_light_cache_bytes
        self.prefetch_window = prefetch_window
        self._lock = threading.Lock()
        self._contexts: OrderedDict[int, EpochContext] = OrderedDict()
        self._building: dict[int, Future[EpochContext]] = {}
        self._executor: ThreadPoolExecutor | None = None

    def get(self, epoch: int) -> EpochContext:
        """The context of ``epoch``, built on first use (in this thread) and kept in the LRU."""
        e = check_epoch(epoch)
        with self._lock:
            ctx = self._contexts.get(e)
            if ctx is not None:
                self._contexts.move_to_end(e)
                return ctx
            fut = self._building.get(e)
            owner = fut is None
            if fut is None:
                fut = Future()
                self._building[e] = fut
        if not owner:
            return fut.result()
        try:
            ctx = EpochContext.build(e, max_light_cache_bytes=self.max_light_cache_bytes)
        except BaseException as exc:
            with self._lock:
                del self._building[e]
            fut.set_exception(exc)
            raise
        with self._lock:
            del self._building[e]
            self._contexts[e] = ctx
            while len(self._contexts) > self.capacity:
                self._contexts.popitem(last=False)
        fut.set_result(ctx)
        return ctx

    def for_block(self, block_number: int) -> EpochContext:
        """The context for ``block_number``; may start preparing the next epoch in the background."""
        bn = check_block_number(block_number)
        epoch = bn // ethash.EPOCH_LENGTH
        ctx = self.get(epoch)
        blocks_left = ethash.EPOCH_LENGTH - bn % ethash.EPOCH_LENGTH
        if self.prefetch_window > 0 and blocks_left <= self.prefetch_window:
            self.prepare(epoch + 1)
        return ctx

    def prepare(self, epoch: int) -> Future[EpochContext] | None:
        """Start building ``epoch`` in the background; None when cached or not buildable."""
        e = epoch
        if e > MAX_EPOCH or ethash.light_cache_size(e) > self.max_light_cache_bytes:
            return None
        with self._lock:
            if e in self._contexts:
                return None
            fut = self._building.get(e)
            if fut is not None:
                return fut
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kawpow-epoch")
            return self._executor.submit(self.get, e)

    def cached_epochs(self) -> list[int]:
        """Epochs held, least recently used first."""
        with self._lock:
            return list(self._contexts)

    def close(self) -> None:
        """Stop the background builder (waits for a build in progress)."""
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True)
