"""Per-peer header and block sync state and the rules' constants (Core: CNodeState, net_processing.h).

Owns what the node knows of each peer's chain (best known block, last common block, headers sent),
the peer's blocks in flight and its stall timer, the blocks queued for announcement, and the timing
settings that tests scale down. It must never send messages nor touch chain state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex

# Core: net_processing.h / validation.h.
MAX_BLOCKS_IN_TRANSIT_PER_PEER = 16
BLOCK_DOWNLOAD_WINDOW = 1024
BLOCK_STALLING_TIMEOUT = 2.0  # seconds
# In units of the target spacing: the first block in flight must arrive within base + per_peer * others.
BLOCK_DOWNLOAD_TIMEOUT_BASE = 1.0
BLOCK_DOWNLOAD_TIMEOUT_PER_PEER = 0.5
MAX_BLOCKS_TO_ANNOUNCE = 8
MAX_UNCONNECTING_HEADERS = 10
MAX_GETBLOCKS_RESULTS = 500
MAX_CMPCTBLOCK_DEPTH = 5
MAX_BLOCKTXN_DEPTH = 10
# Core: a block older than this (below the best header) is "historical" for -maxuploadtarget.
HISTORICAL_BLOCK_AGE = 7 * 24 * 60 * 60
# Core: BlockRequestAllowed, blocks off the active chain are served only this close to the best header.
STALE_BLOCK_SERVE_AGE = 30 * 24 * 60 * 60


@dataclass(slots=True)
class SyncTimings:
    """The sync timers; -blockstallingtimeout (hidden) scales them down for tests."""

    stalling_timeout: float = BLOCK_STALLING_TIMEOUT
    download_timeout_base: float = BLOCK_DOWNLOAD_TIMEOUT_BASE
    download_timeout_per_peer: float = BLOCK_DOWNLOAD_TIMEOUT_PER_PEER


@dataclass(slots=True)
class PeerSyncState:
    best_known_block: BlockIndex | None = None
    hash_last_unknown_block: bytes | None = None
    last_common_block: BlockIndex | None = None
    best_header_sent: BlockIndex | None = None
    unconnecting_headers: int = 0
    sync_started: bool = False
    preferred_download: bool = False
    # hash -> time requested, oldest first (Core: vBlocksInFlight).
    in_flight: dict[bytes, float] = field(default_factory=dict)
    downloading_since: float = 0.0
    stalling_since: float = 0.0
    blocks_to_announce: list[bytes] = field(default_factory=list)
    hash_continue: bytes | None = None  # getblocks: the inv that triggers the next batch
    # BIP152: the peer asked us to announce new blocks with cmpctblock (high bandwidth).
    cmpct_high_bandwidth: bool = False
    cmpct_version: int = 0
    # Bytes of compact-block reconstruction waiting for blocktxn: block hash -> partial block.
    partial_blocks: dict[bytes, object] = field(default_factory=dict)

    def has_header(self, index: BlockIndex) -> bool:
        """Core: PeerHasHeader."""
        for known in (self.best_known_block, self.best_header_sent):
            if known is not None and known.get_ancestor(index.height) is index:
                return True
        return False
