"""Block assembly (Core: BlockAssembler::CreateNewBlock, IncrementExtraNonce, GenerateCoinbaseCommitment).

Owns turning (parent, transactions, payout script, time) into a complete, unsolved block
exactly as AIPG Core's miner lays it out, and solving it with KawPoW (or X16RV2 before
activation) for regtest and tests. It must never choose transactions: callers (the mempool's
package selection, tests) pass them in with their total fee.
"""

from __future__ import annotations

from collections.abc import Sequence

import kawpow
from aipgd.consensus.block_check import VERSIONBITS_TOP_BITS_ASSETS, block_witness_merkle_root
from aipgd.consensus.pow import check_proof_of_work
from aipgd.consensus.subsidy import block_subsidy, community_fee_value
from aipgd.core.block import Block, BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.merkle import merkle_root
from aipgd.core.params import ChainParams
from aipgd.core.transaction import NULL_OUTPOINT, Transaction, TxIn, TxOut
from aipgd.core.uint256 import ZERO_HASH, compact_to_target
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script, encode_script_num

# The BIP141 witness reserved value Core's miner puts in the coinbase witness.
WITNESS_RESERVED_VALUE = bytes(32)


class MiningError(ValueError):
    """Inputs that cannot make a valid block (time not after the parent's median time, ...)."""


def coinbase_script_sig(height: int, extra_nonce: int = 0) -> bytes:
    """Core: `CScript() << nHeight << CScriptNum(nExtraNonce)` — BIP34 height first."""
    return build_script(height, encode_script_num(extra_nonce))


def create_coinbase(params: ChainParams, height: int, fees: int, payout_script: bytes,
                    extra_nonce: int = 0) -> Transaction:
    """The coinbase Core's CreateNewBlock writes: vout[0] pays the miner subsidy + fees minus the
    community share, vout[1] pays the community address its share (zero/empty on testnet)."""
    subsidy = block_subsidy(height, params)
    community = community_fee_value(height, params)
    return Transaction(
        version=1,
        vin=(TxIn(NULL_OUTPOINT, coinbase_script_sig(height, extra_nonce)),),
        vout=(TxOut(fees + subsidy - community, payout_script),
              TxOut(community, params.community_autonomous_script)),
        locktime=0,
    )


def _add_witness_commitment(coinbase: Transaction, txs: Sequence[Transaction]) -> Transaction:
    """Core: GenerateCoinbaseCommitment + UpdateUncommittedBlockStructures (segwit is on from genesis)."""
    witness_root, _ = block_witness_merkle_root(Block(_DUMMY_HEADER, (coinbase, *txs)))
    commitment = sha256d(witness_root + WITNESS_RESERVED_VALUE)
    script = bytes((Op.OP_RETURN, 0x24, 0xAA, 0x21, 0xA9, 0xED)) + commitment
    first = coinbase.vin[0]
    return Transaction(
        coinbase.version,
        (TxIn(first.prevout, first.script_sig, first.sequence, (WITNESS_RESERVED_VALUE,)),),
        (*coinbase.vout, TxOut(0, script)),
        coinbase.locktime,
    )


_DUMMY_HEADER = BlockHeader(0, ZERO_HASH, ZERO_HASH, 0, 0)


def create_block(params: ChainParams, prev_hash: bytes, prev_height: int, prev_median_time_past: int,
                 bits: int, txs: Sequence[Transaction], payout_script: bytes, time: int, *,
                 fees: int = 0, extra_nonce: int = 0,
                 version: int = VERSIONBITS_TOP_BITS_ASSETS) -> Block:
    """An unsolved block on top of `prev_hash` (nonce 0, empty mix).

    `bits` is GetNextWorkRequired for the parent (the caller has the header chain); `time`
    must be after the parent's median time past (Core's UpdateTime takes max(mtp + 1, now)).
    """
    if time <= prev_median_time_past:
        raise MiningError(f"block time {time} is not after the median time past {prev_median_time_past}")
    height = prev_height + 1
    coinbase = _add_witness_commitment(create_coinbase(params, height, fees, payout_script, extra_nonce), txs)
    vtx = (coinbase, *txs)
    root, _ = merkle_root([tx.txid for tx in vtx])
    if params.is_kawpow_time(time):
        header = BlockHeader(version, prev_hash, root, time, bits, height=height, kawpow=True)
    else:
        header = BlockHeader(version, prev_hash, root, time, bits)
    return Block(header, vtx)


def solve_header(header: BlockHeader, params: ChainParams, *, contexts: kawpow.ContextCache | None = None,
                 start_nonce: int = 0, max_tries: int = 1 << 20) -> BlockHeader | None:
    """Search nonces for a header that meets its own nBits; None when `max_tries` run out."""
    target, negative, overflow = compact_to_target(header.bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        raise MiningError(f"nBits 0x{header.bits:08x} is not a valid target for {params.network}")
    if header.kawpow:
        found = kawpow.search(header.height, header.kawpow_input(), target.to_bytes(32, "big"),
                              start_nonce, max_tries, contexts=contexts)
        if found is None:
            return None
        return header.with_fields(nonce64=found.nonce, mix_hash=found.mix_hash[::-1])
    for nonce in range(start_nonce, min(start_nonce + max_tries, 1 << 32)):
        candidate = header.with_fields(nonce=nonce)
        if check_proof_of_work(candidate.hash, candidate.bits, params):
            return candidate
    return None


def mine_block(block: Block, params: ChainParams, *, contexts: kawpow.ContextCache | None = None,
               max_tries: int = 1 << 20) -> Block | None:
    """`block` with a header that satisfies its proof of work, or None."""
    header = solve_header(block.header, params, contexts=contexts, max_tries=max_tries)
    return None if header is None else Block(header, block.vtx)
