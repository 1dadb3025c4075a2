"""Proof of work: target checks, KawPoW/X16RV2 header verification and Dark Gravity Wave v3.

Owns `check_proof_of_work`, `check_block_header_pow` and `get_next_work_required` (Core:
pow.cpp). DGW reproduces Core's 256-bit `arith_uint256` arithmetic, whose products wrap
modulo 2**256: testnet's huge powLimit makes the first retarget overflow, and the wrapped
value is consensus there. The header chain is read through the small `HeaderLink` protocol,
so the rules stay pure; nothing here stores state or touches disk.
"""

from __future__ import annotations

from typing import Protocol

import kawpow
from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.block import BlockHeader
from aipgd.core.params import ChainParams
from aipgd.core.uint256 import UINT256_MAX, compact_to_target, hash_to_int, target_to_compact

# Core: DarkGravityWave's nPastBlocks (~3 hours of 60 s blocks).
DGW_PAST_BLOCKS = 180


class HeaderLink(Protocol):
    """What difficulty needs of a header already in the tree (BlockIndex satisfies it)."""

    @property
    def height(self) -> int: ...

    @property
    def time(self) -> int: ...

    @property
    def bits(self) -> int: ...

    @property
    def prev(self) -> HeaderLink | None: ...


def check_proof_of_work(block_hash: bytes, bits: int, params: ChainParams) -> bool:
    """Core: CheckProofOfWork — `bits` in range (below powLimit) and the hash at or under it."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        return False
    return hash_to_int(block_hash) <= target


def check_block_header_pow(header: BlockHeader, params: ChainParams,
                           contexts: kawpow.ContextCache | None = None) -> ValidationState:
    """Core: CheckBlockHeader. Never trusts the declared mix_hash.

    Unlike Core, the KawPoW mix is verified for every header, checkpointed or not: below a
    checkpoint Core checks only the final hash implied by the miner's mix, which lets a peer
    feed cheap fake headers (see aipg-network.md). The declared nHeight must match the real
    height; that is checked where the parent is known (`check_header_height`).
    """
    if not check_proof_of_work(header.hash, header.bits, params):
        return ValidationState.invalid("high-hash", dos=50, debug="proof of work failed")
    if header.kawpow:
        target, _, _ = compact_to_target(header.bits)
        boundary = target.to_bytes(32, "big")
        ok = kawpow.verify(header.height, header.kawpow_input(), header.mix_hash_printed, header.nonce64,
                           boundary, contexts=contexts)
        if not ok:
            return ValidationState.invalid("invalid-mix-hash", dos=50, debug="mix_hash validity failed")
    return VALID


def check_header_height(header: BlockHeader, height: int) -> ValidationState:
    """A KawPoW header's nHeight selects its epoch and program: it must be the real height.

    Stricter than AIPG Core, which trusts the declared height (a known attack on sibling chains).
    """
    if header.kawpow and header.height != height:
        return ValidationState.invalid("bad-kawpow-height", dos=100,
                                       debug=f"header declares height {header.height}, real height {height}")
    return VALID


def _dgw_active(height: int, params: ChainParams) -> bool:
    """Core: IsDGWActive."""
    return height >= params.dgw_activation_height


def _adjustment_interval(params: ChainParams) -> int:
    return params.pow_target_timespan // params.pow_target_spacing


def _min_difficulty_bits(prev: HeaderLink, new_time: int, params: ChainParams) -> int:
    """The min-difficulty rule (regtest only on AIPG): a block 2 spacings late may use powLimit;
    otherwise the bits of the last block that was not such a min-difficulty block.

    Deviation from Core, regtest only: when that walk reaches the genesis block we return
    powLimit, not the genesis' 0x1e00ffff. AIPG's regtest genesis reuses the main bits, so
    Core's rule would demand ~2**24 KawPoW hashes per regtest block (Core never noticed: its
    regtest neither mines KawPoW nor starts).
    """
    limit_bits = target_to_compact(params.pow_limit)
    if new_time > prev.time + params.pow_target_spacing * 2:
        return limit_bits
    link: HeaderLink = prev
    interval = _adjustment_interval(params)
    while link.prev is not None and link.height % interval != 0 and link.bits == limit_bits:
        link = link.prev
    return limit_bits if link.height == 0 else link.bits


def _dark_gravity_wave(prev: HeaderLink, new_time: int, params: ChainParams) -> int:
    """Core: DarkGravityWave, with arith_uint256's wrap-around reproduced."""
    limit_bits = target_to_compact(params.pow_limit)
    if prev.height < DGW_PAST_BLOCKS:
        return limit_bits
    if params.pow_allow_min_difficulty_blocks and params.pow_no_retargeting:
        return _min_difficulty_bits(prev, new_time, params)
    link: HeaderLink = prev
    average = 0
    kawpow_blocks = 0
    for count in range(1, DGW_PAST_BLOCKS + 1):
        target, _, _ = compact_to_target(link.bits)
        if count == 1:
            average = target
        else:
            # Core's "not really an average": (avg * n + target) / (n + 1), in 256-bit arithmetic.
            average = ((((average * count) & UINT256_MAX) + target) & UINT256_MAX) // (count + 1)
        if params.is_kawpow_time(link.time):
            kawpow_blocks += 1
        if count != DGW_PAST_BLOCKS:
            assert link.prev is not None, "DGW needs 180 ancestors"
            link = link.prev
    # Until 180 KawPoW blocks exist, a KawPoW block uses the temporary kawpowLimit.
    if params.is_kawpow_time(new_time) and kawpow_blocks != DGW_PAST_BLOCKS:
        return target_to_compact(params.kawpow_limit)
    actual = prev.time - link.time
    target_timespan = DGW_PAST_BLOCKS * params.pow_target_spacing
    actual = max(target_timespan // 3, min(actual, target_timespan * 3))
    # bnNew *= nActualTimespan wraps modulo 2**256 (the testnet retarget at height 181 relies on it).
    new_target = ((average * actual) & UINT256_MAX) // target_timespan
    new_target = min(new_target, params.pow_limit)
    return target_to_compact(new_target)


def _bitcoin_retarget(prev: HeaderLink, new_time: int, params: ChainParams) -> int:
    """Core: GetNextWorkRequiredBTC (used below the DGW activation height: regtest < 200)."""
    interval = _adjustment_interval(params)
    if (prev.height + 1) % interval != 0:
        if params.pow_allow_min_difficulty_blocks:
            return _min_difficulty_bits(prev, new_time, params)
        return prev.bits
    if params.pow_no_retargeting:
        return prev.bits
    first: HeaderLink = prev
    for _ in range(interval - 1):
        assert first.prev is not None, "retarget needs a full interval of ancestors"
        first = first.prev
    actual = prev.time - first.time
    timespan = params.pow_target_timespan
    actual = max(timespan // 4, min(actual, timespan * 4))
    target, _, _ = compact_to_target(prev.bits)
    new_target = min(((target * actual) & UINT256_MAX) // timespan, params.pow_limit)
    return target_to_compact(new_target)


def get_next_work_required(prev: HeaderLink, new_time: int, params: ChainParams) -> int:
    """Core: GetNextWorkRequired — the nBits a block on top of `prev` with nTime `new_time` must carry."""
    if _dgw_active(prev.height + 1, params):
        return _dark_gravity_wave(prev, new_time, params)
    return _bitcoin_retarget(prev, new_time, params)


def is_dgw_active(height: int, params: ChainParams) -> bool:
    return _dgw_active(height, params)
