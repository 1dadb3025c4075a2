"""Fee estimation from how fast pool transactions confirm (Core 0.15: policy/fees.cpp).

Owns CBlockPolicyEstimator: fee-rate buckets (1000 to 1e7 sat/kB, 5% apart), three horizons
(short 12x1 blocks, medium 24x2, long 42x24) of decaying confirmed/failed/unconfirmed counts,
EstimateMedianVal, estimateSmartFee's half/target/double/conservative combination, and
fee_estimates.dat in Core's layout. It must never look at the chain: the manager feeds it
pool entries and connected block heights.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aipgd.core.serialize import ByteReader, ser_compact_size, ser_i32, ser_u32
from aipgd.core.transaction import MAX_MONEY

if TYPE_CHECKING:
    from aipgd.mempool.txmempool import MempoolEntry

logger = logging.getLogger(__name__)

FEE_ESTIMATES_FILENAME = "fee_estimates.dat"
# Core: fees.h constants.
SHORT_BLOCK_PERIODS, SHORT_SCALE, SHORT_DECAY = 12, 1, 0.962
MED_BLOCK_PERIODS, MED_SCALE, MED_DECAY = 24, 2, 0.9952
LONG_BLOCK_PERIODS, LONG_SCALE, LONG_DECAY = 42, 24, 0.99931
OLDEST_ESTIMATE_HISTORY = 6 * 1008
HALF_SUCCESS_PCT, SUCCESS_PCT, DOUBLE_SUCCESS_PCT = 0.6, 0.85, 0.95
SUFFICIENT_FEETXS, SUFFICIENT_TXS_SHORT = 0.1, 0.5
MIN_BUCKET_FEERATE, MAX_BUCKET_FEERATE, FEE_SPACING = 1000.0, 1e7, 1.05
INF_FEERATE = float(MAX_MONEY)
# The version written to fee_estimates.dat and the oldest one that can read it (Core: 149900).
_FILE_VERSION_REQUIRED = 149900
_CLIENT_VERSION = 150100


def _buckets() -> list[float]:
    out = []
    rate = MIN_BUCKET_FEERATE
    while rate <= MAX_BUCKET_FEERATE:
        out.append(rate)
        rate *= FEE_SPACING
    out.append(INF_FEERATE)
    return out


class TxConfirmStats:
    """Core: TxConfirmStats, per-bucket decaying averages for one horizon."""

    def __init__(self, buckets: list[float], max_periods: int, decay: float, scale: int) -> None:
        self.buckets = buckets
        self.decay = decay
        self.scale = scale
        n = len(buckets)
        self.conf_avg = [[0.0] * n for _ in range(max_periods)]
        self.fail_avg = [[0.0] * n for _ in range(max_periods)]
        self.tx_ct_avg = [0.0] * n
        self.avg = [0.0] * n
        self.unconf_txs = [[0] * n for _ in range(self.max_confirms)]
        self.old_unconf_txs = [0] * n

    @property
    def max_confirms(self) -> int:
        return self.scale * len(self.conf_avg)

    def bucket_index(self, fee_rate: float) -> int:
        return min(bisect.bisect_left(self.buckets, fee_rate), len(self.buckets) - 1)

    def clear_current(self, height: int) -> None:
        row = self.unconf_txs[height % len(self.unconf_txs)]
        for j in range(len(self.buckets)):
            self.old_unconf_txs[j] += row[j]
            row[j] = 0

    def record(self, blocks_to_confirm: int, fee_rate: float) -> None:
        if blocks_to_confirm < 1:
            return
        periods = (blocks_to_confirm + self.scale - 1) // self.scale
        b = self.bucket_index(fee_rate)
        for i in range(periods, len(self.conf_avg) + 1):
            self.conf_avg[i - 1][b] += 1
        self.tx_ct_avg[b] += 1
        self.avg[b] += fee_rate

    def update_moving_averages(self) -> None:
        d = self.decay
        for rows in (self.conf_avg, self.fail_avg):
            for i, row in enumerate(rows):
                rows[i] = [x * d for x in row]
        self.avg = [x * d for x in self.avg]
        self.tx_ct_avg = [x * d for x in self.tx_ct_avg]

    def new_tx(self, height: int, fee_rate: float) -> int:
        b = self.bucket_index(fee_rate)
        self.unconf_txs[height % len(self.unconf_txs)][b] += 1
        return b

    def remove_tx(self, entry_height: int, best_seen: int, bucket: int, in_block: bool) -> None:
        blocks_ago = best_seen - entry_height if best_seen else 0
        if blocks_ago < 0:
            return
        if blocks_ago >= len(self.unconf_txs):
            if self.old_unconf_txs[bucket] > 0:
                self.old_unconf_txs[bucket] -= 1
        else:
            row = self.unconf_txs[entry_height % len(self.unconf_txs)]
            if row[bucket] > 0:
                row[bucket] -= 1
        # A transaction that left without confirming counts as a failure for every period it waited.
        if not in_block and blocks_ago >= self.scale:
            periods_ago = blocks_ago // self.scale
            for i in range(min(periods_ago, len(self.fail_avg))):
                self.fail_avg[i][bucket] += 1

    def estimate_median_val(self, conf_target: int, sufficient: float, success: float, height: int) -> float:
        """Core: EstimateMedianVal with requireGreater: from the highest bucket down, group buckets
        until they hold enough data, and find the lowest group that still confirms within the
        target at least `success` of the time; the answer is that range's median fee rate."""
        n_conf = total = extra = fail = 0.0
        period = (conf_target + self.scale - 1) // self.scale
        bins = len(self.unconf_txs)
        top = len(self.buckets) - 1
        cur_near = cur_far = best_near = best_far = top
        found = False
        new_range = True
        for b in range(top, -1, -1):
            if new_range:
                cur_near = b
                new_range = False
            cur_far = b
            n_conf += self.conf_avg[period - 1][b]
            total += self.tx_ct_avg[b]
            fail += self.fail_avg[period - 1][b]
            for confct in range(conf_target, self.max_confirms):
                extra += self.unconf_txs[(height - confct) % bins][b]
            extra += self.old_unconf_txs[b]
            if total >= sufficient / (1 - self.decay):
                if n_conf / (total + fail + extra) < success:
                    continue
                found = True
                n_conf = total = fail = extra = 0.0
                best_near, best_far = cur_near, cur_far
                new_range = True
        if not found:
            return -1.0
        lo, hi = min(best_near, best_far), max(best_near, best_far)
        tx_sum = sum(self.tx_ct_avg[lo:hi + 1])
        if tx_sum == 0:
            return -1.0
        tx_sum /= 2
        for j in range(lo, hi + 1):
            if self.tx_ct_avg[j] < tx_sum:
                tx_sum -= self.tx_ct_avg[j]
            else:
                return self.avg[j] / self.tx_ct_avg[j]
        return -1.0

    # Core: TxConfirmStats::Write / Read.
    def serialize(self) -> bytes:
        return (struct.pack("<d", self.decay) + ser_u32(self.scale) + _ser_doubles(self.avg)
                + _ser_doubles(self.tx_ct_avg) + _ser_matrix(self.conf_avg) + _ser_matrix(self.fail_avg))

    def read(self, r: ByteReader, max_periods: int) -> None:
        decay = struct.unpack("<d", r.read(8, "decay"))[0]
        if not 0 < decay < 1:
            raise ValueError("Corrupt estimates file. Decay must be between 0 and 1 (non-inclusive)")
        scale = r.u32("scale")
        n = len(self.buckets)
        avg = _read_doubles(r, n)
        tx_ct = _read_doubles(r, n)
        conf = _read_matrix(r, n)
        fail = _read_matrix(r, n)
        if not 0 < len(conf) <= max_periods or len(fail) != len(conf) or scale == 0:
            raise ValueError("Corrupt estimates file. Must maintain estimates for between 1 and 1008 "
                             "confirms")
        self.decay, self.scale, self.avg, self.tx_ct_avg = decay, scale, avg, tx_ct
        self.conf_avg, self.fail_avg = conf, fail
        self.unconf_txs = [[0] * n for _ in range(self.max_confirms)]
        self.old_unconf_txs = [0] * n


def _ser_doubles(values: list[float]) -> bytes:
    return ser_compact_size(len(values)) + struct.pack(f"<{len(values)}d", *values)


def _ser_matrix(rows: list[list[float]]) -> bytes:
    return ser_compact_size(len(rows)) + b"".join(_ser_doubles(row) for row in rows)


def _read_doubles(r: ByteReader, expected: int) -> list[float]:
    n = r.compact_size("doubles", limit=r.remaining // 8)
    if n != expected:
        raise ValueError("Corrupt estimates file. Mismatch in feerate average bucket count")
    return list(struct.unpack(f"<{n}d", r.read(8 * n, "doubles")))


def _read_matrix(r: ByteReader, expected: int) -> list[list[float]]:
    rows = r.compact_size("rows", limit=2000)
    return [_read_doubles(r, expected) for _ in range(rows)]


@dataclass
class EstimationResult:
    fee_rate: int  # sat/kB, 0 when there is no estimate
    returned_target: int


class BlockPolicyEstimator:
    """Core: CBlockPolicyEstimator."""

    def __init__(self) -> None:
        self.buckets = _buckets()
        self.fee_stats = TxConfirmStats(self.buckets, MED_BLOCK_PERIODS, MED_DECAY, MED_SCALE)
        self.short_stats = TxConfirmStats(self.buckets, SHORT_BLOCK_PERIODS, SHORT_DECAY, SHORT_SCALE)
        self.long_stats = TxConfirmStats(self.buckets, LONG_BLOCK_PERIODS, LONG_DECAY, LONG_SCALE)
        self.best_seen_height = 0
        self.first_recorded_height = 0
        self.historical_first = 0
        self.historical_best = 0
        self.tracked = 0
        self.untracked = 0
        # txid -> (height it entered at, bucket)
        self.mempool_txs: dict[bytes, tuple[int, int]] = {}

    def _all(self) -> tuple[TxConfirmStats, TxConfirmStats, TxConfirmStats]:
        return self.fee_stats, self.short_stats, self.long_stats

    def process_transaction(self, entry: MempoolEntry, height: int, valid: bool) -> None:
        """Core: processTransaction. Only transactions that entered at the best seen height count."""
        txid = entry.txid
        if txid in self.mempool_txs or entry.height != self.best_seen_height:
            return
        if not valid:
            self.untracked += 1
            return
        self.tracked += 1
        rate = entry.fee * 1000 / entry.vsize
        bucket = 0
        for stats in self._all():
            bucket = stats.new_tx(entry.height, rate)
        self.mempool_txs[txid] = (entry.height, bucket)

    def remove_tx(self, txid: bytes, in_block: bool = False) -> bool:
        item = self.mempool_txs.pop(txid, None)
        if item is None:
            return False
        for stats in self._all():
            stats.remove_tx(item[0], self.best_seen_height, item[1], in_block)
        return True

    def process_block(self, height: int, entries: list[MempoolEntry]) -> None:
        """Core: processBlock. Blocks at or below the best seen height (reorgs) are ignored."""
        if height <= self.best_seen_height:
            return
        self.best_seen_height = height
        if not entries and not self.mempool_txs and self.first_recorded_height == 0 \
                and self.historical_first == 0:
            # Nothing recorded yet (initial download): decaying all-zero tables changes nothing.
            return
        for stats in self._all():
            stats.clear_current(height)
            stats.update_moving_averages()
        counted = 0
        for entry in entries:
            if not self.remove_tx(entry.txid, in_block=True):
                continue
            blocks = height - entry.height
            if blocks <= 0:
                continue
            rate = entry.fee * 1000 / entry.vsize
            for stats in self._all():
                stats.record(blocks, rate)
            counted += 1
        if self.first_recorded_height == 0 and counted > 0:
            self.first_recorded_height = self.best_seen_height
        self.tracked = self.untracked = 0

    # -- estimates -----------------------------------------------------------------------------

    def _block_span(self) -> int:
        return 0 if self.first_recorded_height == 0 else self.best_seen_height - self.first_recorded_height

    def _historical_block_span(self) -> int:
        if self.historical_first == 0:
            return 0
        if self.best_seen_height - self.historical_best > OLDEST_ESTIMATE_HISTORY:
            return 0
        return self.historical_best - self.historical_first

    def max_usable_estimate(self) -> int:
        return min(self.long_stats.max_confirms, max(self._block_span(), self._historical_block_span()) // 2)

    def estimate_raw_fee(self, conf_target: int, success: float, stats: TxConfirmStats | None = None) -> int:
        stats = stats or self.fee_stats
        if conf_target <= 0 or conf_target > stats.max_confirms:
            return 0
        sufficient = SUFFICIENT_TXS_SHORT if stats is self.short_stats else SUFFICIENT_FEETXS
        median = stats.estimate_median_val(conf_target, sufficient, success, self.best_seen_height)
        return 0 if median < 0 else int(median)

    def estimate_fee(self, conf_target: int) -> int:
        """Core: estimateFee (the deprecated estimatefee RPC), 0 when unknown."""
        if conf_target <= 1:
            return 0
        return self.estimate_raw_fee(conf_target, DOUBLE_SUCCESS_PCT)

    def _combined(self, target: int, success: float, check_shorter: bool) -> float:
        estimate = -1.0
        h = self.best_seen_height
        if 1 <= target <= self.long_stats.max_confirms:
            if target <= self.short_stats.max_confirms:
                estimate = self.short_stats.estimate_median_val(target, SUFFICIENT_TXS_SHORT, success, h)
            elif target <= self.fee_stats.max_confirms:
                estimate = self.fee_stats.estimate_median_val(target, SUFFICIENT_FEETXS, success, h)
            else:
                estimate = self.long_stats.estimate_median_val(target, SUFFICIENT_FEETXS, success, h)
            if check_shorter:
                for stats, sufficient in ((self.fee_stats, SUFFICIENT_FEETXS),
                                          (self.short_stats, SUFFICIENT_TXS_SHORT)):
                    if target > stats.max_confirms:
                        shorter = stats.estimate_median_val(stats.max_confirms, sufficient, success, h)
                        if shorter > 0 and (estimate == -1 or shorter < estimate):
                            estimate = shorter
        return estimate

    def _conservative(self, double_target: int) -> float:
        h = self.best_seen_height
        estimate = -1.0
        if double_target <= self.short_stats.max_confirms:
            estimate = self.fee_stats.estimate_median_val(double_target, SUFFICIENT_FEETXS,
                                                          DOUBLE_SUCCESS_PCT, h)
        if double_target <= self.fee_stats.max_confirms:
            longer = self.long_stats.estimate_median_val(double_target, SUFFICIENT_FEETXS,
                                                         DOUBLE_SUCCESS_PCT, h)
            estimate = max(estimate, longer)
        return estimate

    def estimate_smart_fee(self, conf_target: int, conservative: bool = True,
                           min_pool_fee: int = 0, min_incremental_fee: int = 0) -> EstimationResult:
        """Core: estimateSmartFee. The fee rate (sat/kB) and the target it answered for."""
        if conf_target <= 0 or conf_target > self.long_stats.max_confirms:
            return EstimationResult(0, 0)
        conf_target = max(conf_target, 2)
        conf_target = min(conf_target, self.max_usable_estimate())
        if conf_target <= 1:
            return EstimationResult(0, conf_target)
        median = self._combined(conf_target // 2, HALF_SUCCESS_PCT, True)
        median = max(median, self._combined(conf_target, SUCCESS_PCT, True))
        median = max(median, self._combined(2 * conf_target, DOUBLE_SUCCESS_PCT, not conservative))
        if conservative or median == -1:
            median = max(median, self._conservative(2 * conf_target))
        if median < 0:
            return EstimationResult(0, conf_target)
        # A full pool's floor beats an estimate below it (Core: GetMinFee, incremental relay fee).
        floor = max(min_pool_fee, min_incremental_fee) if min_pool_fee > 0 else 0
        return EstimationResult(max(int(median), floor), conf_target)

    # -- fee_estimates.dat ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Core: CBlockPolicyEstimator::Write."""
        if self._block_span() > self._historical_block_span() // 2:
            first, best = self.first_recorded_height, self.best_seen_height
        else:
            first, best = self.historical_first, self.historical_best
        data = (ser_i32(_FILE_VERSION_REQUIRED) + ser_i32(_CLIENT_VERSION) + ser_u32(self.best_seen_height)
                + ser_u32(first) + ser_u32(best) + _ser_doubles(self.buckets)
                + b"".join(s.serialize() for s in self._all()))
        tmp = path.with_name(path.name + ".new")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("Failed to write fee estimates to %s: %s", path, exc)

    def load(self, path: Path) -> bool:
        """Core: CBlockPolicyEstimator::Read; a damaged or foreign file is ignored with a warning."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            logger.warning("Failed to read fee estimates from %s: %s", path, exc)
            return False
        try:
            r = ByteReader(data)
            required = r.i32("version required")
            r.i32("version that wrote")
            if required > _CLIENT_VERSION:
                raise ValueError(f"up-version ({required}) fee estimate file")
            file_best = r.u32("best seen height")
            first = r.u32("historical first")
            best = r.u32("historical best")
            if first > best or best > file_best:
                raise ValueError("Corrupt estimates file. Historical block range for estimates is invalid")
            n = r.compact_size("buckets", limit=r.remaining // 8)
            if not 1 < n <= 1000:
                raise ValueError("Corrupt estimates file. Must have between 2 and 1000 feerate buckets")
            buckets = list(struct.unpack(f"<{n}d", r.read(8 * n, "buckets")))
            if buckets != self.buckets:
                raise ValueError("fee estimate buckets differ from this version's")
            fresh = BlockPolicyEstimator()
            fresh.fee_stats.read(r, MED_BLOCK_PERIODS)
            fresh.short_stats.read(r, SHORT_BLOCK_PERIODS)
            fresh.long_stats.read(r, LONG_BLOCK_PERIODS)
        except (ValueError, struct.error) as exc:
            logger.warning("Unable to read the fee estimates in %s (%s): starting without them", path, exc)
            return False
        self.fee_stats, self.short_stats = fresh.fee_stats, fresh.short_stats
        self.long_stats = fresh.long_stats
        self.historical_first, self.historical_best = first, best
        self.best_seen_height = file_best
        return True
