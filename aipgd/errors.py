"""Exceptions that end start-up or the node with a message meant for the operator.

Owns only the base class: each subsystem raises a subclass with a complete, user-facing sentence
(Core: InitError / AbortNode texts). It must never format tracebacks or decide exit codes: the
daemon prints "Error: <message>" and exits 1.
"""

from __future__ import annotations


class InitError(Exception):
    """A failure the operator can act on; str(exc) is printed after "Error: "."""
