"""Partial merkle trees (Core: merkleblock.cpp): build/extract round trips, serialization, malformed trees."""

from __future__ import annotations

import itertools

from aipgd.core.hashes import sha256d
from aipgd.core.merkle import merkle_root
from aipgd.core.merkleblock import PartialMerkleTree
from aipgd.core.serialize import ByteReader


def _txids(n: int) -> list[bytes]:
    return [sha256d(i.to_bytes(4, "little")) for i in range(n)]


def test_every_subset_round_trips_with_the_block_root() -> None:
    for n in (1, 2, 3, 5, 7, 9):
        txids = _txids(n)
        root, _ = merkle_root(txids)
        for mask in itertools.product((False, True), repeat=n):
            tree = PartialMerkleTree.build(txids, list(mask))
            again = PartialMerkleTree.read(ByteReader(tree.serialize()))
            extracted = again.extract_matches()
            assert extracted is not None
            assert extracted[0] == root
            assert extracted[1] == [t for t, m in zip(txids, mask, strict=True) if m]
            assert extracted[2] == [i for i, m in enumerate(mask) if m]


def test_malformed_trees_are_rejected() -> None:
    txids = _txids(4)
    tree = PartialMerkleTree.build(txids, [True, False, False, True])
    assert PartialMerkleTree(0, (), ()).extract_matches() is None
    assert PartialMerkleTree(tree.n_transactions, tree.hashes[:-1], tree.bits).extract_matches() is None
    extra_hash = (*tree.hashes, bytes(32))
    assert PartialMerkleTree(tree.n_transactions, extra_hash, tree.bits).extract_matches() is None


def test_duplicated_right_branch_is_rejected() -> None:
    """CVE-2012-2459: a tree whose two children hash equal is refused."""
    txids = _txids(2)
    same = [txids[0], txids[0]]
    tree = PartialMerkleTree.build(same, [True, True])
    assert tree.extract_matches() is None
