"""mempool.dat in Core 0.15's format (Core: DumpMempool, LoadMempool).

Layout: uint64 version (1), uint64 count, then per transaction its serialization (with witness),
int64 accept time and int64 fee delta, then the remaining prioritisation deltas as a map
(compact size, then uint256 txid and int64 delta each). Written to mempool.dat.new, synced and
renamed over the old file. It must never accept transactions: the manager does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from aipgd.core.serialize import ByteReader, ser_compact_size, ser_i64, ser_u64
from aipgd.core.transaction import Transaction

if TYPE_CHECKING:
    from aipgd.mempool.txmempool import MempoolEntry

MEMPOOL_FILENAME = "mempool.dat"
MEMPOOL_DUMP_VERSION = 1
# The smallest serialized transaction plus its two int64s bounds the count before allocating.
_MIN_RECORD = 60 + 16


def dump_mempool(path: Path, entries: Iterable[MempoolEntry], deltas: dict[bytes, int]) -> None:
    remaining = dict(deltas)
    records = []
    for entry in entries:
        remaining.pop(entry.txid, None)
        records.append(entry.tx.serialize() + ser_i64(entry.time) + ser_i64(entry.fee_delta))
    data = bytearray(ser_u64(MEMPOOL_DUMP_VERSION) + ser_u64(len(records)))
    for record in records:
        data += record
    data += ser_compact_size(len(remaining))
    for txid, delta in remaining.items():
        data += txid + ser_i64(delta)
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_mempool(path: Path) -> tuple[list[tuple[Transaction, int, int]], dict[bytes, int]]:
    """Returns [(tx, accept time, fee delta)] and the extra deltas; raises ValueError when malformed."""
    data = path.read_bytes()
    r = ByteReader(data)
    version = r.u64("mempool version")
    if version != MEMPOOL_DUMP_VERSION:
        raise ValueError(f"unknown mempool.dat version {version}")
    count = r.u64("mempool count")
    if count * _MIN_RECORD > r.remaining:
        raise ValueError("mempool.dat count exceeds the file")
    records = []
    for _ in range(count):
        tx = Transaction.read(r)
        records.append((tx, r.i64("accept time"), r.i64("fee delta")))
    deltas: dict[bytes, int] = {}
    n = r.compact_size("mempool deltas", limit=r.remaining // 40 + 1)
    for _ in range(n):
        txid = r.hash256("txid")
        deltas[txid] = r.i64("delta")
    r.expect_end("mempool.dat")
    return records, deltas
