"""BIP9 version bits (Core 0.15: versionbits.cpp, ComputeBlockVersion in validation.cpp).

Owns the per-period threshold state machine (DEFINED -> STARTED -> LOCKED_IN -> ACTIVE, or FAILED),
signalling statistics, and the block version a miner should use. It is a pure function of a header
chain and the network's `Deployment` table; the memo of states per (deployment, period end) is a
dict owned by the caller. It must never read a clock or a global "current network".

AIPG note: AIPG Core hard-wires every asset rule on (`fAssetsIsActive`, `fRip5IsActive`, ... are
`true` in consensus.h), so these states are informational only: on main and test every deployment
timed out in 2022, before genesis, and reports "failed" from height 2016 on, while the rules it
names are enforced from the fixed activation heights in ChainParams.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from aipgd.core.params import ChainParams, Deployment

# Core: versionbits.h.
VERSIONBITS_TOP_BITS = 0x20000000
VERSIONBITS_TOP_BITS_ASSETS = 0x30000000
VERSIONBITS_TOP_MASK = 0xE0000000


class ThresholdState(Enum):
    DEFINED = "defined"
    STARTED = "started"
    LOCKED_IN = "locked_in"
    ACTIVE = "active"
    FAILED = "failed"


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


class VersionLink(Protocol):
    """What the state machine needs of a block index entry (BlockIndex satisfies it)."""

    @property
    def height(self) -> int: ...
    @property
    def header(self) -> _Versioned: ...
    @property
    def prev(self) -> VersionLink | None: ...
    def get_ancestor(self, height: int) -> VersionLink | None: ...
    def median_time_past(self) -> int: ...


# Keyed by (deployment name, last block of the previous period or None for genesis' parent).
VersionBitsCache = dict[tuple[str, object], ThresholdState]


@dataclass(frozen=True, slots=True)
class BIP9Stats:
    """Core: BIP9Stats (getblockchaininfo's "statistics" while STARTED)."""

    period: int
    threshold: int
    elapsed: int
    count: int
    possible: bool


def period(params: ChainParams, dep: Deployment) -> int:
    return dep.window if dep.window > 0 else params.miner_confirmation_window


def threshold(params: ChainParams, dep: Deployment) -> int:
    return dep.threshold if dep.threshold > 0 else params.rule_change_activation_threshold


def mask(dep: Deployment) -> int:
    return 1 << dep.bit


def _signals(link: VersionLink, dep: Deployment) -> bool:
    # Core 0.15's Condition only tests the bit (no top-bits check).
    return (link.header.version & mask(dep)) != 0


def _period_end(prev: VersionLink | None, n_period: int) -> VersionLink | None:
    """The last block of the period before the one `prev`'s child belongs to."""
    if prev is None:
        return None
    return prev.get_ancestor(prev.height - ((prev.height + 1) % n_period))


def state_for(prev: VersionLink | None, params: ChainParams, dep: Deployment,
              cache: VersionBitsCache) -> ThresholdState:
    """Core: AbstractThresholdConditionChecker::GetStateFor, the state of the child of `prev`."""
    n_period = period(params, dep)
    n_threshold = threshold(params, dep)
    walk = _period_end(prev, n_period)
    to_compute: list[VersionLink] = []
    while (dep.name, walk) not in cache:
        if walk is None:
            cache[(dep.name, None)] = ThresholdState.DEFINED  # genesis is DEFINED by definition
            break
        if walk.median_time_past() < dep.start_time:
            cache[(dep.name, walk)] = ThresholdState.DEFINED
            break
        to_compute.append(walk)
        walk = walk.get_ancestor(walk.height - n_period)
    state = cache[(dep.name, walk)]
    while to_compute:
        walk = to_compute.pop()
        assert walk is not None
        nxt = state
        if state is ThresholdState.DEFINED:
            mtp = walk.median_time_past()
            if mtp >= dep.timeout:
                nxt = ThresholdState.FAILED
            elif mtp >= dep.start_time:
                nxt = ThresholdState.STARTED
        elif state is ThresholdState.STARTED:
            if walk.median_time_past() >= dep.timeout:
                nxt = ThresholdState.FAILED
            else:
                count = 0
                counted: VersionLink | None = walk
                for _ in range(n_period):
                    assert counted is not None
                    count += _signals(counted, dep)
                    counted = counted.prev
                if count >= n_threshold:
                    nxt = ThresholdState.LOCKED_IN
        elif state is ThresholdState.LOCKED_IN:
            nxt = ThresholdState.ACTIVE
        cache[(dep.name, walk)] = state = nxt
    return state


def state_since_height(prev: VersionLink | None, params: ChainParams, dep: Deployment,
                       cache: VersionBitsCache) -> int:
    """Core: GetStateSinceHeightFor, the height of the first block the current state applies to."""
    initial = state_for(prev, params, dep, cache)
    if initial is ThresholdState.DEFINED:
        return 0
    n_period = period(params, dep)
    walk = _period_end(prev, n_period)
    assert walk is not None
    earlier = walk.get_ancestor(walk.height - n_period)
    while earlier is not None and state_for(earlier, params, dep, cache) is initial:
        walk = earlier
        earlier = walk.get_ancestor(walk.height - n_period)
    return walk.height + 1


def statistics(link: VersionLink | None, params: ChainParams, dep: Deployment) -> BIP9Stats:
    """Core: GetStateStatisticsFor, signalling counted in `link`'s period up to and including it."""
    n_period = period(params, dep)
    n_threshold = threshold(params, dep)
    if link is None:
        return BIP9Stats(n_period, n_threshold, 0, 0, False)
    end_prev = _period_end(link, n_period)
    end_height = end_prev.height if end_prev is not None else -1
    elapsed = link.height - end_height
    count = 0
    walk: VersionLink | None = link
    while walk is not None and walk.height != end_height:
        count += _signals(walk, dep)
        walk = walk.prev
    return BIP9Stats(n_period, n_threshold, elapsed, count, (n_period - n_threshold) >= (elapsed - count))


def compute_block_version(prev: VersionLink | None, params: ChainParams, cache: VersionBitsCache) -> int:
    """Core (AIPG): ComputeBlockVersion. AreAssetsDeployed() is always true in AIPG Core, so the
    top bits are VERSIONBITS_TOP_BITS_ASSETS; STARTED and LOCKED_IN deployments add their bit."""
    version = VERSIONBITS_TOP_BITS_ASSETS
    for dep in params.deployments:
        if state_for(prev, params, dep, cache) in (ThresholdState.STARTED, ThresholdState.LOCKED_IN):
            version |= mask(dep)
    return version
