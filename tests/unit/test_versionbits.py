"""BIP9 state machine over synthetic chains (Core: versionbits_tests), and the real networks' tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aipgd.consensus.versionbits import (
    VERSIONBITS_TOP_BITS_ASSETS,
    ThresholdState,
    VersionBitsCache,
    compute_block_version,
    state_for,
    state_since_height,
    statistics,
)
from aipgd.core.params import ChainParams, Deployment, get_params

START, TIMEOUT = 10_000, 20_000
# Bit 12: AIPG's top bits 0x30000000 include bit 28, so every AIPG block "signals" testdummy.
DEP = Deployment("testdummy", "", 12, START, TIMEOUT, threshold=75, window=100)
SIGNAL = VERSIONBITS_TOP_BITS_ASSETS | (1 << 12)


@dataclass(frozen=True)
class _Header:
    version: int


@dataclass(eq=False)
class Link:
    height: int
    header: _Header
    prev: Link | None
    time: int

    def get_ancestor(self, height: int) -> Link | None:
        if height < 0 or height > self.height:
            return None
        walk: Link | None = self
        while walk is not None and walk.height > height:
            walk = walk.prev
        return walk

    def median_time_past(self) -> int:
        times = []
        walk: Link | None = self
        while walk is not None and len(times) < 11:
            times.append(walk.time)
            walk = walk.prev
        return sorted(times)[len(times) // 2]


def _params(*deps: Deployment) -> ChainParams:
    return dataclasses.replace(get_params("regtest"), deployments=deps or (DEP,))


def _extend(tip: Link | None, count: int, time: int, version: int = VERSIONBITS_TOP_BITS_ASSETS) -> Link:
    for _ in range(count):
        tip = Link(tip.height + 1 if tip else 0, _Header(version), tip, time)
    assert tip is not None
    return tip


def test_walks_defined_started_locked_in_active() -> None:
    params = _params()
    cache: VersionBitsCache = {}
    assert state_for(None, params, DEP, cache) is ThresholdState.DEFINED
    tip = _extend(None, 100, START - 1)  # heights 0..99, before the start time
    assert state_for(tip, params, DEP, cache) is ThresholdState.DEFINED
    assert state_since_height(tip, params, DEP, cache) == 0
    tip = _extend(tip, 100, START)  # period 100..199 reaches the start time
    assert state_for(tip.prev, params, DEP, cache) is ThresholdState.DEFINED
    assert state_for(tip, params, DEP, cache) is ThresholdState.STARTED
    assert state_since_height(tip, params, DEP, cache) == 200
    assert compute_block_version(tip, params, cache) == SIGNAL
    # 74 of 100 signal: stays STARTED; statistics count the running period.
    tip = _extend(tip, 26, START + 1)
    tip = _extend(tip, 74, START + 1, SIGNAL)
    assert statistics(tip.get_ancestor(224), params, DEP).possible  # 25 elapsed, none signalling
    stats = statistics(tip.get_ancestor(249), params, DEP)
    assert (stats.period, stats.threshold, stats.elapsed, stats.count) == (100, 75, 50, 24)
    assert not stats.possible
    assert state_for(tip, params, DEP, cache) is ThresholdState.STARTED
    assert state_since_height(tip, params, DEP, cache) == 200
    stats = statistics(tip.get_ancestor(298), params, DEP)
    assert (stats.elapsed, stats.count, stats.possible) == (99, 73, False)
    # At a period's last block the statistics already belong to the next period (as Core).
    assert statistics(tip, params, DEP).elapsed == 0
    # 75 of 100 signal: LOCKED_IN for one period, then ACTIVE for good.
    tip = _extend(tip, 75, START + 2, SIGNAL)
    tip = _extend(tip, 25, START + 2)
    assert state_for(tip, params, DEP, cache) is ThresholdState.LOCKED_IN
    assert state_since_height(tip, params, DEP, cache) == 400
    assert compute_block_version(tip, params, cache) == SIGNAL
    tip = _extend(tip, 100, TIMEOUT + 5)
    assert state_for(tip, params, DEP, cache) is ThresholdState.ACTIVE
    assert state_since_height(tip, params, DEP, cache) == 500
    assert compute_block_version(tip, params, cache) == VERSIONBITS_TOP_BITS_ASSETS
    tip = _extend(tip, 300, TIMEOUT + 10)
    assert state_for(tip, params, DEP, cache) is ThresholdState.ACTIVE
    assert state_since_height(tip, params, DEP, cache) == 500
    # Inside a period the state is that of its first block.
    assert state_for(tip.get_ancestor(450), params, DEP, cache) is ThresholdState.LOCKED_IN


def test_started_times_out_to_failed() -> None:
    params = _params()
    cache: VersionBitsCache = {}
    tip = _extend(None, 200, START)
    assert state_for(tip, params, DEP, cache) is ThresholdState.STARTED
    tip = _extend(tip, 100, TIMEOUT, SIGNAL)  # enough signals, but the timeout wins
    assert state_for(tip, params, DEP, cache) is ThresholdState.FAILED
    assert state_since_height(tip, params, DEP, cache) == 300
    tip = _extend(tip, 100, TIMEOUT)
    assert state_for(tip, params, DEP, cache) is ThresholdState.FAILED
    assert state_since_height(tip, params, DEP, cache) == 300


def test_defined_straight_to_failed_and_cache_is_per_deployment() -> None:
    other = Deployment("assets", "assets", 6, 0, 1, threshold=1, window=100)
    params = _params(DEP, other)
    cache: VersionBitsCache = {}
    tip = _extend(None, 100, TIMEOUT)
    assert state_for(tip, params, DEP, cache) is ThresholdState.FAILED
    assert state_for(tip, params, other, cache) is ThresholdState.FAILED
    assert {name for name, _ in cache} == {"testdummy", "assets"}
    # A fresh cache gives the same answers (the cache only memoises).
    assert state_for(tip, params, DEP, {}) is ThresholdState.FAILED


def test_network_deployment_tables_match_core() -> None:
    main = get_params("main")
    assert [(d.name, d.info_name, d.bit) for d in main.deployments] == [
        ("testdummy", "", 28), ("assets", "assets", 6), ("messaging_restricted", "messaging_restricted", 7),
        ("transfer_script", "transfer_script", 8), ("enforce_value", "enforce", 9),
        ("coinbase", "coinbase", 10)]
    assert {(d.start_time, d.timeout) for d in main.deployments} == {(1653004800, 1653264000)}
    assert [(d.threshold, d.window) for d in main.deployments] == [
        (1814, 2016), (1814, 2016), (1714, 2016), (1714, 2016), (1411, 2016), (1411, 2016)]
    test = get_params("test")
    assert {(d.start_time, d.timeout) for d in test.deployments} == {(1658055600, 1659178800)}
    regtest = get_params("regtest")
    assert (regtest.rule_change_activation_threshold, regtest.miner_confirmation_window) == (108, 144)
    assert [(d.threshold, d.window) for d in regtest.deployments] == [
        (108, 144), (108, 144), (108, 144), (208, 288), (108, 144), (400, 500)]
    assert {(d.start_time, d.timeout) for d in regtest.deployments} == {(0, 999999999999)}


def test_main_deployments_failed_since_first_period() -> None:
    """Main's deployments timed out in May 2022, before its 2023 genesis: DEFINED for the first
    period, FAILED from height 2016 on; the block version carries no deployment bit."""
    params = get_params("main")
    cache: VersionBitsCache = {}
    tip = _extend(None, 2016, params.genesis.header.time)
    for dep in params.deployments:
        assert state_for(tip.prev, params, dep, cache) is ThresholdState.DEFINED
        assert state_for(tip, params, dep, cache) is ThresholdState.FAILED
        assert state_since_height(tip, params, dep, cache) == 2016
    assert compute_block_version(tip, params, cache) == 0x30000000


def test_top_bits_signal_testdummy() -> None:
    """Bit 28 lies inside VERSIONBITS_TOP_BITS_ASSETS: on regtest testdummy locks in after its
    first STARTED period (as in AIPG Core), and then goes ACTIVE."""
    params = get_params("regtest")
    dummy = params.deployments[0]
    cache: VersionBitsCache = {}
    tip = _extend(None, 144 * 3, params.genesis.header.time)
    assert state_for(tip.get_ancestor(287), params, dummy, cache) is ThresholdState.LOCKED_IN
    assert state_for(tip, params, dummy, cache) is ThresholdState.ACTIVE


def test_regtest_signals_every_deployment_once_started() -> None:
    params = get_params("regtest")
    cache: VersionBitsCache = {}
    assert compute_block_version(None, params, cache) == 0x30000000
    tip = _extend(None, 144, params.genesis.header.time)
    # Bits 6, 7 and 9 use 144-block periods (28 lies inside the top bits); 8 waits for 288, 10 for 500.
    assert compute_block_version(tip, params, cache) == 0x30000000 | 0x2C0
    tip = _extend(tip, 144, params.genesis.header.time)
    assert compute_block_version(tip, params, cache) == 0x30000000 | 0x3C0
    tip = _extend(tip, 500 - 288, params.genesis.header.time)
    assert compute_block_version(tip, params, cache) == 0x30000000 | 0x7C0
