"""Building scripts from opcodes and data pushes (Core: CScript operator<<).

Owns the minimal push encoding and CScriptNum's number encoding. It must never parse
or execute scripts for validity: that belongs to the interpreter.
"""

from __future__ import annotations

import struct

from aipgd.script.opcodes import Op

ScriptItem = Op | int | bytes


def encode_script_num(n: int) -> bytes:
    """Core: CScriptNum::serialize, little-endian sign-magnitude with minimal length."""
    if n == 0:
        return b""
    negative = n < 0
    magnitude = -n if negative else n
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def push_data(data: bytes) -> bytes:
    """The push opcode for `data` plus the data (Core: CScript::operator<<(vector))."""
    n = len(data)
    if n < Op.OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((Op.OP_PUSHDATA1, n)) + data
    if n <= 0xFFFF:
        return bytes((Op.OP_PUSHDATA2,)) + struct.pack("<H", n) + data
    return bytes((Op.OP_PUSHDATA4,)) + struct.pack("<I", n) + data


def push_int(n: int) -> bytes:
    """Core: CScript::push_int64 — small numbers as OP_N, others as a CScriptNum push."""
    if n == -1 or 1 <= n <= 16:
        return bytes((n + (Op.OP_1 - 1),))
    if n == 0:
        return bytes((Op.OP_0,))
    return push_data(encode_script_num(n))


def build_script(*items: ScriptItem) -> bytes:
    """Concatenate opcodes (`Op`), integers (pushed as numbers) and byte strings (pushed as data)."""
    out = bytearray()
    for item in items:
        if isinstance(item, Op):
            out.append(item)
        elif isinstance(item, int):
            out += push_int(item)
        elif isinstance(item, bytes):
            out += push_data(item)
        else:
            raise TypeError(f"cannot put {type(item).__name__} in a script")
    return bytes(out)
