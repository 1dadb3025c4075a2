"""Fakes for the network layer's unit tests: a header chain with a SyncChainView face and a peer that
records what it is sent (Core: the CNode stubs of its unit tests)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.diskformat import BLOCK_HAVE_DATA, BLOCK_VALID_TRANSACTIONS
from aipgd.core.block import BlockHeader
from aipgd.net import messages as msg
from aipgd.net.peer import ConnectionType
from aipgd.net.protocol import NODE_NETWORK, NODE_WITNESS
from aipgd.net.syncstate import PeerSyncState

BITS = 0x207FFFFF


def _hash(height: int, branch: int = 0) -> bytes:
    return height.to_bytes(4, "little") + bytes([branch]) * 28


class FakeChain:
    """A header chain whose first `active` blocks are the active chain."""

    def __init__(self, length: int, active: int = 0, now: float = 1_000_000.0) -> None:
        self.now = now
        self.indexes: list[BlockIndex] = []
        self.by_hash: dict[bytes, BlockIndex] = {}
        prev: BlockIndex | None = None
        for height in range(length + 1):
            index = self.add(height, prev, time=int(now) - (length - height) * 60)
            prev = index
        self.active = active
        for index in self.indexes[: active + 1]:
            self.have(index)

    def add(self, height: int, prev: BlockIndex | None, time: int, branch: int = 0) -> BlockIndex:
        header = BlockHeader(0x30000000, prev.block_hash if prev else bytes(32), bytes(32), time, BITS)
        index = BlockIndex(_hash(height, branch), header, prev, height)
        index.status = 2  # BLOCK_VALID_TREE
        if branch == 0:
            self.indexes.append(index)
        self.by_hash[index.block_hash] = index
        return index

    def have(self, index: BlockIndex, connected: bool = True) -> None:
        index.status |= BLOCK_HAVE_DATA | BLOCK_VALID_TRANSACTIONS
        index.tx_count = 1
        if connected:
            index.chain_tx = index.height + 1

    # SyncChainView
    def tip_height(self) -> int:
        return self.active

    def tip(self) -> BlockIndex:
        return self.indexes[self.active]

    def best_header(self) -> BlockIndex:
        return self.indexes[-1]

    def lookup(self, block_hash: bytes) -> BlockIndex | None:
        return self.by_hash.get(block_hash)

    def in_active_chain(self, index: BlockIndex) -> bool:
        return index.height <= self.active and self.indexes[index.height] is index

    def next_in_chain(self, index: BlockIndex) -> BlockIndex | None:
        return self.indexes[index.height + 1] if self.in_active_chain(index) and index.height < self.active \
            else None

    def at_height(self, height: int) -> BlockIndex | None:
        return self.indexes[height] if 0 <= height <= self.active else None

    def locator(self, index: BlockIndex | None = None) -> list[bytes]:
        return [(index or self.tip()).block_hash]

    def initial_block_download(self) -> bool:
        return False

    def headers_after(self, locator: list[bytes], hash_stop: bytes, limit: int) -> list[BlockIndex]:
        fork = next((self.by_hash[h] for h in locator if h in self.by_hash
                     and self.in_active_chain(self.by_hash[h])), self.indexes[0])
        out = []
        for index in self.indexes[fork.height + 1: self.active + 1]:
            if len(out) == limit:
                break
            out.append(index)
            if index.block_hash == hash_stop:
                break
        return out

    def get_block(self, index: BlockIndex) -> Any:
        return SimpleNamespace(serialize=lambda with_witness=True: index.block_hash)

    def subscribe_tip(self, listener: Any) -> None:
        pass

    def unsubscribe_tip(self, listener: Any) -> None:
        pass

    pruned = False
    target_spacing = 60


class FakePeer:
    def __init__(self, peer_id: int, inbound: bool = False) -> None:
        self.id = peer_id
        self.sync = PeerSyncState()
        self.remote = SimpleNamespace(services=NODE_NETWORK | NODE_WITNESS, start_height=-1,
                                      send_version=70028)
        self.successfully_connected = True
        self.closed = False
        self.inbound = inbound
        self.whitelisted = False
        self.conn_type = ConnectionType.INBOUND if inbound else ConnectionType.OUTBOUND
        self.prefers_headers = False
        self.stats = SimpleNamespace(last_block_time=0.0)
        self.sent: list[msg.Message] = []
        self.misbehavior = 0
        self.disconnect_reason: str | None = None

    def send(self, m: msg.Message) -> None:
        self.sent.append(m)

    def send_payload(self, command: str, payload: bytes) -> None:
        self.sent.append(msg.UnknownMessage(command, payload))

    async def wait_send_drained(self) -> None:
        pass

    def blocks_served(self) -> list[int]:
        return [int.from_bytes(m.payload[:4], "little") for m in self.sent
                if isinstance(m, msg.UnknownMessage) and m.name == "block"]

    def disconnect(self, reason: str) -> None:
        self.closed = True
        self.disconnect_reason = reason

    def misbehaving(self, howmuch: int, reason: str) -> None:
        self.misbehavior += howmuch

    def requested(self) -> list[int]:
        heights = []
        for m in self.sent:
            if isinstance(m, msg.GetData):
                heights += [int.from_bytes(i.hash[:4], "little") for i in m.items]
        return heights
