"""The unauthenticated REST interface, -rest (Core: rest.cpp as of 0.15).

Owns the /rest/ URL scheme (block, block/notxdetails, tx, headers, chaininfo, mempool/info,
mempool/contents, getutxos), its .bin/.hex/.json formats, status codes and error texts. It runs on
the RPC server's worker threads and reads the chain only through NodeInterface (and the JSON-RPC
methods whose results it shares): /rest/chaininfo answers what getblockchaininfo does, and
/rest/mempool/info and /rest/mempool/contents what getmempoolinfo and getrawmempool(true) do (Core:
rest_mempool_info's mempoolInfoToJSON, rest_mempool_contents' mempoolToJSON(true)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_compact_size,
    ser_i32,
    ser_u32,
)
from aipgd.core.transaction import OutPoint
from aipgd.core.uint256 import hash_to_hex, hex_to_hash
from rpc.dispatch import RPCContext
from rpc.http import Reply
from rpc.jsonutil import amount_value, dumps
from rpc.txjson import block_json, header_json, script_pubkey_json, tx_to_json

MAX_GETUTXOS_OUTPOINTS = 15  # Core: rest.cpp
MAX_REST_HEADERS_RESULTS = 2000
_FORMATS = ("bin", "hex", "json")
_BIN = "application/octet-stream"
_TEXT = "text/plain"
_JSON = "application/json"


def _error(status: int, message: str) -> Reply:
    """Core: RESTERR, a plain-text body with a newline."""
    return Reply(status, (message + "\r\n").encode(), _TEXT)


def _parse_format(text: str) -> tuple[str, str]:
    """Core: ParseDataFormat, (param, format) where format is "" when the suffix is unknown."""
    dot = text.rfind(".")
    if dot < 0:
        return text, ""
    suffix = text[dot + 1:]
    if suffix in _FORMATS:
        return text[:dot], suffix
    return text, ""


def _formats_error(available: str = ".bin, .hex, .json") -> Reply:
    return _error(404, f"output format not found (available: {available})")


def _hash_or_none(text: str) -> bytes | None:
    """Core: ParseHashStr, 64 hex digits."""
    if len(text) != 64:
        return None
    try:
        return hex_to_hash(text)
    except ValueError:
        return None


def _reply(fmt: str, raw: bytes, as_json: Callable[[], Any]) -> Reply:
    if fmt == "bin":
        return Reply(200, raw, _BIN)
    if fmt == "hex":
        return Reply(200, (raw.hex() + "\n").encode(), _TEXT)
    if fmt == "json":
        return Reply(200, (dumps(as_json()) + "\n").encode(), _JSON)
    return _formats_error()


def _rest_block(ctx: RPCContext, param: str, fmt: str, tx_details: bool) -> Reply:
    block_hash = _hash_or_none(param)
    if block_hash is None:
        return _error(400, f"Invalid hash: {param}")
    node = ctx.node
    entry = node.block_entry(block_hash)
    if entry is None:
        return _error(404, f"{param} not found")
    if not entry.have_data:
        return _error(404, f"{param} not available (pruned data)")
    try:
        block = node.read_block(block_hash)
    except Exception:
        block = None
    if block is None:
        return _error(404, f"{param} not found")
    tip = node.tip()
    tip_height = tip.height if tip is not None else -1
    return _reply(fmt, block.serialize(),
                  lambda: block_json(block, entry, tip_height, ctx.params.prefixes, tx_details))


def _rest_tx(ctx: RPCContext, param: str, fmt: str) -> Reply:
    txid = _hash_or_none(param)
    if txid is None:
        return _error(400, f"Invalid hash: {param}")
    found = ctx.node.find_transaction(txid)
    if found is None:
        return _error(404, f"{param} not found")
    tx, block_hash = found
    return _reply(fmt, tx.serialize(), lambda: tx_to_json(tx, ctx.params.prefixes, True, block_hash))


def _rest_headers(ctx: RPCContext, param: str, fmt: str) -> Reply:
    parts = param.split("/")
    if len(parts) != 2:
        return _error(400, "No header count specified. Use /rest/headers/<count>/<hash>.<ext>.")
    count_text, hash_text = parts
    count = int(count_text) if count_text.lstrip("-").isdigit() else 0
    if count < 1 or count > MAX_REST_HEADERS_RESULTS:
        return _error(400, f"Header count out of range: {count_text}")
    block_hash = _hash_or_none(hash_text)
    if block_hash is None:
        return _error(400, f"Invalid hash: {hash_text}")
    node = ctx.node
    entries = []
    entry = node.block_entry(block_hash)
    while entry is not None and entry.in_active_chain:
        entries.append(entry)
        if len(entries) == count or entry.next_hash is None:
            break
        entry = node.block_entry(entry.next_hash)
    tip = node.tip()
    tip_height = tip.height if tip is not None else -1
    raw = b"".join(e.header.serialize() for e in entries)
    return _reply(fmt, raw, lambda: [header_json(e, tip_height) for e in entries])


def _rest_json_only(fmt: str, value: Callable[[], Any]) -> Reply:
    if fmt != "json":
        return _formats_error(".json")
    return Reply(200, (dumps(value()) + "\n").encode(), _JSON)


def _rpc_result(ctx: RPCContext, name: str, args: list[Any]) -> Any:
    """The result of JSON-RPC method `name` called with `args`, so REST shares its JSON."""
    method = ctx.table.get(name)
    assert method is not None
    return method.handler(ctx, args)


def _rest_getutxos(ctx: RPCContext, param: str, fmt: str, body: bytes) -> Reply:
    uri_parts = param[1:].split("/") if len(param) > 1 else []
    if not body and not uri_parts:
        return _error(400, "Error: empty request")
    outpoints: list[OutPoint] = []
    parsed_uri = False
    if uri_parts:
        start = 1 if uri_parts[0] == "checkmempool" else 0
        for part in uri_parts[start:]:
            txid_text, _, n_text = part.partition("-")
            if not n_text and "-" not in part:
                n_text = part
            try:
                n = int(n_text)
                if not -(1 << 31) <= n < (1 << 31) or not n_text.lstrip("-").isdigit():
                    raise ValueError
                if not txid_text or len(txid_text) % 2 or any(c not in "0123456789abcdefABCDEF"
                                                              for c in txid_text):
                    raise ValueError
            except ValueError:
                return _error(400, "Parse error")
            txid = bytes.fromhex(txid_text.rjust(64, "0")[-64:])[::-1]
            outpoints.append(OutPoint(txid, n & 0xFFFFFFFF))
        if not outpoints:
            return _error(400, "Error: empty request")
        parsed_uri = True
    if fmt in ("hex", "bin"):
        data = body
        if fmt == "hex":
            try:
                data = bytes.fromhex(body.decode("ascii").strip())
            except (ValueError, UnicodeDecodeError):
                data = b""
        if data:
            if parsed_uri:
                return _error(400, "Combination of URI scheme inputs and raw post data is not allowed")
            try:
                r = ByteReader(data)
                r.u8("fCheckMemPool")
                outpoints = r.vector(OutPoint.read, "vOutPoints", 36)
            except DeserializationError:
                return _error(400, "Parse error")
    elif fmt == "json":
        if not parsed_uri:
            return _error(400, "Error: empty request")
    else:
        return _formats_error()
    if len(outpoints) > MAX_GETUTXOS_OUTPOINTS:
        return _error(400, f"Error: max outpoints exceeded (max: {MAX_GETUTXOS_OUTPOINTS}, "
                           f"tried: {len(outpoints)})")
    node = ctx.node
    bitmap = bytearray((len(outpoints) + 7) // 8)
    bits = []
    coins = []
    for i, outpoint in enumerate(outpoints):
        coin = node.get_coin(outpoint)
        bits.append("1" if coin is not None else "0")
        if coin is not None:
            coins.append(coin)
            bitmap[i // 8] |= 1 << (i % 8)
    tip = node.tip()
    assert tip is not None
    if fmt in ("bin", "hex"):
        # BIP64: height, tip hash, bitmap, then CCoin records (a zero dummy version, height, output).
        raw = (ser_i32(tip.height) + tip.block_hash + ser_compact_size(len(bitmap)) + bytes(bitmap)
               + ser_compact_size(len(coins))
               + b"".join(ser_u32(0) + ser_u32(c.height) + c.out.serialize() for c in coins))
        return _reply(fmt, raw, dict)
    return Reply(200, (dumps({
        "chainHeight": tip.height,
        "chaintipHash": hash_to_hex(tip.block_hash),
        "bitmap": "".join(bits),
        "utxos": [{"height": c.height, "value": amount_value(c.out.value),
                   "scriptPubKey": script_pubkey_json(c.out.script_pubkey, ctx.params.prefixes)}
                  for c in coins],
    }) + "\n").encode(), _JSON)


def handle_rest(ctx: RPCContext, path: str, body: bytes, warmup_status: str | None) -> Reply:
    """Answer one /rest/ request (Core: the uri_prefixes table of rest.cpp)."""
    if warmup_status is not None:
        return _error(503, f"Service temporarily unavailable: {warmup_status}")
    routes: list[tuple[str, Callable[[str, str], Reply]]] = [
        ("/rest/tx/", lambda p, f: _rest_tx(ctx, p, f)),
        ("/rest/block/notxdetails/", lambda p, f: _rest_block(ctx, p, f, False)),
        ("/rest/block/", lambda p, f: _rest_block(ctx, p, f, True)),
        ("/rest/chaininfo",
         lambda p, f: _rest_json_only(f, lambda: _rpc_result(ctx, "getblockchaininfo", []))),
        ("/rest/mempool/info",
         lambda p, f: _rest_json_only(f, lambda: _rpc_result(ctx, "getmempoolinfo", []))),
        ("/rest/mempool/contents",
         lambda p, f: _rest_json_only(f, lambda: _rpc_result(ctx, "getrawmempool", [True]))),
        ("/rest/headers/", lambda p, f: _rest_headers(ctx, p, f)),
        ("/rest/getutxos", lambda p, f: _rest_getutxos(ctx, p, f, body)),
    ]
    for prefix, handler in routes:
        if path.startswith(prefix):
            param, fmt = _parse_format(path[len(prefix):])
            return handler(param, fmt)
    return Reply(404, content_type=None)
