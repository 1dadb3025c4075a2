"""Block files, block index records and ChainState start-up/repair on a real (temporary) LevelDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockstore import BlockFileError, BlockStore, FlatFilePos
from aipgd.chain.chaindb import DB_BEST_BLOCK, ChainStateDB
from aipgd.chain.chainstate import ChainState
from aipgd.chain.dbwrapper import DatabaseError
from aipgd.chain.diskformat import (
    BLOCK_HAVE_DATA,
    BLOCK_VALID_SCRIPTS,
    BlockFileInfo,
    DiskBlockIndex,
)
from aipgd.core.block import BlockHeader
from aipgd.core.params import get_params


def test_block_file_info_roundtrip_and_add_block() -> None:
    info = BlockFileInfo().with_block(5, 1000, 300).with_block(3, 2000, 600)
    assert info == BlockFileInfo(blocks=2, size=600, height_first=3, height_last=5, time_first=1000,
                                 time_last=2000)
    assert BlockFileInfo.deserialize(info.serialize()) == info


def test_disk_block_index_roundtrip_legacy_and_kawpow() -> None:
    params = get_params("regtest")
    legacy = DiskBlockIndex(0, BLOCK_HAVE_DATA | BLOCK_VALID_SCRIPTS, 1, params.genesis.header, 0, 8)
    raw = legacy.serialize()
    # Core's record: VARINT version, height, status, nTx, nFile, nDataPos, then the 80-byte header.
    assert raw.endswith(params.genesis.header.serialize())
    assert DiskBlockIndex.deserialize(raw, params.kawpow_activation_time) == legacy
    kawpow_header = BlockHeader(0x30000000, params.genesis_hash, b"\x11" * 32, params.kawpow_activation_time,
                                0x207FFFFF, height=7, nonce64=2**63 + 5, mix_hash=b"\x22" * 32, kawpow=True)
    entry = DiskBlockIndex(7, BLOCK_HAVE_DATA, 1, kawpow_header, 0, 400)
    decoded = DiskBlockIndex.deserialize(entry.serialize(), params.kawpow_activation_time)
    assert decoded == entry
    assert decoded.header.serialize() == kawpow_header.serialize()


def test_block_store_write_read_and_file_format(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, b"AI4R")
    pos1 = store.write_block(b"first", height=0, time=10)
    pos2 = store.write_block(b"second!", height=1, time=20)
    store.flush()
    assert (pos1, pos2) == (FlatFilePos(0, 8), FlatFilePos(0, 21))
    expected = b"AI4R\x05\x00\x00\x00first" + b"AI4R\x07\x00\x00\x00second!"
    assert (tmp_path / "blk00000.dat").read_bytes() == expected
    assert store.read_block_bytes(pos2) == b"second!"
    assert store.take_dirty_file_info() == {0: BlockFileInfo(2, 28, 0, 0, 1, 10, 20)}
    assert store.take_dirty_file_info() == {}
    with pytest.raises(BlockFileError, match="wrong message start"):
        BlockStore(tmp_path, b"AI4E").read_block_bytes(pos1)


def test_block_store_refuses_to_write_when_disk_space_is_low(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, b"AI4R", min_free_bytes=1 << 62)
    with pytest.raises(BlockFileError, match="Disk space is low"):
        store.write_block(b"x", height=0, time=0)


class _Chain:
    """The chain storage stack of a Node, without the process around it."""

    def __init__(self, netdir: Path, network: str = "regtest") -> None:
        (netdir / "blocks").mkdir(parents=True, exist_ok=True)
        self.params = get_params(network)
        self.store = BlockStore(netdir / "blocks", self.params.message_start)
        self.tree = BlockTreeDB(netdir / "blocks" / "index")
        self.coins = ChainStateDB(netdir / "chainstate")
        self.state = ChainState(self.params, self.store, self.tree, self.coins)

    def __enter__(self) -> _Chain:
        self.tree.start()
        self.coins.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.coins.stop()
        self.tree.stop()


def test_chainstate_stores_genesis_then_finds_it(tmp_path: Path) -> None:
    with _Chain(tmp_path) as chain:
        chain.state.start()
        assert chain.state.tip is not None and chain.state.tip.height == 0
        assert chain.state.tip.block_hash == chain.params.genesis_hash
        chain.state.stop()
    with _Chain(tmp_path) as chain:
        chain.state.start()
        assert chain.state.tip is not None and chain.state.tip.block_hash == chain.params.genesis_hash
        assert chain.store.last_file == 0 and chain.store.file_info(0).blocks == 1
        assert chain.coins.get_best_block() == chain.params.genesis_hash


def test_crash_between_index_and_chainstate_batches_is_repaired(tmp_path: Path) -> None:
    with _Chain(tmp_path) as chain:
        chain.state.start()
        # As if the process died after the index batch but before the chainstate batch.
        chain.coins._db.write_batch([(DB_BEST_BLOCK, None)])
    with _Chain(tmp_path) as chain:
        assert chain.coins.get_best_block() is None
        chain.state.start()
        assert chain.coins.get_best_block() == chain.params.genesis_hash


def test_best_block_missing_from_index_is_an_error(tmp_path: Path) -> None:
    with _Chain(tmp_path) as chain:
        chain.state.start()
        chain.coins.batch_write(b"\x42" * 32, chain.params.genesis_hash)
    with _Chain(tmp_path) as chain, pytest.raises(DatabaseError, match=r"not in the block index.*-reindex"):
        chain.state.start()


def test_interrupted_multi_batch_flush_is_reported(tmp_path: Path) -> None:
    with _Chain(tmp_path) as chain:
        chain.state.start()
        chain.coins._db.write_batch([(b"H", b"\x01" + chain.params.genesis_hash)])
    with _Chain(tmp_path) as chain, pytest.raises(DatabaseError, match="head blocks marker"):
        chain.state.start()


def test_chainstate_values_are_obfuscated_like_core(tmp_path: Path) -> None:
    with _Chain(tmp_path) as chain:
        chain.state.start()
        raw = chain.coins._db.db.get(DB_BEST_BLOCK)
        assert raw is not None and raw != chain.params.genesis_hash
        assert chain.coins._db.db.get(b"\x0e\x00obfuscate_key")[0] == 8
