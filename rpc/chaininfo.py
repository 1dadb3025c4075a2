"""Blockchain methods over the UTXO set, chain tips and operator actions (Core: rpc/blockchain.cpp):
gettxout, gettxoutsetinfo, getchaintips, getchaintxstats, verifychain, preciousblock,
invalidateblock, reconsiderblock and pruneblockchain.

Owns their arguments, results and error codes. It must never change chain state except through
NodeInterface's actions, which go through ChainState.
"""

from __future__ import annotations

from typing import Any

from aipgd.core.transaction import OutPoint
from aipgd.core.uint256 import hash_to_hex, hex_to_hash
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.interface import ChainActionError, TipInfo
from rpc.jsonutil import amount_value, double_value
from rpc.registry import CATEGORY_HIDDEN, Args, Kind, Method, Param, check_int, examples
from rpc.txjson import script_pubkey_json

# Core: TIMESTAMP_WINDOW (2 hours), the slack pruneblockchain allows for a timestamp argument.
TIMESTAMP_WINDOW = 2 * 60 * 60
_EXAMPLE_HASH = '"00000000c937983704a73af28acdec37b049d214adbda81d7e2a3dd146f6ed09"'


def _tip(ctx: RPCContext) -> TipInfo:
    tip = ctx.node.tip()
    if tip is None:
        raise RPCError(RPCErrorCode.RPC_IN_WARMUP, "Loading block index...")
    return tip


def _uint256(text: str) -> bytes:
    """Core: uint256S, lenient: what is not a 64-digit hash names no block."""
    try:
        return hex_to_hash(text)
    except ValueError:
        return bytes(32)


def _gettxout(ctx: RPCContext, args: Args) -> Any:
    txid = _uint256(args[0])
    n = args[1]
    if args[2] is not None and not isinstance(args[2], bool):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a boolean as expected")
    if n < 0:
        return None
    outpoint = OutPoint(txid, n)
    # include_mempool (default true): pool outputs count, and outputs pool transactions spend don't.
    mempool = getattr(ctx.node, "mempool", None) if args[2] is not False else None
    if mempool is not None and mempool.spent_in_mempool(outpoint):
        return None
    coin = ctx.node.get_coin(outpoint)
    tip = _tip(ctx)
    if coin is not None:
        coin_out, coinbase, confirmations = coin.out, coin.coinbase, tip.height - coin.height + 1
    else:
        pooled = mempool.get_transaction(txid) if mempool is not None else None
        if pooled is None or n >= len(pooled.vout):
            return None
        # Core: a mempool coin has MEMPOOL_HEIGHT, reported as 0 confirmations.
        coin_out, coinbase, confirmations = pooled.vout[n], False, 0
    return {
        "bestblock": hash_to_hex(tip.block_hash),
        "confirmations": confirmations,
        "value": amount_value(coin_out.value),
        "scriptPubKey": script_pubkey_json(coin_out.script_pubkey, ctx.params.prefixes),
        "coinbase": coinbase,
    }


def _gettxoutsetinfo(ctx: RPCContext, args: Args) -> Any:
    info = ctx.node.utxo_set_info()
    return {
        "height": info.height,
        "bestblock": hash_to_hex(info.best_block),
        "transactions": info.transactions,
        "txouts": info.outputs,
        "bogosize": info.bogo_size,
        "hash_serialized_2": hash_to_hex(info.hash_serialized),
        "disk_size": info.disk_size,
        "total_amount": amount_value(info.total_amount),
    }


def _getchaintips(ctx: RPCContext, args: Args) -> Any:
    return [{"height": t.height, "hash": hash_to_hex(t.block_hash), "branchlen": t.branch_len,
             "status": t.status} for t in ctx.node.chain_tips()]


def _getchaintxstats(ctx: RPCContext, args: Args) -> Any:
    node = ctx.node
    blockcount = 30 * 24 * 60 * 60 // ctx.params.pow_target_spacing  # one month
    if args[1] is not None:
        entry = node.block_entry(_uint256(args[1]))
        if entry is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        if not entry.in_active_chain:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Block is not in main chain")
    else:
        entry = node.block_entry(_tip(ctx).block_hash)
        assert entry is not None
    if args[0] is None:
        blockcount = max(0, min(blockcount, entry.height - 1))
    else:
        blockcount = args[0]
        if blockcount < 0 or (blockcount > 0 and blockcount >= entry.height):
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           "Invalid block count: should be between 0 and the block's height - 1")
    past_hash = node.block_hash_at(entry.height - blockcount)
    past = node.block_entry(past_hash) if past_hash is not None else None
    assert past is not None
    time_diff = entry.median_time_past - past.median_time_past
    tx_count = node.chain_tx(entry.block_hash)
    tx_diff = tx_count - node.chain_tx(past.block_hash)
    result: dict[str, Any] = {"time": entry.header.time, "txcount": tx_count,
                              "window_block_count": blockcount}
    if blockcount > 0:
        result["window_tx_count"] = tx_diff
        result["window_interval"] = time_diff
        if time_diff > 0:
            result["txrate"] = double_value(tx_diff / time_diff)
    return result


def _verifychain(ctx: RPCContext, args: Args) -> Any:
    return ctx.node.verify_chain(args[0], args[1])


def _block_action(ctx: RPCContext, args: Args, action: str) -> Any:
    block_hash = _uint256(args[0])
    try:
        getattr(ctx.node, action)(block_hash)
    except ChainActionError as exc:
        raise RPCError(exc.code, exc.message) from None
    return None


def _preciousblock(ctx: RPCContext, args: Args) -> Any:
    return _block_action(ctx, args, "precious_block")


def _invalidateblock(ctx: RPCContext, args: Args) -> Any:
    return _block_action(ctx, args, "invalidate_block")


def _reconsiderblock(ctx: RPCContext, args: Args) -> Any:
    return _block_action(ctx, args, "reconsider_block")


def _pruneblockchain(ctx: RPCContext, args: Args) -> Any:
    height = check_int(args[0])
    node = ctx.node
    # Core: a value over a billion is a block time: the first block at least that late (less 2 h).
    if height > 1_000_000_000:
        tip = _tip(ctx)
        found = None
        for h in range(tip.height + 1):
            entry = node.block_entry(node.block_hash_at(h) or b"")
            if entry is not None and entry.header.time >= height - TIMESTAMP_WINDOW:
                found = h
                break
        if found is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           "Could not find block with at least the specified timestamp.")
        height = found
    try:
        return node.prune_block_files(height)
    except ChainActionError as exc:
        raise RPCError(exc.code, exc.message) from None


GETTXOUT_HELP = (
    'gettxout "txid" n ( include_mempool )\n'
    "\nReturns details about an unspent transaction output.\n"
    "\nArguments:\n"
    '1. "txid"             (string, required) The transaction id\n'
    "2. \"n\"                (numeric, required) vout number\n"
    "3. \"include_mempool\"  (boolean, optional) Whether to include the mempool. Default: true."
    "     Note that an unspent output that is spent in the mempool won't appear.\n"
    "\nResult:\n"
    "{\n"
    '  "bestblock" : "hash",    (string) the block hash\n'
    '  "confirmations" : n,       (numeric) The number of confirmations\n'
    '  "value" : x.xxx,           (numeric) The transaction value in AIPG\n'
    '  "scriptPubKey" : {         (json object)\n'
    '     "asm" : "code",       (string) \n'
    '     "hex" : "hex",        (string) \n'
    '     "reqSigs" : n,          (numeric) Number of required signatures\n'
    '     "type" : "pubkeyhash", (string) The type, eg pubkeyhash\n'
    '     "addresses" : [          (array of string) array of aipg addresses\n'
    '        "address"     (string) aipg address\n'
    "        ,...\n"
    "     ]\n"
    "  },\n"
    '  "coinbase" : true|false   (boolean) Coinbase or not\n'
    "}\n"
    + examples("gettxout", '"txid" 1', '"txid", 1')
)
GETTXOUTSETINFO_HELP = (
    "gettxoutsetinfo\n"
    "\nReturns statistics about the unspent transaction output set.\n"
    "Note this call may take some time.\n"
    "\nResult:\n"
    "{\n"
    '  "height":n,     (numeric) The current block height (index)\n'
    '  "bestblock": "hex",   (string) the best block hash hex\n'
    '  "transactions": n,      (numeric) The number of transactions\n'
    '  "txouts": n,            (numeric) The number of output transactions\n'
    '  "bogosize": n,          (numeric) A meaningless metric for UTXO set size\n'
    '  "hash_serialized_2": "hash", (string) The serialized hash\n'
    '  "disk_size": n,         (numeric) The estimated size of the chainstate on disk\n'
    '  "total_amount": x.xxx          (numeric) The total amount\n'
    "}\n"
    + examples("gettxoutsetinfo")
)
GETCHAINTIPS_HELP = (
    "getchaintips\n"
    "Return information about all known tips in the block tree, including the main chain as well as "
    "orphaned branches.\n"
    "\nResult:\n"
    "[\n"
    "  {\n"
    '    "height": xxxx,         (numeric) height of the chain tip\n'
    '    "hash": "xxxx",         (string) block hash of the tip\n'
    '    "branchlen": 0          (numeric) zero for main chain\n'
    '    "status": "active"      (string) "active" for the main chain\n'
    "  }\n"
    "]\n"
    "Possible values for status:\n"
    '1.  "invalid"               This branch contains at least one invalid block\n'
    '2.  "headers-only"          Not all blocks for this branch are available, but the headers are valid\n'
    '3.  "valid-headers"         All blocks are available for this branch, but they were never fully '
    "validated\n"
    '4.  "valid-fork"            This branch is not part of the active chain, but is fully validated\n'
    '5.  "active"                This is the tip of the active main chain, which is certainly valid\n'
    + examples("getchaintips")
)
GETCHAINTXSTATS_HELP = (
    'getchaintxstats ( nblocks blockhash )\n'
    "\nCompute statistics about the total number and rate of transactions in the chain.\n"
    "\nArguments:\n"
    "1. nblocks      (numeric, optional) Size of the window in number of blocks (default: one month).\n"
    '2. "blockhash"  (string, optional) The hash of the block that ends the window.\n'
    "\nResult:\n"
    "{\n"
    '  "time": xxxxx,                (numeric) The timestamp for the final block in the window in UNIX '
    "format.\n"
    '  "txcount": xxxxx,             (numeric) The total number of transactions in the chain up to that '
    "point.\n"
    '  "window_block_count": xxxxx,  (numeric) Size of the window in number of blocks.\n'
    '  "window_tx_count": xxxxx,     (numeric) The number of transactions in the window. Only returned if '
    '"window_block_count" is > 0.\n'
    '  "window_interval": xxxxx,     (numeric) The elapsed time in the window in seconds. Only returned if '
    '"window_block_count" is > 0.\n'
    '  "txrate": x.xx,               (numeric) The average rate of transactions per second in the window. '
    'Only returned if "window_interval" is > 0.\n'
    "}\n"
    + examples("getchaintxstats", "", "2016")
)
VERIFYCHAIN_HELP = (
    "verifychain ( checklevel nblocks )\n"
    "\nVerifies blockchain database.\n"
    "\nArguments:\n"
    "1. checklevel   (numeric, optional, 0-4, default=3) How thorough the block verification is.\n"
    "2. nblocks      (numeric, optional, default=6, 0=all) The number of blocks to check.\n"
    "\nResult:\n"
    "true|false       (boolean) Verified or not\n"
    + examples("verifychain")
)
PRECIOUSBLOCK_HELP = (
    'preciousblock "blockhash"\n'
    "\nTreats a block as if it were received before others with the same work.\n"
    "\nA later preciousblock call can override the effect of an earlier one.\n"
    "\nThe effects of preciousblock are not retained across restarts.\n"
    "\nArguments:\n"
    '1. "blockhash"   (string, required) the hash of the block to mark as precious\n'
    "\nResult:\n"
    + examples("preciousblock", '"blockhash"')
)
INVALIDATEBLOCK_HELP = (
    'invalidateblock "blockhash"\n'
    "\nPermanently marks a block as invalid, as if it violated a consensus rule.\n"
    "\nArguments:\n"
    '1. "blockhash"   (string, required) the hash of the block to mark as invalid\n'
    "\nResult:\n"
    + examples("invalidateblock", '"blockhash"')
)
RECONSIDERBLOCK_HELP = (
    'reconsiderblock "blockhash"\n'
    "\nRemoves invalidity status of a block and its descendants, reconsider them for activation.\n"
    "This can be used to undo the effects of invalidateblock.\n"
    "\nArguments:\n"
    '1. "blockhash"   (string, required) the hash of the block to reconsider\n'
    "\nResult:\n"
    + examples("reconsiderblock", '"blockhash"')
)
PRUNEBLOCKCHAIN_HELP = (
    "pruneblockchain\n"
    "\nArguments:\n"
    '1. "height"       (numeric, required) The block height to prune up to. May be set to a discrete '
    "height, or a unix timestamp\n"
    "                  to prune blocks whose block time is at least 2 hours older than the provided "
    "timestamp.\n"
    "\nResult:\n"
    "n    (numeric) Height of the last block pruned.\n"
    + examples("pruneblockchain", "1000")
)

METHODS = (
    Method("gettxout", "blockchain", _gettxout,
           (Param("txid", Kind.STR), Param("n", Kind.INT),
            Param("include_mempool", Kind.BOOL, required=False)),
           GETTXOUT_HELP),
    Method("gettxoutsetinfo", "blockchain", _gettxoutsetinfo, (), GETTXOUTSETINFO_HELP, offload=True),
    Method("getchaintips", "blockchain", _getchaintips, (), GETCHAINTIPS_HELP, offload=True),
    Method("getchaintxstats", "blockchain", _getchaintxstats,
           (Param("nblocks", Kind.INT, required=False), Param("blockhash", Kind.STR, required=False)),
           GETCHAINTXSTATS_HELP),
    Method("verifychain", "blockchain", _verifychain,
           (Param("checklevel", Kind.INT, required=False), Param("nblocks", Kind.INT, required=False)),
           VERIFYCHAIN_HELP, offload=True),
    Method("preciousblock", "blockchain", _preciousblock, (Param("blockhash", Kind.STR),), PRECIOUSBLOCK_HELP,
           offload=True),
    Method("pruneblockchain", "blockchain", _pruneblockchain, (Param("height", Kind.INT),),
           PRUNEBLOCKCHAIN_HELP, offload=True),
    Method("invalidateblock", CATEGORY_HIDDEN, _invalidateblock, (Param("blockhash", Kind.STR),),
           INVALIDATEBLOCK_HELP, offload=True),
    Method("reconsiderblock", CATEGORY_HIDDEN, _reconsiderblock, (Param("blockhash", Kind.STR),),
           RECONSIDERBLOCK_HELP, offload=True),
)
