"""The valid-signature cache (Core: script/sigcache.cpp, CachingTransactionSignatureChecker).

Owns `SignatureCache`, a bounded set of SHA256(nonce || sighash || pubkey || signature) entries
for signatures already verified (so a transaction checked for the mempool is not re-verified
in its block), and the checker that consults it. Only valid signatures are cached. The nonce
comes from the caller (the node draws it at start-up); nothing here reads a clock or RNG.
"""

from __future__ import annotations

import hashlib
import threading

from aipgd.core.transaction import Transaction
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.sighash import PrecomputedTxData
from aipgd.script.signature import verify_ecdsa

# Core: DEFAULT_MAX_SIG_CACHE_SIZE is 32 MiB, half of it for this cache; 32-byte entries.
DEFAULT_MAX_ENTRIES = (16 << 20) // 32


class SignatureCache:
    """A thread-safe bounded set; when full, the oldest entries go first.

    Core uses a cuckoo cache with random eviction; which valid entry is evicted never changes
    a verdict, only how often a signature is verified twice.
    """

    __slots__ = ("_entries", "_lock", "_max_entries", "_salted")

    def __init__(self, nonce: bytes, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if len(nonce) != 32:
            raise ValueError("the signature cache nonce is 32 bytes")
        self._salted = hashlib.sha256(nonce)
        self._entries: dict[bytes, None] = {}
        self._max_entries = max(2, max_entries)
        self._lock = threading.Lock()

    def compute_entry(self, sighash: bytes, pubkey: bytes, der: bytes) -> bytes:
        """Core: CSignatureCache::ComputeEntry (the signature without its hash-type byte)."""
        h = self._salted.copy()
        h.update(sighash)
        h.update(pubkey)
        h.update(der)
        return h.digest()

    def contains(self, entry: bytes, erase: bool) -> bool:
        """Core: Get(entry, erase). Block validation erases: a block's signatures are seen once."""
        with self._lock:
            if entry not in self._entries:
                return False
            if erase:
                del self._entries[entry]
            return True

    def insert(self, entry: bytes) -> None:
        with self._lock:
            if entry in self._entries:
                return
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[entry] = None

    def __len__(self) -> int:
        return len(self._entries)


class CachingTransactionSignatureChecker(TransactionSignatureChecker):
    """Core: CachingTransactionSignatureChecker. `store` is true for mempool acceptance."""

    __slots__ = ("cache", "store")

    def __init__(self, tx: Transaction, n_in: int, amount: int, cache: SignatureCache, store: bool,
                 txdata: PrecomputedTxData | None = None) -> None:
        super().__init__(tx, n_in, amount, txdata)
        self.cache = cache
        self.store = store

    def verify_signature(self, der: bytes, pubkey: bytes, sighash: bytes) -> bool:
        entry = self.cache.compute_entry(sighash, pubkey, der)
        if self.cache.contains(entry, not self.store):
            return True
        if not verify_ecdsa(pubkey, der, sighash):
            return False
        if self.store:
            self.cache.insert(entry)
        return True
