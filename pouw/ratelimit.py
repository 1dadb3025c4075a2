"""Per-client token buckets for the PoUW API: requests per minute and tokens per minute.

Owns the bucket arithmetic, the admission ticket (tokens reserved up front from max_tokens and settled
with the real usage afterwards) and a bounded table of clients (least recently used ones are forgotten).
It must never read the wall clock directly (the clock is injected, so tests never sleep), know about
HTTP, or decide who a client is: pouw.tiers does that.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# Limits are per minute; a full bucket holds one minute's worth (the burst a client may spend at once).
_WINDOW = 60.0
DEFAULT_MAX_CLIENTS = 100_000

LIMIT_REQUESTS = "requests"
LIMIT_TOKENS = "tokens"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute budgets of one client; None leaves that dimension unlimited."""

    requests_per_minute: int | None
    tokens_per_minute: int | None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None (unlimited), not {value!r}")


UNLIMITED = RateLimits(None, None)


class _Bucket:
    """One dimension of one client: `level` units available at `stamp`, refilling at capacity/minute.

    The level may go below zero when a client used more than it reserved (a debt it pays by waiting).
    """

    __slots__ = ("capacity", "level", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.stamp = now

    @property
    def rate(self) -> float:
        return self.capacity / _WINDOW

    def refill(self, now: float) -> None:
        # A clock that steps backwards (tests, a suspended VM) neither refills nor drains.
        elapsed = max(0.0, now - self.stamp)
        self.level = min(float(self.capacity), self.level + elapsed * self.rate)
        self.stamp = max(self.stamp, now)

    def resize(self, capacity: int) -> None:
        if capacity != self.capacity:
            self.capacity = capacity
            self.level = min(self.level, float(capacity))

    def wait_for(self, amount: int) -> float:
        """Seconds until `amount` units are available (0 when they are now)."""
        if self.level >= amount:
            return 0.0
        return (amount - self.level) / self.rate


@dataclass(slots=True)
class _Client:
    requests: _Bucket | None
    tokens: _Bucket | None


@dataclass(slots=True)
class RateTicket:
    """What one admitted request holds: its client and the tokens reserved for it."""

    identity: str
    reserved_tokens: int
    settled: bool = False


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The limiter's answer. Denied requests say which limit they hit and how long to wait."""

    allowed: bool
    ticket: RateTicket | None = None
    retry_after: float = 0.0  # seconds; meaningful when not allowed and not `never`
    limit: str | None = None  # LIMIT_REQUESTS or LIMIT_TOKENS when denied
    never: bool = False  # the request alone exceeds a full bucket: waiting never helps
    remaining_requests: int | None = None  # after this request; None when unlimited
    remaining_tokens: int | None = None

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for an HTTP Retry-After header (rounded up, at least 1 when denied)."""
        if self.allowed:
            return 0
        return max(1, math.ceil(self.retry_after))


def _remaining(bucket: _Bucket | None) -> int | None:
    return None if bucket is None else max(0, math.floor(bucket.level))


class RateLimiter:
    """Two token buckets per client identity, thread-safe, at most `max_clients` remembered.

    Forgetting a client gives it a full bucket when it returns. The least recently used client is the
    one forgotten: its bucket has had the longest time to refill, so it is the most likely to be full
    already (and a full bucket carries no state worth keeping).
    """

    def __init__(self, clock: Clock = time.monotonic, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self._clock = clock
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def _client(self, identity: str, limits: RateLimits, now: float) -> _Client:
        client = self._clients.get(identity)
        if client is None:
            client = _Client(None, None)
            self._clients[identity] = client
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(identity)
        client.requests = _fit(client.requests, limits.requests_per_minute, now)
        client.tokens = _fit(client.tokens, limits.tokens_per_minute, now)
        return client

    def admit(self, identity: str, limits: RateLimits, tokens: int) -> RateDecision:
        """Take one request and reserve `tokens` (the request's max_tokens) if both buckets allow it.

        Nothing is taken from either bucket when the request is denied.
        """
        if tokens < 0:
            raise ValueError("tokens must not be negative")
        with self._lock:
            now = self._clock()
            client = self._client(identity, limits, now)
            waits: list[tuple[float, str]] = []
            needs = ((client.requests, 1, LIMIT_REQUESTS), (client.tokens, tokens, LIMIT_TOKENS))
            for bucket, need, name in needs:
                if bucket is None:
                    continue
                if need > bucket.capacity:
                    return RateDecision(False, limit=name, never=True,
                                        remaining_requests=_remaining(client.requests),
                                        remaining_tokens=_remaining(client.tokens))
                wait = bucket.wait_for(need)
                if wait > 0:
                    waits.append((wait, name))
            if waits:
                wait, name = max(waits)
                return RateDecision(False, retry_after=wait, limit=name,
                                    remaining_requests=_remaining(client.requests),
                                    remaining_tokens=_remaining(client.tokens))
            if client.requests is not None:
                client.requests.level -= 1
            if client.tokens is not None:
                client.tokens.level -= tokens
            return RateDecision(True, ticket=RateTicket(identity, tokens),
                                remaining_requests=_remaining(client.requests),
                                remaining_tokens=_remaining(client.tokens))

    def settle(self, ticket: RateTicket, used_tokens: int) -> bool:
        """Charge the real usage: refund reserved - used, or take the excess when more was used.

        Returns False (and changes nothing) for a ticket already settled or cancelled.
        """
        if used_tokens < 0:
            raise ValueError("used_tokens must not be negative")
        return self._close(ticket, ticket.reserved_tokens - used_tokens, 0)

    def cancel(self, ticket: RateTicket) -> bool:
        """Undo an admission that was refused later (e.g. over budget): give back the request and the
        reserved tokens, as if the request had never come."""
        return self._close(ticket, ticket.reserved_tokens, 1)

    def _close(self, ticket: RateTicket, token_refund: int, request_refund: int) -> bool:
        with self._lock:
            if ticket.settled:
                return False
            ticket.settled = True
            client = self._clients.get(ticket.identity)
            if client is None:  # forgotten meanwhile: it starts full when it comes back anyway
                return True
            now = self._clock()
            for bucket, refund in ((client.tokens, token_refund), (client.requests, request_refund)):
                if bucket is not None and refund:
                    bucket.refill(now)
                    bucket.level = min(float(bucket.capacity), bucket.level + refund)
            return True

    def peek(self, identity: str) -> tuple[int | None, int | None] | None:
        """(requests, tokens) available to a known client now, without touching its recency."""
        with self._lock:
            client = self._clients.get(identity)
            if client is None:
                return None
            now = self._clock()
            for bucket in (client.requests, client.tokens):
                if bucket is not None:
                    bucket.refill(now)
            return _remaining(client.requests), _remaining(client.tokens)


def _fit(bucket: _Bucket | None, capacity: int | None, now: float) -> _Bucket | None:
    """The bucket for the limit in force now (limits may change between calls, e.g. a key's override)."""
    if capacity is None:
        return None
    if bucket is None:
        return _Bucket(capacity, now)
    bucket.refill(now)
    bucket.resize(capacity)
    return bucket
