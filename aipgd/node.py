"""Node: owns every component, starts them in order and stops them in reverse, nothing else.

Start order follows Core's AppInitMain: lock the data directory, open debug.log, write the pid file,
open the block files and both LevelDB databases, load the chain. Stop undoes exactly what started
(Core: Shutdown), so a failed start-up releases everything it took. It must never contain chain,
network or option logic: each component owns its own.
"""

from __future__ import annotations

import logging
from typing import Protocol, TextIO

from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockstore import BlockStore
from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.chainstate import ChainState
from aipgd.config import NodeConfig
from aipgd.core.params import ChainParams
from aipgd.datadir import DataDirLock, PidFile, block_index_dir, blocks_dir, chainstate_dir, default_datadir
from aipgd.errors import InitError
from aipgd.log import LogManager
from aipgd.options import version_string

logger = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Node:
    def __init__(self, config: NodeConfig, params: ChainParams, console_stream: TextIO | None = None) -> None:
        netdir = config.netdir
        self.config = config
        self.params = params
        self.datadir_lock = DataDirLock(netdir)
        self.logging = LogManager(config.log_file, config.print_to_console, config.debug_categories,
                                  console_stream=console_stream)
        self.pid_file = PidFile(config.pid_file)
        self.block_store = BlockStore(blocks_dir(netdir), params.message_start)
        self.block_tree = BlockTreeDB(block_index_dir(netdir))
        self.coins_db = ChainStateDB(chainstate_dir(netdir))
        self.chainstate = ChainState(params, self.block_store, self.block_tree, self.coins_db)
        self._components: tuple[Component, ...] = (
            self.datadir_lock, self.logging, self.pid_file, self.block_store, self.block_tree,
            self.coins_db, self.chainstate,
        )
        self._started: list[Component] = []
        self.shutdown_errors: list[str] = []

    @property
    def logging_started(self) -> bool:
        return self.logging in self._started

    def start(self) -> None:
        """Start every component; on failure stop the ones already started and re-raise."""
        try:
            for component in self._components:
                component.start()
                self._started.append(component)
                if component is self.logging:
                    self._log_startup_banner()
        except BaseException as exc:
            if self.logging_started:
                if isinstance(exc, InitError):
                    logger.error("Error: %s", exc)
                else:
                    logger.exception("Unexpected error during start-up")
            self.stop()
            raise
        logger.info("init message: Done loading")

    def _log_startup_banner(self) -> None:
        cfg = self.config
        logger.info("aipgd version %s (network %s)", version_string(), self.params.network)
        logger.info("Default data directory %s", default_datadir())
        logger.info("Using data directory %s", cfg.netdir)
        logger.info("Using config file %s", cfg.conf_file if cfg.conf_file is not None else "(none)")
        for warning in cfg.warnings:
            logger.warning("Warning: %s", warning)

    def reopen_log(self) -> None:
        """SIGHUP: reopen debug.log after logrotate moved it."""
        self.logging.reopen()

    def stop(self) -> bool:
        """Stop what started, in reverse order. True when every component stopped cleanly."""
        if self.logging_started:
            logger.info("Shutdown: In progress...")
        ok = True
        while self._started:
            component = self._started.pop()
            if component is self.logging:
                logger.info("Shutdown: done")
            try:
                component.stop()
            except Exception as exc:
                ok = False
                message = str(exc) if isinstance(exc, InitError) else f"{type(exc).__name__}: {exc}"
                self.shutdown_errors.append(f"while stopping the {component.name}: {message}")
                if self.logging_started:
                    logger.error("Error while stopping the %s: %s", component.name, message)
        return ok
