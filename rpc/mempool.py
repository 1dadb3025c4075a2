"""Mempool RPCs (Core: rpc/blockchain.cpp getmempoolinfo, getrawmempool, getmempoolentry,
getmempoolancestors, getmempooldescendants, savemempool; rpc/rawtransaction.cpp sendrawtransaction;
0.17's testmempoolaccept).

Owns turning pool entries into Core's JSON and acceptance verdicts into Core's error codes
(-25 missing inputs, -26 "code: reason", -27 already in the chain). It reaches the pool only
through the node interface's `mempool` (a MempoolManager) and its lock.
"""

from __future__ import annotations

from typing import Any

from aipgd.core.transaction import OutPoint, Transaction
from aipgd.core.uint256 import hash_to_hex
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import amount_value
from rpc.rawtransaction import decode_hex_tx, parse_hash_v
from rpc.registry import Args, Kind, Method, Param, examples


def mempool_of(ctx: RPCContext) -> Any:
    mgr = getattr(ctx.node, "mempool", None)
    if mgr is None:
        raise RPCError(RPCErrorCode.RPC_CLIENT_P2P_DISABLED, "Error: the mempool is disabled")
    return mgr


def entry_json(pool: Any, entry: Any) -> dict[str, Any]:
    """Core 0.15: entryToJSON."""
    return {
        "size": entry.vsize,
        "fee": amount_value(entry.fee),
        "modifiedfee": amount_value(entry.modified_fee),
        "time": entry.time,
        "height": entry.height,
        "descendantcount": entry.count_with_descendants,
        "descendantsize": entry.size_with_descendants,
        "descendantfees": entry.mod_fees_with_descendants,
        "ancestorcount": entry.count_with_ancestors,
        "ancestorsize": entry.size_with_ancestors,
        "ancestorfees": entry.mod_fees_with_ancestors,
        "depends": sorted(hash_to_hex(t) for t in entry.parents),
    }


def _verbose_flag(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a boolean as expected")
    return value


def _txs_json(pool: Any, txids: list[bytes], verbose: bool) -> Any:
    if not verbose:
        return [hash_to_hex(t) for t in txids]
    return {hash_to_hex(t): entry_json(pool, pool.entries[t]) for t in txids}


def _getmempoolinfo(ctx: RPCContext, args: Args) -> Any:
    mgr = mempool_of(ctx)
    pool = mgr.pool
    with pool.lock:
        return {
            "size": len(pool.entries),
            "bytes": pool.total_size,
            "usage": pool.usage,
            "maxmempool": mgr.options.max_mempool_bytes,
            "mempoolminfee": amount_value(mgr.min_fee_rate().per_k),
        }


def _getrawmempool(ctx: RPCContext, args: Args) -> Any:
    pool = mempool_of(ctx).pool
    verbose = _verbose_flag(args[0])
    with pool.lock:
        return _txs_json(pool, list(pool.entries), verbose)


def _entry_or_error(pool: Any, value: Any) -> Any:
    txid = parse_hash_v(value, "parameter 1")
    entry = pool.entries.get(txid)
    if entry is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
    return entry


def _getmempoolentry(ctx: RPCContext, args: Args) -> Any:
    pool = mempool_of(ctx).pool
    with pool.lock:
        return entry_json(pool, _entry_or_error(pool, args[0]))


def _getmempoolancestors(ctx: RPCContext, args: Args) -> Any:
    pool = mempool_of(ctx).pool
    verbose = _verbose_flag(args[1])
    with pool.lock:
        entry = _entry_or_error(pool, args[0])
        return _txs_json(pool, sorted(pool.ancestors(entry.txid)), verbose)


def _getmempooldescendants(ctx: RPCContext, args: Args) -> Any:
    pool = mempool_of(ctx).pool
    verbose = _verbose_flag(args[1])
    with pool.lock:
        entry = _entry_or_error(pool, args[0])
        return _txs_json(pool, sorted(pool.descendants(entry.txid) - {entry.txid}), verbose)


def _savemempool(ctx: RPCContext, args: Args) -> Any:
    mgr = mempool_of(ctx)
    if not mgr.loaded:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "The mempool was not loaded yet")
    try:
        mgr.dump_mempool()
    except (OSError, ValueError):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "Unable to dump mempool to disk") from None
    return None


def _decode(text: Any) -> Transaction:
    tx = decode_hex_tx(text)
    if tx is None:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "TX decode failed")
    return tx


def send_raw_transaction(ctx: RPCContext, args: Args) -> Any:
    """Core: sendrawtransaction."""
    tx = _decode(args[0])
    mgr = mempool_of(ctx)
    absurd = 0 if args[1] else mgr.options.max_tx_fee
    txid = tx.txid
    in_chain = any(ctx.node.get_coin(OutPoint(txid, n)) is not None for n in range(len(tx.vout)))
    in_pool = mgr.get_transaction(txid) is not None
    if not in_pool and not in_chain:
        result = mgr.accept(tx, absurd_fee=absurd)
        if not result.accepted:
            state = result.state
            if state.is_invalid():
                raise RPCError(RPCErrorCode.RPC_VERIFY_REJECTED,
                               f"{int(state.reject_code)}: {state.reject_reason}")
            if result.missing_inputs:
                raise RPCError(RPCErrorCode.RPC_VERIFY_ERROR, "Missing inputs")
            raise RPCError(RPCErrorCode.RPC_VERIFY_ERROR, state.reject_reason)
    elif in_chain:
        raise RPCError(RPCErrorCode.RPC_VERIFY_ALREADY_IN_CHAIN, "transaction already in block chain")
    elif in_pool:
        # Core relays it again (it may have been lost by peers).
        mgr.announce(tx)
    return tx.txid_hex


def _testmempoolaccept(ctx: RPCContext, args: Args) -> Any:
    """Core 0.17: testmempoolaccept, acceptance without adding."""
    rawtxs = args[0]
    if len(rawtxs) != 1:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       "Array must contain exactly one raw transaction for now")
    tx = _decode(rawtxs[0])
    mgr = mempool_of(ctx)
    absurd = 0 if args[1] else mgr.options.max_tx_fee
    result = mgr.accept(tx, absurd_fee=absurd, test_accept=True)
    out: dict[str, Any] = {"txid": tx.txid_hex, "allowed": result.accepted}
    if not result.accepted:
        state = result.state
        if state.is_invalid():
            out["reject-reason"] = f"{int(state.reject_code)}: {state.reject_reason}"
        elif result.missing_inputs:
            out["reject-reason"] = "missing-inputs"
        else:
            out["reject-reason"] = state.reject_reason
    return [out]


_ENTRY_FIELDS = (
    '    "size" : n,             (numeric) virtual transaction size as defined in BIP 141.\n'
    '    "fee" : n,              (numeric) transaction fee in AIPG\n'
    '    "modifiedfee" : n,      (numeric) transaction fee with fee deltas used for mining priority\n'
    '    "time" : n,             (numeric) local time transaction entered pool in'
    ' seconds since 1 Jan 1970 GMT\n'
    '    "height" : n,           (numeric) block height when transaction entered pool\n'
    '    "descendantcount" : n,  (numeric) number of in-mempool descendant'
    ' transactions (including this one)\n'
    '    "descendantsize" : n,   (numeric) virtual transaction size of in-mempool'
    ' descendants (including this one)\n'
    '    "descendantfees" : n,   (numeric) modified fees (see above) of in-mempool'
    ' descendants (including this one)\n'
    '    "ancestorcount" : n,    (numeric) number of in-mempool ancestor transactions (including this one)\n'
    '    "ancestorsize" : n,     (numeric) virtual transaction size of in-mempool'
    ' ancestors (including this one)\n'
    '    "ancestorfees" : n,     (numeric) modified fees (see above) of in-mempool'
    ' ancestors (including this one)\n'
    '    "depends" : [           (array) unconfirmed transactions used as inputs for this transaction\n'
    '        "transactionid",    (string) parent transaction id\n'
    "       ... ]\n"
)
GETMEMPOOLINFO_HELP = (
    "getmempoolinfo\n"
    "\nReturns details on the active state of the TX memory pool.\n"
    "\nResult:\n"
    "{\n"
    '  "size": xxxxx,               (numeric) Current tx count\n'
    '  "bytes": xxxxx,              (numeric) Sum of all virtual transaction sizes as defined in BIP 141.\n'
    '  "usage": xxxxx,              (numeric) Total memory usage for the mempool\n'
    '  "maxmempool": xxxxx,         (numeric) Maximum memory usage for the mempool\n'
    '  "mempoolminfee": xxxxx       (numeric) Minimum feerate (AIPG per KB) for tx to be accepted\n'
    "}\n"
    + examples("getmempoolinfo")
)
GETRAWMEMPOOL_HELP = (
    "getrawmempool ( verbose )\n"
    "\nReturns all transaction ids in memory pool as a json array of string transaction ids.\n"
    "\nHint: use getmempoolentry to fetch a specific transaction from the mempool.\n"
    "\nArguments:\n"
    "1. verbose (boolean, optional, default=false) True for a json object, false for"
    " array of transaction ids\n"
    "\nResult: (for verbose = false):\n"
    "[                     (json array of string)\n"
    '  "transactionid"     (string) The transaction id\n'
    "  ,...\n"
    "]\n"
    "\nResult: (for verbose = true):\n"
    "{                           (json object)\n"
    '  "transactionid" : {       (json object)\n'
    + _ENTRY_FIELDS
    + "  }, ...\n}\n"
    + examples("getrawmempool", "true")
)
GETMEMPOOLENTRY_HELP = (
    "getmempoolentry txid\n"
    "\nReturns mempool data for given transaction\n"
    "\nArguments:\n"
    '1. "txid"                 (string, required) The transaction id (must be in mempool)\n'
    "\nResult:\n"
    "{                           (json object)\n"
    + _ENTRY_FIELDS
    + "}\n"
    + examples("getmempoolentry", '"mytxid"')
)
GETMEMPOOLANCESTORS_HELP = (
    "getmempoolancestors txid (verbose)\n"
    "\nIf txid is in the mempool, returns all in-mempool ancestors.\n"
    "\nArguments:\n"
    '1. "txid"                 (string, required) The transaction id (must be in mempool)\n'
    "2. verbose                  (boolean, optional, default=false) True for a json object, false for array "
    "of transaction ids\n"
    "\nResult (for verbose=false):\n"
    "[                       (json array of strings)\n"
    '  "transactionid"           (string) The transaction id of an in-mempool ancestor transaction\n'
    "  ,...\n"
    "]\n"
    "\nResult (for verbose=true):\n"
    "{                           (json object)\n"
    '  "transactionid" : {       (json object)\n'
    + _ENTRY_FIELDS
    + "  }, ...\n}\n"
    + examples("getmempoolancestors", '"mytxid"')
)
GETMEMPOOLDESCENDANTS_HELP = (
    "getmempooldescendants txid (verbose)\n"
    "\nIf txid is in the mempool, returns all in-mempool descendants.\n"
    "\nArguments:\n"
    '1. "txid"                 (string, required) The transaction id (must be in mempool)\n'
    "2. verbose                  (boolean, optional, default=false) True for a json object, false for array "
    "of transaction ids\n"
    "\nResult (for verbose=false):\n"
    "[                       (json array of strings)\n"
    '  "transactionid"           (string) The transaction id of an in-mempool descendant transaction\n'
    "  ,...\n"
    "]\n"
    "\nResult (for verbose=true):\n"
    "{                           (json object)\n"
    '  "transactionid" : {       (json object)\n'
    + _ENTRY_FIELDS
    + "  }, ...\n}\n"
    + examples("getmempooldescendants", '"mytxid"')
)
SAVEMEMPOOL_HELP = (
    "savemempool\n"
    "\nDumps the mempool to disk.\n"
    + examples("savemempool")
)
TESTMEMPOOLACCEPT_HELP = (
    "testmempoolaccept [\"rawtxs\"] ( allowhighfees )\n"
    "\nReturns if raw transaction (serialized, hex-encoded) would be accepted by mempool.\n"
    "\nThis checks if the transaction violates the consensus or policy rules.\n"
    "\nSee sendrawtransaction call.\n"
    "\nArguments:\n"
    '1. ["rawtxs"]       (array, required) An array of hex strings of raw transactions.\n'
    "                                        Length must be one for now.\n"
    "2. allowhighfees    (boolean, optional, default=false) Allow high fees\n"
    "\nResult:\n"
    "[                   (array) The result of the mempool acceptance test for each raw transaction in the "
    "input array.\n"
    "                            Length is exactly one for now.\n"
    " {\n"
    '  "txid"           (string) The transaction hash in hex\n'
    '  "allowed"        (boolean) If the mempool allows this tx to be inserted\n'
    '  "reject-reason"  (string) Rejection string (only present when \'allowed\' is false)\n'
    " }\n"
    "]\n"
    + examples("testmempoolaccept", "[\\\"signedhex\\\"]", "[\"signedhex\"]")
)

METHODS = (
    # Offloaded: the pool's lock may be held by an acceptance that is checking scripts.
    Method("getmempoolinfo", "blockchain", _getmempoolinfo, (), GETMEMPOOLINFO_HELP, offload=True),
    Method("getrawmempool", "blockchain", _getrawmempool, (Param("verbose", Kind.ANY, required=False),),
           GETRAWMEMPOOL_HELP, offload=True),
    Method("getmempoolentry", "blockchain", _getmempoolentry, (Param("txid", Kind.STR),),
           GETMEMPOOLENTRY_HELP, offload=True),
    Method("getmempoolancestors", "blockchain", _getmempoolancestors,
           (Param("txid", Kind.STR), Param("verbose", Kind.ANY, required=False)), GETMEMPOOLANCESTORS_HELP,
           offload=True),
    Method("getmempooldescendants", "blockchain", _getmempooldescendants,
           (Param("txid", Kind.STR), Param("verbose", Kind.ANY, required=False)), GETMEMPOOLDESCENDANTS_HELP,
           offload=True),
    Method("savemempool", "blockchain", _savemempool, (), SAVEMEMPOOL_HELP, offload=True),
    Method("testmempoolaccept", "rawtransactions", _testmempoolaccept,
           (Param("rawtxs", Kind.ARR), Param("allowhighfees", Kind.BOOL, required=False)),
           TESTMEMPOOLACCEPT_HELP, offload=True, strict_types=True),
)
