"""Batch verification (deferred checks, template fast paths, native loop) against `verify_script`.

Every verdict and error code of `verify_inputs_batch` must be exactly the per-input
interpreter's: on Core's script_tests.json and tx_valid/tx_invalid.json cases (under their
own flags and under other flag sets), and on the script benchmark's synthetic transactions
with corrupted signatures, keys and encodings.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from coincurve import PrivateKey

from aipgd.consensus.tx_check import check_transaction
from aipgd.core.transaction import NULL_OUTPOINT, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hex_to_hash
from aipgd.script.asm import script_from_asm
from aipgd.script.batch import DeferringSignatureChecker, SpendInput, verify_inputs_batch
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError
from aipgd.script.flags import (
    MANDATORY_SCRIPT_VERIFY_FLAGS,
    SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY,
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY,
    SCRIPT_VERIFY_CLEANSTACK,
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_LOW_S,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_NULLFAIL,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_STRICTENC,
    SCRIPT_VERIFY_WITNESS,
    STANDARD_SCRIPT_VERIFY_FLAGS,
    parse_flags,
)
from aipgd.script.native_verify import CheckBatch, native_available, run_batch
from aipgd.script.script import push_data, push_int
from aipgd.script.sighash import PrecomputedTxData
from aipgd.script.signature import SECP256K1_N
from aipgd.script.templates import template_checks
from aipgd.script.verify import verify_script

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

# Valid flag sets besides each case's own: none, consensus-like, encoding rules alone, policy.
FLAG_SETS = (
    0,
    MANDATORY_SCRIPT_VERIFY_FLAGS,
    SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY
    | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY | SCRIPT_VERIFY_NULLDUMMY | SCRIPT_VERIFY_WITNESS,
    SCRIPT_VERIFY_STRICTENC | SCRIPT_VERIFY_LOW_S | SCRIPT_VERIFY_NULLFAIL,
    STANDARD_SCRIPT_VERIFY_FLAGS,
)
# (threads, native): the caller alone, the caller plus a worker, and the Python loop.
MODES = ((1, True), (2, True), (1, False))


class _InterpreterOnly(TransactionSignatureChecker):
    """The same checks; being a subclass, it keeps `verify_script` off the template shortcut."""

    __slots__ = ()


def _reference(inputs: list[SpendInput], flags: int,
               checker: type[TransactionSignatureChecker] = _InterpreterOnly) -> list[ScriptError]:
    out = []
    for tx, n_in, spk, amount, txdata in inputs:
        txin = tx.vin[n_in]
        check = checker(tx, n_in, amount, txdata)
        out.append(verify_script(txin.script_sig, spk, txin.witness, flags, check))
    return out


def _assert_batch_matches(inputs: list[SpendInput], flags: int) -> list[ScriptError]:
    """Batch results (and `verify_script`'s template shortcut) equal the interpreter's."""
    expected = _reference(inputs, flags)
    assert _reference(inputs, flags, TransactionSignatureChecker) == expected
    for threads, native in MODES:
        got = verify_inputs_batch(inputs, flags, threads, native)
        diffs = [(i, g.name, e.name) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
        assert not diffs, f"flags {flags:#x} threads {threads} native {native}: {diffs[:5]}"
    return expected


def _assert_template_exact(inputs: list[SpendInput], flags: int) -> int:
    """Where a fast path claims an input, the interpreter with the deferring checker succeeds
    provisionally and records exactly the same checks. Returns how many were claimed."""
    claimed = 0
    for tx, n_in, spk, amount, txdata in inputs:
        txin = tx.vin[n_in]
        data = txdata or PrecomputedTxData(tx)
        groups = None if txin.witness else template_checks(txin.script_sig, spk, flags, tx, n_in, data)
        if groups is None:
            continue
        claimed += 1
        checker = DeferringSignatureChecker(tx, n_in, amount, data)
        result = verify_script(txin.script_sig, spk, txin.witness, flags, checker)
        assert result is ScriptError.SCRIPT_ERR_OK and not checker.poisoned
        assert checker.groups == groups
    return claimed


# --- Core's script_tests.json --------------------------------------------------------------------


def _crediting_tx(script_pubkey: bytes, value: int) -> Transaction:
    """Core: BuildCreditingTransaction."""
    coinbase_in = TxIn(NULL_OUTPOINT, push_int(0) + push_int(0))
    return Transaction(1, (coinbase_in,), (TxOut(value, script_pubkey),), 0)


def _script_cases() -> list[tuple[SpendInput, int]]:
    with open(DATA / "script_tests.json") as f:
        rows: list[Any] = json.load(f, parse_float=Decimal)
    out = []
    for row in rows:
        pos = 1 if row and isinstance(row[0], list) else 0
        if len(row) < 4 + pos:
            continue
        witness: tuple[bytes, ...] = ()
        value = 0
        if pos:
            witness = tuple(bytes.fromhex(item) for item in row[0][:-1])
            value = int(Decimal(row[0][-1]) * 100_000_000)
        script_sig = script_from_asm(row[pos])
        script_pubkey = script_from_asm(row[pos + 1])
        flags = parse_flags(row[pos + 2])
        if flags & SCRIPT_VERIFY_CLEANSTACK:
            flags |= SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS
        credit = _crediting_tx(script_pubkey, value)
        txin = TxIn(OutPoint(credit.txid, 0), script_sig, 0xFFFFFFFF, witness)
        tx = Transaction(1, (txin,), (TxOut(value, b""),), 0)
        out.append((SpendInput(tx, 0, script_pubkey, value), flags))
    return out


def test_script_json_cases_under_their_flags() -> None:
    cases = _script_cases()
    assert len(cases) > 1000
    by_flags: dict[int, list[SpendInput]] = {}
    for spend, flags in cases:
        by_flags.setdefault(flags, []).append(spend)
    claimed = 0
    for flags, inputs in by_flags.items():
        _assert_batch_matches(inputs, flags)
        claimed += _assert_template_exact(inputs, flags)
    assert claimed >= 3  # the fast paths do see some of Core's P2PKH and P2SH multisig cases


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: f"{f:#x}")
def test_script_json_cases_under_other_flags(flags: int) -> None:
    inputs = [spend for spend, _ in _script_cases()]
    _assert_batch_matches(inputs, flags)
    _assert_template_exact(inputs, flags)


# --- Core's tx_valid.json / tx_invalid.json --------------------------------------------------------


def _tx_cases(name: str) -> list[tuple[list[SpendInput], int]]:
    with open(DATA / name) as f:
        rows: list[Any] = json.load(f)
    out = []
    for row in rows:
        if not isinstance(row[0], list):
            continue
        prevouts = {OutPoint(hex_to_hash(e[0]), e[1] & 0xFFFFFFFF):
                    (script_from_asm(e[2]), e[3] if len(e) == 4 else 0) for e in row[0]}
        tx = Transaction.from_bytes(bytes.fromhex(row[1]))
        if not check_transaction(tx).is_valid():
            continue
        data = PrecomputedTxData(tx)
        inputs = [SpendInput(tx, i, *prevouts[txin.prevout], data) for i, txin in enumerate(tx.vin)]
        out.append((inputs, parse_flags(row[2] if row[2] != "NONE" else "")))
    return out


@pytest.mark.parametrize("name", ["tx_valid.json", "tx_invalid.json"])
def test_tx_vectors(name: str) -> None:
    cases = _tx_cases(name)
    assert len(cases) > 50
    verdicts = []
    for inputs, flags in cases:
        results = _assert_batch_matches(inputs, flags)
        verdicts.append(all(r is ScriptError.SCRIPT_ERR_OK for r in results))
        for other in (0, STANDARD_SCRIPT_VERIFY_FLAGS):
            _assert_batch_matches(inputs, other)
            _assert_template_exact(inputs, other)
    if name == "tx_valid.json":
        assert all(verdicts)
    # One batch for a whole file: inputs of many transactions, flags shared.
    everything = [spend for inputs, _ in cases for spend in inputs]
    _assert_batch_matches(everything, STANDARD_SCRIPT_VERIFY_FLAGS)


# --- the benchmark's synthetic transactions, corrupted ---------------------------------------------


def _bench() -> ModuleType:
    path = ROOT / "contrib" / "bench" / "script_bench.py"
    spec = importlib.util.spec_from_file_location("script_bench_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _bench()


def _with_script_sig(tx: Transaction, n_in: int, script_sig: bytes) -> Transaction:
    vin = list(tx.vin)
    old = vin[n_in]
    vin[n_in] = TxIn(old.prevout, script_sig, old.sequence, old.witness)
    return Transaction(tx.version, tuple(vin), tx.vout, tx.locktime)


def _der(r: int, s: int) -> bytes:
    def integer(v: int) -> bytes:
        body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
        return b"\x02" + bytes((len(body),)) + body
    body = integer(r) + integer(s)
    return b"\x30" + bytes((len(body),)) + body


def _rs(der: bytes) -> tuple[int, int]:
    len_r = der[3]
    return int.from_bytes(der[4:4 + len_r], "big"), int.from_bytes(der[6 + len_r:], "big")


def _flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes((data[pos] ^ 0x01,)) + data[pos + 1:]


# Mutations of a parsed scriptSig (its pushed items); each returns the new scriptSig.
Items = list[bytes]
OTHER_KEY = PrivateKey(hashlib.sha256(b"batch-test-other-key").digest())


def _p2pkh_mutations() -> dict[str, Callable[[Items], bytes]]:
    def sig_pk(sig: bytes, pk: bytes) -> bytes:
        return push_data(sig) + push_data(pk)

    def high_s(items: Items) -> bytes:
        r, s = _rs(items[0][:-1])
        return sig_pk(_der(r, SECP256K1_N - s) + items[0][-1:], items[1])

    return {
        "unchanged": lambda it: sig_pk(it[0], it[1]),
        "flip R": lambda it: sig_pk(_flip(it[0], 10), it[1]),
        "flip S": lambda it: sig_pk(_flip(it[0], len(it[0]) - 3), it[1]),
        "high S": high_s,
        "zero R": lambda it: sig_pk(_der(0, _rs(it[0][:-1])[1]) + it[0][-1:], it[1]),
        "R = N": lambda it: sig_pk(_der(SECP256K1_N, _rs(it[0][:-1])[1]) + it[0][-1:], it[1]),
        "hashtype NONE": lambda it: sig_pk(it[0][:-1] + b"\x02", it[1]),
        "hashtype 0": lambda it: sig_pk(it[0][:-1] + b"\x00", it[1]),
        "hashtype ANYONECANPAY": lambda it: sig_pk(it[0][:-1] + b"\x81", it[1]),
        "hashtype 0x21": lambda it: sig_pk(it[0][:-1] + b"\x21", it[1]),
        "truncated DER": lambda it: sig_pk(it[0][:-2] + it[0][-1:], it[1]),
        "padded DER": lambda it: sig_pk(
            it[0][:1] + bytes((it[0][1] + 1,)) + it[0][2:-1] + b"\x00" + it[0][-1:], it[1]),
        "empty sig": lambda it: sig_pk(b"", it[1]),
        "one-byte sig": lambda it: sig_pk(b"\x01", it[1]),
        "other key": lambda it: sig_pk(it[0], OTHER_KEY.public_key.format()),
        "bad key point": lambda it: sig_pk(it[0], b"\x02" + b"\xff" * 32),
        "hybrid key": lambda it: sig_pk(it[0], b"\x06" + it[1][1:]),
        "non-minimal sig push": lambda it: b"\x4c" + bytes((len(it[0]),)) + it[0] + push_data(it[1]),
        "extra push": lambda it: push_data(b"\x05") + sig_pk(it[0], it[1]),
        "OP_1 first": lambda it: b"\x51" + sig_pk(it[0], it[1]),
        "pubkey only": lambda it: push_data(it[1]),
        "OP_NOP": lambda it: sig_pk(it[0], it[1]) + b"\x61",
        "swapped": lambda it: sig_pk(it[1], it[0]),
    }


def _multisig_mutations() -> dict[str, Callable[[Items], bytes]]:
    def build(dummy: bytes, sigs: list[bytes], redeem: bytes) -> bytes:
        head = b"\x00" if not dummy else push_data(dummy)
        return head + b"".join(push_data(s) for s in sigs) + push_data(redeem)

    def high_s(items: Items) -> bytes:
        r, s = _rs(items[1][:-1])
        return build(b"", [_der(r, SECP256K1_N - s) + items[1][-1:], items[2]], items[3])

    return {
        "unchanged": lambda it: build(b"", [it[1], it[2]], it[3]),
        "swapped sigs": lambda it: build(b"", [it[2], it[1]], it[3]),
        "flip first": lambda it: build(b"", [_flip(it[1], 10), it[2]], it[3]),
        "flip second": lambda it: build(b"", [it[1], _flip(it[2], 10)], it[3]),
        "high S": high_s,
        "first empty": lambda it: build(b"", [b"", it[2]], it[3]),
        "both empty": lambda it: build(b"", [b"", b""], it[3]),
        "same sig twice": lambda it: build(b"", [it[2], it[2]], it[3]),
        "dummy nonzero": lambda it: build(b"\x01\x02", [it[1], it[2]], it[3]),
        "hashtype 0": lambda it: build(b"", [it[1][:-1] + b"\x00", it[2]], it[3]),
        "hashtype SINGLE": lambda it: build(b"", [it[1], it[2][:-1] + b"\x03"], it[3]),
        "one sig": lambda it: build(b"", [it[2]], it[3]),
        "extra item": lambda it: push_data(b"\x07") + build(b"", [it[1], it[2]], it[3]),
        "redeem PUSHDATA2": lambda it: (b"\x00" + b"".join(push_data(s) for s in it[1:3])
                                        + b"\x4d" + len(it[3]).to_bytes(2, "little") + it[3]),
        "sig is a key": lambda it: build(b"", [it[1], it[3][2:35]], it[3]),
    }


def _items(script_sig: bytes) -> Items:
    from aipgd.script.script import iter_ops
    return [op.data if op.data is not None else b"" for op in iter_ops(script_sig)]


def _mutated_inputs(jobs: list[Any], mutations: dict[str, Callable[[Items], bytes]]) -> list[SpendInput]:
    out = []
    for k, (tx, n_in, spk, _) in enumerate(jobs):
        for m, (_, mutate) in enumerate(mutations.items()):
            if (k + m) % 3:
                continue  # each input gets a third of the mutations, each mutation many inputs
            new_tx = _with_script_sig(tx, n_in, mutate(_items(tx.vin[n_in].script_sig)))
            out.append(SpendInput(new_tx, n_in, spk, 50_000))
        out.append(SpendInput(tx, n_in, spk, 50_000))
    return out


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: f"{f:#x}")
def test_bench_transactions_corrupted(bench: ModuleType, flags: int) -> None:
    p2pkh, _ = bench.build_p2pkh(24)
    multisig, _, _ = bench.build_multisig(16)
    inputs = _mutated_inputs(p2pkh, _p2pkh_mutations()) + _mutated_inputs(multisig, _multisig_mutations())
    results = _assert_batch_matches(inputs, flags)
    assert _assert_template_exact(inputs, flags) > 20
    if flags == STANDARD_SCRIPT_VERIFY_FLAGS:
        names = {r.name for r in results}
        for seen in ("OK", "SIG_NULLFAIL", "SIG_HIGH_S", "SIG_DER", "SIG_HASHTYPE", "EQUALVERIFY",
                     "MINIMALDATA", "CLEANSTACK", "SIG_NULLDUMMY", "EVAL_FALSE"):
            assert "SCRIPT_ERR_" + seen in names, seen


def test_bench_transactions_random_byte_changes(bench: ModuleType) -> None:
    rng = random.Random(20240601)
    p2pkh, _ = bench.build_p2pkh(40)
    multisig, _, _ = bench.build_multisig(40)
    inputs = []
    for tx, n_in, spk, _ in p2pkh + multisig:
        script_sig = tx.vin[n_in].script_sig
        for _ in range(4):
            pos = rng.randrange(len(script_sig))
            changed = script_sig[:pos] + bytes((rng.randrange(256),)) + script_sig[pos + 1:]
            inputs.append(SpendInput(_with_script_sig(tx, n_in, changed), n_in, spk, 50_000))
    for flags in (STANDARD_SCRIPT_VERIFY_FLAGS, MANDATORY_SCRIPT_VERIFY_FLAGS, 0):
        _assert_batch_matches(inputs, flags)


def test_bench_transactions_all_valid_in_one_batch(bench: ModuleType) -> None:
    p2pkh, _ = bench.build_p2pkh(300)
    multisig, _, _ = bench.build_multisig(100)
    inputs = [SpendInput(tx, n, spk, 50_000, data) for tx, n, spk, data in p2pkh + multisig]
    for threads in (1, 2, 3):
        results = verify_inputs_batch(inputs, STANDARD_SCRIPT_VERIFY_FLAGS, threads)
        assert all(r is ScriptError.SCRIPT_ERR_OK for r in results)
    # One bad signature among them fails only its own input, with the interpreter's error.
    tx, n, spk, _ = p2pkh[137]
    items = _items(tx.vin[n].script_sig)
    bad_tx = _with_script_sig(tx, n, push_data(_flip(items[0], 12)) + push_data(items[1]))
    inputs[137] = SpendInput(bad_tx, n, spk, 50_000)
    results = verify_inputs_batch(inputs, STANDARD_SCRIPT_VERIFY_FLAGS, 2)
    assert results[137] is ScriptError.SCRIPT_ERR_SIG_NULLFAIL
    assert sum(r is ScriptError.SCRIPT_ERR_OK for r in results) == len(inputs) - 1


# --- the native loop against the Python loop ------------------------------------------------------


def test_native_loop_matches_python_loop() -> None:
    assert native_available()
    keys = [PrivateKey(hashlib.sha256(b"native-%d" % i).digest()) for i in range(4)]
    msg = hashlib.sha256(b"message").digest()
    pubs = [k.public_key.format() for k in keys]
    compacts = [k.sign_recoverable(msg, hasher=None)[:64] for k in keys]
    bad_point = b"\x02" + b"\xff" * 32
    over_n = SECP256K1_N.to_bytes(32, "big") + compacts[0][32:]
    batch = CheckBatch()
    groups: list[tuple[list[tuple[bytes | None, bytes]], list[bytes | None]]] = [
        ([(compacts[0], msg)], [pubs[0]]),                      # valid
        ([(compacts[0], msg)], [pubs[1]]),                      # wrong key
        ([(compacts[0], bytes(32))], [pubs[0]]),                # wrong message
        ([(None, msg)], [pubs[0]]),                             # signature rejected before libsecp
        ([(compacts[0], msg)], [None]),                         # key size invalid
        ([(compacts[0], msg)], [bad_point]),                    # key not on the curve
        ([(over_n, msg)], [pubs[0]]),                           # R overflows
        ([(compacts[1], msg)], [keys[1].public_key.format(compressed=False)]),  # uncompressed key
        ([(compacts[2], msg), (compacts[0], msg)], [pubs[2], pubs[1], pubs[0]]),  # 2-of-3, in order
        ([(compacts[0], msg), (compacts[2], msg)], [pubs[2], pubs[1], pubs[0]]),  # 2-of-3, out of order
        ([(compacts[1], msg), (compacts[0], msg)], [pubs[2], pubs[1], pubs[0]]),  # skips the first key
        ([(compacts[3], msg)], [pubs[2], pubs[1], pubs[0]]),   # 1-of-3, no key matches
        ([], [pubs[0]]),                                        # 0-of-1
    ]
    for owner, (sigs, keys_) in enumerate(groups):
        batch.add_group(owner, sigs, keys_)
    batch.add_single(len(groups), compacts[3], msg, pubs[3])
    native = batch.pack()
    python = batch.pack()
    run_batch(native, native=True)
    run_batch(python, native=False)
    assert native.ok.tolist() == python.ok.tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1]


def test_inconsistent_flags_raise_like_verify_script(bench: ModuleType) -> None:
    """Core asserts CLEANSTACK => P2SH and WITNESS; the batch raises as verify_script does and
    leaves no worker thread behind."""
    p2pkh, _ = bench.build_p2pkh(4)
    inputs = [SpendInput(tx, n, spk, 50_000, data) for tx, n, spk, data in p2pkh]
    before = threading.active_count()
    with pytest.raises(ValueError):
        _reference(inputs, SCRIPT_VERIFY_CLEANSTACK)
    with pytest.raises(ValueError):
        verify_inputs_batch(inputs, SCRIPT_VERIFY_CLEANSTACK, threads=3)
    assert threading.active_count() == before


@pytest.mark.parametrize(("signers", "visits"), [
    ((1, 2), [(1, 2), (0, 1)]),          # each signature checked once
    ((0, 1), [(1, 2), (1, 1), (0, 0)]),  # the top signature tried against key 3 first
    ((0, 2), [(1, 2), (0, 1), (0, 0)]),
])
def test_bench_multisig_signer_sets(bench: ModuleType, signers: tuple[int, int],
                                     visits: list[tuple[int, int]]) -> None:
    """The benchmark's count of the checks CHECKMULTISIG performs matches what verifying shows:
    every extra check in its list fails, every signature's own check holds, and both signer
    sets' transactions are valid."""
    assert bench.multisig_visits(signers, 3) == visits
    jobs, raw, rule = bench.build_multisig(8, signers)
    assert len(raw) == 2 * len(jobs) and len(rule) == len(visits) * len(jobs)
    assert bench.verify_raw(raw) == len(raw)
    assert bench.verify_raw(rule) == len(raw)  # the others are the rule's failing tries
    inputs = [SpendInput(tx, n, spk, 50_000, data) for tx, n, spk, data in jobs]
    assert all(r is ScriptError.SCRIPT_ERR_OK
               for r in verify_inputs_batch(inputs, STANDARD_SCRIPT_VERIFY_FLAGS, 2))
