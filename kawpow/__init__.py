"""KawPoW (ProgPoW 0.9.4 with Ravencoin's parameters): the proof of work of AIPG, standalone.

Owns the PoW engine and nothing else: ``hash``, ``verify``, ``search``, epoch contexts, the
optional full DAG (``kawpow.dag``) and OpenCL batch hashing (``kawpow.opencl``, needs pyopencl).
Byte conventions are documented in ``kawpow.api``. It must never import ``aipgd`` or any
node code: the node depends on this package, never the reverse.
"""

from __future__ import annotations

from kawpow.api import (
    MAX_NONCE,
    SearchResult,
    configure,
    default_contexts,
    final_hash,
    hash,
    hash_many,
    verify,
)
from kawpow.api import search as search
from kawpow.context import MAX_BLOCK_NUMBER, ContextCache, EpochContext
from kawpow.errors import KawpowError
from kawpow.ethash import EPOCH_LENGTH, epoch_seed, full_dataset_size, light_cache_size
from kawpow.progpow import PERIOD_LENGTH

__all__ = [
    "EPOCH_LENGTH",
    "MAX_BLOCK_NUMBER",
    "MAX_NONCE",
    "PERIOD_LENGTH",
    "ContextCache",
    "EpochContext",
    "KawpowError",
    "SearchResult",
    "configure",
    "default_contexts",
    "epoch_seed",
    "final_hash",
    "full_dataset_size",
    "hash",
    "hash_many",
    "light_cache_size",
    "search",
    "verify",
]
