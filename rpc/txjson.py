"""Transactions, scripts and blocks as AIPG Core's RPC prints them (Core: core_write.cpp TxToUniv,
ScriptPubKeyToUniv, ScriptToAsmStr; rpc/blockchain.cpp blockheaderToJSON, blockToJSON).

Owns the JSON shapes and field order clients parse. It must never judge validity: it describes.
"""

from __future__ import annotations

from typing import Any

from aipgd.core.address import Base58Prefixes, encode_address
from aipgd.core.block import Block, BlockHeader
from aipgd.core.hashes import hash160
from aipgd.core.serialize import ByteReader, DeserializationError
from aipgd.core.transaction import COIN, Transaction
from aipgd.core.uint256 import hash_to_hex
from aipgd.script.asm import script_to_asm
from aipgd.script.asset_script import asset_script_info
from aipgd.script.opcodes import Op
from aipgd.script.script import get_op
from aipgd.script.scriptnum import ScriptNumError, decode_script_num
from aipgd.script.signature import is_valid_signature_encoding
from aipgd.script.standard import KeyID, ScriptID, TxoutType, solver
from rpc.interface import BlockEntry
from rpc.jsonutil import amount_value, double_value

_TYPE_NAMES = {
    TxoutType.TX_NONSTANDARD: "nonstandard",
    TxoutType.TX_PUBKEY: "pubkey",
    TxoutType.TX_PUBKEYHASH: "pubkeyhash",
    TxoutType.TX_SCRIPTHASH: "scripthash",
    TxoutType.TX_MULTISIG: "multisig",
    TxoutType.TX_NULL_DATA: "nulldata",
    TxoutType.TX_RESTRICTED_ASSET_DATA: "nullassetdata",
    TxoutType.TX_WITNESS_V0_KEYHASH: "witness_v0_keyhash",
    TxoutType.TX_WITNESS_V0_SCRIPTHASH: "witness_v0_scripthash",
    TxoutType.TX_NEW_ASSET: "new_asset",
    TxoutType.TX_TRANSFER_ASSET: "transfer_asset",
    TxoutType.TX_REISSUE_ASSET: "reissue_asset",
}
_ASSET_TYPES = (TxoutType.TX_NEW_ASSET, TxoutType.TX_TRANSFER_ASSET, TxoutType.TX_REISSUE_ASSET)
# Core: mapSigHashTypes.
SIGHASH_NAMES = {1: "ALL", 0x81: "ALL|ANYONECANPAY", 2: "NONE", 0x82: "NONE|ANYONECANPAY",
                 3: "SINGLE", 0x83: "SINGLE|ANYONECANPAY"}
# Core: OWNER_ASSET_AMOUNT, one whole unit.
_OWNER_ASSET_AMOUNT = COIN


def txout_type_name(kind: TxoutType) -> str:
    return _TYPE_NAMES[kind]


def _is_valid_pubkey(data: bytes) -> bool:
    """Core: CPubKey::IsValid, only the size implied by the first byte."""
    if not data:
        return False
    if data[0] in (2, 3):
        return len(data) == 33
    if data[0] in (4, 6, 7):
        return len(data) == 65
    return False


def extract_destinations(script: bytes) -> tuple[TxoutType, list[KeyID | ScriptID], int] | None:
    """Core: ExtractDestinations. None for data and unrecognized scripts (the type is still reported)."""
    kind, solutions = solver(script)
    if kind in (TxoutType.TX_NONSTANDARD, TxoutType.TX_NULL_DATA, TxoutType.TX_WITNESS_V0_KEYHASH,
                TxoutType.TX_WITNESS_V0_SCRIPTHASH):
        return None
    if kind == TxoutType.TX_MULTISIG:
        keys = [KeyID(hash160(k)) for k in solutions[1:-1] if _is_valid_pubkey(k)]
        if not keys:
            return None
        return kind, list(keys), solutions[0][0]
    if kind == TxoutType.TX_PUBKEY:
        if not _is_valid_pubkey(solutions[0]):
            return None
        return kind, [KeyID(hash160(solutions[0]))], 1
    if kind == TxoutType.TX_SCRIPTHASH:
        return kind, [ScriptID(solutions[0])], 1
    if kind == TxoutType.TX_RESTRICTED_ASSET_DATA and not solutions:
        return None
    return kind, [KeyID(solutions[0])], 1


def script_type(script: bytes) -> TxoutType:
    return solver(script)[0]


def asm_with_sighash(script: bytes) -> str:
    """Core: ScriptToAsmStr(script, fAttemptSighashDecode=true), used for scriptSigs."""
    if script and (script[0] in (Op.OP_RETURN, Op.OP_AIPG_ASSET) or len(script) > 10_000):
        return script_to_asm(script)
    words: list[str] = []
    pc = 0
    while pc < len(script):
        op = get_op(script, pc)
        if op is None:
            words.append("[error]")
            break
        opcode, data, pc = op
        if opcode <= Op.OP_PUSHDATA4 and data is not None and len(data) > 4:
            if is_valid_signature_encoding(data) and data[-1] in SIGHASH_NAMES:
                words.append(data[:-1].hex() + f"[{SIGHASH_NAMES[data[-1]]}]")
            else:
                words.append(data.hex())
        elif opcode <= Op.OP_PUSHDATA4 and data is not None:
            try:
                words.append(str(decode_script_num(data, False)))
            except ScriptNumError:  # pragma: no cover - 4 bytes always decode
                words.append(data.hex())
        else:
            words.append(script_to_asm(bytes([opcode])))
    return " ".join(words)


def _asset_info(script: bytes) -> dict[str, Any]:
    """Name and amount of an asset output (Core: GetAssetData); empty when the payload does not parse."""
    info = asset_script_info(script)
    if info is None:
        return {}
    _, is_owner, start = info
    r = ByteReader(script, start)
    try:
        name = r.var_str("asset name", 64)
        amount = _OWNER_ASSET_AMOUNT if is_owner else r.i64("asset amount")
    except DeserializationError:
        return {}
    return {"name": name, "amount": amount_value(amount)}


def script_pubkey_json(script: bytes, prefixes: Base58Prefixes, include_hex: bool = True) -> dict[str, Any]:
    """Core: ScriptPubKeyToUniv."""
    out: dict[str, Any] = {"asm": script_to_asm(script)}
    if include_hex:
        out["hex"] = script.hex()
    extracted = extract_destinations(script)
    if extracted is None:
        out["type"] = txout_type_name(script_type(script))
        return out
    kind, dests, required = extracted
    out["reqSigs"] = required
    out["type"] = txout_type_name(kind)
    if kind in _ASSET_TYPES:
        out["asset"] = _asset_info(script)
    if kind == TxoutType.TX_RESTRICTED_ASSET_DATA:
        out["asset_data"] = {}
    out["addresses"] = [encode_address(d, prefixes) for d in dests]
    return out


def tx_to_json(tx: Transaction, prefixes: Base58Prefixes, include_hex: bool,
               block_hash: bytes | None = None) -> dict[str, Any]:
    """Core: TxToUniv."""
    coinbase = tx.is_coinbase()
    vin: list[dict[str, Any]] = []
    for txin in tx.vin:
        entry: dict[str, Any]
        if coinbase:
            entry = {"coinbase": txin.script_sig.hex()}
        else:
            entry = {"txid": hash_to_hex(txin.prevout.txid), "vout": txin.prevout.n,
                     "scriptSig": {"asm": asm_with_sighash(txin.script_sig), "hex": txin.script_sig.hex()}}
            if txin.witness:
                entry["txinwitness"] = [item.hex() for item in txin.witness]
        entry["sequence"] = txin.sequence
        vin.append(entry)
    vout = [{"value": amount_value(out.value), "n": n,
             "scriptPubKey": script_pubkey_json(out.script_pubkey, prefixes)}
            for n, out in enumerate(tx.vout)]
    result: dict[str, Any] = {
        "txid": hash_to_hex(tx.txid),
        "hash": hash_to_hex(tx.wtxid),
        "version": tx.version,
        "size": tx.total_size,
        "vsize": (tx.weight + 3) // 4,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }
    if block_hash is not None:
        result["blockhash"] = hash_to_hex(block_hash)
    if include_hex:
        result["hex"] = tx.serialize().hex()
    return result


def difficulty(bits: int | None) -> float:
    """Core: GetDifficulty, powLimit-relative difficulty 0xffff / mantissa scaled by 256^(29-exponent)."""
    if bits is None:
        return 1.0
    shift = (bits >> 24) & 0xFF
    mantissa = bits & 0x00FFFFFF
    if mantissa == 0:
        return float("inf")
    value = 0x0000FFFF / mantissa
    while shift < 29:
        value *= 256.0
        shift += 1
    while shift > 29:
        value /= 256.0
        shift -= 1
    return value


def _chain_work_hex(work: int) -> str:
    return f"{work:064x}"


def header_json(entry: BlockEntry, tip_height: int) -> dict[str, Any]:
    """Core: blockheaderToJSON."""
    h: BlockHeader = entry.header
    result: dict[str, Any] = {
        "hash": hash_to_hex(entry.block_hash),
        "confirmations": tip_height - entry.height + 1 if entry.in_active_chain else -1,
        "height": entry.height,
        "version": h.version,
        "versionHex": f"{h.version & 0xFFFFFFFF:08x}",
        "merkleroot": hash_to_hex(h.merkle_root),
        "time": h.time,
        "mediantime": entry.median_time_past,
        "nonce": h.nonce,
        "bits": f"{h.bits:08x}",
        "difficulty": double_value(difficulty(h.bits)),
        "chainwork": _chain_work_hex(entry.chain_work),
    }
    if entry.prev_hash is not None:
        result["previousblockhash"] = hash_to_hex(entry.prev_hash)
    if entry.next_hash is not None:
        result["nextblockhash"] = hash_to_hex(entry.next_hash)
    return result


def block_json(block: Block, entry: BlockEntry, tip_height: int, prefixes: Base58Prefixes,
               tx_details: bool) -> dict[str, Any]:
    """Core: blockToJSON (AIPG's, with headerhash, mixhash and nonce64)."""
    h = block.header
    stripped = len(block.serialize(with_witness=False))
    size = len(block.serialize(with_witness=True))
    txs: list[Any] = [tx_to_json(tx, prefixes, True) if tx_details else hash_to_hex(tx.txid)
                      for tx in block.vtx]
    result: dict[str, Any] = {
        "hash": hash_to_hex(entry.block_hash),
        "confirmations": tip_height - entry.height + 1 if entry.in_active_chain else -1,
        "strippedsize": stripped,
        "size": size,
        "weight": stripped * 3 + size,
        "height": entry.height,
        "version": h.version,
        "versionHex": f"{h.version & 0xFFFFFFFF:08x}",
        "merkleroot": hash_to_hex(h.merkle_root),
        "tx": txs,
        "time": h.time,
        "mediantime": entry.median_time_past,
        "nonce": h.nonce,
        "bits": f"{h.bits:08x}",
        "difficulty": double_value(difficulty(h.bits)),
        "chainwork": _chain_work_hex(entry.chain_work),
        "headerhash": hash_to_hex(h.kawpow_header_hash()),
        "mixhash": hash_to_hex(h.mix_hash),
        "nonce64": h.nonce64,
    }
    if entry.prev_hash is not None:
        result["previousblockhash"] = hash_to_hex(entry.prev_hash)
    if entry.next_hash is not None:
        result["nextblockhash"] = hash_to_hex(entry.next_hash)
    return result
