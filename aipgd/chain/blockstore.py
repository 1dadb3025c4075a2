"""Block flat files `blocks/blkNNNNN.dat` in Core's format: message start, LE32 size, block bytes.

Owns choosing where a block goes (Core: FindBlockPos, 128 MiB files), writing and fsyncing it
(Core: WriteBlockToDisk, FlushBlockFile), reading it back with size limits (ReadBlockFromDisk) and the
in-memory file bookkeeping that ChainState persists in the block index. It must never parse or judge
blocks, and never write the index database itself.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from aipgd.chain.dbwrapper import REINDEX_ADVICE
from aipgd.chain.diskformat import BlockFileInfo
from aipgd.errors import InitError
from aipgd.log import log_print

logger = logging.getLogger(__name__)

MAX_BLOCKFILE_SIZE = 0x8000000  # 128 MiB (Core: validation.h)
# Core: nMinDiskSpace, the free space below which the node stops rather than corrupt its files.
MIN_DISK_SPACE = 52428800
# Bound on a stored block's size before we allocate for it: Core's MAX_BLOCK_SERIALIZED_SIZE once
# the asset deployment's 8 MB blocks are active.
MAX_BLOCK_SERIALIZED_SIZE = 8_000_000
_STORAGE_HEADER = struct.Struct("<4sI")


class BlockFileError(InitError):
    """A block file could not be written or read back."""


@dataclass(frozen=True)
class FlatFilePos:
    """Core: CDiskBlockPos, the file number and the offset of the block bytes (after the 8-byte header)."""

    file: int
    pos: int


class BlockStore:
    name = "block store"

    def __init__(self, blocks_dir: Path, message_start: bytes, *,
                 min_free_bytes: int = MIN_DISK_SPACE) -> None:
        if len(message_start) != 4:
            raise ValueError("message start must be 4 bytes")
        self.blocks_dir = blocks_dir
        self.message_start = message_start
        self.min_free_bytes = min_free_bytes
        self._infos: dict[int, BlockFileInfo] = {}
        self._last_file = 0
        self._dirty_files: set[int] = set()
        self._unsynced_files: set[int] = set()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.flush()

    # -- bookkeeping ---------------------------------------------------------------------------

    def load_file_info(self, last_file: int, infos: dict[int, BlockFileInfo]) -> None:
        """Adopt the bookkeeping read from the block index (Core: LoadBlockIndexDB's vinfoBlockFile)."""
        self._last_file = last_file
        self._infos = dict(infos)
        self._dirty_files.clear()

    @property
    def last_file(self) -> int:
        return self._last_file

    def file_info(self, n: int) -> BlockFileInfo:
        return self._infos.get(n, BlockFileInfo())

    def take_dirty_file_info(self) -> dict[int, BlockFileInfo]:
        """File infos changed since the last call, for ChainState's index batch (Core: setDirtyFileInfo)."""
        dirty = {n: self.file_info(n) for n in sorted(self._dirty_files)}
        self._dirty_files.clear()
        return dirty

    def block_path(self, n: int) -> Path:
        return self.blocks_dir / f"blk{n:05d}.dat"

    # -- writing -------------------------------------------------------------------------------

    def check_disk_space(self, additional: int) -> None:
        """Core: CheckDiskSpace, refuse to write when the disk is nearly full."""
        try:
            st = os.statvfs(self.blocks_dir)
        except OSError as exc:
            raise BlockFileError(f"Cannot access {self.blocks_dir}: {exc.strerror}") from exc
        if st.f_bavail * st.f_frsize < self.min_free_bytes + additional:
            raise BlockFileError(
                f"Disk space is low! aipgd needs at least "
                f"{(self.min_free_bytes + additional) // 1048576} MiB free in {self.blocks_dir}.")

    def write_block(self, block_bytes: bytes, height: int, time: int) -> FlatFilePos:
        """Append one block and update the file's bookkeeping; durable only after flush()."""
        add_size = len(block_bytes) + _STORAGE_HEADER.size
        n = self._last_file
        # Core: FindBlockPos, move to a new file rather than cross MAX_BLOCKFILE_SIZE.
        while self.file_info(n).size + add_size >= MAX_BLOCKFILE_SIZE:
            n += 1
        if n != self._last_file:
            self.flush()
            log_print(logger, "db", "Leaving block file %d: %s", self._last_file,
                      self.file_info(self._last_file))
            self._last_file = n
        offset = self.file_info(n).size
        self.check_disk_space(add_size)
        path = self.block_path(n)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                # An offset past the recorded size may hold bytes of a write that a crash cut short
                # before the index recorded it; overwriting them is what Core does too.
                record = _STORAGE_HEADER.pack(self.message_start, len(block_bytes)) + block_bytes
                os.pwrite(fd, record, offset)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._write_error(path, exc) from exc
        self._infos[n] = self.file_info(n).with_block(height, time, offset + add_size)
        self._dirty_files.add(n)
        self._unsynced_files.add(n)
        return FlatFilePos(n, offset + _STORAGE_HEADER.size)

    def flush(self) -> None:
        """fsync every file written since the last flush (Core: FlushBlockFile / FileCommit)."""
        for n in sorted(self._unsynced_files):
            path = self.block_path(n)
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise self._write_error(path, exc) from exc
        self._unsynced_files.clear()

    @staticmethod
    def _write_error(path: Path, exc: OSError) -> BlockFileError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return BlockFileError(f"Disk space is low! Could not write {path}: {exc.strerror}")
        return BlockFileError(f"Failed to write block file {path}: {exc.strerror}")

    # -- reading -------------------------------------------------------------------------------

    def read_block_bytes(self, pos: FlatFilePos) -> bytes:
        """The stored bytes of the block at `pos`, after checking the message start and size (Core:
        ReadBlockFromDisk; the caller checks the hash)."""
        path = self.block_path(pos.file)
        if pos.pos < _STORAGE_HEADER.size:
            raise BlockFileError(f"Invalid block position {pos} in the block index. {REINDEX_ADVICE}")
        try:
            with open(path, "rb") as f:
                f.seek(pos.pos - _STORAGE_HEADER.size)
                header = f.read(_STORAGE_HEADER.size)
                if len(header) != _STORAGE_HEADER.size:
                    raise BlockFileError(
                        f"Block file {path} is truncated at offset {pos.pos}. {REINDEX_ADVICE}")
                magic, size = _STORAGE_HEADER.unpack(header)
                if magic != self.message_start:
                    raise BlockFileError(
                        f"Block file {path} has a wrong message start at offset {pos.pos - 8} "
                        f"({magic.hex()}, expected {self.message_start.hex()}). {REINDEX_ADVICE}")
                if size > MAX_BLOCK_SERIALIZED_SIZE:
                    raise BlockFileError(f"Block file {path} claims a {size}-byte block at offset {pos.pos}. "
                                         f"{REINDEX_ADVICE}")
                data = f.read(size)
        except FileNotFoundError as exc:
            raise BlockFileError(f"Block file {path} is missing. {REINDEX_ADVICE}") from exc
        except OSError as exc:
            raise BlockFileError(f"Failed to read block file {path}: {exc.strerror}") from exc
        if len(data) != size:
            raise BlockFileError(f"Block file {path} is truncated at offset {pos.pos}. {REINDEX_ADVICE}")
        return data
