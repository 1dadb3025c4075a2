"""aipgd as a real process: start, clean stop, restart, kill -9, data directory lock, -daemon, SIGHUP."""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path

from framework import REGTEST_GENESIS_HASH, TestNode, pid_alive, wait_until

from aipgd.core.params import get_params


def _genesis_record() -> bytes:
    """Core's flat-file record for the regtest genesis: message start, LE32 size, block."""
    params = get_params("regtest")
    raw = params.genesis.serialize()
    return params.message_start + struct.pack("<I", len(raw)) + raw


def test_start_stop_creates_core_layout_and_shuts_down_cleanly(node: TestNode) -> None:
    node.start()
    assert (node.netdir / ".lock").exists()
    assert (node.netdir / "aipgd.pid").read_text().strip() == str(node.process.pid)  # type: ignore[union-attr]
    assert (node.blocks_dir / "index" / "CURRENT").exists()
    assert (node.chainstate_dir / "CURRENT").exists()

    assert node.stop() == 0
    log = node.log_since_start()
    assert "Shutdown: done" in log
    # A clean shutdown removes the pid file (Core: Shutdown removes GetPidFile()).
    assert not (node.netdir / "aipgd.pid").exists()
    # Each log line starts with an ISO 8601 UTC timestamp.
    for line in log.splitlines():
        assert line[:21].endswith("Z ") and line[4] == "-" and line[10] == "T", line


def test_sigint_also_shuts_down_cleanly(node: TestNode) -> None:
    node.start()
    assert node.stop(signal.SIGINT) == 0
    assert "Shutdown: done" in node.log_since_start()


def test_restart_finds_genesis_in_index_and_block_file(node: TestNode) -> None:
    node.start()
    assert node.best_block_logged() == (REGTEST_GENESIS_HASH, 0)
    assert "Stored genesis block" in node.log_since_start()
    assert node.stop() == 0

    node.start()
    assert node.best_block_logged() == (REGTEST_GENESIS_HASH, 0)
    # The second start loaded it rather than storing it again.
    assert "Stored genesis block" not in node.log_since_start()
    assert node.stop() == 0

    blk = node.blocks_dir / "blk00000.dat"
    assert blk.read_bytes()[: len(_genesis_record())] == _genesis_record()


def test_kill_9_then_restart_works(node: TestNode) -> None:
    node.start()
    node.kill()
    assert "Shutdown: done" not in node.log_since_start()

    node.start()
    assert node.best_block_logged() == (REGTEST_GENESIS_HASH, 0)
    assert node.stop() == 0


def test_kill_9_during_first_start_up_then_restart_works(node: TestNode) -> None:
    # Killed while it is creating the databases and storing genesis: whatever prefix of the
    # writes reached disk, the next start must repair it.
    node.start(wait=False)
    node.wait_for_log("Opened LevelDB successfully")
    node.kill()

    node.start()
    assert node.best_block_logged() == (REGTEST_GENESIS_HASH, 0)
    assert node.stop() == 0
    assert (node.blocks_dir / "blk00000.dat").read_bytes()[: len(_genesis_record())] == _genesis_record()


def test_second_daemon_on_same_datadir_fails_with_lock_error(make_node: Callable[..., TestNode]) -> None:
    first = make_node("shared")
    first.start()
    second = make_node("shared")
    err = second.assert_start_raises_init_error(
        expected_msg=f"Error: Cannot obtain a lock on data directory {first.netdir}. "
                     "aipgd is probably already running.")
    assert "Traceback" not in err
    # The first node is unaffected and still shuts down cleanly.
    assert first.process is not None and first.process.poll() is None
    assert first.stop() == 0


def test_daemon_forks_writes_pid_file_and_stops_on_sigterm(node: TestNode, tmp_path: Path) -> None:
    pid_file = tmp_path / "custom.pid"
    code = node.run_to_exit(["-daemon", f"-pid={pid_file}"])
    assert code == 0, node.stderr()
    assert "aipgd server starting" in node.stdout()
    # The parent only returned once the daemon had finished loading.
    assert "init message: Done loading" in node.log_since_start()
    pid = int(pid_file.read_text())
    try:
        assert pid_alive(pid)  # the parent has exited; the pid is the background node's
        assert not (node.netdir / "aipgd.pid").exists()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), what="the daemon to exit")
    finally:
        if pid_alive(pid):  # never leave a background node behind a failed assertion
            os.kill(pid, signal.SIGKILL)
    assert "Shutdown: done" in node.log_since_start()
    assert not pid_file.exists()


def test_daemon_parent_reports_start_up_failure(make_node: Callable[..., TestNode]) -> None:
    first = make_node("shared")
    first.start()
    second = make_node("shared")
    code = second.run_to_exit(["-daemon"])
    assert code == 1
    assert "Cannot obtain a lock on data directory" in second.stderr()
    assert first.stop() == 0


def test_sighup_reopens_debug_log(node: TestNode) -> None:
    node.start()
    rotated = node.debug_log.with_name("debug.log.1")
    node.debug_log.rename(rotated)
    node.send_signal(signal.SIGHUP)
    wait_until(node.debug_log.exists, what="a new debug.log after SIGHUP")
    assert node.stop() == 0
    # Lines written after the reopen go to the new file, not the rotated one.
    assert "Shutdown: done" in node.debug_log.read_text()
    assert "Shutdown: done" not in rotated.read_text()
    assert "init message: Done loading" in rotated.read_text()


def test_printtoconsole_and_debug_category(node: TestNode) -> None:
    node.start(["-printtoconsole", "-debug=leveldb"])
    assert node.stop() == 0
    assert "init message: Done loading" in node.stdout()
    assert "[leveldb] Writing batch" in node.log_since_start()

    node.start()
    assert node.stop() == 0
    assert "[leveldb]" not in node.log_since_start()
    assert node.stdout() == ""


def test_config_file_selects_network_and_options(node: TestNode) -> None:
    (node.datadir / "aipg.conf").write_text("# sample\nregtest=1\n[regtest]\ndebug=leveldb\n")
    node.network_on_command_line = False
    code = node.run_to_exit(["-nodaemon", "-version"])
    assert code == 0 and "aipgd (aipg-node) version" in node.stdout()
    node.start()
    assert node.stop() == 0
    log = node.log_since_start()
    assert f"Using config file {node.datadir / 'aipg.conf'}" in log
    assert "[leveldb]" in log
