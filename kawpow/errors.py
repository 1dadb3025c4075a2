"""Errors raised by the KawPoW engine.

Owns the single exception type the package raises for bad input or resource limits.
It must never carry consensus verdicts: an invalid proof is ``False`` from ``verify``,
not an exception; exceptions are for malformed arguments and impossible requests.
"""

from __future__ import annotations


class KawpowError(ValueError):
    """Bad argument (wrong type/length, out-of-range block number) or an epoch over the memory limit."""
