"""Admission into the free and paid tiers: each outcome, its HTTP status and OpenAI error body."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipgd.config import ArgsManager, ConfigError
from aipgd.core.transaction import COIN
from pouw.apikeys import ApiKeyStore
from pouw.config import pouw_config
from pouw.jobspec import Tier
from pouw.ratelimit import RateLimiter, RateLimits
from pouw.service import tier_policy
from pouw.tiers import (
    PRIORITY_FREE,
    PRIORITY_PAID,
    AdmissionPolicy,
    AdmissionRequest,
    Outcome,
    TierPolicy,
    client_identity,
)

PRICE = 1000  # smallest units per 1000 tokens: one unit per token
FREE = RateLimits(2, 1000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ApiKeyStore]:
    s = ApiKeyStore(tmp_path / "apikeys")
    s.open()
    yield s
    s.close()


def _policy(store: ApiKeyStore, clock: FakeClock, free: RateLimits | None = FREE,
            proxies: tuple[str, ...] = ()) -> AdmissionPolicy:
    tiers = TierPolicy(free, RateLimits(100, 100_000), PRICE,
                       tuple(ipaddress.ip_network(p) for p in proxies))
    return AdmissionPolicy(tiers, store, RateLimiter(clock))


def test_no_key_is_free_tier_with_low_priority(store: ApiKeyStore, clock: FakeClock) -> None:
    policy = _policy(store, clock, free=RateLimits(10, 1000))
    for token in (None, "sk-no-key", "free"):
        adm = policy.admit(AdmissionRequest("10.0.0.1", 100, bearer_token=token))
        assert adm.admitted and adm.http_status == 200 and adm.error_body() is None
        assert (adm.tier, adm.priority, adm.trusted_only) == (Tier.FREE, PRIORITY_FREE, False)
        assert adm.identity == "ip:10.0.0.1" and adm.reservation is None and adm.key_id is None
        policy.settle(adm, 10)


def test_free_tier_rate_limit_is_429_with_retry_after(store: ApiKeyStore, clock: FakeClock) -> None:
    policy = _policy(store, clock)
    for _ in range(2):
        assert policy.admit(AdmissionRequest("10.0.0.1", 10)).admitted
    adm = policy.admit(AdmissionRequest("10.0.0.1", 10))
    assert adm.outcome is Outcome.RATE_LIMITED and adm.http_status == 429
    assert adm.retry_after == pytest.approx(30.0) and adm.headers["retry-after"] == "30"
    body = adm.error_body()
    assert body is not None
    assert body["error"]["type"] == "requests" and body["error"]["code"] == "rate_limit_exceeded"
    assert "30s" in body["error"]["message"]
    # Another client is not affected; the first one is let in again once its bucket refills.
    assert policy.admit(AdmissionRequest("10.0.0.2", 10)).admitted
    clock.now += 30
    assert policy.admit(AdmissionRequest("10.0.0.1", 10)).admitted


def test_free_tier_tokens_are_settled_with_real_usage(store: ApiKeyStore, clock: FakeClock) -> None:
    policy = _policy(store, clock, free=RateLimits(100, 1000))
    adm = policy.admit(AdmissionRequest("10.0.0.1", 800))
    assert adm.admitted and adm.headers["x-ratelimit-remaining-tokens"] == "200"
    denied = policy.admit(AdmissionRequest("10.0.0.1", 800))
    assert denied.outcome is Outcome.RATE_LIMITED and denied.limit == "tokens"
    assert denied.error_body()["error"]["type"] == "tokens"  # type: ignore[index]
    policy.settle(adm, 100)  # 700 come back
    assert policy.admit(AdmissionRequest("10.0.0.1", 800)).admitted


def test_max_tokens_above_the_bucket_is_400(store: ApiKeyStore, clock: FakeClock) -> None:
    adm = _policy(store, clock).admit(AdmissionRequest("10.0.0.1", 1001))
    assert adm.outcome is Outcome.TOO_LARGE and adm.http_status == 400
    assert adm.error_body()["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_no_free_tier_requires_a_key(store: ApiKeyStore, clock: FakeClock) -> None:
    adm = _policy(store, clock, free=None).admit(AdmissionRequest("10.0.0.1", 1))
    assert adm.outcome is Outcome.UNAUTHORIZED and adm.http_status == 401


def test_valid_key_is_paid_tier_with_priority_and_trusted_routing(store: ApiKeyStore,
                                                                   clock: FakeClock) -> None:
    secret, key = store.create("alice", credit=10_000)
    policy = _policy(store, clock)
    adm = policy.admit(AdmissionRequest("10.0.0.1", 500, bearer_token=secret))
    assert adm.admitted and adm.tier is Tier.PAID and adm.priority == PRIORITY_PAID != PRIORITY_FREE
    assert adm.trusted_only and adm.key_id == key.key_id and adm.identity == f"key:{key.key_id}"
    assert adm.price_per_1k_tokens == PRICE
    assert adm.reservation is not None and adm.reservation.amount == 500
    assert store.available(key.key_id) == 9_500
    after = policy.settle(adm, 120)
    assert after is not None and (after.credit, after.spent, after.requests) == (9_880, 120, 1)


def test_key_without_trusted_only_may_use_any_worker(store: ApiKeyStore, clock: FakeClock) -> None:
    secret, _ = store.create("bob", credit=1000, trusted_only=False)
    adm = _policy(store, clock).admit(AdmissionRequest("10.0.0.1", 10, bearer_token=secret))
    assert adm.admitted and not adm.trusted_only


def test_over_budget_is_402_insufficient_quota(store: ApiKeyStore, clock: FakeClock) -> None:
    secret, key = store.create("alice", credit=300)
    policy = _policy(store, clock)
    adm = policy.admit(AdmissionRequest("10.0.0.1", 500, bearer_token=secret))
    assert adm.outcome is Outcome.OVER_BUDGET and adm.http_status == 402
    body = adm.error_body()
    assert body is not None and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "insufficient_quota" and body["error"]["code"] == "insufficient_quota"
    assert "0.00000300 AIPG available" in body["error"]["message"]
    # The refused request cost the key nothing: neither credit nor its rate limit.
    assert store.available(key.key_id) == 300
    assert policy.limiter.peek(adm.identity) == (100, 100_000)
    assert policy.admit(AdmissionRequest("10.0.0.1", 300, bearer_token=secret)).admitted


def test_unknown_and_revoked_keys_are_401(store: ApiKeyStore, clock: FakeClock) -> None:
    secret, key = store.create("alice", credit=COIN)
    policy = _policy(store, clock)
    unknown = policy.admit(AdmissionRequest("10.0.0.1", 1, bearer_token=secret[:-2] + "zz"))
    assert unknown.outcome is Outcome.UNAUTHORIZED and unknown.http_status == 401
    assert unknown.error_body()["error"]["code"] == "invalid_api_key"  # type: ignore[index]
    store.revoke(key.key_id)
    revoked = policy.admit(AdmissionRequest("10.0.0.1", 1, bearer_token=secret))
    assert revoked.outcome is Outcome.UNAUTHORIZED and "revoked" in revoked.message


def test_paid_rate_limit_uses_the_keys_override(store: ApiKeyStore, clock: FakeClock) -> None:
    secret, _ = store.create("alice", credit=COIN, requests_per_minute=1)
    policy = _policy(store, clock)
    assert policy.admit(AdmissionRequest("10.0.0.1", 1, bearer_token=secret)).admitted
    adm = policy.admit(AdmissionRequest("10.0.0.1", 1, bearer_token=secret))
    assert adm.outcome is Outcome.RATE_LIMITED and adm.retry_after == pytest.approx(60.0)


def test_release_refunds_credit_and_rate(store: ApiKeyStore, clock: FakeClock) -> None:
    secret, key = store.create("alice", credit=1000)
    policy = _policy(store, clock)
    adm = policy.admit(AdmissionRequest("10.0.0.1", 1000, bearer_token=secret))
    assert adm.admitted and store.available(key.key_id) == 0
    policy.release(adm)
    assert store.available(key.key_id) == 1000 and store.get(key.key_id).requests == 0
    assert policy.limiter.peek(adm.identity) == (100, 100_000)


def test_price_rounds_up() -> None:
    tiers = TierPolicy(None, RateLimits(1, 1), price_per_1k_tokens=1_000_000)
    assert tiers.cost(0) == 0 and tiers.cost(1) == 1000 and tiers.cost(1000) == 1_000_000
    assert TierPolicy(None, RateLimits(1, 1), 3).cost(1) == 1


def test_client_identity_uses_forwarded_for_only_from_a_trusted_proxy() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_identity("1.2.3.4", "5.6.7.8", proxies) == "ip:1.2.3.4"
    assert client_identity("10.1.1.1", "5.6.7.8", proxies) == "ip:5.6.7.8"
    # The client may prepend anything: the right-most untrusted hop counts.
    assert client_identity("10.1.1.1", "6.6.6.6, 5.6.7.8, 10.2.2.2", proxies) == "ip:5.6.7.8"
    assert client_identity("10.1.1.1", "junk, 5.6.7.8", proxies) == "ip:5.6.7.8"
    assert client_identity("10.1.1.1", "junk", proxies) == "ip:10.1.1.1"
    assert client_identity("10.1.1.1", None, proxies) == "ip:10.1.1.1"
    assert client_identity("10.1.1.1", "5.6.7.8") == "ip:10.1.1.1"


def test_client_identity_normalises_addresses() -> None:
    assert client_identity("2001:db8::1", None) == "ip:2001:db8::/64"
    assert client_identity("2001:db8::ffff:1", None) == client_identity("2001:db8::2", None)
    assert client_identity("::ffff:1.2.3.4", None) == "ip:1.2.3.4"
    assert client_identity("1.2.3.4:5555", None) == "ip:1.2.3.4"
    assert client_identity("[2001:db8::1]:80", None) == "ip:2001:db8::/64"


def test_forwarded_clients_are_limited_separately(store: ApiKeyStore, clock: FakeClock) -> None:
    policy = _policy(store, clock, free=RateLimits(1, 1000), proxies=("127.0.0.1",))
    assert policy.admit(AdmissionRequest("127.0.0.1", 1, forwarded_for="1.1.1.1")).admitted
    assert policy.admit(AdmissionRequest("127.0.0.1", 1, forwarded_for="2.2.2.2")).admitted
    assert not policy.admit(AdmissionRequest("127.0.0.1", 1, forwarded_for="1.1.1.1")).admitted


# -- the -pouw* options --------------------------------------------------------------------------


def _config(tmp_path: Path, *argv: str, network: str = "regtest") -> object:
    args = ArgsManager()
    args.parse_command_line(list(argv))
    args.network = network
    return pouw_config(args, network, tmp_path)


def test_options_defaults(tmp_path: Path) -> None:
    from pouw.config import DEFAULT_PRICE, PouwConfig

    cfg = _config(tmp_path)
    assert isinstance(cfg, PouwConfig) and not cfg.enabled
    assert [str(e) for e in cfg.api_binds] == ["127.0.0.1:18866"]
    assert cfg.price_per_1k_tokens == DEFAULT_PRICE == COIN // 100
    main = _config(tmp_path, network="main")
    assert [str(e) for e in main.api_binds] == ["127.0.0.1:8766"]  # type: ignore[attr-defined]
    tiers = tier_policy(cfg)
    assert tiers.free_limits == RateLimits(10, 10_000) and tiers.paid_limits == RateLimits(600, 1_000_000)


def test_options_parse_into_a_typed_config(tmp_path: Path) -> None:
    from pouw.config import BackendSpec, ModelSpec, PouwConfig

    cfg = _config(tmp_path, "-pouw", "-pouwapi", "-pouwapiport=9000", "-pouwapibind=0.0.0.0",
                  "-pouwapibind=[::1]:9001", "-pouwmodel=tiny=models/tiny.gguf",
                  "-pouwmodel=llama3.1:8b=/abs/l.gguf", "-pouwbackend=openai:http://127.0.0.1:8080/v1/",
                  "-pouwbackend=qwen=openai:https://gpu.example/v1?x=1", "-pouwconnect=node.example:8766",
                  "-pouwthreads=4", "-pouwmaxconcurrency=3", "-pouwjobtimeout=30", "-pouwfreerpm=0",
                  "-pouwprice=0.5", "-pouwcheckrate=0.25", "-pouwvalidator", "-pouwtrustedproxy=10.0.0.0/8")
    assert isinstance(cfg, PouwConfig) and cfg.enabled and cfg.worker and cfg.api and cfg.validator
    assert [str(e) for e in cfg.api_binds] == ["0.0.0.0:9000", "[::1]:9001"]
    assert cfg.models == (ModelSpec("tiny", tmp_path / "models/tiny.gguf"),
                          ModelSpec("llama3.1:8b", Path("/abs/l.gguf")))
    assert cfg.backends == (BackendSpec(None, "http://127.0.0.1:8080/v1"),
                            BackendSpec("qwen", "https://gpu.example/v1?x=1"))
    assert [str(e) for e in cfg.connect] == ["node.example:8766"]
    assert (cfg.threads, cfg.max_concurrency, cfg.job_timeout) == (4, 3, 30)
    assert cfg.price_per_1k_tokens == COIN // 2 and str(cfg.check_rate) == "0.25"
    assert tier_policy(cfg).free_limits is None
    assert cfg.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(("arg", "message"), [
    ("-pouwmodel=tiny", "Invalid -pouwmodel=tiny: expected <name>=<path.gguf>"),
    ("-pouwmodel=tiny=/m.bin", "a path to a .gguf model file"),
    ("-pouwmodel==/m.gguf", "expected <name>=<path.gguf>"),
    ("-pouwbackend=http://x", "Invalid -pouwbackend=http://x: expected [<name>=]openai:<url>"),
    ("-pouwbackend=a=vllm:http://x", "openai is the only backend type"),
    ("-pouwbackend=openai:ftp://x", "http:// or https:// URL"),
    ("-pouwbackend=openai:http://x:99999", "http:// or https:// URL"),
    ("-pouwconnect=node.example", "Invalid -pouwconnect=node.example: expected <host>:<port>"),
    ("-pouwconnect=node.example:0", "a port between 1 and 65535"),
    ("-pouwapiport=70000", "-pouwapiport must be between 1 and 65535 (got 70000)"),
    ("-pouwmaxconcurrency=0", "-pouwmaxconcurrency must be between 1 and 1024"),
    ("-pouwjobtimeout=0", "-pouwjobtimeout must be between 1 and 86400"),
    ("-pouwfreerpm=-1", "-pouwfreerpm must be between 0"),
    ("-pouwprice=abc", "Invalid amount for -pouwprice=<amount>: 'abc'"),
    ("-pouwprice=0.000000001", "Invalid amount for -pouwprice"),
    ("-pouwcheckrate=1.5", "Invalid -pouwcheckrate=1.5: expected a fraction between 0 and 1"),
    ("-pouwtrustedproxy=proxy.example", "Invalid -pouwtrustedproxy=proxy.example"),
])
def test_bad_option_values_are_clear_errors(tmp_path: Path, arg: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc_info:
        _config(tmp_path, arg)
    assert message in str(exc_info.value)


def test_integer_options_reject_non_numbers() -> None:
    with pytest.raises(ConfigError, match="Invalid integer value -pouwfreetpm=lots"):
        ArgsManager().parse_command_line(["-pouwfreetpm=lots"])
