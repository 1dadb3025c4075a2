"""-blocknotify=<cmd>: run a shell command for every new best block, %s replaced by its hash
(Core: init.cpp BlockNotifyCallback and runCommand, not during initial block download).

Commands run in order on one worker thread, so a slow command delays later ones but never the chain.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from typing import Any

from aipgd.core.uint256 import hash_to_hex

logger = logging.getLogger(__name__)

_STOP = object()


class BlockNotifier:
    name = "block notifier"

    def __init__(self, command: str, chainstate: Any) -> None:
        self.command = command
        self._cs = chainstate
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aipg-blocknotify", daemon=True)
        self._thread.start()
        self._cs.signals.subscribe(self)

    def stop(self) -> None:
        self._cs.signals.unsubscribe(self)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def updated_block_tip(self, tip: Any, fork: Any) -> None:
        if self._cs.signals.initial_block_download(tip, self._cs.params, time.time()):
            return
        self._queue.put(self.command.replace("%s", hash_to_hex(tip.block_hash)))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, str)
            try:
                # Core: runCommand, system(3) semantics.
                code = subprocess.call(item, shell=True)
            except OSError as exc:
                logger.warning("runCommand error: %s: %s", item, exc)
                continue
            if code != 0:
                logger.warning("runCommand error: system(%s) returned %d", item, code)
