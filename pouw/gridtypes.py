"""What the router sees of the grid worker WebSocket: errors, authentication, configuration,
worker snapshots and job results (the session machinery is `pouw.gridws`).

Owns the plain types shared by `pouw.gridws` and its users (`pouw.gridexec`); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pouw.gridproto import (
    CLOSE_AUTH,
    CLOSE_FORBIDDEN,
    DEFAULT_FRAME_LIMITS,
    GridFrameLimits,
    GridReceipt,
    GridRegistration,
    GridUsage,
)

__all__ = ["GridAuth", "GridAuthVerdict", "GridError", "GridJobFailedError", "GridJobRejectedError",
           "GridJobTimeoutError", "GridPoolConfig", "GridResult", "GridWorkerInfo", "StaticGridAuth",
           "WorkerBusyError", "WorkerLost"]


# ---------------------------------------------------------------------------------------------
# Errors the router sees


class GridError(Exception):
    """A grid job that did not produce a result."""


class WorkerLost(GridError):  # noqa: N818 (the name the router side uses)
    """The worker is gone (disconnected, replaced, dropped for a fault) or was never connected. The job
    may be retried on another worker."""


class WorkerBusyError(GridError):
    """The worker's connection already runs a job; a grid connection serves one job at a time."""


class GridJobRejectedError(GridError):
    """The node will not send this job to this worker (a model it does not serve, a duplicate id)."""


class GridJobTimeoutError(GridError):
    """No result before the deadline, or the worker fell silent mid-job. A cancel frame was sent."""


class GridJobFailedError(GridError):
    """The worker reported an error, an empty completion, or broke the protocol for this job."""

    def __init__(self, message: str, *, client_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.client_error = client_error  # the request is at fault: another worker would fail it too


# ---------------------------------------------------------------------------------------------
# Authentication


@dataclass(frozen=True, slots=True)
class GridAuthVerdict:
    """The answer of a `GridAuth`: the account a key belongs to, or a refusal with grid-core's close code
    (4001 for an unknown key, 4003 for a key that may not serve)."""

    account: str | None
    reason: str = "Invalid API key"
    close_code: int = CLOSE_AUTH

    @classmethod
    def accept(cls, account: str) -> GridAuthVerdict:
        return cls(account, "", 0)

    @classmethod
    def refuse(cls, reason: str = "Invalid API key", *, forbidden: bool = False) -> GridAuthVerdict:
        return cls(None, reason, CLOSE_FORBIDDEN if forbidden else CLOSE_AUTH)


class GridAuth(Protocol):
    """Checks a grid worker's `apikey` (to be backed by the node's API keys)."""

    async def __call__(self, apikey: str, registration: GridRegistration) -> GridAuthVerdict: ...


class StaticGridAuth:
    """A fixed map of API key -> account (tests, or a node with operator-listed worker keys)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = dict(keys)

    async def __call__(self, apikey: str, registration: GridRegistration) -> GridAuthVerdict:
        account = self._keys.get(apikey)
        return GridAuthVerdict.accept(account) if account is not None else GridAuthVerdict.refuse()


# ---------------------------------------------------------------------------------------------
# Configuration, snapshots and results


@dataclass(frozen=True, slots=True)
class GridPoolConfig:
    handshake_timeout: float = 30.0  # grid-core waits 30 s for the registration
    ping_interval: float = 10.0  # grid-core pings an idle worker every 10 s; the worker answers pong
    idle_timeout: float = 45.0  # no frame at all from an idle worker this long: the socket is dropped
    frame_timeout: float = 300.0  # grid-core's limit on silence between frames of a running job
    cancel_grace: float = 15.0  # after a cancel or timeout, the worker must finish within this
    send_timeout: float = 10.0  # grid-core bounds each send at 10 s (half-open sockets)
    close_timeout: float = 5.0  # how long a close waits for the worker's close reply
    heartbeat: float | None = 30.0  # WebSocket protocol pings (the worker's library answers them)
    max_bad_frames: int = 16  # malformed frames a connection may send before it is closed (1008)
    max_sessions: int = 256
    limits: GridFrameLimits = DEFAULT_FRAME_LIMITS


@dataclass(frozen=True, slots=True)
class GridWorkerInfo:
    """A connected grid worker as the router sees it."""

    worker_id: str  # one per connection: a reconnect is a new worker_id
    name: str
    account: str
    models: tuple[str, ...]
    max_length: int
    max_context_length: int
    api_formats: tuple[str, ...]
    modalities: tuple[str, ...]
    signer_address: str
    bridge_agent: str
    remote: str
    connected_at: float  # time.time()
    busy: bool
    jobs_done: int


@dataclass(frozen=True, slots=True)
class GridResult:
    job_id: str
    worker_id: str
    worker_name: str
    model: str
    full_text: str
    full_reasoning: str
    finish_reason: str
    usage: GridUsage | None
    receipt: GridReceipt
    cancelled: bool
    token_frames: int
    elapsed_s: float
    ttft_s: float | None

    @property
    def verified(self) -> bool:
        """The worker's EIP-191 receipt verifies against its registered signer_address."""
        return self.receipt.verified
