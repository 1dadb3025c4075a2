"""Finding transactions in blocks (Core: rpc/rawtransaction.cpp): getrawtransaction (through -txindex,
or, as Core 0.15 does without it, the block of an unspent output), gettxoutproof and
verifytxoutproof (CMerkleBlock proofs).

Owns their arguments, results and error texts. It must never read the chain except through
NodeInterface.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aipgd.core.merkleblock import MerkleBlock
from aipgd.core.serialize import DeserializationError
from aipgd.core.uint256 import hash_to_hex, hex_to_hash
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.rawtransaction import is_hex
from rpc.registry import Args, Kind, Method, Param, check_int, examples
from rpc.txjson import tx_to_json


def _parse_hash(value: Any, name: str) -> bytes:
    """Core: ParseHashV."""
    if not isinstance(value, str):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
    if not is_hex(value):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal string (not '{value}')")
    if len(value) != 64:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(value)})")
    return hex_to_hash(value)


def _verbose(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return check_int(value) != 0
    raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Invalid type provided. Verbose parameter must be a boolean.")


def _getrawtransaction(ctx: RPCContext, args: Args) -> Any:
    txid = _parse_hash(args[0], "parameter 1")
    verbose = _verbose(args[1])
    node = ctx.node
    found = node.find_transaction(txid)
    if found is None:
        what = ("No such mempool or blockchain transaction" if node.txindex_enabled()
                else "No such mempool transaction. Use -txindex to enable blockchain transaction queries")
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY,
                       what + ". Use gettransaction for wallet transactions.")
    tx, block_hash = found
    if not verbose:
        return tx.serialize().hex()
    result = tx_to_json(tx, ctx.params.prefixes, True)
    # Core (AIPG): TxToJSON(expanded=true) adds each output's valueSat (spent-index fields need
    # -spentindex, which aipgd does not have).
    for out, entry in zip(tx.vout, result["vout"], strict=True):
        entry["valueSat"] = out.value
    if block_hash is not None:
        result["blockhash"] = hash_to_hex(block_hash)
        entry = node.block_entry(block_hash)
        if entry is not None:
            tip = node.tip()
            if entry.in_active_chain and tip is not None:
                result["height"] = entry.height
                result["confirmations"] = 1 + tip.height - entry.height
                result["time"] = entry.header.time
                result["blocktime"] = entry.header.time
            else:
                result["height"] = -1
                result["confirmations"] = 0
    return result


def _gettxoutproof(ctx: RPCContext, args: Args) -> Any:
    wanted: set[bytes] = set()
    one = b""
    for item in args[0]:
        if not isinstance(item, str):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
        if len(item) != 64 or not is_hex(item):
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"Invalid txid {item}")
        txid = hex_to_hash(item)
        if txid in wanted:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"Invalid parameter, duplicated txid: {item}")
        wanted.add(txid)
        one = txid
    node = ctx.node
    block_hash: bytes | None = None
    if args[1] is not None:
        try:
            block_hash = hex_to_hash(args[1])
        except ValueError:
            block_hash = bytes(32)
        if node.block_entry(block_hash) is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
    else:
        for txid in wanted:
            height = node.coin_height_by_txid(txid)
            if height is not None:
                block_hash = node.block_hash_at(height)
                break
    if block_hash is None:
        found = node.find_transaction(one) if node.txindex_enabled() else None
        if found is None or found[1] is None:
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Transaction not yet in block")
        block_hash = found[1]
        if node.block_entry(block_hash) is None:
            raise RPCError(RPCErrorCode.RPC_INTERNAL_ERROR, "Transaction index corrupt")
    try:
        block = node.read_block(block_hash)
    except Exception:
        block = None
    if block is None:
        raise RPCError(RPCErrorCode.RPC_INTERNAL_ERROR, "Can't read block from disk")
    txids = [tx.txid for tx in block.vtx]
    if len(wanted & set(txids)) != len(wanted):
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY,
                       "Not all transactions found in specified or retrieved block")
    return MerkleBlock.build(block.header, txids, wanted).serialize().hex()


def _verifytxoutproof(ctx: RPCContext, args: Args) -> Any:
    text = args[0]
    if not is_hex(text):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"proof must be hexadecimal string (not '{text}')")
    try:
        proof = MerkleBlock.deserialize(bytes.fromhex(text), ctx.params.kawpow_activation_time)
    except DeserializationError as exc:
        # Core: the stream's ios_base::failure, reported as a runtime error.
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, str(exc)) from None
    extracted = proof.txn.extract_matches()
    if extracted is None or extracted[0] != proof.header.merkle_root:
        return []
    entry = ctx.node.block_entry(proof.header.hash)
    if entry is None or not entry.in_active_chain:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Block not found in chain")
    return [hash_to_hex(txid) for txid in extracted[1]]


GETRAWTRANSACTION_HELP = (
    'getrawtransaction "txid" ( verbose )\n'
    "\nNOTE: By default this function only works for mempool transactions. If the -txindex option is\n"
    "enabled, it also works for blockchain transactions.\n"
    "DEPRECATED: for now, it also works for transactions with unspent outputs.\n"
    "\nReturn the raw transaction data.\n"
    "\nIf verbose is 'true', returns an Object with information about 'txid'.\n"
    "If verbose is 'false' or omitted, returns a string that is serialized, hex-encoded data for 'txid'.\n"
    "\nArguments:\n"
    '1. "txid"      (string, required) The transaction id\n'
    "2. verbose       (bool, optional, default=false) If false, return a string, otherwise return a json "
    "object\n"
    + examples("getrawtransaction", '"mytxid"', '"mytxid", true')
)
GETTXOUTPROOF_HELP = (
    'gettxoutproof ["txid",...] ( blockhash )\n'
    "\nReturns a hex-encoded proof that \"txid\" was included in a block.\n"
    "\nNOTE: By default this function only works sometimes. This is when there is an\n"
    "unspent output in the utxo for this transaction. To make it always work,\n"
    "you need to maintain a transaction index, using the -txindex command line option or\n"
    "specify the block in which the transaction is included manually (by blockhash).\n"
    "\nArguments:\n"
    '1. "txids"       (string) A json array of txids to filter\n'
    "    [\n"
    '      "txid"     (string) A transaction hash\n'
    "      ,...\n"
    "    ]\n"
    '2. "blockhash"   (string, optional) If specified, looks for txid in the block with this hash\n'
    "\nResult:\n"
    '"data"           (string) A string that is a serialized, hex-encoded data for the proof.\n'
)
VERIFYTXOUTPROOF_HELP = (
    'verifytxoutproof "proof"\n'
    "\nVerifies that a proof points to a transaction in a block, returning the transaction it commits to\n"
    "and throwing an RPC error if the block is not in our best chain\n"
    "\nArguments:\n"
    '1. "proof"    (string, required) The hex-encoded proof generated by gettxoutproof\n'
    "\nResult:\n"
    '["txid"]      (array, strings) The txid(s) which the proof commits to, or empty array if the proof is '
    "invalid\n"
)

METHODS = (
    Method("getrawtransaction", "rawtransactions", _getrawtransaction,
           (Param("txid", Kind.STR), Param("verbose", Kind.ANY, required=False)), GETRAWTRANSACTION_HELP,
           offload=True),
    Method("gettxoutproof", "blockchain", _gettxoutproof,
           (Param("txids", Kind.ARR), Param("blockhash", Kind.STR, required=False)), GETTXOUTPROOF_HELP,
           offload=True),
    Method("verifytxoutproof", "blockchain", _verifytxoutproof, (Param("proof", Kind.STR),),
           VERIFYTXOUTPROOF_HELP, offload=True),
)
