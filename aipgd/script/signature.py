"""ECDSA signature and public key rules of script, verified through libsecp256k1 (coincurve).

Owns Core's encoding checks (BIP66 strict DER, LOW_S, defined hash types, pubkey types),
the lax DER parser Core uses before BIP66 (pubkey.cpp ecdsa_signature_parse_der_lax) and
`verify_ecdsa`, which normalizes S like CPubKey::Verify. It must never hash transactions:
callers hand in the 32-byte message.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import coincurve._libsecp256k1 as _secp_module
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from aipgd.script.errors import ScriptError, ScriptEvalError
from aipgd.script.flags import (
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_LOW_S,
    SCRIPT_VERIFY_STRICTENC,
    SCRIPT_VERIFY_WITNESS_PUBKEYTYPE,
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_SINGLE,
    SIGVERSION_WITNESS_V0,
)

# secp256k1 group order.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = _HALF_N.to_bytes(32, "big")
_ZERO32 = bytes(32)

_CTX = GLOBAL_CONTEXT.ctx
_ffi_new = ffi.new
_parse_pubkey = lib.secp256k1_ec_pubkey_parse
_parse_compact = lib.secp256k1_ecdsa_signature_parse_compact
_ecdsa_verify = lib.secp256k1_ecdsa_verify


def _verify_cffi(pubkey: bytes, compact: bytes, msg32: bytes) -> bool:
    pub = _ffi_new("secp256k1_pubkey *")
    if not _parse_pubkey(_CTX, pub, pubkey, len(pubkey)):
        return False
    sig = _ffi_new("secp256k1_ecdsa_signature *")
    if not _parse_compact(_CTX, sig, compact):
        return False
    return bool(_ecdsa_verify(_CTX, sig, msg32, pub))


def _make_verify_ctypes() -> Callable[[bytes, bytes, bytes], bool] | None:
    """The same three libsecp256k1 calls, with the GIL released only around the verify.

    Every cffi call releases the GIL. With several threads, a microsecond-long parse call then
    hands the GIL to another thread for its whole Python stretch, and the threads end up taking
    turns instead of verifying in parallel. Loading coincurve's own extension through ctypes
    lets the two parses keep the GIL (PyDLL) and only the ~40 us verify drop it (CDLL).
    """
    try:
        keep_gil = ctypes.PyDLL(_secp_module.__file__)
        drop_gil = ctypes.CDLL(_secp_module.__file__)
        parse_pubkey = keep_gil.secp256k1_ec_pubkey_parse
        parse_compact = keep_gil.secp256k1_ecdsa_signature_parse_compact
        verify = drop_gil.secp256k1_ecdsa_verify
    except (OSError, AttributeError, TypeError):  # pragma: no cover - symbols not exported
        return None
    ptr, buf, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    parse_pubkey.argtypes = [ptr, buf, buf, size]
    parse_compact.argtypes = [ptr, buf, buf]
    verify.argtypes = [ptr, buf, buf, buf]
    ctx = ptr(int(ffi.cast("uintptr_t", _CTX)))
    new_buffer = ctypes.create_string_buffer

    def verify_ctypes(pubkey: bytes, compact: bytes, msg32: bytes) -> bool:
        pub = new_buffer(64)  # sizeof(secp256k1_pubkey)
        if not parse_pubkey(ctx, pub, pubkey, len(pubkey)):
            return False
        sig = new_buffer(64)  # sizeof(secp256k1_ecdsa_signature)
        if not parse_compact(ctx, sig, compact):
            return False
        return bool(verify(ctx, sig, msg32, pub) == 1)

    return verify_ctypes


_verify_compact: Callable[[bytes, bytes, bytes], bool] = _make_verify_ctypes() or _verify_cffi

_STRICT_SIG_FLAGS = SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_LOW_S | SCRIPT_VERIFY_STRICTENC


def is_valid_signature_encoding(sig: bytes) -> bool:
    """Core: IsValidSignatureEncoding (BIP66). `sig` includes the trailing hash-type byte.

    Format: 0x30 len 0x02 lenR R 0x02 lenS S hashtype, with R and S minimal positive integers.
    """
    n = len(sig)
    if n < 9 or n > 73:
        return False
    if sig[0] != 0x30 or sig[1] != n - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= n:
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != n:
        return False
    if sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


def _read_der_length(der: bytes, pos: int) -> tuple[int, int] | None:
    """One lax length field of an INTEGER; None where Core's parser gives up."""
    n = len(der)
    if pos == n:
        return None
    lenbyte = der[pos]
    pos += 1
    if not lenbyte & 0x80:
        return lenbyte, pos
    lenbyte -= 0x80
    if pos + lenbyte > n:
        return None
    while lenbyte > 0 and der[pos] == 0:
        pos += 1
        lenbyte -= 1
    if lenbyte >= 8:  # sizeof(size_t)
        return None
    length = int.from_bytes(der[pos:pos + lenbyte], "big")
    return length, pos + lenbyte


def parse_der_lax(der: bytes) -> tuple[int, int] | None:
    """Core: ecdsa_signature_parse_der_lax on a signature without its hash-type byte.

    Returns (r, s); an R or S that overflows 32 bytes or the group order yields (0, 0), a
    parsed-but-invalid signature, as Core does. None means the parser rejected the bytes.
    """
    n = len(der)
    if n == 0 or der[0] != 0x30:
        return None
    pos = 1
    if pos == n:
        return None
    lenbyte = der[pos]
    pos += 1
    if lenbyte & 0x80:
        lenbyte -= 0x80
        if pos + lenbyte > n:
            return None
        pos += lenbyte
    if pos == n or der[pos] != 0x02:
        return None
    got = _read_der_length(der, pos + 1)
    if got is None:
        return None
    rlen, pos = got
    if rlen > n - pos:
        return None
    rpos = pos
    pos += rlen
    if pos == n or der[pos] != 0x02:
        return None
    got = _read_der_length(der, pos + 1)
    if got is None:
        return None
    slen, pos = got
    if slen > n - pos:
        return None
    r_bytes = der[rpos:rpos + rlen].lstrip(b"\x00")
    s_bytes = der[pos:pos + slen].lstrip(b"\x00")
    if len(r_bytes) > 32 or len(s_bytes) > 32:
        return 0, 0
    r = int.from_bytes(r_bytes, "big")
    s = int.from_bytes(s_bytes, "big")
    if r >= SECP256K1_N or s >= SECP256K1_N:
        return 0, 0
    return r, s


def _strict_parts(der: bytes) -> tuple[bytes, bytes] | None:
    """The R and S bytes (at most 33 each) of a signature (without hash type) in strict BIP66
    form, else None."""
    n = len(der)
    if n < 8 or n > 72 or der[0] != 0x30 or der[1] != n - 2 or der[2] != 0x02:
        return None
    len_r = der[3]
    if len_r == 0 or 5 + len_r >= n or der[4 + len_r] != 0x02:
        return None
    len_s = der[5 + len_r]
    if len_s == 0 or len_r + len_s + 6 != n or der[4] & 0x80 or der[6 + len_r] & 0x80:
        return None
    if (len_r > 1 and der[4] == 0 and not der[5] & 0x80) or (len_s > 1 and der[6 + len_r] == 0
                                                             and not der[7 + len_r] & 0x80):
        return None
    if len_r > 33 or len_s > 33:
        return None
    return der[4:4 + len_r], der[6 + len_r:]


def _parse_strict(der: bytes) -> tuple[int, int] | None:
    """(r, s) of a signature (without hash type) in strict BIP66 form, else None.

    Strict DER is a subset of what the lax parser accepts and both read the same integers, so
    this is a shortcut, not a different rule.
    """
    parts = _strict_parts(der)
    if parts is None:
        return None
    r = int.from_bytes(parts[0], "big")
    s = int.from_bytes(parts[1], "big")
    if r >= SECP256K1_N or s >= SECP256K1_N:
        return 0, 0
    return r, s


def is_low_s(der: bytes) -> bool:
    """Core: CPubKey::CheckLowS, on a signature without its hash-type byte."""
    parsed = _parse_strict(der) or parse_der_lax(der)
    if parsed is None:
        return False
    return parsed[1] <= _HALF_N


def check_signature_encoding(sig: bytes, flags: int) -> None:
    """Core: CheckSignatureEncoding. Raises ScriptEvalError; an empty signature always passes."""
    if not sig:
        return
    if flags & _STRICT_SIG_FLAGS and not is_valid_signature_encoding(sig):
        raise ScriptEvalError(ScriptError.SCRIPT_ERR_SIG_DER)
    if flags & SCRIPT_VERIFY_LOW_S:
        # Strict DER holds here (LOW_S is in _STRICT_SIG_FLAGS), so R and S can be sliced out.
        # An R or S past the group order parses as the all-zero signature, which is not high-S.
        len_r = sig[3]
        r = int.from_bytes(sig[4:4 + len_r], "big")
        s = int.from_bytes(sig[6 + len_r:-1], "big")
        if _HALF_N < s < SECP256K1_N and r < SECP256K1_N:
            raise ScriptEvalError(ScriptError.SCRIPT_ERR_SIG_HIGH_S)
    if flags & SCRIPT_VERIFY_STRICTENC:
        hash_type = sig[-1] & ~SIGHASH_ANYONECANPAY
        if hash_type < SIGHASH_ALL or hash_type > SIGHASH_SINGLE:
            raise ScriptEvalError(ScriptError.SCRIPT_ERR_SIG_HASHTYPE)


def is_compressed_or_uncompressed_pubkey(pubkey: bytes) -> bool:
    n = len(pubkey)
    if n == 33:
        return pubkey[0] == 2 or pubkey[0] == 3
    return n == 65 and pubkey[0] == 4


def check_pubkey_encoding(pubkey: bytes, flags: int, sigversion: int) -> None:
    """Core: CheckPubKeyEncoding. STRICTENC rejects hybrid keys; segwit may require compressed."""
    if flags & SCRIPT_VERIFY_STRICTENC and not is_compressed_or_uncompressed_pubkey(pubkey):
        raise ScriptEvalError(ScriptError.SCRIPT_ERR_PUBKEYTYPE)
    if (flags & SCRIPT_VERIFY_WITNESS_PUBKEYTYPE and sigversion == SIGVERSION_WITNESS_V0
            and not (len(pubkey) == 33 and pubkey[0] in (2, 3))):
        raise ScriptEvalError(ScriptError.SCRIPT_ERR_WITNESS_PUBKEYTYPE)


def pubkey_size_is_valid(pubkey: bytes) -> bool:
    """Core: CPubKey(vch).IsValid() — the length the first byte announces must match."""
    if not pubkey:
        return False
    head = pubkey[0]
    if head == 2 or head == 3:
        return len(pubkey) == 33
    if head == 4 or head == 6 or head == 7:
        return len(pubkey) == 65
    return False


def normalized_compact(der: bytes) -> bytes | None:
    """Core: CPubKey::Verify up to the libsecp256k1 call, on a signature without its hash type.

    Lax DER parse (ecdsa_signature_parse_der_lax), then S normalized to the lower half
    (secp256k1_ecdsa_signature_normalize); returns the 64-byte compact R || S. None where
    Verify is already false: the parser rejects the bytes, or R or S is zero (libsecp256k1's
    verify rejects a zero scalar, and an overflowing R or S parses as zero).
    """
    parts = _strict_parts(der)
    if parts is not None:
        # Strict DER, the usual form, compared as 32-byte big-endian strings. A minimal positive
        # integer of 33 bytes starts with a zero byte, or is at least 2**256 (an overflow).
        r, s = parts
        if len(r) == 33:
            if r[0]:
                return None
            r = r[1:]
        if len(s) == 33:
            if s[0]:
                return None
            s = s[1:]
        r = r.rjust(32, b"\x00")
        s = s.rjust(32, b"\x00")
        if r >= _N_BYTES or s >= _N_BYTES or r == _ZERO32 or s == _ZERO32:
            return None
        if s > _HALF_N_BYTES:
            s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
        return r + s
    parsed = parse_der_lax(der)
    if parsed is None:
        return None
    ri, si = parsed
    if not ri or not si:
        return None
    if si > _HALF_N:
        si = SECP256K1_N - si
    return ri.to_bytes(32, "big") + si.to_bytes(32, "big")


def verify_compact(pubkey: bytes, compact: bytes, msg32: bytes) -> bool:
    """libsecp256k1 pubkey parse, compact signature parse and verify (the GIL is dropped for
    the verify only)."""
    return _verify_compact(pubkey, compact, msg32)


def verify_ecdsa(pubkey: bytes, der: bytes, msg32: bytes) -> bool:
    """Core: CPubKey::Verify. Lax DER, S normalized to the low half, then libsecp256k1.

    The verify call releases the GIL, so several threads verify in parallel.
    """
    if not pubkey_size_is_valid(pubkey):
        return False
    compact = normalized_compact(der)
    if compact is None:
        return False
    return _verify_compact(pubkey, compact, msg32)
