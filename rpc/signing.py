"""Signing and merging input scripts with explicit keys (Core: script/sign.cpp ProduceSignature,
CombineSignatures, for signrawtransaction and combinerawtransaction without a wallet).

Owns P2PK, P2PKH, bare multisig and P2SH around them. It must never decide validity: the caller
verifies the result with aipgd.script.verify, whose verdict is what the RPC reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import coincurve

from aipgd.core.hashes import hash160
from aipgd.core.transaction import Transaction
from aipgd.script.flags import SIGVERSION_BASE
from aipgd.script.script import ScriptParseError, decode_script, push_data
from aipgd.script.sighash import signature_hash
from aipgd.script.signature import verify_ecdsa
from aipgd.script.standard import TxoutType, solver


@dataclass
class KeyStore:
    """Core: CBasicKeyStore, keys by hash160(pubkey) and redeem scripts by hash160(script)."""

    keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # id -> (secret, pubkey)
    scripts: dict[bytes, bytes] = field(default_factory=dict)

    def add_key(self, secret: bytes, compressed: bool) -> None:
        pubkey = coincurve.PrivateKey(secret).public_key.format(compressed=compressed)
        self.keys[hash160(pubkey)] = (secret, pubkey)

    def add_script(self, script: bytes) -> None:
        self.scripts[hash160(script)] = script

    def secret_for_pubkey(self, pubkey: bytes) -> bytes | None:
        found = self.keys.get(hash160(pubkey))
        return found[0] if found is not None and found[1] == pubkey else None


def _pushes(script: bytes) -> list[bytes] | None:
    """The data pushed by a push-only scriptSig, or None if it is not push-only."""
    try:
        ops = decode_script(script)
    except ScriptParseError:
        return None
    out: list[bytes] = []
    for op in ops:
        if op.data is None or op.opcode > 0x4E:
            if op.opcode == 0:
                out.append(b"")
                continue
            if 0x51 <= op.opcode <= 0x60 or op.opcode == 0x4F:
                out.append(bytes([op.opcode - 0x50]) if op.opcode != 0x4F else b"\x81")
                continue
            return None
        out.append(op.data)
    return out


def _push_script(items: list[bytes]) -> bytes:
    return b"".join(push_data(item) for item in items)


class Signer:
    """Signs one input of `tx` (Core: MutableTransactionSignatureCreator)."""

    def __init__(self, tx: Transaction, n_in: int, amount: int, hash_type: int, keystore: KeyStore) -> None:
        self.tx = tx
        self.n_in = n_in
        self.amount = amount
        self.hash_type = hash_type
        self.keystore = keystore

    def sign(self, pubkey: bytes, script_code: bytes) -> bytes | None:
        secret = self.keystore.secret_for_pubkey(pubkey)
        if secret is None:
            return None
        digest = signature_hash(script_code, self.tx, self.n_in, self.hash_type, self.amount, SIGVERSION_BASE)
        der = coincurve.PrivateKey(secret).sign(digest, hasher=None)
        return bytes(der) + bytes([self.hash_type & 0xFF])

    def _solve(self, script: bytes) -> tuple[TxoutType, list[bytes] | None]:
        kind, solutions = solver(script)
        if kind == TxoutType.TX_PUBKEY:
            sig = self.sign(solutions[0], script)
            return kind, [sig] if sig else None
        if kind == TxoutType.TX_PUBKEYHASH:
            found = self.keystore.keys.get(solutions[0])
            if found is None:
                return kind, None
            sig = self.sign(found[1], script)
            return kind, [sig, found[1]] if sig else None
        if kind == TxoutType.TX_MULTISIG:
            required = solutions[0][0]
            sigs: list[bytes] = []
            for pubkey in solutions[1:-1]:
                if len(sigs) >= required:
                    break
                sig = self.sign(pubkey, script)
                if sig:
                    sigs.append(sig)
            return kind, [b"", *sigs] if len(sigs) == required else ([b"", *sigs] if sigs else None)
        if kind == TxoutType.TX_SCRIPTHASH:
            redeem = self.keystore.scripts.get(solutions[0])
            return kind, [redeem] if redeem is not None else None
        return kind, None

    def produce(self, script_pubkey: bytes) -> bytes:
        """Core: ProduceSignature; returns the scriptSig it could build (possibly partial or empty)."""
        kind, items = self._solve(script_pubkey)
        if kind == TxoutType.TX_SCRIPTHASH and items:
            redeem = items[0]
            _, inner = self._solve(redeem)
            return _push_script([*(inner or []), redeem])
        return _push_script(items or [])


class SigChecker:
    """Tells which pubkey a signature belongs to (Core: CombineMultisig's checker)."""

    def __init__(self, tx: Transaction, n_in: int, amount: int) -> None:
        self.tx = tx
        self.n_in = n_in
        self.amount = amount

    def matches(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        if not sig:
            return False
        digest = signature_hash(script_code, self.tx, self.n_in, sig[-1], self.amount, SIGVERSION_BASE)
        return verify_ecdsa(pubkey, sig[:-1], digest)


def _combine_multisig(solutions: list[bytes], script: bytes, stacks: list[list[bytes]],
                      checker: SigChecker) -> list[bytes]:
    required = solutions[0][0]
    pubkeys = solutions[1:-1]
    found: dict[bytes, bytes] = {}
    for stack in stacks:
        for sig in stack:
            for pubkey in pubkeys:
                if pubkey not in found and checker.matches(sig, pubkey, script):
                    found[pubkey] = sig
                    break
    ordered = [found[p] for p in pubkeys if p in found][:required]
    return [b"", *ordered, *([b""] * (required - len(ordered)))]


def combine(script_pubkey: bytes, checker: SigChecker, sig1: bytes, sig2: bytes) -> bytes:
    """Core: CombineSignatures for non-witness scripts."""
    stack1, stack2 = _pushes(sig1) or [], _pushes(sig2) or []
    return _push_script(_combine_stacks(script_pubkey, checker, stack1, stack2))


def _combine_stacks(script: bytes, checker: SigChecker, s1: list[bytes], s2: list[bytes]) -> list[bytes]:
    kind, solutions = solver(script)
    if kind == TxoutType.TX_MULTISIG:
        return _combine_multisig(solutions, script, [s1, s2], checker)
    if kind == TxoutType.TX_SCRIPTHASH:
        if not s1 or not s1[-1]:
            return s2
        if not s2 or not s2[-1]:
            return s1
        redeem = s2[-1]
        inner = _combine_stacks(redeem, checker, s1[:-1], s2[:-1])
        return [*inner, redeem]
    # Non-multisig: keep the first unless it is empty (Core: "pick the one with more stuff").
    if not s1 or not s1[0]:
        return s2
    return s1
