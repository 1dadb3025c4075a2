"""Operator actions on the active chain: invalidateblock, reconsiderblock, preciousblock.

Owns Core's InvalidateBlock, ResetBlockFailureFlags and PreciousBlock: marking blocks failed or not
and re-ranking equal-work tips, then letting ChainState.activate_best_chain pick the chain. It must
never connect or disconnect blocks except through ChainState, and never write to disk itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aipgd.chain.blockindex import BLOCK_FAILED_MASK, BlockIndex
from aipgd.chain.diskformat import BLOCK_FAILED_CHILD, BLOCK_FAILED_VALID, BLOCK_VALID_TRANSACTIONS
from aipgd.consensus.validation_state import VALID, ValidationState

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState


def invalidate_block(cs: ChainState, block_hash: bytes) -> ValidationState:
    """Core: InvalidateBlock + ActivateBestChain (the invalidateblock RPC)."""
    with cs.lock:
        index = cs.tree.get(block_hash)
        if index is None:
            return ValidationState.error("Block not found")
        if index.prev is None:
            return ValidationState.error("The genesis block cannot be invalidated")
        was_in_chain = False
        walk_tip = cs.chain.tip
        while cs.chain.contains(index):
            was_in_chain = True
            cs._disconnect_tip()
        while was_in_chain and walk_tip is not None and walk_tip is not index:
            walk_tip.status |= BLOCK_FAILED_CHILD
            cs.tree.mark_dirty(walk_tip)
            cs.tree.candidates.discard(walk_tip)
            walk_tip = walk_tip.prev
        index.status |= BLOCK_FAILED_VALID
        cs.tree.mark_dirty(index)
        cs.tree.candidates.discard(index)
        cs.tree.failed_blocks.add(index)
        cs.tree.add_candidates_at_least(cs.chain.tip, cs.tree)
        cs._invalid_chain_found(index)
        return cs.activate_best_chain()

def reconsider_block(cs: ChainState, block_hash: bytes) -> ValidationState:
    """Core: ResetBlockFailureFlags + ActivateBestChain (the reconsiderblock RPC)."""
    with cs.lock:
        index = cs.tree.get(block_hash)
        if index is None:
            return ValidationState.error("Block not found")
        tree = cs.tree
        tip = cs.chain.tip
        for other in tree:
            if other.failed and other.get_ancestor(index.height) is index:
                other.status &= ~BLOCK_FAILED_MASK
                tree.mark_dirty(other)
                tree.add_candidates_at_least(tip, (other,))
                if other is tree.best_invalid:
                    tree.best_invalid = None
                tree.failed_blocks.discard(other)
        walk: BlockIndex | None = index
        while walk is not None:
            if walk.failed:
                walk.status &= ~BLOCK_FAILED_MASK
                tree.mark_dirty(walk)
                tree.failed_blocks.discard(walk)
            walk = walk.prev
        return cs.activate_best_chain()

def precious_block(cs: ChainState, block_hash: bytes) -> ValidationState:
    """Core: PreciousBlock, treat the block as if it had arrived before any other of equal work."""
    with cs.lock:
        index = cs.tree.get(block_hash)
        if index is None:
            return ValidationState.error("Block not found")
        tip = cs.chain.tip
        assert tip is not None
        if index.chain_work < tip.chain_work:
            return VALID
        tree = cs.tree
        if tip.chain_work > tree.last_precious_work:
            # The chain has grown since the last call: start counting again.
            tree.reverse_sequence_id = -1
        tree.last_precious_work = tip.chain_work
        tree.candidates.discard(index)
        tree.set_sequence_id(index, tree.reverse_sequence_id)
        if tree.reverse_sequence_id > -(1 << 31):
            tree.reverse_sequence_id -= 1
        if index.is_valid(BLOCK_VALID_TRANSACTIONS) and index.chain_tx:
            tree.candidates.add(index)
            tree.prune_candidates(tip)
        return cs.activate_best_chain()
