"""GIL-free verification of recorded ECDSA checks (the expensive half of Core's CCheckQueue).

Owns `CheckBatch`, the packed form of the signature checks that deferred script evaluation
recorded, and `run_batch`, which answers them: a Numba-compiled loop (nogil) calls
libsecp256k1's secp256k1_ec_pubkey_parse / secp256k1_ecdsa_signature_parse_compact /
secp256k1_ecdsa_verify through ctypes function pointers into coincurve's own extension, so
several threads verify in parallel without the interpreter. Where Numba or the symbols are
missing, the same loop runs in Python over `signature.verify_compact`.

A check is a *group*, Core's OP_CHECKMULTISIG matching loop (a single OP_CHECKSIG is the
1-of-1 group): signatures and keys in the order the loop visits them, and the group succeeds
iff the loop matches every signature. This module must never decide encodings, sighashes or
script semantics: a signature or key the caller marks invalid is one CheckSig would answer
false for before reaching libsecp256k1.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from aipgd.script.signature import verify_compact

_U8 = npt.NDArray[np.uint8]
_I64 = npt.NDArray[np.int64]

# sizeof(secp256k1_pubkey) and sizeof(secp256k1_ecdsa_signature): opaque 64-byte structs.
_OPAQUE = 64
_PUBKEY_MAX = 65
_NO_COMPACT = bytes(64)
_NO_PUBKEY = bytes(_PUBKEY_MAX)


class CheckBatch:
    """Groups of checks being recorded (Python lists), then packed into numpy buffers.

    Signature j of the batch is `compacts[j]` (normalized R || S, or zeros with `sig_ok` 0
    for a signature CheckSig rejects before libsecp256k1) with message `msgs[j]`; key k is
    `pubkeys[k]` (zero-padded to 65 bytes, length 0 for a key whose size is invalid).
    """

    __slots__ = ("compacts", "g_key", "g_nkeys", "g_nsigs", "g_sig", "msgs", "owners", "pubkey_lens",
                 "pubkeys", "sig_ok")

    def __init__(self) -> None:
        self.compacts: list[bytes] = []
        self.msgs: list[bytes] = []
        self.sig_ok: list[int] = []
        self.pubkeys: list[bytes] = []
        self.pubkey_lens: list[int] = []
        self.g_sig: list[int] = []
        self.g_nsigs: list[int] = []
        self.g_key: list[int] = []
        self.g_nkeys: list[int] = []
        self.owners: list[int] = []  # the caller's tag (an input index) of each group

    def __len__(self) -> int:
        return len(self.owners)

    def add_single(self, owner: int, compact: bytes | None, msg: bytes, pubkey: bytes | None) -> None:
        """A 1-of-1 group: one OP_CHECKSIG."""
        if compact is None or pubkey is None:
            self.add_group(owner, [(compact, msg)], [pubkey])
            return
        self.g_sig.append(len(self.compacts))
        self.g_nsigs.append(1)
        self.g_key.append(len(self.pubkeys))
        self.g_nkeys.append(1)
        self.owners.append(owner)
        self.compacts.append(compact)
        self.sig_ok.append(1)
        self.msgs.append(msg)
        self.pubkeys.append(pubkey.ljust(_PUBKEY_MAX, b"\x00"))
        self.pubkey_lens.append(len(pubkey))

    def add_group(self, owner: int, sigs: list[tuple[bytes | None, bytes]],
                  pubkeys: list[bytes | None]) -> None:
        """One matching loop: `sigs` as (compact or None, msg32), both lists in visiting order."""
        self.g_sig.append(len(self.compacts))
        self.g_nsigs.append(len(sigs))
        self.g_key.append(len(self.pubkeys))
        self.g_nkeys.append(len(pubkeys))
        self.owners.append(owner)
        for compact, msg in sigs:
            if compact is None:
                self.compacts.append(_NO_COMPACT)
                self.sig_ok.append(0)
            else:
                self.compacts.append(compact)
                self.sig_ok.append(1)
            self.msgs.append(msg)
        for pubkey in pubkeys:
            if pubkey is None:
                self.pubkeys.append(_NO_PUBKEY)
                self.pubkey_lens.append(0)
            else:
                self.pubkeys.append(pubkey.ljust(_PUBKEY_MAX, b"\x00"))
                self.pubkey_lens.append(len(pubkey))

    def pack(self) -> PackedChecks:
        return PackedChecks(self)


class PackedChecks:
    """A `CheckBatch` as contiguous arrays, ready for the native loop; `ok` receives results."""

    __slots__ = ("compacts", "g_key", "g_nkeys", "g_nsigs", "g_sig", "msgs", "ok", "owners", "pubkey_lens",
                 "pubkeys", "sig_ok")

    def __init__(self, batch: CheckBatch) -> None:
        self.compacts: _U8 = np.frombuffer(b"".join(batch.compacts), np.uint8)
        self.msgs: _U8 = np.frombuffer(b"".join(batch.msgs), np.uint8)
        self.sig_ok: _U8 = np.array(batch.sig_ok, np.uint8)
        self.pubkeys: _U8 = np.frombuffer(b"".join(batch.pubkeys), np.uint8)
        self.pubkey_lens: _I64 = np.array(batch.pubkey_lens, np.int64)
        self.g_sig: _I64 = np.array(batch.g_sig, np.int64)
        self.g_nsigs: _I64 = np.array(batch.g_nsigs, np.int64)
        self.g_key: _I64 = np.array(batch.g_key, np.int64)
        self.g_nkeys: _I64 = np.array(batch.g_nkeys, np.int64)
        self.owners = batch.owners
        self.ok: _U8 = np.zeros(len(batch.owners), np.uint8)


def group_holds(sigs: list[tuple[bytes | None, bytes]], pubkeys: list[bytes | None]) -> bool:
    """Core: the OP_CHECKMULTISIG matching loop over one group, verified immediately (with the
    GIL released for each libsecp256k1 verify)."""
    isig = ikey = 0
    n_sigs = len(sigs)
    n_keys = len(pubkeys)
    while n_sigs > 0:
        compact, msg = sigs[isig]
        pubkey = pubkeys[ikey]
        if compact is not None and pubkey is not None and verify_compact(pubkey, compact, msg):
            isig += 1
            n_sigs -= 1
        ikey += 1
        n_keys -= 1
        # More signatures left than keys: too many failed.
        if n_sigs > n_keys:
            return False
    return True


def _run_python(p: PackedChecks) -> None:
    """The reference loop (and the fallback): `group_holds` on each group, unpacked."""
    compacts = p.compacts.tobytes()
    msgs = p.msgs.tobytes()
    pubkeys = p.pubkeys.tobytes()
    sig_ok = p.sig_ok.tolist()
    key_lens = p.pubkey_lens.tolist()
    for g, (first_sig, n_sigs, first_key, n_keys) in enumerate(zip(
            p.g_sig.tolist(), p.g_nsigs.tolist(), p.g_key.tolist(), p.g_nkeys.tolist(), strict=True)):
        sigs = [(compacts[j * 64:j * 64 + 64] if sig_ok[j] else None, msgs[j * 32:j * 32 + 32])
                for j in range(first_sig, first_sig + n_sigs)]
        keys = [pubkeys[k * _PUBKEY_MAX:k * _PUBKEY_MAX + key_lens[k]] if key_lens[k] else None
                for k in range(first_key, first_key + n_keys)]
        p.ok[g] = group_holds(sigs, keys)


def _make_native() -> Callable[[PackedChecks], None] | None:
    """The njit loop over libsecp256k1, or None where Numba or the symbols are unavailable."""
    try:
        import coincurve._libsecp256k1 as secp_module
        from coincurve._libsecp256k1 import ffi
        from coincurve.context import GLOBAL_CONTEXT
        from numba import njit

        lib = ctypes.CDLL(secp_module.__file__)
        parse_pubkey = lib.secp256k1_ec_pubkey_parse
        parse_compact = lib.secp256k1_ecdsa_signature_parse_compact
        verify = lib.secp256k1_ecdsa_verify
    except (ImportError, OSError, AttributeError):  # pragma: no cover - no Numba or symbols
        return None
    # Pointers travel as size_t so the jitted code can pass array addresses (x86-64/aarch64
    # pass both in the same integer registers).
    size = ctypes.c_size_t
    parse_pubkey.argtypes = [size, size, size, size]
    parse_compact.argtypes = [size, size, size]
    verify.argtypes = [size, size, size, size]
    for fn in (parse_pubkey, parse_compact, verify):
        fn.restype = ctypes.c_int
    ctx = int(ffi.cast("uintptr_t", GLOBAL_CONTEXT.ctx))  # verification only reads it

    # Not cache=True: the ctypes pointers are addresses of this process.
    @njit(nogil=True)
    def verify_groups(ctx: int, compacts: Any, msgs: Any, sig_ok: Any, pubkeys: Any, pubkey_lens: Any,
                      g_sig: Any, g_nsigs: Any, g_key: Any, g_nkeys: Any, ok: Any) -> None:
        scratch = np.empty(2 * _OPAQUE, np.uint8)
        pub_struct = scratch.ctypes.data
        sig_struct = pub_struct + _OPAQUE
        compact_base = compacts.ctypes.data
        msg_base = msgs.ctypes.data
        pubkey_base = pubkeys.ctypes.data
        for g in range(ok.shape[0]):
            isig = g_sig[g]
            ikey = g_key[g]
            n_sigs = g_nsigs[g]
            n_keys = g_nkeys[g]
            success = True
            while success and n_sigs > 0:
                matched = False
                key_len = pubkey_lens[ikey]
                if (sig_ok[isig] != 0 and key_len != 0
                        and parse_pubkey(ctx, pub_struct, pubkey_base + ikey * _PUBKEY_MAX, key_len) == 1
                        and parse_compact(ctx, sig_struct, compact_base + isig * 64) == 1):
                    matched = verify(ctx, sig_struct, msg_base + isig * 32, pub_struct) == 1
                if matched:
                    isig += 1
                    n_sigs -= 1
                ikey += 1
                n_keys -= 1
                if n_sigs > n_keys:
                    success = False
            ok[g] = 1 if success else 0

    def run(p: PackedChecks) -> None:
        verify_groups(ctx, p.compacts, p.msgs, p.sig_ok, p.pubkeys, p.pubkey_lens, p.g_sig, p.g_nsigs,
                      p.g_key, p.g_nkeys, p.ok)

    return run


# Built on first use (compiling takes about a second): a cache created at import, filled once.
_NATIVE_CACHE: dict[str, Callable[[PackedChecks], None] | None] = {}
_NATIVE_LOCK = threading.Lock()


def _get_native() -> Callable[[PackedChecks], None] | None:
    """The compiled native loop (None without Numba); the first call builds it."""
    try:
        return _NATIVE_CACHE["run"]
    except KeyError:
        pass
    with _NATIVE_LOCK:
        if "run" not in _NATIVE_CACHE:
            run = _make_native()
            if run is not None:
                warm = CheckBatch()
                warm.add_group(-1, [(None, bytes(32))], [None])
                run(warm.pack())  # compile here, once, under the lock
            _NATIVE_CACHE["run"] = run
        return _NATIVE_CACHE["run"]


def native_available() -> bool:
    return _get_native() is not None


def run_batch(packed: PackedChecks, native: bool = True) -> None:
    """Answer every group of `packed` into `packed.ok` (1 = the matching loop succeeded).

    With the native loop the GIL is released for the whole call.
    """
    run = _get_native() if native else None
    if run is None:
        _run_python(packed)
    else:
        run(packed)
