"""256-bit hashes and targets: display hex, compact "nBits" encoding, chain work.

Hashes are kept as 32 bytes in Core's internal (little-endian) order; `hash_to_hex`
gives the reversed display form that RPC and explorers show. Compact encoding follows
Core's arith_uint256::SetCompact/GetCompact exactly, including the negative and
overflow flags, because consensus depends on rejecting those encodings.
"""

from __future__ import annotations

UINT256_MAX = (1 << 256) - 1
ZERO_HASH = bytes(32)


def hash_to_hex(h: bytes) -> str:
    """Internal little-endian hash bytes -> display hex (Core: uint256::GetHex)."""
    if len(h) != 32:
        raise ValueError(f"a hash is 32 bytes, got {len(h)}")
    return h[::-1].hex()


def hex_to_hash(s: str) -> bytes:
    """Display hex -> internal bytes. Strict: exactly 64 hex digits (Core's RPC ParseHashV)."""
    if not isinstance(s, str) or len(s) != 64:
        raise ValueError("hash must be a 64-character hex string")
    try:
        return bytes.fromhex(s)[::-1]
    except ValueError:
        raise ValueError(f"hash is not hex: {s!r}") from None


def hash_to_int(h: bytes) -> int:
    """Internal hash bytes as the 256-bit number that PoW compares with the target."""
    return int.from_bytes(h, "little")


def int_to_hash(n: int) -> bytes:
    if not 0 <= n <= UINT256_MAX:
        raise ValueError("value does not fit in 256 bits")
    return n.to_bytes(32, "little")


def compact_to_target(bits: int) -> tuple[int, bool, bool]:
    """Core: arith_uint256::SetCompact. Returns (target, negative, overflow)."""
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        # Core shifts nWord itself, so the sign/overflow tests below see the shifted word.
        word >>= 8 * (3 - size)
        target = word
    else:
        target = word << (8 * (size - 3))
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32))
    return target & UINT256_MAX, negative, overflow


def target_to_compact(target: int) -> int:
    """Core: arith_uint256::GetCompact (never sets the sign bit)."""
    if target < 0:
        raise ValueError("target cannot be negative")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    # The 0x00800000 bit is the sign: move one byte up rather than set it.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    return compact | (size << 24)


def block_proof(bits: int) -> int:
    """Core: GetBlockProof, the expected number of hashes for a block at `bits`."""
    target, negative, overflow = compact_to_target(bits)
    if negative or overflow or target == 0:
        return 0
    # 2**256 / (target+1), computed as ~target / (target+1) + 1 to stay inside 256 bits.
    return ((~target & UINT256_MAX) // (target + 1)) + 1
