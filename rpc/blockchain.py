"""Blockchain methods over the active chain (Core: rpc/blockchain.cpp): getblockcount, getbestblockhash,
getblockhash, getblockheader, getblock, getblockchaininfo, getdifficulty, and the hidden waitfor* calls.

Owns their arguments, results and errors. It must never read the chain except through NodeInterface.
"""

from __future__ import annotations

import time
from typing import Any

from aipgd.core.uint256 import hash_to_hex, hex_to_hash
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.interface import BlockEntry, TipInfo
from rpc.jsonutil import RawNumber, double_value
from rpc.registry import CATEGORY_HIDDEN, Args, Kind, Method, Param, check_int, examples
from rpc.txjson import block_json, difficulty, header_json

_EXAMPLE_HASH = '"00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6ed09"'


def difficulty_of(bits: int | None) -> RawNumber:
    return double_value(difficulty(bits))


def _tip(ctx: RPCContext) -> TipInfo:
    tip = ctx.node.tip()
    if tip is None:  # only possible during warm-up, which the dispatcher refuses
        raise RPCError(RPCErrorCode.RPC_IN_WARMUP, "Loading block index...")
    return tip


def _lookup_entry(ctx: RPCContext, text: str) -> BlockEntry:
    """Core: uint256S(str) then mapBlockIndex lookup; text that is not a hash finds no block."""
    try:
        block_hash = hex_to_hash(text)
    except ValueError:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found") from None
    entry = ctx.node.block_entry(block_hash)
    if entry is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    return entry


def _getblockcount(ctx: RPCContext, args: Args) -> Any:
    return _tip(ctx).height


def _getbestblockhash(ctx: RPCContext, args: Args) -> Any:
    return hash_to_hex(_tip(ctx).block_hash)


def _getdifficulty(ctx: RPCContext, args: Args) -> Any:
    entry = ctx.node.block_entry(_tip(ctx).block_hash)
    return difficulty_of(entry.header.bits if entry is not None else None)


def _getblockhash(ctx: RPCContext, args: Args) -> Any:
    height = args[0]
    block_hash = ctx.node.block_hash_at(height) if height >= 0 else None
    if block_hash is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Block height out of range")
    return hash_to_hex(block_hash)


def _getblockheader(ctx: RPCContext, args: Args) -> Any:
    verbose = True if args[1] is None else args[1]
    entry = _lookup_entry(ctx, args[0])
    if not verbose:
        return entry.header.serialize().hex()
    return header_json(entry, _tip(ctx).height)


def _verbosity(value: Any) -> int:
    """Core: a number, or a boolean meaning 1 / 0 (the old `verbose` argument)."""
    if value is None:
        return 1
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return check_int(value)
    raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a boolean as expected")


def _getblock(ctx: RPCContext, args: Args) -> Any:
    verbosity = _verbosity(args[1])
    entry = _lookup_entry(ctx, args[0])
    try:
        block = ctx.node.read_block(entry.block_hash)
    except Exception as exc:  # a damaged block file: Core's ReadBlockFromDisk failure
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "Block not found on disk") from exc
    if block is None:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "Block not found on disk")
    if verbosity <= 0:
        return block.serialize().hex()
    return block_json(block, entry, _tip(ctx).height, ctx.params.prefixes, verbosity >= 2)


def _verification_progress(ctx: RPCContext, entry: BlockEntry) -> float:
    """Core: GuessVerificationProgress. Without AIPG Core's chainTxData we estimate from block times:
    blocks we have over blocks that should exist by now at the target spacing (1.0 on regtest)."""
    if ctx.params.network == "regtest":
        return 1.0
    behind = max(0, int(time.time()) - entry.header.time) // ctx.params.pow_target_spacing
    total = entry.height + behind
    return 1.0 if total == 0 else min(1.0, entry.height / total)


def _bip9_softforks(ctx: RPCContext) -> dict[str, Any]:
    """Core: BIP9SoftForkDescPushBack for each deployment getblockchaininfo names (not testdummy),
    as the tip's child sees it; a deployment with a zero timeout is hidden."""
    versionbits = getattr(ctx.node, "versionbits", None)  # test doubles may have none
    vb = versionbits() if versionbits is not None else None
    out: dict[str, Any] = {}
    for status in vb.deployments if vb is not None else ():
        dep = status.deployment
        if not dep.info_name or dep.timeout <= 0:
            continue
        desc: dict[str, Any] = {"status": status.state.value}
        if status.stats is not None:
            desc["bit"] = dep.bit
        desc.update({"startTime": dep.start_time, "timeout": dep.timeout, "since": status.since})
        if status.stats is not None:
            stats = status.stats
            desc["statistics"] = {"period": stats.period, "threshold": stats.threshold,
                                  "elapsed": stats.elapsed, "count": stats.count, "possible": stats.possible}
        out[dep.info_name] = desc
    return out


def _getblockchaininfo(ctx: RPCContext, args: Args) -> Any:
    tip = _tip(ctx)
    node = ctx.node
    entry = node.block_entry(tip.block_hash)
    assert entry is not None
    params = ctx.params
    result: dict[str, Any] = {
        "chain": params.network,
        "blocks": tip.height,
        "headers": node.best_header_height(),
        "bestblockhash": hash_to_hex(tip.block_hash),
        "difficulty": difficulty_of(entry.header.bits),
    }
    # Core: IsDGWActive(chainActive.Height()).
    if tip.height >= params.dgw_activation_height:
        result["difficulty_algorithm"] = "DGW-180"
    else:
        result["difficulty_algorithm"] = "BTC"
        result["DGW_activation_height"] = params.dgw_activation_height
    result.update({
        "mediantime": entry.median_time_past,
        "verificationprogress": double_value(_verification_progress(ctx, entry)),
        "chainwork": f"{entry.chain_work:064x}",
        "size_on_disk": node.size_on_disk(),
        "pruned": False,
        "softforks": [],
        # BIP9 states only: AIPG Core enforces these rules from fixed heights whatever they say.
        "bip9_softforks": _bip9_softforks(ctx),
        "warnings": "",
    })
    return result


def _timeout_seconds(value: Any) -> float | None:
    if value is None:
        return None
    ms = check_int(value)
    return ms / 1000 if ms > 0 else None


def _wait_for(ctx: RPCContext, timeout: float | None, done: Any) -> TipInfo:
    """Core: cond_blockchange.wait_for(...), woken by the chain's tip notification. Returns the tip
    once `done(tip)`, the timeout passes or the server stops."""
    return ctx.node.wait_for_tip(done, timeout, ctx.interrupted)


def _tip_json(tip: TipInfo) -> dict[str, Any]:
    return {"hash": hash_to_hex(tip.block_hash), "height": tip.height}


def _waitfornewblock(ctx: RPCContext, args: Args) -> Any:
    start = _tip(ctx)
    tip = _wait_for(ctx, _timeout_seconds(args[0]), lambda t: t != start)
    return _tip_json(tip)


def _waitforblock(ctx: RPCContext, args: Args) -> Any:
    try:
        wanted = hex_to_hash(args[0])
    except ValueError:
        wanted = b""
    tip = _wait_for(ctx, _timeout_seconds(args[1]), lambda t: t.block_hash == wanted)
    return _tip_json(tip)


def _waitforblockheight(ctx: RPCContext, args: Args) -> Any:
    height = args[0]
    tip = _wait_for(ctx, _timeout_seconds(args[1]), lambda t: t.height >= height)
    return _tip_json(tip)


GETBLOCKCOUNT_HELP = (
    "getblockcount\n"
    "\nReturns the number of blocks in the longest blockchain.\n"
    "\nResult:\n"
    "n    (numeric) The current block count\n"
    + examples("getblockcount")
)
GETBESTBLOCKHASH_HELP = (
    "getbestblockhash\n"
    "\nReturns the hash of the best (tip) block in the longest blockchain.\n"
    "\nResult:\n"
    '"hex"      (string) the block hash hex encoded\n'
    + examples("getbestblockhash")
)
GETDIFFICULTY_HELP = (
    "getdifficulty\n"
    "\nReturns the proof-of-work difficulty as a multiple of the minimum difficulty.\n"
    "\nResult:\n"
    "n.nnn       (numeric) the proof-of-work difficulty as a multiple of the minimum difficulty.\n"
    + examples("getdifficulty")
)
GETBLOCKHASH_HELP = (
    "getblockhash height\n"
    "\nReturns hash of block in best-block-chain at height provided.\n"
    "\nArguments:\n"
    "1. height         (numeric, required) The height index\n"
    "\nResult:\n"
    '"hash"         (string) The block hash\n'
    + examples("getblockhash", "1000")
)
GETBLOCKHEADER_HELP = (
    'getblockheader "hash" ( verbose )\n'
    "\nIf verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.\n"
    "If verbose is true, returns an Object with information about blockheader <hash>.\n"
    "\nArguments:\n"
    '1. "hash"          (string, required) The block hash\n'
    "2. verbose           (boolean, optional, default=true) true for a json object, false for the hex "
    "encoded data\n"
    "\nResult (for verbose = true):\n"
    "{\n"
    '  "hash" : "hash",     (string) the block hash (same as provided)\n'
    '  "confirmations" : n,   (numeric) The number of confirmations, or -1 if the block is not on the main '
    "chain\n"
    '  "height" : n,          (numeric) The block height or index\n'
    '  "version" : n,         (numeric) The block version\n'
    '  "versionHex" : "00000000", (string) The block version formatted in hexadecimal\n'
    '  "merkleroot" : "xxxx", (string) The merkle root\n'
    '  "time" : ttt,          (numeric) The block time in seconds since epoch (Jan 1 1970 GMT)\n'
    '  "mediantime" : ttt,    (numeric) The median block time in seconds since epoch (Jan 1 1970 GMT)\n'
    '  "nonce" : n,           (numeric) The nonce\n'
    '  "bits" : "1d00ffff", (string) The bits\n'
    '  "difficulty" : x.xxx,  (numeric) The difficulty\n'
    '  "chainwork" : "0000...1f3"     (string) Expected number of hashes required to produce the current '
    "chain (in hex)\n"
    '  "previousblockhash" : "hash",  (string) The hash of the previous block\n'
    '  "nextblockhash" : "hash",      (string) The hash of the next block\n'
    "}\n"
    "\nResult (for verbose=false):\n"
    '"data"             (string) A string that is serialized, hex-encoded data for block \'hash\'.\n'
    + examples("getblockheader", _EXAMPLE_HASH)
)
GETBLOCK_HELP = (
    'getblock "blockhash" ( verbosity ) \n'
    "\nIf verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.\n"
    "If verbosity is 1, returns an Object with information about block <hash>.\n"
    "If verbosity is 2, returns an Object with information about block <hash> and information about each "
    "transaction. \n"
    "\nArguments:\n"
    '1. "blockhash"          (string, required) The block hash\n'
    "2. verbosity              (numeric, optional, default=1) 0 for hex encoded data, 1 for a json object, "
    "and 2 for json object with transaction data\n"
    "\nResult (for verbosity = 0):\n"
    '"data"             (string) A string that is serialized, hex-encoded data for block \'hash\'.\n'
    "\nResult (for verbosity = 1):\n"
    "{\n"
    '  "hash" : "hash",     (string) the block hash (same as provided)\n'
    '  "confirmations" : n,   (numeric) The number of confirmations, or -1 if the block is not on the main '
    "chain\n"
    '  "size" : n,            (numeric) The block size\n'
    '  "strippedsize" : n,    (numeric) The block size excluding witness data\n'
    '  "weight" : n           (numeric) The block weight as defined in BIP 141\n'
    '  "height" : n,          (numeric) The block height or index\n'
    '  "version" : n,         (numeric) The block version\n'
    '  "versionHex" : "00000000", (string) The block version formatted in hexadecimal\n'
    '  "merkleroot" : "xxxx", (string) The merkle root\n'
    '  "tx" : [               (array of string) The transaction ids\n'
    '     "transactionid"     (string) The transaction id\n'
    "     ,...\n"
    "  ],\n"
    '  "time" : ttt,          (numeric) The block time in seconds since epoch (Jan 1 1970 GMT)\n'
    '  "mediantime" : ttt,    (numeric) The median block time in seconds since epoch (Jan 1 1970 GMT)\n'
    '  "nonce" : n,           (numeric) The nonce\n'
    '  "bits" : "1d00ffff", (string) The bits\n'
    '  "difficulty" : x.xxx,  (numeric) The difficulty\n'
    '  "chainwork" : "xxxx",  (string) Expected number of hashes required to produce the chain up to this '
    "block (in hex)\n"
    '  "headerhash" : "xxxx", (string) The KawPoW header hash\n'
    '  "mixhash" : "xxxx",    (string) The KawPoW mix hash\n'
    '  "nonce64" : n,         (numeric) The KawPoW 64-bit nonce\n'
    '  "previousblockhash" : "hash",  (string) The hash of the previous block\n'
    '  "nextblockhash" : "hash"       (string) The hash of the next block\n'
    "}\n"
    "\nResult (for verbosity = 2):\n"
    "{\n"
    "  ...,                     Same output as verbosity = 1.\n"
    '  "tx" : [               (array of Objects) The transactions in the format of the getrawtransaction '
    'RPC. Different from verbosity = 1 "tx" result.\n'
    "         ,...\n"
    "  ],\n"
    "  ,...                     Same output as verbosity = 1.\n"
    "}\n"
    + examples("getblock", _EXAMPLE_HASH)
)
GETBLOCKCHAININFO_HELP = (
    "getblockchaininfo\n"
    "Returns an object containing various state info regarding blockchain processing.\n"
    "\nResult:\n"
    "{\n"
    '  "chain": "xxxx",              (string) current network name as defined in BIP70 (main, test, '
    'regtest)\n'
    '  "blocks": xxxxxx,             (numeric) the current number of blocks processed in the server\n'
    '  "headers": xxxxxx,            (numeric) the current number of headers we have validated\n'
    '  "bestblockhash": "...",       (string) the hash of the currently best block\n'
    '  "difficulty": xxxxxx,         (numeric) the current difficulty\n'
    '  "difficulty_algorithm": "..", (string) DGW-180 once Dark Gravity Wave is active, else BTC\n'
    '  "mediantime": xxxxxx,         (numeric) median time for the current best block\n'
    '  "verificationprogress": xxxx, (numeric) estimate of verification progress [0..1]\n'
    '  "chainwork": "xxxx"           (string) total amount of work in active chain, in hexadecimal\n'
    '  "size_on_disk": xxxxxx,       (numeric) the estimated size of the block and undo files on disk\n'
    '  "pruned": xx,                 (boolean) if the blocks are subject to pruning\n'
    '  "softforks": [                (array) status of softforks in progress\n'
    "  ],\n"
    '  "bip9_softforks": {           (object) status of BIP9 softforks in progress\n'
    '     "xxxx" : {                 (string) name of the softfork\n'
    '        "status": "xxxx",       (string) one of "defined", "started", "locked_in", "active", "failed"\n'
    '        "since": xx             (numeric) height of the first block to which the status applies\n'
    "     }\n"
    "  }\n"
    '  "warnings" : "...",           (string) any network and blockchain warnings.\n'
    "}\n"
    + examples("getblockchaininfo")
)
WAITFORNEWBLOCK_HELP = (
    "waitfornewblock (timeout)\n"
    "\nWaits for a specific new block and returns useful info about it.\n"
    "\nReturns the current block on timeout or exit.\n"
    "\nArguments:\n"
    "1. timeout (int, optional, default=0) Time in milliseconds to wait for a response. 0 indicates no "
    "timeout.\n"
    "\nResult:\n"
    '{                           (json object)\n'
    '  "hash" : {       (string) The blockhash\n'
    '  "height" : {     (int) Block height\n'
    "}\n"
    + examples("waitfornewblock", "1000")
)
WAITFORBLOCK_HELP = (
    "waitforblock <blockhash> (timeout)\n"
    "\nWaits for a specific new block and returns useful info about it.\n"
    "\nReturns the current block on timeout or exit.\n"
    "\nArguments:\n"
    "1. \"blockhash\" (required, string) Block hash to wait for.\n"
    "2. timeout       (int, optional, default=0) Time in milliseconds to wait for a response. 0 indicates "
    "no timeout.\n"
    "\nResult:\n"
    '{                           (json object)\n'
    '  "hash" : {       (string) The blockhash\n'
    '  "height" : {     (int) Block height\n'
    "}\n"
    + examples("waitforblock", _EXAMPLE_HASH + " 1000")
)
WAITFORBLOCKHEIGHT_HELP = (
    "waitforblockheight <height> (timeout)\n"
    "\nWaits for (at least) block height and returns the height and hash\n"
    "of the current tip.\n"
    "\nReturns the current block on timeout or exit.\n"
    "\nArguments:\n"
    "1. height  (required, int) Block height to wait for (int)\n"
    "2. timeout (int, optional, default=0) Time in milliseconds to wait for a response. 0 indicates no "
    "timeout.\n"
    "\nResult:\n"
    '{                           (json object)\n'
    '  "hash" : {       (string) The blockhash\n'
    '  "height" : {     (int) Block height\n'
    "}\n"
    + examples("waitforblockheight", "\"100\", 1000")
)

METHODS = (
    Method("getblockchaininfo", "blockchain", _getblockchaininfo, (), GETBLOCKCHAININFO_HELP),
    Method("getbestblockhash", "blockchain", _getbestblockhash, (), GETBESTBLOCKHASH_HELP,
           tip_cacheable=True),
    Method("getblockcount", "blockchain", _getblockcount, (), GETBLOCKCOUNT_HELP, tip_cacheable=True),
    Method("getblock", "blockchain", _getblock,
           (Param("blockhash", Kind.STR), Param("verbosity|verbose", Kind.ANY, required=False)),
           GETBLOCK_HELP, offload=True),
    Method("getblockhash", "blockchain", _getblockhash, (Param("height", Kind.INT),), GETBLOCKHASH_HELP,
           tip_cacheable=True),
    Method("getblockheader", "blockchain", _getblockheader,
           (Param("blockhash", Kind.STR), Param("verbose", Kind.BOOL, required=False)), GETBLOCKHEADER_HELP,
           tip_cacheable=True),
    Method("getdifficulty", "blockchain", _getdifficulty, (), GETDIFFICULTY_HELP, tip_cacheable=True),
    Method("waitfornewblock", CATEGORY_HIDDEN, _waitfornewblock, (Param("timeout", Kind.INT,
                                                                        required=False),),
           WAITFORNEWBLOCK_HELP, offload=True),
    Method("waitforblock", CATEGORY_HIDDEN, _waitforblock,
           (Param("blockhash", Kind.STR), Param("timeout", Kind.INT, required=False)), WAITFORBLOCK_HELP,
           offload=True),
    Method("waitforblockheight", CATEGORY_HIDDEN, _waitforblockheight,
           (Param("height", Kind.INT), Param("timeout", Kind.INT, required=False)), WAITFORBLOCKHEIGHT_HELP,
           offload=True),
)
