"""Progress reports of long chain tasks (-reindex, -reindex-chainstate, -loadblock).

Owns turning "n of total done" into progress lines in debug.log (at most one every LOG_INTERVAL
seconds, plus the last) and, when the node runs in the foreground on a terminal, a live bar drawn
with `rich`. It must never decide what the work is or how fast it goes: callers only report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

logger = logging.getLogger(__name__)

LOG_INTERVAL = 10.0


class ProgressTask:
    """One task: `update(done)` as it goes, `finish()` once (also on failure)."""

    def __init__(self, description: str, total: int, unit: str, console: TextIO | None,
                 clock: Callable[[], float]) -> None:
        self.description = description
        self.total = max(total, 1)
        self.unit = unit
        self._clock = clock
        self._started = clock()
        self._last_log = self._started
        self._done = 0
        self._bar = None
        self._bar_task = None
        if console is not None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                                 MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
                                 console=Console(file=console), transient=False, redirect_stdout=False,
                                 redirect_stderr=False)
            self._bar.start()
            self._bar_task = self._bar.add_task(description, total=self.total, detail="")

    @property
    def fraction(self) -> float:
        return min(self._done / self.total, 1.0)

    def update(self, done: int, detail: str = "", total: int | None = None) -> None:
        if total is not None:
            self.total = max(total, 1)
        self._done = done
        if self._bar is not None and self._bar_task is not None:
            self._bar.update(self._bar_task, completed=done, total=self.total, detail=detail)
        now = self._clock()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            self._log(now, detail)

    def _log(self, now: float, detail: str) -> None:
        elapsed = max(now - self._started, 1e-9)
        logger.info("%s: %d of %d %s (%.1f%%), %.1f %s/s%s", self.description, self._done, self.total,
                    self.unit, 100 * self.fraction, self._done / elapsed, self.unit,
                    f", {detail}" if detail else "")

    def finish(self, detail: str = "") -> None:
        self._log(self._clock(), detail)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class ProgressReporter:
    """Makes ProgressTasks; `console` is the terminal for the bar (None: debug.log lines only)."""

    def __init__(self, console: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._clock = clock

    def task(self, description: str, total: int, unit: str) -> ProgressTask:
        return ProgressTask(description, total, unit, self.console, self._clock)
