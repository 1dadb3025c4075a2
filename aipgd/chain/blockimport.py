"""Importing blocks from flat files: -reindex, -loadblock and bootstrap.dat (Core: ThreadImport,
LoadExternalBlockFile).

Owns scanning a Core-format block file for records (message start, LE32 size, block), skipping
garbage between them, accepting each block through ChainState (in place for -reindex, copied into the
node's blk files otherwise), holding out-of-order blocks until their parent is known, clearing the
reindex flag when the rebuild is complete, and then connecting the best chain, all on one background
thread that stop() interrupts. It must never judge blocks or write databases itself.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from aipgd.chain.blockindex import BlockIndex
from aipgd.chain.blockstore import MAX_BLOCK_SERIALIZED_SIZE, BlockFileError, FlatFilePos
from aipgd.chain.chainstate import ChainState
from aipgd.chain.progress import ProgressReporter, ProgressTask
from aipgd.core.block import Block
from aipgd.core.serialize import ByteReader, DeserializationError
from aipgd.errors import InitError
from aipgd.log import log_print

logger = logging.getLogger(__name__)

_SIZE = struct.Struct("<I")
# Smaller than any block: Core's lower bound on a record's size (an 80-byte header).
MIN_RECORD_SIZE = 80
BOOTSTRAP_FILENAME = "bootstrap.dat"
# Unlike Core, which connects an imported file's blocks only once all of it is read, -loadblock and
# bootstrap.dat connect the best chain every so many new blocks: a long import then makes progress
# that survives a restart, and never holds a whole file's blocks unconnected. -reindex keeps Core's
# order (the index first), since it resumes by scanning every file again anyway.
IMPORT_ACTIVATE_EVERY = 16


class BlockImporter:
    """Core: ThreadImport, run as a Node component on its own thread ("aipg-loadblk")."""

    name = "block importer"

    def __init__(self, chainstate: ChainState, *, import_files: Sequence[Path] = (),
                 bootstrap: Path | None = None, stop_after_import: bool = False,
                 progress: ProgressReporter | None = None,
                 request_shutdown: Callable[[], None] = lambda: None) -> None:
        self.cs = chainstate
        self.import_files = list(import_files)
        self.bootstrap = bootstrap
        self.stop_after_import = stop_after_import
        self.progress = progress or ProgressReporter()
        self.request_shutdown = request_shutdown
        # Core: mapBlocksUnknownParent, parent hash -> where its children lie (only known for -reindex).
        self.unknown_parent: dict[bytes, list[tuple[FlatFilePos, int]]] = {}
        self.loaded = 0
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aipg-loadblk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.cs.interrupt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def interrupted(self) -> bool:
        return self.cs.interrupt.is_set()

    def _run(self) -> None:
        try:
            self.run()
        except InitError as exc:
            # Core: AbortNode. ChainState's flush already reported its own failures.
            self.error = str(exc)
            self.cs.abort_node(self.error)
        except Exception as exc:  # a bug: stop the node rather than run on half-imported
            logger.exception("Unexpected error while importing blocks")
            self.error = f"Unexpected error while importing blocks: {type(exc).__name__}: {exc}"
            self.cs.abort_node(self.error)
        finally:
            self.done.set()

    def run(self) -> None:
        """Core: ThreadImport, on the calling thread."""
        if self.cs.reindexing:
            self.reindex()
        if self.bootstrap is not None and self.bootstrap.is_file() and not self.interrupted:
            logger.info("Importing bootstrap.dat...")
            self.load_file(self.bootstrap)
            if not self.interrupted:
                os.replace(self.bootstrap, self.bootstrap.with_name(BOOTSTRAP_FILENAME + ".old"))
        for path in self.import_files:
            if self.interrupted:
                break
            if not path.is_file():
                logger.warning("Warning: Could not open blocks file %s", path)
                continue
            logger.info("Importing blocks file %s...", path)
            self.load_file(path)
        if self.interrupted:
            logger.info("Block import interrupted by shutdown")
            return
        self.connect_best_chain()
        if not self.interrupted:
            tip = self.cs.tip
            logger.info("Block import finished: tip %s at height %d", tip.hash_hex if tip else "-",
                        tip.height if tip else -1)
        if self.stop_after_import and not self.interrupted:
            logger.info("Stopping after block import")
            self.request_shutdown()

    # -- the steps -----------------------------------------------------------------------------

    def reindex(self) -> None:
        """Core: ThreadImport's -reindex loop, every blkNNNNN.dat from 0 until one is missing."""
        store = self.cs.block_store
        numbers: list[int] = []
        while store.block_file_exists(len(numbers)):
            numbers.append(len(numbers))
        total = sum(store.block_path(n).stat().st_size for n in numbers)
        task = self.progress.task("Reindexing block files", total // 1024, "KiB")
        base = 0
        try:
            for n in numbers:
                if self.interrupted:
                    return
                logger.info("Reindexing block file blk%05d.dat...", n)
                size = store.block_path(n).stat().st_size
                self.load_file(store.block_path(n), file_number=n, task=task, task_base=base)
                base += size
                with self.cs.lock:
                    # What this file added to the index survives a kill (the reindex resumes anyway).
                    self.cs.write_block_index()
        finally:
            task.finish(f"{self.loaded} blocks")
        if self.interrupted:
            return
        with self.cs.lock:
            # Core: WriteReindexing(false) after a final index write, so a crash never clears the flag
            # before every block found is in the index.
            self.cs.write_block_index()
            self.cs.block_tree.write_reindexing(False)
            self.cs.reindexing = False
            logger.info("Reindexing finished")
            self.cs.ensure_genesis()

    def connect_best_chain(self) -> None:
        """Core: ThreadImport's final ActivateBestChain, with progress against the best header."""
        best = self.cs.best_header
        tip = self.cs.tip
        if best is None or (tip is not None and tip.chain_work >= best.chain_work):
            self.cs.activate_best_chain()
            return
        start = tip.height if tip is not None else 0
        task = self.progress.task("Connecting blocks", best.height - start, "blocks")

        def report(index: BlockIndex) -> None:
            task.update(index.height - start, f"height {index.height}")

        try:
            state = self.cs.activate_best_chain(progress=report)
        finally:
            final = self.cs.tip
            if final is not None:
                task.update(final.height - start)
            task.finish(f"tip height {final.height if final is not None else -1}")
        if state.is_error():
            raise InitError(f"Failed to connect best block: {state.reject_reason}")

    def load_file(self, path: Path, *, file_number: int | None = None, task: ProgressTask | None = None,
                  task_base: int = 0) -> int:
        """Core: LoadExternalBlockFile. `file_number` says the file is the node's own blkNNNNN.dat
        (-reindex): blocks are then indexed where they lie instead of being copied."""
        cs = self.cs
        own_task = task is None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise BlockFileError(f"Cannot open block file {path}: {exc.strerror}") from exc
        try:
            length = os.fstat(fd).st_size
            if length == 0:
                return 0
            data = mmap.mmap(fd, length, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        if task is None:
            task = self.progress.task(f"Importing {path.name}", length // 1024, "KiB")
        loaded = 0
        magic = cs.params.message_start
        genesis_hash = cs.params.genesis_hash
        kawpow_time = cs.params.kawpow_activation_time
        pos = 0
        try:
            while pos < length and not self.interrupted:
                found = data.find(magic, pos)
                if found < 0 or found + 8 > length:
                    break
                # Start one byte further next time, in case this is no record after all.
                pos = found + 1
                size = _SIZE.unpack_from(data, found + 4)[0]
                if size < MIN_RECORD_SIZE or size > MAX_BLOCK_SERIALIZED_SIZE:
                    continue
                start = found + 8
                if start + size > length:
                    logger.info("LoadExternalBlockFile: Deserialize or I/O error - truncated record at "
                                "offset %d of %s", found, path)
                    continue
                try:
                    reader = ByteReader(data[start:start + size])
                    block = Block.read(reader, kawpow_time)
                except DeserializationError as exc:
                    logger.info("LoadExternalBlockFile: Deserialize or I/O error - %s", exc)
                    continue
                pos = start + reader.pos
                disk = FlatFilePos(file_number, start) if file_number is not None else None
                block_hash = block.hash
                if block_hash != genesis_hash and block.header.prev_hash not in cs.tree:
                    log_print(logger, "reindex", "LoadExternalBlockFile: Out of order block %s, parent %s "
                              "not known", block.hash_hex, block.header.prev_hash[::-1].hex())
                    if disk is not None:
                        self.unknown_parent.setdefault(block.header.prev_hash, []).append((disk, reader.pos))
                    continue
                known = cs.tree.get(block_hash)
                if block_hash == genesis_hash:
                    if known is None or not known.have_data:
                        loaded += 1
                    # Core: "Activate the genesis block so normal node progress can continue".
                    cs.ensure_genesis(disk)
                elif known is None or not known.have_data:
                    state, _ = cs.accept_block(block, disk_pos=disk, disk_size=reader.pos)
                    if state:
                        loaded += 1
                        if disk is None and loaded % IMPORT_ACTIVATE_EVERY == 0:
                            cs.activate_best_chain()
                    elif state.is_error():
                        raise InitError(f"Failed to import block {block.hash_hex}: {state.reject_reason}")
                elif known.height % 1000 == 0:
                    log_print(logger, "reindex", "Block Import: already had block %s at height %d",
                              known.hash_hex, known.height)
                loaded += self._accept_waiting_children(block_hash)
                task.update(task_base // 1024 + pos // 1024, f"{self.loaded + loaded} blocks")
        finally:
            data.close()
            self.loaded += loaded
            if own_task:
                task.finish(f"{loaded} blocks")
        logger.info("Loaded %d blocks from external file %s", loaded, path)
        return loaded

    def _accept_waiting_children(self, parent_hash: bytes) -> int:
        """Core: LoadExternalBlockFile's queue of earlier-seen successors, read back from disk."""
        cs = self.cs
        loaded = 0
        queue = [parent_hash]
        while queue:
            head = queue.pop(0)
            for disk, size in self.unknown_parent.pop(head, []):
                try:
                    raw = cs.block_store.read_block_bytes(disk)
                    block = Block.deserialize(raw, cs.params.kawpow_activation_time)
                except (BlockFileError, DeserializationError) as exc:
                    logger.info("LoadExternalBlockFile: Deserialize or I/O error - %s", exc)
                    continue
                log_print(logger, "reindex", "LoadExternalBlockFile: Processing out of order child %s of %s",
                          block.hash_hex, head[::-1].hex())
                state, _ = cs.accept_block(block, disk_pos=disk, disk_size=size)
                if state:
                    loaded += 1
                    queue.append(block.hash)
        return loaded
