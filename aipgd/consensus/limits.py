"""Consensus-wide size, weight, sigop and maturity limits (Core: consensus/consensus.h, AIPG values).

Owns constants only. AIPG (like Ravencoin after RIP2, with assets live from genesis) checks
blocks against the 8 MB weight limit unconditionally (Core: GetMaxBlockWeight).
"""

from __future__ import annotations

MAX_BLOCK_WEIGHT = 8_000_000
MAX_BLOCK_SERIALIZED_SIZE = 8_000_000
MAX_BLOCK_SIGOPS_COST = 80_000
COINBASE_MATURITY = 100
WITNESS_SCALE_FACTOR = 4
MIN_TRANSACTION_WEIGHT = WITNESS_SCALE_FACTOR * 60
MIN_SERIALIZABLE_TRANSACTION_WEIGHT = WITNESS_SCALE_FACTOR * 10

# Core: consensus.h lock-time flags for sequence locks and finality.
LOCKTIME_VERIFY_SEQUENCE = 1 << 0
LOCKTIME_MEDIAN_TIME_PAST = 1 << 1
