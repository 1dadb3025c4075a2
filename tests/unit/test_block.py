"""Block headers in both layouts, blocks and merkle roots."""

from __future__ import annotations

import pytest

import kawpow
from aipgd.core.block import KAWPOW_HEADER_SIZE, LEGACY_HEADER_SIZE, Block, BlockHeader
from aipgd.core.hashes import sha256d
from aipgd.core.merkle import merkle_root
from aipgd.core.params import get_params
from aipgd.core.serialize import DeserializationError
from aipgd.core.transaction import NULL_OUTPOINT, Transaction, TxIn, TxOut

ACTIVATION = 1688764800
PREV = bytes(range(32))
MERKLE = bytes(range(32, 64))


def kawpow_header() -> BlockHeader:
    return BlockHeader(0x30000000, PREV, MERKLE, ACTIVATION, 0x1E0FFFFF, height=181,
                       nonce64=0x0123456789ABCDEF, mix_hash=bytes(range(64, 96)), kawpow=True)


def test_legacy_header_layout() -> None:
    header = BlockHeader(4, PREV, MERKLE, ACTIVATION - 1, 0x1E00FFFF, nonce=0xDEADBEEF)
    raw = header.serialize()
    assert len(raw) == LEGACY_HEADER_SIZE
    assert raw[:4] == (4).to_bytes(4, "little")
    assert raw[4:36] == PREV and raw[36:68] == MERKLE
    assert raw[68:72] == (ACTIVATION - 1).to_bytes(4, "little")
    assert raw[72:76] == (0x1E00FFFF).to_bytes(4, "little")
    assert raw[76:80] == (0xDEADBEEF).to_bytes(4, "little")
    assert BlockHeader.from_bytes(raw, ACTIVATION) == header


def test_kawpow_header_layout() -> None:
    header = kawpow_header()
    raw = header.serialize()
    assert len(raw) == KAWPOW_HEADER_SIZE
    assert raw[76:80] == (181).to_bytes(4, "little")
    assert raw[80:88] == (0x0123456789ABCDEF).to_bytes(8, "little")
    assert raw[88:120] == bytes(range(64, 96))
    assert BlockHeader.from_bytes(raw, ACTIVATION) == header
    # Core: GetKAWPOWHeaderHash is sha256d of the first 80 bytes with nHeight as the nonce.
    assert header.kawpow_header_hash() == sha256d(raw[:80])
    assert header.kawpow_input() == sha256d(raw[:80])[::-1]
    assert header.mix_hash_printed == bytes(range(95, 63, -1))


def test_layout_is_chosen_by_time() -> None:
    raw = kawpow_header().serialize()
    # Read with a later activation, the same bytes are a legacy header plus 40 trailing bytes.
    with pytest.raises(DeserializationError, match="trailing"):
        BlockHeader.from_bytes(raw, ACTIVATION + 1)
    assert BlockHeader.from_bytes(raw[:80], ACTIVATION + 1).nonce == 181
    with pytest.raises(DeserializationError, match="truncated"):
        BlockHeader.from_bytes(raw[:80], ACTIVATION)


def test_kawpow_block_hash_byte_orders() -> None:
    """The block hash is the KawPoW final hash as printed; mix_hash is stored byte-reversed."""
    header = kawpow_header()
    mix, final = kawpow.hash(header.height, header.kawpow_input(), header.nonce64)
    sealed = header.with_fields(mix_hash=mix[::-1])
    assert sealed.mix_hash_printed == mix
    assert sealed.hash == final[::-1]
    assert sealed.hash_hex == final.hex()
    # A different declared mix changes the hash (the final hash commits to the mix).
    assert header.hash != sealed.hash


def test_block_round_trip_and_merkle() -> None:
    params = get_params("regtest")
    coinbase = Transaction(1, (TxIn(NULL_OUTPOINT, b"\x01\x01"),), (TxOut(50, b"\x51"),))
    spend = Transaction(2, (TxIn(NULL_OUTPOINT.__class__(coinbase.txid, 0)),), (TxOut(49, b""),))
    root, mutated = merkle_root([coinbase.txid, spend.txid])
    assert not mutated and root == sha256d(coinbase.txid + spend.txid)
    header = BlockHeader(0x30000000, params.genesis_hash, root, params.kawpow_activation_time, 0x207FFFFF,
                         height=1, kawpow=True)
    block = Block(header, (coinbase, spend))
    raw = block.serialize()
    again = Block.deserialize(raw, params.kawpow_activation_time)
    assert again == block
    assert again.compute_merkle_root() == (root, False)
    with pytest.raises(DeserializationError):
        Block.deserialize(raw[:-1], params.kawpow_activation_time)


def test_merkle_mutation_detected() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    root3, mutated3 = merkle_root([a, b, c])
    root4, mutated4 = merkle_root([a, b, c, c])
    assert root3 == root4  # CVE-2012-2459: same root...
    assert not mutated3 and mutated4  # ...but the duplicate is flagged
    assert merkle_root([a]) == (a, False)
    assert merkle_root([a, a])[1]
    assert merkle_root([])[0] == bytes(32)


def test_block_transaction_count_is_bounded() -> None:
    header = BlockHeader(4, PREV, MERKLE, 1, 0x1E00FFFF).serialize()
    with pytest.raises(DeserializationError, match="exceeds"):
        Block.deserialize(header + b"\xfe\x00\x00\x00\x01", ACTIVATION)
