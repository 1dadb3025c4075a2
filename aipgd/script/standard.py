"""Standard destinations, their output scripts and the template solver (Core: script/standard.cpp).

Owns `KeyID`/`ScriptID`, `script_for_destination` (P2PKH, P2SH) and `solver`, which names an
output's template (P2PK, P2PKH, P2SH, multisig, witness v0, null data, Ravencoin asset
outputs and null asset data). It must never decode text: addresses live in `aipgd.core.address`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from aipgd.script.asset_script import asset_script_info
from aipgd.script.opcodes import Op
from aipgd.script.script import (
    ScriptOp,
    ScriptParseError,
    build_script,
    decode_op_n,
    decode_script,
    is_p2sh,
    is_push_only,
    witness_program,
)


@dataclass(frozen=True, slots=True)
class KeyID:
    """hash160 of a public key: pays to a P2PKH script."""

    hash160: bytes

    def __post_init__(self) -> None:
        if len(self.hash160) != 20:
            raise ValueError("a key id is 20 bytes")


@dataclass(frozen=True, slots=True)
class ScriptID:
    """hash160 of a redeem script: pays to a P2SH script (BIP16)."""

    hash160: bytes

    def __post_init__(self) -> None:
        if len(self.hash160) != 20:
            raise ValueError("a script id is 20 bytes")


Destination = KeyID | ScriptID


def script_for_destination(dest: Destination) -> bytes:
    if isinstance(dest, KeyID):
        return build_script(Op.OP_DUP, Op.OP_HASH160, dest.hash160, Op.OP_EQUALVERIFY, Op.OP_CHECKSIG)
    return build_script(Op.OP_HASH160, dest.hash160, Op.OP_EQUAL)


# --- output templates (Core: Solver in script/standard.cpp) --------------------------------------


class TxoutType(IntEnum):
    """Core: txnouttype, with Ravencoin's asset types."""

    TX_NONSTANDARD = 0
    TX_PUBKEY = 1
    TX_PUBKEYHASH = 2
    TX_SCRIPTHASH = 3
    TX_MULTISIG = 4
    TX_NULL_DATA = 5
    TX_WITNESS_V0_SCRIPTHASH = 6
    TX_WITNESS_V0_KEYHASH = 7
    TX_NEW_ASSET = 8
    TX_REISSUE_ASSET = 9
    TX_TRANSFER_ASSET = 10
    TX_RESTRICTED_ASSET_DATA = 11


def _push_data(op: ScriptOp) -> bytes | None:
    return op.data if op.opcode <= Op.OP_PUSHDATA4 else None


def _small_int(opcode: int) -> int | None:
    if opcode == Op.OP_0:
        return 0
    if Op.OP_1 <= opcode <= Op.OP_16:
        return decode_op_n(opcode)
    return None


def solver(script_pubkey: bytes) -> tuple[TxoutType, list[bytes]]:
    """Core: Solver. Returns the template type and its solutions (hashes, keys, m and n).

    Asset outputs solve to their asset type with the P2PKH hash of the prefix; anything that
    matches no template is TX_NONSTANDARD with no solutions.
    """
    script = script_pubkey
    if is_p2sh(script):
        return TxoutType.TX_SCRIPTHASH, [script[2:22]]
    asset = asset_script_info(script)
    if asset is not None:
        return TxoutType(int(asset[0])), [script[3:23]]
    program = witness_program(script)
    if program is not None:
        version, prog = program
        if version == 0 and len(prog) == 20:
            return TxoutType.TX_WITNESS_V0_KEYHASH, [prog]
        if version == 0 and len(prog) == 32:
            return TxoutType.TX_WITNESS_V0_SCRIPTHASH, [prog]
        return TxoutType.TX_NONSTANDARD, []
    # Provably unspendable data carriers: OP_RETURN or OP_RVN_ASSET, then pushes only.
    if script and script[0] == Op.OP_RETURN and is_push_only(script, 1):
        return TxoutType.TX_NULL_DATA, []
    if script and script[0] == Op.OP_AIPG_ASSET and is_push_only(script, 1):
        if len(script) >= 23 and script[1] != Op.OP_RESERVED:
            return TxoutType.TX_RESTRICTED_ASSET_DATA, [script[2:22]]
        return TxoutType.TX_RESTRICTED_ASSET_DATA, []
    try:
        ops = decode_script(script)
    except ScriptParseError:
        return TxoutType.TX_NONSTANDARD, []
    return _match_templates(ops)


def _match_templates(ops: list[ScriptOp]) -> tuple[TxoutType, list[bytes]]:
    # Pay to pubkey: <33..65-byte push> OP_CHECKSIG.
    if len(ops) == 2 and ops[1].opcode == Op.OP_CHECKSIG:
        key = _push_data(ops[0])
        if key is not None and 33 <= len(key) <= 65:
            return TxoutType.TX_PUBKEY, [key]
    # Pay to pubkey hash: OP_DUP OP_HASH160 <20-byte push> OP_EQUALVERIFY OP_CHECKSIG.
    if (len(ops) == 5 and ops[0].opcode == Op.OP_DUP and ops[1].opcode == Op.OP_HASH160
            and ops[3].opcode == Op.OP_EQUALVERIFY and ops[4].opcode == Op.OP_CHECKSIG):
        key_hash = _push_data(ops[2])
        if key_hash is not None and len(key_hash) == 20:
            return TxoutType.TX_PUBKEYHASH, [key_hash]
    # Bare multisig: OP_m <keys...> OP_n OP_CHECKMULTISIG with 1 <= m <= n == number of keys.
    if len(ops) >= 3 and ops[-1].opcode == Op.OP_CHECKMULTISIG:
        m = _small_int(ops[0].opcode)
        n = _small_int(ops[-2].opcode)
        keys = [_push_data(op) for op in ops[1:-2]]
        if (m is not None and n is not None and 1 <= m <= n == len(keys)
                and all(k is not None and 33 <= len(k) <= 65 for k in keys)):
            return TxoutType.TX_MULTISIG, [bytes((m,)), *(k for k in keys if k is not None), bytes((n,))]
    return TxoutType.TX_NONSTANDARD, []
