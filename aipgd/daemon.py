"""The `aipgd` entry point: arguments, -help/-version, -daemon, signals and the asyncio loop.

Owns the process: parse options (Core: AppInit), fork into the background with -daemon (reporting
start-up success or failure back to the waiting parent), run the Node on an event loop, and turn
SIGINT/SIGTERM into a clean shutdown and SIGHUP into a log reopen. It must never hold node state of
its own: everything lives in the Node, and errors the operator can act on print as "Error: ...".
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from aipgd.config import ArgsManager, ConfigError, NodeConfig, load_config
from aipgd.errors import InitError
from aipgd.options import usage_text, version_text

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1

# Readiness report from the daemonized child to the waiting parent (Bitcoin Core 0.21's token pipe).
_READY = b"\x01"
_FAILED = b"\x00"


def _print_error(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()


class _Readiness:
    """Tells the -daemon parent how start-up went; a no-op when not daemonized."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def _send(self, payload: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, payload)
            os.close(self._fd)
        except OSError:
            pass
        self._fd = None

    def ready(self) -> None:
        self._send(_READY)

    def failed(self, message: str) -> None:
        self._send(_FAILED + message.encode("utf-8", "replace"))


async def _serve(config: NodeConfig, readiness: _Readiness) -> int:
    from aipgd.core.params import ParamsError, get_params
    from aipgd.node import Node

    loop = asyncio.get_running_loop()
    shutdown_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown_requested.set)

    try:
        params = get_params(config.network, kawpow_activation_time=config.kawpow_activation_time)
    except ParamsError as exc:
        readiness.failed(str(exc))
        _print_error(str(exc))
        return EXIT_FAILURE
    node = Node(config, params, loop=loop,
                request_shutdown=lambda: _call_soon(loop, shutdown_requested.set))
    loop.add_signal_handler(signal.SIGHUP, node.reopen_log)

    try:
        # LevelDB and fsync block; keep them off the loop so signals are still served meanwhile.
        await loop.run_in_executor(None, node.start)
    except InitError as exc:
        readiness.failed(str(exc))
        _print_error(str(exc))
        return EXIT_FAILURE
    except Exception as exc:
        message = f"Unexpected error during start-up: {type(exc).__name__}: {exc}"
        readiness.failed(message)
        traceback.print_exc()
        _print_error(message)
        return EXIT_FAILURE
    readiness.ready()

    await shutdown_requested.wait()
    ok = await loop.run_in_executor(None, node.stop)
    if node.fatal_error is not None:
        # Core: AbortNode's message; the node stopped because it could not go on.
        _print_error(node.fatal_error)
    for message in node.shutdown_errors:
        _print_error(message)
    return EXIT_OK if ok and node.fatal_error is None else EXIT_FAILURE


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    loop.call_soon_threadsafe(callback)


def _run(config: NodeConfig, readiness: _Readiness) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        return asyncio.run(_serve(config, readiness))
    return uvloop.run(_serve(config, readiness))


def _daemonize(config: NodeConfig) -> int:
    """Double fork into a new session; the original process waits for the node's verdict.

    Core 0.15 used daemon(3), whose parent exits before start-up is known; like Bitcoin Core 0.21 we
    keep the parent until the child reports, so `aipgd -daemon` fails loudly when the node cannot start.
    """
    sys.stdout.write("aipgd server starting\n")
    sys.stdout.flush()
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        os.waitpid(first, 0)
        report = b"".join(chunks)
        if report[:1] == _READY:
            return EXIT_OK
        if report[:1] == _FAILED:
            _print_error(report[1:].decode("utf-8", "replace"))
        else:
            _print_error(f"the daemon process exited during start-up; see {config.log_file}")
        return EXIT_FAILURE

    # First child: new session, so no controlling terminal can send us its signals.
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(EXIT_OK)
    # Grandchild: the daemon. Keep the working directory (Core: daemon(1, 0)), detach stdio.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    code = EXIT_FAILURE
    try:
        code = _run(config, _Readiness(write_fd))
    finally:
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Core: help and version are handled before the data directory or config file are looked at.
    cmdline = ArgsManager()
    try:
        cmdline.parse_command_line(args_list)
    except ConfigError as exc:
        _print_error(str(exc))
        return EXIT_FAILURE
    if cmdline.get_bool("?", False) or cmdline.get_bool("help-debug", False):
        sys.stdout.write(usage_text(show_debug=cmdline.get_bool("help-debug", False)))
        return EXIT_OK
    if cmdline.get_bool("version", False):
        sys.stdout.write(version_text())
        return EXIT_OK

    try:
        config = load_config(args_list)
    except InitError as exc:
        _print_error(str(exc))
        return EXIT_FAILURE
    for warning in config.warnings:
        sys.stderr.write(f"Warning: {warning}\n")

    if config.daemon:
        return _daemonize(config)
    return _run(config, _Readiness(None))


if __name__ == "__main__":
    sys.exit(main())
