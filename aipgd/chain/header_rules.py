"""Header rules that need the node's view of the chain (Core: ContextualCheckBlockHeader's AIPG part).

Owns the order of Core's contextual header checks: AIPG's max-reorganization-depth rule, the
difficulty (DGW v3), the last-checkpoint fork rule, then the time and version rules of
aipgd.consensus. The inputs that are node policy (active height, peer count, clock, checkpoints
found in our index) are passed in. It must never store state or touch disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aipgd.chain.blockindex import BlockIndex
from aipgd.consensus.block_check import contextual_check_block_header
from aipgd.consensus.pow import get_next_work_required, is_dgw_active
from aipgd.consensus.validation_state import VALID, RejectCode, ValidationState
from aipgd.core.block import BlockHeader
from aipgd.core.params import ChainParams

# Core: chainparams nMinReorganizationPeers / nMinReorganizationAge (the same on every network).
DEFAULT_MIN_REORG_PEERS = 4
DEFAULT_MIN_REORG_AGE = 60 * 60 * 12


@dataclass(frozen=True)
class ReorgPolicy:
    """Core: -maxreorg, -minreorgpeers, -minreorgage."""

    max_depth: int
    min_peers: int = DEFAULT_MIN_REORG_PEERS
    min_age: int = DEFAULT_MIN_REORG_AGE


def fork_too_deep(active_height: int, new_height: int, policy: ReorgPolicy, peer_count: int,
                  tip_time: int, now: int) -> bool:
    """Core: the max-reorg rule of ContextualCheckBlockHeader.

    A header whose parent is `max_depth` or more blocks below the active tip is refused, but only
    while the node has at least `min_peers` connections and its tip is at most `min_age` seconds
    old: a node that is isolated or still catching up accepts any fork, so it can rejoin the
    network's chain. Without P2P the peer count is 0 and the rule never fires, as in Core.
    """
    if active_height - (new_height - 1) < policy.max_depth:
        return False
    caught_up = now - tip_time <= policy.min_age
    return peer_count >= policy.min_peers and caught_up


def last_checkpoint(params: ChainParams, index: dict[bytes, BlockIndex]) -> BlockIndex | None:
    """Core: Checkpoints::GetLastCheckpoint, the highest checkpoint already in our block index."""
    for height in sorted(params.checkpoints, reverse=True):
        found = index.get(params.checkpoints[height])
        if found is not None:
            return found
    return None


def contextual_header_state(header: BlockHeader, prev: BlockIndex, params: ChainParams, adjusted_time: int, *,
                            active_height: int, active_tip_time: int, peer_count: int,
                            reorg_policy: ReorgPolicy,
                            checkpoint: Callable[[], BlockIndex | None]) -> ValidationState:
    """Core: ContextualCheckBlockHeader, in its order of checks."""
    height = prev.height + 1
    if fork_too_deep(active_height, height, reorg_policy, peer_count, active_tip_time, adjusted_time):
        return ValidationState.invalid(
            "bad-fork-prior-to-maxreorgdepth", dos=10, code=RejectCode.REJECT_MAXREORGDEPTH,
            debug=f"forked chain older than max reorganization depth (height {height})")
    if header.bits != get_next_work_required(prev, header.time, params):
        return ValidationState.invalid("bad-diffbits", dos=100, debug="incorrect proof of work")
    cp = checkpoint()
    if cp is not None and height < cp.height:
        return ValidationState.invalid(
            "bad-fork-prior-to-checkpoint", dos=100, code=RejectCode.REJECT_CHECKPOINT,
            debug=f"forked chain older than last checkpoint (height {height})")
    state = contextual_check_block_header(header, prev.height, prev.median_time_past(), adjusted_time,
                                          dgw_active=is_dgw_active(height, params))
    return state if not state else VALID
