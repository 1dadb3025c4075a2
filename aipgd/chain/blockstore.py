"""Block and undo flat files `blocks/blkNNNNN.dat` / `revNNNNN.dat` in Core's format.

A record is the message start, a LE32 size and the payload; undo records are followed by a 32-byte
checksum. Owns choosing where a block goes (Core: FindBlockPos, 128 MiB files) and where its undo
data goes (FindUndoPos: the rev file with the block's number), writing and fsyncing them
(WriteBlockToDisk, UndoWriteToDisk, FlushBlockFile), reading them back with size limits and the
in-memory file bookkeeping that ChainState persists in the block index. It must never parse or judge
blocks, and never write the index database itself.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from aipgd.chain.dbwrapper import REINDEX_ADVICE
from aipgd.chain.diskformat import BlockFileInfo
from aipgd.errors import InitError
from aipgd.log import log_print

logger = logging.getLogger(__name__)

MAX_BLOCKFILE_SIZE = 0x8000000  # 128 MiB (Core: validation.h)
# Core 22's -fastprune: 64 KiB files, so that tests can prune with a few hundred small blocks.
FAST_PRUNE_BLOCKFILE_SIZE = 0x10000
# Core: nMinDiskSpace, the free space below which the node stops rather than corrupt its files.
MIN_DISK_SPACE = 52428800
# Bound on a stored block's size before we allocate for it: Core's MAX_BLOCK_SERIALIZED_SIZE once
# the asset deployment's 8 MB blocks are active.
MAX_BLOCK_SERIALIZED_SIZE = 8_000_000
# Undo data of a block is far smaller than the block (at most ~11 bytes per spent input plus
# the spent scripts, which the block's inputs bound); the same cap keeps a corrupt size harmless.
MAX_UNDO_SIZE = MAX_BLOCK_SERIALIZED_SIZE
_STORAGE_HEADER = struct.Struct("<4sI")
UNDO_CHECKSUM_SIZE = 32


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
                 min_free_bytes: int = MIN_DISK_SPACE, max_file_size: int = MAX_BLOCKFILE_SIZE) -> None:
        if len(message_start) != 4:
            raise ValueError("message start must be 4 bytes")
        self.blocks_dir = blocks_dir
        self.message_start = message_start
        self.min_free_bytes = min_free_bytes
        self.max_file_size = max_file_size
        self._infos: dict[int, BlockFileInfo] = {}
        self._last_file = 0
        self._dirty_files: set[int] = set()
        self._unsynced_files: set[int] = set()
        self._unsynced_undo: set[int] = set()

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

    def undo_path(self, n: int) -> Path:
        return self.blocks_dir / f"rev{n:05d}.dat"

    def known_block(self, pos: FlatFilePos, size: int, height: int, time: int) -> None:
        """Record a block found in place by -reindex (Core: FindBlockPos with fKnown)."""
        if pos.file > self._last_file:
            self._last_file = pos.file
        info = self.file_info(pos.file)
        end = max(info.size, pos.pos + size)
        self._infos[pos.file] = info.with_block(height, time, end)
        self._dirty_files.add(pos.file)

    def block_file_exists(self, n: int) -> bool:
        return self.block_path(n).is_file()

    def reset(self) -> None:
        """Forget every file's bookkeeping (the index was wiped for -reindex)."""
        self._infos = {}
        self._last_file = 0
        self._dirty_files.clear()

    # -- pruning -------------------------------------------------------------------------------

    def current_usage(self) -> int:
        """Core: CalculateCurrentUsage, the bytes of every blk and rev file we account for."""
        return sum(info.size + info.undo_size for info in self._infos.values())

    def forget_file(self, n: int) -> None:
        """Core: PruneOneBlockFile's vinfoBlockFile[n].SetNull(); the files go in unlink_files()."""
        self._infos[n] = BlockFileInfo()
        self._dirty_files.add(n)
        self._unsynced_files.discard(n)
        self._unsynced_undo.discard(n)

    def unlink_files(self, numbers: Iterable[int]) -> None:
        """Core: UnlinkPrunedFiles, delete each blk/rev pair (after the index stopped naming them)."""
        for n in sorted(numbers):
            for path in (self.block_path(n), self.undo_path(n)):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise BlockFileError(f"Failed to delete {path}: {exc.strerror}") from exc
            logger.info("Prune: UnlinkPrunedFiles deleted blk/rev (%05d)", n)

    def remove_unusable_files(self) -> None:
        """Core: CleanupBlockRevFiles (-reindex with -prune): delete every rev file, and every blk file
        after the first gap in the numbering, since the reindex stops there."""
        logger.info("Removing unusable blk?????.dat and rev?????.dat files for -reindex with -prune")
        numbered: dict[int, Path] = {}
        for path in self.blocks_dir.iterdir():
            name = path.name
            if len(name) != 12 or not name.endswith(".dat") or not name[3:8].isdigit() or not path.is_file():
                continue
            if name.startswith("rev"):
                path.unlink()
            elif name.startswith("blk"):
                numbered[int(name[3:8])] = path
        expected = 0
        for n in sorted(numbered):
            if n == expected:
                expected += 1
            else:
                numbered[n].unlink()

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
        while self.file_info(n).size + add_size >= self.max_file_size and self.file_info(n).size:
            n += 1
        if n != self._last_file:
            self.flush()
            log_print(logger, "db", "Leaving block file %d: %s", self._last_file,
                      self.file_info(self._last_file))
            self._last_file = n
        offset = self.file_info(n).size
        self.check_disk_space(add_size)
        record = _STORAGE_HEADER.pack(self.message_start, len(block_bytes)) + block_bytes
        self._pwrite(self.block_path(n), record, offset)
        self._infos[n] = self.file_info(n).with_block(height, time, offset + add_size)
        self._dirty_files.add(n)
        self._unsynced_files.add(n)
        return FlatFilePos(n, offset + _STORAGE_HEADER.size)

    def write_undo(self, n: int, undo_bytes: bytes, checksum: bytes) -> FlatFilePos:
        """Append a block's undo record to revNNNNN.dat, `n` being its block's file (Core: FindUndoPos
        + UndoWriteToDisk); `checksum` is sha256d(parent hash + undo bytes). Durable after flush()."""
        if len(checksum) != UNDO_CHECKSUM_SIZE:
            raise ValueError("the undo checksum is 32 bytes")
        add_size = len(undo_bytes) + _STORAGE_HEADER.size + UNDO_CHECKSUM_SIZE
        info = self.file_info(n)
        offset = info.undo_size
        self.check_disk_space(add_size)
        record = _STORAGE_HEADER.pack(self.message_start, len(undo_bytes)) + undo_bytes + checksum
        self._pwrite(self.undo_path(n), record, offset)
        self._infos[n] = replace(info, undo_size=offset + add_size)
        self._dirty_files.add(n)
        self._unsynced_undo.add(n)
        return FlatFilePos(n, offset + _STORAGE_HEADER.size)

    def _pwrite(self, path: Path, record: bytes, offset: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                # An offset past the recorded size may hold bytes of a write that a crash cut short
                # before the index recorded it; overwriting them is what Core does too.
                os.pwrite(fd, record, offset)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._write_error(path, exc) from exc

    def flush(self) -> None:
        """fsync every file written since the last flush (Core: FlushBlockFile / FileCommit)."""
        paths = ([self.block_path(n) for n in sorted(self._unsynced_files)]
                 + [self.undo_path(n) for n in sorted(self._unsynced_undo)])
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise self._write_error(path, exc) from exc
        self._unsynced_files.clear()
        self._unsynced_undo.clear()

    @staticmethod
    def _write_error(path: Path, exc: OSError) -> BlockFileError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return BlockFileError(f"Disk space is low! Could not write {path}: {exc.strerror}")
        return BlockFileError(f"Failed to write block file {path}: {exc.strerror}")

    # -- reading -------------------------------------------------------------------------------

    def check_files(self, block_ends: dict[int, int], undo_ends: dict[int, int]) -> None:
        """Core: LoadBlockIndexDB's "Checking all blk files are present...", and beyond Core, that no
        file is shorter than the furthest record the index places in it (`*_ends`: file -> offset)."""
        logger.info("Checking all blk files are present...")
        checks = ((block_ends, self.block_path, "block"), (undo_ends, self.undo_path, "undo"))
        for ends, path_of, kind in checks:
            for n, end in sorted(ends.items()):
                path = path_of(n)
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    raise BlockFileError(
                        f"The {kind} file {path} is missing, but the block index refers to it. "
                        f"{REINDEX_ADVICE}") from None
                except OSError as exc:
                    raise BlockFileError(f"Cannot access {path}: {exc.strerror}") from exc
                if size < end:
                    raise BlockFileError(
                        f"The {kind} file {path} has {size} bytes, but the block index points to "
                        f"offset {end} in it: the file is truncated. {REINDEX_ADVICE}")

    def read_block_bytes(self, pos: FlatFilePos) -> bytes:
        """The stored bytes of the block at `pos`, after checking the message start and size (Core:
        ReadBlockFromDisk; the caller checks the hash)."""
        return self._read_record(self.block_path(pos.file), pos, MAX_BLOCK_SERIALIZED_SIZE, 0)

    def read_undo_bytes(self, pos: FlatFilePos) -> tuple[bytes, bytes]:
        """The undo bytes at `pos` and the checksum stored after them (the caller verifies it)."""
        data = self._read_record(self.undo_path(pos.file), pos, MAX_UNDO_SIZE, UNDO_CHECKSUM_SIZE)
        return data[:-UNDO_CHECKSUM_SIZE], data[-UNDO_CHECKSUM_SIZE:]

    def _read_record(self, path: Path, pos: FlatFilePos, max_size: int, trailer: int) -> bytes:
        if pos.pos < _STORAGE_HEADER.size:
            raise BlockFileError(f"Invalid position {pos} of {path.name} in the block index. "
                                 f"{REINDEX_ADVICE}")
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
                if size > max_size:
                    raise BlockFileError(f"Block file {path} claims a {size}-byte record at offset "
                                         f"{pos.pos}. {REINDEX_ADVICE}")
                size += trailer
                data = f.read(size)
        except FileNotFoundError as exc:
            raise BlockFileError(f"Block file {path} is missing. {REINDEX_ADVICE}") from exc
        except OSError as exc:
            raise BlockFileError(f"Failed to read block file {path}: {exc.strerror}") from exc
        if len(data) != size:
            raise BlockFileError(f"Block file {path} is truncated at offset {pos.pos}. {REINDEX_ADVICE}")
        return data
