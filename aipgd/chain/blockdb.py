"""The block index database `blocks/index` in AIPG Core's key layout (Core: CBlockTreeDB).

Owns the `b`+hash block index records, `f`+file block file info, `l` last block file and the `R`
reindex flag. It must never write a record on its own initiative: ChainState decides what and when,
and every write is one synced batch so a crash leaves either the old or the new records.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from aipgd.chain.dbwrapper import REINDEX_ADVICE, LevelDB, LevelDBStore
from aipgd.chain.diskformat import BlockFileInfo, DiskBlockIndex
from aipgd.core.serialize import DeserializationError

DB_BLOCK_FILES = b"f"
DB_BLOCK_INDEX = b"b"
DB_LAST_BLOCK = b"l"
DB_REINDEX_FLAG = b"R"
DB_FLAG = b"F"
FLAG_PRUNED_BLOCK_FILES = "prunedblockfiles"

# Core: nBlockTreeDBCache's floor; the index is small until headers sync arrives.
BLOCK_TREE_CACHE_BYTES = 2 << 20

_I32 = struct.Struct("<i")


def _flag_key(name: str) -> bytes:
    # Core: std::make_pair(DB_FLAG, std::string(name)), the string with its compact-size length.
    raw = name.encode()
    return DB_FLAG + bytes([len(raw)]) + raw


def _file_key(n: int) -> bytes:
    # Core serializes std::make_pair(DB_BLOCK_FILES, nFile): one char then a little-endian int.
    return DB_BLOCK_FILES + _I32.pack(n)


class BlockTreeDB(LevelDBStore):
    """blocks/index (no obfuscation, as in Core)."""

    name = "block index database"

    def __init__(self, path: Path, *, wipe: bool = False) -> None:
        super().__init__(LevelDB(path, label="block index", obfuscate=False,
                                 cache_bytes=BLOCK_TREE_CACHE_BYTES, advice=REINDEX_ADVICE, wipe=wipe))

    def read_reindexing(self) -> bool:
        return self._db.exists(DB_REINDEX_FLAG)

    def write_reindexing(self, reindexing: bool) -> None:
        """Core: WriteReindexing, the flag that makes an interrupted -reindex resume at the next start."""
        self._db.write_batch([(DB_REINDEX_FLAG, b"1" if reindexing else None)], sync=True)

    def read_flag(self, name: str) -> bool:
        """Core: ReadFlag ('1' or '0'; absent reads as false)."""
        return self._db.get(_flag_key(name)) == b"1"

    def write_flag(self, name: str, value: bool) -> None:
        self._db.write_batch([(_flag_key(name), b"1" if value else b"0")], sync=True)

    def read_last_block_file(self) -> int | None:
        value = self._db.get(DB_LAST_BLOCK)
        if value is None:
            return None
        if len(value) != 4:
            raise self._corrupt("the last block file number", ValueError(f"{len(value)}-byte value"))
        n: int = _I32.unpack(value)[0]
        return n

    def read_block_file_info(self, n: int) -> BlockFileInfo | None:
        value = self._db.get(_file_key(n))
        if value is None:
            return None
        try:
            return BlockFileInfo.deserialize(value)
        except DeserializationError as exc:
            raise self._corrupt(f"block file info {n}", exc) from exc

    def has_any_block_index(self) -> bool:
        return self._db.has_prefix(DB_BLOCK_INDEX)

    def has_block_index(self, block_hash: bytes) -> bool:
        return self._db.exists(DB_BLOCK_INDEX + block_hash)

    def load_block_index(self, kawpow_activation_time: int) -> dict[bytes, DiskBlockIndex]:
        """Every block index record, keyed by block hash (Core: LoadBlockIndexGuts)."""
        entries: dict[bytes, DiskBlockIndex] = {}
        for key, value in self._db.iterate_prefix(DB_BLOCK_INDEX):
            if len(key) != 33:
                raise self._corrupt("a block index key", ValueError(f"key {key.hex()} has a bad length"))
            try:
                entries[key[1:]] = DiskBlockIndex.deserialize(value, kawpow_activation_time)
            except DeserializationError as exc:
                raise self._corrupt(f"block index record {key[1:][::-1].hex()}", exc) from exc
        return entries

    def write_batch_sync(self, file_infos: dict[int, BlockFileInfo], last_file: int,
                         entries: Iterable[tuple[bytes, DiskBlockIndex]]) -> None:
        """Core: CBlockTreeDB::WriteBatchSync, one atomic, synced batch."""
        ops: list[tuple[bytes, bytes | None]] = [
            (_file_key(n), info.serialize()) for n, info in file_infos.items()]
        ops.append((DB_LAST_BLOCK, _I32.pack(last_file)))
        ops += [(DB_BLOCK_INDEX + block_hash, entry.serialize()) for block_hash, entry in entries]
        self._db.write_batch(ops, sync=True)
