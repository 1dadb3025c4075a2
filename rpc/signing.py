"""Signing and merging input scripts with explicit keys (Core: script/sign.cpp ProduceSignature,
CombineSignatures, for signrawtransaction and combinerawtransaction without a wallet).

Owns P2PK, P2PKH, bare multisig, P2SH around them, and the version 0 witness programs (P2WPKH,
P2WSH, and both inside P2SH) with BIP143 signatures over the spent amount. It must never decide
validity: the caller verifies the result with aipgd.script.verify, whose verdict is what the RPC
reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import coincurve

from aipgd.core.hashes import hash160, ripemd160
from aipgd.core.transaction import Transaction
from aipgd.script.flags import SIGVERSION_BASE, SIGVERSION_WITNESS_V0
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

    def key_for_pubkey(self, pubkey: bytes) -> tuple[bytes, bytes] | None:
        """(secret, pubkey) for the key whose id is hash160(pubkey) (Core: GetKey(pubkey.GetID()))."""
        found = self.keys.get(hash160(pubkey))
        return found if found is not None and found[1] == pubkey else None

    def secret_for_pubkey(self, pubkey: bytes) -> bytes | None:
        found = self.key_for_pubkey(pubkey)
        return found[0] if found is not None else None


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
    """Core: PushAll, empty items as OP_0 and one-byte 1..16 as OP_1..OP_16."""
    out = bytearray()
    for item in items:
        if len(item) == 1 and 1 <= item[0] <= 16:
            out.append(0x50 + item[0])
        else:
            out += push_data(item)
    return bytes(out)


def _p2pkh_script(key_hash: bytes) -> bytes:
    """OP_DUP OP_HASH160 <key_hash> OP_EQUALVERIFY OP_CHECKSIG, the P2WPKH script code."""
    return b"\x76\xa9" + push_data(key_hash) + b"\x88\xac"


@dataclass
class SignatureData:
    """Core: SignatureData, an input's scriptSig and witness stack."""

    script_sig: bytes = b""
    witness: list[bytes] = field(default_factory=list)


_WITNESS_OR_P2SH = (TxoutType.TX_SCRIPTHASH, TxoutType.TX_WITNESS_V0_SCRIPTHASH,
                    TxoutType.TX_WITNESS_V0_KEYHASH)


class Signer:
    """Signs one input of `tx` (Core: MutableTransactionSignatureCreator)."""

    def __init__(self, tx: Transaction, n_in: int, amount: int, hash_type: int, keystore: KeyStore) -> None:
        self.tx = tx
        self.n_in = n_in
        self.amount = amount
        self.hash_type = hash_type
        self.keystore = keystore

    def sign(self, pubkey: bytes, script_code: bytes, sigversion: int = SIGVERSION_BASE) -> bytes | None:
        """Core: CreateSig. No signature without the key, nor with an uncompressed key in a witness."""
        found = self.keystore.key_for_pubkey(pubkey)
        if found is None:
            return None
        secret, key_pubkey = found
        if sigversion == SIGVERSION_WITNESS_V0 and len(key_pubkey) != 33:
            return None
        digest = signature_hash(script_code, self.tx, self.n_in, self.hash_type, self.amount, sigversion)
        der = coincurve.PrivateKey(secret).sign(digest, hasher=None)
        return bytes(der) + bytes([self.hash_type & 0xFF])

    def _step(self, script: bytes, sigversion: int) -> tuple[TxoutType, list[bytes], bool]:
        """Core: SignStep. The template type, the items it could produce and whether they solve it."""
        kind, solutions = solver(script)
        if kind == TxoutType.TX_PUBKEY:
            sig = self.sign(solutions[0], script, sigversion)
            return kind, ([sig] if sig else []), sig is not None
        if kind == TxoutType.TX_PUBKEYHASH:
            found = self.keystore.keys.get(solutions[0])
            sig = self.sign(found[1], script, sigversion) if found is not None else None
            if found is None or sig is None:
                return kind, [], False
            return kind, [sig, found[1]], True
        if kind == TxoutType.TX_MULTISIG:
            required = solutions[0][0]
            sigs: list[bytes] = []
            for pubkey in solutions[1:-1]:
                if len(sigs) >= required:
                    break
                sig = self.sign(pubkey, script, sigversion)
                if sig:
                    sigs.append(sig)
            return kind, [b"", *sigs], len(sigs) == required
        if kind == TxoutType.TX_SCRIPTHASH:
            redeem = self.keystore.scripts.get(solutions[0])
            return kind, ([redeem] if redeem is not None else []), redeem is not None
        if kind == TxoutType.TX_WITNESS_V0_KEYHASH:
            return kind, [solutions[0]], True
        if kind == TxoutType.TX_WITNESS_V0_SCRIPTHASH:
            # The keystore holds scripts by hash160 = RIPEMD160(SHA256(script)), and the
            # program is SHA256(script).
            witness_script = self.keystore.scripts.get(ripemd160(solutions[0]))
            found_ws = witness_script is not None
            return kind, ([witness_script] if witness_script is not None else []), found_ws
        return kind, [], False

    def produce(self, script_pubkey: bytes) -> SignatureData:
        """Core: ProduceSignature; the scriptSig and witness it could build (possibly partial or empty)."""
        kind, result, solved = self._step(script_pubkey, SIGVERSION_BASE)
        subscript: bytes | None = None
        if solved and kind == TxoutType.TX_SCRIPTHASH:
            subscript = result[0]
            kind, result, solved = self._step(subscript, SIGVERSION_BASE)
            solved = solved and kind != TxoutType.TX_SCRIPTHASH
        witness: list[bytes] = []
        if solved and kind == TxoutType.TX_WITNESS_V0_KEYHASH:
            _, witness, solved = self._step(_p2pkh_script(result[0]), SIGVERSION_WITNESS_V0)
            result = []
        elif solved and kind == TxoutType.TX_WITNESS_V0_SCRIPTHASH:
            witness_script = result[0]
            sub_kind, items, solved = self._step(witness_script, SIGVERSION_WITNESS_V0)
            solved = solved and sub_kind not in _WITNESS_OR_P2SH
            witness = [*items, witness_script]
            result = []
        if subscript is not None:
            result.append(subscript)
        return SignatureData(_push_script(result), witness)


class SigChecker:
    """Tells which pubkey a signature belongs to (Core: CombineMultisig's checker)."""

    def __init__(self, tx: Transaction, n_in: int, amount: int) -> None:
        self.tx = tx
        self.n_in = n_in
        self.amount = amount

    def matches(self, sig: bytes, pubkey: bytes, script_code: bytes,
                sigversion: int = SIGVERSION_BASE) -> bool:
        if not sig:
            return False
        digest = signature_hash(script_code, self.tx, self.n_in, sig[-1], self.amount, sigversion)
        return verify_ecdsa(pubkey, sig[:-1], digest)


@dataclass
class _Stacks:
    script: list[bytes]
    witness: list[bytes]


def _combine_multisig(solutions: list[bytes], script: bytes, sigs1: list[bytes], sigs2: list[bytes],
                      checker: SigChecker, sigversion: int) -> list[bytes]:
    """Core: CombineMultisig, every distinct signature matched to the first pubkey it is valid for."""
    required = solutions[0][0]
    pubkeys = solutions[1:-1]
    found: dict[bytes, bytes] = {}
    for sig in sorted({item for item in (*sigs1, *sigs2) if item}):
        for pubkey in pubkeys:
            if pubkey not in found and checker.matches(sig, pubkey, script, sigversion):
                found[pubkey] = sig
                break
    ordered = [found[p] for p in pubkeys if p in found][:required]
    return [b"", *ordered, *([b""] * (required - len(ordered)))]


def combine(script_pubkey: bytes, checker: SigChecker, data1: SignatureData,
            data2: SignatureData) -> SignatureData:
    """Core: CombineSignatures, scriptSigs and witness stacks together."""
    stacks1 = _Stacks(_pushes(data1.script_sig) or [], list(data1.witness))
    stacks2 = _Stacks(_pushes(data2.script_sig) or [], list(data2.witness))
    merged = _combine_stacks(script_pubkey, checker, stacks1, stacks2, SIGVERSION_BASE)
    return SignatureData(_push_script(merged.script), merged.witness)


_FIRST_ITEM_TYPES = (TxoutType.TX_PUBKEY, TxoutType.TX_PUBKEYHASH, TxoutType.TX_NEW_ASSET,
                     TxoutType.TX_TRANSFER_ASSET, TxoutType.TX_REISSUE_ASSET)
_UNKNOWN_TYPES = (TxoutType.TX_NONSTANDARD, TxoutType.TX_NULL_DATA, TxoutType.TX_RESTRICTED_ASSET_DATA)


def _combine_stacks(script: bytes, checker: SigChecker, s1: _Stacks, s2: _Stacks, sigversion: int) -> _Stacks:
    kind, solutions = solver(script)
    if kind in _UNKNOWN_TYPES:
        # Nothing is known about these: the bigger one is assumed right.
        return s1 if len(s1.script) >= len(s2.script) else s2
    if kind in _FIRST_ITEM_TYPES:
        # Signatures are bigger than placeholders or empty scripts.
        return s2 if not s1.script or not s1.script[0] else s1
    if kind == TxoutType.TX_WITNESS_V0_KEYHASH:
        return s2 if not s1.witness or not s1.witness[0] else s1
    if kind == TxoutType.TX_MULTISIG:
        return _Stacks(_combine_multisig(solutions, script, s1.script, s2.script, checker, sigversion), [])
    if kind == TxoutType.TX_SCRIPTHASH:
        if not s1.script or not s1.script[-1]:
            return s2
        if not s2.script or not s2.script[-1]:
            return s1
        redeem = s1.script[-1]
        inner = _combine_stacks(redeem, checker, _Stacks(s1.script[:-1], s1.witness),
                                _Stacks(s2.script[:-1], s2.witness), sigversion)
        return _Stacks([*inner.script, redeem], inner.witness)
    if kind == TxoutType.TX_WITNESS_V0_SCRIPTHASH:
        if not s1.witness or not s1.witness[-1]:
            return s2
        if not s2.witness or not s2.witness[-1]:
            return s1
        witness_script = s1.witness[-1]
        inner = _combine_stacks(witness_script, checker, _Stacks(s1.witness[:-1], []),
                                _Stacks(s2.witness[:-1], []), SIGVERSION_WITNESS_V0)
        return _Stacks([], [*inner.script, witness_script])
    return _Stacks([], [])
