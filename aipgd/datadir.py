"""Data directory layout, the `.lock` file and the pid file (Core: GetDataDir, LockDirectory, CreatePidFile).

Owns where things live (`~/.aipg`, `testnet_aipg/`, `regtest/`, `blocks/`, `chainstate/`), creating
the network directory, holding the exclusive fcntl lock for the node's lifetime, and the pid file.
It must never read or write block or chain data: paths only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from aipgd.errors import InitError

# Core keeps these in CBaseChainParams so the data directory is known before full chain params are
# built; tests check they equal ChainParams.data_subdir.
NETWORK_SUBDIRS: dict[str, str] = {"main": "", "test": "testnet_aipg", "regtest": "regtest"}
NETWORKS: tuple[str, ...] = tuple(NETWORK_SUBDIRS)

LOCK_FILENAME = ".lock"
BLOCKS_DIRNAME = "blocks"
BLOCK_INDEX_DIRNAME = "index"  # inside blocks/
CHAINSTATE_DIRNAME = "chainstate"


def default_datadir(home: str | None = None) -> Path:
    """Core: GetDefaultDataDir on Unix, `$HOME/.aipg` (or `/.aipg` with no HOME)."""
    base = home if home is not None else os.environ.get("HOME", "")
    return Path(base or "/") / ".aipg"


def network_dir(datadir: Path, network: str) -> Path:
    subdir = NETWORK_SUBDIRS[network]
    return datadir / subdir if subdir else datadir


def blocks_dir(netdir: Path) -> Path:
    return netdir / BLOCKS_DIRNAME


def block_index_dir(netdir: Path) -> Path:
    return netdir / BLOCKS_DIRNAME / BLOCK_INDEX_DIRNAME


def chainstate_dir(netdir: Path) -> Path:
    return netdir / CHAINSTATE_DIRNAME


def create_network_dirs(netdir: Path) -> None:
    """Create the network directory and `blocks/` (Core: GetDataDir's create_directories)."""
    for path in (netdir, blocks_dir(netdir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InitError(f"Cannot create data directory '{path}': {exc.strerror}") from exc
        if not path.is_dir():
            raise InitError(f"Data directory '{path}' is not a directory")


class DataDirLock:
    """The exclusive lock on `<netdir>/.lock`, held until stop() (Core: LockDataDirectory).

    POSIX record locks (lockf/F_SETLK), like Core's boost file_lock, so AIPG Core and aipgd also
    exclude each other. They belong to the process, which is why -daemon forks before locking.
    """

    name = "datadir lock"

    def __init__(self, netdir: Path) -> None:
        self.netdir = netdir
        self._fd: int | None = None

    def start(self) -> None:
        create_network_dirs(self.netdir)
        path = self.netdir / LOCK_FILENAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InitError(f"Cannot write to data directory '{self.netdir}'; check permissions. "
                            f"({exc.strerror})") from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise InitError(f"Cannot obtain a lock on data directory {self.netdir}. "
                                "aipgd is probably already running.") from exc
            raise InitError(f"Cannot obtain a lock on data directory {self.netdir}: {exc.strerror}") from exc
        self._fd = fd

    def stop(self) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PidFile:
    """Writes the process id at start and removes the file at clean shutdown (Core: CreatePidFile)."""

    name = "pid file"

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._written = False

    def start(self) -> None:
        if self.path is None:
            return
        try:
            self.path.write_text(f"{os.getpid()}\n", encoding="ascii")
        except OSError as exc:
            raise InitError(f"Unable to create the PID file '{self.path}': {exc.strerror}") from exc
        self._written = True

    def stop(self) -> None:
        if self.path is not None and self._written:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._written = False
