"""A full disk while writing blocks, undo data or LevelDB batches: a fatal error, never corruption."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import plyvel
import pytest
from chain_builder import ChainBuilder, Stack, open_chain, submit_all

import kawpow
from aipgd.chain.blockstore import BlockFileError
from aipgd.chain.chainstate import ChainStateOptions, UtxoStats
from aipgd.chain.dbwrapper import DatabaseError
from aipgd.core.block import Block
from aipgd.core.params import ChainParams

LENGTH = 40


@pytest.fixture(scope="module")
def blocks(params: ChainParams, contexts: kawpow.ContextCache) -> list[Block]:
    return ChainBuilder(params, contexts).chain(params.genesis_hash, LENGTH)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, params: ChainParams, contexts: kawpow.ContextCache,
              blocks: list[Block]) -> UtxoStats:
    with open_chain(tmp_path_factory.mktemp("ref") / "regtest", params, contexts) as cs:
        submit_all(cs, blocks)
        return cs.utxo_stats()


class _FullDisk:
    """A plyvel DB whose writes fail as LevelDB reports ENOSPC."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def write_batch(self, **kwargs: Any) -> Any:
        raise plyvel.IOError("IO error: /chainstate/000005.log: No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _finish_and_compare(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache, blocks: list[Block],
                        reference: UtxoStats) -> int:
    """Restart (as after the operator freed space), check, then receive every block again."""
    with open_chain(netdir, params, contexts, options=ChainStateOptions(check_level=4, check_blocks=0)) as cs:
        assert cs.tip is not None
        height = cs.tip.height
        submit_all(cs, [b for b in blocks if b.hash not in cs.tree or not cs.tree.index[b.hash].have_data])
        cs.activate_best_chain()
        assert cs.utxo_stats() == reference
        return height


@pytest.mark.parametrize("kill", [False, True])
def test_full_disk_while_writing_block_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             params: ChainParams, contexts: kawpow.ContextCache,
                                             blocks: list[Block], reference: UtxoStats, kill: bool) -> None:
    netdir = tmp_path / "regtest"
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    errors: list[str] = []
    cs.fatal_error_handler = errors.append
    submit_all(cs, blocks[:20])

    def no_space(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("aipgd.chain.blockstore.os.pwrite", no_space)
    with pytest.raises(BlockFileError, match=r"Disk space is low! Could not write .*blk00000\.dat"):
        cs.process_new_block(blocks[20])
    assert len(errors) == 1 and "Disk space is low" in errors[0]
    monkeypatch.undo()
    if kill:
        stack.crash()
    else:
        stack.close()  # the shutdown flush still works once space is back
    assert _finish_and_compare(netdir, params, contexts, blocks, reference) >= (0 if kill else 20)


def test_full_disk_while_writing_the_chainstate(tmp_path: Path, params: ChainParams,
                                                contexts: kawpow.ContextCache, blocks: list[Block],
                                                reference: UtxoStats) -> None:
    netdir = tmp_path / "regtest"
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    errors: list[str] = []
    cs.fatal_error_handler = errors.append
    submit_all(cs, blocks[:25])
    leveldb = stack.coins._db
    leveldb._db = _FullDisk(leveldb.db)  # type: ignore[assignment]
    with pytest.raises(DatabaseError, match=r"could not write to chainstate database .*No space left on "
                                            r"device\. Check free disk space"):
        cs.flush()
    assert len(errors) == 1
    leveldb._db = leveldb._db._db  # type: ignore[union-attr]
    stack.crash()
    # The block index batch went through, the chainstate batch did not: start-up rolls forward.
    assert _finish_and_compare(netdir, params, contexts, blocks, reference) == 25


def test_low_disk_space_stops_before_writing(tmp_path: Path, params: ChainParams,
                                             contexts: kawpow.ContextCache, blocks: list[Block],
                                             reference: UtxoStats) -> None:
    netdir = tmp_path / "regtest"
    stack = Stack(netdir, params, contexts)
    cs = stack.open()
    submit_all(cs, blocks[:10])
    stack.store.min_free_bytes = 1 << 62
    with pytest.raises(BlockFileError, match="Disk space is low! aipgd needs at least"):
        cs.process_new_block(blocks[10])
    assert cs.fatal_error is not None
    stack.store.min_free_bytes = 0
    stack.crash()
    _finish_and_compare(netdir, params, contexts, blocks, reference)
