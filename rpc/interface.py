"""The narrow view of the node that RPC methods may use, and its adapter over today's ChainState.

Owns `NodeInterface` (what a method may ask: the tip, a block-index entry, a block by hash, the height
index of the active chain, a coin) and `ChainStateView`, which answers those questions from
`aipgd.chain` without exposing it. It must never write chain state, and methods must never import
`aipgd.chain`: when ChainState changes shape, only this adapter follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aipgd.core.block import Block, BlockHeader
from aipgd.core.params import ChainParams
from aipgd.core.transaction import OutPoint, TxOut


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


class ChainStateView:
    """NodeInterface over aipgd.chain's ChainState.

    It reads `tip`, `chain` (the active chain by height), `block_index` (BlockIndex entries carrying
    `chain_work`, `prev`, `median_time_past()`), `best_header`, `read_block(index)` and `get_coin`, taking
    ChainState's lock only for the coin lookup (the others are single reads of structures that are
    replaced, never mutated in place, under the GIL).
    """

    def __init__(self, params: ChainParams, chainstate: Any) -> None:
        self.params = params
        self._cs = chainstate

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
