"""The block tree: every known header and the bookkeeping of chain selection (Core: mapBlockIndex,
setBlockIndexCandidates, mapBlocksUnlinked, pindexBestHeader, g_failed_blocks, setDirtyBlockIndex).

Owns building the tree from the block index records at start-up (chain work, skip pointers, chain
tx counts, candidates, best header), adding headers and block data as they arrive, the candidate
set of tips (most work first; ties keep the block whose data came first) and which entries changed
since the last write. It must never judge validity or touch disk: ChainState decides and persists.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator

from aipgd.chain.blockindex import BlockIndex, work_key
from aipgd.chain.dbwrapper import REINDEX_ADVICE, DatabaseError
from aipgd.chain.diskformat import (
    BLOCK_FAILED_CHILD,
    BLOCK_HAVE_DATA,
    BLOCK_OPT_WITNESS,
    BLOCK_VALID_TRANSACTIONS,
    BLOCK_VALID_TREE,
    DiskBlockIndex,
)
from aipgd.core.block import BlockHeader
from aipgd.core.uint256 import hash_to_hex

# Sequence ids: the chainstate's tip at start-up is 0 and every other block loaded from disk 1, so
# that a restart keeps the tip among equal-work tips; blocks whose data arrives later count from 2.
# Core gives all loaded blocks 0 and breaks their ties by memory address.
SEQUENCE_ID_LOADED = 1
FIRST_SEQUENCE_ID = 2


# A candidate's place in the order: most work first, then the lower sequence id (data received
# first), then the index object created first. Serials are unique, so keys never tie.
_CandidateKey = tuple[int, int, int]


def _candidate_key(index: BlockIndex) -> _CandidateKey:
    return (-index.chain_work, index.sequence_id, index.serial)


class CandidateSet:
    """Core: setBlockIndexCandidates, the tips chain selection may move to, kept sorted best first
    (the order of CBlockIndexWorkComparator, reversed). Each entry remembers the key it was filed
    under, so a block whose sequence id changed is still found; adding it again re-files it."""

    __slots__ = ("_filed", "_keys", "_members")

    def __init__(self) -> None:
        self._keys: list[_CandidateKey] = []  # ascending: best first
        self._filed: dict[_CandidateKey, BlockIndex] = {}
        self._members: dict[BlockIndex, _CandidateKey] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, index: object) -> bool:
        return index in self._members

    def __iter__(self) -> Iterator[BlockIndex]:
        """Best first."""
        return iter([self._filed[key] for key in self._keys])

    def add(self, index: BlockIndex) -> None:
        key = _candidate_key(index)
        old = self._members.get(index)
        if old == key:
            return
        if old is not None:
            self._remove_key(old)
        self._members[index] = key
        self._filed[key] = index
        insort(self._keys, key)

    def discard(self, index: BlockIndex) -> None:
        key = self._members.pop(index, None)
        if key is not None:
            self._remove_key(key)

    def _remove_key(self, key: _CandidateKey) -> None:
        del self._keys[bisect_left(self._keys, key)]
        del self._filed[key]

    def clear(self) -> None:
        self._keys.clear()
        self._filed.clear()
        self._members.clear()

    def best(self) -> BlockIndex | None:
        return self._filed[self._keys[0]] if self._keys else None

    def prune_worse_than(self, tip: BlockIndex) -> None:
        """Drop every entry worse than `tip` (the tip itself and anything better stay)."""
        keys = self._keys
        cut = bisect_right(keys, _candidate_key(tip))
        for key in keys[cut:]:
            del self._members[self._filed.pop(key)]
        del keys[cut:]


class BlockTree:
    def __init__(self) -> None:
        self.index: dict[bytes, BlockIndex] = {}
        self.best_header: BlockIndex | None = None
        self.best_invalid: BlockIndex | None = None
        self.candidates = CandidateSet()
        # Core: mapBlocksUnlinked, blocks with data whose parent's data (some ancestor's) is missing.
        self.unlinked: dict[BlockIndex, list[BlockIndex]] = {}
        # Core: g_failed_blocks, blocks that failed validation themselves (not as a descendant).
        self.failed_blocks: set[BlockIndex] = set()
        self.dirty: set[BlockIndex] = set()
        self._next_sequence_id = FIRST_SEQUENCE_ID
        # Core: nBlockReverseSequenceId / nLastPreciousChainwork (preciousblock).
        self.reverse_sequence_id = -1
        self.last_precious_work = 0

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self.index

    def get(self, block_hash: bytes) -> BlockIndex | None:
        return self.index.get(block_hash)

    def __iter__(self) -> Iterator[BlockIndex]:
        return iter(self.index.values())

    def mark_dirty(self, index: BlockIndex) -> None:
        self.dirty.add(index)

    def take_dirty(self) -> list[tuple[bytes, DiskBlockIndex]]:
        entries = [(i.block_hash, i.to_disk()) for i in sorted(self.dirty, key=lambda i: i.height)]
        self.dirty.clear()
        return entries

    def _update_best_header(self, index: BlockIndex) -> None:
        if index.is_valid(BLOCK_VALID_TREE) and (
                self.best_header is None or work_key(self.best_header) < work_key(index)):
            self.best_header = index

    # -- loading -------------------------------------------------------------------------------

    def load(self, records: dict[bytes, DiskBlockIndex], genesis_hash: bytes) -> None:
        """Core: LoadBlockIndexDB, less the file checks. Parents come before children (by height)."""
        ordered = sorted(records.items(), key=lambda item: (item[1].height, item[0]))
        for block_hash, record in ordered:
            prev: BlockIndex | None = None
            if block_hash != genesis_hash:
                prev = self.index.get(record.header.prev_hash)
                if prev is None or prev.height + 1 != record.height:
                    raise DatabaseError(
                        f"Block index record {hash_to_hex(block_hash)} at height {record.height} has no "
                        f"parent at height {record.height - 1} in the block index. {REINDEX_ADVICE}")
            index = BlockIndex(block_hash, record.header, prev, record.height)
            index.status = record.status
            index.tx_count = record.tx_count
            index.file = record.file
            index.data_pos = record.data_pos
            index.undo_pos = record.undo_pos
            index.sequence_id = SEQUENCE_ID_LOADED
            self.index[block_hash] = index
            if index.tx_count > 0:
                if prev is None:
                    index.chain_tx = index.tx_count
                elif prev.chain_tx:
                    index.chain_tx = prev.chain_tx + index.tx_count
                else:
                    self.unlinked.setdefault(prev, []).append(index)
            if not index.failed and prev is not None and prev.failed:
                index.status |= BLOCK_FAILED_CHILD
                self.dirty.add(index)
            if index.is_valid(BLOCK_VALID_TRANSACTIONS) and (index.chain_tx or prev is None):
                self.candidates.add(index)
            best_invalid = self.best_invalid
            if index.failed and (best_invalid is None or index.chain_work > best_invalid.chain_work):
                self.best_invalid = index
            self._update_best_header(index)

    # -- growth --------------------------------------------------------------------------------

    def add_header(self, block_hash: bytes, header: BlockHeader) -> BlockIndex:
        """Core: AddToBlockIndex. The parent must be known (or `header` is the genesis block's)."""
        existing = self.index.get(block_hash)
        if existing is not None:
            return existing
        prev = self.index.get(header.prev_hash)
        index = BlockIndex(block_hash, header, prev, 0 if prev is None else prev.height + 1)
        # The sequence id is given only when the data arrives, so withholding a block's data
        # while announcing its header wins no tie.
        index.sequence_id = 0
        index.raise_validity(BLOCK_VALID_TREE)
        self.index[block_hash] = index
        self._update_best_header(index)
        self.dirty.add(index)
        return index

    def received_transactions(self, index: BlockIndex, tx_count: int, file: int, data_pos: int,
                              active_tip: BlockIndex | None) -> None:
        """Core: ReceivedBlockTransactions (segwit is active from genesis on AIPG)."""
        index.tx_count = tx_count
        index.chain_tx = 0
        index.file = file
        index.data_pos = data_pos
        index.undo_pos = 0
        index.status |= BLOCK_HAVE_DATA | BLOCK_OPT_WITNESS
        index.raise_validity(BLOCK_VALID_TRANSACTIONS)
        self.dirty.add(index)
        if index.prev is not None and not index.prev.chain_tx:
            if index.prev.is_valid(BLOCK_VALID_TREE):
                self.unlinked.setdefault(index.prev, []).append(index)
            return
        # This block and any waiting descendants can now be connected.
        queue = [index]
        while queue:
            walk = queue.pop(0)
            walk.chain_tx = (walk.prev.chain_tx if walk.prev is not None else 0) + walk.tx_count
            self.set_sequence_id(walk, self._next_sequence_id)
            self._next_sequence_id += 1
            if active_tip is None or not work_key(walk) < work_key(active_tip):
                self.candidates.add(walk)
            queue.extend(self.unlinked.pop(walk, []))

    # -- chain selection -----------------------------------------------------------------------

    def best_candidate(self) -> BlockIndex | None:
        return self.candidates.best()

    def prune_candidates(self, tip: BlockIndex) -> None:
        """Core: PruneBlockIndexCandidates, drop candidates worse than the tip (never the tip)."""
        self.candidates.prune_worse_than(tip)

    def set_sequence_id(self, index: BlockIndex, sequence_id: int) -> None:
        """Change a block's sequence id, re-filing it among the candidates if it is one."""
        if index.sequence_id == sequence_id:
            return
        was_candidate = index in self.candidates
        self.candidates.discard(index)
        index.sequence_id = sequence_id
        if was_candidate:
            self.candidates.add(index)

    def add_candidates_at_least(self, tip: BlockIndex | None, blocks: Iterable[BlockIndex]) -> None:
        """Re-add every block that could be a tip no worse than `tip` (after invalidate/reconsider)."""
        for index in blocks:
            if index.is_valid(BLOCK_VALID_TRANSACTIONS) and index.chain_tx and (
                    tip is None or not work_key(index) < work_key(tip)):
                self.candidates.add(index)
