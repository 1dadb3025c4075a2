"""Merkle roots of transaction lists (Core: consensus/merkle.cpp ComputeMerkleRoot).

Owns the tree hashing and the CVE-2012-2459 mutation flag: a list whose last hashes
repeat at an odd level yields the same root as the shorter list, so callers must
reject blocks where `mutated` is set. It must never see whole transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

from aipgd.core.hashes import sha256d
from aipgd.core.uint256 import ZERO_HASH


def merkle_root(leaves: Sequence[bytes]) -> tuple[bytes, bool]:
    """Return (root, mutated) for a list of 32-byte leaf hashes (internal byte order)."""
    if not leaves:
        return ZERO_HASH, False
    level = list(leaves)
    mutated = False
    while len(level) > 1:
        # Two identical siblings at any level mean the list could be extended without
        # changing the root (the duplicate-transaction attack).
        for i in range(0, len(level) - 1, 2):
            if level[i] == level[i + 1]:
                mutated = True
        if len(level) & 1:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated
