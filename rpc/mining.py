"""Mining methods (Core: rpc/mining.cpp, AIPG's KawPoW additions): submitblock, pprpcsb,
getkawpowhash, getmininginfo, getnetworkhashps, prioritisetransaction, generate and
generatetoaddress (getblocktemplate is rpc/blocktemplate.py).

Owns the mining state (the blocks of templates handed out with -miningaddress, remembered under
their KawPoW header hash for pprpcsb), block assembly on the tip, BIP22 result strings, and
regtest-style mining through aipgd.mining. It must never change chain state except by submitting a
block through NodeInterface.submit_block.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import kawpow
from aipgd.consensus.pow import check_proof_of_work
from aipgd.consensus.versionbits import VERSIONBITS_TOP_BITS_ASSETS
from aipgd.core.address import AddressError, decode_address
from aipgd.core.block import Block
from aipgd.core.serialize import DeserializationError
from aipgd.core.uint256 import compact_to_target, hash_to_hex, hex_to_hash
from aipgd.mining.assembler import MiningError, create_block, solve_header
from aipgd.script.standard import script_for_destination
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.interface import BlockVerdict, TipInfo, VersionBitsInfo
from rpc.jsonutil import double_value
from rpc.registry import Args, Kind, Method, Param, check_int, examples
from rpc.txjson import difficulty

_OP_TRUE = b"\x51"
# Core: generateBlocks' nInnerLoopCount, nonces tried per block before a new extra nonce.
_INNER_LOOP_COUNT = 0x10000
_DEFAULT_MAX_TRIES = 1_000_000
# Core: MAX_BLOCK_SIGOPS_COST and AIPG's GetMaxBlockWeight / GetMaxBlockSerializedSize after assets.
MAX_BLOCK_SIGOPS_COST = 80_000
MAX_BLOCK_WEIGHT = 8_000_000
MAX_BLOCK_SERIALIZED_SIZE = 8_000_000


@dataclass
class MiningState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    templates: dict[str, Block] = field(default_factory=dict)  # pprpcheader -> block
    last_header: str = ""
    template_tip: bytes = b""
    last_block_weight: int = 0
    last_block_tx: int = 0
    extra_nonce: int = 0
    prioritised: dict[bytes, int] = field(default_factory=dict)


def _state(ctx: RPCContext) -> MiningState:
    state = ctx.state.get("mining")
    if state is None:
        state = ctx.state.setdefault("mining", MiningState())
    assert isinstance(state, MiningState)
    return state


def _tip(ctx: RPCContext) -> TipInfo:
    tip = ctx.node.tip()
    if tip is None:
        raise RPCError(RPCErrorCode.RPC_IN_WARMUP, "Loading block index...")
    return tip


def _parse_hex_u64(text: str) -> int | None:
    """Core (AIPG): ParseUInt64(str, &n, 16), strtoull base 16 with an optional 0x."""
    body = text[2:] if text[:2].lower() == "0x" else text
    if not body or len(body) > 16 or any(c not in "0123456789abcdefABCDEF" for c in body):
        return None
    return int(body, 16)


def _bip22_result(verdict: BlockVerdict) -> Any:
    """Core: BIP22ValidationResult."""
    if verdict.valid:
        return None
    if verdict.error:
        raise RPCError(RPCErrorCode.RPC_VERIFY_ERROR, verdict.reason)
    return verdict.reason or "rejected"


def _submit(ctx: RPCContext, block: Block) -> Any:
    """Core: submitblock after decoding (also pprpcsb's tail): duplicates, then ProcessNewBlock."""
    status = ctx.node.block_status(block.hash)
    if status == "valid":
        return "duplicate"
    if status == "failed":
        return "duplicate-invalid"
    present = status is not None
    verdict = ctx.node.submit_block(block)
    if present:
        return "duplicate-inconclusive" if verdict.valid and not verdict.connected else "duplicate"
    if not verdict.connected:
        return "inconclusive"
    return _bip22_result(verdict)


def _decode_block(ctx: RPCContext, text: str) -> Block:
    """Core: DecodeHexBlk."""
    try:
        return Block.deserialize(bytes.fromhex(text), ctx.params.kawpow_activation_time)
    except (ValueError, DeserializationError):
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block decode failed") from None


def _submitblock(ctx: RPCContext, args: Args) -> Any:
    block = _decode_block(ctx, args[0])
    if not block.vtx or not block.vtx[0].is_coinbase():
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    if block.header.height > _tip(ctx).height + 10:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block height is to large")  # (sic) AIPG
    return _submit(ctx, block)


# -- templates -------------------------------------------------------------------------------------


def _payout_script(ctx: RPCContext) -> bytes:
    address = ctx.options.get("miningaddress") or ""
    if not address:
        return _OP_TRUE
    try:
        return script_for_destination(decode_address(address, ctx.params.prefixes))
    except AddressError:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       "-miningaddress is not a valid address. Please use a valid address") from None


def _new_block(ctx: RPCContext, payout: bytes, extra_nonce: int = 0) -> Block:
    """Core: BlockAssembler::CreateNewBlock on the tip (nVersion from ComputeBlockVersion) and
    UpdateTime (nTime = max(median time past + 1, now))."""
    parent = ctx.node.mining_parent()
    when = max(parent.median_time_past + 1, int(time.time()))
    bits = parent.next_bits(when)
    # The mempool's best packages (rpc/mempool.py's node view; test doubles may have none).
    select = getattr(ctx.node, "block_template_transactions", None)
    txs, fees = select(parent.block_hash) if select is not None else ([], 0)
    vb = _versionbits(ctx, parent.block_hash)
    version = vb.version if vb is not None else VERSIONBITS_TOP_BITS_ASSETS
    try:
        return create_block(ctx.params, parent.block_hash, parent.height, parent.median_time_past, bits, txs,
                            payout, when, fees=fees, extra_nonce=extra_nonce, version=version)
    except MiningError as exc:
        raise RPCError(RPCErrorCode.RPC_INTERNAL_ERROR, f"Couldn't create new block: {exc}") from exc


def _versionbits(ctx: RPCContext, block_hash: bytes) -> VersionBitsInfo | None:
    versionbits = getattr(ctx.node, "versionbits", None)  # test doubles may have none
    return versionbits(block_hash) if versionbits is not None else None


def _pprpcsb(ctx: RPCContext, args: Args) -> Any:
    header_hash, mix_text, nonce_text = args[0], args[1], args[2]
    nonce = _parse_hex_u64(nonce_text)
    if nonce is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMS, "Invalid hex nonce")
    state = _state(ctx)
    with state.lock:
        template = state.templates.get(header_hash)
    if template is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMS, "Block header hash not found in block data")
    try:
        mix = hex_to_hash(mix_text)  # Core: uint256S, so the block holds the reverse of the printed hex
    except ValueError:
        mix = bytes(32)
    block = Block(template.header.with_fields(nonce64=nonce, mix_hash=mix), template.vtx)
    if not block.vtx or not block.vtx[0].is_coinbase():
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block does not start with a coinbase")
    target, _, _ = compact_to_target(block.header.bits)
    if not check_proof_of_work(block.hash, block.header.bits, ctx.params) or not kawpow.verify(
            block.header.height, block.header.kawpow_input(), block.header.mix_hash_printed, nonce,
            target.to_bytes(32, "big"), contexts=ctx.node.kawpow_contexts()):
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block does not solve the boundary")
    result = _submit(ctx, block)
    return True if result is None else result


def _getkawpowhash(ctx: RPCContext, args: Args) -> Any:
    header_text, mix_text, nonce_text = args[0], args[1], args[2]
    height = check_int(args[3])
    if height < 0:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON integer out of range")
    nonce = _parse_hex_u64(nonce_text)
    if nonce is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMS, "Invalid nonce hex string")
    if height > _tip(ctx).height + 10:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Block height is to large")
    try:
        header_hash = bytes.fromhex(header_text)
        if len(header_hash) != 32:
            raise ValueError
    except ValueError:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "header_hash must be 64 hex digits") from None
    mix, final = kawpow.hash(height, header_hash, nonce, contexts=ctx.node.kawpow_contexts())
    try:
        claimed = hex_to_hash(mix_text)[::-1]
    except ValueError:
        claimed = bytes(32)
    result: dict[str, Any] = {"result": "true" if claimed == mix else "false", "digest": final.hex(),
                              "mix_hash": mix.hex(), "info": ""}
    if args[4] is not None:
        try:
            boundary = int(hash_to_hex(hex_to_hash(args[4])), 16)
        except ValueError:
            boundary = 0
        result["meets_target"] = "true" if int.from_bytes(final, "big") <= boundary else "false"
    return result


# -- information -----------------------------------------------------------------------------------


def network_hashps(ctx: RPCContext, lookup: int, height: int) -> float:
    """Core: GetNetworkHashPS."""
    node = ctx.node
    tip = _tip(ctx)
    at = height if 0 <= height < tip.height else tip.height
    block_hash = node.block_hash_at(at)
    entry = node.block_entry(block_hash) if block_hash is not None else None
    if entry is None or entry.height == 0:
        return 0.0
    if lookup <= 0:
        interval = ctx.params.pow_target_timespan // ctx.params.pow_target_spacing
        lookup = entry.height % interval + 1
    lookup = min(lookup, entry.height)
    first = node.block_entry(node.block_hash_at(entry.height - lookup) or b"")
    assert first is not None
    times = []
    for h in range(entry.height - lookup, entry.height + 1):
        walk = node.block_entry(node.block_hash_at(h) or b"")
        assert walk is not None
        times.append(walk.header.time)
    if min(times) == max(times):
        return 0.0
    return (entry.chain_work - first.chain_work) / (max(times) - min(times))


def _getnetworkhashps(ctx: RPCContext, args: Args) -> Any:
    lookup = args[0] if args[0] is not None else 120
    height = args[1] if args[1] is not None else -1
    return double_value(network_hashps(ctx, lookup, height))


def _pooled_count(ctx: RPCContext) -> int:
    mgr = getattr(ctx.node, "mempool", None)
    return len(mgr.pool) if mgr is not None else 0


def _getmininginfo(ctx: RPCContext, args: Args) -> Any:
    tip = _tip(ctx)
    entry = ctx.node.block_entry(tip.block_hash)
    state = _state(ctx)
    result: dict[str, Any] = {
        "blocks": tip.height,
        "currentblockweight": state.last_block_weight,
        "currentblocktx": state.last_block_tx,
        "difficulty": double_value(difficulty(entry.header.bits if entry is not None else None)),
        "networkhashps": double_value(network_hashps(ctx, 120, -1)),
        "hashespersec": 0,
        "pooledtx": _pooled_count(ctx),
        "chain": ctx.params.network,
    }
    if "getmininginfo" in ctx.options.get("deprecatedrpc", ()):
        result["errors"] = ""
    else:
        result["warnings"] = ""
    return result


def _prioritisetransaction(ctx: RPCContext, args: Args) -> Any:
    """Core: mempool.PrioritiseTransaction, which keeps the delta even for a transaction it does not
    hold (mapDeltas). aipgd has no mempool yet: the delta is kept here, for the mempool to come."""
    try:
        txid = hex_to_hash(args[0])
    except ValueError:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"txid must be hexadecimal string (not '{args[0]}')") from None
    delta = check_int(args[2], 64)
    dummy = args[1]
    if dummy is not None and (isinstance(dummy, bool) or not isinstance(dummy, int | Decimal)):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a number as expected")
    if dummy is not None and dummy != 0:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       "Priority is no longer supported, dummy argument to prioritisetransaction must be 0.")
    state = _state(ctx)
    with state.lock:
        state.prioritised[txid] = state.prioritised.get(txid, 0) + delta
    mgr = getattr(ctx.node, "mempool", None)
    if mgr is not None:
        mgr.pool.prioritise(txid, delta)
    return True


# -- generating ------------------------------------------------------------------------------------


def generate_blocks(ctx: RPCContext, payout: bytes, count: int, max_tries: int) -> list[str]:
    """Core: generateBlocks. Each block is assembled on the current tip, solved with KawPoW light
    hashing (or X16RV2 before activation), and handed to ProcessNewBlock."""
    node = ctx.node
    state = _state(ctx)
    hashes: list[str] = []
    height_end = _tip(ctx).height + count
    height = _tip(ctx).height
    while height < height_end and not ctx.interrupted.is_set():
        with state.lock:
            state.extra_nonce += 1
            extra = state.extra_nonce
        block = _new_block(ctx, payout, extra)
        tries = min(max_tries, _INNER_LOOP_COUNT)
        if tries <= 0:
            break
        header = solve_header(block.header, ctx.params, contexts=node.kawpow_contexts(), max_tries=tries)
        if header is None:
            max_tries -= tries
            if max_tries <= 0:
                break
            continue
        # Core decrements nMaxTries once per hash tried, not once per inner loop.
        max_tries -= (header.nonce64 if header.kawpow else header.nonce) + 1
        block = Block(header, block.vtx)
        verdict = node.submit_block(block)
        if not verdict.valid:
            raise RPCError(RPCErrorCode.RPC_INTERNAL_ERROR, "ProcessNewBlock, block not accepted")
        height += 1
        hashes.append(block.hash_hex)
    return hashes


def _max_tries(value: Any) -> int:
    return _DEFAULT_MAX_TRIES if value is None else check_int(value)


def _generate(ctx: RPCContext, args: Args) -> Any:
    """Core's generate pays a wallet key; aipgd has no wallet yet, so it pays -miningaddress, or an
    anyone-can-spend OP_TRUE output when that is not set."""
    return generate_blocks(ctx, _payout_script(ctx), args[0], _max_tries(args[1]))


def _generatetoaddress(ctx: RPCContext, args: Args) -> Any:
    try:
        dest = decode_address(args[1], ctx.params.prefixes)
    except AddressError:
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None
    return generate_blocks(ctx, script_for_destination(dest), args[0], _max_tries(args[2]))


SUBMITBLOCK_HELP = (
    'submitblock "hexdata"  ( "dummy" )\n'
    "\nAttempts to submit new block to network.\n"
    "\nArguments\n"
    '1. "hexdata"        (string, required) the hex-encoded block data to submit\n'
    '2. "dummy"          (optional) dummy value, for compatibility with BIP22. This value is ignored.\n'
    + examples("submitblock", '"mydata"')
)
PPRPCSB_HELP = (
    'pprpcsb "header_hash" "mix_hash" "nonce"\n'
    "\nAttempts to submit new block to network mined by kawpow gpu miner via rpc.\n"
    "\nArguments\n"
    '1. "header_hash"        (string, required) the prow_pow header hash that was given to the gpu miner '
    "from this rpc client\n"
    '2. "mix_hash"           (string, required) the mix hash that was mined by the gpu miner via rpc\n'
    '3. "nonce"              (string, required) the nonce of the block that hashed the valid block\n'
    + examples("pprpcsb", '"header_hash" "mix_hash" 100000')
)
GETKAWPOWHASH_HELP = (
    'getkawpowhash "header_hash" "mix_hash" nonce, height, "target"\n'
    "\nGet the kawpow hash for a block given its block data\n"
    "\nArguments\n"
    '1. "header_hash"        (string, required) the prow_pow header hash that was given to the gpu miner '
    "from this rpc client\n"
    '2. "mix_hash"           (string, required) the mix hash that was mined by the gpu miner via rpc\n'
    '3. "nonce"              (string, required) the hex nonce of the block that hashed the valid block\n'
    '4. "height"             (number, required) the height of the block data that is being hashed\n'
    '5. "target"             (string, optional) the target of the block that is hash is trying to meet\n'
    + examples("getkawpowhash", '"header_hash" "mix_hash" "0x100000" 2456')
)
GETMININGINFO_HELP = (
    "getmininginfo\n"
    "\nReturns a json object containing mining-related information.\n"
    + examples("getmininginfo")
)
GETNETWORKHASHPS_HELP = (
    "getnetworkhashps ( nblocks height )\n"
    "\nReturns the estimated network hashes per second based on the last n blocks.\n"
    "Pass in [blocks] to override # of blocks, -1 specifies since last difficulty change.\n"
    "Pass in [height] to estimate the network speed at the time when a certain block was found.\n"
    "\nArguments:\n"
    "1. nblocks     (numeric, optional, default=120) The number of blocks, or -1 for blocks since last "
    "difficulty change.\n"
    "2. height      (numeric, optional, default=-1) To estimate at the time of the given height.\n"
    + examples("getnetworkhashps")
)
PRIORITISETRANSACTION_HELP = (
    "prioritisetransaction <txid> <dummy value> <fee delta>\n"
    "Accepts the transaction into mined blocks at a higher (or lower) priority\n"
    "\nArguments:\n"
    '1. "txid"       (string, required) The transaction id.\n'
    "2. dummy          (numeric, optional) API-Compatibility for previous API. Must be zero or null.\n"
    "3. fee_delta      (numeric, required) The fee value (in satoshis) to add (or subtract, if negative).\n"
    + examples("prioritisetransaction", '"txid" 0.0 10000', '"txid", 0.0, 10000')
)
GENERATE_HELP = (
    "generate nblocks ( maxtries )\n"
    "\nMine up to nblocks blocks immediately (before the RPC call returns) to -miningaddress (aipgd has no "
    "wallet yet; without -miningaddress the coinbase pays an anyone-can-spend OP_TRUE output)\n"
    "\nArguments:\n"
    "1. nblocks      (numeric, required) How many blocks are generated immediately.\n"
    "2. maxtries     (numeric, optional) How many iterations to try (default = 1000000).\n"
    + examples("generate", "11")
)
GENERATETOADDRESS_HELP = (
    "generatetoaddress nblocks address (maxtries)\n"
    "\nMine blocks immediately to a specified address (before the RPC call returns)\n"
    "\nArguments:\n"
    "1. nblocks      (numeric, required) How many blocks are generated immediately.\n"
    "2. address      (string, required) The address to send the newly generated aipg to.\n"
    "3. maxtries     (numeric, optional) How many iterations to try (default = 1000000).\n"
    + examples("generatetoaddress", '11 "myaddress"')
)

METHODS = (
    Method("getnetworkhashps", "mining", _getnetworkhashps,
           (Param("nblocks", Kind.INT, required=False), Param("height", Kind.INT, required=False)),
           GETNETWORKHASHPS_HELP, offload=True),
    Method("getmininginfo", "mining", _getmininginfo, (), GETMININGINFO_HELP, offload=True),
    Method("prioritisetransaction", "mining", _prioritisetransaction,
           (Param("txid", Kind.STR), Param("dummy", Kind.ANY), Param("fee_delta", Kind.INT64)),
           PRIORITISETRANSACTION_HELP),
    Method("submitblock", "mining", _submitblock,
           (Param("hexdata", Kind.STR), Param("dummy", Kind.ANY, required=False)), SUBMITBLOCK_HELP,
           offload=True),
    Method("pprpcsb", "mining", _pprpcsb,
           (Param("header_hash", Kind.STR), Param("mix_hash", Kind.STR), Param("nonce", Kind.STR)),
           PPRPCSB_HELP, offload=True),
    Method("getkawpowhash", "mining", _getkawpowhash,
           (Param("header_hash", Kind.STR), Param("mix_hash", Kind.STR), Param("nonce", Kind.STR),
            Param("height", Kind.INT), Param("target", Kind.STR, required=False)),
           GETKAWPOWHASH_HELP, offload=True),
    Method("generate", "generating", _generate,
           (Param("nblocks", Kind.INT), Param("maxtries", Kind.INT, required=False)), GENERATE_HELP,
           offload=True),
    Method("generatetoaddress", "generating", _generatetoaddress,
           (Param("nblocks", Kind.INT), Param("address", Kind.STR),
            Param("maxtries", Kind.INT, required=False)),
           GENERATETOADDRESS_HELP, offload=True),
)
