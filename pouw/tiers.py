"""Admission of API requests into the free and paid tiers.

Owns classifying a request (no key: free tier, keyed by the client's address; a valid key: paid),
its priority, its routing constraint (paid: trusted workers only), its price, and the structured
decision: admitted, rate-limited (429 + Retry-After), over budget (402), bad key (401) or too large
(400), each with an OpenAI-format error body. It must never do HTTP or run jobs: the API turns an
Admission into a response and settles it with the real usage when the job ends.

A bearer token not in this node's key format (`aipg_sk_...`) counts as no key, because OpenAI client
libraries insist on sending some key: free users send any placeholder. A token in the format that
is unknown or revoked is refused with 401 rather than served for free, so a typo is noticed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pouw.apikeys import (
    ApiKey,
    ApiKeyStore,
    InsufficientCreditError,
    Reservation,
    RevokedApiKeyError,
    UnknownApiKeyError,
    looks_like_api_key,
)
from pouw.jobspec import Tier
from pouw.queue import PRIORITY_FREE, PRIORITY_PAID
from pouw.ratelimit import LIMIT_REQUESTS, RateLimiter, RateLimits, RateTicket

HTTP_OK = 200
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_PAYMENT_REQUIRED = 402
HTTP_TOO_MANY_REQUESTS = 429

# IPv6 clients are limited per /64: one host usually owns a whole /64.
_IPV6_CLIENT_PREFIX = 64

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Outcome(Enum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    OVER_BUDGET = "over_budget"
    UNAUTHORIZED = "unauthorized"
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """The operator's settings for both tiers (from -pouwfree*, -pouwpaid*, -pouwprice)."""

    free_limits: RateLimits | None  # None: no free tier (an API key is required)
    paid_limits: RateLimits
    price_per_1k_tokens: int  # smallest AIPG unit per 1000 tokens
    trusted_proxies: tuple[IPNetwork, ...] = ()

    def cost(self, tokens: int) -> int:
        """The price of `tokens` tokens, rounded up to the smallest unit."""
        return -(-tokens * self.price_per_1k_tokens // 1000)


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """What the API knows about a request before running it."""

    remote_addr: str  # the TCP peer's address
    max_tokens: int
    bearer_token: str | None = None  # from "Authorization: Bearer ..."
    forwarded_for: str | None = None  # the X-Forwarded-For header, trusted only from -pouwtrustedproxy


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision. An admitted request carries what must be settled when its job ends."""

    outcome: Outcome
    tier: Tier
    identity: str  # the rate-limit identity: "ip:<addr or /64>" or "key:<id>"
    priority: int = PRIORITY_FREE
    trusted_only: bool = False
    price_per_1k_tokens: int = 0
    key_id: str | None = None
    retry_after: float | None = None  # seconds, for 429
    limit: str | None = None  # for 429: "requests" or "tokens", the bucket that ran dry
    message: str = ""
    rate_ticket: RateTicket | None = None
    reservation: Reservation | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        return self.outcome is Outcome.ADMITTED

    @property
    def http_status(self) -> int:
        return _STATUS[self.outcome]

    def error_body(self) -> dict[str, Any] | None:
        """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}; None when admitted."""
        if self.admitted:
            return None
        kind, code = _ERROR_KINDS[self.outcome]
        if self.outcome is Outcome.RATE_LIMITED:
            kind = self.limit or kind
        return {"error": {"message": self.message, "type": kind, "param": None, "code": code}}


_STATUS = {
    Outcome.ADMITTED: HTTP_OK,
    Outcome.RATE_LIMITED: HTTP_TOO_MANY_REQUESTS,
    Outcome.OVER_BUDGET: HTTP_PAYMENT_REQUIRED,
    Outcome.UNAUTHORIZED: HTTP_UNAUTHORIZED,
    Outcome.TOO_LARGE: HTTP_BAD_REQUEST,
}
# (type, code) as OpenAI's API writes them.
_ERROR_KINDS = {
    Outcome.RATE_LIMITED: ("requests", "rate_limit_exceeded"),
    Outcome.OVER_BUDGET: ("insufficient_quota", "insufficient_quota"),
    Outcome.UNAUTHORIZED: ("invalid_request_error", "invalid_api_key"),
    Outcome.TOO_LARGE: ("invalid_request_error", "max_tokens_too_large"),
}


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_identity(remote_addr: str, forwarded_for: str | None,
                    trusted_proxies: Sequence[IPNetwork] = ()) -> str:
    """Who a free request comes from: its peer address, or, when that peer is a trusted proxy, the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (left-most entries are
    whatever the client wrote). IPv6 addresses count per /64."""
    address = _parse_ip(remote_addr)

    def trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return addr is not None and any(addr in net for net in trusted_proxies)

    if forwarded_for and trusted(address):
        for hop in reversed(forwarded_for.split(",")):
            hop_addr = _parse_ip(hop)
            if hop_addr is None:
                break  # garbage: stop at the last address we can vouch for
            address = hop_addr
            if not trusted(hop_addr):
                break
    if address is None:
        return f"ip:{remote_addr.strip()[:64]}"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, _IPV6_CLIENT_PREFIX), strict=False)
        return f"ip:{network}"
    return f"ip:{address}"


def _rate_headers(limits: RateLimits, remaining_requests: int | None,
                  remaining_tokens: int | None) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits that exist."""
    headers: dict[str, str] = {}
    if limits.requests_per_minute is not None and remaining_requests is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(remaining_requests)
    if limits.tokens_per_minute is not None and remaining_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(remaining_tokens)
    return headers


class AdmissionPolicy:
    """Decides and settles admissions against the key store and one shared limiter."""

    def __init__(self, policy: TierPolicy, store: ApiKeyStore, limiter: RateLimiter) -> None:
        self.policy = policy
        self.store = store
        self.limiter = limiter

    def key_limits(self, key: ApiKey) -> RateLimits:
        paid = self.policy.paid_limits
        return RateLimits(key.requests_per_minute or paid.requests_per_minute,
                          key.tokens_per_minute or paid.tokens_per_minute)

    def admit(self, request: AdmissionRequest) -> Admission:
        if request.max_tokens < 0:
            raise ValueError("max_tokens must not be negative")
        token = request.bearer_token
        if token is not None and looks_like_api_key(token):
            return self._admit_paid(token, request.max_tokens)
        identity = client_identity(request.remote_addr, request.forwarded_for, self.policy.trusted_proxies)
        limits = self.policy.free_limits
        if limits is None:
            return Admission(Outcome.UNAUTHORIZED, Tier.FREE, identity,
                             message="This node has no free tier: an API key is required.")
        decision = self.limiter.admit(identity, limits, request.max_tokens)
        headers = _rate_headers(limits, decision.remaining_requests, decision.remaining_tokens)
        if not decision.allowed:
            return self._denied(Tier.FREE, identity, None, decision.never, decision.limit,
                                decision.retry_after, limits, headers)
        return Admission(Outcome.ADMITTED, Tier.FREE, identity, PRIORITY_FREE, rate_ticket=decision.ticket,
                         headers=headers)

    def _admit_paid(self, token: str, max_tokens: int) -> Admission:
        key = self.store.authenticate(token)
        if key is None:
            return Admission(Outcome.UNAUTHORIZED, Tier.PAID, "key:unknown",
                             message="Incorrect API key provided.")
        identity = f"key:{key.key_id}"
        if key.revoked:
            return Admission(Outcome.UNAUTHORIZED, Tier.PAID, identity, key_id=key.key_id,
                             message=f"API key {key.key_id} has been revoked.")
        limits = self.key_limits(key)
        decision = self.limiter.admit(identity, limits, max_tokens)
        headers = _rate_headers(limits, decision.remaining_requests, decision.remaining_tokens)
        if not decision.allowed:
            return self._denied(Tier.PAID, identity, key.key_id, decision.never, decision.limit,
                                decision.retry_after, limits, headers)
        assert decision.ticket is not None
        price = self.policy.price_per_1k_tokens
        try:
            reservation = self.store.reserve(key.key_hash, self.policy.cost(max_tokens))
        except InsufficientCreditError as exc:
            self.limiter.cancel(decision.ticket)
            return Admission(
                Outcome.OVER_BUDGET, Tier.PAID, identity, key_id=key.key_id, price_per_1k_tokens=price,
                message=(f"API key {key.key_id} has insufficient credit: this request may cost up to "
                         f"{_aipg(exc.needed)} AIPG ({max_tokens} tokens at {_aipg(price)} AIPG per 1000), "
                         f"{_aipg(exc.available)} AIPG available."))
        except (RevokedApiKeyError, UnknownApiKeyError):  # revoked between authenticate and reserve
            self.limiter.cancel(decision.ticket)
            return Admission(Outcome.UNAUTHORIZED, Tier.PAID, identity, key_id=key.key_id,
                             message=f"API key {key.key_id} has been revoked.")
        return Admission(Outcome.ADMITTED, Tier.PAID, identity, PRIORITY_PAID, trusted_only=key.trusted_only,
                         price_per_1k_tokens=price, key_id=key.key_id, rate_ticket=decision.ticket,
                         reservation=reservation, headers=headers)

    def _denied(self, tier: Tier, identity: str, key_id: str | None, never: bool, limit: str | None,
                retry_after: float, limits: RateLimits, headers: dict[str, str]) -> Admission:
        if never:
            return Admission(Outcome.TOO_LARGE, tier, identity, key_id=key_id, headers=headers,
                             message=(f"max_tokens exceeds this tier's limit of {limits.tokens_per_minute} "
                                      "tokens per minute; lower max_tokens."))
        per_minute = limits.requests_per_minute if limit == LIMIT_REQUESTS else limits.tokens_per_minute
        seconds = max(1, -(-int(retry_after * 1000) // 1000))
        headers = {**headers, "retry-after": str(seconds)}
        return Admission(Outcome.RATE_LIMITED, tier, identity, key_id=key_id, retry_after=retry_after,
                         limit=limit, headers=headers,
                         message=(f"Rate limit reached for {limit} per minute (limit {per_minute}); "
                                  f"try again in {seconds}s."))

    def settle(self, admission: Admission, used_tokens: int) -> ApiKey | None:
        """The job ended having used `used_tokens` tokens: settle the rate limit and bill the key."""
        if admission.rate_ticket is not None:
            self.limiter.settle(admission.rate_ticket, used_tokens)
        if admission.reservation is not None:
            return self.store.settle(admission.reservation, self.policy.cost(used_tokens))
        return None

    def release(self, admission: Admission) -> None:
        """The job never ran (cancelled before a worker took it): bill nothing, refund everything."""
        if admission.rate_ticket is not None:
            self.limiter.cancel(admission.rate_ticket)
        if admission.reservation is not None:
            self.store.release(admission.reservation)


def _aipg(amount: int) -> str:
    whole, frac = divmod(amount, 100_000_000)
    return f"{whole}.{frac:08d}"
