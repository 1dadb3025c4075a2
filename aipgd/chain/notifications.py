"""Chain events for listeners outside the chain (Core: validationinterface's CMainSignals and
cvBlockChange).

Owns the listener list and the tip-change condition. ChainState calls these while it holds its
lock, so a listener must be quick and must never call back into ChainState: anything slow (a shell
command, a socket send) is queued to the listener's own thread. A listener that raises is logged
and skipped; it never stops the chain.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.core.block import Block
    from aipgd.core.params import ChainParams

logger = logging.getLogger(__name__)

# Core: validation.h DEFAULT_MAX_TIP_AGE.
DEFAULT_MAX_TIP_AGE = 24 * 60 * 60


class ChainListener(Protocol):
    """Any subset of these methods; missing ones are not called."""

    def block_connected(self, block: Block, index: BlockIndex) -> None: ...

    def block_disconnected(self, block: Block, index: BlockIndex) -> None: ...

    def updated_block_tip(self, tip: BlockIndex, fork: BlockIndex | None) -> None: ...


class ChainSignals:
    def __init__(self) -> None:
        self._listeners: list[object] = []
        self._lock = threading.Lock()
        # Core: cvBlockChange. Notified (with the new tip) after every change of the active tip.
        self.tip_changed = threading.Condition()
        self.tip_sequence = 0
        self._left_initial_download = False

    def initial_block_download(self, tip: BlockIndex | None, params: ChainParams, now: float) -> bool:
        """Core: IsInitialBlockDownload (latched: once out, never back in)."""
        if self._left_initial_download:
            return False
        if tip is None or tip.chain_work < params.minimum_chain_work:
            return True
        if tip.time < now - DEFAULT_MAX_TIP_AGE:
            return True
        self._left_initial_download = True
        return False

    def subscribe(self, listener: object) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: object) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def _emit(self, name: str, *args: object) -> None:
        for listener in self._listeners:
            fn = getattr(listener, name, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                logger.exception("chain listener %s.%s failed", type(listener).__name__, name)

    def block_connected(self, block: Block, index: BlockIndex) -> None:
        self._emit("block_connected", block, index)

    def block_disconnected(self, block: Block, index: BlockIndex) -> None:
        self._emit("block_disconnected", block, index)

    def updated_block_tip(self, tip: BlockIndex, fork: BlockIndex | None) -> None:
        """Core: UpdatedBlockTip, once per ActivateBestChain that moved the tip, then cvBlockChange."""
        self._emit("updated_block_tip", tip, fork)
        with self.tip_changed:
            self.tip_sequence += 1
            self.tip_changed.notify_all()
