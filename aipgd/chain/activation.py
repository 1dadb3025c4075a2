"""Moving the active chain: choosing the best chain and connecting and disconnecting its tip
(Core: ActivateBestChain, ActivateBestChainStep, FindMostWorkChain, ConnectTip, DisconnectTip).

Owns the step-by-step walk to the most-work valid chain, the -assumevalid rule that decides whether
a block's scripts are checked, writing each connected block's undo data and merging its block-local
UTXO view into the tip cache, and marking blocks found invalid. ChainState calls in here with its
lock held per step; validity itself is decided by aipgd.chain.connect, and durability by flushing.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aipgd.chain.blockindex import BlockIndex, block_proof_equivalent_time
from aipgd.chain.coinsview import CoinsViewCache
from aipgd.chain.connect import DisconnectResult, connect_block, disconnect_block
from aipgd.chain.dbwrapper import REINDEX_ADVICE
from aipgd.chain.diskformat import (
    BLOCK_FAILED_CHILD,
    BLOCK_FAILED_VALID,
    BLOCK_HAVE_UNDO,
    BLOCK_VALID_SCRIPTS,
)
from aipgd.chain.flushing import FlushMode
from aipgd.chain.gcpolicy import relaxed_gc
from aipgd.chain.undo import serialize_block_undo, undo_checksum
from aipgd.consensus.validation_state import VALID, ValidationState

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState

# UpdateTip and the invalid-block warnings keep the logger they always had.
logger = logging.getLogger("aipgd.chain.chainstate")

# Core: ConnectBlock's assumevalid rule, skip scripts only when two weeks of work sit on top.
ASSUMEVALID_MIN_BURY_SECONDS = 60 * 60 * 24 * 7 * 2
# Blocks kept in memory between acceptance and connection, and failure verdicts kept for callers.
RECENT_BLOCKS = 64


def activate_best_chain(cs: ChainState,
                        progress: Callable[[BlockIndex], None] | None = None) -> ValidationState:
    """Core: ActivateBestChain. Returns an error state only for local failures; invalid blocks
    are marked and skipped. Raises ChainStateError when the active chain cannot be changed.
    The lock is taken step by step, so readers get in between; `progress` sees each new tip."""
    most_work: BlockIndex | None = None
    with relaxed_gc():
        while not cs.interrupt.is_set():
            with cs.lock, cs._fatal_on_local_failure():
                if most_work is None:
                    most_work = find_most_work_chain(cs)
                if most_work is None or most_work is cs.chain.tip:
                    break
                if activate_step(cs, most_work):
                    most_work = None
                elif cs.chain.tip is most_work:
                    break
                tip = cs.chain.tip
            if progress is not None and tip is not None:
                progress(tip)
    notify_tip(cs)
    cs.flush(FlushMode.PERIODIC)
    return VALID


def find_most_work_chain(cs: ChainState) -> BlockIndex | None:
    """Core: FindMostWorkChain, the best candidate whose blocks off the active chain are all
    stored and not failed; unusable candidates are dropped (failed ones marked failed-child)."""
    tree = cs.tree
    while True:
        new = tree.best_candidate()
        if new is None:
            return None
        test: BlockIndex | None = new
        usable = True
        while test is not None and not cs.chain.contains(test):
            failed_chain = test.failed
            if failed_chain or not test.have_data:
                best_invalid = tree.best_invalid
                if failed_chain and (best_invalid is None or new.chain_work > best_invalid.chain_work):
                    tree.best_invalid = new
                walk: BlockIndex = new
                while walk is not test:
                    if failed_chain:
                        walk.status |= BLOCK_FAILED_CHILD
                        tree.mark_dirty(walk)
                    elif walk.prev is not None:
                        tree.unlinked.setdefault(walk.prev, []).append(walk)
                    tree.candidates.discard(walk)
                    assert walk.prev is not None
                    walk = walk.prev
                tree.candidates.discard(test)
                usable = False
                break
            test = test.prev
        if usable:
            return new


def activate_step(cs: ChainState, most_work: BlockIndex) -> bool:
    """Core: ActivateBestChainStep. Returns whether an invalid block was found."""
    old_tip = cs.chain.tip
    fork = cs.chain.find_fork(most_work)
    while cs.chain.tip is not None and cs.chain.tip is not fork:
        disconnect_tip(cs)
    height = fork.height if fork is not None else -1
    while height != most_work.height:
        # A few blocks at a time: most steps need only a handful of the way to the best tip.
        target = min(height + 32, most_work.height)
        to_connect: list[BlockIndex] = []
        walk = most_work.get_ancestor(target)
        while walk is not None and walk.height != height:
            to_connect.append(walk)
            walk = walk.prev
        height = target
        for index in reversed(to_connect):
            state = connect_tip(cs, index)
            if not state:
                if state.is_invalid():
                    return True
                from aipgd.chain.chainstate import ChainStateError

                raise ChainStateError(f"ConnectTip failed for block {index.hash_hex}: "
                                      f"{state.reject_reason}")
            cs.tree.prune_candidates(index)
            if old_tip is None or index.chain_work > old_tip.chain_work:
                # Better than where we started: done for this step.
                return False
    return False


def script_checks(cs: ChainState, index: BlockIndex) -> bool:
    """Core: ConnectBlock's -assumevalid rule. Scripts of an ancestor of the assumed-valid block
    (and of the best header) are skipped when two weeks of work are built on it. Proof of work
    was verified when the header was accepted, whatever this says."""
    if cs.assume_valid is None:
        return True
    av = cs.tree.get(cs.assume_valid)
    best = cs.tree.best_header
    if av is None or best is None:
        return True
    if (av.get_ancestor(index.height) is index and best.get_ancestor(index.height) is index
            and best.chain_work >= cs.params.minimum_chain_work):
        buried = block_proof_equivalent_time(best, index, best, cs.params.pow_target_spacing)
        return buried <= ASSUMEVALID_MIN_BURY_SECONDS
    return True


def connect_tip(cs: ChainState, index: BlockIndex) -> ValidationState:
    """Core: ConnectTip, connect `index` (a child of the tip).

    Core connects through a block-local view that is merged into the tip's cache on success. We
    connect straight into the tip's cache with a journal of its changes (which leaves it exactly as
    that merge would), and roll the journal back if the block fails or anything raises."""
    assert index.prev is cs.chain.tip
    timings = cs.timings
    started = time.perf_counter()
    block = cs.read_block(index)
    read = time.perf_counter()
    tip = cs.coins_tip
    tip.begin_journal()
    try:
        result = connect_block(block, index, tip, cs.params, script_checks=script_checks(cs, index),
                               script_threads=cs.script_threads)
        connected = time.perf_counter()
        timings.read_seconds += read - started
        timings.connect_seconds += connected - read
        timings.script_seconds += result.script_seconds
        if not result.state:
            tip.rollback_journal()
            if result.state.is_invalid():
                invalid_block_found(cs, index, result.state)
            cs._block_failures[index.block_hash] = result.state
            while len(cs._block_failures) > RECENT_BLOCKS:
                del cs._block_failures[next(iter(cs._block_failures))]
            return result.state
        if index.prev is not None and (not index.have_undo or not index.is_valid(BLOCK_VALID_SCRIPTS)):
            if not index.have_undo:
                data = serialize_block_undo(result.undo)
                checksum = undo_checksum(index.prev.block_hash, data)
                pos = cs.block_store.write_undo(index.file, data, checksum)
                index.undo_pos = pos.pos
                index.status |= BLOCK_HAVE_UNDO
            index.raise_validity(BLOCK_VALID_SCRIPTS)
            cs.tree.mark_dirty(index)
    except BaseException:
        if tip.journal_open:
            tip.rollback_journal()
        raise
    tip.commit_journal()
    cs.chain.set_tip(index)
    cs._recent_blocks.pop(index.block_hash, None)
    log_tip(cs, "UpdateTip", index)
    cs.signals.block_connected(block, index)
    timings.apply_seconds += time.perf_counter() - connected
    timings.blocks += 1
    timings.transactions += len(block.vtx)
    timings.inputs += result.inputs
    cs.flush(FlushMode.IF_NEEDED)
    return VALID


def disconnect_tip(cs: ChainState) -> None:
    """Core: DisconnectTip. Failing to take the tip back is fatal (AbortNode)."""
    index = cs.chain.tip
    assert index is not None and index.prev is not None, "cannot disconnect the genesis block"
    block = cs.read_block(index)
    view = CoinsViewCache(cs.coins_tip)
    if disconnect_block(block, index, cs.read_undo(index), view) is not DisconnectResult.OK:
        from aipgd.chain.chainstate import ChainStateError

        raise ChainStateError(f"DisconnectTip(): DisconnectBlock {index.hash_hex} failed. "
                              f"{REINDEX_ADVICE}")
    view.flush()
    cs.chain.set_tip(index.prev)
    log_tip(cs, "DisconnectTip", index.prev)
    cs.signals.block_disconnected(block, index)
    cs.flush(FlushMode.IF_NEEDED)


def notify_tip(cs: ChainState) -> None:
    """Core: UpdatedBlockTip and NotifyBlockTip, once the active tip has moved."""
    tip = cs.chain.tip
    if tip is not None and tip is not cs._notified_tip:
        cs._notified_tip = tip
        cs.signals.updated_block_tip(tip, None)


def log_tip(cs: ChainState, what: str, index: BlockIndex) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    date = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(index.time))
    logger.info("%s: new best=%s height=%d version=0x%08x log2_work=%.8g tx=%d date='%s' "
                "cache=%.1fMiB(%dtxo)",
                what, index.hash_hex, index.height, index.header.version & 0xFFFFFFFF,
                index.chain_work.bit_length() - 1 if index.chain_work else 0, index.chain_tx, date,
                cs.coins_tip.memory_usage() / 1048576, len(cs.coins_tip))


def invalid_block_found(cs: ChainState, index: BlockIndex, state: ValidationState) -> None:
    """Core: InvalidBlockFound."""
    if not state.corruption_possible:
        index.status |= BLOCK_FAILED_VALID
        cs.tree.failed_blocks.add(index)
        cs.tree.mark_dirty(index)
        cs.tree.candidates.discard(index)
    invalid_chain_found(cs, index)
    logger.warning("InvalidBlockFound: invalid block=%s height=%d: %s", index.hash_hex, index.height,
                   state)


def invalid_chain_found(cs: ChainState, index: BlockIndex) -> None:
    """Core: InvalidChainFound."""
    tree = cs.tree
    if tree.best_invalid is None or index.chain_work > tree.best_invalid.chain_work:
        tree.best_invalid = index
    tip = cs.chain.tip
    logger.warning("InvalidChainFound: invalid block=%s height=%d; current best=%s height=%d",
                   index.hash_hex, index.height, tip.hash_hex if tip else "-", tip.height if tip else -1)
