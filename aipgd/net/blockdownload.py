"""Which blocks to ask a peer for next (Core: FindNextBlocksToDownload).

Owns the moving download window: from the last block we share with the peer, up to
BLOCK_DOWNLOAD_WINDOW blocks along the peer's best known chain, skipping what we have, what is in
flight and what is being validated, and naming the peer that holds the window up when nothing in it
is left to ask for. It must never send messages or change what is in flight: BlockSync does.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import TYPE_CHECKING

from aipgd.chain.blockindex import last_common_ancestor
from aipgd.chain.diskformat import BLOCK_VALID_TREE
from aipgd.net.syncstate import BLOCK_DOWNLOAD_WINDOW

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.net.chainview import SyncChainView
    from aipgd.net.syncstate import PeerSyncState


def find_next_blocks(chain: SyncChainView, st: PeerSyncState, peer_id: int, count: int,
                     in_flight: Mapping[bytes, int], validating: Container[bytes],
                     window: int = BLOCK_DOWNLOAD_WINDOW) -> tuple[list[BlockIndex], int | None]:
    """Up to `count` blocks for this peer, and the id of the peer stalling the window (or None)."""
    best = st.best_known_block
    tip = chain.tip()
    if best is None or tip is None or best.chain_work < tip.chain_work:
        return [], None
    if st.last_common_block is None:
        st.last_common_block = chain.at_height(min(best.height, tip.height))
        if st.last_common_block is None:
            return [], None
    st.last_common_block = last_common_ancestor(st.last_common_block, best)
    if st.last_common_block is best:
        return [], None
    window_end = st.last_common_block.height + window
    max_height = min(best.height, window_end + 1)
    out: list[BlockIndex] = []
    waiting_for: int | None = None
    walk = st.last_common_block
    while walk.height < max_height:
        # Core: read ahead in batches of at least 128 ancestors, walking back from the batch's top.
        to_fetch = min(max_height - walk.height, max(count - len(out), 128))
        top = best.get_ancestor(walk.height + to_fetch)
        assert top is not None
        batch: list[BlockIndex] = []
        cursor: BlockIndex | None = top
        while cursor is not None and cursor is not walk and len(batch) < to_fetch:
            batch.append(cursor)
            cursor = cursor.prev
        batch.reverse()
        walk = top
        for index in batch:
            if not index.is_valid(BLOCK_VALID_TREE):
                return out, None  # the peer's chain is invalid
            if index.have_data or chain.in_active_chain(index):
                if index.chain_tx:
                    st.last_common_block = index
            elif index.block_hash in validating:
                continue
            elif index.block_hash not in in_flight:
                if index.height > window_end:
                    # Nothing left inside the window: whoever holds its first block stalls us.
                    staller = waiting_for if not out and waiting_for != peer_id else None
                    return out, staller
                out.append(index)
                if len(out) == count:
                    return out, None
            elif waiting_for is None:
                waiting_for = in_flight[index.block_hash]
    return out, None
