"""Verifying a spend: scriptSig + scriptPubKey (+ P2SH, + witness) (Core: VerifyScript).

Owns the BIP16 redeem-script step, BIP141/143 witness program execution, CLEANSTACK and the
witness malleability rules, and witness sigop counting. It reports the outcome as a
`ScriptError` value (SCRIPT_ERR_OK on success) and must never raise for an invalid spend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from aipgd.script.checker import BaseSignatureChecker, TransactionSignatureChecker
from aipgd.script.errors import ScriptError, ScriptEvalError
from aipgd.script.flags import (
    SCRIPT_VERIFY_CLEANSTACK,
    SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_SIGPUSHONLY,
    SCRIPT_VERIFY_WITNESS,
    SIGVERSION_BASE,
    SIGVERSION_WITNESS_V0,
)
from aipgd.script.interpreter import eval_script
from aipgd.script.script import (
    MAX_SCRIPT_ELEMENT_SIZE,
    get_op,
    is_p2sh,
    is_push_only,
    push_data,
    sigop_count,
    witness_program,
)
from aipgd.script.scriptnum import cast_to_bool
from aipgd.script.templates import verify_template

_E = ScriptError


def verify_script(script_sig: bytes, script_pubkey: bytes, witness: Sequence[bytes], flags: int,
                  checker: BaseSignatureChecker) -> ScriptError:
    """Core: VerifyScript. Returns SCRIPT_ERR_OK when the spend is valid under `flags`."""
    # P2PKH and P2SH multisig spends whose signatures verify take a shortcut that makes the
    # same checks; anything else, invalid spends included, goes through the interpreter.
    # Only the plain checker: subclasses (the signature cache) verify their own way.
    if (type(checker) is TransactionSignatureChecker and not witness
            and verify_template(script_sig, script_pubkey, flags, checker.tx, checker.n_in, checker.txdata)):
        return _E.SCRIPT_ERR_OK
    try:
        _verify(script_sig, script_pubkey, witness, flags, checker)
    except ScriptEvalError as failure:
        return failure.error
    return _E.SCRIPT_ERR_OK


def _verify(script_sig: bytes, script_pubkey: bytes, witness: Sequence[bytes], flags: int,
            checker: BaseSignatureChecker) -> None:
    if flags & SCRIPT_VERIFY_SIGPUSHONLY and not is_push_only(script_sig):
        raise ScriptEvalError(_E.SCRIPT_ERR_SIG_PUSHONLY)
    had_witness = False
    stack: list[bytes] = []
    eval_script(stack, script_sig, flags, checker, SIGVERSION_BASE)
    p2sh = bool(flags & SCRIPT_VERIFY_P2SH) and is_p2sh(script_pubkey)
    stack_copy = list(stack) if p2sh else []
    eval_script(stack, script_pubkey, flags, checker, SIGVERSION_BASE)
    if not stack or not cast_to_bool(stack[-1]):
        raise ScriptEvalError(_E.SCRIPT_ERR_EVAL_FALSE)

    # Bare witness programs (BIP141).
    if flags & SCRIPT_VERIFY_WITNESS and 4 <= len(script_pubkey) <= 42:
        program = witness_program(script_pubkey)
        if program is not None:
            had_witness = True
            # The scriptSig must be exactly empty, or it could be malleated.
            if script_sig:
                raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_MALLEATED)
            _verify_witness_program(witness, program[0], program[1], flags, checker)
            # The real stack is not clean for witness programs; skip CLEANSTACK below.
            del stack[1:]

    # BIP16 pay-to-script-hash.
    if p2sh:
        if not is_push_only(script_sig):
            raise ScriptEvalError(_E.SCRIPT_ERR_SIG_PUSHONLY)
        stack = stack_copy
        # Cannot be empty: HASH160 <h> EQUAL over an empty stack failed above.
        redeem_script = stack.pop()
        eval_script(stack, redeem_script, flags, checker, SIGVERSION_BASE)
        if not stack or not cast_to_bool(stack[-1]):
            raise ScriptEvalError(_E.SCRIPT_ERR_EVAL_FALSE)
        if flags & SCRIPT_VERIFY_WITNESS:
            program = witness_program(redeem_script)
            if program is not None:
                had_witness = True
                # The scriptSig must be exactly one push of the redeem script.
                if script_sig != push_data(redeem_script):
                    raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_MALLEATED_P2SH)
                _verify_witness_program(witness, program[0], program[1], flags, checker)
                del stack[1:]

    # CLEANSTACK only after P2SH and witness evaluation; Core asserts P2SH and WITNESS with it.
    if flags & SCRIPT_VERIFY_CLEANSTACK:
        if not flags & SCRIPT_VERIFY_P2SH or not flags & SCRIPT_VERIFY_WITNESS:
            raise ValueError("CLEANSTACK requires the P2SH and WITNESS flags")
        if len(stack) != 1:
            raise ScriptEvalError(_E.SCRIPT_ERR_CLEANSTACK)

    if flags & SCRIPT_VERIFY_WITNESS:
        if not flags & SCRIPT_VERIFY_P2SH:
            raise ValueError("WITNESS requires the P2SH flag")
        if not had_witness and witness:
            raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_UNEXPECTED)


def _verify_witness_program(witness: Sequence[bytes], version: int, program: bytes, flags: int,
                            checker: BaseSignatureChecker) -> None:
    """Core: VerifyWitnessProgram (BIP141 v0: P2WPKH and P2WSH)."""
    if version == 0:
        if len(program) == 32:
            if not witness:
                raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_PROGRAM_WITNESS_EMPTY)
            script = witness[-1]
            stack = list(witness[:-1])
            if hashlib.sha256(script).digest() != program:
                raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH)
        elif len(program) == 20:
            if len(witness) != 2:
                raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH)
            script = b"\x76\xa9\x14" + program + b"\x88\xac"
            stack = list(witness)
        else:
            raise ScriptEvalError(_E.SCRIPT_ERR_WITNESS_PROGRAM_WRONG_LENGTH)
    elif flags & SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM:
        raise ScriptEvalError(_E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM)
    else:
        return  # higher versions succeed, for future soft forks

    for item in stack:
        if len(item) > MAX_SCRIPT_ELEMENT_SIZE:
            raise ScriptEvalError(_E.SCRIPT_ERR_PUSH_SIZE)
    eval_script(stack, script, flags, checker, SIGVERSION_WITNESS_V0)
    # Witness scripts implicitly require a clean stack.
    if len(stack) != 1 or not cast_to_bool(stack[-1]):
        raise ScriptEvalError(_E.SCRIPT_ERR_EVAL_FALSE)


def _witness_sigops(version: int, program: bytes, witness: Sequence[bytes]) -> int:
    if version == 0:
        if len(program) == 20:
            return 1
        if len(program) == 32 and witness:
            return sigop_count(witness[-1], True)
    return 0


def count_witness_sigops(script_sig: bytes, script_pubkey: bytes, witness: Sequence[bytes],
                         flags: int) -> int:
    """Core: CountWitnessSigOps — sigops of bare and P2SH-wrapped witness programs."""
    if not flags & SCRIPT_VERIFY_WITNESS:
        return 0
    program = witness_program(script_pubkey)
    if program is not None:
        return _witness_sigops(program[0], program[1], witness)
    if is_p2sh(script_pubkey) and is_push_only(script_sig):
        pc = 0
        data = b""
        while pc < len(script_sig):
            op = get_op(script_sig, pc)
            if op is None:
                break
            data = op[1] or b""
            pc = op[2]
        program = witness_program(data)
        if program is not None:
            return _witness_sigops(program[0], program[1], witness)
    return 0
