"""Script text forms: Core's test/RPC notation (Core: ParseScript, ScriptToAsmStr).

Owns `script_from_asm` (the notation of the JSON test vectors and `-regtest` tools:
numbers, 0x-raw bytes, 'quoted' pushes, opcode names with or without OP_) and
`script_to_asm` for display. It must never be used to decide validity.
"""

from __future__ import annotations

import re

from aipgd.script.opcodes import Op
from aipgd.script.script import MAX_OPCODE, get_op, push_data, push_int
from aipgd.script.scriptnum import ScriptNumError, decode_script_num

# Core: ParseScript's mapOpNames — OP_RESERVED and everything from OP_NOP to OP_NOP10.
_OP_NAMES: dict[str, int] = {}
for _op in Op:
    if (_op == Op.OP_RESERVED or Op.OP_NOP <= _op <= MAX_OPCODE) and _op.name:
        _OP_NAMES[_op.name] = _op.value
        _OP_NAMES[_op.name[3:]] = _op.value
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_NUMBER = re.compile(r"^-?[0-9]*$")


def script_from_asm(text: str) -> bytes:
    """Core: ParseScript. Raises ValueError on a word it does not understand."""
    out = bytearray()
    for word in text.split():
        if _NUMBER.match(word):
            out += push_int(int(word) if word.strip("-") else 0)
        elif word.startswith("0x") and len(word) > 2 and _HEX.match(word[2:]):
            out += bytes.fromhex(word[2:])
        elif len(word) >= 2 and word[0] == "'" and word[-1] == "'":
            out += push_data(word[1:-1].encode())
        elif word in _OP_NAMES:
            out.append(_OP_NAMES[word])
        else:
            raise ValueError(f"script parse error at {word!r}")
    return bytes(out)


def _op_name(opcode: int) -> str:
    if opcode == 0:
        return "0"
    if opcode == Op.OP_1NEGATE:
        return "-1"
    if Op.OP_1 <= opcode <= Op.OP_16:
        return str(opcode - (Op.OP_1 - 1))
    try:
        return Op(opcode).name
    except ValueError:
        return "OP_UNKNOWN"


def script_to_asm(script: bytes) -> str:
    """Core: ScriptToAsmStr (without sighash decoding): small pushes as numbers, others as hex."""
    words: list[str] = []
    pc = 0
    while pc < len(script):
        op = get_op(script, pc)
        if op is None:
            words.append("[error]")
            break
        opcode, data, pc = op
        if opcode <= Op.OP_PUSHDATA4 and data is not None:
            if len(data) <= 4:
                try:
                    words.append(str(decode_script_num(data, False)))
                    continue
                except ScriptNumError:  # pragma: no cover - 4 bytes always decode
                    pass
            words.append(data.hex())
        else:
            words.append(_op_name(opcode))
            if opcode == Op.OP_AIPG_ASSET and data:
                words.append(data.hex())
    return " ".join(words)
