"""Property tests: script encodings round-trip and junk never crashes the interpreter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.script.asm import script_from_asm, script_to_asm
from aipgd.script.checker import BaseSignatureChecker, TransactionSignatureChecker
from aipgd.script.errors import ScriptError, ScriptEvalError
from aipgd.script.flags import VerifyFlags
from aipgd.script.interpreter import eval_script
from aipgd.script.script import ScriptOp, ScriptParseError, decode_script, encode_ops, encode_script_num
from aipgd.script.scriptnum import decode_script_num
from aipgd.script.verify import verify_script

_ALL_FLAGS = sum(int(f) for f in VerifyFlags)
_TX = Transaction(2, (TxIn(OutPoint(b"\x11" * 32, 0), b"", 5),), (TxOut(1, b"\x51"),), 7)
_ = NULL_OUTPOINT

# Opcode-heavy junk: mostly single opcodes with some short pushes, so execution goes deep.
_opcodes = st.integers(0x4F, 0xFF).map(lambda b: bytes((b,)))
_pushes = st.binary(max_size=8).map(lambda d: bytes((len(d),)) + d)
_junk_scripts = st.lists(st.one_of(_opcodes, _opcodes, _pushes), max_size=60).map(b"".join)


@given(st.binary(max_size=300))
def test_decode_encode_round_trip(script: bytes) -> None:
    try:
        ops = decode_script(script)
    except ScriptParseError:
        return
    assert encode_ops(ops) == script


@given(st.lists(st.one_of(
    st.binary(max_size=80).map(lambda d: ScriptOp(len(d), d) if len(d) < 0x4C else ScriptOp(0x4C, d)),
    st.integers(0x4F, 0xBF).map(lambda op: ScriptOp(op, None)),
), max_size=30))
def test_encode_decode_round_trip(ops: list[ScriptOp]) -> None:
    assert decode_script(encode_ops(ops)) == ops


@given(st.integers(-(2**31) + 1, 2**31 - 1))
def test_script_num_round_trip(n: int) -> None:
    assert decode_script_num(encode_script_num(n), True) == n


@settings(max_examples=300)
@given(st.binary(max_size=200), st.binary(max_size=200), st.integers(0, _ALL_FLAGS))
def test_random_scripts_fail_with_a_script_error(script_sig: bytes, script_pubkey: bytes, flags: int) -> None:
    # Core asserts on CLEANSTACK/WITNESS without P2SH; those combinations are caller bugs.
    if flags & VerifyFlags.SCRIPT_VERIFY_CLEANSTACK or flags & VerifyFlags.SCRIPT_VERIFY_WITNESS:
        flags |= VerifyFlags.SCRIPT_VERIFY_P2SH | VerifyFlags.SCRIPT_VERIFY_WITNESS
    checker = TransactionSignatureChecker(_TX, 0, 1)
    result = verify_script(script_sig, script_pubkey, (), flags, checker)
    assert isinstance(result, ScriptError)


@settings(max_examples=500)
@given(_junk_scripts, st.integers(0, _ALL_FLAGS), st.integers(0, 1))
def test_junk_never_crashes_eval(script: bytes, flags: int, sigversion: int) -> None:
    stack = [b"\x01", b"", b"\x81", b"\x02\x00"]
    try:
        eval_script(stack, script, flags, BaseSignatureChecker(), sigversion)
    except ScriptEvalError as failure:
        assert failure.error != ScriptError.SCRIPT_ERR_OK


@given(st.binary(max_size=120))
def test_asm_of_any_bytes(script: bytes) -> None:
    text = script_to_asm(script)
    assert isinstance(text, str)


def test_asm_known_forms() -> None:
    script = script_from_asm("DUP HASH160 0x14 0x" + "ab" * 20 + " EQUALVERIFY CHECKSIG")
    assert script == bytes.fromhex("76a914" + "ab" * 20 + "88ac")
    assert script_to_asm(script) == "OP_DUP OP_HASH160 " + "ab" * 20 + " OP_EQUALVERIFY OP_CHECKSIG"
    assert script_from_asm("-1 0 16 17 'x'") == bytes.fromhex("4f0060011101" + "78")
