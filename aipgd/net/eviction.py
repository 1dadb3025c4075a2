"""Which inbound peer to drop when every inbound slot is taken (Core: AttemptToEvictConnection).

Owns the pure selection rule: protect the peers an attacker can least easily imitate (distinct
network groups under a secret key, lowest ping, recent block and transaction relayers, the longest
connected), then evict the youngest peer of the network group holding most connections. It must
never touch peers themselves: the ConnectionManager passes snapshots in and disconnects the answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aipgd.core.hashes import sha256d


@dataclass(frozen=True, slots=True)
class EvictionCandidate:
    peer_id: int
    connected_at: float
    min_ping: float
    last_block_time: float
    last_tx_time: float
    group: bytes
    relay_txs: bool


def _drop_protected(candidates: list[EvictionCandidate], key: Callable[[EvictionCandidate], Any], count: int,
                    reverse: bool = False) -> list[EvictionCandidate]:
    """Sort so the most protectable come last, then protect (remove) the last `count`."""
    ordered: list[EvictionCandidate] = sorted(candidates, key=key, reverse=reverse)
    return ordered[:max(0, len(ordered) - count)]


def select_node_to_evict(candidates: list[EvictionCandidate], secret: bytes) -> int | None:
    pool = list(candidates)
    # Core: 4 by keyed network group, 8 by lowest ping, 4 by recent tx, 4 by recent block.
    pool = _drop_protected(pool, lambda c: sha256d(secret + c.group), 4)
    pool = _drop_protected(pool, lambda c: c.min_ping, 8, reverse=True)
    pool = _drop_protected(pool, lambda c: (c.last_tx_time, c.relay_txs, -c.connected_at), 4)
    pool = _drop_protected(pool, lambda c: (c.last_block_time, -c.connected_at), 4)
    # Core: protect the half that has been connected longest.
    pool = _drop_protected(pool, lambda c: -c.connected_at, len(pool) // 2)
    if not pool:
        return None
    groups: dict[bytes, list[EvictionCandidate]] = defaultdict(list)
    for c in pool:
        groups[c.group].append(c)
    # The group with most connections; ties go to the group with the youngest member.
    _, members = max(groups.items(), key=lambda kv: (len(kv[1]), max(c.connected_at for c in kv[1])))
    return max(members, key=lambda c: c.connected_at).peer_id
