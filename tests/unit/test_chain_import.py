"""-reindex, -reindex-chainstate, -loadblock and start-up corruption checks on real regtest chains."""

from __future__ import annotations

import random
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest
from chain_builder import ChainBuilder, Stack, open_chain, spend, submit_all

import kawpow
from aipgd.chain.blockimport import BlockImporter
from aipgd.chain.blockstore import BlockFileError
from aipgd.chain.chainstate import ChainState, ChainStateOptions, UtxoStats
from aipgd.chain.dbwrapper import DatabaseError
from aipgd.core.block import Block
from aipgd.core.params import ChainParams
from aipgd.core.transaction import OutPoint

MAIN_LENGTH = 115
FORK_AT = 105
FORK_LENGTH = 15


@pytest.fixture(scope="module")
def chains(params: ChainParams, contexts: kawpow.ContextCache) -> tuple[list[Block], list[Block]]:
    """A main chain whose last blocks spend early coinbases, and a longer fork from FORK_AT."""
    builder = ChainBuilder(params, contexts)
    main = builder.chain(params.genesis_hash, 101)
    for n in range(MAIN_LENGTH - 101):
        cb = main[n].vtx[0]
        tx = spend([OutPoint(cb.txid, 0)], [(cb.vout[0].value - 1000, b"\x51"), (500, b"\x51")])
        main.append(builder.block(main[-1].hash, [tx], fees=500))
    fork = builder.chain(main[FORK_AT - 1].hash, FORK_LENGTH)
    return main, fork


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, params: ChainParams, contexts: kawpow.ContextCache,
              chains: tuple[list[Block], list[Block]]) -> tuple[Path, UtxoStats]:
    """A datadir that received main then the fork (a reorg), and its UTXO stats."""
    main, fork = chains
    netdir = tmp_path_factory.mktemp("reference") / "regtest"
    with open_chain(netdir, params, contexts) as cs:
        submit_all(cs, main)
        submit_all(cs, fork)
        assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash
        return netdir, cs.utxo_stats()


def _options(**kwargs: object) -> ChainStateOptions:
    return ChainStateOptions(check_level=3, script_threads=2, **kwargs)  # type: ignore[arg-type]


def _import(netdir: Path, params: ChainParams, contexts: kawpow.ContextCache, *, files: Sequence[Path] = (),
            **options: object) -> tuple[Stack, BlockImporter]:
    stack = Stack(netdir, params, contexts, options=_options(**options))
    stack.state.activate_at_start = False
    stack.open()
    importer = BlockImporter(stack.state, import_files=files)
    importer.run()
    return stack, importer


def _record(params: ChainParams, block: Block) -> bytes:
    raw = block.serialize()
    return params.message_start + struct.pack("<I", len(raw)) + raw


def test_reindex_rebuilds_index_and_chainstate(tmp_path: Path, params: ChainParams,
                                               contexts: kawpow.ContextCache,
                                               reference: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    stack, importer = _import(netdir, params, contexts, reindex=True)
    cs = stack.state
    assert not cs.reindexing and not cs.block_tree.read_reindexing()
    assert cs.utxo_stats() == reference[1]
    # Both branches are indexed again (the fork's losing blocks too).
    assert importer.loaded == MAIN_LENGTH + FORK_LENGTH + 1
    stack.close()
    with open_chain(netdir, params, contexts) as again:
        assert again.utxo_stats() == reference[1]


def test_interrupted_reindex_resumes_at_next_start(tmp_path: Path, params: ChainParams,
                                                   contexts: kawpow.ContextCache,
                                                   reference: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    stack = Stack(netdir, params, contexts, options=_options(reindex=True))
    stack.state.activate_at_start = False
    cs = stack.open()
    importer = BlockImporter(cs)
    accept = cs.accept_block
    seen = 0

    def accept_then_stop(*args: object, **kwargs: object) -> object:
        nonlocal seen
        seen += 1
        if seen == 40:
            cs.interrupt.set()
        return accept(*args, **kwargs)  # type: ignore[arg-type]

    cs.accept_block = accept_then_stop  # type: ignore[method-assign]
    importer.run()
    assert cs.reindexing
    stack.close()  # a clean shutdown mid-reindex writes what it has; the flag stays
    stack = Stack(netdir, params, contexts, options=_options())
    stack.state.activate_at_start = False
    cs = stack.open()
    assert cs.reindexing and cs.tip is not None and cs.tip.height == 0
    BlockImporter(cs).run()
    assert not cs.block_tree.read_reindexing()
    assert cs.utxo_stats() == reference[1]
    stack.close()


def test_reindex_finds_blocks_stored_out_of_order(tmp_path: Path, params: ChainParams,
                                                  contexts: kawpow.ContextCache,
                                                  chains: tuple[list[Block], list[Block]],
                                                  reference: tuple[Path, UtxoStats]) -> None:
    main, fork = chains
    blocks = main + fork
    shuffled = blocks[:]
    random.Random(5).shuffle(shuffled)
    netdir = tmp_path / "regtest"
    (netdir / "blocks").mkdir(parents=True)
    # Genesis first, then every other block in a random order, with junk between some records.
    data = bytearray(_record(params, params.genesis))
    for n, block in enumerate(shuffled):
        if n % 7 == 0:
            data += b"\x00junk" + params.message_start[:2]
        data += _record(params, block)
    (netdir / "blocks" / "blk00000.dat").write_bytes(bytes(data))
    stack, importer = _import(netdir, params, contexts, reindex=True)
    assert importer.loaded == len(blocks) + 1
    assert stack.state.utxo_stats() == reference[1]
    stack.close()


def test_loadblock_skips_garbage_and_bad_records(tmp_path: Path, params: ChainParams,
                                                 contexts: kawpow.ContextCache,
                                                 chains: tuple[list[Block], list[Block]],
                                                 reference: tuple[Path, UtxoStats]) -> None:
    main, fork = chains
    rng = random.Random(7)
    data = bytearray(rng.randbytes(100))
    for block in main[:FORK_AT] + fork:
        data += _record(params, block)
        choice = rng.randrange(6)
        if choice == 0:
            data += rng.randbytes(rng.randrange(1, 50))
        elif choice == 1:  # a message start with an absurd size
            data += params.message_start + struct.pack("<I", 0xFFFFFFF0)
        elif choice == 2:  # a record whose block does not parse
            data += params.message_start + struct.pack("<I", 100) + b"\xff" * 100
    # A record cut short at the end of the file.
    data += _record(params, main[FORK_AT])[:60]
    bootstrap = tmp_path / "bootstrap.blk"
    bootstrap.write_bytes(bytes(data))
    netdir = tmp_path / "regtest"
    stack, importer = _import(netdir, params, contexts, files=[bootstrap])
    assert importer.loaded == FORK_AT + FORK_LENGTH
    cs = stack.state
    assert cs.tip is not None and cs.tip.block_hash == fork[-1].hash
    assert cs.utxo_stats() == reference[1]
    stack.close()
    # Importing the same file again finds every block known.
    stack, importer = _import(netdir, params, contexts, files=[bootstrap])
    assert importer.loaded == 0
    stack.close()


def test_reindex_chainstate_rebuilds_only_the_utxo_set(tmp_path: Path, params: ChainParams,
                                                       contexts: kawpow.ContextCache,
                                                       reference: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    index_files = sorted(p.name for p in (netdir / "blocks").iterdir())
    stack, importer = _import(netdir, params, contexts, reindex_chainstate=True)
    cs: ChainState = stack.state
    assert importer.loaded == 0
    assert cs.utxo_stats() == reference[1]
    assert cs.timings.blocks == FORK_AT + FORK_LENGTH
    stack.close()
    assert sorted(p.name for p in (netdir / "blocks").iterdir()) == index_files


# -- corruption found at start-up ------------------------------------------------------------------


@pytest.mark.parametrize(("damage", "expected"), [
    ("remove-rev", "undo file .*rev00000.dat is missing"),
    ("remove-blk", "block file .*blk00000.dat is missing"),
    ("truncate-blk", "blk00000.dat has \\d+ bytes, but the block index points to offset"),
])
def test_damaged_block_files_stop_start_up_with_the_repair(tmp_path: Path, params: ChainParams,
                                                           contexts: kawpow.ContextCache,
                                                           reference: tuple[Path, UtxoStats], damage: str,
                                                           expected: str) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    blocks = netdir / "blocks"
    if damage == "remove-rev":
        (blocks / "rev00000.dat").unlink()
    elif damage == "remove-blk":
        (blocks / "blk00000.dat").unlink()
    else:
        path = blocks / "blk00000.dat"
        path.write_bytes(path.read_bytes()[:5000])
    stack = Stack(netdir, params, contexts)
    with pytest.raises(BlockFileError, match=expected) as info:
        stack.open()
    stack.crash()
    if damage == "remove-blk":
        return  # nothing left to rebuild from
    assert "Restart with -reindex" in str(info.value)
    if damage == "truncate-blk":
        # The blocks past the cut are gone: -reindex rebuilds the chain that is left.
        stack, _ = _import(netdir, params, contexts, reindex=True)
        assert stack.state.tip is not None and 0 < stack.state.tip.height < FORK_AT
        stack.close()
    else:
        stack, _ = _import(netdir, params, contexts, reindex=True)
        assert stack.state.utxo_stats() == reference[1]
        stack.close()


def test_bad_undo_checksum_names_the_repair(tmp_path: Path, params: ChainParams,
                                            contexts: kawpow.ContextCache,
                                            reference: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    rev = netdir / "blocks" / "rev00000.dat"
    data = bytearray(rev.read_bytes())
    data[-3] ^= 0x55  # the checksum of the tip's undo record
    rev.write_bytes(bytes(data))
    stack = Stack(netdir, params, contexts)
    with pytest.raises(DatabaseError, match=r"bad undo data.*Restart with -reindex"):
        stack.open()
    stack.crash()


def test_corrupt_chainstate_is_repaired_by_reindex_chainstate(tmp_path: Path, params: ChainParams,
                                                              contexts: kawpow.ContextCache,
                                                              reference: tuple[Path, UtxoStats]) -> None:
    netdir = tmp_path / "regtest"
    shutil.copytree(reference[0], netdir)
    (netdir / "chainstate" / "CURRENT").write_bytes(b"\x00garbage")
    stack = Stack(netdir, params, contexts)
    with pytest.raises(DatabaseError, match="Restart with -reindex-chainstate"):
        stack.open()
    stack.crash()
    stack = Stack(netdir, params, contexts, options=_options(reindex_chainstate=True))
    stack.coins._db.wipe_on_open = True  # what the Node does for -reindex-chainstate
    stack.state.activate_at_start = False
    cs = stack.open()
    BlockImporter(cs).run()
    assert cs.utxo_stats() == reference[1]
    stack.close()
