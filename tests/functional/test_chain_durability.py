"""kill -9 and a full disk during block import, connection and a deep reorg: the node always recovers.

The chain (a main branch whose blocks fan coins out into hundreds of outputs, and a longer fork that
reorganizes 40 of them away) is mined in-process once, written as a Core-format bootstrap file and
imported with -loadblock and a tiny -dbcache, so the node flushes every few blocks; once imported,
the chainstate is rebuilt again and again with -reindex-chainstate. aipgd is killed at random
moments 30 times (during start-up, import, connection, the reorg and the rebuild); at several
points, and at the end, a copy of its datadir is opened in-process and its tip and UTXO-set hash
must equal those of a clean node that connected that chain. The same import on a small tmpfs must
stop with a clear "Disk space is low!" error and finish once space is back. (A real ENOSPC from
LevelDB or a block file write is injected at unit level, in tests/unit/test_chain_diskfull.py:
here aipgd's 50 MiB free-space guard always trips first.)
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from framework import TestNode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from chain_builder import ChainBuilder, open_chain, spend, submit_all

import kawpow
from aipgd.chain.blockstore import MIN_DISK_SPACE
from aipgd.chain.chainstate import ChainStateOptions
from aipgd.core.block import Block
from aipgd.core.params import ChainParams, get_params
from aipgd.core.transaction import OutPoint, Transaction

MATURE = 101
MAIN_LENGTH = 160
# A restart reaches its first tip update in seconds; a heavily loaded machine can take a minute.
FIRST_TIP_TIMEOUT = 180.0
FORK_AT = 120
FORK_LENGTH = 50
KILLS = 30
CHECK_AFTER = (8, 16, 24)
OP_TRUE = b"\x51"


def _fan_out(coinbase: Transaction, outputs: int) -> Transaction:
    value = coinbase.vout[0].value - 10_000
    return spend([OutPoint(coinbase.txid, 0)], [(value // outputs, OP_TRUE)] * outputs)


def _gather(tx: Transaction, count: int) -> Transaction:
    total = sum(out.value for out in tx.vout[:count])
    return spend([OutPoint(tx.txid, n) for n in range(count)], [(total - 5_000, OP_TRUE)])


class Chains:
    def __init__(self, params: ChainParams, contexts: kawpow.ContextCache) -> None:
        builder = ChainBuilder(params, contexts)
        self.main = builder.chain(params.genesis_hash, MATURE)
        last_fan: Transaction | None = None
        while len(self.main) < MAIN_LENGTH:
            txs = [_fan_out(self.main[len(self.main) - MATURE].vtx[0], 400)]
            if last_fan is not None:
                txs.append(_gather(last_fan, 60))
            last_fan = txs[0]
            fees = 10_000 + (5_000 if len(txs) == 2 else 0)
            self.main.append(builder.block(self.main[-1].hash, txs, fees=fees))
        self.fork = []
        parent = self.main[FORK_AT - 1]
        for n in range(FORK_LENGTH):
            height = FORK_AT + n + 1
            txs = [_fan_out(self.main[height - 1 - MATURE].vtx[0], 250)]
            block = builder.block(parent.hash, txs, fees=10_000)
            self.fork.append(block)
            parent = block
        self.by_hash = {b.hash: b for b in self.main + self.fork}

    def branch_to(self, tip: bytes) -> list[Block]:
        if tip == self.main[0].header.prev_hash:
            return []  # genesis: a -reindex-chainstate killed before it connected anything
        for branch in (self.main, self.main[:FORK_AT] + self.fork):
            hashes = [b.hash for b in branch]
            if tip in hashes:
                return branch[:hashes.index(tip) + 1]
        raise AssertionError(f"unknown tip {tip[::-1].hex()}")


@pytest.fixture(scope="module")
def params() -> ChainParams:
    return get_params("regtest")


@pytest.fixture(scope="module")
def contexts() -> kawpow.ContextCache:
    return kawpow.ContextCache(prefetch_window=0)


@pytest.fixture(scope="module")
def chains(params: ChainParams, contexts: kawpow.ContextCache) -> Chains:
    return Chains(params, contexts)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, params: ChainParams, contexts: kawpow.ContextCache,
             chains: Chains) -> Path:
    """A regtest datadir holding the first MATURE blocks (coinbase-only), connected offline."""
    netdir = tmp_path_factory.mktemp("prepared") / "regtest"
    with open_chain(netdir, params, contexts) as cs:
        submit_all(cs, chains.main[:MATURE])
    return netdir


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory, params: ChainParams, chains: Chains) -> Path:
    """The rest of the main chain, then the fork that replaces its last 40 blocks."""
    path = tmp_path_factory.mktemp("bootstrap") / "bootstrap.blk"
    with open(path, "wb") as f:
        for block in chains.main[MATURE:] + chains.fork:
            raw = block.serialize()
            f.write(params.message_start + struct.pack("<I", len(raw)) + raw)
    return path


def _state_of(netdir: Path, scratch: Path, params: ChainParams,
              contexts: kawpow.ContextCache) -> tuple[bytes, int, bytes]:
    """Open a copy of a stopped node's datadir, as the node would at its next start: (tip, height, hash)."""
    copy = scratch / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(netdir, copy, ignore=shutil.ignore_patterns(".lock", "*.pid", "debug.log"))
    with open_chain(copy, params, contexts, options=ChainStateOptions(check_level=4, check_blocks=0)) as cs:
        tip = cs.tip
        assert tip is not None
        stats = cs.utxo_stats()
        return tip.block_hash, tip.height, stats.hash_serialized


def _clean_hash(blocks: list[Block], scratch: Path, params: ChainParams,
                contexts: kawpow.ContextCache) -> bytes:
    ref = scratch / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    with open_chain(ref, params, contexts, options=ChainStateOptions(check_blocks=1)) as cs:
        submit_all(cs, blocks)
        return cs.utxo_stats().hash_serialized


def test_kill_9_during_import_connect_and_reorg_never_corrupts(
        make_node: Callable[..., TestNode], tmp_path: Path, params: ChainParams,
        contexts: kawpow.ContextCache, chains: Chains, prepared: Path, bootstrap: Path) -> None:
    rng = random.Random(20261126)
    node = make_node("crash")
    shutil.copytree(prepared, node.netdir)
    args = [f"-loadblock={bootstrap}", "-dbcache=4", "-server=0", "-checkblocks=3"]
    mid_connect = 0
    imported = False
    kill = 0
    restarts = 0
    while kill < KILLS or not imported:
        restarts += 1
        assert restarts < 3 * KILLS, "the import never finished between kills"
        # First the import with its reorg, restarted until one run gets through it; then two restarts
        # in three rebuild the chainstate (-reindex-chainstate), and the third resumes that rebuild.
        extra = ["-reindex-chainstate"] if imported and restarts % 3 != 0 else []
        node.start([*args, *extra], wait=False)
        if not imported and restarts % 5 == 0:
            # Now and then a clean stop mid-import, so a loaded machine still gets through it.
            node.wait_for_log("UpdateTip|DisconnectTip|Block import finished", timeout=FIRST_TIP_TIMEOUT)
            time.sleep(rng.uniform(0.5, 1.5))
            assert node.stop() == 0, node.stderr()
            imported = "Block import finished" in node.log_since_start()
            continue
        if (not imported or extra) and restarts % 4 != 0:
            # Kill while blocks are being connected (the KawPoW light cache alone takes a second or two
            # at each start before any block flows): wait for the first tip update, then strike soon.
            node.wait_for_log("UpdateTip|DisconnectTip|Block import finished", timeout=FIRST_TIP_TIMEOUT)
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            time.sleep(rng.uniform(0.2, 2.5))
        assert node.process is not None
        if node.process.poll() is not None:
            raise AssertionError(f"aipgd exited with {node.process.returncode} after restart {restarts}: "
                                 f"{node.stderr()!r}")
        node.kill()
        kill += 1
        log = node.log_since_start()
        assert "Error" not in log, log[-2000:]
        if "Block import finished" in log:
            imported = True
        elif "UpdateTip" in log or "DisconnectTip" in log:
            mid_connect += 1
        if kill in CHECK_AFTER:
            tip, height, utxo_hash = _state_of(node.netdir, tmp_path, params, contexts)
            assert utxo_hash == _clean_hash(chains.branch_to(tip), tmp_path, params, contexts), (
                f"UTXO set differs from a clean node's at height {height} after {kill} kills")
    # Enough kills hit the node while it was connecting or reorganizing, not only while starting.
    assert kill >= KILLS and mid_connect >= 10, (kill, mid_connect)
    # A last clean run finishes the import and shuts down normally.
    node.start([*args, "-stopafterblockimport"], wait=False)
    assert node.wait_for_exit(timeout=120) == 0, node.stderr()
    assert "Block import finished" in node.log_since_start()
    tip, height, utxo_hash = _state_of(node.netdir, tmp_path, params, contexts)
    assert tip == chains.fork[-1].hash and height == FORK_AT + FORK_LENGTH
    assert utxo_hash == _clean_hash(chains.branch_to(tip), tmp_path, params, contexts)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs, unmounted afterwards (needs root, as in CI)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up ({result.stderr.strip() or result.returncode})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_disk_stops_the_node_cleanly_and_it_recovers(
        make_node: Callable[..., TestNode], small_disk: Path, tmp_path: Path, params: ChainParams,
        contexts: kawpow.ContextCache, chains: Chains, prepared: Path, bootstrap: Path) -> None:
    node = TestNode(small_disk / "datadir")
    shutil.copytree(prepared, node.netdir)
    # Leave a little more than the 50 MiB aipgd keeps free (Core: nMinDiskSpace): the import soon
    # reaches it, and the node must stop rather than write on.
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - MIN_DISK_SPACE - 200_000))
    args = [f"-loadblock={bootstrap}", "-dbcache=4", "-server=0"]
    try:
        node.start(args, wait=False)
        assert node.wait_for_exit(timeout=120) == 1
        err = node.stderr()
        assert "Error: Disk space is low!" in err and "Traceback" not in err, err
        log = node.log_since_start()
        assert "*** Disk space is low!" in log and "Shutdown: done" in log
        # Space is back: the node starts on what it left and finishes the import.
        filler.unlink()
        node.start([*args, "-stopafterblockimport"], wait=False)
        assert node.wait_for_exit(timeout=120) == 0, node.stderr()
        tip, _, utxo_hash = _state_of(node.netdir, tmp_path, params, contexts)
        assert tip == chains.fork[-1].hash
        assert utxo_hash == _clean_hash(chains.branch_to(tip), tmp_path, params, contexts)
    finally:
        node.cleanup()
