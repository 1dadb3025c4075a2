"""Batch verification of many inputs' scripts (Core: CCheckQueue / CScriptCheck, reorganized).

Owns `verify_inputs_batch`, what block connection calls for all inputs of a block. Core
splits a block into CScriptCheck jobs run by script-check threads; here the GIL makes the
Python interpretation serial, so the work is split differently:

1. The calling thread evaluates every input's scripts with a `DeferringSignatureChecker`
   (or an exact template fast path for P2PKH and P2SH multisig), which records each ECDSA
   check (an OP_CHECKSIG, or a whole CHECKMULTISIG matching loop) instead of running it and
   answers it as if it succeeds.
2. The recorded checks go, in chunks, to `native_verify`, whose compiled loop calls
   libsecp256k1 without the GIL on `threads - 1` worker threads; the caller joins in once it
   has evaluated everything (Core's master thread does the same).
3. An input is valid when its evaluation succeeded and every check it recorded holds: the
   real answers then equal the provisional ones, so a real evaluation would have taken the
   very same path. Any other input is evaluated again with the immediate checker, so every
   verdict and error code is exactly `verify_script`'s.

It must never accept an input that `verify_script` rejects or report a different error:
any shape a fast path does not recognize goes to the generic interpreter.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import NamedTuple

from aipgd.core.transaction import Transaction
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError, ScriptEvalError
from aipgd.script.flags import SIGVERSION_BASE
from aipgd.script.native_verify import CheckBatch, PackedChecks, run_batch
from aipgd.script.sighash import (
    PrecomputedTxData,
    legacy_signature_hash,
    serialize_script_code,
    witness_v0_signature_hash,
)
from aipgd.script.signature import (
    check_pubkey_encoding,
    check_signature_encoding,
    normalized_compact,
    pubkey_size_is_valid,
)
from aipgd.script.templates import Group, flags_usable, sig_entries, template_checks_unchecked
from aipgd.script.verify import verify_script

_OK = ScriptError.SCRIPT_ERR_OK
# Groups per chunk handed to a verification thread. A worker needs the GIL for a moment at
# each chunk boundary and may wait up to the interpreter's switch interval (5 ms) for the
# evaluating thread to hand it over, so chunks are long (up to ~50 ms of libsecp256k1 work),
# yet small enough that several per thread keep the threads evenly loaded at the end.
MIN_CHUNK_GROUPS = 32
MAX_CHUNK_GROUPS = 1024
_NO_MSG = bytes(32)


class SpendInput(NamedTuple):
    """Input `n_in` of `tx`, spending `amount` locked by `script_pubkey`.

    Inputs of one transaction should share `txdata` (or leave it None: the batch then makes
    one per transaction).
    """

    tx: Transaction
    n_in: int
    script_pubkey: bytes
    amount: int
    txdata: PrecomputedTxData | None = None


class DeferringSignatureChecker(TransactionSignatureChecker):
    """A checker that records ECDSA checks and answers them as valid (batch pass 1).

    Everything CheckSig decides before libsecp256k1 (key size, empty signature, DER parse)
    is answered for real. `poisoned` is set where the provisional answers could make the
    evaluation raise an error the real one would not reach in the same way; such an input is
    always evaluated again.
    """

    __slots__ = ("groups", "poisoned")

    defers_checks = True

    def __init__(self, tx: Transaction, n_in: int, amount: int,
                 txdata: PrecomputedTxData | None = None) -> None:
        super().__init__(tx, n_in, amount, txdata)
        self.groups: list[Group] = []
        self.poisoned = False

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes, sigversion: int) -> bool:
        """Core: TransactionSignatureChecker::CheckSig with the final verify recorded."""
        if not pubkey_size_is_valid(pubkey) or not sig:
            return False
        if sigversion == SIGVERSION_BASE:
            sighash = legacy_signature_hash(script_code, self.tx, self.n_in, sig[-1], self.txdata)
        else:
            sighash = witness_v0_signature_hash(script_code, self.tx, self.n_in, sig[-1], self.amount,
                                                self.txdata)
        compact = normalized_compact(sig[:-1])
        if compact is None:
            return False
        self.groups.append(([(compact, sighash)], [pubkey]))
        return True

    def defer_multisig(self, sigs: list[bytes], pubkeys: list[bytes], script_code: bytes, sigversion: int,
                       flags: int) -> bool:
        """Record a whole CHECKMULTISIG matching loop (Core: EvalScript, OP_CHECKMULTISIG).

        The loop checks each pair's encodings as it reaches it, so which encoding error it
        raises depends on the answers. Only a loop whose signatures and keys all pass the
        encoding checks is recorded: its outcome is then the matching result alone.
        """
        try:
            for sig in sigs:
                check_signature_encoding(sig, flags)
            for pubkey in pubkeys:
                check_pubkey_encoding(pubkey, flags, sigversion)
        except ScriptEvalError:
            self.poisoned = True
            return False
        if sigversion == SIGVERSION_BASE:
            entries = sig_entries(sigs, serialize_script_code(script_code), self.tx, self.n_in, self.txdata)
        else:
            entries = []
            for sig in sigs:
                if not sig:
                    entries.append((None, _NO_MSG))
                    continue
                msg = witness_v0_signature_hash(script_code, self.tx, self.n_in, sig[-1], self.amount,
                                                self.txdata)
                entries.append((normalized_compact(sig[:-1]), msg))
        self.groups.append((entries, [k if pubkey_size_is_valid(k) else None for k in pubkeys]))
        return True


# --- the check queue --------------------------------------------------------------------------


class _CheckQueue:
    """Chunks of recorded checks, verified by `threads - 1` workers and, at the end, the caller."""

    __slots__ = ("_error", "_native", "_queue", "_workers", "chunks")

    def __init__(self, threads: int, native: bool) -> None:
        self.chunks: list[PackedChecks] = []
        self._native = native
        self._queue: queue.SimpleQueue[PackedChecks | None] = queue.SimpleQueue()
        self._error: list[BaseException] = []
        self._workers = [threading.Thread(target=self._work, name=f"scriptcheck.{k}", daemon=True)
                         for k in range(max(0, threads - 1))]
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                run_batch(chunk, self._native)
            except BaseException as exc:  # reported by finish(); the chunk's groups stay failed
                self._error.append(exc)

    def submit(self, batch: CheckBatch) -> None:
        chunk = batch.pack()
        self.chunks.append(chunk)
        self._queue.put(chunk)

    def finish(self) -> list[PackedChecks]:
        """Verify what no worker has taken yet, then wait for the workers."""
        while True:
            try:
                chunk = self._queue.get_nowait()
            except queue.Empty:
                break
            if chunk is not None:
                run_batch(chunk, self._native)
        self.stop()
        if self._error:
            raise self._error[0]
        return self.chunks

    def stop(self) -> None:
        """Let the workers finish what they hold and exit (also when evaluation raised)."""
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()
        self._workers = []


def verify_inputs_batch(inputs: Sequence[SpendInput], flags: int, threads: int = 1,
                        native: bool = True) -> list[ScriptError]:
    """Core: the script checks of ConnectBlock / CheckInputs, one result per input.

    Each result is what `verify_script(txin.script_sig, script_pubkey, txin.witness, flags,
    TransactionSignatureChecker(tx, n_in, amount))` returns (SCRIPT_ERR_OK when valid).
    `threads` counts the calling thread; `native=False` verifies in Python (for tests).
    """
    n = len(inputs)
    provisional: list[ScriptError | None] = [None] * n  # None: valid if its checks hold
    rerun = [False] * n
    txdatas: dict[int, PrecomputedTxData] = {}
    templates = flags_usable(flags)
    chunk_groups = max(MIN_CHUNK_GROUPS, min(MAX_CHUNK_GROUPS, n // (8 * max(1, threads))))
    checks = _CheckQueue(threads, native)
    try:
        batch = CheckBatch()
        for i, (tx, n_in, script_pubkey, amount, txdata) in enumerate(inputs):
            if txdata is None:
                txdata = txdatas.get(id(tx))
                if txdata is None:
                    txdata = txdatas[id(tx)] = PrecomputedTxData(tx)
            txin = tx.vin[n_in]
            groups = None
            if templates and not txin.witness:
                groups = template_checks_unchecked(txin.script_sig, script_pubkey, flags, tx, n_in, txdata)
            if groups is None:
                checker = DeferringSignatureChecker(tx, n_in, amount, txdata)
                result = verify_script(txin.script_sig, script_pubkey, txin.witness, flags, checker)
                groups = checker.groups
                if checker.poisoned or (result is not _OK and groups):
                    rerun[i] = True  # provisional answers may have steered it; evaluate for real
                    continue
                if result is not _OK:
                    provisional[i] = result  # no check was deferred: this was the real evaluation
                    continue
            for sigs, keys in groups:
                if len(sigs) == 1 and len(keys) == 1:
                    batch.add_single(i, sigs[0][0], sigs[0][1], keys[0])
                else:
                    batch.add_group(i, sigs, keys)
            if len(batch) >= chunk_groups:
                checks.submit(batch)
                batch = CheckBatch()
        if len(batch):
            checks.submit(batch)
    except BaseException:
        checks.stop()  # verify_script raises for inconsistent flags, as Core asserts
        raise
    for chunk in checks.finish():
        for owner, ok in zip(chunk.owners, chunk.ok.tolist(), strict=True):
            if not ok:
                rerun[owner] = True

    results: list[ScriptError] = []
    for i, (tx, n_in, script_pubkey, amount, txdata) in enumerate(inputs):
        if rerun[i]:
            txin = tx.vin[n_in]
            real = TransactionSignatureChecker(tx, n_in, amount, txdata or txdatas.get(id(tx)))
            results.append(verify_script(txin.script_sig, script_pubkey, txin.witness, flags, real))
        else:
            early = provisional[i]
            results.append(_OK if early is None else early)
    return results
