"""The in-memory header tree (Core: CBlockIndex, CChain in chain.h/chain.cpp).

Owns `BlockIndex` (one node per known header: parent and skip pointers, height, cumulative work,
validity status, file positions, sequence id), the active-chain vector `ActiveChain`, and the
comparisons chain selection uses (most work; ties keep the block whose data came first). It must
never touch disk or judge validity: ChainState loads, checks and persists these objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from aipgd.chain.diskformat import (
    BLOCK_FAILED_CHILD,
    BLOCK_FAILED_VALID,
    BLOCK_HAVE_DATA,
    BLOCK_HAVE_UNDO,
    BLOCK_VALID_MASK,
    BLOCK_VALID_TREE,
    DiskBlockIndex,
)
from aipgd.core.block import BlockHeader
from aipgd.core.uint256 import block_proof, hash_to_hex

BLOCK_FAILED_MASK = BLOCK_FAILED_VALID | BLOCK_FAILED_CHILD
# Core: CBlockIndex::nMedianTimeSpan.
MEDIAN_TIME_SPAN = 11

# Tie-breaker of last resort, standing in for Core's comparison of CBlockIndex addresses: among
# blocks with equal work and sequence id, the one created first wins.
_serials = itertools.count()


def _invert_lowest_one(n: int) -> int:
    return n & (n - 1)


def skip_height(height: int) -> int:
    """Core: GetSkipHeight, the height the skip pointer of a block at `height` jumps to."""
    if height < 2:
        return 0
    if height & 1:
        return _invert_lowest_one(_invert_lowest_one(height - 1)) + 1
    return _invert_lowest_one(height)


class BlockIndex:
    """Core: CBlockIndex. Satisfies aipgd.consensus.pow.HeaderLink (height, time, bits, prev)."""

    __slots__ = ("block_hash", "chain_tx", "chain_work", "data_pos", "file", "header", "height", "prev",
                 "sequence_id", "serial", "skip", "status", "time_max", "tx_count", "undo_pos")

    def __init__(self, block_hash: bytes, header: BlockHeader, prev: BlockIndex | None, height: int) -> None:
        self.block_hash = block_hash
        self.header = header
        self.prev = prev
        self.height = height
        self.skip: BlockIndex | None = None
        self.status = 0
        self.tx_count = 0
        # Core: nChainTx, nonzero once this block and all its ancestors have had their data.
        self.chain_tx = 0
        self.file = -1
        self.data_pos = 0
        self.undo_pos = 0
        # Core: nSequenceId; 0 until the block's data arrives (and for blocks loaded from disk).
        self.sequence_id = 0
        self.serial = next(_serials)
        self.chain_work: int = (prev.chain_work if prev is not None else 0) + block_proof(header.bits)
        self.time_max: int = max(prev.time_max, header.time) if prev is not None else header.time
        if prev is not None:
            self.skip = prev.get_ancestor(skip_height(height))

    def __repr__(self) -> str:
        return f"BlockIndex(height={self.height}, hash={self.hash_hex}, status=0x{self.status:x})"

    # -- HeaderLink ----------------------------------------------------------------------------

    @property
    def time(self) -> int:
        return self.header.time

    @property
    def bits(self) -> int:
        return self.header.bits

    @property
    def hash_hex(self) -> str:
        return hash_to_hex(self.block_hash)

    # -- status --------------------------------------------------------------------------------

    def is_valid(self, up_to: int = BLOCK_VALID_TREE) -> bool:
        """Core: IsValid, the block is not failed and has reached validity level `up_to`."""
        if self.status & BLOCK_FAILED_MASK:
            return False
        return (self.status & BLOCK_VALID_MASK) >= up_to

    def raise_validity(self, up_to: int) -> bool:
        """Core: RaiseValidity. True when the level changed."""
        if self.status & BLOCK_FAILED_MASK:
            return False
        if (self.status & BLOCK_VALID_MASK) < up_to:
            self.status = (self.status & ~BLOCK_VALID_MASK) | up_to
            return True
        return False

    @property
    def failed(self) -> bool:
        return bool(self.status & BLOCK_FAILED_MASK)

    @property
    def have_data(self) -> bool:
        return bool(self.status & BLOCK_HAVE_DATA)

    @property
    def have_undo(self) -> bool:
        return bool(self.status & BLOCK_HAVE_UNDO)

    # -- tree walks ----------------------------------------------------------------------------

    def get_ancestor(self, height: int) -> BlockIndex | None:
        """Core: CBlockIndex::GetAncestor, O(log n) through the skip pointers."""
        if height > self.height or height < 0:
            return None
        walk: BlockIndex = self
        walk_height = self.height
        while walk_height > height:
            h_skip = skip_height(walk_height)
            h_skip_prev = skip_height(walk_height - 1)
            if walk.skip is not None and (h_skip == height or (
                    h_skip > height and not (h_skip_prev < h_skip - 2 and h_skip_prev >= height))):
                walk = walk.skip
                walk_height = h_skip
            else:
                assert walk.prev is not None
                walk = walk.prev
                walk_height -= 1
        return walk

    def median_time_past(self) -> int:
        """Core: GetMedianTimePast, the median nTime of this block and its 10 predecessors."""
        times: list[int] = []
        walk: BlockIndex | None = self
        while walk is not None and len(times) < MEDIAN_TIME_SPAN:
            times.append(walk.header.time)
            walk = walk.prev
        times.sort()
        return times[len(times) // 2]

    def ancestors(self) -> Iterator[BlockIndex]:
        """This block, then its parent, ... down to genesis."""
        walk: BlockIndex | None = self
        while walk is not None:
            yield walk
            walk = walk.prev

    # -- persistence ---------------------------------------------------------------------------

    def to_disk(self) -> DiskBlockIndex:
        return DiskBlockIndex(self.height, self.status, self.tx_count, self.header, self.file, self.data_pos,
                              self.undo_pos)


def work_key(index: BlockIndex) -> tuple[int, int, int]:
    """Core: CBlockIndexWorkComparator as a sort key: more work is better; on a tie the lower
    sequence id (data received first) is better, then the index object created first."""
    return (index.chain_work, -index.sequence_id, -index.serial)


def last_common_ancestor(a: BlockIndex, b: BlockIndex) -> BlockIndex:
    """Core: LastCommonAncestor (both must descend from the same genesis)."""
    if a.height > b.height:
        found = a.get_ancestor(b.height)
        assert found is not None
        a = found
    elif b.height > a.height:
        found = b.get_ancestor(a.height)
        assert found is not None
        b = found
    while a is not b:
        assert a.prev is not None and b.prev is not None, "blocks from different genesis blocks"
        a, b = a.prev, b.prev
    return a


def block_proof_equivalent_time(to: BlockIndex, frm: BlockIndex, tip: BlockIndex, spacing: int) -> int:
    """Core: GetBlockProofEquivalentTime, how long the work between `frm` and `to` takes at the
    tip's difficulty, in seconds (clamped to int64)."""
    if to.chain_work > frm.chain_work:
        diff, sign = to.chain_work - frm.chain_work, 1
    else:
        diff, sign = frm.chain_work - to.chain_work, -1
    proof = block_proof(tip.bits)
    r = diff * spacing // proof if proof else 0
    if r.bit_length() > 63:
        return sign * ((1 << 63) - 1)
    return sign * r


class ActiveChain:
    """Core: CChain, the active chain as a vector indexed by height."""

    __slots__ = ("_chain",)

    def __init__(self) -> None:
        self._chain: list[BlockIndex] = []

    @property
    def tip(self) -> BlockIndex | None:
        return self._chain[-1] if self._chain else None

    @property
    def genesis(self) -> BlockIndex | None:
        return self._chain[0] if self._chain else None

    @property
    def height(self) -> int:
        """-1 when empty, as Core's CChain::Height."""
        return len(self._chain) - 1

    def __getitem__(self, height: int) -> BlockIndex | None:
        if 0 <= height < len(self._chain):
            return self._chain[height]
        return None

    def __len__(self) -> int:
        return len(self._chain)

    def contains(self, index: BlockIndex) -> bool:
        return 0 <= index.height < len(self._chain) and self._chain[index.height] is index

    def next(self, index: BlockIndex) -> BlockIndex | None:
        if self.contains(index):
            return self[index.height + 1]
        return None

    def set_tip(self, index: BlockIndex | None) -> None:
        if index is None:
            self._chain.clear()
            return
        branch: list[BlockIndex] = []
        walk: BlockIndex | None = index
        while walk is not None and not self.contains(walk):
            branch.append(walk)
            walk = walk.prev
        del self._chain[0 if walk is None else walk.height + 1:]
        self._chain.extend(reversed(branch))

    def find_fork(self, index: BlockIndex) -> BlockIndex | None:
        """Core: CChain::FindFork, the last block of this chain that `index` descends from."""
        walk: BlockIndex | None = index
        if index.height > self.height:
            walk = index.get_ancestor(self.height)
        while walk is not None and not self.contains(walk):
            walk = walk.prev
        return walk

    def locator(self, index: BlockIndex | None = None) -> list[bytes]:
        """Core: CChain::GetLocator, hashes back to genesis with exponentially growing steps."""
        walk = index if index is not None else self.tip
        step = 1
        have: list[bytes] = []
        while walk is not None:
            have.append(walk.block_hash)
            if walk.height == 0:
                break
            height = max(walk.height - step, 0)
            walk = self[height] if self.contains(walk) else walk.get_ancestor(height)
            if len(have) > 10:
                step *= 2
        return have
