"""TestNode: one aipgd process with its own data directory (Core: test_framework/test_node.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from framework.rpc import RPCProxy
from framework.util import free_port, wait_until

REGTEST_GENESIS_HASH = "0000001a53f7f3d9f8be5f0cdfeddd641bee2c6c7001a9cdfdbb6f72ca66aed5"
READY_LINE = "init message: Done loading"
SHUTDOWN_DONE = "Shutdown: done"
# Bounds on waits, generous for a loaded 2-core CI machine; never asserted as durations.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def aipgd_command() -> list[str]:
    """How to run aipgd from the interpreter running the tests (works without the console script)."""
    return [sys.executable, "-m", "aipgd.daemon"]


class TestNode:
    __test__ = False  # not a pytest test class

    def __init__(self, datadir: Path, *, network: str = "regtest", extra_args: Sequence[str] = ()) -> None:
        self.datadir = datadir
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.network = network
        self.extra_args = list(extra_args)
        # False when a test selects the network through aipg.conf instead.
        self.network_on_command_line = True
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._run = 0
        self.stdout_path: Path | None = None
        self.stderr_path: Path | None = None
        # A free port per node, so parallel tests never meet on the default RPC port.
        self.rpc_port = free_port()
        # Likewise for P2P: listen on loopback only, on a port of our own; never query DNS seeds.
        self.p2p_port = free_port()

    # -- paths ---------------------------------------------------------------------------------

    @property
    def netdir(self) -> Path:
        return self.datadir / {"main": "", "test": "testnet_aipg", "regtest": "regtest"}[self.network]

    @property
    def debug_log(self) -> Path:
        return self.netdir / "debug.log"

    @property
    def blocks_dir(self) -> Path:
        return self.netdir / "blocks"

    @property
    def chainstate_dir(self) -> Path:
        return self.netdir / "chainstate"

    def base_args(self) -> list[str]:
        args = [f"-datadir={self.datadir}", f"-rpcport={self.rpc_port}", f"-port={self.p2p_port}",
                "-bind=127.0.0.1", "-dnsseed=0"]
        if not self.network_on_command_line:
            return args
        if self.network == "regtest":
            args.append("-regtest")
        elif self.network == "test":
            args.append("-testnet")
        return args

    # -- running -------------------------------------------------------------------------------

    def _spawn(self, extra_args: Sequence[str]) -> subprocess.Popen[bytes]:
        self._run += 1
        self.stdout_path = self.datadir / f"stdout.{self._run}"
        self.stderr_path = self.datadir / f"stderr.{self._run}"
        self._log_offset = self.debug_log.stat().st_size if self.debug_log.exists() else 0
        cmd = [*aipgd_command(), *self.base_args(), *self.extra_args, *extra_args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            return subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def start(self, extra_args: Sequence[str] = (), *, wait: bool = True) -> None:
        assert self.process is None or self.process.poll() is not None, "node already running"
        self.process = self._spawn(extra_args)
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"aipgd exited with {self.process.returncode} during start-up: "
                                     f"{self.stderr()!r}")
            return READY_LINE in self.log_since_start()
        wait_until(ready, timeout=timeout, what="aipgd to finish loading")

    def run_to_exit(self, extra_args: Sequence[str] = (), timeout: float = START_TIMEOUT) -> int:
        """Run aipgd until it exits by itself (start-up errors, -help, -daemon's parent)."""
        process = self._spawn(extra_args)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"aipgd {list(extra_args)} did not exit within {timeout} s") from None

    def assert_start_raises_init_error(self, extra_args: Sequence[str] = (), expected_msg: str = "") -> str:
        """Start must fail with exit code 1 and print `expected_msg` (Core's method of the same name)."""
        code = self.run_to_exit(extra_args)
        err = self.stderr()
        assert code == 1, f"expected exit code 1, got {code}; stderr: {err!r}"
        assert expected_msg in err, f"expected {expected_msg!r} in stderr {err!r}"
        return err

    def send_signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_for_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"aipgd did not exit within {timeout} s") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Ask the node to shut down and wait for it; returns the exit code."""
        self.send_signal(sig)
        return self.wait_for_exit(timeout)

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    @property
    def cookie_file(self) -> Path:
        return self.netdir / ".cookie"

    def rpc(self, userpass: str | None = None) -> RPCProxy:
        """A proxy authenticated with the cookie (or `user:password`)."""
        if userpass is None:
            wait_until(self.cookie_file.exists, what="the RPC cookie")
            userpass = self.cookie_file.read_text().strip()
        return RPCProxy(self.rpc_port, userpass)

    # -- observing -----------------------------------------------------------------------------

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path else ""

    def log_text(self) -> str:
        return self.debug_log.read_text(errors="replace") if self.debug_log.exists() else ""

    def log_since_start(self) -> str:
        """debug.log written since the latest start (earlier runs append to the same file)."""
        if not self.debug_log.exists():
            return ""
        with open(self.debug_log, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first match of regex `pattern` in debug.log since the latest start, waiting for it."""
        found: list[re.Match[str]] = []

        def matched() -> bool:
            m = re.search(pattern, self.log_since_start())
            if m:
                found.append(m)
            return m is not None
        wait_until(matched, timeout=timeout, what=f"{pattern!r} in debug.log")
        return found[0]

    @property
    def p2p_address(self) -> str:
        """What another node passes to -connect / -addnode to reach this one."""
        return f"127.0.0.1:{self.p2p_port}"

    def best_block_logged(self) -> tuple[str, int]:
        """(hash, height) from the latest "Loaded best chain" line."""
        m = self.wait_for_log(r"Loaded best chain: hashBestChain=([0-9a-f]{64}) height=(\d+)")
        return m.group(1), int(m.group(2))

