"""The optional full dataset (DAG) of an epoch, for miners and fast bulk hashing.

Owns building the DAG in parallel (Numba ``prange``) from an epoch context, storing it as a
memory-mapped file (with a JSON sidecar holding a BLAKE2b checksum, checked on reuse) and
exposing it as the 2048-bit item view ProgPoW reads. It must never be required for
verification: light hashing gives identical results, and the node verifies with the light cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit, prange

from kawpow.context import EpochContext
from kawpow.errors import KawpowError
from kawpow.ethash import FULL_DATASET_ITEM_SIZE, dataset_items_512x4

_FORMAT = 1
_CHUNK_ITEMS = 1 << 15  # 1024-bit items per parallel call (4 MiB); the progress bar moves per chunk


@njit(cache=True, nogil=True, parallel=True)
def _build_items(cache64: np.ndarray, cache32: np.ndarray, start: int, out: np.ndarray) -> None:
    # Ethash spec calc_dataset_item, two 512-bit halves per 1024-bit item; items are independent.
    # Each task computes two 1024-bit items (four interleaved 512-bit chains); an odd tail's
    # extra item is computed into scratch and dropped.
    count = out.shape[0]
    for t in prange((count + 1) // 2):
        mix64 = np.empty((4, 8), dtype=np.uint64)
        st = np.empty(25, dtype=np.uint64)
        tmp = np.empty((4, 8), dtype=np.uint64)
        i = 2 * t
        dataset_items_512x4(cache64, cache32, np.uint64(start + i) * np.uint64(2), mix64, st, tmp)
        for h in range(2):
            for k in range(8):
                out[i, h, k] = tmp[h, k]
        if i + 1 < count:
            for h in range(2):
                for k in range(8):
                    out[i + 1, h, k] = tmp[2 + h, k]


def compute_items(ctx: EpochContext, start: int, count: int) -> np.ndarray:
    """1024-bit dataset items ``start .. start+count-1`` as a (count, 32) uint32 array."""
    out = np.empty((count, 2, 8), dtype=np.uint64)
    _build_items(ctx.light_cache, ctx.light_cache_words, start, out)
    return out.reshape(count, 16).view(np.uint32)


@dataclass(frozen=True, slots=True)
class FullDataset:
    """A read-only, memory-mapped DAG: ``items`` is (num_items, 32) uint32 (1024-bit items)."""

    epoch: int
    num_items: int
    path: Path
    items: np.ndarray

    @property
    def items_2048(self) -> np.ndarray:
        """The (num_items // 2, 64) uint32 view of 256-byte items that ProgPoW addresses."""
        half = self.num_items // 2
        return self.items[: half * 2].reshape(half, 64)


def _file_names(directory: Path, ctx: EpochContext) -> tuple[Path, Path]:
    stem = f"kawpow-dag-e{ctx.epoch:05d}-n{ctx.full_dataset_num_items}"
    return directory / f"{stem}.bin", directory / f"{stem}.json"


def _checksum(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _open(ctx: EpochContext, path: Path) -> FullDataset:
    mm = np.memmap(path, dtype=np.uint32, mode="r", shape=(ctx.full_dataset_num_items, 32))
    items = mm.view(np.ndarray)
    items.flags.writeable = False
    return FullDataset(ctx.epoch, ctx.full_dataset_num_items, path, items)


def _valid_on_disk(ctx: EpochContext, data: Path, meta: Path) -> bool:
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    expected = {"format": _FORMAT, "epoch": ctx.epoch, "num_items": ctx.full_dataset_num_items}
    if any(info.get(k) != v for k, v in expected.items()):
        return False
    if not data.is_file() or data.stat().st_size != ctx.full_dataset_num_items * FULL_DATASET_ITEM_SIZE:
        return False
    return bool(info.get("checksum") == _checksum(data))


def load_or_build(
    ctx: EpochContext,
    directory: str | os.PathLike[str],
    *,
    progress: bool = True,
    chunk_items: int = _CHUNK_ITEMS,
) -> FullDataset:
    """The DAG of ``ctx``'s epoch from ``directory``, built there first if missing or corrupt.

    A reused file must match its sidecar's checksum; otherwise it is rebuilt. The build writes
    to a temporary file and renames it, so an interrupted build never looks complete.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data, meta = _file_names(d, ctx)
    if _valid_on_disk(ctx, data, meta):
        return _open(ctx, data)
    n = ctx.full_dataset_num_items
    tmp = data.with_suffix(f".tmp{os.getpid()}")
    try:
        mm = np.memmap(tmp, dtype=np.uint32, mode="w+", shape=(n, 32))
        _fill(ctx, mm.view(np.ndarray), chunk_items, progress)
        mm.flush()
        del mm
        info = {"format": _FORMAT, "epoch": ctx.epoch, "num_items": n, "checksum": _checksum(tmp)}
        os.replace(tmp, data)
        meta.write_text(json.dumps(info))
    except OSError as exc:
        raise KawpowError(f"cannot write the DAG to {d}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return _open(ctx, data)


def _fill(ctx: EpochContext, out: np.ndarray, chunk_items: int, progress: bool) -> None:
    n = out.shape[0]
    starts = range(0, n, chunk_items)
    if not progress:
        for s in starts:
            out[s : s + chunk_items] = compute_items(ctx, s, min(chunk_items, n - s))
        return
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(f"KawPoW DAG epoch {ctx.epoch}", total=n)
        for s in starts:
            count = min(chunk_items, n - s)
            out[s : s + count] = compute_items(ctx, s, count)
            bar.advance(task, count)
