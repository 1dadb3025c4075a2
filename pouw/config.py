"""The -pouw* options resolved into one typed, immutable PouwConfig.

Owns parsing and range checks of -pouw, -pouwapi, -pouwapiport, -pouwapibind, -pouwmodel,
-pouwbackend, -pouwconnect, -pouwthreads, -pouwmaxconcurrency, -pouwjobtimeout, -pouwfree*,
-pouwpaid*, -pouwprice, -pouwcheckrate, -pouwvalidator and -pouwtrustedproxy, with error texts that
name the option and the expected form. It must never open files, sockets or models.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from aipgd.config import ArgsManager, ConfigError
from aipgd.core.transaction import COIN, MAX_MONEY

# The OpenAI-compatible API's port per network: clear of P2P (8865/18865/18550) and RPC
# (9788/19788/19555) on every network.
DEFAULT_API_PORTS = {"main": 8766, "test": 18766, "regtest": 18866}
DEFAULT_API_BIND = "127.0.0.1"
DEFAULT_MAX_CONCURRENCY = 1
DEFAULT_JOB_TIMEOUT = 120  # seconds
DEFAULT_FREE_RPM = 10
DEFAULT_FREE_TPM = 10_000
DEFAULT_PAID_RPM = 600
DEFAULT_PAID_TPM = 1_000_000
DEFAULT_PRICE = 1_000_000  # 0.01 AIPG per 1000 tokens, in the smallest unit
DEFAULT_CHECK_RATE = Decimal("0.05")
OPENAI_SCHEME = "openai:"
CHEAT_MODES = ("random", "truncate", "text")

# Model and backend names: what requests put in "model" (Ollama's "llama3.1:8b", HF's "org/name").
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """-pouwmodel=<name>=<path.gguf>: a GGUF file run in-process by llama.cpp."""

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """-pouwbackend=[<name>=]openai:<url>: an OpenAI-compatible server. Without a name, the server's
    own /v1/models list says which models it serves."""

    name: str | None
    url: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PouwConfig:
    worker: bool = False  # -pouw
    api: bool = False  # -pouwapi
    api_binds: tuple[Endpoint, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    backends: tuple[BackendSpec, ...] = ()
    connect: tuple[Endpoint, ...] = ()
    threads: int = 0  # 0: llama.cpp's choice (all cores)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    job_timeout: int = DEFAULT_JOB_TIMEOUT
    free_rpm: int = DEFAULT_FREE_RPM  # 0: no free tier
    free_tpm: int = DEFAULT_FREE_TPM
    paid_rpm: int = DEFAULT_PAID_RPM
    paid_tpm: int = DEFAULT_PAID_TPM
    price_per_1k_tokens: int = DEFAULT_PRICE
    check_rate: Decimal = DEFAULT_CHECK_RATE
    validator: bool = False  # -pouwvalidator
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    test_cheat: str = ""  # -pouwtestcheat (regtest only): how this node's workers forge outputs
    trusted_workers: frozenset[bytes] = frozenset()  # -pouwtrustworker: peers' worker keys trusted

    @property
    def enabled(self) -> bool:
        """Whether the node runs its PoUW component at all."""
        return self.worker or self.api or self.validator or bool(self.connect)


def _invalid(name: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"Invalid -{name}={value}: expected {expected}")


def _int(args: ArgsManager, name: str, default: int, lo: int, hi: int) -> int:
    value = args.get_int(name, default)
    if value is None:  # -noname
        return default if lo > 0 else 0
    if not lo <= value <= hi:
        raise ConfigError(f"-{name} must be between {lo} and {hi} (got {value})")
    return value


def parse_endpoint(name: str, text: str, default_port: int | None) -> Endpoint:
    """host, host:port, [v6] or [v6]:port (Core: SplitHostPort)."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise _invalid(name, text, "<host>[:port], with [host]:port for IPv6")
        host, port_text = text[1:end], text[end + 2:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:  # a bare IPv6 address
        host = text
    if not host or any(c.isspace() for c in host):
        raise _invalid(name, text, "<host>[:port]")
    if not port_text:
        if default_port is None:
            raise _invalid(name, text, "<host>:<port>")
        return Endpoint(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise _invalid(name, text, "a port between 1 and 65535")
    return Endpoint(host, int(port_text))


def parse_model(text: str, datadir: Path) -> ModelSpec:
    """<name>=<path.gguf>; a relative path is taken from the data directory (as Core does for files)."""
    name, sep, path_text = text.partition("=")
    if not sep or not _NAME_RE.fullmatch(name) or not path_text:
        raise _invalid("pouwmodel", text, "<name>=<path.gguf> (a name of letters, digits and ._:/@+-)")
    if not path_text.lower().endswith(".gguf"):
        raise _invalid("pouwmodel", text, "a path to a .gguf model file")
    path = Path(os.path.expanduser(path_text))
    return ModelSpec(name, path if path.is_absolute() else datadir / path)


def parse_backend(text: str) -> BackendSpec:
    """[<name>=]openai:<http(s) url>."""
    name: str | None = None
    spec = text
    if not text.startswith(OPENAI_SCHEME):
        name, sep, spec = text.partition("=")
        if not sep or not _NAME_RE.fullmatch(name):
            raise _invalid("pouwbackend", text, "[<name>=]openai:<url>")
    if not spec.startswith(OPENAI_SCHEME):
        raise _invalid("pouwbackend", text, "[<name>=]openai:<url> (openai is the only backend type)")
    url = spec[len(OPENAI_SCHEME):]
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise _invalid("pouwbackend", text, "openai:<url> with an http:// or https:// URL")
    return BackendSpec(name, url.rstrip("/"))


def parse_amount(name: str, text: str) -> int:
    """An AIPG amount ("0.01") in the smallest unit (Core: ParseMoney)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if value.is_finite() and value >= 0:
        scaled = value * COIN
        if scaled == scaled.to_integral_value() and scaled <= MAX_MONEY:
            return int(scaled)
    raise ConfigError(f"Invalid amount for -{name}=<amount>: '{text}'")


def _check_rate(text: str | None) -> Decimal:
    if text is None:
        return DEFAULT_CHECK_RATE
    try:
        rate = Decimal(text.strip())
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise _invalid("pouwcheckrate", text, "a fraction between 0 and 1 (e.g. 0.05)")
    return rate


def _proxy(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise _invalid("pouwtrustedproxy", text, "an IP address or network (e.g. 10.0.0.1 or 10.0.0.0/8)") \
            from None


def pouw_config(args: ArgsManager, network: str, datadir: Path) -> PouwConfig:
    """Every -pouw* option, checked; `datadir` resolves relative model paths."""
    api_port = _int(args, "pouwapiport", DEFAULT_API_PORTS[network], 1, 65535)
    binds = args.get_all("pouwapibind") or [DEFAULT_API_BIND]
    price_text = args.get("pouwprice")
    return PouwConfig(
        worker=args.get_bool("pouw", False),
        api=args.get_bool("pouwapi", False),
        api_binds=tuple(parse_endpoint("pouwapibind", b, api_port) for b in binds),
        models=tuple(parse_model(m, datadir) for m in args.get_all("pouwmodel")),
        backends=tuple(parse_backend(b) for b in args.get_all("pouwbackend")),
        connect=tuple(parse_endpoint("pouwconnect", c, None) for c in args.get_all("pouwconnect")),
        threads=_int(args, "pouwthreads", 0, 0, 1024),
        max_concurrency=_int(args, "pouwmaxconcurrency", DEFAULT_MAX_CONCURRENCY, 1, 1024),
        job_timeout=_int(args, "pouwjobtimeout", DEFAULT_JOB_TIMEOUT, 1, 86400),
        free_rpm=_int(args, "pouwfreerpm", DEFAULT_FREE_RPM, 0, 1_000_000),
        free_tpm=_int(args, "pouwfreetpm", DEFAULT_FREE_TPM, 0, 1_000_000_000),
        paid_rpm=_int(args, "pouwpaidrpm", DEFAULT_PAID_RPM, 1, 1_000_000),
        paid_tpm=_int(args, "pouwpaidtpm", DEFAULT_PAID_TPM, 1, 1_000_000_000),
        price_per_1k_tokens=DEFAULT_PRICE if price_text is None else parse_amount("pouwprice", price_text),
        check_rate=_check_rate(args.get("pouwcheckrate")),
        validator=args.get_bool("pouwvalidator", False),
        trusted_proxies=tuple(_proxy(p) for p in args.get_all("pouwtrustedproxy")),
        test_cheat=_test_cheat(args.get("pouwtestcheat")),
        trusted_workers=frozenset(_pubkey("pouwtrustworker", k) for k in args.get_all("pouwtrustworker")),
    )


def _pubkey(name: str, text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 33 or key[0] not in (2, 3):
        raise _invalid(name, text, "a compressed public key in hex (66 characters, 02 or 03 first)")
    return key


def _test_cheat(text: str | None) -> str:
    if text is None or text == "":
        return ""
    if text not in CHEAT_MODES:
        raise _invalid("pouwtestcheat", text, " or ".join(CHEAT_MODES))
    return text
