"""Signature hashes: legacy (Core: SignatureHash / CTransactionSignatureSerializer) and BIP143.

Owns `signature_hash` and `PrecomputedTxData`, the per-transaction pieces (serialized
prevouts, sequences, outputs and the BIP143 midstate hashes) computed once and shared by
every input's signature checks. It must never mutate a transaction or look at coins: the
spent amount is passed in.
"""

from __future__ import annotations

import struct

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import ser_compact_size
from aipgd.core.transaction import Transaction
from aipgd.script.flags import (
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_NONE,
    SIGHASH_SINGLE,
    SIGVERSION_WITNESS_V0,
)

# Core returns uint256 one for SIGHASH_SINGLE without a matching output (the "SIGHASH_SINGLE
# bug"): signatures over this constant are valid, so consensus must keep producing it.
SIGHASH_ONE = b"\x01" + b"\x00" * 31
_ZERO32 = b"\x00" * 32
# Core: CTxOut() serialized, nValue -1 and an empty script (SIGHASH_SINGLE blanks).
_NULL_TXOUT = b"\xff" * 8 + b"\x00"
_ZERO_SEQUENCE = b"\x00" * 4
_I64 = struct.Struct("<q")
_OP_CODESEPARATOR = 0xAB
_ALL_LE32 = SIGHASH_ALL.to_bytes(4, "little")


class PrecomputedTxData:
    """Core: PrecomputedTransactionData, extended with the legacy serialization pieces.

    Every field is computed on first use; concurrent first uses compute the same bytes, so
    the object can be shared between verification threads without a lock.
    """

    __slots__ = ("_all_outputs_tail", "_blank_inputs", "_hash_outputs", "_hash_prevouts", "_hash_sequence",
                 "_inputs_head", "_legacy_all", "_outputs", "_prevouts", "_sequences", "tx")

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self._prevouts: list[bytes] | None = None
        self._sequences: list[bytes] | None = None
        self._blank_inputs: list[bytes] | None = None
        self._outputs: list[bytes] | None = None
        self._hash_prevouts: bytes | None = None
        self._hash_sequence: bytes | None = None
        self._hash_outputs: bytes | None = None
        self._inputs_head: bytes | None = None
        self._all_outputs_tail: bytes | None = None
        self._legacy_all: dict[int, tuple[bytes, bytes]] = {}

    @property
    def prevouts(self) -> list[bytes]:
        if self._prevouts is None:
            self._prevouts = [txin.prevout.serialize() for txin in self.tx.vin]
        return self._prevouts

    @property
    def sequences(self) -> list[bytes]:
        if self._sequences is None:
            self._sequences = [txin.sequence.to_bytes(4, "little") for txin in self.tx.vin]
        return self._sequences

    @property
    def blank_inputs(self) -> list[bytes]:
        """Each input as legacy sighash writes the ones not being signed (empty scriptSig)."""
        if self._blank_inputs is None:
            self._blank_inputs = [p + b"\x00" + s for p, s in zip(self.prevouts, self.sequences, strict=True)]
        return self._blank_inputs

    @property
    def outputs(self) -> list[bytes]:
        if self._outputs is None:
            self._outputs = [out.serialize() for out in self.tx.vout]
        return self._outputs

    @property
    def inputs_head(self) -> bytes:
        """Version and input count: how every legacy preimage without ANYONECANPAY starts."""
        if self._inputs_head is None:
            self._inputs_head = (self.tx.version & 0xFFFFFFFF).to_bytes(4, "little") + ser_compact_size(
                len(self.tx.vin))
        return self._inputs_head

    @property
    def all_outputs_tail(self) -> bytes:
        """Output count, outputs and lock time: the end of every legacy SIGHASH_ALL preimage."""
        if self._all_outputs_tail is None:
            self._all_outputs_tail = (ser_compact_size(len(self.tx.vout)) + b"".join(self.outputs)
                                      + self.tx.locktime.to_bytes(4, "little"))
        return self._all_outputs_tail

    def legacy_all_parts(self, n_in: int) -> tuple[bytes, bytes]:
        """What comes before and after input `n_in`'s scriptCode in its legacy preimage for
        hash type exactly SIGHASH_ALL (cached per input)."""
        parts = self._legacy_all.get(n_in)
        if parts is None:
            blanks = self.blank_inputs
            parts = self._legacy_all[n_in] = (
                b"".join((self.inputs_head, *blanks[:n_in], self.prevouts[n_in])),
                b"".join((self.sequences[n_in], *blanks[n_in + 1:], self.all_outputs_tail, _ALL_LE32)))
        return parts

    @property
    def hash_prevouts(self) -> bytes:
        if self._hash_prevouts is None:
            self._hash_prevouts = sha256d(b"".join(self.prevouts))
        return self._hash_prevouts

    @property
    def hash_sequence(self) -> bytes:
        if self._hash_sequence is None:
            self._hash_sequence = sha256d(b"".join(self.sequences))
        return self._hash_sequence

    @property
    def hash_outputs(self) -> bytes:
        if self._hash_outputs is None:
            self._hash_outputs = sha256d(b"".join(self.outputs))
        return self._hash_outputs


def _code_separators(script: bytes) -> tuple[list[int], int]:
    """Offsets of OP_CODESEPARATOR ops, and where Core's GetOp loop stops.

    The stop is the end of the script unless a push is truncated; then it is the position
    GetOp had advanced to when it gave up (after the opcode and any length bytes it read).
    """
    end = len(script)
    pc = 0
    separators: list[int] = []
    while pc < end:
        opcode = script[pc]
        pc += 1
        if opcode <= 0x4E:
            if opcode < 0x4C:
                size = opcode
            else:
                width = 1 if opcode == 0x4C else 2 if opcode == 0x4D else 4
                if end - pc < width:
                    return separators, pc
                size = int.from_bytes(script[pc:pc + width], "little")
                pc += width
            if end - pc < size:
                return separators, pc
            pc += size
        elif opcode == _OP_CODESEPARATOR:
            separators.append(pc - 1)
        elif opcode == 0xC0:
            pc = end  # OP_RVN_ASSET: the rest is data
    return separators, end


def serialize_script_code(script: bytes) -> bytes:
    """Core: CTransactionSignatureSerializer::SerializeScriptCode.

    OP_CODESEPARATORs are dropped; the length prefix is computed before dropping anything
    else, and a truncated push at the end cuts the written bytes where Core's GetOp stops.
    """
    end = len(script)
    separators, stop = _code_separators(script)
    if not separators and stop == end:
        return ser_compact_size(end) + script
    pieces = []
    begin = 0
    for sep in separators:
        pieces.append(script[begin:sep])
        begin = sep + 1
    if begin != end:
        pieces.append(script[begin:stop])
    return ser_compact_size(end - len(separators)) + b"".join(pieces)


def legacy_signature_hash(script_code: bytes, tx: Transaction, n_in: int, hash_type: int,
                          txdata: PrecomputedTxData | None = None) -> bytes:
    """Core: SignatureHash for SIGVERSION_BASE. Returns the digest in internal byte order."""
    if hash_type & 0x1F == SIGHASH_SINGLE and n_in >= len(tx.vout):
        return SIGHASH_ONE
    return legacy_signature_hash_serialized(serialize_script_code(script_code), tx, n_in, hash_type, txdata)


def legacy_signature_hash_serialized(code: bytes, tx: Transaction, n_in: int, hash_type: int,
                                     txdata: PrecomputedTxData | None = None) -> bytes:
    """`legacy_signature_hash` for a scriptCode already through `serialize_script_code`."""
    base_type = hash_type & 0x1F
    single = base_type == SIGHASH_SINGLE
    none = base_type == SIGHASH_NONE
    if single and n_in >= len(tx.vout):
        return SIGHASH_ONE
    data = txdata if txdata is not None else PrecomputedTxData(tx)
    if hash_type == SIGHASH_ALL:
        # The common case, from cached pieces: only this input's scriptCode differs.
        head, tail = data.legacy_all_parts(n_in)
        return sha256d(head + code + tail)
    parts: list[bytes] = [(tx.version & 0xFFFFFFFF).to_bytes(4, "little")]
    if hash_type & SIGHASH_ANYONECANPAY:
        parts += (b"\x01", data.prevouts[n_in], code, data.sequences[n_in])
    else:
        n = len(tx.vin)
        parts.append(ser_compact_size(n))
        if single or none:
            # Other inputs' sequences are zeroed so they can be updated at will.
            for i, prevout in enumerate(data.prevouts):
                if i == n_in:
                    parts += (prevout, code, data.sequences[i])
                else:
                    parts += (prevout, b"\x00", _ZERO_SEQUENCE)
        else:
            blanks = data.blank_inputs
            parts += blanks[:n_in]
            parts += (data.prevouts[n_in], code, data.sequences[n_in])
            parts += blanks[n_in + 1:]
    if none:
        parts.append(b"\x00")
    elif single:
        parts.append(ser_compact_size(n_in + 1))
        parts += [_NULL_TXOUT] * n_in
        parts.append(data.outputs[n_in])
    else:
        parts.append(ser_compact_size(len(tx.vout)))
        parts += data.outputs
    parts.append(tx.locktime.to_bytes(4, "little"))
    parts.append((hash_type & 0xFFFFFFFF).to_bytes(4, "little"))
    return sha256d(b"".join(parts))


def witness_v0_signature_hash(script_code: bytes, tx: Transaction, n_in: int, hash_type: int, amount: int,
                              txdata: PrecomputedTxData | None = None) -> bytes:
    """BIP143 digest for witness v0 (Core: SignatureHash with SIGVERSION_WITNESS_V0)."""
    data = txdata if txdata is not None else PrecomputedTxData(tx)
    base_type = hash_type & 0x1F
    anyone = hash_type & SIGHASH_ANYONECANPAY
    hash_prevouts = _ZERO32 if anyone else data.hash_prevouts
    if anyone or base_type in (SIGHASH_SINGLE, SIGHASH_NONE):
        hash_sequence = _ZERO32
    else:
        hash_sequence = data.hash_sequence
    if base_type != SIGHASH_SINGLE and base_type != SIGHASH_NONE:
        hash_outputs = data.hash_outputs
    elif base_type == SIGHASH_SINGLE and n_in < len(tx.vout):
        hash_outputs = sha256d(data.outputs[n_in])
    else:
        hash_outputs = _ZERO32
    return sha256d(b"".join((
        (tx.version & 0xFFFFFFFF).to_bytes(4, "little"),
        hash_prevouts,
        hash_sequence,
        data.prevouts[n_in],
        ser_compact_size(len(script_code)), script_code,
        _I64.pack(amount),
        data.sequences[n_in],
        hash_outputs,
        tx.locktime.to_bytes(4, "little"),
        (hash_type & 0xFFFFFFFF).to_bytes(4, "little"),
    )))


def signature_hash(script_code: bytes, tx: Transaction, n_in: int, hash_type: int, amount: int,
                   sigversion: int, txdata: PrecomputedTxData | None = None) -> bytes:
    """Core: SignatureHash. `n_in` must index an input of `tx`."""
    if not 0 <= n_in < len(tx.vin):
        raise IndexError(f"input {n_in} out of range for a transaction with {len(tx.vin)} inputs")
    if sigversion == SIGVERSION_WITNESS_V0:
        return witness_v0_signature_hash(script_code, tx, n_in, hash_type, amount, txdata)
    return legacy_signature_hash(script_code, tx, n_in, hash_type, txdata)
