"""Transaction checks that need context (Core: consensus/tx_verify.cpp).

Owns finality (IsFinalTx), BIP68 sequence locks, sigop counting (legacy, P2SH, witness cost)
and CheckTxInputs (coins present, coinbase maturity, value ranges, fee). The coins being
spent, heights and median times are passed in; nothing here reads the UTXO set or the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aipgd.consensus.limits import COINBASE_MATURITY, LOCKTIME_VERIFY_SEQUENCE, WITNESS_SCALE_FACTOR
from aipgd.consensus.tx_check import money_range
from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.transaction import MAX_MONEY, SEQUENCE_FINAL, OutPoint, Transaction, TxOut
from aipgd.script.checker import (
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_GRANULARITY,
    SEQUENCE_LOCKTIME_MASK,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
)
from aipgd.script.flags import SCRIPT_VERIFY_P2SH
from aipgd.script.script import LOCKTIME_THRESHOLD, is_p2sh, p2sh_sigop_count, sigop_count
from aipgd.script.verify import count_witness_sigops


class SpentCoin(Protocol):
    """What the checks need of a coin being spent (Core: Coin)."""

    @property
    def out(self) -> TxOut: ...

    @property
    def height(self) -> int: ...

    @property
    def is_coinbase(self) -> bool: ...


def is_final_tx(tx: Transaction, block_height: int, block_time: int) -> bool:
    """Core: IsFinalTx. nLockTime is a height below LOCKTIME_THRESHOLD, else a time."""
    if tx.locktime == 0:
        return True
    limit = block_height if tx.locktime < LOCKTIME_THRESHOLD else block_time
    if tx.locktime < limit:
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.vin)


def calculate_sequence_locks(tx: Transaction, flags: int, prev_heights: Sequence[int],
                             median_time_past_at: Callable[[int], int]) -> tuple[int, int, list[int]]:
    """Core: CalculateSequenceLocks (BIP68).

    `prev_heights[i]` is the height of the block holding input i's coin and
    `median_time_past_at(h)` the median time past of the block at height h on this chain.
    Returns (min_height, min_time, heights): the last invalid height and time, and the heights
    with disabled inputs zeroed, as Core leaves them in prevHeights.
    """
    if len(prev_heights) != len(tx.vin):
        raise ValueError("one previous height per input")
    heights = list(prev_heights)
    min_height = -1
    min_time = -1
    # nVersion is compared unsigned, so negative versions count as >= 2.
    if (tx.version & 0xFFFFFFFF) < 2 or not flags & LOCKTIME_VERIFY_SEQUENCE:
        return min_height, min_time, heights
    for i, txin in enumerate(tx.vin):
        sequence = txin.sequence
        if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            heights[i] = 0
            continue
        coin_height = heights[i]
        if sequence & SEQUENCE_LOCKTIME_TYPE_FLAG:
            # Measured from the median time past of the block before the coin's block; the -1
            # turns "first valid" into nLockTime's "last invalid" semantics.
            coin_time = median_time_past_at(max(coin_height - 1, 0))
            lock = (sequence & SEQUENCE_LOCKTIME_MASK) << SEQUENCE_LOCKTIME_GRANULARITY
            min_time = max(min_time, coin_time + lock - 1)
        else:
            min_height = max(min_height, coin_height + (sequence & SEQUENCE_LOCKTIME_MASK) - 1)
    return min_height, min_time, heights


def evaluate_sequence_locks(block_height: int, prev_block_median_time_past: int, min_height: int,
                            min_time: int) -> bool:
    """Core: EvaluateSequenceLocks, for a block at `block_height` whose parent has that MTP."""
    return not (min_height >= block_height or min_time >= prev_block_median_time_past)


def legacy_sigop_count(tx: Transaction) -> int:
    """Core: GetLegacySigOpCount (inaccurate counting: bare CHECKMULTISIG is 20).

    Remembered on the (immutable) transaction: CheckBlock and ConnectBlock both need it.
    """
    memo = tx.__dict__
    count: int | None = memo.get(_LEGACY_SIGOPS)
    if count is None:
        count = 0
        for txin in tx.vin:
            count += sigop_count(txin.script_sig, False)
        for txout in tx.vout:
            count += sigop_count(txout.script_pubkey, False)
        memo[_LEGACY_SIGOPS] = count
    return count


_LEGACY_SIGOPS = "_legacy_sigops"


def p2sh_sigop_total(tx: Transaction, spent: Sequence[TxOut]) -> int:
    """Core: GetP2SHSigOpCount; `spent[i]` is the output input i spends."""
    if tx.is_coinbase():
        return 0
    return sum(p2sh_sigop_count(prev.script_pubkey, txin.script_sig)
               for txin, prev in zip(tx.vin, spent, strict=True) if is_p2sh(prev.script_pubkey))


def transaction_sigop_cost(tx: Transaction, spent: Sequence[TxOut], flags: int) -> int:
    """Core: GetTransactionSigOpCost — legacy and P2SH sigops weigh 4, witness sigops 1."""
    cost = legacy_sigop_count(tx) * WITNESS_SCALE_FACTOR
    if tx.is_coinbase():
        return cost
    if len(spent) != len(tx.vin):
        raise ValueError("one spent output per input")
    p2sh = flags & SCRIPT_VERIFY_P2SH
    for txin, prev in zip(tx.vin, spent, strict=True):
        script_pubkey = prev.script_pubkey
        if len(script_pubkey) == 25 and script_pubkey[0] == _OP_DUP:
            # Neither P2SH (23 bytes) nor a witness program (a version op first): no sigops here.
            continue
        if p2sh and is_p2sh(script_pubkey):
            cost += p2sh_sigop_count(script_pubkey, txin.script_sig) * WITNESS_SCALE_FACTOR
        cost += count_witness_sigops(txin.script_sig, script_pubkey, txin.witness, flags)
    return cost


_OP_DUP = 0x76


def check_tx_inputs(tx: Transaction, coins: Mapping[OutPoint, SpentCoin], spend_height: int,
                    coinbase_maturity: int = COINBASE_MATURITY) -> tuple[ValidationState, int]:
    """Core: Consensus::CheckTxInputs. Returns (state, fee); the fee is 0 unless valid.

    `coins` maps each unspent outpoint the transaction may spend to its coin; a missing entry
    means missing or spent.
    """
    return check_spent_inputs(tx, [coins.get(txin.prevout) for txin in tx.vin], spend_height,
                              coinbase_maturity)


def check_spent_inputs(tx: Transaction, spent: Sequence[SpentCoin | None], spend_height: int,
                       coinbase_maturity: int = COINBASE_MATURITY) -> tuple[ValidationState, int]:
    """Core: Consensus::CheckTxInputs with the coins already looked up: `spent[i]` is the coin
    input i spends, None where it is missing or spent (a shorter list: the rest are missing).
    Returns (state, fee); the fee is 0 unless valid."""
    if len(spent) != len(tx.vin) or None in spent:
        return ValidationState.invalid("bad-txns-inputs-missingorspent", dos=100,
                                       debug=f"CheckTxInputs: inputs missing/spent {tx.txid_hex}"), 0
    value_in = 0
    for coin in spent:
        assert coin is not None
        if coin.is_coinbase and spend_height - coin.height < coinbase_maturity:
            return ValidationState.invalid(
                "bad-txns-premature-spend-of-coinbase",
                debug=f"tried to spend coinbase at depth {spend_height - coin.height}"), 0
        value = coin.out.value
        value_in += value
        # money_range(value) and money_range(value_in), inlined.
        if not 0 <= value <= MAX_MONEY or not 0 <= value_in <= MAX_MONEY:
            return ValidationState.invalid("bad-txns-inputvalues-outofrange", dos=100), 0
    value_out = 0
    for txout in tx.vout:
        value = txout.value
        value_out += value
        if not 0 <= value <= MAX_MONEY or not 0 <= value_out <= MAX_MONEY:
            # Core: GetValueOut throws; CheckTransaction has already rejected such outputs.
            return ValidationState.invalid("bad-txns-txouttotal-toolarge", dos=100), 0
    if value_in < value_out:
        return ValidationState.invalid(
            "bad-txns-in-belowout", dos=100,
            debug=f"value in ({_format_money(value_in)}) < value out ({_format_money(value_out)})"), 0
    fee = value_in - value_out
    if not money_range(fee):
        return ValidationState.invalid("bad-txns-fee-out-of-range", dos=100), 0
    return VALID, fee


def _format_money(value: int) -> str:
    """Core: FormatMoney — at least two decimals, trailing zeros trimmed."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 100_000_000)
    text = f"{frac:08d}".rstrip("0")
    return f"{sign}{whole}.{text.ljust(2, '0')}"
