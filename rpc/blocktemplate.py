"""getblocktemplate (Core: rpc/mining.cpp getblocktemplate; BIP22 templates, BIP23 proposals, BIP9
versionbits rules; AIPG's KawPoW pprpcheader/pprpcepoch for pools with -miningaddress).

Owns the template's JSON and the versionbits negotiation with the client. It must never change chain
state: proposals are checked by NodeInterface.validate_block_proposal, blocks come from rpc.mining's
block assembly, and the templates handed to pools are kept in rpc.mining's MiningState.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import kawpow
from aipgd.consensus.block_check import block_weight
from aipgd.consensus.versionbits import ThresholdState
from aipgd.core.block import Block
from aipgd.core.params import Deployment
from aipgd.core.uint256 import compact_to_target, hash_to_hex, hex_to_hash
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.interface import VersionBitsInfo
from rpc.mining import (
    MAX_BLOCK_SERIALIZED_SIZE,
    MAX_BLOCK_SIGOPS_COST,
    MAX_BLOCK_WEIGHT,
    _bip22_result,
    _decode_block,
    _new_block,
    _payout_script,
    _state,
    _tip,
    _versionbits,
)
from rpc.registry import Args, Kind, Method, Param, examples

# AIPG: a template's pprpcheader is handed out again for 30 s (mapHVNKAWBlockTemplates, lastheader).
_PPRPC_HEADER_REUSE_SECONDS = 30
_TEMPLATE_LIMIT = 64


def _gbt_name(dep: Deployment) -> str:
    """Core: gbt_vb_name, a rule the client must understand is prefixed with '!'."""
    return dep.name if dep.gbt_force else "!" + dep.name


def _apply_versionbits(vb: VersionBitsInfo | None, version: int,
                       client_rules: set[str]) -> tuple[int, list[str], dict[str, int]]:
    """Core: getblocktemplate's versionbits loop: ACTIVE deployments become `rules`, STARTED and
    LOCKED_IN ones `vbavailable` (a LOCKED_IN bit is always set; a STARTED non-forced bit only
    when the client names the rule)."""
    rules: list[str] = []
    available: dict[str, int] = {}
    for status in vb.deployments if vb is not None else ():
        dep = status.deployment
        bit_mask = 1 << dep.bit
        if status.state is ThresholdState.LOCKED_IN:
            version |= bit_mask
        if status.state in (ThresholdState.STARTED, ThresholdState.LOCKED_IN):
            available[_gbt_name(dep)] = dep.bit
            if dep.name not in client_rules and not dep.gbt_force:
                version &= ~bit_mask
        elif status.state is ThresholdState.ACTIVE:
            rules.append(_gbt_name(dep))
            if dep.name not in client_rules and not dep.gbt_force:
                raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                               f"Support for '{dep.name}' rule requires explicit client support")
    return version, rules, available


def _proposal(ctx: RPCContext, request: dict[str, Any]) -> Any:
    """BIP23 proposal (Core: getblocktemplate's "proposal" mode and TestBlockValidity on the tip)."""
    data = request.get("data")
    if not isinstance(data, str):
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Missing data String key for proposal")
    block = _decode_block(ctx, data)
    status = ctx.node.block_status(block.hash)
    if status is not None:
        return {"valid": "duplicate", "failed": "duplicate-invalid"}.get(status, "duplicate-inconclusive")
    tip = _tip(ctx)
    # TestBlockValidity only supports blocks built on the current tip.
    if block.header.prev_hash != tip.block_hash:
        return "inconclusive-not-best-prevblk"
    verdict = ctx.node.validate_block_proposal(block)
    if verdict is None:  # the tip moved on meanwhile
        return "inconclusive-not-best-prevblk"
    return _bip22_result(verdict)


def _client_rules(request: dict[str, Any]) -> tuple[set[str], int]:
    """Core: the request's "rules" (the client's versionbits support), or else its pre-BIP9
    "maxversion" (-1 when absent)."""
    rules = request.get("rules")
    if isinstance(rules, list):
        names: set[str] = set()
        for rule in rules:
            if not isinstance(rule, str):  # Core: UniValue::get_str's runtime_error
                raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
            names.add(rule)
        return names, -1
    max_version = request.get("maxversion")
    if isinstance(max_version, int | Decimal) and not isinstance(max_version, bool):
        return set(), int(max_version)
    return set(), -1


def _getblocktemplate(ctx: RPCContext, args: Args) -> Any:
    request = args[0] or {}
    mode = request.get("mode")
    if mode is None:
        mode = "template"
    elif not isinstance(mode, str):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid mode")
    if mode == "proposal":
        return _proposal(ctx, request)
    client_rules, max_version_pre_vb = _client_rules(request)
    if mode != "template":
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid mode")
    node = ctx.node
    if ctx.params.mining_requires_peers:
        if node.peer_count() == 0:
            raise RPCError(RPCErrorCode.RPC_CLIENT_NOT_CONNECTED, "Aipg is not connected!")
        if node.initial_block_download():
            raise RPCError(RPCErrorCode.RPC_CLIENT_IN_INITIAL_DOWNLOAD, "Aipg is downloading blocks...")
    longpoll = request.get("longpollid")
    if longpoll is not None:
        # No mempool yet, so only a new tip ends a long poll (Core also wakes on new transactions).
        watched = _tip(ctx).block_hash
        if isinstance(longpoll, str):
            try:
                watched = hex_to_hash(longpoll[:64])
            except ValueError:
                watched = b""
        node.wait_for_tip(lambda t: t.block_hash != watched, None, ctx.interrupted)
        if ctx.interrupted.is_set():
            raise RPCError(RPCErrorCode.RPC_CLIENT_NOT_CONNECTED, "Shutting down")
    payout = _payout_script(ctx)
    block = _new_block(ctx, payout)
    state = _state(ctx)
    header = block.header
    height = header.height if header.kawpow else _tip(ctx).height + 1
    coinbase = block.vtx[0]
    target, _, _ = compact_to_target(header.bits)
    with state.lock:
        state.last_block_weight = block_weight(block)
        state.last_block_tx = len(block.vtx) - 1
    version, rules, available = _apply_versionbits(_versionbits(ctx, header.prev_hash), header.version,
                                                   client_rules)
    if version != header.version:
        header = header.with_fields(version=version)
        block = Block(header, block.vtx)
    mutable = ["time", "transactions", "prevblock"]
    if max_version_pre_vb >= 2:
        # Core: only a client without versionbits support may force the version down to v2.
        mutable.append("version/force")
    result: dict[str, Any] = {
        "capabilities": ["proposal"],
        "version": version,
        "rules": rules,
        "vbavailable": available,
        "vbrequired": 0,
        "previousblockhash": hash_to_hex(header.prev_hash),
        "transactions": template_transactions_json(ctx, block),
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": coinbase.vout[0].value,
        "CommunityAutonomousAddress": ctx.params.community_autonomous_address,
        "CommunityAutonomousValue": coinbase.vout[1].value,
        "longpollid": hash_to_hex(header.prev_hash) + "0",
        "target": f"{target:064x}",
        "mintime": node.mining_parent().median_time_past + 1,
        "mutable": mutable,
        "noncerange": "00000000ffffffff",
        "sigoplimit": MAX_BLOCK_SIGOPS_COST,
        "sizelimit": MAX_BLOCK_SERIALIZED_SIZE,
        "weightlimit": MAX_BLOCK_WEIGHT,
        "curtime": header.time,
        "bits": f"{header.bits:08x}",
        "height": height,
        "default_witness_commitment": coinbase.vout[-1].script_pubkey.hex(),
    }
    if header.kawpow and ctx.options.get("miningaddress"):
        epoch = height // kawpow.EPOCH_LENGTH
        with state.lock:
            if state.template_tip != header.prev_hash:
                state.templates.clear()
                state.template_tip = header.prev_hash
            last = state.templates.get(state.last_header)
            if last is not None and header.time - _PPRPC_HEADER_REUSE_SECONDS < last.header.time:
                result["pprpcheader"] = state.last_header
            else:
                key = hash_to_hex(header.kawpow_header_hash())
                if len(state.templates) >= _TEMPLATE_LIMIT:
                    state.templates.pop(next(iter(state.templates)))
                state.templates[key] = block
                state.last_header = key
                result["pprpcheader"] = key
        result["pprpcepoch"] = epoch
    return result


def template_transactions_json(ctx: RPCContext, block: Block) -> list[dict[str, Any]]:
    """Core: getblocktemplate's "transactions" (fee and sigops from the mempool entries)."""
    mgr = getattr(ctx.node, "mempool", None)
    index = {tx.txid: i + 1 for i, tx in enumerate(block.vtx[1:])}
    out = []
    for tx in block.vtx[1:]:
        entry = mgr.pool.get(tx.txid) if mgr is not None else None
        depends = sorted({index[txin.prevout.txid] for txin in tx.vin if txin.prevout.txid in index})
        out.append({
            "data": tx.serialize().hex(),
            "txid": tx.txid_hex,
            "hash": hash_to_hex(tx.wtxid),
            "depends": depends,
            "fee": entry.fee if entry is not None else 0,
            "sigops": entry.sigop_cost if entry is not None else 0,
            "weight": tx.weight,
        })
    return out


GETBLOCKTEMPLATE_HELP = (
    "getblocktemplate ( TemplateRequest )\n"
    "\nIf the request parameters include a 'mode' key, that is used to explicitly select between the default "
    "'template' request or a 'proposal'.\n"
    "It returns data needed to construct a block to work on.\n"
    "For full specification, see BIPs 22, 23, 9, and 145.\n"
    "With -miningaddress set, the result also carries \"pprpcheader\" (the KawPoW header hash to mine) and "
    "\"pprpcepoch\"; a solution is submitted with pprpcsb.\n"
    "\nArguments:\n"
    "1. template_request         (json object, optional) {\"mode\": \"template\"|\"proposal\", "
    "\"capabilities\": [...], \"rules\": [...], \"longpollid\": \"...\", \"data\": \"hex\"}\n"
    + examples("getblocktemplate")
)

METHODS = (
    Method("getblocktemplate", "mining", _getblocktemplate,
           (Param("template_request", Kind.OBJ, required=False),), GETBLOCKTEMPLATE_HELP, offload=True),
)
