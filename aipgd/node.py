"""Node: owns every component, starts them in order and stops them in reverse, nothing else.

Start order follows Core's AppInitMain: lock the data directory, open debug.log, write the pid file,
open the block files and both LevelDB databases, load the chain. Stop undoes exactly what started
(Core: Shutdown), so a failed start-up releases everything it took. It must never contain chain,
network or option logic: each component owns its own.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

import kawpow
from aipgd.chain.blockdb import BlockTreeDB
from aipgd.chain.blockimport import BOOTSTRAP_FILENAME, BlockImporter
from aipgd.chain.blockstore import FAST_PRUNE_BLOCKFILE_SIZE, MAX_BLOCKFILE_SIZE, BlockStore
from aipgd.chain.chaindb import ChainStateDB
from aipgd.chain.chainstate import ChainState
from aipgd.chain.progress import ProgressReporter
from aipgd.config import NodeConfig, chainstate_options
from aipgd.core.params import ChainParams
from aipgd.datadir import DataDirLock, PidFile, block_index_dir, blocks_dir, chainstate_dir, default_datadir
from aipgd.errors import InitError
from aipgd.index.txindex import TxIndex
from aipgd.log import LogManager
from aipgd.mempool.manager import MempoolManager
from aipgd.mempool.options import mempool_options
from aipgd.notify.blocknotify import BlockNotifier
from aipgd.notify.zmq import ZMQNotifier, zmq_addresses
from aipgd.options import version_string

if TYPE_CHECKING:
    from aipgd.net.connman import ConnectionManager
    from pouw.service import PouwService
    from rpc.server import RPCServer

logger = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Node:
    def __init__(self, config: NodeConfig, params: ChainParams, console_stream: TextIO | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 request_shutdown: Callable[[], None] | None = None) -> None:
        netdir = config.netdir
        self.config = config
        self.params = params
        self.datadir_lock = DataDirLock(netdir)
        self.logging = LogManager(config.log_file, config.print_to_console, config.debug_categories,
                                  console_stream=console_stream)
        self.pid_file = PidFile(config.pid_file)
        cs_options = chainstate_options(config.args)
        self.block_store = BlockStore(blocks_dir(netdir), params.message_start, max_file_size=(
            FAST_PRUNE_BLOCKFILE_SIZE if config.args.get_bool("fastprune", False) else MAX_BLOCKFILE_SIZE))
        # -reindex and -reindex-chainstate wipe the databases before opening them (Core: fReset).
        self.block_tree = BlockTreeDB(block_index_dir(netdir), wipe=cs_options.reindex)
        self.coins_db = ChainStateDB(chainstate_dir(netdir),
                                     wipe=cs_options.reindex or cs_options.reindex_chainstate)
        # The node's KawPoW epoch contexts (light caches), shared by header checks and mining.
        self.kawpow_contexts = kawpow.ContextCache()
        self.chainstate = ChainState(params, self.block_store, self.block_tree, self.coins_db,
                                     options=cs_options, contexts=self.kawpow_contexts)
        # Set when the chain hits a local failure it cannot go on from (Core: AbortNode).
        self.fatal_error: str | None = None
        self._request_shutdown = request_shutdown or (lambda: None)
        self.chainstate.fatal_error_handler = self._on_fatal_error
        # Core: ThreadImport does -reindex, bootstrap.dat, -loadblock and the first ActivateBestChain.
        self.chainstate.activate_at_start = False
        console = sys.stderr if not config.daemon and sys.stderr.isatty() else None
        self.importer = BlockImporter(
            self.chainstate, import_files=[Path(f) for f in config.args.get_all("loadblock")],
            bootstrap=netdir / BOOTSTRAP_FILENAME,
            stop_after_import=config.args.get_bool("stopafterblockimport", False),
            progress=ProgressReporter(console), request_shutdown=self._request_shutdown)
        # Chain listeners: -txindex, -blocknotify, -zmqpub* (they start after the chain has loaded
        # and before the import activates it, so that they see every block connected).
        self.txindex: TxIndex | None = None
        listeners: list[Component] = []
        if config.args.get_bool("txindex", False):
            self.txindex = TxIndex(netdir, self.chainstate, wipe=cs_options.reindex,
                                   prune_mode=cs_options.prune_target > 0)
            listeners.append(self.txindex)
        if config.args.get("blocknotify"):
            listeners.append(BlockNotifier(config.args.get("blocknotify") or "", self.chainstate))
        # The mempool follows the chain as a listener; it loads mempool.dat when it starts.
        self.mempool = MempoolManager(params, self.chainstate, mempool_options(config.args), datadir=netdir)
        zmq_publishers = zmq_addresses(config.args.get)
        if zmq_publishers:
            zmq_notifier = ZMQNotifier(zmq_publishers, self.chainstate)
            listeners.append(zmq_notifier)
            self.mempool.tx_listeners.append(zmq_notifier.transaction_added)
        listeners.append(self.mempool)
        # Proof of Useful Work (-pouw, -pouwapi, -pouwvalidator); its options are checked even when off.
        from pouw.config import pouw_config

        pouw_settings = pouw_config(config.args, config.network, config.datadir)
        self.pouw: PouwService | None = None
        if pouw_settings.enabled:
            from pouw.service import PouwService

            self.pouw = PouwService(pouw_settings, netdir, loop=loop,
                                    tip_hash=self._tip_hash)
        # The RPC server needs the event loop it serves on; -server=0 (or no loop) runs without it.
        self.rpc_server: RPCServer | None = None
        if loop is not None and config.args.get_bool("server", True):
            from rpc.interface import ChainStateView
            from rpc.server import RPCServer, rpc_server_config

            self.rpc_server = RPCServer(
                rpc_server_config(config.args, netdir, params),
                ChainStateView(params, self.chainstate, txindex=self.txindex, mempool=self.mempool,
                               peer_count=lambda: len(self.connman.peers) if self.connman is not None else 0),
                params, loop, request_shutdown or (lambda: None),
                options={"deprecatedrpc": tuple(config.args.get_all("deprecatedrpc")),
                         "rest": config.args.get_bool("rest", False),
                         "miningaddress": config.args.get("miningaddress") or ""})
            self.rpc_server.ctx.pouw = self.pouw
        # P2P needs the event loop too; it starts once the chain is loaded (Core: CConnman::Start).
        self.connman: ConnectionManager | None = None
        if loop is not None:
            from aipgd.net.chainview import ChainStateChainView
            from aipgd.net.connman import ConnectionManager
            from aipgd.net.connman_config import connman_config

            self.connman = ConnectionManager(
                lambda: connman_config(config.args, params, f"/aipgd:{version_string().lstrip('v')}/"),
                params, netdir, ChainStateChainView(self.chainstate), loop,
                progress=ProgressReporter(console), mempool=self.mempool,
                pouw=self.pouw.gossip if self.pouw is not None else None)
            if self.rpc_server is not None:
                from rpc.network import NetworkView

                self.rpc_server.ctx.net = NetworkView(self.connman)
        net: tuple[Component, ...] = (self.connman,) if self.connman is not None else ()
        # Core: the HTTP server starts before the chain loads, answering RPC_IN_WARMUP meanwhile.
        rpc: tuple[Component, ...] = (self.rpc_server,) if self.rpc_server is not None else ()
        # PoUW starts before the RPC server so that its RPCs never meet a closed key store.
        pouw: tuple[Component, ...] = (self.pouw,) if self.pouw is not None else ()
        self._components: tuple[Component, ...] = (
            self.datadir_lock, self.logging, self.pid_file, *pouw, *rpc, self.block_store, self.block_tree,
            self.coins_db, self.chainstate, *listeners, self.importer, *net,
        )
        self._started: list[Component] = []
        self.shutdown_errors: list[str] = []

    def _tip_hash(self) -> bytes:
        tip = self.chainstate.tip
        return tip.block_hash if tip is not None else bytes(32)

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
        if self.rpc_server is not None:
            self.rpc_server.set_warmup_finished()
        logger.info("init message: Done loading")

    def _log_startup_banner(self) -> None:
        cfg = self.config
        logger.info("aipgd version %s (network %s)", version_string(), self.params.network)
        logger.info("Default data directory %s", default_datadir())
        logger.info("Using data directory %s", cfg.netdir)
        logger.info("Using config file %s", cfg.conf_file if cfg.conf_file is not None else "(none)")
        for warning in cfg.warnings:
            logger.warning("Warning: %s", warning)

    def _on_fatal_error(self, message: str) -> None:
        """Core: AbortNode, remember the first failure and shut down; the daemon exits with it."""
        if self.fatal_error is None:
            self.fatal_error = message
        self._request_shutdown()

    def reopen_log(self) -> None:
        """SIGHUP: reopen debug.log after logrotate moved it."""
        self.logging.reopen()

    def stop(self) -> bool:
        """Stop what started, in reverse order. True when every component stopped cleanly."""
        if self.logging_started:
            logger.info("Shutdown: In progress...")
        ok = True
        # Core: Shutdown interrupts and stops the HTTP server before anything else.
        if self.rpc_server is not None and self.rpc_server in self._started:
            self._started.remove(self.rpc_server)
            self._started.append(self.rpc_server)
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
