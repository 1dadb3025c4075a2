"""Block checks (Core: CheckBlock, ContextualCheckBlockHeader, ContextualCheckBlock in validation.cpp).

Owns the context-free block rules (merkle root incl. CVE-2012-2459 mutation, size, one
coinbase first, per-transaction checks, legacy sigops) and the contextual ones that need
only the parent's height and median time past (time window, version, finality, BIP34
height, BIP141 witness commitment, weight). Proof of work and difficulty are checked by the
caller (they need KawPoW and the header chain); nothing here reads a clock or chain state.
"""

from __future__ import annotations

from aipgd.consensus.limits import (
    LOCKTIME_MEDIAN_TIME_PAST,
    MAX_BLOCK_SIGOPS_COST,
    MAX_BLOCK_WEIGHT,
    WITNESS_SCALE_FACTOR,
)
from aipgd.consensus.tx_check import check_transaction
from aipgd.consensus.tx_verify import is_final_tx, legacy_sigop_count
from aipgd.consensus.validation_state import VALID, RejectCode, ValidationState
from aipgd.core.block import Block, BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.merkle import merkle_root
from aipgd.core.serialize import ser_compact_size
from aipgd.core.uint256 import ZERO_HASH
from aipgd.script.script import push_int

# Core: chain.h. AIPG narrows the future window to 12 minutes once DGW is active.
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
MAX_FUTURE_BLOCK_TIME_DGW = MAX_FUTURE_BLOCK_TIME // 10
# Core: versionbits.h — with assets active from genesis, blocks must signal at least this.
VERSIONBITS_TOP_BITS_ASSETS = 0x30000000
# BIP141 commitment output prefix: OP_RETURN, push 36, 0xaa21a9ed.
WITNESS_COMMITMENT_HEADER = bytes((0x6A, 0x24, 0xAA, 0x21, 0xA9, 0xED))


def _block_framing_size(block: Block) -> int:
    """The header and the transaction count: a block's bytes outside its transactions."""
    return len(block.header.serialize()) + len(ser_compact_size(len(block.vtx)))


def block_base_size(block: Block) -> int:
    """len(block.serialize(with_witness=False)), from the transactions' (cached) sizes."""
    return _block_framing_size(block) + sum([tx.base_size for tx in block.vtx])


def block_total_size(block: Block) -> int:
    """len(block.serialize()), from the transactions' (cached) sizes."""
    return _block_framing_size(block) + sum([tx.total_size for tx in block.vtx])


def block_weight(block: Block) -> int:
    """Core: GetBlockWeight — stripped size * 3 + total size."""
    return block_base_size(block) * (WITNESS_SCALE_FACTOR - 1) + block_total_size(block)


def check_block(block: Block, *, check_merkle_root: bool = True, db_check: bool = False) -> ValidationState:
    """Core: CheckBlock without the proof-of-work part of CheckBlockHeader."""
    if check_merkle_root:
        root, mutated = block.compute_merkle_root()
        if block.header.merkle_root != root:
            return ValidationState.invalid("bad-txnmrklroot", dos=100, corruption_possible=True,
                                           debug="hashMerkleRoot mismatch")
        # Duplicate transactions that leave the root unchanged (CVE-2012-2459).
        if mutated:
            return ValidationState.invalid("bad-txns-duplicate", dos=100, corruption_possible=True,
                                           debug="duplicate transaction")
    if (not block.vtx or len(block.vtx) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT
            or block_base_size(block) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT):
        return ValidationState.invalid("bad-blk-length", dos=100, debug="size limits failed")
    if not block.vtx[0].is_coinbase():
        return ValidationState.invalid("bad-cb-missing", dos=100, debug="first tx is not coinbase")
    for tx in block.vtx[1:]:
        if tx.is_coinbase():
            return ValidationState.invalid("bad-cb-multiple", dos=100, debug="more than one coinbase")
    for tx in block.vtx:
        state = check_transaction(tx, check_duplicate_inputs=True, mempool_check=False,
                                  block_check=not db_check)
        if not state:
            reason = state.reject_reason
            debug = f"Transaction check failed (tx hash {tx.txid_hex}) {state.debug_message} {reason}"
            return ValidationState.invalid(reason, dos=state.dos, code=state.reject_code, debug=debug)
    sigops = sum(legacy_sigop_count(tx) for tx in block.vtx)
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST:
        return ValidationState.invalid("bad-blk-sigops", dos=100, debug="out-of-bounds SigOpCount")
    return VALID


def contextual_check_block_header(header: BlockHeader, prev_height: int, prev_median_time_past: int,
                                  adjusted_time: int, *, dgw_active: bool,
                                  expected_bits: int | None = None) -> ValidationState:
    """Core: ContextualCheckBlockHeader, less the reorg-depth and checkpoint rules (node policy).

    `expected_bits` is GetNextWorkRequired for this header, when the caller has computed it.
    """
    if expected_bits is not None and header.bits != expected_bits:
        return ValidationState.invalid("bad-diffbits", dos=100, debug="incorrect proof of work")
    if header.time <= prev_median_time_past:
        return ValidationState.invalid("time-too-old", debug="block's timestamp is too early")
    window = MAX_FUTURE_BLOCK_TIME_DGW if dgw_active else MAX_FUTURE_BLOCK_TIME
    if header.time > adjusted_time + window:
        return ValidationState.invalid("time-too-new", debug="block timestamp too far in the future")
    if header.version < VERSIONBITS_TOP_BITS_ASSETS:
        version = header.version & 0xFFFFFFFF
        return ValidationState.invalid(f"bad-version(0x{version:08x})", code=RejectCode.REJECT_OBSOLETE,
                                       debug=f"rejected nVersion=0x{version:08x} block")
    return VALID


def witness_commitment_index(block: Block) -> int:
    """Core: GetWitnessCommitmentIndex — the last coinbase output carrying the commitment, or -1."""
    index = -1
    if block.vtx:
        for i, txout in enumerate(block.vtx[0].vout):
            script = txout.script_pubkey
            if len(script) >= 38 and script[:6] == WITNESS_COMMITMENT_HEADER:
                index = i
    return index


def block_witness_merkle_root(block: Block) -> tuple[bytes, bool]:
    """Core: BlockWitnessMerkleRoot — the coinbase's wtxid counts as zero."""
    leaves = [ZERO_HASH] + [tx.wtxid for tx in block.vtx[1:]]
    return merkle_root(leaves)


def contextual_check_block(block: Block, prev_height: int | None, prev_median_time_past: int | None, *,
                           bip34_height: int, segwit_enabled: bool = True,
                           csv_enabled: bool = True) -> ValidationState:
    """Core: ContextualCheckBlock. `prev_height` is None for the genesis block."""
    height = 0 if prev_height is None else prev_height + 1
    flags = LOCKTIME_MEDIAN_TIME_PAST if csv_enabled else 0
    # BIP113: lock times are judged against the parent's median time past.
    cutoff = (prev_median_time_past if flags & LOCKTIME_MEDIAN_TIME_PAST and prev_median_time_past is not None
              else block.header.time)
    for tx in block.vtx:
        if not is_final_tx(tx, height, cutoff):
            return ValidationState.invalid("bad-txns-nonfinal", dos=10, debug="non-final transaction")
    # BIP34: the coinbase scriptSig starts with the serialized height.
    if height >= bip34_height:
        expect = push_int(height)
        if not block.vtx[0].vin[0].script_sig.startswith(expect):
            return ValidationState.invalid("bad-cb-height", dos=100,
                                           debug="block height mismatch in coinbase")
    have_witness = False
    if segwit_enabled:
        index = witness_commitment_index(block)
        if index != -1:
            root, _ = block_witness_merkle_root(block)
            nonce = block.vtx[0].vin[0].witness
            if len(nonce) != 1 or len(nonce[0]) != 32:
                return ValidationState.invalid("bad-witness-nonce-size", dos=100, corruption_possible=True,
                                               debug="ContextualCheckBlock : invalid witness nonce size")
            if sha256d(root + nonce[0]) != block.vtx[0].vout[index].script_pubkey[6:38]:
                return ValidationState.invalid(
                    "bad-witness-merkle-match", dos=100, corruption_possible=True,
                    debug="ContextualCheckBlock : witness merkle commitment mismatch")
            have_witness = True
    if not have_witness and any(tx.has_witness() for tx in block.vtx):
        return ValidationState.invalid("unexpected-witness", dos=100, corruption_possible=True,
                                       debug="ContextualCheckBlock : unexpected witness data found")
    if block_weight(block) > MAX_BLOCK_WEIGHT:
        return ValidationState.invalid("bad-blk-weight", dos=100,
                                       debug="ContextualCheckBlock : weight limit failed")
    return VALID
