"""The mempool's command-line options turned into MempoolOptions (Core: AppInitParameterInteraction's
policy part: -maxmempool, -mempoolexpiry, -minrelaytxfee, -limit*, -mempoolreplacement, ...).

Owns parsing and range checks of those values, with Core's error texts. It must never read files.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from aipgd.core.transaction import COIN, MAX_MONEY
from aipgd.errors import InitError
from aipgd.mempool.accept import (
    DEFAULT_ENABLE_REPLACEMENT,
    DEFAULT_MAX_MEMPOOL_SIZE_MB,
    DEFAULT_MEMPOOL_EXPIRY_HOURS,
    DEFAULT_TRANSACTION_MAXFEE,
    MempoolOptions,
)
from aipgd.mempool.policy import (
    DEFAULT_ACCEPT_DATACARRIER,
    DEFAULT_BYTES_PER_SIGOP,
    DEFAULT_INCREMENTAL_RELAY_FEE,
    DEFAULT_MIN_RELAY_TX_FEE,
    DEFAULT_PERMIT_BAREMULTISIG,
    DUST_RELAY_TX_FEE,
    MAX_OP_RETURN_RELAY,
    StandardPolicy,
)
from aipgd.mempool.txmempool import AncestorLimits


def parse_money(text: str) -> int | None:
    """Core: ParseMoney, "0.01" -> 1000000 satoshis; None when malformed or out of range."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    sat = value * COIN
    if sat != sat.to_integral_value() or sat > MAX_MONEY:
        return None
    return int(sat)


def _amount(args: Any, name: str, default: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    value = parse_money(text)
    if value is None:
        raise InitError(f"Invalid amount for -{name}=<amount>: '{text}'")
    return value


def mempool_options(args: Any) -> MempoolOptions:
    """Options for the MempoolManager from the node's ArgsManager."""
    max_mb = args.get_int("maxmempool", DEFAULT_MAX_MEMPOOL_SIZE_MB) or 0
    limits = AncestorLimits(
        ancestor_count=args.get_int("limitancestorcount", 200) or 0,
        ancestor_size=(args.get_int("limitancestorsize", 250) or 0) * 1000,
        descendant_count=args.get_int("limitdescendantcount", 200) or 0,
        descendant_size=(args.get_int("limitdescendantsize", 250) or 0) * 1000,
    )
    # Core: the pool must hold at least one descendant-size package per 40 kB of limit.
    min_mb = -(-limits.descendant_size * 40 // 1_000_000)
    if max_mb < min_mb:
        raise InitError(f"-maxmempool must be at least {min_mb} MB")
    accept_nonstd = args.get("acceptnonstdtxn")
    policy = StandardPolicy(
        accept_datacarrier=args.get_bool("datacarrier", DEFAULT_ACCEPT_DATACARRIER),
        max_datacarrier_bytes=args.get_int("datacarriersize", MAX_OP_RETURN_RELAY) or 0,
        permit_bare_multisig=args.get_bool("permitbaremultisig", DEFAULT_PERMIT_BAREMULTISIG),
        dust_relay_fee=_amount(args, "dustrelayfee", DUST_RELAY_TX_FEE),
        bytes_per_sigop=args.get_int("bytespersigop", DEFAULT_BYTES_PER_SIGOP) or 0,
    )
    return MempoolOptions(
        max_mempool_bytes=max_mb * 1_000_000,
        expiry_seconds=(args.get_int("mempoolexpiry", DEFAULT_MEMPOOL_EXPIRY_HOURS) or 0) * 3600,
        min_relay_fee=_amount(args, "minrelaytxfee", DEFAULT_MIN_RELAY_TX_FEE),
        incremental_relay_fee=_amount(args, "incrementalrelayfee", DEFAULT_INCREMENTAL_RELAY_FEE),
        limits=limits,
        enable_replacement=args.get_bool("mempoolreplacement", DEFAULT_ENABLE_REPLACEMENT),
        require_standard=None if accept_nonstd is None else not args.get_bool("acceptnonstdtxn", False),
        policy=policy,
        persist=args.get_bool("persistmempool", True),
        max_tx_fee=_amount(args, "maxtxfee", DEFAULT_TRANSACTION_MAXFEE),
    )
