"""Recognizing Ravencoin asset scripts by their bytes (Core: CScript::IsAssetScript and kin).

Owns the byte-position tests that tell issue / reissue / transfer / owner asset outputs and
the null asset data scripts (tags, global restrictions, verifier strings) apart. It must
never deserialize the asset payload itself: names and amounts belong to the asset rules.
"""

from __future__ import annotations

from enum import IntEnum

from aipgd.script.opcodes import Op
from aipgd.script.script import get_op

_ASSET = Op.OP_AIPG_ASSET
_RESERVED = Op.OP_RESERVED
# Core: assets.h aipg_N/E/X (the "rvn" magic Ravencoin uses, kept by AIPG) and the type letters.
_MAGIC = b"rvn"
_TYPE_QUALIFIER_ISSUE = ord("q")
_TYPE_TRANSFER = ord("t")
_TYPE_OWNER = ord("o")
_TYPE_REISSUE = ord("r")


class AssetScriptType(IntEnum):
    """Core: txnouttype values for asset outputs."""

    TX_NEW_ASSET = 8
    TX_REISSUE_ASSET = 9
    TX_TRANSFER_ASSET = 10


def asset_script_info(script: bytes) -> tuple[AssetScriptType, bool, int] | None:
    """Core: IsAssetScript(nType, fIsOwner, nStartingIndex).

    An asset output is a 25-byte P2PKH followed by OP_RVN_ASSET at index 25 and a push whose
    payload starts with "rvn" and a type letter. Returns (type, is_owner, payload start).
    """
    if len(script) <= 31 or script[25] != _ASSET:
        return None
    # The magic sits at 27 for a one-byte push length, at 28 behind OP_PUSHDATA1. Core looks
    # at 28 only when byte 27 is not 'r', so "rrvn" is not an asset script.
    if script[27] == _MAGIC[0]:
        if script[28:30] != _MAGIC[1:]:
            return None
        index = 30
    elif script[28:31] == _MAGIC:
        index = 31
    else:
        return None
    kind = script[index]
    start = index + 1
    if kind == _TYPE_TRANSFER:
        return AssetScriptType.TX_TRANSFER_ASSET, False, start
    if kind == _TYPE_QUALIFIER_ISSUE and len(script) > 39:
        return AssetScriptType.TX_NEW_ASSET, False, start
    if kind == _TYPE_OWNER:
        return AssetScriptType.TX_NEW_ASSET, True, start
    if kind == _TYPE_REISSUE:
        return AssetScriptType.TX_REISSUE_ASSET, False, start
    return None


def is_asset_script(script: bytes) -> bool:
    return asset_script_info(script) is not None


def is_null_asset_tx_data(script: bytes) -> bool:
    """Core: IsNullAssetTxDataScript — OP_RVN_ASSET <20-byte hash160> <tag data> (address tags)."""
    return len(script) > 23 and script[0] == _ASSET and script[1] == 0x14


def is_null_global_restriction(script: bytes) -> bool:
    """Core: IsNullGlobalRestrictionAssetTxDataScript — OP_RVN_ASSET OP_RESERVED OP_RESERVED ..."""
    return len(script) > 6 and script[0] == _ASSET and script[1] == _RESERVED and script[2] == _RESERVED


def is_null_asset_verifier(script: bytes) -> bool:
    """Core: IsNullAssetVerifierTxDataScript — OP_RVN_ASSET OP_RESERVED <verifier string>."""
    return len(script) > 3 and script[0] == _ASSET and script[1] == _RESERVED and script[2] != _RESERVED


def is_null_asset(script: bytes) -> bool:
    """Core: IsNullAsset — any of the three null asset data scripts."""
    return (is_null_asset_tx_data(script) or is_null_global_restriction(script)
            or is_null_asset_verifier(script))


def count_opcode(script: bytes, opcode: int) -> int:
    """Core: CScript::Find — how many times `opcode` occurs as an op (not inside pushes)."""
    found = 0
    pc = 0
    while pc < len(script):
        op = get_op(script, pc)
        if op is None:
            break
        if op[0] == opcode:
            found += 1
        pc = op[2]
    return found


def is_unspendable(script: bytes) -> bool:
    """Core: CScript::IsUnspendable, without the zero-amount asset case (needs the asset payload)."""
    return bool(script) and (script[0] in _UNSPENDABLE_FIRST or len(script) > 10_000)


_UNSPENDABLE_FIRST = frozenset((Op.OP_RETURN.value, _ASSET.value))
