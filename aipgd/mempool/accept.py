"""Accepting a transaction into the pool (Core 0.15: AcceptToMemoryPoolWorker, CheckSequenceLocks,
CheckInputs for the mempool, the BIP125 replacement rules and LimitMempoolSize).

Owns the order of checks and Core's reject reasons and codes. The caller holds the chain lock
and the pool lock (the manager takes both: chain first, then pool). It must never change
chain state; its only writes are to the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aipgd.chain.coins import Coin
from aipgd.consensus.limits import LOCKTIME_MEDIAN_TIME_PAST, LOCKTIME_VERIFY_SEQUENCE
from aipgd.consensus.tx_check import check_transaction
from aipgd.consensus.tx_verify import (
    calculate_sequence_locks,
    check_tx_inputs,
    evaluate_sequence_locks,
    is_final_tx,
    transaction_sigop_cost,
)
from aipgd.consensus.validation_state import RejectCode, ValidationState
from aipgd.core.transaction import COIN, OutPoint, Transaction, TxOut
from aipgd.mempool.policy import (
    DEFAULT_INCREMENTAL_RELAY_FEE,
    DEFAULT_MIN_RELAY_TX_FEE,
    MAX_STANDARD_TX_SIGOPS_COST,
    FeeRate,
    StandardPolicy,
    are_inputs_standard,
    is_standard_tx,
    is_witness_standard,
    virtual_size,
)
from aipgd.mempool.txmempool import MEMPOOL_HEIGHT, AncestorLimits, LimitError, MempoolEntry, RemovalReason
from aipgd.script.asset_script import is_asset_script, is_null_asset
from aipgd.script.batch import SpendInput, verify_inputs_batch
from aipgd.script.errors import ScriptError
from aipgd.script.flags import (
    MANDATORY_SCRIPT_VERIFY_FLAGS,
    SCRIPT_VERIFY_CLEANSTACK,
    SCRIPT_VERIFY_WITNESS,
    STANDARD_SCRIPT_VERIFY_FLAGS,
)
from aipgd.script.sighash import PrecomputedTxData

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.mempool.manager import MempoolManager

# Core: policy.h STANDARD_LOCKTIME_VERIFY_FLAGS.
STANDARD_LOCKTIME_VERIFY_FLAGS = LOCKTIME_VERIFY_SEQUENCE | LOCKTIME_MEDIAN_TIME_PAST
# Core: BIP125's MAX_BIP125_RBF_SEQUENCE and the replacement's descendant bound.
MAX_BIP125_RBF_SEQUENCE = 0xFFFFFFFD
MAX_REPLACEMENT_CANDIDATES = 100
# Core: REJECT_HIGHFEE (validation.h), a code outside BIP61's table.
REJECT_HIGHFEE = 0x100
# AIPG Core: DEFAULT_TRANSACTION_MAXFEE, what sendrawtransaction refuses without allowhighfees.
DEFAULT_TRANSACTION_MAXFEE = 1000 * COIN
DEFAULT_MAX_MEMPOOL_SIZE_MB = 300
DEFAULT_MEMPOOL_EXPIRY_HOURS = 336
DEFAULT_ENABLE_REPLACEMENT = False  # AIPG Core: opt-in RBF is off unless -mempoolreplacement=1


@dataclass(frozen=True)
class MempoolOptions:
    max_mempool_bytes: int = DEFAULT_MAX_MEMPOOL_SIZE_MB * 1_000_000
    expiry_seconds: int = DEFAULT_MEMPOOL_EXPIRY_HOURS * 60 * 60
    min_relay_fee: int = DEFAULT_MIN_RELAY_TX_FEE
    incremental_relay_fee: int = DEFAULT_INCREMENTAL_RELAY_FEE
    limits: AncestorLimits = field(default_factory=AncestorLimits)
    enable_replacement: bool = DEFAULT_ENABLE_REPLACEMENT
    require_standard: bool | None = None  # None: the network's (-acceptnonstdtxn inverts it)
    policy: StandardPolicy = field(default_factory=StandardPolicy)
    persist: bool = True
    max_tx_fee: int = DEFAULT_TRANSACTION_MAXFEE


@dataclass
class AcceptResult:
    """The verdict. `missing_inputs` is Core's pfMissingInputs (the orphan signal): then the state
    is valid-but-not-accepted. `replaced` lists the transactions the new one evicted."""

    state: ValidationState
    accepted: bool = False
    missing_inputs: bool = False
    fee: int = 0
    vsize: int = 0
    replaced: list[Transaction] = field(default_factory=list)

    @property
    def reject_reason(self) -> str:
        return self.state.reject_reason

    def __bool__(self) -> bool:
        return self.accepted


def _reject(reason: str, *, code: RejectCode | int = RejectCode.REJECT_NONSTANDARD, dos: int = 0,
            debug: str = "", corruption: bool = False) -> AcceptResult:
    return AcceptResult(ValidationState.invalid(reason, dos=dos, code=code, debug=debug,  # type: ignore[arg-type]
                                                corruption_possible=corruption))


def signals_opt_in_rbf(tx: Transaction) -> bool:
    """Core: SignalsOptInRBF (BIP125)."""
    return any(txin.sequence <= MAX_BIP125_RBF_SEQUENCE for txin in tx.vin)


def check_final_for_next_block(tx: Transaction, tip: BlockIndex) -> bool:
    """Core: CheckFinalTx with STANDARD_LOCKTIME_VERIFY_FLAGS: the next block's height, and the
    tip's median time past as the time (BIP113)."""
    return is_final_tx(tx, tip.height + 1, tip.median_time_past())


def check_sequence_locks(tx: Transaction, coin_heights: Sequence[int], tip: BlockIndex) -> bool:
    """Core: CheckSequenceLocks for the next block; a mempool coin counts as confirmed in it."""
    next_height = tip.height + 1
    heights = [next_height if h == MEMPOOL_HEIGHT else h for h in coin_heights]

    def mtp_at(h: int) -> int:
        ancestor = tip.get_ancestor(min(h, tip.height))
        assert ancestor is not None
        return ancestor.median_time_past()

    min_height, min_time, _ = calculate_sequence_locks(tx, STANDARD_LOCKTIME_VERIFY_FLAGS, heights, mtp_at)
    return evaluate_sequence_locks(next_height, tip.median_time_past(), min_height, min_time)


def _script_failure(tx: Transaction, spent: Sequence[TxOut], flags: int) -> ValidationState | None:
    """Core: CheckInputs for the mempool. None when every input passes `flags`; otherwise the
    reason Core gives: a failure that the mandatory flags alone accept is non-standard only."""
    txdata = PrecomputedTxData(tx)
    inputs = [SpendInput(tx, n, out.script_pubkey, out.value, txdata) for n, out in enumerate(spent)]
    results = verify_inputs_batch(inputs, flags, threads=1)
    for n, result in enumerate(results):
        if result is ScriptError.SCRIPT_ERR_OK:
            continue
        relaxed = verify_inputs_batch([inputs[n]], MANDATORY_SCRIPT_VERIFY_FLAGS, threads=1)[0]
        if relaxed is ScriptError.SCRIPT_ERR_OK:
            # A transaction without witness that passes without the witness rules may have had its
            # witness stripped in relay (Core: SetCorruptionPossible).
            corruption = False
            if not tx.has_witness():
                relaxed_flags = flags & ~(SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_CLEANSTACK)
                stripped = verify_inputs_batch(inputs, relaxed_flags, threads=1)
                corruption = all(r is ScriptError.SCRIPT_ERR_OK for r in stripped)
            return ValidationState.invalid(f"non-mandatory-script-verify-flag ({result.message})",
                                           code=RejectCode.REJECT_NONSTANDARD, corruption_possible=corruption,
                                           debug=f"input {n}")
        return ValidationState.invalid(f"mandatory-script-verify-flag-failed ({relaxed.message})", dos=100,
                                       debug=f"input {n}")
    return None


def accept_to_mempool(mgr: MempoolManager, tx: Transaction, *, bypass_limits: bool = False,
                      absurd_fee: int = 0, accept_time: int | None = None,
                      test_accept: bool = False) -> AcceptResult:
    """Core: AcceptToMemoryPoolWorker. The caller holds mgr.chainstate.lock and mgr.pool.lock."""
    chain = mgr.chainstate
    pool = mgr.pool
    opts = mgr.options
    tip = chain.tip
    if tip is None:
        return AcceptResult(ValidationState.error("no chain tip"))
    txid = tx.txid

    state = check_transaction(tx, mempool_check=True)
    if not state:
        return AcceptResult(state)
    # Coinbases are only valid in a block, never as loose transactions.
    if tx.is_coinbase():
        return _reject("coinbase", code=RejectCode.REJECT_INVALID, dos=100)
    require_standard = mgr.require_standard
    if require_standard:
        reason = is_standard_tx(tx, opts.policy)
        if reason is not None:
            return _reject(reason)
    # Only transactions that may go in the next block are accepted (BIP113 median time past).
    if not check_final_for_next_block(tx, tip):
        return _reject("non-final")
    if txid in pool.entries:
        return _reject("txn-already-in-mempool", code=RejectCode.REJECT_DUPLICATE)

    # Conflicts with pool transactions: replaceable only under BIP125 (Core 0.15's rules).
    conflicts: set[bytes] = set()
    for txin in tx.vin:
        spender = pool.spenders.get(txin.prevout)
        if spender is None or spender in conflicts:
            continue
        opt_out = True
        if opts.enable_replacement and signals_opt_in_rbf(pool.entries[spender].tx):
            opt_out = False
        if opt_out:
            return _reject("txn-mempool-conflict", code=RejectCode.REJECT_DUPLICATE)
        conflicts.add(spender)

    # The coins it spends: the chain's, then pool transactions' outputs (Core: CCoinsViewMemPool).
    coins: dict[OutPoint, Coin] = {}
    missing = False
    for txin in tx.vin:
        coin = chain.coins_tip.get_coin(txin.prevout)
        if coin is None:
            coin = pool.get_coin(txin.prevout)
        if coin is None:
            missing = True
            break
        coins[txin.prevout] = coin
    if missing:
        # Already confirmed? Then its outputs are (partly) in the UTXO set.
        for n in range(len(tx.vout)):
            if chain.coins_tip.get_coin(OutPoint(txid, n)) is not None:
                return _reject("txn-already-known", code=RejectCode.REJECT_DUPLICATE)
        return AcceptResult(ValidationState(), missing_inputs=True)
    spent_coins = [coins[txin.prevout] for txin in tx.vin]
    if not check_sequence_locks(tx, [c.height for c in spent_coins], tip):
        return _reject("non-BIP68-final")
    state, fee = check_tx_inputs(tx, coins, tip.height + 1, chain.params.coinbase_maturity)
    if not state:
        return AcceptResult(state)
    spent = [c.out for c in spent_coins]
    # aipgd has no asset database yet, so it cannot check CheckTxAssets: it neither relays nor mines
    # transactions that carry or spend assets (blocks with them are still validated as Core does).
    if any(is_asset_script(o.script_pubkey) or is_null_asset(o.script_pubkey) for o in (*tx.vout, *spent)):
        return _reject("bad-txns-assets-unsupported", debug="aipgd does not relay asset transactions yet")
    if require_standard and not are_inputs_standard(tx, spent):
        return _reject("bad-txns-nonstandard-inputs")
    if tx.has_witness() and require_standard and not is_witness_standard(tx, spent):
        return _reject("bad-witness-nonstandard", corruption=True)

    sigop_cost = transaction_sigop_cost(tx, spent, STANDARD_SCRIPT_VERIFY_FLAGS)
    vsize = virtual_size(tx.weight, sigop_cost, opts.policy.bytes_per_sigop)
    spends_coinbase = any(c.is_coinbase for c in spent_coins)
    modified_fee = fee + pool.deltas.get(txid, 0)
    if sigop_cost > MAX_STANDARD_TX_SIGOPS_COST:
        return _reject("bad-txns-too-many-sigops", debug=f"{sigop_cost}")
    min_fee = pool.get_min_fee(opts.max_mempool_bytes).fee(vsize)
    if not bypass_limits and min_fee > 0 and modified_fee < min_fee:
        return _reject("mempool min fee not met", code=RejectCode.REJECT_INSUFFICIENTFEE,
                       debug=f"{fee} < {min_fee}")
    if not bypass_limits and modified_fee < FeeRate(opts.min_relay_fee).fee(vsize):
        return _reject("min relay fee not met", code=RejectCode.REJECT_INSUFFICIENTFEE)
    if absurd_fee and fee > absurd_fee:
        return _reject("absurdly-high-fee", code=REJECT_HIGHFEE, debug=f"{fee} > {absurd_fee}")

    try:
        ancestors = pool.calculate_ancestors(vsize, pool.in_pool_parents(tx), opts.limits)
    except LimitError as exc:
        return _reject("too-long-mempool-chain", debug=str(exc))
    # A transaction spending outputs it would replace could never be valid.
    for ancestor in ancestors:
        if ancestor in conflicts:
            return _reject("bad-txns-spends-conflicting-tx", code=RejectCode.REJECT_INVALID, dos=10,
                           debug=f"{tx.txid_hex} spends conflicting transaction {ancestor[::-1].hex()}")

    all_conflicting: set[bytes] = set()
    if conflicts:
        result = _check_replacement(mgr, tx, modified_fee, vsize, conflicts, all_conflicting)
        if result is not None:
            return result

    # Scripts last: the most expensive check (Core: CheckInputs with the standard flags).
    # (-promiscuousmempoolflags is not offered: every network checks the standard flags.)
    failure = _script_failure(tx, spent, STANDARD_SCRIPT_VERIFY_FLAGS)
    if failure is not None:
        return AcceptResult(failure)
    # Core re-checks with the current block's flags; ours are a subset of the standard ones.

    if test_accept:
        return AcceptResult(ValidationState(), accepted=True, fee=fee, vsize=vsize)

    now = int(mgr.clock()) if accept_time is None else accept_time
    entry = MempoolEntry(tx, fee, now, tip.height, spends_coinbase, sigop_cost, vsize)
    replaced = [pool.entries[t].tx for t in all_conflicting]
    if all_conflicting:
        pool.remove_set_with_descendants(all_conflicting, RemovalReason.REPLACED)
        ancestors = pool.calculate_ancestors(vsize, pool.in_pool_parents(tx), opts.limits)
    pool.add_unchecked(entry, ancestors)
    # Core: validForFeeEstimation, only plain, current transactions with no unconfirmed parents.
    mgr.tx_added(entry, valid_for_estimate=not bypass_limits and not conflicts and not entry.parents
                 and mgr.current_for_fee_estimation())
    if not bypass_limits:
        mgr.limit_size()
        if txid not in pool.entries:
            return _reject("mempool full", code=RejectCode.REJECT_INSUFFICIENTFEE)
    return AcceptResult(ValidationState(), accepted=True, fee=fee, vsize=vsize, replaced=replaced)


def _check_replacement(mgr: MempoolManager, tx: Transaction, modified_fee: int, vsize: int,
                       conflicts: set[bytes], all_conflicting: set[bytes]) -> AcceptResult | None:
    """Core 0.15's BIP125 rules; fills `all_conflicting` with everything that would be evicted."""
    pool = mgr.pool
    new_rate = FeeRate.from_fee(modified_fee, vsize)
    conflict_parents: set[bytes] = set()
    potential = 0
    for txid in conflicts:
        entry = pool.entries[txid]
        # No replacement that lowers the fee rate a miner would collect (rule 6 of Core 0.15).
        old_rate = FeeRate.from_fee(entry.modified_fee, entry.vsize)
        if new_rate <= old_rate:
            return _reject("insufficient fee", code=RejectCode.REJECT_INSUFFICIENTFEE,
                           debug=f"rejecting replacement {tx.txid_hex}; new feerate {new_rate} <= old "
                                 f"feerate {old_rate}")
        for txin in entry.tx.vin:
            conflict_parents.add(txin.prevout.txid)
        potential += entry.count_with_descendants
    if potential > MAX_REPLACEMENT_CANDIDATES:
        return _reject("too many potential replacements", debug=(
            f"rejecting replacement {tx.txid_hex}; too many potential replacements ({potential} > "
            f"{MAX_REPLACEMENT_CANDIDATES})"))
    for txid in conflicts:
        pool.descendants(txid, all_conflicting)
    conflicting_fees = sum(pool.entries[t].modified_fee for t in all_conflicting)
    for n, txin in enumerate(tx.vin):
        # New unconfirmed inputs could make the replacement pay less per byte than it seems.
        parent = txin.prevout.txid
        if parent not in conflict_parents and parent in pool.entries:
            return _reject("replacement-adds-unconfirmed", debug=(
                f"replacement {tx.txid_hex} adds unconfirmed input, idx {n}"))
    if modified_fee < conflicting_fees:
        return _reject("insufficient fee", code=RejectCode.REJECT_INSUFFICIENTFEE, debug=(
            f"rejecting replacement {tx.txid_hex}, less fees than conflicting txs; {modified_fee} < "
            f"{conflicting_fees}"))
    delta = modified_fee - conflicting_fees
    needed = FeeRate(mgr.options.incremental_relay_fee).fee(vsize)
    if delta < needed:
        return _reject("insufficient fee", code=RejectCode.REJECT_INSUFFICIENTFEE, debug=(
            f"rejecting replacement {tx.txid_hex}, not enough additional fees to relay; {delta} < {needed}"))
    return None
