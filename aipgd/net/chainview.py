"""ChainView: the narrow window the network layer has onto the chain.

Owns the protocols aipgd.net needs from chain state (the tip height announced in version; for
header and block sync: locators, the fork point of a peer's locator, headers after it, blocks to
serve, batches of headers and blocks to accept, tip notifications) and the adapter over ChainState.
It must never mutate chain state except through ChainState's own methods.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aipgd.consensus.validation_state import VALID, ValidationState

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.chain.chainstate import ChainState
    from aipgd.core.block import Block, BlockHeader

logger = logging.getLogger(__name__)

# Reject reasons of a failed proof of work: never honest, so a headers message carrying one bans.
POW_REJECT_REASONS = frozenset({"high-hash", "invalid-mix-hash", "bad-kawpow-height"})

TipListener = Callable[["BlockIndex", "BlockIndex | None", bool], None]


class ChainView(Protocol):
    def tip_height(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HeadersResult:
    """What accept_headers did with one batch (Core: ProcessNewBlockHeaders' state and ppindex)."""

    state: ValidationState
    last: BlockIndex | None  # the last header accepted (or already known)
    accepted: int  # headers accepted or already known, in order, before any failure
    pow_checks: int  # headers whose proof of work had to be verified (new ones)


class SyncChainView(ChainView, Protocol):
    """What header and block sync need (implemented over ChainState below)."""

    def tip(self) -> BlockIndex | None: ...

    def best_header(self) -> BlockIndex | None: ...

    def lookup(self, block_hash: bytes) -> BlockIndex | None: ...

    def in_active_chain(self, index: BlockIndex) -> bool: ...

    def next_in_chain(self, index: BlockIndex) -> BlockIndex | None: ...

    def at_height(self, height: int) -> BlockIndex | None: ...

    def locator(self, index: BlockIndex | None = None) -> list[bytes]: ...

    def find_fork(self, locator: Sequence[bytes]) -> BlockIndex | None: ...

    def headers_after(self, locator: Sequence[bytes], hash_stop: bytes, limit: int) -> list[BlockIndex]: ...

    def get_block(self, index: BlockIndex) -> Block | None: ...

    def accept_headers(self, headers: Sequence[BlockHeader]) -> HeadersResult: ...

    def process_block(self, block: Block) -> tuple[ValidationState, bool]: ...

    def initial_block_download(self) -> bool: ...

    def subscribe_tip(self, listener: TipListener) -> None: ...

    def unsubscribe_tip(self, listener: TipListener) -> None: ...

    @property
    def pruned(self) -> bool: ...

    @property
    def target_spacing(self) -> int: ...


class StaticChainView:
    """A chain that stays at one height (unit tests, tools)."""

    def __init__(self, height: int = 0) -> None:
        self.height = height

    def tip_height(self) -> int:
        return self.height


class ChainStateChainView:
    """SyncChainView over ChainState. Reads of the index and the active chain are single lookups in
    structures that ChainState changes under its lock; the multi-step walks that run in the executor
    (find_fork, headers_after) take the lock, those on the event loop never do."""

    def __init__(self, chainstate: ChainState, clock: Callable[[], float] = time.time) -> None:
        self._chainstate = chainstate
        self._clock = clock
        self._listeners: list[TipListener] = []
        self._lock = threading.Lock()
        self._subscribed = False

    # --- reads -----------------------------------------------------------------------------------------
    def tip_height(self) -> int:
        tip = self._chainstate.tip
        return tip.height if tip is not None else -1

    def tip(self) -> BlockIndex | None:
        return self._chainstate.tip

    def best_header(self) -> BlockIndex | None:
        return self._chainstate.best_header or self._chainstate.tip

    def lookup(self, block_hash: bytes) -> BlockIndex | None:
        return self._chainstate.block_index.get(block_hash)

    def in_active_chain(self, index: BlockIndex) -> bool:
        return self._chainstate.chain.contains(index)

    def next_in_chain(self, index: BlockIndex) -> BlockIndex | None:
        return self._chainstate.chain.next(index)

    def at_height(self, height: int) -> BlockIndex | None:
        return self._chainstate.chain[height]

    def locator(self, index: BlockIndex | None = None) -> list[bytes]:
        # Lock-free, as it runs on the event loop: a reorg in between only makes the locator
        # less precise (the peer answers from an older fork point), never wrong.
        return self._chainstate.chain.locator(index)

    def find_fork(self, locator: Sequence[bytes]) -> BlockIndex | None:
        """Core: FindForkInGlobalIndex, the first locator entry on our active chain (else genesis)."""
        cs = self._chainstate
        with cs.lock:
            for block_hash in locator:
                index = cs.block_index.get(block_hash)
                if index is None:
                    continue
                if cs.chain.contains(index):
                    return index
                if cs.tip is not None and index.get_ancestor(cs.tip.height) is cs.tip:
                    return cs.tip
            return cs.chain.genesis

    def headers_after(self, locator: Sequence[bytes], hash_stop: bytes, limit: int) -> list[BlockIndex]:
        """Core: the getheaders walk, the active chain after the locator's fork, up to `hash_stop`."""
        cs = self._chainstate
        with cs.lock:
            if not locator:
                start = cs.block_index.get(hash_stop)
                return [start] if start is not None else []
            fork = self.find_fork(locator)
            walk = cs.chain.next(fork) if fork is not None else None
            out: list[BlockIndex] = []
            while walk is not None and len(out) < limit:
                out.append(walk)
                if walk.block_hash == hash_stop:
                    break
                walk = cs.chain.next(walk)
            return out

    def get_block(self, index: BlockIndex) -> Block | None:
        """The block's data from disk (blocking: call it off the event loop), None when pruned."""
        if not index.have_data:
            return None
        try:
            return self._chainstate.read_block(index)
        except Exception as exc:  # a pruned or damaged file: the peer gets notfound
            logger.warning("could not read block %s for a peer: %s", index.hash_hex, exc)
            return None

    def initial_block_download(self) -> bool:
        cs = self._chainstate
        return bool(cs.signals.initial_block_download(cs.tip, cs.params, self._clock()))

    @property
    def pruned(self) -> bool:
        return bool(self._chainstate.prune_mode)

    @property
    def target_spacing(self) -> int:
        return int(self._chainstate.params.pow_target_spacing)

    # --- writes (blocking: call them off the event loop) -----------------------------------------------
    def accept_headers(self, headers: Sequence[BlockHeader]) -> HeadersResult:
        """Core: ProcessNewBlockHeaders. In order, stopping at the first failure, so a batch of fake
        headers costs one proof-of-work verification."""
        cs = self._chainstate
        last: BlockIndex | None = None
        pow_checks = 0
        accepted = 0
        for header in headers:
            if header.hash not in cs.block_index:
                pow_checks += 1
            state, index = cs.accept_block_header(header)
            if not state:
                return HeadersResult(state, last, accepted, pow_checks)
            last = index
            accepted += 1
        return HeadersResult(VALID, last, accepted, pow_checks)

    def process_block(self, block: Block) -> tuple[ValidationState, bool]:
        """Core: ProcessNewBlock. Returns the verdict and whether the block's data was new to us."""
        known = self._chainstate.block_index.get(block.hash)
        new = known is None or not known.have_data
        return self._chainstate.process_new_block(block), new

    # --- tip notifications -----------------------------------------------------------------------------
    def subscribe_tip(self, listener: TipListener) -> None:
        """`listener(tip, fork, initial_download)` runs on the thread that moved the tip: be quick."""
        with self._lock:
            self._listeners = [*self._listeners, listener]
            if not self._subscribed:
                self._subscribed = True
                self._chainstate.signals.subscribe(self)

    def unsubscribe_tip(self, listener: TipListener) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def updated_block_tip(self, tip: BlockIndex, fork: BlockIndex | None) -> None:
        ibd = self.initial_block_download()
        for listener in self._listeners:
            listener(tip, fork, ibd)
