"""Standard destinations and their output scripts (Core: script/standard.cpp).

Owns `KeyID`/`ScriptID` and `script_for_destination` (P2PKH, P2SH). It must never
decode text: addresses live in `aipgd.core.address`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipgd.script.opcodes import Op
from aipgd.script.script import build_script


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
