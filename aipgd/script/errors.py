"""Script verification outcomes with Core's names (Core: script/script_error.h/.cpp).

Owns `ScriptError` (SCRIPT_ERR_* with Core's numbering and messages) and `ScriptEvalError`, the
exception the interpreter raises internally. Callers see errors as values; nothing here
decides validity on its own.
"""

from __future__ import annotations

from enum import IntEnum


class ScriptError(IntEnum):
    SCRIPT_ERR_OK = 0
    SCRIPT_ERR_UNKNOWN_ERROR = 1
    SCRIPT_ERR_EVAL_FALSE = 2
    SCRIPT_ERR_OP_RETURN = 3
    # Max sizes
    SCRIPT_ERR_SCRIPT_SIZE = 4
    SCRIPT_ERR_PUSH_SIZE = 5
    SCRIPT_ERR_OP_COUNT = 6
    SCRIPT_ERR_STACK_SIZE = 7
    SCRIPT_ERR_SIG_COUNT = 8
    SCRIPT_ERR_PUBKEY_COUNT = 9
    # Failed verify operations
    SCRIPT_ERR_VERIFY = 10
    SCRIPT_ERR_EQUALVERIFY = 11
    SCRIPT_ERR_CHECKMULTISIGVERIFY = 12
    SCRIPT_ERR_CHECKSIGVERIFY = 13
    SCRIPT_ERR_NUMEQUALVERIFY = 14
    # Logical/format/canonical errors
    SCRIPT_ERR_BAD_OPCODE = 15
    SCRIPT_ERR_DISABLED_OPCODE = 16
    SCRIPT_ERR_INVALID_STACK_OPERATION = 17
    SCRIPT_ERR_INVALID_ALTSTACK_OPERATION = 18
    SCRIPT_ERR_UNBALANCED_CONDITIONAL = 19
    # CHECKLOCKTIMEVERIFY and CHECKSEQUENCEVERIFY
    SCRIPT_ERR_NEGATIVE_LOCKTIME = 20
    SCRIPT_ERR_UNSATISFIED_LOCKTIME = 21
    # Malleability
    SCRIPT_ERR_SIG_HASHTYPE = 22
    SCRIPT_ERR_SIG_DER = 23
    SCRIPT_ERR_MINIMALDATA = 24
    SCRIPT_ERR_SIG_PUSHONLY = 25
    SCRIPT_ERR_SIG_HIGH_S = 26
    SCRIPT_ERR_SIG_NULLDUMMY = 27
    SCRIPT_ERR_PUBKEYTYPE = 28
    SCRIPT_ERR_CLEANSTACK = 29
    SCRIPT_ERR_MINIMALIF = 30
    SCRIPT_ERR_SIG_NULLFAIL = 31
    # Softfork safeness
    SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS = 32
    SCRIPT_ERR_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM = 33
    # Segregated witness
    SCRIPT_ERR_WITNESS_PROGRAM_WRONG_LENGTH = 34
    SCRIPT_ERR_WITNESS_PROGRAM_WITNESS_EMPTY = 35
    SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH = 36
    SCRIPT_ERR_WITNESS_MALLEATED = 37
    SCRIPT_ERR_WITNESS_MALLEATED_P2SH = 38
    SCRIPT_ERR_WITNESS_UNEXPECTED = 39
    SCRIPT_ERR_WITNESS_PUBKEYTYPE = 40

    @property
    def message(self) -> str:
        """Core: ScriptErrorString, the text that ends up in reject reasons and logs."""
        return _MESSAGES.get(self, "unknown error")


_E = ScriptError
_MESSAGES: dict[ScriptError, str] = {
    _E.SCRIPT_ERR_OK: "No error",
    _E.SCRIPT_ERR_EVAL_FALSE:
        "Script evaluated without error but finished with a false/empty top stack element",
    _E.SCRIPT_ERR_VERIFY: "Script failed an OP_VERIFY operation",
    _E.SCRIPT_ERR_EQUALVERIFY: "Script failed an OP_EQUALVERIFY operation",
    _E.SCRIPT_ERR_CHECKMULTISIGVERIFY: "Script failed an OP_CHECKMULTISIGVERIFY operation",
    _E.SCRIPT_ERR_CHECKSIGVERIFY: "Script failed an OP_CHECKSIGVERIFY operation",
    _E.SCRIPT_ERR_NUMEQUALVERIFY: "Script failed an OP_NUMEQUALVERIFY operation",
    _E.SCRIPT_ERR_SCRIPT_SIZE: "Script is too big",
    _E.SCRIPT_ERR_PUSH_SIZE: "Push value size limit exceeded",
    _E.SCRIPT_ERR_OP_COUNT: "Operation limit exceeded",
    _E.SCRIPT_ERR_STACK_SIZE: "Stack size limit exceeded",
    _E.SCRIPT_ERR_SIG_COUNT: "Signature count negative or greater than pubkey count",
    _E.SCRIPT_ERR_PUBKEY_COUNT: "Pubkey count negative or limit exceeded",
    _E.SCRIPT_ERR_BAD_OPCODE: "Opcode missing or not understood",
    _E.SCRIPT_ERR_DISABLED_OPCODE: "Attempted to use a disabled opcode",
    _E.SCRIPT_ERR_INVALID_STACK_OPERATION: "Operation not valid with the current stack size",
    _E.SCRIPT_ERR_INVALID_ALTSTACK_OPERATION: "Operation not valid with the current altstack size",
    _E.SCRIPT_ERR_OP_RETURN: "OP_RETURN was encountered",
    _E.SCRIPT_ERR_UNBALANCED_CONDITIONAL: "Invalid OP_IF construction",
    _E.SCRIPT_ERR_NEGATIVE_LOCKTIME: "Negative locktime",
    _E.SCRIPT_ERR_UNSATISFIED_LOCKTIME: "Locktime requirement not satisfied",
    _E.SCRIPT_ERR_SIG_HASHTYPE: "Signature hash type missing or not understood",
    _E.SCRIPT_ERR_SIG_DER: "Non-canonical DER signature",
    _E.SCRIPT_ERR_MINIMALDATA: "Data push larger than necessary",
    _E.SCRIPT_ERR_SIG_PUSHONLY: "Only non-push operators allowed in signatures",
    _E.SCRIPT_ERR_SIG_HIGH_S: "Non-canonical signature: S value is unnecessarily high",
    _E.SCRIPT_ERR_SIG_NULLDUMMY: "Dummy CHECKMULTISIG argument must be zero",
    _E.SCRIPT_ERR_MINIMALIF: "OP_IF/NOTIF argument must be minimal",
    _E.SCRIPT_ERR_SIG_NULLFAIL: "Signature must be zero for failed CHECK(MULTI)SIG operation",
    _E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_NOPS: "NOPx reserved for soft-fork upgrades",
    _E.SCRIPT_ERR_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM: "Witness version reserved for soft-fork upgrades",
    _E.SCRIPT_ERR_PUBKEYTYPE: "Public key is neither compressed or uncompressed",
    _E.SCRIPT_ERR_CLEANSTACK: "Extra items left on stack after execution",
    _E.SCRIPT_ERR_WITNESS_PROGRAM_WRONG_LENGTH: "Witness program has incorrect length",
    _E.SCRIPT_ERR_WITNESS_PROGRAM_WITNESS_EMPTY: "Witness program was passed an empty witness",
    _E.SCRIPT_ERR_WITNESS_PROGRAM_MISMATCH: "Witness program hash mismatch",
    _E.SCRIPT_ERR_WITNESS_MALLEATED: "Witness requires empty scriptSig",
    _E.SCRIPT_ERR_WITNESS_MALLEATED_P2SH: "Witness requires only-redeemscript scriptSig",
    _E.SCRIPT_ERR_WITNESS_UNEXPECTED: "Witness provided for non-witness script",
    _E.SCRIPT_ERR_WITNESS_PUBKEYTYPE: "Using non-compressed keys in segwit",
}


class ScriptEvalError(Exception):
    """Raised inside evaluation; `verify_script` turns it back into a `ScriptError` value."""

    __slots__ = ("error",)

    def __init__(self, error: ScriptError) -> None:
        super().__init__(error.name)
        self.error = error
