"""debug.log and console logging in Core's format, with -debug categories and SIGHUP reopening.

Owns the handlers it attaches to the stdlib logging tree (Core: BCLog::Logger, LogPrintf, LogPrint):
LogManager installs them at start and removes them at stop; the Node owns the LogManager.
Modules log through `logging.getLogger(__name__)` and `log_print(logger, category, ...)`.
It must never decide what to log or parse options: it only formats, filters and writes.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from aipgd.errors import InitError

# Core: util.cpp LogCategories, minus the GUI/ZMQ/Tor ones and plus this node's own subsystems.
LOG_CATEGORIES: tuple[str, ...] = (
    "net", "mempool", "http", "bench", "db", "rpc", "estimatefee", "addrman", "selectcoins",
    "reindex", "cmpctblock", "rand", "prune", "proxy", "mempoolrej", "coindb", "leveldb",
    "validation", "kawpow", "pouw", "wallet",
)
ALL_CATEGORIES_ALIASES = frozenset({"", "1", "all"})
NO_CATEGORIES_ALIASES = frozenset({"0", "none"})

# Top-level packages of this project whose loggers may emit category debug records.
_PROJECT_LOGGERS = ("aipgd", "kawpow", "rpc", "wallet", "pouw")

_CATEGORY_ATTR = "aipg_category"


def log_print(logger: logging.Logger, category: str, msg: str, *args: object) -> None:
    """Log `msg` only when -debug enables `category` (Core: LogPrint(BCLog::X, ...))."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(msg, *args, extra={_CATEGORY_ATTR: category})


def resolve_categories(debug: list[str], exclude: list[str]) -> tuple[frozenset[str], list[str]]:
    """Enabled categories from -debug / -debugexclude values, and warnings for unknown names.

    Core 0.17+: -debug=0 or -debug=none anywhere switches every category off; an unknown category is
    a warning, not an error (Core: "Unsupported logging category -debug=%s.").
    """
    warnings: list[str] = []
    enabled: set[str] = set()
    if any(v in NO_CATEGORIES_ALIASES for v in debug):
        return frozenset(), warnings
    for value in debug:
        if value in ALL_CATEGORIES_ALIASES:
            enabled.update(LOG_CATEGORIES)
        elif value in LOG_CATEGORIES:
            enabled.add(value)
        else:
            warnings.append(f"Unsupported logging category -debug={value}.")
    for value in exclude:
        if value in LOG_CATEGORIES:
            enabled.discard(value)
        elif value in ALL_CATEGORIES_ALIASES:
            enabled.clear()
        else:
            warnings.append(f"Unsupported logging category -debugexclude={value}.")
    return frozenset(enabled), warnings


class CoreFormatter(logging.Formatter):
    """`2026-11-26T07:00:00Z [net] message`, timestamps in UTC (Core: LogTimestampStr)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        category = getattr(record, _CATEGORY_ATTR, None)
        prefix = f"[{category}] " if category else ""
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{stamp} {prefix}{text}"


class CategoryFilter(logging.Filter):
    """Lets INFO and above through; DEBUG only for an enabled category; other libraries at WARNING+."""

    def __init__(self, categories: frozenset[str]) -> None:
        super().__init__()
        self.categories = categories

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in _PROJECT_LOGGERS:
            return record.levelno >= logging.WARNING
        if record.levelno >= logging.INFO:
            return True
        category = getattr(record, _CATEGORY_ATTR, None)
        return category is not None and category in self.categories


class DebugLogHandler(logging.Handler):
    """Appends to debug.log, one flushed line per record; `reopen` supports log rotation."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._stream: TextIO | None = None
        self._stream = self._open()

    def _open(self) -> TextIO:
        # Line buffered so a crash never loses a finished line and tests can wait on the file.
        return open(self.path, "a", encoding="utf-8", buffering=1)

    def reopen(self) -> None:
        """Core: fReopenDebugLog on SIGHUP, so logrotate can move the file away."""
        self.acquire()
        try:
            new_stream = self._open()
            old, self._stream = self._stream, new_stream
            if old is not None:
                old.close()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self._stream is not None:
                self._stream.write(line + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        finally:
            self.release()
        super().close()


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """-printtoconsole: the same lines on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stdout)


class LogManager:
    """Installs the debug.log / console handlers for the node's lifetime (owned by Node)."""

    name = "logging"

    def __init__(self, log_path: Path | None, print_to_console: bool, categories: frozenset[str],
                 console_stream: TextIO | None = None) -> None:
        self.log_path = log_path
        self.print_to_console = print_to_console
        self.categories = categories
        self._console_stream = console_stream
        self._handlers: list[logging.Handler] = []
        self._file_handler: DebugLogHandler | None = None
        self._saved_levels: dict[str, int] = {}

    def enabled(self, category: str) -> bool:
        return category in self.categories

    def start(self) -> None:
        formatter = CoreFormatter()
        filt = CategoryFilter(self.categories)
        if self.log_path is not None:
            try:
                self._file_handler = DebugLogHandler(self.log_path)
            except OSError as exc:
                raise InitError(f"Could not open debug log file {self.log_path}: {exc.strerror}") from exc
            self._handlers.append(self._file_handler)
        if self.print_to_console:
            self._handlers.append(ConsoleHandler(self._console_stream))
        root = logging.getLogger()
        for handler in self._handlers:
            handler.setFormatter(formatter)
            handler.addFilter(filt)
            root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            self._saved_levels[""] = root.level
            root.setLevel(logging.INFO)
        # Debug records are only built when some category is on, so -debug off costs nothing.
        level = logging.DEBUG if self.categories else logging.INFO
        for name in _PROJECT_LOGGERS:
            logger = logging.getLogger(name)
            self._saved_levels[name] = logger.level
            logger.setLevel(level)

    def reopen(self) -> None:
        if self._file_handler is not None:
            self._file_handler.reopen()

    def stop(self) -> None:
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        self._file_handler = None
        for name, level in self._saved_levels.items():
            logging.getLogger(name or None).setLevel(level)
        self._saved_levels.clear()

