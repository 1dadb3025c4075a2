"""The script interpreter (Core: EvalScript in script/interpreter.cpp, 0.15 rules + Ravencoin).

Owns the execution of one script over a stack: every opcode, the disabled ones, the size,
op-count and stack limits, and the flag-dependent rules (MINIMALDATA, MINIMALIF, NULLDUMMY,
NULLFAIL, CLTV, CSV, upgradable NOPs). Failures raise `ScriptEvalError` carrying Core's error.
It must never touch chain state; signatures and lock times go through the checker.
"""

from __future__ import annotations

import hashlib

from aipgd.core.hashes import hash160, ripemd160, sha256d
from aipgd.script.checker import SEQUENCE_LOCKTIME_DISABLE_FLAG, BaseSignatureChecker
from aipgd.script.errors import ScriptError, ScriptEvalError
from aipgd.script.flags import (
    SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY,
    SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS,
    SCRIPT_VERIFY_MINIMALDATA,
    SCRIPT_VERIFY_MINIMALIF,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_NULLFAIL,
    SIGVERSION_BASE,
    SIGVERSION_WITNESS_V0,
)
from aipgd.script.script import (
    MAX_OPS_PER_SCRIPT,
    MAX_PUBKEYS_PER_MULTISIG,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SCRIPT_SIZE,
    MAX_STACK_SIZE,
    encode_script_num,
    find_and_delete,
    push_data,
)
from aipgd.script.scriptnum import ScriptNumError, cast_to_bool, decode_script_num
from aipgd.script.signature import check_pubkey_encoding, check_signature_encoding

Stack = list[bytes]



_E = ScriptError
_TRUE = b"\x01"
_FALSE = b""

# Core: the opcodes disabled since 2010; they fail even in an unexecuted branch.
_DISABLED = frozenset((0x7E, 0x7F, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x8D, 0x8E,
                       0x95, 0x96, 0x97, 0x98, 0x99))
# OP_NOP1, OP_NOP4..OP_NOP10: reserved for soft forks.
_UPGRADABLE_NOPS = frozenset((0xB0, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9))
_UNARY_NUM = frozenset((0x8B, 0x8C, 0x8F, 0x90, 0x91, 0x92))
_BINARY_NUM = frozenset(range(0x93, 0x95)) | frozenset(range(0x9A, 0xA5))
_HASHES = frozenset(range(0xA6, 0xAB))


def check_minimal_push(data: bytes, opcode: int) -> bool:
    """Core: CheckMinimalPush — the push must use the shortest encoding (BIP62 rule 3)."""
    n = len(data)
    if n == 0:
        return opcode == 0x00
    if n == 1 and 1 <= data[0] <= 16:
        return opcode == 0x51 + data[0] - 1
    if n == 1 and data[0] == 0x81:
        return opcode == 0x4F
    if n <= 75:
        return opcode == n
    if n <= 255:
        return opcode == 0x4C
    if n <= 65535:
        return opcode == 0x4D
    return True


def _fail(error: ScriptError) -> ScriptEvalError:
    return ScriptEvalError(error)


def eval_script(stack: Stack, script: bytes, flags: int, checker: BaseSignatureChecker,
                sigversion: int) -> None:
    """Core: EvalScript. Mutates `stack`; raises ScriptEvalError on any failure.

    A malformed number (overflow, non-minimal under MINIMALDATA) raises SCRIPT_ERR_UNKNOWN_ERROR,
    which is what Core's catch-all reports for scriptnum_error.
    """
    if len(script) > MAX_SCRIPT_SIZE:
        raise _fail(_E.SCRIPT_ERR_SCRIPT_SIZE)
    try:
        _run(stack, script, flags, checker, sigversion)
    except ScriptNumError:
        raise _fail(_E.SCRIPT_ERR_UNKNOWN_ERROR) from None


def _run(stack: Stack, script: bytes, flags: int, checker: BaseSignatureChecker, sigversion: int) -> None:
    end = len(script)
    pc = 0
    begin_code_hash = 0
    vf_exec: list[bool] = []
    n_false = 0  # how many entries of vf_exec are False: executing iff zero
    altstack: Stack = []
    op_count = 0
    minimal = bool(flags & SCRIPT_VERIFY_MINIMALDATA)
    append = stack.append
    pop = stack.pop

    while pc < end:
        # --- read the instruction (Core: GetOp2) ------------------------------------------
        opcode = script[pc]
        pc += 1
        if opcode <= 0x4E:
            if opcode < 0x4C:
                size = opcode
            else:
                width = 1 if opcode == 0x4C else 2 if opcode == 0x4D else 4
                if end - pc < width:
                    raise _fail(_E.SCRIPT_ERR_BAD_OPCODE)
                size = int.from_bytes(script[pc:pc + width], "little")
                pc += width
            if end - pc < size:
                raise _fail(_E.SCRIPT_ERR_BAD_OPCODE)
            if size > MAX_SCRIPT_ELEMENT_SIZE:
                raise _fail(_E.SCRIPT_ERR_PUSH_SIZE)
            if not n_false:
                data = script[pc:pc + size]
                if minimal and not check_minimal_push(data, opcode):
                    raise _fail(_E.SCRIPT_ERR_MINIMALDATA)
                append(data)
                if len(stack) + len(altstack) > MAX_STACK_SIZE:
                    raise _fail(_E.SCRIPT_ERR_STACK_SIZE)
            pc += size
            continue
        if opcode == 0xC0:
            # Ravencoin: OP_RVN_ASSET swallows the rest of the script as its payload, which
            # counts against the push size limit and is otherwise a no-op.
            if end - pc > MAX_SCRIPT_ELEMENT_SIZE:
                raise _fail(_E.SCRIPT_ERR_PUSH_SIZE)
            pc = end
        if opcode > 0x60:
            op_count += 1
            if op_count > MAX_OPS_PER_SCRIPT:
                raise _fail(_E.SCRIPT_ERR_OP_COUNT)
        if opcode in _DISABLED:
            raise _fail(_E.SCRIPT_ERR_DISABLED_OPCODE)
        f_exec = not n_false
        if not f_exec and not 0x63 <= opcode <= 0x68:
            continue

        # --- execute ---------------------------------------------------------------------
        if opcode == 0xAC or opcode == 0xAD:  # OP_CHECKSIG, OP_CHECKSIGVERIFY
            if len(stack) < 2:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            sig = stack[-2]
            pubkey = stack[-1]
            script_code = script[begin_code_hash:]
            # Pre-segwit, a signature cannot sign itself: drop it from the scriptCode.
            if sigversion == SIGVERSION_BASE:
                script_code = find_and_delete(script_code, push_data(sig))
            check_signature_encoding(sig, flags)
            check_pubkey_encoding(pubkey, flags, sigversion)
            ok = checker.check_sig(sig, pubkey, script_code, sigversion)
            if not ok and flags & SCRIPT_VERIFY_NULLFAIL and sig:
                raise _fail(_E.SCRIPT_ERR_SIG_NULLFAIL)
            pop()
            pop()
            if opcode == 0xAD:
                if not ok:
                    raise _fail(_E.SCRIPT_ERR_CHECKSIGVERIFY)
            else:
                append(_TRUE if ok else _FALSE)
        elif opcode == 0x76:  # OP_DUP
            if not stack:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            append(stack[-1])
        elif opcode in _HASHES:
            if not stack:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            vch = pop()
            if opcode == 0xA9:
                append(hash160(vch))
            elif opcode == 0xA8:
                append(hashlib.sha256(vch).digest())
            elif opcode == 0xAA:
                append(sha256d(vch))
            elif opcode == 0xA6:
                append(ripemd160(vch))
            else:
                append(hashlib.sha1(vch).digest())
        elif opcode == 0x87 or opcode == 0x88:  # OP_EQUAL, OP_EQUALVERIFY
            if len(stack) < 2:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            equal = pop() == pop()
            if opcode == 0x88:
                if not equal:
                    append(_FALSE)
                    raise _fail(_E.SCRIPT_ERR_EQUALVERIFY)
            else:
                append(_TRUE if equal else _FALSE)
        elif 0x4F <= opcode <= 0x60 and opcode != 0x50:  # OP_1NEGATE, OP_1..OP_16
            append(encode_script_num(opcode - 0x50))
        elif 0x63 <= opcode <= 0x68:  # flow control
            if opcode == 0x63 or opcode == 0x64:  # OP_IF, OP_NOTIF
                value = False
                if f_exec:
                    if not stack:
                        raise _fail(_E.SCRIPT_ERR_UNBALANCED_CONDITIONAL)
                    vch = stack[-1]
                    if (sigversion == SIGVERSION_WITNESS_V0 and flags & SCRIPT_VERIFY_MINIMALIF
                            and (len(vch) > 1 or (len(vch) == 1 and vch[0] != 1))):
                        raise _fail(_E.SCRIPT_ERR_MINIMALIF)
                    value = cast_to_bool(vch)
                    if opcode == 0x64:
                        value = not value
                    pop()
                vf_exec.append(value)
                if not value:
                    n_false += 1
            elif opcode == 0x67:  # OP_ELSE
                if not vf_exec:
                    raise _fail(_E.SCRIPT_ERR_UNBALANCED_CONDITIONAL)
                n_false += 1 if vf_exec[-1] else -1
                vf_exec[-1] = not vf_exec[-1]
            elif opcode == 0x68:  # OP_ENDIF
                if not vf_exec:
                    raise _fail(_E.SCRIPT_ERR_UNBALANCED_CONDITIONAL)
                if not vf_exec.pop():
                    n_false -= 1
            else:  # OP_VERIF, OP_VERNOTIF: invalid even when not executed
                raise _fail(_E.SCRIPT_ERR_BAD_OPCODE)
        elif opcode == 0xAE or opcode == 0xAF:  # OP_CHECKMULTISIG(VERIFY)
            op_count = _check_multisig(stack, script, begin_code_hash, flags, checker, sigversion,
                                       op_count, opcode)
        elif opcode in _UNARY_NUM:
            if not stack:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            bn = decode_script_num(stack[-1], minimal)
            if opcode == 0x8B:
                bn += 1
            elif opcode == 0x8C:
                bn -= 1
            elif opcode == 0x8F:
                bn = -bn
            elif opcode == 0x90:
                bn = abs(bn)
            elif opcode == 0x91:
                bn = int(bn == 0)
            else:
                bn = int(bn != 0)
            stack[-1] = encode_script_num(bn)
        elif opcode in _BINARY_NUM:
            if len(stack) < 2:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            a = decode_script_num(stack[-2], minimal)
            b = decode_script_num(stack[-1], minimal)
            pop()
            stack[-1] = encode_script_num(_binary_num(opcode, a, b))
            if opcode == 0x9D:  # OP_NUMEQUALVERIFY
                if not cast_to_bool(stack[-1]):
                    raise _fail(_E.SCRIPT_ERR_NUMEQUALVERIFY)
                pop()
        elif opcode == 0x69:  # OP_VERIFY
            if not stack:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            if not cast_to_bool(stack[-1]):
                raise _fail(_E.SCRIPT_ERR_VERIFY)
            pop()
        elif opcode == 0x61 or opcode == 0xC0:  # OP_NOP, OP_RVN_ASSET
            pass
        elif opcode == 0xB1:  # OP_CHECKLOCKTIMEVERIFY (BIP65)
            if not flags & SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY:
                if flags & SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS:
                    raise _fail(_E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS)
            else:
                if not stack:
                    raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
                # 5-byte operands so that lock times past 2038 fit (nLockTime is uint32).
                lock_time = decode_script_num(stack[-1], minimal, 5)
                if lock_time < 0:
                    raise _fail(_E.SCRIPT_ERR_NEGATIVE_LOCKTIME)
                if not checker.check_lock_time(lock_time):
                    raise _fail(_E.SCRIPT_ERR_UNSATISFIED_LOCKTIME)
        elif opcode == 0xB2:  # OP_CHECKSEQUENCEVERIFY (BIP112)
            if not flags & SCRIPT_VERIFY_CHECKSEQUENCEVERIFY:
                if flags & SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS:
                    raise _fail(_E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS)
            else:
                if not stack:
                    raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
                sequence = decode_script_num(stack[-1], minimal, 5)
                if sequence < 0:
                    raise _fail(_E.SCRIPT_ERR_NEGATIVE_LOCKTIME)
                # The disable flag keeps CSV a NOP for future soft forks.
                if not sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG and not checker.check_sequence(sequence):
                    raise _fail(_E.SCRIPT_ERR_UNSATISFIED_LOCKTIME)
        elif opcode in _UPGRADABLE_NOPS:
            if flags & SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS:
                raise _fail(_E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS)
        elif opcode == 0x6A:  # OP_RETURN
            raise _fail(_E.SCRIPT_ERR_OP_RETURN)
        elif opcode == 0xAB:  # OP_CODESEPARATOR
            begin_code_hash = pc
        elif 0x6B <= opcode <= 0x7D or opcode == 0x82:
            _stack_op(opcode, stack, altstack, minimal)
        elif opcode == 0xA5:  # OP_WITHIN
            if len(stack) < 3:
                raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
            x = decode_script_num(stack[-3], minimal)
            lo = decode_script_num(stack[-2], minimal)
            hi = decode_script_num(stack[-1], minimal)
            del stack[-3:]
            append(_TRUE if lo <= x < hi else _FALSE)
        else:
            # OP_RESERVED, OP_VER, OP_RESERVED1/2, and everything above OP_NOP10 but OP_RVN_ASSET.
            raise _fail(_E.SCRIPT_ERR_BAD_OPCODE)

        if len(stack) + len(altstack) > MAX_STACK_SIZE:
            raise _fail(_E.SCRIPT_ERR_STACK_SIZE)

    if vf_exec:
        raise _fail(_E.SCRIPT_ERR_UNBALANCED_CONDITIONAL)


def _binary_num(opcode: int, a: int, b: int) -> int:
    if opcode == 0x93:
        return a + b
    if opcode == 0x94:
        return a - b
    if opcode == 0x9A:
        return int(a != 0 and b != 0)
    if opcode == 0x9B:
        return int(a != 0 or b != 0)
    if opcode == 0x9C or opcode == 0x9D:
        return int(a == b)
    if opcode == 0x9E:
        return int(a != b)
    if opcode == 0x9F:
        return int(a < b)
    if opcode == 0xA0:
        return int(a > b)
    if opcode == 0xA1:
        return int(a <= b)
    if opcode == 0xA2:
        return int(a >= b)
    if opcode == 0xA3:
        return min(a, b)
    return max(a, b)  # OP_MAX


def _stack_op(opcode: int, stack: Stack, altstack: Stack, minimal: bool) -> None:
    """The stack-shuffling opcodes OP_TOALTSTACK..OP_TUCK and OP_SIZE."""
    n = len(stack)
    need = _STACK_NEEDS[opcode]
    if n < need:
        raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
    if opcode == 0x6B:  # OP_TOALTSTACK
        altstack.append(stack.pop())
    elif opcode == 0x6C:  # OP_FROMALTSTACK
        if not altstack:
            raise _fail(_E.SCRIPT_ERR_INVALID_ALTSTACK_OPERATION)
        stack.append(altstack.pop())
    elif opcode == 0x6D:  # OP_2DROP
        del stack[-2:]
    elif opcode == 0x6E:  # OP_2DUP
        stack.extend(stack[-2:])
    elif opcode == 0x6F:  # OP_3DUP
        stack.extend(stack[-3:])
    elif opcode == 0x70:  # OP_2OVER
        stack.extend(stack[-4:-2])
    elif opcode == 0x71:  # OP_2ROT
        moved = stack[-6:-4]
        del stack[-6:-4]
        stack.extend(moved)
    elif opcode == 0x72:  # OP_2SWAP
        stack[-4], stack[-3], stack[-2], stack[-1] = stack[-2], stack[-1], stack[-4], stack[-3]
    elif opcode == 0x73:  # OP_IFDUP
        if cast_to_bool(stack[-1]):
            stack.append(stack[-1])
    elif opcode == 0x74:  # OP_DEPTH
        stack.append(encode_script_num(n))
    elif opcode == 0x75:  # OP_DROP
        stack.pop()
    elif opcode == 0x77:  # OP_NIP
        del stack[-2]
    elif opcode == 0x78:  # OP_OVER
        stack.append(stack[-2])
    elif opcode == 0x79 or opcode == 0x7A:  # OP_PICK, OP_ROLL
        k = decode_script_num(stack[-1], minimal)
        stack.pop()
        if k < 0 or k >= len(stack):
            raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
        vch = stack[-k - 1]
        if opcode == 0x7A:
            del stack[-k - 1]
        stack.append(vch)
    elif opcode == 0x7B:  # OP_ROT
        stack[-3], stack[-2], stack[-1] = stack[-2], stack[-1], stack[-3]
    elif opcode == 0x7C:  # OP_SWAP
        stack[-2], stack[-1] = stack[-1], stack[-2]
    elif opcode == 0x7D:  # OP_TUCK
        stack.insert(-2, stack[-1])
    else:  # OP_SIZE
        stack.append(encode_script_num(len(stack[-1])))


_STACK_NEEDS = {
    0x6B: 1, 0x6C: 0, 0x6D: 2, 0x6E: 2, 0x6F: 3, 0x70: 4, 0x71: 6, 0x72: 4, 0x73: 1, 0x74: 0,
    0x75: 1, 0x76: 1, 0x77: 2, 0x78: 2, 0x79: 2, 0x7A: 2, 0x7B: 3, 0x7C: 2, 0x7D: 2, 0x82: 1,
}


def _check_multisig(stack: Stack, script: bytes, begin_code_hash: int, flags: int,
                    checker: BaseSignatureChecker, sigversion: int, op_count: int, opcode: int) -> int:
    """Core: OP_CHECKMULTISIG(VERIFY), including the extra dummy element it consumes.

    Returns the updated op count (each public key counts as an op).
    """
    minimal = bool(flags & SCRIPT_VERIFY_MINIMALDATA)
    i = 1
    if len(stack) < i:
        raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
    n_keys = decode_script_num(stack[-i], minimal)
    if n_keys < 0 or n_keys > MAX_PUBKEYS_PER_MULTISIG:
        raise _fail(_E.SCRIPT_ERR_PUBKEY_COUNT)
    op_count += n_keys
    if op_count > MAX_OPS_PER_SCRIPT:
        raise _fail(_E.SCRIPT_ERR_OP_COUNT)
    i += 1
    ikey = i
    # ikey2: the last non-signature item (1 = top); NULLFAIL cleanup runs down to it.
    ikey2 = n_keys + 2
    i += n_keys
    if len(stack) < i:
        raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
    n_sigs = decode_script_num(stack[-i], minimal)
    if n_sigs < 0 or n_sigs > n_keys:
        raise _fail(_E.SCRIPT_ERR_SIG_COUNT)
    i += 1
    isig = i
    i += n_sigs
    if len(stack) < i:
        raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)

    script_code = script[begin_code_hash:]
    if sigversion == SIGVERSION_BASE:
        for k in range(n_sigs):
            script_code = find_and_delete(script_code, push_data(stack[-isig - k]))

    success = True
    if checker.defers_checks and n_sigs and checker.defer_multisig(
            [stack[-isig - k] for k in range(n_sigs)], [stack[-ikey - k] for k in range(n_keys)],
            script_code, sigversion, flags):
        n_sigs = 0  # recorded; the batch verifier answers the loop and re-runs this input if it fails
    while success and n_sigs > 0:
        sig = stack[-isig]
        pubkey = stack[-ikey]
        # The order of these checks is observable through CHECKMULTISIG NOT with STRICTENC.
        check_signature_encoding(sig, flags)
        check_pubkey_encoding(pubkey, flags, sigversion)
        if checker.check_sig(sig, pubkey, script_code, sigversion):
            isig += 1
            n_sigs -= 1
        ikey += 1
        n_keys -= 1
        # More signatures left than keys: too many failed, stop early.
        if n_sigs > n_keys:
            success = False

    # Pop the arguments; under NULLFAIL every signature of a failed check must be empty.
    while i > 1:
        i -= 1
        if not success and flags & SCRIPT_VERIFY_NULLFAIL and not ikey2 and stack[-1]:
            raise _fail(_E.SCRIPT_ERR_SIG_NULLFAIL)
        if ikey2 > 0:
            ikey2 -= 1
        stack.pop()

    # The historical bug: one extra element is consumed, unchecked unless NULLDUMMY (BIP147).
    if not stack:
        raise _fail(_E.SCRIPT_ERR_INVALID_STACK_OPERATION)
    if flags & SCRIPT_VERIFY_NULLDUMMY and stack[-1]:
        raise _fail(_E.SCRIPT_ERR_SIG_NULLDUMMY)
    stack.pop()
    if opcode == 0xAF:
        if not success:
            stack.append(_FALSE)
            raise _fail(_E.SCRIPT_ERR_CHECKMULTISIGVERIFY)
    else:
        stack.append(_TRUE if success else _FALSE)
    return op_count
