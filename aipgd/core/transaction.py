"""Transactions: outpoints, inputs, outputs and their legacy/witness (BIP144) encodings.

Owns the immutable `Transaction` and its txid/wtxid. Parsing is strict (Core's
UnserializeTransaction): unknown optional-data flags and superfluous witness records are
errors. It must never judge validity beyond the encoding: that is consensus' job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from aipgd.core.hashes import sha256d
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_compact_size,
    ser_i32,
    ser_i64,
    ser_u32,
    ser_var_bytes,
)
from aipgd.core.uint256 import ZERO_HASH, hash_to_hex

COIN = 100_000_000
# Core: amount.h MAX_MONEY (Ravencoin's 21 billion coin cap, kept by AIPG).
MAX_MONEY = 21_000_000_000 * COIN
SEQUENCE_FINAL = 0xFFFFFFFF
NULL_INDEX = 0xFFFFFFFF


class OutPoint(NamedTuple):
    """A reference to output `n` of transaction `txid` (internal byte order).

    A named tuple, not a dataclass: outpoints key every UTXO cache, and a tuple hashes and compares
    in C (a frozen dataclass's __hash__ and __eq__ are Python calls, per dict lookup)."""

    txid: bytes
    n: int

    def serialize(self) -> bytes:
        return self.txid + ser_u32(self.n)

    @classmethod
    def read(cls, r: ByteReader) -> OutPoint:
        return cls(r.hash256("outpoint txid"), r.u32("outpoint index"))

    def is_null(self) -> bool:
        return self.txid == ZERO_HASH and self.n == NULL_INDEX

    def __str__(self) -> str:
        return f"{hash_to_hex(self.txid)}:{self.n}"


NULL_OUTPOINT = OutPoint(ZERO_HASH, NULL_INDEX)


@dataclass(frozen=True, slots=True)
class TxIn:
    prevout: OutPoint
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL
    witness: tuple[bytes, ...] = ()

    def serialize(self) -> bytes:
        return self.prevout.serialize() + ser_var_bytes(self.script_sig) + ser_u32(self.sequence)

    @classmethod
    def read(cls, r: ByteReader) -> TxIn:
        prevout = OutPoint.read(r)
        script_sig = r.var_bytes("scriptSig")
        sequence = r.u32("nSequence")
        return cls(prevout, script_sig, sequence)


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return ser_i64(self.value) + ser_var_bytes(self.script_pubkey)

    @classmethod
    def read(cls, r: ByteReader) -> TxOut:
        return cls(r.i64("nValue"), r.var_bytes("scriptPubKey"))


def _slot_setter(cls: type, name: str) -> Callable[[object, Any], None]:
    setter: Callable[[object, Any], None] = vars(cls)[name].__set__
    return setter


# Constructors for a parser that has read every field with its type already (Block.deserialize's
# fast path). They give the same objects as calling the class, without the frozen dataclass
# __init__ (an object.__setattr__ per field): most of the cost of parsing a block.
_new = object.__new__
_set_prevout, _set_script_sig, _set_sequence, _set_witness = (
    _slot_setter(TxIn, name) for name in ("prevout", "script_sig", "sequence", "witness"))
_set_value, _set_script_pubkey = (_slot_setter(TxOut, name) for name in ("value", "script_pubkey"))


def parsed_txin(prevout: OutPoint, script_sig: bytes, sequence: int, witness: tuple[bytes, ...] = ()) -> TxIn:
    txin: TxIn = _new(TxIn)
    _set_prevout(txin, prevout)
    _set_script_sig(txin, script_sig)
    _set_sequence(txin, sequence)
    _set_witness(txin, witness)
    return txin


def parsed_txout(value: int, script_pubkey: bytes) -> TxOut:
    txout: TxOut = _new(TxOut)
    _set_value(txout, value)
    _set_script_pubkey(txout, script_pubkey)
    return txout


def _ser_witness(stack: tuple[bytes, ...]) -> bytes:
    return ser_compact_size(len(stack)) + b"".join(ser_var_bytes(item) for item in stack)


def _read_witness(r: ByteReader) -> tuple[bytes, ...]:
    return tuple(r.vector(lambda rr: rr.var_bytes("witness item"), "witness stack"))


# Smallest encodings, used to bound counts by the bytes that remain.
_MIN_TXIN_SIZE = 32 + 4 + 1 + 4
_MIN_TXOUT_SIZE = 8 + 1


@dataclass(frozen=True)
class Transaction:
    version: int
    vin: tuple[TxIn, ...]
    vout: tuple[TxOut, ...]
    locktime: int = 0
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False, hash=False)

    # --- encoding -------------------------------------------------------------------------
    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.vin)

    def serialize(self, with_witness: bool = True) -> bytes:
        """Core: SerializeTransaction; the BIP144 marker/flag only when a witness exists."""
        if with_witness and self.has_witness():
            return b"".join((
                ser_i32(self.version), b"\x00\x01",
                ser_compact_size(len(self.vin)), *(txin.serialize() for txin in self.vin),
                ser_compact_size(len(self.vout)), *(txout.serialize() for txout in self.vout),
                *(_ser_witness(txin.witness) for txin in self.vin),
                ser_u32(self.locktime),
            ))
        return b"".join((
            ser_i32(self.version),
            ser_compact_size(len(self.vin)), *(txin.serialize() for txin in self.vin),
            ser_compact_size(len(self.vout)), *(txout.serialize() for txout in self.vout),
            ser_u32(self.locktime),
        ))

    @classmethod
    def read(cls, r: ByteReader) -> Transaction:
        """Core: UnserializeTransaction, with witness allowed."""
        start = r.pos
        version = r.i32("tx version")
        vin = r.vector(TxIn.read, "tx inputs", _MIN_TXIN_SIZE)
        flags = 0
        vout: list[TxOut]
        if not vin:
            # Either a BIP144 marker (0x00) or a genuinely empty input list.
            flags = r.u8("tx witness flag")
            if flags != 0:
                vin = r.vector(TxIn.read, "tx inputs", _MIN_TXIN_SIZE)
                vout = r.vector(TxOut.read, "tx outputs", _MIN_TXOUT_SIZE)
            else:
                vout = []
        else:
            vout = r.vector(TxOut.read, "tx outputs", _MIN_TXOUT_SIZE)
        if flags & 1:
            flags ^= 1
            vin = [TxIn(t.prevout, t.script_sig, t.sequence, _read_witness(r)) for t in vin]
            if not any(t.witness for t in vin):
                raise DeserializationError("tx witness", start, "superfluous witness record")
        if flags:
            raise DeserializationError("tx witness flag", start, "unknown transaction optional data")
        locktime = r.u32("tx locktime")
        tx = cls(version, tuple(vin), tuple(vout), locktime)
        raw = r.slice_since(start)
        # The parse is strict, so serializing `tx` again gives back exactly `raw`: its sizes are
        # known now (Core keeps them no more than we do, but it serializes faster).
        state = tx.__dict__
        state["total_size"] = len(raw)
        if tx.has_witness():
            tx._cache["wtxid"] = sha256d(raw)
        else:
            tx._cache["txid"] = sha256d(raw)
            state["base_size"] = len(raw)
        return tx

    @classmethod
    def from_bytes(cls, data: bytes) -> Transaction:
        r = ByteReader(data)
        tx = cls.read(r)
        r.expect_end("transaction")
        return tx

    # --- identity -------------------------------------------------------------------------
    @property
    def txid(self) -> bytes:
        """Hash of the witness-stripped encoding (internal byte order)."""
        cached = self._cache.get("txid")
        if cached is None:
            cached = self._cache["txid"] = sha256d(self.serialize(with_witness=False))
        return cached

    @property
    def wtxid(self) -> bytes:
        """BIP141 wtxid; equals the txid when the transaction has no witness."""
        if not self.has_witness():
            return self.txid
        cached = self._cache.get("wtxid")
        if cached is None:
            cached = self._cache["wtxid"] = sha256d(self.serialize(with_witness=True))
        return cached

    @property
    def txid_hex(self) -> str:
        return hash_to_hex(self.txid)

    @cached_property
    def total_size(self) -> int:
        return len(self.serialize(with_witness=True))

    @cached_property
    def base_size(self) -> int:
        return len(self.serialize(with_witness=False))

    @property
    def weight(self) -> int:
        """BIP141: base size * 3 + total size."""
        return self.base_size * 3 + self.total_size

    @classmethod
    def parsed(cls, version: int, vin: tuple[TxIn, ...], vout: tuple[TxOut, ...], locktime: int, *,
               txid: bytes, wtxid: bytes | None, total_size: int, base_size: int) -> Transaction:
        """A transaction just parsed, with its hashes and sizes (Block.deserialize's fast path):
        what the constructor gives, filled in as `read` fills it, without the frozen __init__."""
        tx: Transaction = _new(cls)
        cache = {"txid": txid} if wtxid is None else {"txid": txid, "wtxid": wtxid}
        tx.__dict__.update(version=version, vin=vin, vout=vout, locktime=locktime, _cache=cache,
                           total_size=total_size, base_size=base_size)
        return tx

    def is_coinbase(self) -> bool:
        vin = self.vin
        return len(vin) == 1 and vin[0].prevout == NULL_OUTPOINT
