"""ChainView: the narrow window the network layer has onto the chain.

Owns the protocol aipgd.net needs from chain state (today: the tip height announced in version;
header and block sync will add locators, headers_after, get_block and accept_headers) and the
adapter over ChainState. It must never mutate chain state except through ChainState's own methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aipgd.chain.chainstate import ChainState


class ChainView(Protocol):
    def tip_height(self) -> int: ...


class StaticChainView:
    """A chain that stays at one height (unit tests, tools)."""

    def __init__(self, height: int = 0) -> None:
        self.height = height

    def tip_height(self) -> int:
        return self.height


class ChainStateChainView:
    def __init__(self, chainstate: ChainState) -> None:
        self._chainstate = chainstate

    def tip_height(self) -> int:
        tip = self._chainstate.tip
        return tip.height if tip is not None else -1
