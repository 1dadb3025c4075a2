"""Exact fast paths for standard spends: P2PKH and P2SH multisig (Core: VerifyScript, EvalScript).

Owns `template_checks`: for an input whose scripts have one of these shapes and pass every
rule short of the signature checks, the ECDSA checks its evaluation would make, as the
groups `native_verify` answers (an OP_CHECKSIG, or a CHECKMULTISIG matching loop). Such an
input is valid iff all its groups hold, because the interpreter would take exactly this path.
The fast paths must never return a verdict of their own: any deviation from the template
(flags, encodings, pushes, hashes, extra items) returns None and the caller runs the
interpreter, which then reports Core's error.
"""

from __future__ import annotations

from collections.abc import Sequence

from aipgd.core.hashes import hash160
from aipgd.core.serialize import ser_compact_size
from aipgd.core.transaction import Transaction
from aipgd.script.errors import ScriptEvalError
from aipgd.script.flags import (
    SCRIPT_VERIFY_CLEANSTACK,
    SCRIPT_VERIFY_MINIMALDATA,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_WITNESS,
    SIGVERSION_BASE,
)
from aipgd.script.interpreter import check_minimal_push
from aipgd.script.native_verify import group_holds
from aipgd.script.script import (
    MAX_SCRIPT_ELEMENT_SIZE,
    find_and_delete,
    is_p2pkh,
    is_p2sh,
    push_data,
    witness_program,
)
from aipgd.script.sighash import PrecomputedTxData, legacy_signature_hash_serialized, serialize_script_code
from aipgd.script.signature import (
    check_pubkey_encoding,
    check_signature_encoding,
    normalized_compact,
    pubkey_size_is_valid,
)

# A recorded check: signatures (compact R || S or None, sighash) and keys (None: invalid size),
# both in the order CHECKMULTISIG visits them.
Group = tuple[list[tuple[bytes | None, bytes]], list[bytes | None]]

# Pushes a template scriptSig may have; far below MAX_STACK_SIZE, so no stack-size check applies.
_MAX_TEMPLATE_PUSHES = 64
_NO_MSG = bytes(32)
_P2PKH_CODE_PREFIX = b"\x19"  # CompactSize(25)


def sig_entries(sigs: Sequence[bytes], code: bytes, tx: Transaction, n_in: int,
                 txdata: PrecomputedTxData) -> list[tuple[bytes | None, bytes]]:
    """What TransactionSignatureChecker::CheckSig needs of each (legacy) signature, before libsecp256k1.

    None for a signature CheckSig answers false for without verifying: empty, or rejected
    by CPubKey::Verify's DER parse. `code` is the scriptCode through serialize_script_code;
    the sighash is computed once per hash type.
    """
    out: list[tuple[bytes | None, bytes]] = []
    hashes: dict[int, bytes] = {}
    for sig in sigs:
        if not sig:
            out.append((None, _NO_MSG))
            continue
        hash_type = sig[-1]
        msg = hashes.get(hash_type)
        if msg is None:
            msg = hashes[hash_type] = legacy_signature_hash_serialized(code, tx, n_in, hash_type, txdata)
        out.append((normalized_compact(sig[:-1]), msg))
    return out



def _pushes(script: bytes, minimal: bool) -> list[bytes] | None:
    """The stack a scriptSig of plain data pushes leaves (Core: EvalScript on push opcodes).

    None for anything else or for a push EvalScript would reject (truncated, over 520
    bytes, non-minimal under MINIMALDATA).
    """
    items: list[bytes] = []
    end = len(script)
    pc = 0
    while pc < end:
        opcode = script[pc]
        pc += 1
        if opcode < 0x4C:
            size = opcode
        elif opcode == 0x4C:  # OP_PUSHDATA1
            if pc >= end:
                return None
            size = script[pc]
            pc += 1
        elif opcode == 0x4D:  # OP_PUSHDATA2
            if end - pc < 2:
                return None
            size = script[pc] | script[pc + 1] << 8
            pc += 2
        else:
            return None
        if end - pc < size or size > MAX_SCRIPT_ELEMENT_SIZE or len(items) >= _MAX_TEMPLATE_PUSHES:
            return None
        data = script[pc:pc + size]
        if minimal and not check_minimal_push(data, opcode):
            return None
        items.append(data)
        pc += size
    return items


def flags_usable(flags: int) -> bool:
    """Core's VerifyScript asserts CLEANSTACK => P2SH and WITNESS, and WITNESS => P2SH;
    `verify_script` raises for those, so the fast paths leave them to it."""
    both = SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS
    if flags & SCRIPT_VERIFY_CLEANSTACK and flags & both != both:
        return False
    return not (flags & SCRIPT_VERIFY_WITNESS and not flags & SCRIPT_VERIFY_P2SH)


def _p2pkh_checks(script_sig: bytes, script_pubkey: bytes, flags: int, tx: Transaction, n_in: int,
                  txdata: PrecomputedTxData) -> list[Group] | None:
    """<sig> <pubkey> spending DUP HASH160 <hash> EQUALVERIFY CHECKSIG.

    Evaluation then is: two pushes, DUP, HASH160, the hash compared, CHECKSIG over the
    scriptCode with the signature FindAndDelete'd, then a one-item stack (CLEANSTACK holds),
    no witness program, no P2SH.
    """
    items = _pushes(script_sig, bool(flags & SCRIPT_VERIFY_MINIMALDATA))
    if items is None or len(items) != 2:
        return None
    sig, pubkey = items
    if not sig or hash160(pubkey) != script_pubkey[3:23] or not pubkey_size_is_valid(pubkey):
        return None
    try:
        check_signature_encoding(sig, flags)
        check_pubkey_encoding(pubkey, flags, SIGVERSION_BASE)
    except ScriptEvalError:
        return None
    compact = normalized_compact(sig[:-1])
    if compact is None:
        return None
    script_code = find_and_delete(script_pubkey, push_data(sig))
    # The template's 25 bytes are whole ops without OP_CODESEPARATOR: serialized as they are.
    if script_code is script_pubkey:
        code = _P2PKH_CODE_PREFIX + script_code
    else:
        code = serialize_script_code(script_code)
    sighash = legacy_signature_hash_serialized(code, tx, n_in, sig[-1], txdata)
    return [([(compact, sighash)], [pubkey])]


def _p2sh_multisig_checks(script_sig: bytes, script_pubkey: bytes, flags: int, tx: Transaction, n_in: int,
                          txdata: PrecomputedTxData) -> list[Group] | None:
    """OP_0 <sig>*m <redeem> spending P2SH (BIP16) of redeem = OP_m <pubkey>*n OP_n CHECKMULTISIG.

    Evaluation then is: the pushes, HASH160 EQUAL true, the redeem script run over the
    pushes minus itself, CHECKMULTISIG consuming exactly the dummy and m signatures (so
    CLEANSTACK holds) with the scriptCode FindAndDelete'd of each signature.
    """
    minimal = bool(flags & SCRIPT_VERIFY_MINIMALDATA)
    items = _pushes(script_sig, minimal)
    if items is None or len(items) < 2:
        return None
    redeem = items[-1]
    n = len(redeem)
    if n < 3 or not 0x51 <= redeem[0] <= 0x60 or hash160(redeem) != script_pubkey[2:22]:
        return None
    n_sigs = redeem[0] - 0x50
    pubkeys: list[bytes] = []
    pc = 1
    while pc < n and 0x01 <= redeem[pc] <= 0x4B:
        size = redeem[pc]
        if pc + 1 + size > n:
            return None
        key = redeem[pc + 1:pc + 1 + size]
        if minimal and not check_minimal_push(key, size):
            return None
        pubkeys.append(key)
        pc += 1 + size
    # OP_n OP_CHECKMULTISIG, n the number of keys.
    if (pc + 2 != n or redeem[pc + 1] != 0xAE or not 0x51 <= redeem[pc] <= 0x60
            or redeem[pc] - 0x50 != len(pubkeys)):
        return None
    if n_sigs > len(pubkeys) or len(items) != n_sigs + 2:
        return None
    if flags & SCRIPT_VERIFY_NULLDUMMY and items[0]:
        return None
    if flags & SCRIPT_VERIFY_WITNESS and witness_program(redeem) is not None:
        return None
    if not n_sigs:
        return []
    sigs = items[n_sigs:0:-1]  # the top signature first, as the loop visits them
    keys = pubkeys[::-1]
    try:
        for sig in sigs:
            check_signature_encoding(sig, flags)
        for key in keys:
            check_pubkey_encoding(key, flags, SIGVERSION_BASE)
    except ScriptEvalError:
        return None
    script_code = redeem
    for sig in sigs:
        script_code = find_and_delete(script_code, push_data(sig))
    # The template's ops are whole and include no OP_CODESEPARATOR: serialized as they are.
    code = ser_compact_size(n) + redeem if script_code is redeem else serialize_script_code(script_code)
    entries = sig_entries(sigs, code, tx, n_in, txdata)
    return [(entries, [k if pubkey_size_is_valid(k) else None for k in keys])]


def template_checks(script_sig: bytes, script_pubkey: bytes, flags: int, tx: Transaction, n_in: int,
                    txdata: PrecomputedTxData) -> list[Group] | None:
    """The checks of a recognized standard spend without witness, or None (use the interpreter)."""
    if not flags_usable(flags):
        return None
    return template_checks_unchecked(script_sig, script_pubkey, flags, tx, n_in, txdata)


def template_checks_unchecked(script_sig: bytes, script_pubkey: bytes, flags: int, tx: Transaction, n_in: int,
                     txdata: PrecomputedTxData) -> list[Group] | None:
    n = len(script_pubkey)
    if n == 25 and is_p2pkh(script_pubkey):
        return _p2pkh_checks(script_sig, script_pubkey, flags, tx, n_in, txdata)
    if n == 23 and flags & SCRIPT_VERIFY_P2SH and is_p2sh(script_pubkey):
        return _p2sh_multisig_checks(script_sig, script_pubkey, flags, tx, n_in, txdata)
    return None


def verify_template(script_sig: bytes, script_pubkey: bytes, flags: int, tx: Transaction, n_in: int,
                    txdata: PrecomputedTxData) -> bool:
    """True when the input is a template spend whose checks all hold (then it is valid);
    False means only "not shown valid here": the caller runs the interpreter."""
    groups = template_checks(script_sig, script_pubkey, flags, tx, n_in, txdata)
    return groups is not None and all(group_holds(sigs, keys) for sigs, keys in groups)
