"""BIP23 block proposals (Core: TestBlockValidity), checked against the active tip without changing it.

Owns the one read-only pass of a whole block through the header, block and connect rules on a scratch
CoinsViewCache layered over the tip's view. It must never flush that view, add the block to the
index, write to disk or mark anything failed: a proposal leaves chain state exactly as it found it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.coinsview import CoinsViewCache
from aipgd.chain.connect import connect_block
from aipgd.chain.header_rules import contextual_header_state, last_checkpoint
from aipgd.consensus.block_check import check_block, contextual_check_block
from aipgd.consensus.pow import check_header_height
from aipgd.consensus.validation_state import ValidationState
from aipgd.core.block import Block

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState


def validate_block_proposal(chainstate: ChainState, block: Block) -> ValidationState:
    """Core: TestBlockValidity(fCheckPOW=false, fCheckMerkleRoot=true) on the active tip.

    The caller has made sure the block builds on the tip; this holds the chain lock throughout so the
    tip cannot move between the checks and the connect.
    """
    with chainstate.lock:
        prev = chainstate.chain.tip
        assert prev is not None and block.header.prev_hash == prev.block_hash, "proposal not on the tip"
        params = chainstate.params
        header = block.header
        # Core's indexDummy: a block-index entry that is never added to the tree.
        index = BlockIndex(block.hash, header, prev, prev.height + 1)
        state = check_header_height(header, index.height)
        if state:
            # The same clock, peer count and reorg policy AcceptBlockHeader judges headers by.
            state = contextual_header_state(
                header, prev, params, int(chainstate._clock()), active_height=chainstate.chain.height,
                active_tip_time=prev.time, peer_count=chainstate._peer_count(),
                reorg_policy=chainstate.reorg_policy,
                checkpoint=lambda: last_checkpoint(params, chainstate.tree.index))
        if state:
            state = check_block(block)
        if state:
            state = contextual_check_block(block, prev.height, prev.median_time_past(),
                                           bip34_height=params.bip34_height)
        if not state:
            return state
        # fJustCheck: the scratch view is dropped, never flushed into the tip's cache.
        scratch = CoinsViewCache(chainstate.coins_tip)
        result = connect_block(block, index, scratch, params, script_checks=True,
                               script_threads=chainstate.script_threads)
        return result.state
