"""Script numbers: Core's CScriptNum decoding rules and CastToBool.

Owns the byte <-> integer rules that numeric opcodes, CHECKLOCKTIMEVERIFY and
CHECKSEQUENCEVERIFY apply to stack elements. It must never hold state: decoding errors
are raised as `ScriptNumError`, which the interpreter reports as SCRIPT_ERR_UNKNOWN_ERROR
exactly as Core's catch-all does for scriptnum_error.
"""

from __future__ import annotations

from aipgd.script.script import encode_script_num

__all__ = ["DEFAULT_MAX_NUM_SIZE", "ScriptNumError", "cast_to_bool", "decode_script_num", "encode_script_num"]

# Core: CScriptNum::nDefaultMaxNumSize. CLTV/CSV pass 5 to reach past 2**31.
DEFAULT_MAX_NUM_SIZE = 4


class ScriptNumError(ValueError):
    """Core: scriptnum_error (overflow or non-minimal encoding)."""


def decode_script_num(vch: bytes, require_minimal: bool, max_size: int = DEFAULT_MAX_NUM_SIZE) -> int:
    """Core: CScriptNum(vch, fRequireMinimal, nMaxNumSize): little-endian sign-magnitude."""
    n = len(vch)
    if n > max_size:
        raise ScriptNumError("script number overflow")
    if not n:
        return 0
    last = vch[-1]
    # A last byte of 0x00/0x80 is only allowed when the byte before needs its sign bit
    # free; otherwise the number could have been one byte shorter.
    if require_minimal and not (last & 0x7F) and (n == 1 or not (vch[-2] & 0x80)):
        raise ScriptNumError("non-minimally encoded script number")
    value = int.from_bytes(vch, "little")
    if last & 0x80:
        return -(value & ~(0x80 << (8 * (n - 1))))
    return value


def cast_to_bool(vch: bytes) -> bool:
    """Core: CastToBool. Any non-zero byte is true, except a lone sign bit (negative zero)."""
    if not vch:
        return False
    if vch[-1] & 0x7F:
        return True
    return vch.count(0, 0, len(vch) - 1) != len(vch) - 1
