"""Signature checkers: what the interpreter asks of the transaction being verified.

Owns `BaseSignatureChecker` (no transaction: every check fails) and
`TransactionSignatureChecker` (Core: TransactionSignatureChecker — sighash, ECDSA, the
CHECKLOCKTIMEVERIFY and CHECKSEQUENCEVERIFY comparisons). It must never read chain state;
the spent amount and precomputed sighash data come from the caller.
"""

from __future__ import annotations

from typing import ClassVar

from aipgd.core.transaction import SEQUENCE_FINAL, Transaction
from aipgd.script.flags import SIGVERSION_BASE
from aipgd.script.script import LOCKTIME_THRESHOLD
from aipgd.script.sighash import PrecomputedTxData, legacy_signature_hash, witness_v0_signature_hash
from aipgd.script.signature import pubkey_size_is_valid, verify_ecdsa

# BIP68 bits of nSequence (Core: CTxIn).
SEQUENCE_LOCKTIME_DISABLE_FLAG = 1 << 31
SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22
SEQUENCE_LOCKTIME_MASK = 0x0000FFFF
SEQUENCE_LOCKTIME_GRANULARITY = 9


class BaseSignatureChecker:
    """Core: BaseSignatureChecker — used where no transaction is in scope."""

    __slots__ = ()

    # True for a checker that records signature checks to answer them later (the batch
    # verifier's first pass); the interpreter then offers it whole CHECKMULTISIG loops.
    defers_checks: ClassVar[bool] = False

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes, sigversion: int) -> bool:
        return False

    def defer_multisig(self, sigs: list[bytes], pubkeys: list[bytes], script_code: bytes, sigversion: int,
                       flags: int) -> bool:
        """Take over a CHECKMULTISIG matching loop (lists in the order the loop visits them).

        True: the loop is recorded and the interpreter proceeds as if it matched every
        signature. False: the interpreter runs the loop itself through check_sig.
        """
        return False

    def check_lock_time(self, lock_time: int) -> bool:
        return False

    def check_sequence(self, sequence: int) -> bool:
        return False


class TransactionSignatureChecker(BaseSignatureChecker):
    """Checks signatures and lock times of input `n_in` of `tx`, which spends `amount`."""

    __slots__ = ("amount", "n_in", "tx", "txdata")

    def __init__(self, tx: Transaction, n_in: int, amount: int,
                 txdata: PrecomputedTxData | None = None) -> None:
        self.tx = tx
        self.n_in = n_in
        self.amount = amount
        self.txdata = txdata if txdata is not None else PrecomputedTxData(tx)

    def verify_signature(self, der: bytes, pubkey: bytes, sighash: bytes) -> bool:
        return verify_ecdsa(pubkey, der, sighash)

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes, sigversion: int) -> bool:
        """Core: TransactionSignatureChecker::CheckSig; the last byte of `sig` is the hash type."""
        if not pubkey_size_is_valid(pubkey) or not sig:
            return False
        if sigversion == SIGVERSION_BASE:
            sighash = legacy_signature_hash(script_code, self.tx, self.n_in, sig[-1], self.txdata)
        else:
            sighash = witness_v0_signature_hash(script_code, self.tx, self.n_in, sig[-1], self.amount,
                                                self.txdata)
        return self.verify_signature(sig[:-1], pubkey, sighash)

    def check_lock_time(self, lock_time: int) -> bool:
        """Core: CheckLockTime (BIP65)."""
        tx_lock_time = self.tx.locktime
        # Heights compare only with heights and times only with times.
        if (tx_lock_time < LOCKTIME_THRESHOLD) != (lock_time < LOCKTIME_THRESHOLD):
            return False
        if lock_time > tx_lock_time:
            return False
        # A final input would let the transaction ignore nLockTime altogether.
        return self.tx.vin[self.n_in].sequence != SEQUENCE_FINAL

    def check_sequence(self, sequence: int) -> bool:
        """Core: CheckSequence (BIP112)."""
        tx_sequence = self.tx.vin[self.n_in].sequence
        if (self.tx.version & 0xFFFFFFFF) < 2:
            return False
        if tx_sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            return False
        mask = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK
        tx_masked = tx_sequence & mask
        masked = sequence & mask
        if (tx_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) != (masked < SEQUENCE_LOCKTIME_TYPE_FLAG):
            return False
        return masked <= tx_masked
