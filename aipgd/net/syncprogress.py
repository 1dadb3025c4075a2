"""Block download progress: a live bar on a terminal and a rate line in debug.log during IBD.

Owns turning (tip, best header, blocks in flight) into one ProgressTask per catch-up, finished when
the tip reaches the best header. It must never decide what to download: BlockSync reports to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aipgd.chain.progress import ProgressReporter

if TYPE_CHECKING:
    from aipgd.chain.blockindex import BlockIndex
    from aipgd.chain.progress import ProgressTask


class SyncProgress:
    def __init__(self, reporter: ProgressReporter | None = None) -> None:
        # Without a terminal the reporter writes only the debug.log lines (one every 10 s).
        self._reporter = reporter or ProgressReporter(None)
        self._task: ProgressTask | None = None

    def report(self, tip: BlockIndex, best: BlockIndex | None, in_flight: int) -> None:
        if best is None or best.height <= tip.height:
            self.finish(tip)
            return
        if self._task is None:
            if best.height - tip.height <= 1:
                return  # one new block at the tip is no catch-up
            self._task = self._reporter.task("Synchronizing blocks", best.height, "blocks")
        self._task.update(tip.height, detail=f"{in_flight} in flight", total=best.height)

    def finish(self, tip: BlockIndex | None = None) -> None:
        if self._task is None:
            return
        if tip is not None:
            self._task.update(tip.height, total=max(tip.height, 1))
        self._task.finish(f"tip {tip.height}" if tip is not None else "")
        self._task = None
