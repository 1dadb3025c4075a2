"""Keccak permutations and the fixed-size Keccak hashes that ethash and KawPoW use.

Owns Keccak-f[1600] (for Keccak-256/512 with the original 0x01 padding, not SHA-3's 0x06)
and Keccak-f[800] (ProgPoW's 22-round 32-bit variant). Everything here is a Numba kernel
on fixed-size word arrays; it must never allocate in the permutations or accept variable
lengths: callers pack their input into words first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Keccak round constants (FIPS 202 / Keccak reference, section 1.2).
_RC64 = np.array(
    [
        0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
        0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
        0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
        0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
        0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
        0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
    ],
    dtype=np.uint64,
)  # fmt: skip
# Keccak-f[800] uses the low 32 bits of the first 22 constants (Keccak reference, l = 5).
_RC32 = (_RC64[:22] & np.uint64(0xFFFFFFFF)).astype(np.uint64)

_M32 = np.uint64(0xFFFFFFFF)
_PAD_LAST = np.uint64(0x8000000000000000)  # the final bit of the pad10*1 rule
_PAD_FIRST = np.uint64(0x01)  # Keccak (pre-SHA-3) domain byte


@njit(cache=True, nogil=True, inline="always")
def _rotl64(x: np.uint64, n: int) -> np.uint64:
    return (x << np.uint64(n)) | (x >> np.uint64(64 - n))


@njit(cache=True, nogil=True, inline="always")
def _rotl32(x: np.uint64, n: int) -> np.uint64:
    # Values are kept in uint64 registers holding 32-bit lanes; mask after the left shift.
    return ((x << np.uint64(n)) | (x >> np.uint64(32 - n))) & _M32


@njit(cache=True, nogil=True)
def keccak_f1600(st: np.ndarray) -> None:
    """Keccak-f[1600] in place on 25 uint64 lanes (lane index x + 5*y)."""
    a00 = st[0]; a01 = st[1]; a02 = st[2]; a03 = st[3]; a04 = st[4]  # noqa: E702
    a05 = st[5]; a06 = st[6]; a07 = st[7]; a08 = st[8]; a09 = st[9]  # noqa: E702
    a10 = st[10]; a11 = st[11]; a12 = st[12]; a13 = st[13]; a14 = st[14]  # noqa: E702
    a15 = st[15]; a16 = st[16]; a17 = st[17]; a18 = st[18]; a19 = st[19]  # noqa: E702
    a20 = st[20]; a21 = st[21]; a22 = st[22]; a23 = st[23]; a24 = st[24]  # noqa: E702
    for rnd in range(24):
        # theta
        c0 = a00 ^ a05 ^ a10 ^ a15 ^ a20
        c1 = a01 ^ a06 ^ a11 ^ a16 ^ a21
        c2 = a02 ^ a07 ^ a12 ^ a17 ^ a22
        c3 = a03 ^ a08 ^ a13 ^ a18 ^ a23
        c4 = a04 ^ a09 ^ a14 ^ a19 ^ a24
        d0 = c4 ^ _rotl64(c1, 1)
        d1 = c0 ^ _rotl64(c2, 1)
        d2 = c1 ^ _rotl64(c3, 1)
        d3 = c2 ^ _rotl64(c4, 1)
        d4 = c3 ^ _rotl64(c0, 1)
        # rho and pi: lane (x, y) moves to (y, 2x + 3y) rotated by its rho offset
        b00 = a00 ^ d0
        b01 = _rotl64(a06 ^ d1, 44)
        b02 = _rotl64(a12 ^ d2, 43)
        b03 = _rotl64(a18 ^ d3, 21)
        b04 = _rotl64(a24 ^ d4, 14)
        b05 = _rotl64(a03 ^ d3, 28)
        b06 = _rotl64(a09 ^ d4, 20)
        b07 = _rotl64(a10 ^ d0, 3)
        b08 = _rotl64(a16 ^ d1, 45)
        b09 = _rotl64(a22 ^ d2, 61)
        b10 = _rotl64(a01 ^ d1, 1)
        b11 = _rotl64(a07 ^ d2, 6)
        b12 = _rotl64(a13 ^ d3, 25)
        b13 = _rotl64(a19 ^ d4, 8)
        b14 = _rotl64(a20 ^ d0, 18)
        b15 = _rotl64(a04 ^ d4, 27)
        b16 = _rotl64(a05 ^ d0, 36)
        b17 = _rotl64(a11 ^ d1, 10)
        b18 = _rotl64(a17 ^ d2, 15)
        b19 = _rotl64(a23 ^ d3, 56)
        b20 = _rotl64(a02 ^ d2, 62)
        b21 = _rotl64(a08 ^ d3, 55)
        b22 = _rotl64(a14 ^ d4, 39)
        b23 = _rotl64(a15 ^ d0, 41)
        b24 = _rotl64(a21 ^ d1, 2)
        # chi (row-wise), then iota on lane 0
        a00 = b00 ^ (~b01 & b02) ^ _RC64[rnd]
        a01 = b01 ^ (~b02 & b03)
        a02 = b02 ^ (~b03 & b04)
        a03 = b03 ^ (~b04 & b00)
        a04 = b04 ^ (~b00 & b01)
        a05 = b05 ^ (~b06 & b07)
        a06 = b06 ^ (~b07 & b08)
        a07 = b07 ^ (~b08 & b09)
        a08 = b08 ^ (~b09 & b05)
        a09 = b09 ^ (~b05 & b06)
        a10 = b10 ^ (~b11 & b12)
        a11 = b11 ^ (~b12 & b13)
        a12 = b12 ^ (~b13 & b14)
        a13 = b13 ^ (~b14 & b10)
        a14 = b14 ^ (~b10 & b11)
        a15 = b15 ^ (~b16 & b17)
        a16 = b16 ^ (~b17 & b18)
        a17 = b17 ^ (~b18 & b19)
        a18 = b18 ^ (~b19 & b15)
        a19 = b19 ^ (~b15 & b16)
        a20 = b20 ^ (~b21 & b22)
        a21 = b21 ^ (~b22 & b23)
        a22 = b22 ^ (~b23 & b24)
        a23 = b23 ^ (~b24 & b20)
        a24 = b24 ^ (~b20 & b21)
    st[0] = a00; st[1] = a01; st[2] = a02; st[3] = a03; st[4] = a04  # noqa: E702
    st[5] = a05; st[6] = a06; st[7] = a07; st[8] = a08; st[9] = a09  # noqa: E702
    st[10] = a10; st[11] = a11; st[12] = a12; st[13] = a13; st[14] = a14  # noqa: E702
    st[15] = a15; st[16] = a16; st[17] = a17; st[18] = a18; st[19] = a19  # noqa: E702
    st[20] = a20; st[21] = a21; st[22] = a22; st[23] = a23; st[24] = a24  # noqa: E702


@njit(cache=True, nogil=True)
def keccak_f800(st: np.ndarray) -> None:
    """Keccak-f[800] in place: 25 32-bit lanes held in a uint64 array, 22 rounds (ProgPoW spec)."""
    a00 = st[0]; a01 = st[1]; a02 = st[2]; a03 = st[3]; a04 = st[4]  # noqa: E702
    a05 = st[5]; a06 = st[6]; a07 = st[7]; a08 = st[8]; a09 = st[9]  # noqa: E702
    a10 = st[10]; a11 = st[11]; a12 = st[12]; a13 = st[13]; a14 = st[14]  # noqa: E702
    a15 = st[15]; a16 = st[16]; a17 = st[17]; a18 = st[18]; a19 = st[19]  # noqa: E702
    a20 = st[20]; a21 = st[21]; a22 = st[22]; a23 = st[23]; a24 = st[24]  # noqa: E702
    for rnd in range(22):
        c0 = a00 ^ a05 ^ a10 ^ a15 ^ a20
        c1 = a01 ^ a06 ^ a11 ^ a16 ^ a21
        c2 = a02 ^ a07 ^ a12 ^ a17 ^ a22
        c3 = a03 ^ a08 ^ a13 ^ a18 ^ a23
        c4 = a04 ^ a09 ^ a14 ^ a19 ^ a24
        d0 = c4 ^ _rotl32(c1, 1)
        d1 = c0 ^ _rotl32(c2, 1)
        d2 = c1 ^ _rotl32(c3, 1)
        d3 = c2 ^ _rotl32(c4, 1)
        d4 = c3 ^ _rotl32(c0, 1)
        # rho offsets are the Keccak-f[1600] ones taken mod 32
        b00 = a00 ^ d0
        b01 = _rotl32(a06 ^ d1, 12)
        b02 = _rotl32(a12 ^ d2, 11)
        b03 = _rotl32(a18 ^ d3, 21)
        b04 = _rotl32(a24 ^ d4, 14)
        b05 = _rotl32(a03 ^ d3, 28)
        b06 = _rotl32(a09 ^ d4, 20)
        b07 = _rotl32(a10 ^ d0, 3)
        b08 = _rotl32(a16 ^ d1, 13)
        b09 = _rotl32(a22 ^ d2, 29)
        b10 = _rotl32(a01 ^ d1, 1)
        b11 = _rotl32(a07 ^ d2, 6)
        b12 = _rotl32(a13 ^ d3, 25)
        b13 = _rotl32(a19 ^ d4, 8)
        b14 = _rotl32(a20 ^ d0, 18)
        b15 = _rotl32(a04 ^ d4, 27)
        b16 = _rotl32(a05 ^ d0, 4)
        b17 = _rotl32(a11 ^ d1, 10)
        b18 = _rotl32(a17 ^ d2, 15)
        b19 = _rotl32(a23 ^ d3, 24)
        b20 = _rotl32(a02 ^ d2, 30)
        b21 = _rotl32(a08 ^ d3, 23)
        b22 = _rotl32(a14 ^ d4, 7)
        b23 = _rotl32(a15 ^ d0, 9)
        b24 = _rotl32(a21 ^ d1, 2)
        # ~b would set the high 32 bits; the & with a 32-bit lane clears them again.
        a00 = b00 ^ (~b01 & b02) ^ _RC32[rnd]
        a01 = b01 ^ (~b02 & b03)
        a02 = b02 ^ (~b03 & b04)
        a03 = b03 ^ (~b04 & b00)
        a04 = b04 ^ (~b00 & b01)
        a05 = b05 ^ (~b06 & b07)
        a06 = b06 ^ (~b07 & b08)
        a07 = b07 ^ (~b08 & b09)
        a08 = b08 ^ (~b09 & b05)
        a09 = b09 ^ (~b05 & b06)
        a10 = b10 ^ (~b11 & b12)
        a11 = b11 ^ (~b12 & b13)
        a12 = b12 ^ (~b13 & b14)
        a13 = b13 ^ (~b14 & b10)
        a14 = b14 ^ (~b10 & b11)
        a15 = b15 ^ (~b16 & b17)
        a16 = b16 ^ (~b17 & b18)
        a17 = b17 ^ (~b18 & b19)
        a18 = b18 ^ (~b19 & b15)
        a19 = b19 ^ (~b15 & b16)
        a20 = b20 ^ (~b21 & b22)
        a21 = b21 ^ (~b22 & b23)
        a22 = b22 ^ (~b23 & b24)
        a23 = b23 ^ (~b24 & b20)
        a24 = b24 ^ (~b20 & b21)
    st[0] = a00; st[1] = a01; st[2] = a02; st[3] = a03; st[4] = a04  # noqa: E702
    st[5] = a05; st[6] = a06; st[7] = a07; st[8] = a08; st[9] = a09  # noqa: E702
    st[10] = a10; st[11] = a11; st[12] = a12; st[13] = a13; st[14] = a14  # noqa: E702
    st[15] = a15; st[16] = a16; st[17] = a17; st[18] = a18; st[19] = a19  # noqa: E702
    st[20] = a20; st[21] = a21; st[22] = a22; st[23] = a23; st[24] = a24  # noqa: E702


@njit(cache=True, nogil=True)
def keccak512_words(src: np.ndarray, n_words: int, out: np.ndarray, st: np.ndarray) -> None:
    """Keccak-512 of ``n_words`` (< 9) little-endian uint64 words; 8 words to ``out``.

    The input always fits one 72-byte block, so the pad10*1 rule is two XORs.
    ``st`` is caller-owned scratch of 25 uint64.
    """
    for i in range(25):
        st[i] = 0
    for i in range(n_words):
        st[i] = src[i]
    st[n_words] ^= _PAD_FIRST
    st[8] ^= _PAD_LAST  # rate 576 bits = 9 lanes
    keccak_f1600(st)
    for i in range(8):
        out[i] = st[i]


@njit(cache=True, nogil=True)
def keccak256_words(src: np.ndarray, n_words: int, out: np.ndarray, st: np.ndarray) -> None:
    """Keccak-256 of ``n_words`` (< 17) uint64 words; 4 words to ``out`` (rate 1088 bits)."""
    for i in range(25):
        st[i] = 0
    for i in range(n_words):
        st[i] = src[i]
    st[n_words] ^= _PAD_FIRST
    st[16] ^= _PAD_LAST
    keccak_f1600(st)
    for i in range(4):
        out[i] = st[i]


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (original padding) of a byte string whose length is a multiple of 8 and < 136."""
    return _keccak_bytes(data, 32)


def keccak512(data: bytes) -> bytes:
    """Keccak-512 (original padding) of a byte string whose length is a multiple of 8 and < 72."""
    return _keccak_bytes(data, 64)


def _keccak_bytes(data: bytes, out_len: int) -> bytes:
    rate = 200 - 2 * out_len
    if len(data) % 8 or len(data) >= rate:
        raise ValueError(f"keccak{out_len * 8} here takes whole words below one block, got {len(data)} bytes")
    src = np.frombuffer(data, dtype="<u8").astype(np.uint64) if data else np.zeros(1, np.uint64)
    out = np.zeros(8, dtype=np.uint64)
    st = np.zeros(25, dtype=np.uint64)
    if out_len == 64:
        keccak512_words(src, len(data) // 8, out, st)
    else:
        keccak256_words(src, len(data) // 8, out, st)
    return out.astype("<u8").tobytes()[:out_len]
