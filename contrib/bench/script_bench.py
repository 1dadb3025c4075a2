#!/usr/bin/env python3
"""Script verification benchmark: our interpreter against raw libsecp256k1 on the same signatures.

Builds synthetic signed transactions (P2PKH inputs, and 2-of-3 P2SH multisig inputs signed by
keys 2+3 and by keys 1+2 of 3), then
verifies every input with `verify_script` (standard flags, sighash midstates shared per tx)
on 1 and 2 threads, and verifies the same (pubkey, signature, sighash) triples with coincurve
alone. Prints inputs/s, the interpreter overhead (raw rate / our rate) and the 2-thread
scaling, for the per-input path (`verify_script` per input, inputs split between threads)
and for `verify_inputs_batch` (scripts evaluated on the calling thread, signatures verified
without the GIL on `threads` threads). Not a test; asserts only that every input verifies.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coincurve import PrivateKey, PublicKey

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aipgd.core.hashes import hash160  # noqa: E402
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from aipgd.script.batch import SpendInput, verify_inputs_batch  # noqa: E402
from aipgd.script.checker import TransactionSignatureChecker  # noqa: E402
from aipgd.script.errors import ScriptError  # noqa: E402
from aipgd.script.flags import SIGHASH_ALL, STANDARD_SCRIPT_VERIFY_FLAGS  # noqa: E402
from aipgd.script.native_verify import native_available  # noqa: E402
from aipgd.script.opcodes import Op  # noqa: E402
from aipgd.script.script import build_script, push_data  # noqa: E402
from aipgd.script.sighash import PrecomputedTxData, legacy_signature_hash  # noqa: E402
from aipgd.script.verify import verify_script  # noqa: E402

INPUTS_PER_TX = 2
# The clock of the measurements: wall time, or with --clock cpu this process's CPU time (one thread
# only), which a busy machine disturbs far less than wall time.
CLOCK: list[Callable[[], float]] = [time.perf_counter]
THREADS: list[tuple[int, ...]] = [(1, 2)]
AMOUNT = 50_000

# (tx, input index, scriptPubKey spent, txdata)
Job = tuple[Transaction, int, bytes, PrecomputedTxData]
# (pubkey, DER signature, sighash)
RawCheck = tuple[bytes, bytes, bytes]


def _key(i: int) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"script-bench-key-%d" % i).digest())


def _prevout(tag: bytes, i: int) -> OutPoint:
    return OutPoint(hashlib.sha256(tag + i.to_bytes(4, "little")).digest(), i % 3)


def _p2pkh(key_hash: bytes) -> bytes:
    return build_script(Op.OP_DUP, Op.OP_HASH160, key_hash, Op.OP_EQUALVERIFY, Op.OP_CHECKSIG)


def _outputs(seed: int) -> tuple[TxOut, ...]:
    return (TxOut(AMOUNT - 1000, _p2pkh(hashlib.sha256(b"%d" % seed).digest()[:20])),
            TxOut(500, build_script(Op.OP_RETURN, b"bench")))


def build_p2pkh(n_inputs: int) -> tuple[list[Job], list[RawCheck]]:
    """Transactions of INPUTS_PER_TX P2PKH inputs each, every input with its own key."""
    jobs: list[Job] = []
    raw: list[RawCheck] = []
    for t in range(n_inputs // INPUTS_PER_TX):
        keys = [_key(t * INPUTS_PER_TX + j) for j in range(INPUTS_PER_TX)]
        pubs = [k.public_key.format(compressed=True) for k in keys]
        spks = [_p2pkh(hash160(p)) for p in pubs]
        unsigned = Transaction(2, tuple(TxIn(_prevout(b"pkh", t * INPUTS_PER_TX + j), b"", 0xFFFFFFFE)
                                        for j in range(INPUTS_PER_TX)), _outputs(t), 0)
        sig_scripts = []
        for j, key in enumerate(keys):
            sighash = legacy_signature_hash(spks[j], unsigned, j, SIGHASH_ALL)
            der = key.sign(sighash, hasher=None)
            sig_scripts.append(push_data(der + bytes((SIGHASH_ALL,))) + push_data(pubs[j]))
            raw.append((pubs[j], der, sighash))
        tx = Transaction(2, tuple(TxIn(txin.prevout, sig_scripts[j], txin.sequence)
                                  for j, txin in enumerate(unsigned.vin)), unsigned.vout, 0)
        data = PrecomputedTxData(tx)
        jobs += [(tx, j, spks[j], data) for j in range(INPUTS_PER_TX)]
    return jobs, raw


def multisig_visits(signers: Sequence[int], n_keys: int) -> list[tuple[int, int]]:
    """The (signature, key) pairs Core's CHECKMULTISIG loop verifies for signatures by `signers`.

    The loop starts at the top signature (the last signer) and the top key (the last key) and
    moves to the next key after every check, to the next signature only after a match; so a
    signature is also checked against every key above its own that no later signature took.
    """
    visits: list[tuple[int, int]] = []
    key = n_keys - 1
    for sig in reversed(range(len(signers))):
        while True:
            visits.append((sig, key))
            key -= 1
            if key + 1 == signers[sig]:
                break
    return visits


def build_multisig(n_inputs: int, signers: Sequence[int] = (0, 1),
                   ) -> tuple[list[Job], list[RawCheck], list[RawCheck]]:
    """Transactions of INPUTS_PER_TX 2-of-3 P2SH multisig inputs each, signed by keys `signers`.

    Returns the jobs, the signatures' own (key, signature, sighash) triples, and the checks
    CHECKMULTISIG's rule performs for them (the same, plus one failing check per signature
    that is tried against a key above its own).
    """
    jobs: list[Job] = []
    raw: list[RawCheck] = []
    rule: list[RawCheck] = []
    visits = multisig_visits(signers, 3)
    for t in range(n_inputs // INPUTS_PER_TX):
        spends = []
        for j in range(INPUTS_PER_TX):
            keys = [_key(100_000 + 3 * (t * INPUTS_PER_TX + j) + k) for k in range(3)]
            pubs = [k.public_key.format(compressed=True) for k in keys]
            redeem = build_script(Op.OP_2, *pubs, Op.OP_3, Op.OP_CHECKMULTISIG)
            spends.append((keys, pubs, redeem, build_script(Op.OP_HASH160, hash160(redeem), Op.OP_EQUAL)))
        unsigned = Transaction(2, tuple(TxIn(_prevout(b"msig", t * INPUTS_PER_TX + j), b"", 0xFFFFFFFE)
                                        for j in range(INPUTS_PER_TX)), _outputs(t), 0)
        sig_scripts = []
        for j, (keys, pubs, redeem, _) in enumerate(spends):
            sighash = legacy_signature_hash(redeem, unsigned, j, SIGHASH_ALL)
            script_sig = bytes((Op.OP_0,))
            ders = []
            for k in signers:
                der = keys[k].sign(sighash, hasher=None)
                ders.append(der)
                script_sig += push_data(der + bytes((SIGHASH_ALL,)))
                raw.append((pubs[k], der, sighash))
            rule += [(pubs[key], ders[sig], sighash) for sig, key in visits]
            sig_scripts.append(script_sig + push_data(redeem))
        tx = Transaction(2, tuple(TxIn(txin.prevout, sig_scripts[j], txin.sequence)
                                  for j, txin in enumerate(unsigned.vin)), unsigned.vout, 0)
        data = PrecomputedTxData(tx)
        jobs += [(tx, j, spends[j][3], data) for j in range(INPUTS_PER_TX)]
    return jobs, raw, rule


def verify_jobs(jobs: Sequence[Job]) -> int:
    ok = 0
    flags = STANDARD_SCRIPT_VERIFY_FLAGS
    for tx, n_in, spk, data in jobs:
        txin = tx.vin[n_in]
        checker = TransactionSignatureChecker(tx, n_in, AMOUNT, data)
        if verify_script(txin.script_sig, spk, txin.witness, flags, checker) is ScriptError.SCRIPT_ERR_OK:
            ok += 1
    return ok


def verify_batch(inputs: Sequence[SpendInput], threads: int) -> int:
    results = verify_inputs_batch(inputs, STANDARD_SCRIPT_VERIFY_FLAGS, threads)
    return sum(1 for r in results if r is ScriptError.SCRIPT_ERR_OK)


def fresh_inputs(jobs: Sequence[Job]) -> list[SpendInput]:
    return [SpendInput(tx, n, spk, AMOUNT, data) for tx, n, spk, data in fresh_jobs(jobs)]


def best_of_batch(repeat: int, jobs: Sequence[Job], threads: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        inputs = fresh_inputs(jobs)
        start = CLOCK[0]()
        done = verify_batch(inputs, threads)
        seconds = CLOCK[0]() - start
        if done != len(jobs):
            raise SystemExit(f"only {done} of {len(jobs)} verified")
        best = min(best, seconds)
    return best


def verify_raw(checks: Sequence[RawCheck]) -> int:
    return sum(1 for pub, der, sighash in checks if PublicKey(pub).verify(der, sighash, hasher=None))


def verify_raw_all(checks: Sequence[RawCheck]) -> int:
    """Runs every check whatever its answer (a rule's failing checks cost as much as passing ones)."""
    for pub, der, sighash in checks:
        PublicKey(pub).verify(der, sighash, hasher=None)
    return len(checks)


def fresh_jobs(jobs: Sequence[Job]) -> list[Job]:
    """The same inputs with empty sighash caches, so each timed run does the per-tx work again."""
    by_tx: dict[int, PrecomputedTxData] = {}
    return [(tx, n, spk, by_tx.setdefault(id(tx), PrecomputedTxData(tx))) for tx, n, spk, _ in jobs]


def timed(work: Callable[[Sequence[object]], int], items: Sequence[object],
          threads: int) -> tuple[float, int]:
    """Seconds to run `work` over `items` split in `threads` contiguous chunks."""
    if threads == 1:
        start = CLOCK[0]()
        done = work(items)
        return CLOCK[0]() - start, done
    size = (len(items) + threads - 1) // threads
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(threads) as pool:
        start = CLOCK[0]()
        done = sum(pool.map(work, chunks))
        return CLOCK[0]() - start, done


def best_of(repeat: int, work: Callable[[Sequence[object]], int], make: Callable[[], Sequence[object]],
            threads: int, expect: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        seconds, done = timed(work, make(), threads)
        if done != expect:
            raise SystemExit(f"only {done} of {expect} verified")
        best = min(best, seconds)
    return best


def report(name: str, jobs: list[Job], raw: list[RawCheck], repeat: int, modes: Sequence[str],
           rule: list[RawCheck] | None = None) -> None:
    """Prints our rate against raw libsecp256k1 over the same signatures and, where the script rule
    performs more checks than there are signatures (CHECKMULTISIG trying a key that isn't the
    signature's), also against raw libsecp256k1 over the checks the rule performs."""
    n = len(jobs)
    extra = rule is not None and len(rule) != len(raw)
    for mode in modes:
        label = name if mode == "input" else f"{name} batch"
        rates: dict[tuple[str, int], float] = {}
        for threads in THREADS[0]:
            if mode == "input":
                ours = best_of(repeat, verify_jobs, lambda: fresh_jobs(jobs), threads, n)  # type: ignore[arg-type]
            else:
                ours = best_of_batch(repeat, jobs, threads)
            # The raw baseline is measured right after, so both see the same machine load.
            base = best_of(repeat, verify_raw, lambda: raw, threads, len(raw))  # type: ignore[arg-type]
            rates["ours", threads] = n / ours
            rates["raw", threads] = n / base
            line = (f"{label}: {threads} thread(s): interpreter {n / ours:9.0f} inputs/s, "
                    f"raw libsecp256k1 {n / base:9.0f} inputs/s ({len(raw) // n} verify/input), "
                    f"overhead {base and ours / base:.2f}x")
            if extra and rule is not None:
                base_rule = best_of(repeat, verify_raw_all, lambda: rule, threads, len(rule))  # type: ignore[arg-type]
                line += (f"; vs the rule's {len(rule) / n:g} verify/input "
                         f"({n / base_rule:.0f} inputs/s raw) {ours / base_rule:.2f}x")
            print(line)
        if ("ours", 2) in rates:
            print(f"{label}: 2-thread scaling: interpreter {rates['ours', 2] / rates['ours', 1]:.2f}x, "
                  f"raw {rates['raw', 2] / rates['raw', 1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p2pkh", type=int, default=20_000, help="P2PKH inputs")
    parser.add_argument("--multisig", type=int, default=5_000, help="2-of-3 P2SH multisig inputs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--mode", choices=("input", "batch", "both"), default="both",
                        help="per-input verify_script, verify_inputs_batch, or both")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (1 and 2 threads) or CPU time (1 thread; robust on a busy machine)")
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
        THREADS[0] = (1,)
        print("CPU-time measurements, 1 thread")
    modes = ("input", "batch") if args.mode == "both" else (args.mode,)
    if "batch" in modes:
        start = CLOCK[0]()
        native = native_available()  # compiles the native loop outside the timings
        print(f"batch signature loop: {'native (Numba, nogil)' if native else 'Python fallback'}, "
              f"ready in {CLOCK[0]() - start:.1f}s")
    start = CLOCK[0]()
    p2pkh = build_p2pkh(args.p2pkh)
    # Signed by keys 2 and 3 of 3, CHECKMULTISIG verifies each signature once; signed by keys 1
    # and 2, it first tries the top signature against key 3 (a failing check Core performs too).
    multisig = {signers: build_multisig(args.multisig, signers) for signers in ((1, 2), (0, 1))}
    print(f"built {len(p2pkh[0])} P2PKH and {len(multisig[1, 2][0])} multisig inputs per signer set "
          f"in {CLOCK[0]() - start:.1f}s")
    report("P2PKH", *p2pkh, args.repeat, modes)
    for signers, (jobs, raw, rule) in multisig.items():
        keys = "+".join(str(k + 1) for k in signers)
        report(f"P2SH 2-of-3 (keys {keys})", jobs, raw, args.repeat, modes, rule)


if __name__ == "__main__":
    main()
