"""Test helpers: mine real KawPoW regtest blocks on any branch, and open a ChainState on a tmp datadir.

`ChainBuilder` keeps its own light header tree (height, time, bits, parent), so forks can be built
without a node; blocks are assembled by aipgd.mining and solved with KawPoW light hashing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import kawpow
from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockstore import BlockStore
from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.chainstate import ChainState, ChainStateOptions
from aipgd.consensus.pow import get_next_work_required
from aipgd.core.block import Block, BlockHeader
from aipgd.core.merkle import merkle_root
from aipgd.core.params import ChainParams
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.mining.assembler import create_block, mine_block

OP_TRUE = b"\x51"


@dataclass
class Link:
    """A HeaderLink for difficulty and median time past."""

    block_hash: bytes
    height: int
    time: int
    bits: int
    prev: Link | None

    def median_time_past(self) -> int:
        times: list[int] = []
        walk: Link | None = self
        while walk is not None and len(times) < 11:
            times.append(walk.time)
            walk = walk.prev
        return sorted(times)[len(times) // 2]


class ChainBuilder:
    def __init__(self, params: ChainParams, contexts: kawpow.ContextCache) -> None:
        self.params = params
        self.contexts = contexts
        g = params.genesis.header
        genesis = Link(params.genesis_hash, 0, g.time, g.bits, None)
        self.links: dict[bytes, Link] = {params.genesis_hash: genesis}
        self.blocks: dict[bytes, Block] = {params.genesis_hash: params.genesis}
        self._extra = 0

    def link(self, block_hash: bytes) -> Link:
        return self.links[block_hash]

    def block(self, parent: bytes, txs: Sequence[Transaction] = (), *, fees: int = 0, time: int | None = None,
              payout: bytes = OP_TRUE,
              coinbase: Callable[[Transaction], Transaction] | None = None,
              header: Callable[[BlockHeader], BlockHeader] | None = None,
              mine: bool = True) -> Block:
        """A block on `parent`; `coinbase`/`header` mutate it before solving (the merkle root follows a
        changed coinbase, not a changed header)."""
        prev = self.links[parent]
        when = time if time is not None else prev.time + 60
        bits = get_next_work_required(prev, when, self.params)
        self._extra += 1
        block = create_block(self.params, parent, prev.height, prev.median_time_past(), bits, txs, payout,
                             when, fees=fees, extra_nonce=self._extra)
        if coinbase is not None:
            vtx = (coinbase(block.vtx[0]), *block.vtx[1:])
            root, _ = merkle_root([tx.txid for tx in vtx])
            block = Block(block.header.with_fields(merkle_root=root), vtx)
        if header is not None:
            block = Block(header(block.header), block.vtx)
        if mine:
            solved = mine_block(block, self.params, contexts=self.contexts)
            assert solved is not None
            block = solved
        self.add(block)
        return block

    def add(self, block: Block) -> None:
        h = block.header
        prev = self.links.get(h.prev_hash)
        if prev is not None:
            self.links[block.hash] = Link(block.hash, prev.height + 1, h.time, h.bits, prev)
            self.blocks[block.hash] = block

    def chain(self, parent: bytes, count: int) -> list[Block]:
        out = []
        for _ in range(count):
            block = self.block(parent)
            out.append(block)
            parent = block.hash
        return out


def spend(prevouts: Sequence[OutPoint], outputs: Sequence[tuple[int, bytes]], *, script_sig: bytes = b"",
          version: int = 2, locktime: int = 0, sequence: int = 0xFFFFFFFF) -> Transaction:
    return Transaction(version, tuple(TxIn(p, script_sig, sequence) for p in prevouts),
                       tuple(TxOut(v, s) for v, s in outputs), locktime)


def with_coinbase_outputs(*values: int | None, scripts: dict[int, bytes] | None = None
                          ) -> Callable[[Transaction], Transaction]:
    """A coinbase mutator setting output values (None keeps one) and scripts."""
    def mutate(cb: Transaction) -> Transaction:
        vout = list(cb.vout)
        for i, v in enumerate(values):
            if v is not None:
                vout[i] = replace(vout[i], value=v)
        for i, s in (scripts or {}).items():
            vout[i] = replace(vout[i], script_pubkey=s)
        return replace(cb, vout=tuple(vout), _cache={})
    return mutate


class Stack:
    """The chain storage stack a Node builds, on `netdir`."""

    def __init__(self, netdir: Path, params: ChainParams, contexts: kawpow.ContextCache,
                 options: ChainStateOptions | None = None, **kwargs: object) -> None:
        (netdir / "blocks").mkdir(parents=True, exist_ok=True)
        self.store = BlockStore(netdir / "blocks", params.message_start)
        self.tree = BlockTreeDB(netdir / "blocks" / "index")
        self.coins = ChainStateDB(netdir / "chainstate")
        self.state = ChainState(params, self.store, self.tree, self.coins,
                                options=options or ChainStateOptions(check_level=4, script_threads=2),
                                contexts=contexts, **kwargs)  # type: ignore[arg-type]

    def open(self) -> ChainState:
        self.tree.start()
        self.coins.start()
        self.state.start()
        return self.state

    def close(self) -> None:
        """A clean shutdown (Core: Shutdown flushes everything)."""
        self.state.stop()
        self.crash()

    def crash(self) -> None:
        """Drop the process's state on the floor, as a kill -9 would: nothing more is written."""
        self.coins.stop()
        self.tree.stop()


@contextmanager
def open_chain(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache,
               **kwargs: object) -> Iterator[ChainState]:
    stack = Stack(netdir, params, contexts, **kwargs)  # type: ignore[arg-type]
    state = stack.open()
    try:
        yield state
    finally:
        stack.close()


def submit_all(state: ChainState, blocks: Sequence[Block]) -> None:
    for block in blocks:
        verdict = state.process_new_block(block)
        assert verdict, f"block {block.hash_hex}: {verdict}"
