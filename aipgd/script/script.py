"""Scripts as bytes: building (Core: CScript operator<<) and walking them (Core: CScript::GetOp).

Owns the push encodings, CScriptNum's number encoding, the op decoder with Ravencoin's
OP_RVN_ASSET rule, and the byte-level predicates Core keeps on CScript (push-only, P2SH,
witness program, sigop counting, FindAndDelete). It must never execute scripts: that
belongs to the interpreter.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from aipgd.script.opcodes import Op

ScriptItem = Op | int | bytes

# Core: script.h limits.
MAX_SCRIPT_ELEMENT_SIZE = 520
MAX_OPS_PER_SCRIPT = 201
MAX_PUBKEYS_PER_MULTISIG = 20
MAX_SCRIPT_SIZE = 10000
MAX_STACK_SIZE = 1000
# Below this nLockTime is a block height, at or above a UNIX time.
LOCKTIME_THRESHOLD = 500_000_000
MAX_OPCODE = Op.OP_NOP10

_OP_PUSHDATA1 = 0x4C
_OP_PUSHDATA2 = 0x4D
_OP_PUSHDATA4 = 0x4E
_OP_1 = 0x51
_OP_16 = 0x60
_OP_ASSET = 0xC0


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


# --- walking scripts (Core: CScript::GetOp2) ---------------------------------------------------


class ScriptParseError(ValueError):
    """A push runs past the end of the script (Core: GetOp returns false)."""


class ScriptOp(NamedTuple):
    """One decoded op. `data` is the pushed bytes for push opcodes, the asset payload for
    OP_RVN_ASSET, and None for every other opcode."""

    opcode: int
    data: bytes | None


def get_op(script: bytes, pc: int) -> tuple[int, bytes | None, int] | None:
    """Decode the op at `pc`: (opcode, data, next pc), or None when the script is truncated.

    Ravencoin rule (Core: GetOp2): everything after OP_RVN_ASSET is data, not opcodes, so the
    op swallows the rest of the script. The interpreter, sigop counting, FindAndDelete and
    the sighash scriptCode all see scripts through this rule.
    """
    end = len(script)
    if pc >= end:
        return None
    opcode = script[pc]
    pc += 1
    if opcode <= _OP_PUSHDATA4:
        if opcode < _OP_PUSHDATA1:
            size = opcode
        elif opcode == _OP_PUSHDATA1:
            if end - pc < 1:
                return None
            size = script[pc]
            pc += 1
        elif opcode == _OP_PUSHDATA2:
            if end - pc < 2:
                return None
            size = script[pc] | (script[pc + 1] << 8)
            pc += 2
        else:
            if end - pc < 4:
                return None
            size = int.from_bytes(script[pc:pc + 4], "little")
            pc += 4
        if end - pc < size:
            return None
        return opcode, script[pc:pc + size], pc + size
    if opcode == _OP_ASSET:
        return opcode, script[pc:], end
    return opcode, None, pc


def iter_ops(script: bytes, start: int = 0) -> Iterator[ScriptOp]:
    """Yield the ops of `script`; raises ScriptParseError at a truncated push."""
    pc = start
    end = len(script)
    while pc < end:
        op = get_op(script, pc)
        if op is None:
            raise ScriptParseError(f"truncated push at offset {pc}")
        yield ScriptOp(op[0], op[1])
        pc = op[2]


def decode_script(script: bytes) -> list[ScriptOp]:
    return list(iter_ops(script))


def encode_ops(ops: list[ScriptOp]) -> bytes:
    """Re-encode decoded ops byte for byte (the push opcode chosen is kept, minimal or not)."""
    out = bytearray()
    for opcode, data in ops:
        out.append(opcode)
        if opcode <= _OP_PUSHDATA4:
            assert data is not None
            n = len(data)
            if opcode == _OP_PUSHDATA1:
                out.append(n)
            elif opcode == _OP_PUSHDATA2:
                out += struct.pack("<H", n)
            elif opcode == _OP_PUSHDATA4:
                out += struct.pack("<I", n)
            out += data
        elif opcode == _OP_ASSET and data:
            out += data
    return bytes(out)


def decode_op_n(opcode: int) -> int:
    """Core: CScript::DecodeOP_N for OP_0 and OP_1..OP_16."""
    if opcode == 0:
        return 0
    if not _OP_1 <= opcode <= _OP_16:
        raise ValueError(f"opcode {opcode:#x} is not a small integer")
    return opcode - (_OP_1 - 1)


def is_push_only(script: bytes, start: int = 0) -> bool:
    """Core: CScript::IsPushOnly. OP_RESERVED counts as a push here (it fails when run)."""
    pc = start
    end = len(script)
    while pc < end:
        op = get_op(script, pc)
        if op is None or op[0] > _OP_16:
            return False
        pc = op[2]
    return True


def is_p2pkh(script: bytes) -> bool:
    return (len(script) == 25 and script[0] == Op.OP_DUP and script[1] == Op.OP_HASH160
            and script[2] == 0x14 and script[23] == Op.OP_EQUALVERIFY and script[24] == Op.OP_CHECKSIG)


def is_p2sh(script: bytes) -> bool:
    """Core: IsPayToScriptHash; exactly 23 bytes (an asset-carrying P2SH is not BIP16 P2SH)."""
    return (len(script) == 23 and script[0] == Op.OP_HASH160 and script[1] == 0x14
            and script[22] == Op.OP_EQUAL)


def is_p2wsh(script: bytes) -> bool:
    return len(script) == 34 and script[0] == 0 and script[1] == 0x20


def witness_program(script: bytes) -> tuple[int, bytes] | None:
    """Core: IsWitnessProgram (BIP141): a version op then one 2..40-byte direct push."""
    n = len(script)
    if n < 4 or n > 42:
        return None
    v = script[0]
    if v != 0 and not _OP_1 <= v <= _OP_16:
        return None
    if script[1] + 2 != n:
        return None
    return (0 if v == 0 else v - (_OP_1 - 1)), script[2:]


def find_and_delete(script: bytes, pattern: bytes) -> bytes:
    """Core: CScript::FindAndDelete — remove `pattern` wherever it starts at an op boundary."""
    if not pattern or pattern not in script:
        return script
    out = bytearray()
    plen = len(pattern)
    end = len(script)
    pc = pc2 = 0
    found = False
    while True:
        out += script[pc2:pc]
        while end - pc >= plen and script[pc:pc + plen] == pattern:
            pc += plen
            found = True
        pc2 = pc
        op = get_op(script, pc)
        if op is None:
            break
        pc = op[2]
    if not found:
        return script
    out += script[pc2:]
    return bytes(out)


_P2PKH_HEAD = bytes((0x76, 0xA9, 0x14))
_P2PKH_TAIL = bytes((0x88, 0xAC))
_CHECKSIG_OPS = frozenset((0xAC, 0xAD))  # OP_CHECKSIG, OP_CHECKSIGVERIFY
_MULTISIG_OPS = frozenset((0xAE, 0xAF))  # OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY


def sigop_count(script: bytes, accurate: bool) -> int:
    """Core: CScript::GetSigOpCount(fAccurate); a bare CHECKMULTISIG counts 20.

    A byte-level scan of the common case (direct pushes and plain opcodes) with the exact
    `get_op` walk, `sigop_count_generic`, for any script holding OP_PUSHDATA1/2/4 or
    OP_RVN_ASSET, whose decoding rules the scan leaves to it.
    """
    end = len(script)
    if end == 25 and script[23:] == _P2PKH_TAIL and script[:3] == _P2PKH_HEAD:
        return 1  # P2PKH: OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG
    n = 0
    last = 0xFF  # OP_INVALIDOPCODE
    pc = 0
    while pc < end:
        opcode = script[pc]
        if opcode < _OP_PUSHDATA1:
            pc += 1 + opcode
            if pc > end:
                break  # truncated push: get_op fails and the count stops
        elif opcode <= _OP_PUSHDATA4 or opcode == _OP_ASSET:
            return sigop_count_generic(script, accurate)
        else:
            pc += 1
            if opcode in _CHECKSIG_OPS:
                n += 1
            elif opcode in _MULTISIG_OPS:
                if accurate and _OP_1 <= last <= _OP_16:
                    n += last - (_OP_1 - 1)
                else:
                    n += MAX_PUBKEYS_PER_MULTISIG
        last = opcode
    return n


def sigop_count_generic(script: bytes, accurate: bool) -> int:
    """Core: CScript::GetSigOpCount(fAccurate), op by op through `get_op`."""
    n = 0
    last = Op.OP_INVALIDOPCODE.value
    pc = 0
    end = len(script)
    while pc < end:
        op = get_op(script, pc)
        if op is None:
            break
        opcode = op[0]
        pc = op[2]
        if opcode == Op.OP_CHECKSIG or opcode == Op.OP_CHECKSIGVERIFY:
            n += 1
        elif opcode == Op.OP_CHECKMULTISIG or opcode == Op.OP_CHECKMULTISIGVERIFY:
            if accurate and _OP_1 <= last <= _OP_16:
                n += last - (_OP_1 - 1)
            else:
                n += MAX_PUBKEYS_PER_MULTISIG
        last = opcode
    return n


def p2sh_sigop_count(script_pubkey: bytes, script_sig: bytes) -> int:
    """Core: CScript::GetSigOpCount(scriptSig): count the redeem script a P2SH spend reveals."""
    if not is_p2sh(script_pubkey):
        return sigop_count(script_pubkey, True)
    pc = 0
    end = len(script_sig)
    data: bytes | None = None
    while pc < end:
        op = get_op(script_sig, pc)
        if op is None or op[0] > _OP_16:
            return 0
        data = op[1]
        pc = op[2]
    return sigop_count(data or b"", True)
