"""The public KawPoW calls: hash, verify, search (and a batch hash), with input checking.

Owns argument validation and the byte conventions. ``header_hash``, ``mix_hash`` and
``final_hash`` are 32-byte ``bytes`` in the order the reference prints them (each 32-bit
word little-endian, the order of Ravencoin's ``uint256`` memory). ``boundary`` is 32 bytes
big-endian: a proof is valid when ``int.from_bytes(final_hash, "big") <= int.from_bytes(boundary, "big")``.
It must never build contexts itself (``ContextCache`` does) nor decide chain validity.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kawpow import progpow
from kawpow.context import ContextCache, EpochContext, check_block_number
from kawpow.errors import KawpowError

if TYPE_CHECKING:
    from kawpow.dag import FullDataset

MAX_NONCE = 2**64 - 1

_default_lock = threading.Lock()
_default: ContextCache | None = None
_NO_DAG = np.empty((0, progpow.ITEM_WORDS), dtype=np.uint32)
_NO_DAG.flags.writeable = False


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A nonce whose final hash is within the boundary, with its mix and final hashes."""

    nonce: int
    mix_hash: bytes
    final_hash: bytes


def default_contexts() -> ContextCache:
    """The process-wide context cache used when no ``contexts`` argument is given."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ContextCache()
        return _default


def configure(
    *,
    capacity: int = 3,
    max_light_cache_bytes: int | None = None,
    prefetch_window: int | None = None,
) -> ContextCache:
    """Replace the process-wide context cache (e.g. to change the LRU size or the memory limit)."""
    global _default
    kwargs: dict[str, int] = {}
    if max_light_cache_bytes is not None:
        kwargs["max_light_cache_bytes"] = max_light_cache_bytes
    if prefetch_window is not None:
        kwargs["prefetch_window"] = prefetch_window
    new = ContextCache(capacity, **kwargs)
    with _default_lock:
        old, _default = _default, new
    if old is not None:
        old.close()
    return new


def _bytes32(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise KawpowError(f"{name} must be 32 bytes, got {type(value).__name__}")
    b = bytes(value)
    if len(b) != 32:
        raise KawpowError(f"{name} must be 32 bytes, got {len(b)}")
    return b


def _nonce(value: object, name: str = "nonce") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise KawpowError(f"{name} must be an int, got {type(value).__name__}")
    n = int(value)
    if not 0 <= n <= MAX_NONCE:
        raise KawpowError(f"{name} {n} out of range [0, 2**64)")
    return n


def _le_words(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<u4").astype(np.uint64)


def _be_words(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=">u4").astype(np.uint64)


def _to_bytes(words: np.ndarray) -> bytes:
    return words.astype("<u4").tobytes()


def _context(block_number: int, contexts: ContextCache | None) -> EpochContext:
    return (contexts or default_contexts()).for_block(block_number)


def _dag_items(ctx: EpochContext, dag: FullDataset | None) -> np.ndarray:
    if dag is None:
        return _NO_DAG
    if dag.epoch != ctx.epoch or dag.num_items != ctx.full_dataset_num_items:
        raise KawpowError(f"DAG of epoch {dag.epoch} does not match the context of epoch {ctx.epoch}")
    return dag.items_2048


def hash_with_context(
    ctx: EpochContext,
    block_number: int,
    header_hash: bytes,
    nonces: np.ndarray,
    dag: FullDataset | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Low-level batch hash on a given context: (mix words, final words), each (len(nonces), 8)."""
    prog = progpow.program_for_block(block_number)
    mix = np.empty((nonces.shape[0], 8), dtype=np.uint64)
    final = np.empty((nonces.shape[0], 8), dtype=np.uint64)
    progpow.hash_batch(
        ctx.light_cache, ctx.light_cache_words, ctx.l1_cache, _dag_items(ctx, dag),
        np.uint64(ctx.dataset_items_2048), prog.cache_ops, prog.math_ops, prog.dag_ops,
        _le_words(header_hash), nonces.astype(np.uint64), mix, final,
    )  # fmt: skip
    return mix, final


def hash(
    block_number: int,
    header_hash: bytes,
    nonce: int,
    *,
    contexts: ContextCache | None = None,
    dag: FullDataset | None = None,
) -> tuple[bytes, bytes]:
    """KawPoW of (block_number, header_hash, nonce): returns ``(mix_hash, final_hash)``."""
    bn = check_block_number(block_number)
    hh = _bytes32("header_hash", header_hash)
    n = _nonce(nonce)
    ctx = _context(bn, contexts)
    mix, final = hash_with_context(ctx, bn, hh, np.array([n], dtype=np.uint64), dag)
    return _to_bytes(mix[0]), _to_bytes(final[0])


def hash_many(
    block_number: int,
    header_hash: bytes,
    nonces: list[int],
    *,
    contexts: ContextCache | None = None,
    dag: FullDataset | None = None,
) -> list[tuple[bytes, bytes]]:
    """``hash`` for several nonces of one header, in one GIL-free call."""
    bn = check_block_number(block_number)
    hh = _bytes32("header_hash", header_hash)
    ns = np.array([_nonce(n) for n in nonces], dtype=np.uint64)
    ctx = _context(bn, contexts)
    mix, final = hash_with_context(ctx, bn, hh, ns, dag)
    return [(_to_bytes(mix[i]), _to_bytes(final[i])) for i in range(ns.shape[0])]


def final_hash(header_hash: bytes, mix_hash: bytes, nonce: int) -> bytes:
    """The final hash implied by a claimed mix (no dataset needed; Ravencoin's light_verify step)."""
    hh = _bytes32("header_hash", header_hash)
    mh = _bytes32("mix_hash", mix_hash)
    st = np.empty(25, dtype=np.uint64)
    progpow.keccak_seed_and_final(_le_words(hh), np.uint64(_nonce(nonce)), _le_words(mh), st)
    return _to_bytes(st[:8])


def verify(
    block_number: int,
    header_hash: bytes,
    mix_hash: bytes,
    nonce: int,
    boundary: bytes,
    *,
    contexts: ContextCache | None = None,
) -> bool:
    """True when the claimed ``mix_hash`` is KawPoW's and the final hash is <= ``boundary``.

    The final hash is first computed from the claimed mix (two Keccak-f[800], no dataset),
    and compared with the boundary; only then is the mix recomputed (Ravencoin's order).
    """
    bn = check_block_number(block_number)
    hh = _bytes32("header_hash", header_hash)
    mh = _bytes32("mix_hash", mix_hash)
    bd = _bytes32("boundary", boundary)
    n = _nonce(nonce)
    if final_hash(hh, mh, n) > bd:  # equal-length bytes compare as big-endian numbers
        return False
    ctx = _context(bn, contexts)
    prog = progpow.program_for_block(bn)
    return bool(
        progpow.verify_words(
            ctx.light_cache, ctx.light_cache_words, ctx.l1_cache, _NO_DAG, np.uint64(ctx.dataset_items_2048),
            prog.cache_ops, prog.math_ops, prog.dag_ops, _le_words(hh), np.uint64(n), _le_words(mh),
            _be_words(bd),
        )
    )


def search(
    block_number: int,
    header_hash: bytes,
    boundary: bytes,
    start_nonce: int,
    iterations: int,
    *,
    contexts: ContextCache | None = None,
    dag: FullDataset | None = None,
) -> SearchResult | None:
    """Mine: the first nonce in ``[start_nonce, start_nonce + iterations)`` (mod 2**64) within boundary.

    Uses the full DAG when given (fast), else the light cache (slow, for tests and regtest).
    """
    bn = check_block_number(block_number)
    hh = _bytes32("header_hash", header_hash)
    bd = _bytes32("boundary", boundary)
    start = _nonce(start_nonce, "start_nonce")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise KawpowError("iterations must be a non-negative int")
    ctx = _context(bn, contexts)
    prog = progpow.program_for_block(bn)
    mix = np.empty(8, dtype=np.uint64)
    final = np.empty(8, dtype=np.uint64)
    found = progpow.search_range(
        ctx.light_cache, ctx.light_cache_words, ctx.l1_cache, _dag_items(ctx, dag),
        np.uint64(ctx.dataset_items_2048), prog.cache_ops, prog.math_ops, prog.dag_ops,
        _le_words(hh), np.uint64(start), int(iterations), _be_words(bd), mix, final,
    )  # fmt: skip
    if found < 0:
        return None
    return SearchResult((start + found) & MAX_NONCE, _to_bytes(mix), _to_bytes(final))
