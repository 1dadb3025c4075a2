"""OpenCL C source of the KawPoW kernels (kept as Python strings so they ship with the package).

Owns the device-side twins of ``keccak.py``, ``ethash.py`` and ``progpow.py``. The generic kernels
hash one nonce per work-item and read the random program from a buffer, with 2048-bit items
from a DAG buffer (``USE_DAG``) or computed from the light cache. The per-period kernels (DAG
only, the fast path) are generated source: the period's program as straight-line code, 16
work-items per hash. It must never diverge from the Numba kernels: tests compare them bit for bit.
"""

from __future__ import annotations

import numpy as np

COMMON_SOURCE = r"""
#define FNV_PRIME 0x01000193u
#define FNV_OFFSET 0x811c9dc5u
#define NUM_LANES 16
#define NUM_REGS 32
#define NUM_CACHE 11
#define NUM_MATH 18
#define NUM_DAG_LOADS 4
#define L1_WORDS 4096u
#define PARENTS 512u
#define MAX_RESULTS 4
#define RESULT_WORDS 18

/* Keccak round constants (Keccak reference); f800 uses the low halves of the first 22. */
__constant ulong RC64[24] = {
    0x0000000000000001UL, 0x0000000000008082UL, 0x800000000000808AUL, 0x8000000080008000UL,
    0x000000000000808BUL, 0x0000000080000001UL, 0x8000000080008081UL, 0x8000000000008009UL,
    0x000000000000008AUL, 0x0000000000000088UL, 0x0000000080008009UL, 0x000000008000000AUL,
    0x000000008000808BUL, 0x800000000000008BUL, 0x8000000000008089UL, 0x8000000000008003UL,
    0x8000000000008002UL, 0x8000000000000080UL, 0x000000000000800AUL, 0x800000008000000AUL,
    0x8000000080008081UL, 0x8000000000008080UL, 0x0000000080000001UL, 0x8000000080008008UL};
/* rho offsets by lane index x + 5y, and the pi destination of each lane */
__constant uint RHO[25] = {0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39,
                           41, 45, 15, 21, 8, 18, 2, 61, 56, 14};
__constant uint PI_DST[25] = {0, 10, 20, 5, 15, 16, 1, 11, 21, 6, 7, 17, 2, 12, 22,
                              23, 8, 18, 3, 13, 14, 24, 9, 19, 4};
/* Ravencoin: "rAVENCOINKAWPOW" fills the unused Keccak-f[800] lanes */
__constant uint RVN[15] = {0x72, 0x41, 0x56, 0x45, 0x4E, 0x43, 0x4F, 0x49, 0x4E, 0x4B, 0x41, 0x57,
                           0x50, 0x4F, 0x57};

inline ulong rotl64(ulong x, uint n) { return n ? (x << n) | (x >> (64 - n)) : x; }
inline uint rotl32(uint x, uint n) { n &= 31u; return n ? (x << n) | (x >> (32u - n)) : x; }
inline uint rotr32(uint x, uint n) { n &= 31u; return n ? (x >> n) | (x << (32u - n)) : x; }
inline uint fnv1(uint u, uint v) { return (u * FNV_PRIME) ^ v; }
inline uint fnv1a(uint u, uint v) { return (u ^ v) * FNV_PRIME; }

void keccak_f1600(ulong *a) {
    ulong b[25], c[5], d[5];
    for (int r = 0; r < 24; r++) {
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) d[x] = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
        for (int i = 0; i < 25; i++) b[PI_DST[i]] = rotl64(a[i] ^ d[i % 5], RHO[i]);
        for (int y = 0; y < 25; y += 5)
            for (int x = 0; x < 5; x++) a[y + x] = b[y + x] ^ (~b[y + (x + 1) % 5] & b[y + (x + 2) % 5]);
        a[0] ^= RC64[r];
    }
}

void keccak_f800(uint *a) {
    uint b[25], c[5], d[5];
    for (int r = 0; r < 22; r++) {
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) d[x] = c[(x + 4) % 5] ^ rotl32(c[(x + 1) % 5], 1);
        for (int i = 0; i < 25; i++) b[PI_DST[i]] = rotl32(a[i] ^ d[i % 5], RHO[i] & 31u);
        for (int y = 0; y < 25; y += 5)
            for (int x = 0; x < 5; x++) a[y + x] = b[y + x] ^ (~b[y + (x + 1) % 5] & b[y + (x + 2) % 5]);
        a[0] ^= (uint)RC64[r];
    }
}

/* Keccak-512 of 64 bytes held as 16 LE u32 words, in place (one block, pad10*1). */
void keccak512_16(uint *w) {
    ulong st[25];
    for (int i = 0; i < 25; i++) st[i] = 0;
    for (int i = 0; i < 8; i++) st[i] = (ulong)w[2 * i] | ((ulong)w[2 * i + 1] << 32);
    st[8] = 0x8000000000000001UL;
    keccak_f1600(st);
    for (int i = 0; i < 8; i++) { w[2 * i] = (uint)st[i]; w[2 * i + 1] = (uint)(st[i] >> 32); }
}

/* Ethash calc_dataset_item (512 parents, KawPoW) for `count` consecutive 512-bit items. */
void dataset_items(__global const uint *cache, uint n, ulong first, uint count, uint *out) {
    uint mix[4][16];
    for (uint s = 0; s < count; s++) {
        ulong idx = first + s;
        __global const uint *row = cache + (idx % n) * 16;
        for (int k = 0; k < 16; k++) mix[s][k] = row[k];
        mix[s][0] ^= (uint)idx;
        keccak512_16(mix[s]);
    }
    for (uint j = 0; j < PARENTS; j++) {
        for (uint s = 0; s < count; s++) {
            uint seed = (uint)(first + s);
            uint parent = fnv1(seed ^ j, mix[s][j % 16]) % n;
            __global const uint *p = cache + (ulong)parent * 16;
            for (int k = 0; k < 16; k++) mix[s][k] = fnv1(mix[s][k], p[k]);
        }
    }
    for (uint s = 0; s < count; s++) {
        keccak512_16(mix[s]);
        for (int k = 0; k < 16; k++) out[s * 16 + k] = mix[s][k];
    }
}

inline uint kiss99(uint *z, uint *w, uint *jsr, uint *jcong) {
    *z = 36969u * (*z & 0xffffu) + (*z >> 16);
    *w = 18000u * (*w & 0xffffu) + (*w >> 16);
    *jcong = 69069u * *jcong + 1234567u;
    *jsr ^= *jsr << 17;
    *jsr ^= *jsr >> 13;
    *jsr ^= *jsr << 5;
    return (((*z << 16) + *w) ^ *jcong) + *jsr;
}

inline uint random_math(uint a, uint b, uint kind) {
    switch (kind) {
        case 0: return a + b;
        case 1: return a * b;
        case 2: return mul_hi(a, b);
        case 3: return min(a, b);
        case 4: return rotl32(a, b);
        case 5: return rotr32(a, b);
        case 6: return a & b;
        case 7: return a | b;
        case 8: return a ^ b;
        case 9: return clz(a) + clz(b);
        default: return popcount(a) + popcount(b);
    }
}

inline uint random_merge(uint a, uint b, uint kind, uint rot) {
    switch (kind) {
        case 0: return a * 33u + b;
        case 1: return (a ^ b) * 33u;
        case 2: return rotl32(a, rot) ^ b;
        default: return rotr32(a, rot) ^ b;
    }
}

"""

_GENERIC_KERNELS = r"""
/* 1024-bit DAG items first_item .. first_item + get_global_size(0) - 1 */
__kernel void build_dag(__global const uint *cache, uint n, ulong first_item, ulong total,
                        __global uint *dag) {
    ulong item = first_item + get_global_id(0);
    if (item >= total) return;
    uint out[32];
    dataset_items(cache, n, item * 2, 2, out);
    for (int k = 0; k < 32; k++) dag[item * 32 + k] = out[k];
}

/* prog: 11 x (src, dst, kind, rot), 18 x (src1, src2, math, dst, kind, rot), 4 x (dst, kind, rot) */
void kawpow_hash(__global const uint *cache, uint cache_items, __global const uint *l1,
                 __global const uint *dag, uint num_items, __global const uint *prog,
                 __global const uint *header, ulong nonce, uint *mix_out, uint *final_out) {
    uint st[25];
    for (int i = 0; i < 8; i++) st[i] = header[i];
    st[8] = (uint)nonce;
    st[9] = (uint)(nonce >> 32);
    for (int i = 0; i < 15; i++) st[10 + i] = RVN[i];
    keccak_f800(st);
    uint seed_state[8];
    for (int i = 0; i < 8; i++) seed_state[i] = st[i];

    uint mix[NUM_LANES][NUM_REGS];
    uint z = fnv1a(FNV_OFFSET, seed_state[0]);
    uint w = fnv1a(z, seed_state[1]);
    for (uint l = 0; l < NUM_LANES; l++) {
        uint kz = z, kw = w, kjsr = fnv1a(w, l);
        uint kjcong = fnv1a(kjsr, l);
        for (int r = 0; r < NUM_REGS; r++) mix[l][r] = kiss99(&kz, &kw, &kjsr, &kjcong);
    }

    __global const uint *cops = prog;
    __global const uint *mops = prog + NUM_CACHE * 4;
    __global const uint *dops = mops + NUM_MATH * 6;
    uint item[64];
    for (uint r = 0; r < 64; r++) {
        uint index = mix[r % NUM_LANES][0] % num_items;
#ifdef USE_DAG
        for (int k = 0; k < 64; k++) item[k] = dag[(ulong)index * 64 + k];
#else
        dataset_items(cache, cache_items, (ulong)index * 4, 4, item);
#endif
        for (int i = 0; i < NUM_MATH; i++) {
            if (i < NUM_CACHE) {
                uint src = cops[i * 4], dst = cops[i * 4 + 1], kind = cops[i * 4 + 2], rot = cops[i * 4 + 3];
                for (int l = 0; l < NUM_LANES; l++)
                    mix[l][dst] = random_merge(mix[l][dst], l1[mix[l][src] % L1_WORDS], kind, rot);
            }
            uint s1 = mops[i * 6], s2 = mops[i * 6 + 1], mk = mops[i * 6 + 2];
            uint dst = mops[i * 6 + 3], kind = mops[i * 6 + 4], rot = mops[i * 6 + 5];
            for (int l = 0; l < NUM_LANES; l++)
                mix[l][dst] = random_merge(mix[l][dst], random_math(mix[l][s1], mix[l][s2], mk), kind, rot);
        }
        for (uint l = 0; l < NUM_LANES; l++) {
            uint base = ((l ^ r) % NUM_LANES) * NUM_DAG_LOADS;
            for (int i = 0; i < NUM_DAG_LOADS; i++) {
                uint dst = dops[i * 3];
                mix[l][dst] = random_merge(mix[l][dst], item[base + i], dops[i * 3 + 1], dops[i * 3 + 2]);
            }
        }
    }
    for (int i = 0; i < 8; i++) mix_out[i] = FNV_OFFSET;
    for (int l = 0; l < NUM_LANES; l++) {
        uint h = FNV_OFFSET;
        for (int i = 0; i < NUM_REGS; i++) h = fnv1a(h, mix[l][i]);
        mix_out[l % 8] = fnv1a(mix_out[l % 8], h);
    }
    for (int i = 0; i < 8; i++) st[i] = seed_state[i];
    for (int i = 0; i < 8; i++) st[8 + i] = mix_out[i];
    for (int i = 0; i < 9; i++) st[16 + i] = RVN[i];
    keccak_f800(st);
    for (int i = 0; i < 8; i++) final_out[i] = st[i];
}

__kernel void hash_nonces(__global const uint *cache, uint cache_items, __global const uint *l1,
                          __global const uint *dag, uint num_items, __global const uint *prog,
                          __global const uint *header, __global const ulong *nonces, uint count,
                          __global uint *mix_out, __global uint *final_out) {
    uint gid = get_global_id(0);
    if (gid >= count) return;
    uint mix[8], fin[8];
    kawpow_hash(cache, cache_items, l1, dag, num_items, prog, header, nonces[gid], mix, fin);
    for (int i = 0; i < 8; i++) { mix_out[gid * 8 + i] = mix[i]; final_out[gid * 8 + i] = fin[i]; }
}

/* boundary: 8 big-endian u32 words, most significant first; final words are byte-swapped to compare */
__kernel void search(__global const uint *cache, uint cache_items, __global const uint *l1,
                     __global const uint *dag, uint num_items, __global const uint *prog,
                     __global const uint *header, ulong start_nonce, uint count,
                     __global const uint *boundary, __global volatile uint *results) {
    uint gid = get_global_id(0);
    if (gid >= count) return;
    ulong nonce = start_nonce + gid;
    uint mix[8], fin[8];
    kawpow_hash(cache, cache_items, l1, dag, num_items, prog, header, nonce, mix, fin);
    for (int i = 0; i < 8; i++) {
        uint f = as_uint(as_uchar4(fin[i]).s3210);
        if (f < boundary[i]) break;
        if (f > boundary[i]) return;
    }
    uint slot = atomic_inc(&results[0]);
    if (slot >= MAX_RESULTS) return;
    __global volatile uint *out = results + 1 + slot * RESULT_WORDS;
    out[0] = (uint)nonce;
    out[1] = (uint)(nonce >> 32);
    for (int i = 0; i < 8; i++) { out[2 + i] = mix[i]; out[10 + i] = fin[i]; }
}
"""

# The generic kernels: the random program is read from a buffer (light mode and fallback).
KERNEL_SOURCE = COMMON_SOURCE + _GENERIC_KERNELS

# ---------------------------------------------------------------------------------------------
# Per-period kernels (DAG mode): the period's random program as straight-line source, compiled
# once per ProgPoW period. A team of 16 work-items hashes together, one work-item per ProgPoW
# lane (registers stay private, the item index is broadcast through local memory, the 16 KiB
# L1 cache lives in local memory). Each work-item owns one nonce for the two Keccak-f[800]
# passes; its team then runs the 16 nonces of its 16 members one after another.
# ---------------------------------------------------------------------------------------------

_PERIOD_KERNELS = r"""
#define TEAMS (GROUP_SIZE / NUM_LANES)
/* local memory of a group: the L1 cache, then per team: 16 x 2 seed words, the 2 item-index
   slots (double-buffered by round parity) and the 16 lane hashes */
#define LOCAL_WORDS (L1_WORDS + TEAMS * (NUM_LANES * 2 + 2 + NUM_LANES))

/* One team of 16 lanes hashes the 16 nonces of its members; returns this work-item's mix words.
   Every work-item of the group must call this (it holds barriers). */
void progpow_team(__global const uint *l1g, __global const uint4 *dag, uint num_items,
                  __global const uint *header, ulong nonce, __local uint *lm,
                  uint *seed_out, uint *mix_out) {
    const uint lid = get_local_id(0);
    const uint lane = lid % NUM_LANES;
    const uint team = lid / NUM_LANES;
    __local uint *c_l1 = lm;
    __local uint *seeds = lm + L1_WORDS + team * (NUM_LANES * 2);  /* [member][2] */
    __local uint *share = lm + L1_WORDS + TEAMS * NUM_LANES * 2 + team * 2;  /* [round parity] */
    __local uint *lane_hash = lm + L1_WORDS + TEAMS * (NUM_LANES * 2 + 2) + team * NUM_LANES;
    for (uint i = lid; i < L1_WORDS; i += GROUP_SIZE) c_l1[i] = l1g[i];

    /* Ravencoin: Keccak-f[800] of header, nonce and "rAVENCOINKAWPOW", for this work-item's nonce */
    uint st[25];
    for (int i = 0; i < 8; i++) st[i] = header[i];
    st[8] = (uint)nonce;
    st[9] = (uint)(nonce >> 32);
    for (int i = 0; i < 15; i++) st[10 + i] = RVN[i];
    keccak_f800(st);
    for (int i = 0; i < 8; i++) seed_out[i] = st[i];
    seeds[lane * 2] = st[0];
    seeds[lane * 2 + 1] = st[1];
    barrier(CLK_LOCAL_MEM_FENCE);

    for (uint h = 0; h < NUM_LANES; h++) {
        /* fill_mix for lane `lane` of member h's hash */
        uint mix[NUM_REGS];
        {
            uint z = fnv1a(FNV_OFFSET, seeds[h * 2]);
            uint w = fnv1a(z, seeds[h * 2 + 1]);
            uint jsr = fnv1a(w, lane);
            uint jcong = fnv1a(jsr, lane);
            for (int i = 0; i < NUM_REGS; i++) mix[i] = kiss99(&z, &w, &jsr, &jcong);
        }
        for (uint r = 0; r < 64; r++) {
            if (lane == (r % NUM_LANES)) share[r & 1] = mix[0];
            barrier(CLK_LOCAL_MEM_FENCE);
            const uint index = share[r & 1] % num_items;
            const uint4 d = dag[(ulong)index * NUM_LANES + ((lane ^ r) % NUM_LANES)];
            uint v;
PROGRAM_BODY
        }
        /* reduce this lane's registers, then the member h folds the 16 lanes into its 8 words */
        uint acc = FNV_OFFSET;
        for (int i = 0; i < NUM_REGS; i++) acc = fnv1a(acc, mix[i]);
        lane_hash[lane] = acc;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lane == h) {
            for (int i = 0; i < 8; i++)
                mix_out[i] = fnv1a(fnv1a(FNV_OFFSET, lane_hash[i]), lane_hash[i + 8]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

void final_hash(const uint *seed, const uint *mix, uint *out) {
    uint st[25];
    for (int i = 0; i < 8; i++) st[i] = seed[i];
    for (int i = 0; i < 8; i++) st[8 + i] = mix[i];
    for (int i = 0; i < 9; i++) st[16 + i] = RVN[i];
    keccak_f800(st);
    for (int i = 0; i < 8; i++) out[i] = st[i];
}

__kernel __attribute__((reqd_work_group_size(GROUP_SIZE, 1, 1)))
void period_hash(__global const uint *l1, __global const uint4 *dag, uint num_items,
                 __global const uint *header, __global const ulong *nonces, uint count,
                 __global uint *mix_out, __global uint *final_out) {
    const uint gid = get_global_id(0);
    const ulong nonce = nonces[gid < count ? gid : count - 1];
    __local uint lm[LOCAL_WORDS];
    uint seed[8], mix[8], fin[8];
    progpow_team(l1, dag, num_items, header, nonce, lm, seed, mix);
    if (gid >= count) return;
    final_hash(seed, mix, fin);
    for (int i = 0; i < 8; i++) { mix_out[gid * 8 + i] = mix[i]; final_out[gid * 8 + i] = fin[i]; }
}

/* boundary: 8 big-endian u32 words, most significant first; final words are byte-swapped to compare */
__kernel __attribute__((reqd_work_group_size(GROUP_SIZE, 1, 1)))
void period_search(__global const uint *l1, __global const uint4 *dag, uint num_items,
                   __global const uint *header, ulong start_nonce, uint count,
                   __global const uint *boundary, __global volatile uint *results) {
    const uint gid = get_global_id(0);
    const ulong nonce = start_nonce + gid;
    __local uint lm[LOCAL_WORDS];
    uint seed[8], mix[8], fin[8];
    progpow_team(l1, dag, num_items, header, nonce, lm, seed, mix);
    if (gid >= count) return;
    final_hash(seed, mix, fin);
    for (int i = 0; i < 8; i++) {
        uint f = as_uint(as_uchar4(fin[i]).s3210);
        if (f < boundary[i]) break;
        if (f > boundary[i]) return;
    }
    uint slot = atomic_inc(&results[0]);
    if (slot >= MAX_RESULTS) return;
    __global volatile uint *out = results + 1 + slot * RESULT_WORDS;
    out[0] = (uint)nonce;
    out[1] = (uint)(nonce >> 32);
    for (int i = 0; i < 8; i++) { out[2 + i] = mix[i]; out[10 + i] = fin[i]; }
}
"""

_MATH = (
    "{a} + {b}", "{a} * {b}", "mul_hi({a}, {b})", "min({a}, {b})", "rotl32({a}, {b})", "rotr32({a}, {b})",
    "{a} & {b}", "{a} | {b}", "{a} ^ {b}", "clz({a}) + clz({b})", "popcount({a}) + popcount({b})",
)  # fmt: skip


def _merge(dst: int, value: str, kind: int, rot: int) -> str:
    # ProgPoW merge() with its selector decoded: kind in 0..3, rot in 1..31
    a = f"mix[{dst}]"
    expr = (
        f"{a} * 33u + {value}",
        f"({a} ^ {value}) * 33u",
        f"rotate({a}, {rot}u) ^ {value}",
        f"rotate({a}, {32 - rot}u) ^ {value}",
    )[kind]
    return f"{a} = {expr};"


def period_program_body(cache_ops: np.ndarray, math_ops: np.ndarray, dag_ops: np.ndarray) -> str:
    """One round of a period's random program as OpenCL statements on ``mix[]``, ``c_l1`` and ``d``.

    Takes the tables of ``progpow.Program`` (the order of ProgPoW's progPowLoop: cache and math
    operations interleaved, then the four DAG words merged).
    """
    ind = " " * 12
    lines = []
    for i in range(max(cache_ops.shape[0], math_ops.shape[0])):
        if i < cache_ops.shape[0]:
            src, dst, kind, rot = (int(x) for x in cache_ops[i])
            lines.append(f"{ind}v = c_l1[mix[{src}] % L1_WORDS]; {_merge(dst, 'v', kind, rot)}")
        if i < math_ops.shape[0]:
            s1, s2, mk, dst, kind, rot = (int(x) for x in math_ops[i])
            expr = _MATH[mk].format(a=f"mix[{s1}]", b=f"mix[{s2}]")
            lines.append(f"{ind}v = {expr}; {_merge(dst, 'v', kind, rot)}")
    for i in range(dag_ops.shape[0]):
        dst, kind, rot = (int(x) for x in dag_ops[i])
        lines.append(f"{ind}{_merge(dst, f'd.s{i}', kind, rot)}")
    return "\n".join(lines)


def period_kernel_source(
    cache_ops: np.ndarray, math_ops: np.ndarray, dag_ops: np.ndarray, group_size: int
) -> str:
    """OpenCL source of the per-period DAG kernels ``period_hash`` and ``period_search``.

    ``group_size`` (a multiple of 16) is the work-group size the kernels require.
    """
    if group_size <= 0 or group_size % 16:
        raise ValueError(f"group_size must be a positive multiple of 16, got {group_size}")
    body = period_program_body(cache_ops, math_ops, dag_ops)
    kernels = _PERIOD_KERNELS.replace("PROGRAM_BODY", body)
    return f"#define GROUP_SIZE {group_size}\n" + COMMON_SOURCE + kernels
