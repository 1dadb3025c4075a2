"""Waiting helpers for functional tests (Core: test_framework/util.py wait_until)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(predicate: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> None:
    """Poll `predicate` until it is truthy; fail the test with `what` if `timeout` passes first.

    The timeout is only a bound on waiting, never something a test asserts about speed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie left for an absent reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def free_port() -> int:
    """A TCP port that was free a moment ago on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
