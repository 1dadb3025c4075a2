"""Token buckets of the PoUW API: refill arithmetic, reserve and settle, refunds, eviction (fake clock)."""

from __future__ import annotations

import pytest

from pouw.ratelimit import LIMIT_REQUESTS, LIMIT_TOKENS, RateDecision, RateLimiter, RateLimits


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_requests_per_minute_allows_a_full_bucket_then_refuses(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(3, None)
    decisions = [limiter.admit("ip:1.2.3.4", limits, 0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining_requests for d in decisions[:3]] == [2, 1, 0]
    denied = decisions[3]
    assert denied.limit == LIMIT_REQUESTS and not denied.never
    # 3 per minute refill one every 20 s.
    assert denied.retry_after == pytest.approx(20.0)
    assert denied.retry_after_seconds == 20


def test_bucket_refills_at_capacity_per_minute(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(6, None)
    for _ in range(6):
        assert limiter.admit("c", limits, 0).allowed
    clock.advance(9.999)
    assert not limiter.admit("c", limits, 0).allowed
    clock.advance(0.001)  # 10 s at 6/minute = one request
    assert limiter.admit("c", limits, 0).allowed
    assert not limiter.admit("c", limits, 0).allowed
    # Never above capacity, however long the client was idle.
    clock.advance(3600)
    assert sum(limiter.admit("c", limits, 0).allowed for _ in range(10)) == 6


def test_denied_request_takes_nothing(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(10, 100)
    assert limiter.admit("c", limits, 80).allowed
    denied = limiter.admit("c", limits, 30)
    assert not denied.allowed and denied.limit == LIMIT_TOKENS
    # 10 tokens missing at 100/minute: 6 s.
    assert denied.retry_after == pytest.approx(6.0)
    # The request bucket was not charged for the refused request.
    assert limiter.peek("c") == (9, 20)


def test_tokens_are_reserved_then_settled_with_a_refund(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(None, 1000)
    first = limiter.admit("c", limits, 600)
    assert first.allowed and first.ticket is not None and first.remaining_tokens == 400
    assert not limiter.admit("c", limits, 600).allowed
    assert limiter.settle(first.ticket, 150)  # used 150 of 600: 450 come back
    assert limiter.peek("c") == (None, 850)
    assert limiter.admit("c", limits, 600).allowed
    assert not limiter.settle(first.ticket, 0), "a ticket settles once"
    assert limiter.peek("c") == (None, 250)


def test_overuse_becomes_debt(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(None, 600)
    ticket = limiter.admit("c", limits, 100).ticket
    assert ticket is not None
    limiter.settle(ticket, 700)  # 600 more than reserved: level -100
    denied = limiter.admit("c", limits, 50)
    # 150 tokens missing at 10/s.
    assert not denied.allowed and denied.retry_after == pytest.approx(15.0)


def test_cancel_gives_back_the_request_and_the_tokens(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(1, 100)
    decision = limiter.admit("c", limits, 100)
    assert decision.ticket is not None
    assert not limiter.admit("c", limits, 1).allowed
    assert limiter.cancel(decision.ticket)
    assert limiter.peek("c") == (1, 100)
    assert not limiter.cancel(decision.ticket)


def test_request_larger_than_the_bucket_is_never_allowed(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    decision = limiter.admit("c", RateLimits(10, 100), 101)
    assert not decision.allowed and decision.never and decision.limit == LIMIT_TOKENS
    assert limiter.peek("c") == (10, 100)


def test_unlimited_dimensions_and_clients_are_separate(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(1000):
        assert limiter.admit("a", RateLimits(None, None), 10**9).allowed
    assert limiter.admit("b", RateLimits(1, None), 0).allowed
    assert not limiter.admit("b", RateLimits(1, None), 0).allowed
    assert limiter.admit("c", RateLimits(1, None), 0).allowed


def test_changed_limits_resize_the_bucket(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(10):
        assert limiter.admit("k", RateLimits(10, None), 0).allowed
    # A higher limit does not grant the difference at once: the level carries over.
    assert not limiter.admit("k", RateLimits(60, None), 0).allowed
    clock.advance(1)
    assert limiter.admit("k", RateLimits(60, None), 0).allowed
    # A lower limit caps the level.
    clock.advance(600)
    assert limiter.peek("k") == (60, None)
    limiter.admit("k", RateLimits(2, None), 0)
    assert limiter.peek("k") == (1, None)


def test_memory_is_bounded_by_forgetting_the_least_recently_used(clock: FakeClock) -> None:
    limiter = RateLimiter(clock, max_clients=3)
    limits = RateLimits(1, None)
    for name in ("a", "b", "c"):
        assert limiter.admit(name, limits, 0).allowed
    assert not limiter.admit("a", limits, 0).allowed  # "a" is now the most recent
    assert limiter.admit("d", limits, 0).allowed  # evicts "b"
    assert len(limiter) == 3
    assert limiter.peek("b") is None
    assert limiter.peek("a") == (0, None)
    # A forgotten client returns with a full bucket; a settle for it is a harmless no-op.
    assert limiter.admit("b", limits, 0).allowed
    for i in range(1000):
        limiter.admit(f"ip:{i}", limits, 0)
    assert len(limiter) == 3


def test_settle_after_eviction_is_accepted(clock: FakeClock) -> None:
    limiter = RateLimiter(clock, max_clients=1)
    ticket = limiter.admit("a", RateLimits(None, 10), 10).ticket
    assert ticket is not None
    limiter.admit("b", RateLimits(None, 10), 1)
    assert limiter.settle(ticket, 0)
    assert limiter.peek("a") is None


def test_clock_going_backwards_neither_refills_nor_drains(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limits = RateLimits(2, None)
    assert limiter.admit("c", limits, 0).allowed
    clock.advance(-100)
    assert limiter.admit("c", limits, 0).allowed
    assert not limiter.admit("c", limits, 0).allowed
    clock.advance(100 + 30)  # 30 s past the original stamp at 2/minute: one request
    assert limiter.admit("c", limits, 0).allowed


def test_retry_after_is_rounded_up_to_whole_seconds() -> None:
    assert RateDecision(False, retry_after=0.01).retry_after_seconds == 1
    assert RateDecision(False, retry_after=2.5).retry_after_seconds == 3
    assert RateDecision(True).retry_after_seconds == 0


@pytest.mark.parametrize("bad", [0, -1, True])
def test_limits_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimits(bad, None)
    with pytest.raises(ValueError, match="positive"):
        RateLimits(None, bad)


def test_negative_amounts_are_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    with pytest.raises(ValueError):
        limiter.admit("c", RateLimits(1, 1), -1)
    ticket = limiter.admit("c", RateLimits(1, 1), 1).ticket
    assert ticket is not None
    with pytest.raises(ValueError):
        limiter.settle(ticket, -1)
