"""A small functional test framework in the spirit of Bitcoin Core's test_framework.

Owns starting and stopping real `aipgd` processes on temporary data directories and waiting for
what they write (debug.log lines, files, exit codes). It must never reach into a running node's
internals: tests observe a node only the way an operator could.
"""

from framework.node import REGTEST_GENESIS_HASH, TestNode
from framework.util import pid_alive, wait_until

__all__ = ["REGTEST_GENESIS_HASH", "TestNode", "pid_alive", "wait_until"]
