"""The narrow view of the node that RPC methods may use, and its adapter over today's ChainState.

Owns `NodeInterface` (what a method may ask: the tip, a block-index entry, a block by hash, the height
index of the active chain, a coin, chain tips and statistics, a transaction; and what it may ask the
chain to do: submit a block, invalidate/reconsider/precious, verify, prune) and `ChainStateView`,
which answers from `aipgd.chain` without exposing it. Every change of chain state goes through
ChainState's own methods (the one door); this adapter never writes anything itself, and methods
must never import `aipgd.chain`: when ChainState changes shape, only this adapter follows it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aipgd.consensus.versionbits import (
    BIP9Stats,
    ThresholdState,
    VersionBitsCache,
    compute_block_version,
    state_for,
    state_since_height,
    statistics,
)
from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import ChainParams, Deployment
from aipgd.core.transaction import OutPoint, Transaction, TxOut

# Core (AIPG): AccessByTxid tries outputs below GetMaxBlockWeight() / MIN_TRANSACTION_OUTPUT_WEIGHT,
# 8,000,000 / (4 * 9-byte empty CTxOut) once assets are active (always, in AIPG Core).
ACCESS_BY_TXID_OUTPUTS = 8_000_000 // 36


@dataclass(frozen=True, slots=True)
class TipInfo:
    block_hash: bytes
    height: int


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """What Core's CBlockIndex tells RPC about one block."""

    block_hash: bytes
    height: int
    header: BlockHeader
    tx_count: int
    chain_work: int
    median_time_past: int
    have_data: bool
    prev_hash: bytes | None
    next_hash: bytes | None  # the successor on the active chain
    in_active_chain: bool


@dataclass(frozen=True, slots=True)
class CoinInfo:
    out: TxOut
    height: int
    coinbase: bool


@dataclass(frozen=True, slots=True)
class ChainTip:
    height: int
    block_hash: bytes
    branch_len: int
    status: str  # Core's getchaintips status words


@dataclass(frozen=True, slots=True)
class UtxoSetInfo:
    height: int
    best_block: bytes
    transactions: int
    outputs: int
    bogo_size: int
    hash_serialized: bytes
    disk_size: int
    total_amount: int


@dataclass(frozen=True, slots=True)
class BlockVerdict:
    """What became of a submitted block (Core: the BlockChecked state submitblock catches)."""

    valid: bool
    error: bool  # a local failure (RPC_VERIFY_ERROR) rather than an invalid block
    reason: str
    connected: bool  # the block is now valid up to its scripts (BlockChecked fired)


@dataclass(frozen=True, slots=True)
class MiningParent:
    """The tip a new block would build on, and what a block on it must carry."""

    block_hash: bytes
    height: int
    median_time_past: int
    next_bits: Callable[[int], int]  # nBits for a block with this nTime (GetNextWorkRequired)


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One BIP9 deployment as seen by the child of a block (Core: VersionBitsState and friends)."""

    deployment: Deployment
    state: ThresholdState
    since: int
    stats: BIP9Stats | None  # only while STARTED, counted over the parent's period


@dataclass(frozen=True, slots=True)
class VersionBitsInfo:
    """The version a child of `block_hash` should carry (Core: ComputeBlockVersion) and its deployments."""

    block_hash: bytes
    version: int
    deployments: tuple[DeploymentStatus, ...]


class ChainActionError(Exception):
    """An operator action the chain refused; `code` is the RPC error code Core uses."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NodeInterface(Protocol):
    """Everything RPC methods may read from the node. Implementations must be thread-safe for reads."""

    params: ChainParams

    def tip(self) -> TipInfo | None: ...

    def block_hash_at(self, height: int) -> bytes | None: ...

    def block_entry(self, block_hash: bytes) -> BlockEntry | None: ...

    def read_block(self, block_hash: bytes) -> Block | None: ...

    def best_header_height(self) -> int: ...

    def get_coin(self, outpoint: OutPoint) -> CoinInfo | None: ...

    def size_on_disk(self) -> int: ...

    def wait_for_tip(self, done: Callable[[TipInfo], bool], timeout: float | None,
                     interrupted: threading.Event) -> TipInfo: ...

    def utxo_set_info(self) -> UtxoSetInfo: ...

    def chain_tips(self) -> list[ChainTip]: ...

    def chain_tx(self, block_hash: bytes) -> int: ...

    def verify_chain(self, check_level: int | None, check_blocks: int | None) -> bool: ...

    def invalidate_block(self, block_hash: bytes) -> None: ...

    def reconsider_block(self, block_hash: bytes) -> None: ...

    def precious_block(self, block_hash: bytes) -> None: ...

    def prune_block_files(self, height: int) -> int: ...

    def mining_parent(self) -> MiningParent: ...

    def block_status(self, block_hash: bytes) -> str | None: ...

    def submit_block(self, block: Block) -> BlockVerdict: ...

    def peer_count(self) -> int: ...

    def initial_block_download(self) -> bool: ...

    def kawpow_contexts(self) -> Any: ...

    def txindex_enabled(self) -> bool: ...

    def find_transaction(self, txid: bytes) -> tuple[Transaction, bytes | None] | None: ...

    def coin_height_by_txid(self, txid: bytes) -> int | None: ...

    def versionbits(self, block_hash: bytes | None = None) -> VersionBitsInfo | None: ...

    def validate_block_proposal(self, block: Block) -> BlockVerdict | None: ...


class ChainStateView:
    """NodeInterface over aipgd.chain's ChainState.

    It reads `tip`, `chain` (the active chain by height), `block_index` (BlockIndex entries carrying
    `chain_work`, `prev`, `median_time_past()`), `best_header`, `read_block(index)` and `get_coin`, taking
    ChainState's lock only for the coin lookup (the others are single reads of structures that are
    replaced, never mutated in place, under the GIL).
    """

    def __init__(self, params: ChainParams, chainstate: Any, *, peer_count: Callable[[], int] = lambda: 0,
                 txindex: Any = None, mempool: Any = None) -> None:
        self.params = params
        self._cs = chainstate
        self._peer_count = peer_count
        self.txindex = txindex
        # aipgd.mempool's MempoolManager (rpc/mempool.py uses its public methods), or None.
        self.mempool = mempool
        # Core: versionbitscache, the BIP9 states memoised per (deployment, period end).
        self._vb_cache: VersionBitsCache = {}
        self._vb_lock = threading.Lock()

    def tip(self) -> TipInfo | None:
        tip = self._cs.tip
        if tip is None:
            return None
        return TipInfo(tip.block_hash, tip.height)

    def block_hash_at(self, height: int) -> bytes | None:
        index = self._cs.chain[height]
        return index.block_hash if index is not None else None

    def best_header_height(self) -> int:
        best = self._cs.best_header
        if best is not None:
            return int(best.height)
        tip = self._cs.tip
        return int(tip.height) if tip is not None else -1

    def block_entry(self, block_hash: bytes) -> BlockEntry | None:
        index = self._cs.block_index.get(block_hash)
        if index is None:
            return None
        chain = self._cs.chain
        active = chain.contains(index)
        nxt = chain.next(index) if active else None
        return BlockEntry(
            block_hash=block_hash, height=index.height, header=index.header, tx_count=index.tx_count,
            chain_work=index.chain_work, median_time_past=index.median_time_past(),
            have_data=bool(index.have_data),
            prev_hash=index.prev.block_hash if index.prev is not None else None,
            next_hash=nxt.block_hash if nxt is not None else None, in_active_chain=active)

    def read_block(self, block_hash: bytes) -> Block | None:
        index = self._cs.block_index.get(block_hash)
        if index is None or not index.have_data:
            return None
        block: Block = self._cs.read_block(index)
        return block

    def get_coin(self, outpoint: OutPoint) -> CoinInfo | None:
        coin = self._cs.get_coin(outpoint)
        if coin is None:
            return None
        return CoinInfo(coin.out, coin.height, coin.coinbase)

    def size_on_disk(self) -> int:
        """Core: CalculateCurrentUsage, the bytes of block and undo files."""
        store = self._cs.block_store
        total = 0
        for n in range(store.last_file + 1):
            info = store.file_info(n)
            total += info.size + info.undo_size
        return total

    # -- waiting -------------------------------------------------------------------------------

    def wait_for_tip(self, done: Callable[[TipInfo], bool], timeout: float | None,
                     interrupted: threading.Event) -> TipInfo:
        """Core: cond_blockchange.wait_for(...), woken by ChainState's tip notification. Returns the
        tip once `done(tip)`, the timeout passes or the server stops."""
        signals = self._cs.signals
        deadline = None if timeout is None else time.monotonic() + timeout
        with signals.tip_changed:
            while True:
                tip = self.tip()
                assert tip is not None
                if done(tip) or interrupted.is_set():
                    return tip
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return tip
                # Bounded so that a server stop (which sets `interrupted`) is seen soon.
                signals.tip_changed.wait(0.5 if remaining is None else min(remaining, 0.5))

    # -- statistics ----------------------------------------------------------------------------

    def utxo_set_info(self) -> UtxoSetInfo:
        """Core: GetUTXOStats after FlushStateToDisk, with nBogoSize and the database's size."""
        from aipgd.chain.coinsview import utxo_set_hash

        cs = self._cs
        bogo = 0

        def counted(coins: Iterator[tuple[OutPoint, Any]]) -> Iterator[tuple[OutPoint, Any]]:
            nonlocal bogo
            for outpoint, coin in coins:
                # Core: 32 txid + 4 vout + 4 height/coinbase + 8 amount + 2 script length + script.
                bogo += 50 + len(coin.out.script_pubkey)
                yield outpoint, coin

        with cs.lock:
            cs.flush()
            best = cs.coins_tip.get_best_block()
            assert best is not None
            index = cs.block_index.get(best)
            digest, txs, outputs, total = utxo_set_hash(best, counted(cs.coins_view.iterate_coins()))
        disk = sum(f.stat().st_size for f in Path(cs.coins_db.path).iterdir() if f.is_file())
        return UtxoSetInfo(index.height if index is not None else -1, best, txs, outputs, bogo, digest, disk,
                           total)

    def chain_tips(self) -> list[ChainTip]:
        """Core: getchaintips, every block no other block builds on, and the active tip."""
        from aipgd.chain.diskformat import BLOCK_VALID_SCRIPTS, BLOCK_VALID_TREE

        cs = self._cs
        with cs.lock:
            parents = {index.prev for index in cs.tree if index.prev is not None}
            tips = [index for index in cs.tree if index not in parents]
            if cs.chain.tip is not None and cs.chain.tip not in tips:
                tips.append(cs.chain.tip)
            out: list[ChainTip] = []
            for index in sorted(tips, key=lambda i: -i.height):
                fork = cs.chain.find_fork(index)
                if cs.chain.contains(index):
                    status = "active"
                elif index.failed:
                    status = "invalid"
                elif index.chain_tx == 0:
                    status = "headers-only"
                elif index.is_valid(BLOCK_VALID_SCRIPTS):
                    status = "valid-fork"
                elif index.is_valid(BLOCK_VALID_TREE):
                    status = "valid-headers"
                else:
                    status = "unknown"
                out.append(ChainTip(index.height, index.block_hash,
                                    index.height - (fork.height if fork is not None else 0), status))
            return out

    def chain_tx(self, block_hash: bytes) -> int:
        index = self._cs.block_index.get(block_hash)
        return int(index.chain_tx) if index is not None else 0

    # -- operator actions (through ChainState's methods) ---------------------------------------

    def verify_chain(self, check_level: int | None, check_blocks: int | None) -> bool:
        """Core: CVerifyDB().VerifyDB with -checklevel/-checkblocks as defaults."""
        from aipgd.chain.dbwrapper import DatabaseError
        from aipgd.chain.verifydb import verify_db

        cs = self._cs
        level = cs.options.check_level if check_level is None else check_level
        depth = cs.options.check_blocks if check_blocks is None else check_blocks
        with cs.lock:
            try:
                verify_db(cs, level, depth)
            except DatabaseError:
                return False
        return True

    def _act(self, action: Callable[[bytes], Any], block_hash: bytes) -> None:
        from rpc.errors import RPCErrorCode

        if self._cs.block_index.get(block_hash) is None:
            raise ChainActionError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        state = action(block_hash)
        if not state:
            raise ChainActionError(RPCErrorCode.RPC_DATABASE_ERROR, state.reject_reason)

    def invalidate_block(self, block_hash: bytes) -> None:
        self._act(self._cs.invalidate_block, block_hash)

    def reconsider_block(self, block_hash: bytes) -> None:
        self._act(self._cs.reconsider_block, block_hash)

    def precious_block(self, block_hash: bytes) -> None:
        self._act(self._cs.precious_block, block_hash)

    def prune_block_files(self, height: int) -> int:
        """Core: PruneBlockFilesManual through the pruneblockchain checks (aipgd.chain.prune)."""
        from aipgd.chain.prune import PruneError
        from rpc.errors import RPCErrorCode

        try:
            return int(self._cs.prune_block_files(height))
        except PruneError as exc:
            message = str(exc)
            bad_height = message.startswith(("Negative", "Blockchain is shorter"))
            code = RPCErrorCode.RPC_INVALID_PARAMETER if bad_height else RPCErrorCode.RPC_MISC_ERROR
            raise ChainActionError(code, message) from exc

    # -- mining --------------------------------------------------------------------------------

    def mining_parent(self) -> MiningParent:
        from aipgd.consensus.pow import get_next_work_required

        tip = self._cs.chain.tip
        params = self.params
        return MiningParent(tip.block_hash, tip.height, tip.median_time_past(),
                            lambda when: get_next_work_required(tip, when, params))

    def block_template_transactions(self, parent_hash: bytes) -> tuple[list[Transaction], int]:
        """The mempool's best packages for a block on `parent_hash` and their total fee (Core:
        addPackageTxs); nothing when there is no mempool or the tip has moved on."""
        if self.mempool is None:
            return [], 0
        from aipgd.mining.selection import select_block_transactions

        with self._cs.lock:
            tip = self._cs.chain.tip
            if tip is None or tip.block_hash != parent_hash:
                return [], 0
            return select_block_transactions(self.mempool, tip, self.params)

    def versionbits(self, block_hash: bytes | None = None) -> VersionBitsInfo | None:
        """BIP9 states for a child of `block_hash` (default: the active tip), or None if unknown."""
        index = self._cs.chain.tip if block_hash is None else self._cs.block_index.get(block_hash)
        if index is None:
            return None
        params = self.params
        with self._vb_lock:
            cache = self._vb_cache
            deployments = []
            for dep in params.deployments:
                state = state_for(index, params, dep, cache)
                since = state_since_height(index, params, dep, cache)
                stats = statistics(index, params, dep) if state is ThresholdState.STARTED else None
                deployments.append(DeploymentStatus(dep, state, since, stats))
            version = compute_block_version(index, params, cache)
        return VersionBitsInfo(index.block_hash, version, tuple(deployments))

    def validate_block_proposal(self, block: Block) -> BlockVerdict | None:
        """Core: TestBlockValidity on the tip; None when the block does not build on the tip."""
        from aipgd.chain.proposal import validate_block_proposal

        with self._cs.lock:
            tip = self._cs.chain.tip
            if tip is None or block.header.prev_hash != tip.block_hash:
                return None
            state = validate_block_proposal(self._cs, block)
        return BlockVerdict(bool(state), state.is_error(), state.reject_reason, True)

    def block_status(self, block_hash: bytes) -> str | None:
        """None (unknown), "valid" (valid up to scripts), "failed", or "known" (anything else)."""
        from aipgd.chain.diskformat import BLOCK_VALID_SCRIPTS

        index = self._cs.block_index.get(block_hash)
        if index is None:
            return None
        if index.is_valid(BLOCK_VALID_SCRIPTS):
            return "valid"
        return "failed" if index.failed else "known"

    def submit_block(self, block: Block) -> BlockVerdict:
        """Core: ProcessNewBlock as submitblock runs it."""
        from aipgd.chain.diskformat import BLOCK_VALID_SCRIPTS

        state = self._cs.process_new_block(block)
        index = self._cs.block_index.get(block.hash)
        connected = index is not None and index.is_valid(BLOCK_VALID_SCRIPTS)
        if not state:
            return BlockVerdict(False, state.is_error(), state.reject_reason, True)
        return BlockVerdict(True, False, "", connected)

    def peer_count(self) -> int:
        return self._peer_count()

    def initial_block_download(self) -> bool:
        return bool(self._cs.signals.initial_block_download(self._cs.chain.tip, self.params, time.time()))

    def kawpow_contexts(self) -> Any:
        return self._cs.contexts

    # -- transactions --------------------------------------------------------------------------

    def txindex_enabled(self) -> bool:
        return self.txindex is not None

    def coin_height_by_txid(self, txid: bytes) -> int | None:
        """Core: AccessByTxid on pcoinsTip, the height of the first unspent output of `txid`, trying
        every output index below ACCESS_BY_TXID_OUTPUTS under the chain lock (as Core under cs_main)."""
        with self._cs.lock:
            get_coin = self._cs.coins_tip.get_coin
            for n in range(ACCESS_BY_TXID_OUTPUTS):
                coin = get_coin(OutPoint(txid, n))
                if coin is not None:
                    return int(coin.height)
        return None

    def find_transaction(self, txid: bytes) -> tuple[Transaction, bytes | None] | None:
        """Core 0.15: GetTransaction(fAllowSlow=true): the mempool, then the tx index if enabled,
        else the block holding an unspent output of the transaction."""
        if self.mempool is not None:
            pooled = self.mempool.get_transaction(txid)
            if pooled is not None:
                return pooled, None
        if self.txindex is not None:
            found = self.txindex.find(txid)
            if found is not None:
                return found[0], found[1]
            return None
        height = self.coin_height_by_txid(txid)
        if height is None:
            return None
        block_hash = self.block_hash_at(height)
        block = self.read_block(block_hash) if block_hash is not None else None
        if block is None:
            return None
        for tx in block.vtx:
            if tx.txid == txid:
                return tx, block_hash
        return None
