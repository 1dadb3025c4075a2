"""Applying a block to a UTXO view and taking it back (Core: ConnectBlock, DisconnectBlock, RollforwardBlock).

Owns the UTXO-dependent block rules in Core's order (inputs present and mature, BIP68 sequence
locks, sigop cost, coinbase reward and community fee, then every input script with the block's
flags) and the undo data that lets the block be disconnected. It works on a caller's
CoinsViewCache and returns verdicts; it must never write files or choose the active chain.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.coins import Coin
from aipgd.chain.coinsview import CoinsViewCache
from aipgd.chain.undo import TxUndo
from aipgd.consensus.block_check import check_block
from aipgd.consensus.limits import LOCKTIME_VERIFY_SEQUENCE, MAX_BLOCK_SIGOPS_COST
from aipgd.consensus.subsidy import check_coinbase_rewards
from aipgd.consensus.tx_verify import (
    calculate_sequence_locks,
    check_spent_inputs,
    evaluate_sequence_locks,
    transaction_sigop_cost,
)
from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.block import Block
from aipgd.core.params import ChainParams
from aipgd.core.transaction import MAX_MONEY, OutPoint
from aipgd.script.asset_script import is_unspendable
from aipgd.script.batch import SpendInput, verify_inputs_batch
from aipgd.script.checker import SEQUENCE_LOCKTIME_DISABLE_FLAG
from aipgd.script.errors import ScriptError
from aipgd.script.flags import (
    SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY,
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_WITNESS,
)
from aipgd.script.sighash import PrecomputedTxData

# Core: BIP16's switch time; every AIPG block is later, so P2SH is always enforced.
BIP16_SWITCH_TIME = 1333238400
# Core: MAX_SCRIPTCHECK_THREADS.
MAX_SCRIPT_CHECK_THREADS = 16


def default_script_threads() -> int:
    """Core: -par=0, one script-check thread per core (the calling thread included)."""
    return max(1, min(os.cpu_count() or 1, MAX_SCRIPT_CHECK_THREADS))


def block_script_flags(index: BlockIndex) -> int:
    """Core: GetBlockScriptFlags. AIPG enables BIP66, BIP65, CSV and segwit (with NULLDUMMY) from
    genesis on every network (nBIP66Enabled, nBIP65Enabled, nCSVEnabled, nSegwitEnabled)."""
    flags = SCRIPT_VERIFY_P2SH if index.time >= BIP16_SWITCH_TIME else 0
    return (flags | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY
            | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY | SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_NULLDUMMY)


# Core: nLockTimeFlags in ConnectBlock (CSV is enabled from genesis).
BLOCK_LOCKTIME_FLAGS = LOCKTIME_VERIFY_SEQUENCE


@dataclass
class ConnectResult:
    state: ValidationState
    undo: list[TxUndo]
    fees: int = 0
    inputs: int = 0
    script_seconds: float = 0.0


@dataclass
class ConnectTimings:
    """Where connecting blocks spends its time (Core: -debug=bench's nTimeConnect and friends)."""

    blocks: int = 0
    transactions: int = 0
    inputs: int = 0
    read_seconds: float = 0.0  # reading blocks (and undo data) back from the blk/rev files
    script_seconds: float = 0.0  # verify_inputs_batch
    connect_seconds: float = 0.0  # ConnectBlock as a whole (UTXO access = this minus scripts)
    apply_seconds: float = 0.0  # writing undo data, keeping the block's changes to the tip cache
    flush_seconds: float = 0.0  # block index and chainstate LevelDB batches, fsyncs

    @property
    def utxo_seconds(self) -> float:
        return self.connect_seconds - self.script_seconds


def connect_block(block: Block, index: BlockIndex, view: CoinsViewCache, params: ChainParams, *,
                  script_checks: bool = True, script_threads: int = 1) -> ConnectResult:
    """Core: ConnectBlock. On success the view holds the block's effects and its best block is
    `index`; on failure the view is in an undefined state and must be discarded (or its journal
    rolled back: see CoinsViewCache.begin_journal)."""
    if index.prev is None:
        # The genesis coinbase is not spendable: connecting genesis adds no coins.
        view.set_best_block(index.block_hash)
        return ConnectResult(VALID, [])
    if view.get_best_block() != index.prev.block_hash:
        raise AssertionError("ConnectBlock: the view is not at the block's parent")
    # Check it again in case an earlier version let a bad block in.
    state = check_block(block)
    if not state:
        return ConnectResult(state, [])

    height = index.height
    flags = block_script_flags(index)
    prev_mtp = index.prev.median_time_past()
    maturity = params.coinbase_maturity

    def mtp_at(h: int) -> int:
        ancestor = index.get_ancestor(h)
        assert ancestor is not None
        return ancestor.median_time_past()

    vtx = block.vtx
    # CheckBlock made vtx[0] the one coinbase: it spends nothing.
    coinbase = vtx[0]
    inputs = len(coinbase.vin)
    sigops_cost = transaction_sigop_cost(coinbase, (), flags)
    if sigops_cost > MAX_BLOCK_SIGOPS_COST:
        return ConnectResult(ValidationState.invalid("bad-blk-sigops", dos=100, debug="too many sigops"), [])
    view.add_coins(coinbase, height)

    undo: list[TxUndo] = []
    checks: list[SpendInput] = []
    fees = 0
    spend = view.spend_coin
    have_any = view.have_any_coin
    new_tuple = tuple.__new__
    for tx in vtx[1:]:
        vin = tx.vin
        inputs += len(vin)
        # Core: CheckTxInputs, then UpdateCoins' spending. The view's changes are dropped if the
        # block fails, so each input is spent as it is looked up; its coin is the undo record.
        # CheckBlock ruled out duplicate inputs, so this finds exactly what looking them all up
        # first would.
        spent: list[Coin | None] = []
        for txin in vin:
            coin = spend(txin.prevout)
            spent.append(coin)
            if coin is None:
                break
        state, fee = check_spent_inputs(tx, spent, height, maturity)
        if state is not VALID and not state:
            return ConnectResult(_with_debug(state, f"{state.debug_message} (tx {tx.txid_hex})"), [])
        coins: list[Coin] = spent  # type: ignore[assignment]  # none is None now
        fees += fee
        if not 0 <= fees <= MAX_MONEY:
            return ConnectResult(ValidationState.invalid(
                "bad-txns-accumulated-fee-outofrange", dos=100,
                debug="accumulated fee in the block out of range"), [])
        # BIP68: only version >= 2 inputs without the disable flag lock (CalculateSequenceLocks
        # gives -1, -1 for the others, which every block passes).
        relative_lock = False
        if tx.version & 0xFFFFFFFF >= 2:
            for txin in vin:
                if not txin.sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
                    relative_lock = True
                    break
        if relative_lock:
            min_height, min_time, _ = calculate_sequence_locks(
                tx, BLOCK_LOCKTIME_FLAGS, [c.height for c in coins], mtp_at)
            if not evaluate_sequence_locks(height, prev_mtp, min_height, min_time):
                return ConnectResult(ValidationState.invalid(
                    "bad-txns-nonfinal", dos=100, debug="contains a non-BIP68-final transaction"), [])
        spent_outs = [c.out for c in coins]
        sigops_cost += transaction_sigop_cost(tx, spent_outs, flags)
        if sigops_cost > MAX_BLOCK_SIGOPS_COST:
            return ConnectResult(ValidationState.invalid("bad-blk-sigops", dos=100,
                                                         debug="too many sigops"), [])
        if script_checks:
            txdata = PrecomputedTxData(tx)
            checks.extend(SpendInput(tx, n, out.script_pubkey, out.value, txdata)
                          for n, out in enumerate(spent_outs))
        undo.append(coins)
        # Core: AddCoins(check=false). AIPG Core has BIP30 commented out: a coinbase may overwrite
        # an unspent duplicate (impossible once BIP34 commits the height), while a non-coinbase
        # duplicate makes Core abort ("Adding new coin that replaces non-pruned entry"); we reject
        # that block instead.
        txid = tx.txid
        vout = tx.vout
        # OutPoint(txid, n), less the named tuple's Python-level __new__.
        outpoints = [new_tuple(OutPoint, (txid, n)) for n in range(len(vout))]
        if have_any([outpoint for outpoint, txout in zip(outpoints, vout, strict=True)
                     if not is_unspendable(txout.script_pubkey)]):
            return ConnectResult(ValidationState.invalid(
                "bad-txns-BIP30", dos=100, debug="tried to overwrite transaction"), [])
        view.add_outputs(outpoints, vout, height)

    state = check_coinbase_rewards(coinbase, height, fees, params)
    if not state:
        return ConnectResult(state, [])
    # Core with script-check threads verifies scripts last (CCheckQueueControl::Wait).
    script_seconds = 0.0
    if checks:
        started = time.perf_counter()
        results = verify_inputs_batch(checks, flags, threads=script_threads)
        script_seconds = time.perf_counter() - started
        for check, result in zip(checks, results, strict=True):
            if result is not ScriptError.SCRIPT_ERR_OK:
                return ConnectResult(ValidationState.invalid(
                    f"mandatory-script-verify-flag-failed ({result.message})", dos=100,
                    debug=f"input {check.n_in} of tx {check.tx.txid_hex}"), [])
    view.set_best_block(index.block_hash)
    return ConnectResult(VALID, undo, fees, inputs, script_seconds)


def _with_debug(state: ValidationState, debug: str) -> ValidationState:
    return ValidationState.invalid(state.reject_reason, dos=state.dos, code=state.reject_code,
                                   corruption_possible=state.corruption_possible, debug=debug)


class DisconnectResult(Enum):
    OK = "ok"
    UNCLEAN = "unclean"  # rolled back, but the UTXO set did not match the block
    FAILED = "failed"


def _apply_txin_undo(coin: Coin, view: CoinsViewCache, outpoint: OutPoint) -> DisconnectResult:
    """Core: ApplyTxInUndo."""
    if coin.height == 0:
        # Pre-0.15 records left the height out except on a transaction's last spend, and Core borrows
        # it from a sibling output. AIPG's first node was 0.15-based, so such records cannot exist.
        return DisconnectResult.FAILED
    clean = not view.have_coin(outpoint)
    view.add_coin(outpoint, coin, possible_overwrite=not clean)
    return DisconnectResult.OK if clean else DisconnectResult.UNCLEAN


def disconnect_block(block: Block, index: BlockIndex, block_undo: Sequence[TxUndo],
                     view: CoinsViewCache) -> DisconnectResult:
    """Core: DisconnectBlock, with the undo data already read and its checksum verified."""
    if len(block_undo) + 1 != len(block.vtx):
        return DisconnectResult.FAILED
    clean = True
    for i in range(len(block.vtx) - 1, -1, -1):
        tx = block.vtx[i]
        txid = tx.txid
        coinbase = tx.is_coinbase()
        # The outputs must be unspent now; spend them.
        for n, txout in enumerate(tx.vout):
            if is_unspendable(txout.script_pubkey):
                continue
            coin = view.spend_coin(OutPoint(txid, n))
            if coin is None or coin.out != txout or coin.height != index.height or coin.coinbase != coinbase:
                clean = False
        if i > 0:
            tx_undo = block_undo[i - 1]
            if len(tx_undo) != len(tx.vin):
                return DisconnectResult.FAILED
            for j in range(len(tx.vin) - 1, -1, -1):
                result = _apply_txin_undo(tx_undo[j], view, tx.vin[j].prevout)
                if result is DisconnectResult.FAILED:
                    return result
                clean = clean and result is DisconnectResult.OK
    assert index.prev is not None
    view.set_best_block(index.prev.block_hash)
    return DisconnectResult.OK if clean else DisconnectResult.UNCLEAN


def rollforward_block(block: Block, index: BlockIndex, view: CoinsViewCache) -> None:
    """Core: RollforwardBlock, re-apply a block already validated once (ReplayBlocks): spend its
    inputs and add its outputs, each step idempotent, with no checks."""
    for tx in block.vtx:
        if not tx.is_coinbase():
            for txin in tx.vin:
                view.spend_coin(txin.prevout)
        # Every addition may be an overwrite.
        for n, txout in enumerate(tx.vout):
            view.add_coin(OutPoint(tx.txid, n), Coin(txout, index.height, tx.is_coinbase()), True)
