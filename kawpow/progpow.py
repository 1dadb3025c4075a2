"""The ProgPoW 0.9.4 loop with KawPoW's parameters and Ravencoin's Keccak input constraints.

Owns KISS99, the per-period random program (random math / random merge / register order),
the 64-round mix over a dataset (light: items computed from the light cache; full: a DAG
array), and the final Keccak-f[800] hash. All kernels are Numba ``nogil`` functions over
uint32 words. It must never build caches or pick epochs: contexts come from ``context.py``.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from kawpow.ethash import L1_CACHE_WORDS, dataset_item_2048
from kawpow.keccak import keccak_f800

PERIOD_LENGTH = 3  # KawPoW: PROGPOW_PERIOD, the program changes every 3 blocks
NUM_LANES = 16  # PROGPOW_LANES
NUM_REGS = 32  # PROGPOW_REGS
NUM_DAG_LOADS = 4  # PROGPOW_DAG_LOADS: words per lane from each 256-byte item
NUM_CACHE_ACCESSES = 11  # PROGPOW_CNT_CACHE
NUM_MATH_OPERATIONS = 18  # PROGPOW_CNT_MATH
NUM_ROUNDS = 64  # PROGPOW_CNT_DAG
ITEM_WORDS = 64  # 2048-bit dataset items, as 32-bit words
MAX_OPERATIONS = max(NUM_CACHE_ACCESSES, NUM_MATH_OPERATIONS)

_M32 = np.uint64(0xFFFFFFFF)
_FNV_PRIME = np.uint64(0x01000193)
_FNV_OFFSET_BASIS = np.uint64(0x811C9DC5)
_L1_WORDS = np.uint64(L1_CACHE_WORDS)
_U = np.uint64  # shorthand for typed unsigned constants: Numba must never mix signed and unsigned

# Ravencoin's input constraint (src/crypto/ethash/lib/ethash/progpow.cpp): the unused Keccak-f[800]
# lanes hold "rAVENCOINKAWPOW", one ASCII code per u32 word. Note the first is 0x72, a lower-case 'r'.
RAVENCOIN_KAWPOW = np.array(
    [0x72, 0x41, 0x56, 0x45, 0x4E, 0x43, 0x4F, 0x49, 0x4E, 0x4B, 0x41, 0x57, 0x50, 0x4F, 0x57],
    dtype=np.uint64,
)


@njit(cache=True, nogil=True, inline="always")
def _fnv1a(u: np.uint64, v: np.uint64) -> np.uint64:
    # FNV-1a (ProgPoW spec): (u ^ v) * FNV_PRIME on 32-bit words.
    return ((u ^ v) * _FNV_PRIME) & _M32


@njit(cache=True, nogil=True, inline="always")
def _kiss99(ks: np.ndarray) -> np.uint64:
    # KISS99 (Marsaglia, 21 Jan 1999) on 32-bit words; ks = [z, w, jsr, jcong].
    z = (_U(36969) * (ks[0] & _U(0xFFFF)) + (ks[0] >> _U(16))) & _M32
    w = (_U(18000) * (ks[1] & _U(0xFFFF)) + (ks[1] >> _U(16))) & _M32
    jcong = (_U(69069) * ks[3] + _U(1234567)) & _M32
    jsr = ks[2]
    jsr ^= (jsr << _U(17)) & _M32
    jsr ^= jsr >> _U(13)
    jsr ^= (jsr << _U(5)) & _M32
    ks[0] = z
    ks[1] = w
    ks[2] = jsr
    ks[3] = jcong
    out: np.uint64 = (((((z << _U(16)) + w) & _M32) ^ jcong) + jsr) & _M32
    return out


@njit(cache=True, nogil=True, inline="always")
def _rotl32(x: np.uint64, c: np.uint64) -> np.uint64:
    c &= _U(31)
    return ((x << c) | (x >> (_U(32) - c))) & _M32


@njit(cache=True, nogil=True, inline="always")
def _rotr32(x: np.uint64, c: np.uint64) -> np.uint64:
    c &= _U(31)
    return ((x >> c) | (x << (_U(32) - c))) & _M32


@njit(cache=True, nogil=True, inline="always")
def _clz32(x: np.uint64) -> np.uint64:
    if x == 0:
        return _U(32)
    n = _U(0)
    if x <= _U(0x0000FFFF):
        n += _U(16)
        x <<= _U(16)
    if x <= _U(0x00FFFFFF):
        n += _U(8)
        x <<= _U(8)
    if x <= _U(0x0FFFFFFF):
        n += _U(4)
        x <<= _U(4)
    if x <= _U(0x3FFFFFFF):
        n += _U(2)
        x <<= _U(2)
    if x <= _U(0x7FFFFFFF):
        n += _U(1)
    return n


@njit(cache=True, nogil=True, inline="always")
def _popcount32(x: np.uint64) -> np.uint64:
    x = x - ((x >> _U(1)) & _U(0x55555555))
    x = (x & _U(0x33333333)) + ((x >> _U(2)) & _U(0x33333333))
    x = (x + (x >> _U(4))) & _U(0x0F0F0F0F)
    return ((x * _U(0x01010101)) & _M32) >> _U(24)


@njit(cache=True, nogil=True, inline="always")
def _random_math(a: np.uint64, b: np.uint64, kind: np.uint64) -> np.uint64:
    # ProgPoW spec math(): selector % 11 picks the operation.
    if kind == 0:
        return (a + b) & _M32
    if kind == 1:
        return (a * b) & _M32
    if kind == 2:
        return (a * b) >> _U(32)  # mul_hi
    if kind == 3:
        return min(a, b)
    if kind == 4:
        return _rotl32(a, b)
    if kind == 5:
        return _rotr32(a, b)
    if kind == 6:
        return a & b
    if kind == 7:
        return a | b
    if kind == 8:
        return a ^ b
    if kind == 9:
        return _clz32(a) + _clz32(b)
    return _popcount32(a) + _popcount32(b)


@njit(cache=True, nogil=True, inline="always")
def _random_merge(a: np.uint64, b: np.uint64, kind: np.uint64, rot: np.uint64) -> np.uint64:
    # ProgPoW spec merge(): only entropy-keeping operations; rot = (sel >> 16) % 31 + 1.
    if kind == 0:
        return (a * _U(33) + b) & _M32
    if kind == 1:
        return ((a ^ b) * _U(33)) & _M32
    if kind == 2:
        return _rotl32(a, rot) ^ b
    return _rotr32(a, rot) ^ b


@njit(cache=True, nogil=True)
def _build_program(
    period: np.uint64, cache_ops: np.ndarray, math_ops: np.ndarray, dag_ops: np.ndarray
) -> None:
    # ProgPoW spec progPowInit + the op sequence of progPowLoop. The generator state is copied
    # into every round, so all 64 rounds of one period run the same program.
    ks = np.empty(4, dtype=np.uint64)
    lo = period & _M32
    hi = period >> _U(32)
    ks[0] = _fnv1a(_FNV_OFFSET_BASIS, lo)
    ks[1] = _fnv1a(ks[0], hi)
    ks[2] = _fnv1a(ks[1], lo)
    ks[3] = _fnv1a(ks[2], hi)
    dst_seq = np.arange(NUM_REGS).astype(np.uint64)
    src_seq = np.arange(NUM_REGS).astype(np.uint64)
    # Fisher-Yates shuffles of destination and source register orders, interleaved.
    for i in range(NUM_REGS, 1, -1):
        j = _kiss99(ks) % _U(i)
        t = dst_seq[i - 1]
        dst_seq[i - 1] = dst_seq[j]
        dst_seq[j] = t
        j = _kiss99(ks) % _U(i)
        t = src_seq[i - 1]
        src_seq[i - 1] = src_seq[j]
        src_seq[j] = t
    dst_n = 0
    src_n = 0
    for i in range(MAX_OPERATIONS):
        if i < NUM_CACHE_ACCESSES:
            src = src_seq[src_n % NUM_REGS]
            src_n += 1
            dst = dst_seq[dst_n % NUM_REGS]
            dst_n += 1
            sel = _kiss99(ks)
            cache_ops[i, 0] = src
            cache_ops[i, 1] = dst
            cache_ops[i, 2] = sel % _U(4)
            cache_ops[i, 3] = ((sel >> _U(16)) % _U(31)) + _U(1)
        if i < NUM_MATH_OPERATIONS:
            src_rnd = _kiss99(ks) % _U(NUM_REGS * (NUM_REGS - 1))
            src1 = src_rnd % _U(NUM_REGS)
            src2 = src_rnd // _U(NUM_REGS)
            if src2 >= src1:
                src2 += _U(1)  # two distinct sources
            sel1 = _kiss99(ks)
            dst = dst_seq[dst_n % NUM_REGS]
            dst_n += 1
            sel2 = _kiss99(ks)
            math_ops[i, 0] = src1
            math_ops[i, 1] = src2
            math_ops[i, 2] = sel1 % _U(11)
            math_ops[i, 3] = dst
            math_ops[i, 4] = sel2 % _U(4)
            math_ops[i, 5] = ((sel2 >> _U(16)) % _U(31)) + _U(1)
    for i in range(NUM_DAG_LOADS):
        if i == 0:
            dag_ops[i, 0] = 0  # the first DAG word always merges into register 0
        else:
            dag_ops[i, 0] = dst_seq[dst_n % NUM_REGS]
            dst_n += 1
        sel = _kiss99(ks)
        dag_ops[i, 1] = sel % _U(4)
        dag_ops[i, 2] = ((sel >> _U(16)) % _U(31)) + _U(1)


class Program:
    """The random program of one ProgPoW period, decoded into small uint64 tables.

    ``cache_ops`` rows: (src, dst, merge kind, merge rotation); ``math_ops`` rows:
    (src1, src2, math kind, dst, merge kind, merge rotation); ``dag_ops`` rows:
    (dst, merge kind, merge rotation). ``packed`` is all three flattened for OpenCL.
    """

    __slots__ = ("cache_ops", "dag_ops", "math_ops", "period")

    def __init__(self, period: int) -> None:
        self.period = period
        self.cache_ops = np.zeros((NUM_CACHE_ACCESSES, 4), dtype=np.uint64)
        self.math_ops = np.zeros((NUM_MATH_OPERATIONS, 6), dtype=np.uint64)
        self.dag_ops = np.zeros((NUM_DAG_LOADS, 3), dtype=np.uint64)
        _build_program(np.uint64(period), self.cache_ops, self.math_ops, self.dag_ops)
        for a in (self.cache_ops, self.math_ops, self.dag_ops):
            a.flags.writeable = False

    def packed(self) -> np.ndarray:
        """All op tables as one uint32 vector: 44 cache, 108 math, then 12 DAG words."""
        return np.concatenate([self.cache_ops.ravel(), self.math_ops.ravel(), self.dag_ops.ravel()]).astype(
            np.uint32
        )


@functools.lru_cache(maxsize=64)
def program_for_block(block_number: int) -> Program:
    """The (cached) program of the period that ``block_number`` belongs to."""
    return Program(block_number // PERIOD_LENGTH)


@njit(cache=True, nogil=True)
def _keccak_seed(header: np.ndarray, nonce: np.uint64, st: np.ndarray) -> None:
    # Ravencoin KawPoW: Keccak-f[800] over header (8 words), nonce (2 words) and the
    # 15 "RAVENCOINKAWPOW" words, no padding; st[0:8] is carried into the final hash.
    for i in range(8):
        st[i] = header[i]
    st[8] = nonce & _M32
    st[9] = nonce >> _U(32)
    for i in range(15):
        st[10 + i] = RAVENCOIN_KAWPOW[i]
    keccak_f800(st)


@njit(cache=True, nogil=True)
def _keccak_final(seed_state: np.ndarray, mix_hash: np.ndarray, st: np.ndarray) -> None:
    # Ravencoin KawPoW: the first 8 words of the seed state, the 8 mix words, then the first
    # 9 "RAVENCOINKAWPOW" words; the final hash is st[0:8].
    for i in range(8):
        st[i] = seed_state[i]
    for i in range(8):
        st[8 + i] = mix_hash[i]
    for i in range(9):
        st[16 + i] = RAVENCOIN_KAWPOW[i]
    keccak_f800(st)


@njit(cache=True, nogil=True)
def _init_mix(seed0: np.uint64, seed1: np.uint64, mix: np.ndarray, ks: np.ndarray) -> None:
    # ProgPoW spec fill_mix: one KISS99 stream per lane, seeded from the header/nonce hash.
    z = _fnv1a(_FNV_OFFSET_BASIS, seed0)
    w = _fnv1a(z, seed1)
    for lane in range(NUM_LANES):
        lu = _U(lane)
        ks[0] = z
        ks[1] = w
        ks[2] = _fnv1a(w, lu)
        ks[3] = _fnv1a(ks[2], lu)
        for r in range(NUM_REGS):
            mix[lane, r] = _kiss99(ks)


@njit(cache=True, nogil=True)
def _mix_round(
    r: int,
    mix: np.ndarray,
    item: np.ndarray,
    l1: np.ndarray,
    cache_ops: np.ndarray,
    math_ops: np.ndarray,
    dag_ops: np.ndarray,
    data: np.ndarray,
) -> None:
    # ProgPoW spec progPowLoop, after the DAG item was fetched for this round.
    for i in range(MAX_OPERATIONS):
        if i < NUM_CACHE_ACCESSES:
            src = cache_ops[i, 0]
            dst = cache_ops[i, 1]
            kind = cache_ops[i, 2]
            rot = cache_ops[i, 3]
            for lane in range(NUM_LANES):
                word = l1[mix[lane, src] % _L1_WORDS]
                mix[lane, dst] = _random_merge(mix[lane, dst], word, kind, rot)
        if i < NUM_MATH_OPERATIONS:
            src1 = math_ops[i, 0]
            src2 = math_ops[i, 1]
            mkind = math_ops[i, 2]
            dst = math_ops[i, 3]
            kind = math_ops[i, 4]
            rot = math_ops[i, 5]
            for lane in range(NUM_LANES):
                data[lane] = _random_math(mix[lane, src1], mix[lane, src2], mkind)
            for lane in range(NUM_LANES):
                mix[lane, dst] = _random_merge(mix[lane, dst], data[lane], kind, rot)
    for lane in range(NUM_LANES):
        # each lane reads its 4 words at ((lane ^ r) % lanes) * 4 within the 64-word item
        base = ((lane ^ r) % NUM_LANES) * NUM_DAG_LOADS
        for i in range(NUM_DAG_LOADS):
            dst = dag_ops[i, 0]
            mix[lane, dst] = _random_merge(mix[lane, dst], _U(item[base + i]), dag_ops[i, 1], dag_ops[i, 2])


@njit(cache=True, nogil=True)
def keccak_seed_and_final(header: np.ndarray, nonce: np.uint64, mix_hash: np.ndarray, st: np.ndarray) -> None:
    """The final hash implied by a claimed ``mix_hash`` (8 words) into ``st[0:8]``; no dataset needed."""
    seed_state = np.empty(8, dtype=np.uint64)
    _keccak_seed(header, nonce, st)
    for i in range(8):
        seed_state[i] = st[i]
    _keccak_final(seed_state, mix_hash, st)


@njit(cache=True, nogil=True)
def _hash_one(
    cache64: np.ndarray,
    cache32: np.ndarray,
    l1: np.ndarray,
    dag: np.ndarray,
    num_items: np.uint64,
    cache_ops: np.ndarray,
    math_ops: np.ndarray,
    dag_ops: np.ndarray,
    header: np.ndarray,
    nonce: np.uint64,
    mix_out: np.ndarray,
    final_out: np.ndarray,
    st: np.ndarray,
) -> None:
    # One KawPoW hash (Ravencoin progpow::hash). ``dag`` with zero rows selects light mode:
    # each 2048-bit item is computed from the light cache when the round needs it.
    seed_state = np.empty(8, dtype=np.uint64)
    _keccak_seed(header, nonce, st)
    for i in range(8):
        seed_state[i] = st[i]

    mix = np.empty((NUM_LANES, NUM_REGS), dtype=np.uint64)
    ks = np.empty(4, dtype=np.uint64)
    data = np.empty(NUM_LANES, dtype=np.uint64)
    _init_mix(seed_state[0], seed_state[1], mix, ks)

    light = dag.shape[0] == 0
    mix64 = np.empty((4, 8), dtype=np.uint64)
    kst = np.empty(25, dtype=np.uint64)
    item64 = np.empty((4, 8), dtype=np.uint64)
    item_light = item64.view(np.uint32).reshape(ITEM_WORDS)
    for r in range(NUM_ROUNDS):
        index = mix[r % NUM_LANES, 0] % num_items
        if light:
            dataset_item_2048(cache64, cache32, index, mix64, kst, item64)
            _mix_round(r, mix, item_light, l1, cache_ops, math_ops, dag_ops, data)
        else:
            _mix_round(r, mix, dag[index], l1, cache_ops, math_ops, dag_ops, data)

    # ProgPoW spec: reduce each lane with FNV-1a, then fold the 16 lanes into 8 words.
    for i in range(8):
        mix_out[i] = _FNV_OFFSET_BASIS
    for lane in range(NUM_LANES):
        h = _FNV_OFFSET_BASIS
        for i in range(NUM_REGS):
            h = _fnv1a(h, mix[lane, i])
        mix_out[lane % 8] = _fnv1a(mix_out[lane % 8], h)
    _keccak_final(seed_state, mix_out, st)
    for i in range(8):
        final_out[i] = st[i]


@njit(cache=True, nogil=True, inline="always")
def _bswap32(x: np.uint64) -> np.uint64:
    return (
        ((x & _U(0xFF)) << _U(24))
        | ((x & _U(0xFF00)) << _U(8))
        | ((x >> _U(8)) & _U(0xFF00))
        | ((x >> _U(24)) & _U(0xFF))
    )


@njit(cache=True, nogil=True)
def final_within_boundary(final: np.ndarray, boundary_be: np.ndarray) -> bool:
    """``final`` (8 LE words of the printed hash) as a big-endian number <= ``boundary_be``.

    ``boundary_be`` holds the boundary as 8 big-endian u32 words, most significant first
    (the comparison of Ravencoin's is_less_or_equal on the hash bytes).
    """
    for i in range(8):
        f = _bswap32(final[i])
        if f < boundary_be[i]:
            return True
        if f > boundary_be[i]:
            return False
    return True


@njit(cache=True, nogil=True)
def hash_batch(
    cache64: np.ndarray,
    cache32: np.ndarray,
    l1: np.ndarray,
    dag: np.ndarray,
    num_items: np.uint64,
    cache_ops: np.ndarray,
    math_ops: np.ndarray,
    dag_ops: np.ndarray,
    header: np.ndarray,
    nonces: np.ndarray,
    mix_out: np.ndarray,
    final_out: np.ndarray,
) -> None:
    """Hash one header with each of ``nonces``; rows of ``mix_out``/``final_out`` get 8 words."""
    st = np.empty(25, dtype=np.uint64)
    for n in range(nonces.shape[0]):
        _hash_one(
            cache64, cache32, l1, dag, num_items, cache_ops, math_ops, dag_ops,
            header, nonces[n], mix_out[n], final_out[n], st,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def verify_words(
    cache64: np.ndarray,
    cache32: np.ndarray,
    l1: np.ndarray,
    nodag: np.ndarray,
    num_items: np.uint64,
    cache_ops: np.ndarray,
    math_ops: np.ndarray,
    dag_ops: np.ndarray,
    header: np.ndarray,
    nonce: np.uint64,
    mix_hash: np.ndarray,
    boundary_be: np.ndarray,
) -> bool:
    """Ravencoin progpow::verify: the cheap final-hash check against the boundary, then the mix.

    ``nodag`` is an empty (0, 64) uint32 array (light mode), passed in so every caller shares
    one compiled specialisation of the kernel.
    """
    st = np.empty(25, dtype=np.uint64)
    keccak_seed_and_final(header, nonce, mix_hash, st)
    if not final_within_boundary(st[:8], boundary_be):
        return False
    final = np.empty(8, dtype=np.uint64)
    mix = np.empty(8, dtype=np.uint64)
    _hash_one(cache64, cache32, l1, nodag, num_items, cache_ops, math_ops, dag_ops,
              header, nonce, mix, final, st)  # fmt: skip
    for i in range(8):  # noqa: SIM110 - a plain loop is what Numba compiles best
        if mix[i] != mix_hash[i]:
            return False
    return True


@njit(cache=True, nogil=True)
def search_range(
    cache64: np.ndarray,
    cache32: np.ndarray,
    l1: np.ndarray,
    dag: np.ndarray,
    num_items: np.uint64,
    cache_ops: np.ndarray,
    math_ops: np.ndarray,
    dag_ops: np.ndarray,
    header: np.ndarray,
    start_nonce: np.uint64,
    count: int,
    boundary_be: np.ndarray,
    mix_out: np.ndarray,
    final_out: np.ndarray,
) -> int:
    """Try nonces start..start+count-1 (wrapping mod 2**64); the index of the first hit or -1."""
    st = np.empty(25, dtype=np.uint64)
    for n in range(count):
        nonce = start_nonce + _U(n)
        _hash_one(cache64, cache32, l1, dag, num_items, cache_ops, math_ops, dag_ops,
                  header, nonce, mix_out, final_out, st)  # fmt: skip
        if final_within_boundary(final_out, boundary_be):
            return n
    return -1
