"""Garbage-collector pacing while blocks are connected (no Core counterpart: CPython only).

Connecting a block allocates hundreds of thousands of short-lived objects (transactions,
outpoints, coins, cache entries) while the coins cache holds a large, long-lived heap. At
CPython's default thresholds the collector runs every 700 allocations and walks that whole
heap often; that cost a quarter of block connection. Nothing connected here forms reference
cycles that need prompt collection, so `relaxed_gc` makes collections rarer for as long as any
thread is inside it, then puts the previous thresholds back. It changes timing, never results.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Young-generation threshold, then how many younger collections make an older one run.
RELAXED_THRESHOLDS = (100_000, 50, 100)

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Run the body with `RELAXED_THRESHOLDS` (nested and concurrent uses share one setting)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*RELAXED_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
