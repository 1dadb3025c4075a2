"""Block file pruning: manual (-prune=1) and automatic, with small (-fastprune style) block files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chain_builder import ChainBuilder, Stack, open_chain, submit_all

import kawpow
from aipgd.chain.blockdb import FLAG_PRUNED_BLOCK_FILES
from aipgd.chain.chainstate import ChainStateOptions, UtxoStats
from aipgd.chain.dbwrapper import DatabaseError
from aipgd.chain.prune import MIN_BLOCKS_TO_KEEP, PRUNE_MANUAL, PruneError, prune_target_from_mib
from aipgd.core.block import Block
from aipgd.core.params import ChainParams

LENGTH = MIN_BLOCKS_TO_KEEP + 60
SMALL_FILES = 4096


@pytest.fixture(scope="module")
def blocks(builder: ChainBuilder, params: ChainParams) -> list[Block]:
    return builder.chain(params.genesis_hash, LENGTH)


def _stack(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache, **options: object) -> Stack:
    options.setdefault("script_threads", 2)
    stack = Stack(netdir, params, contexts, options=ChainStateOptions(**options))  # type: ignore[arg-type]
    stack.store.max_file_size = SMALL_FILES
    return stack


@pytest.fixture(scope="module")
def unpruned(tmp_path_factory: pytest.TempPathFactory, params: ChainParams, contexts: kawpow.ContextCache,
             blocks: list[Block]) -> tuple[Path, UtxoStats]:
    netdir = tmp_path_factory.mktemp("unpruned") / "regtest"
    stack = _stack(netdir, params, contexts, prune_target=PRUNE_MANUAL)
    cs = stack.open()
    submit_all(cs, blocks)
    stats = cs.utxo_stats()
    stack.close()
    return netdir, stats


def test_prune_option_values_follow_core() -> None:
    assert prune_target_from_mib(0) == 0
    assert prune_target_from_mib(1) == PRUNE_MANUAL
    assert prune_target_from_mib(550) == 550 << 20
    with pytest.raises(ValueError, match="below the minimum of 550 MiB"):
        prune_target_from_mib(549)
    with pytest.raises(ValueError, match="negative"):
        prune_target_from_mib(-1)


def test_manual_prune_deletes_old_files_and_keeps_the_last_288_blocks(
        tmp_path: Path, params: ChainParams, contexts: kawpow.ContextCache,
        unpruned: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(unpruned[0], netdir)
    stack = _stack(netdir, params, contexts, prune_target=PRUNE_MANUAL)
    cs = stack.open()
    files_before = sorted((netdir / "blocks").glob("blk*.dat"))
    assert len(files_before) > 5
    last = cs.prune_block_files(LENGTH)  # clamped to tip - 288
    assert 0 < last <= LENGTH - MIN_BLOCKS_TO_KEEP
    assert cs.have_pruned and cs.block_tree.read_flag(FLAG_PRUNED_BLOCK_FILES)
    assert not (netdir / "blocks" / "blk00000.dat").exists()
    assert not (netdir / "blocks" / "rev00000.dat").exists()
    assert cs.chain[last] is not None and not cs.chain[last].have_data  # type: ignore[union-attr]
    assert cs.chain[last + 1].have_data  # type: ignore[union-attr]
    for height in range(LENGTH - MIN_BLOCKS_TO_KEEP, LENGTH + 1):
        index = cs.chain[height]
        assert index is not None and index.have_data and (height == 0 or index.have_undo)
    assert cs.utxo_stats() == unpruned[1]
    stack.close()
    # A restart loads the pruned index; going back to unpruned mode needs -reindex.
    stack = _stack(netdir, params, contexts, prune_target=PRUNE_MANUAL, check_blocks=0, check_level=4)
    cs = stack.open()
    assert cs.chain[last] is not None and not cs.chain[last].have_data  # type: ignore[union-attr]
    assert cs.utxo_stats() == unpruned[1]
    stack.close()
    stack = _stack(netdir, params, contexts)
    with pytest.raises(DatabaseError, match="-reindex to go back to unpruned mode"):
        stack.open()
    stack.crash()


def test_manual_prune_needs_prune_mode(tmp_path: Path, params: ChainParams, contexts: kawpow.ContextCache,
                                       unpruned: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(unpruned[0], netdir)
    with open_chain(netdir, params, contexts) as cs, pytest.raises(PruneError, match="not in prune mode"):
        cs.prune_block_files(10)


def test_automatic_prune_stays_near_the_target(tmp_path: Path, params: ChainParams,
                                               contexts: kawpow.ContextCache, blocks: list[Block],
                                               builder: ChainBuilder,
                                               unpruned: tuple[Path, UtxoStats]) -> None:
    # Below what the last 288 blocks take: every file that may go, goes.
    target = 15 * SMALL_FILES
    stack = _stack(tmp_path / "regtest", params, contexts, prune_target=target, prune_after_height=100)
    cs = stack.open()
    submit_all(cs, blocks)
    assert cs.have_pruned
    store = cs.block_store
    for n in range(store.last_file):
        info = store.file_info(n)
        assert info.size == 0 or info.height_last > LENGTH - MIN_BLOCKS_TO_KEEP
    usage = store.current_usage()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "regtest" / "blocks").glob("*.dat"))
    assert on_disk == usage
    first_kept = min(i.height for i in cs.tree if i.have_data)
    assert first_kept > 0 and first_kept <= LENGTH - MIN_BLOCKS_TO_KEEP
    assert cs.utxo_stats() == unpruned[1]
    # A short reorg still has its undo data.
    fork = builder.chain(blocks[-4].hash, 5)
    submit_all(cs, fork)
    assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash
    stack.close()
