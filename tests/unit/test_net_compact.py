"""BIP152 compact blocks (Core: blockencodings_tests, the SipHash vectors of crypto_tests): short ids,
rebuilding from the mempool, asking for what is missing, and telling a collision from a bad answer."""

from __future__ import annotations

import pytest

from aipgd.core.block import Block, BlockHeader
from aipgd.core.merkle import merkle_root
from aipgd.core.transaction import OutPoint, Transaction, TxIn, TxOut
from aipgd.net.blockmessages import CmpctBlock
from aipgd.net.compactblocks import (
    CompactBlockError,
    PartialBlock,
    make_compact_block,
    short_id,
    short_id_key,
    siphash24,
)
from aipgd.net.message_base import DecodeContext
from aipgd.net.messages import decode_message

K0, K1 = 0x0706050403020100, 0x0F0E0D0C0B0A0908


def test_siphash_reference_vectors() -> None:
    # The SipHash paper's key 00..0f: the empty message and 00..0e (15 bytes).
    assert siphash24(K0, K1, b"") == 0x726FDB47DD0E0E31
    assert siphash24(K0, K1, bytes(range(15))) == 0xA129CA6149BE45E5
    assert siphash24(K0, K1, bytes(range(8))) == 0x93F5F5799A932462


def _tx(n: int, witness: bool = False) -> Transaction:
    wit = (b"\x01" * 3,) if witness else ()
    return Transaction(2, (TxIn(OutPoint(n.to_bytes(32, "little"), 0), b"\x51", witness=wit),),
                       (TxOut(1000 + n, b"\x51"),))


def _block(count: int) -> Block:
    vtx = (_tx(0), *(_tx(i, witness=i % 2 == 0) for i in range(1, count)))
    root, _ = merkle_root([tx.txid for tx in vtx])
    return Block(BlockHeader(0x30000000, b"\x11" * 32, root, 1_700_000_000, 0x207FFFFF, 7), vtx)


def test_a_block_is_rebuilt_from_the_pool_and_a_blocktxn_answer() -> None:
    block = _block(6)
    cmpct = make_compact_block(block, nonce=42)
    assert len(cmpct.short_ids) == 5 and cmpct.prefilled[0].index == 0
    key = short_id_key(block.header, 42)
    assert cmpct.short_ids[0] == short_id(key, block.vtx[1].wtxid)
    # The message survives the wire.
    assert decode_message("cmpctblock", cmpct.serialize(), DecodeContext(0xFFFFFFFF)) == cmpct

    everything = PartialBlock.start(cmpct, (*block.vtx[1:], _tx(99)))
    assert everything is not None and everything.missing == [] and everything.from_mempool == 5
    assert everything.fill() == block

    partial = PartialBlock.start(cmpct, [block.vtx[2], block.vtx[4]])
    assert partial is not None and partial.missing == [1, 3, 5]
    with pytest.raises(CompactBlockError):
        partial.fill([block.vtx[1]])
    assert partial.fill([block.vtx[1], block.vtx[3], block.vtx[5]]) == block


def test_a_wrong_answer_asks_for_the_whole_block_and_a_broken_message_is_refused() -> None:
    block = _block(3)
    cmpct = make_compact_block(block, nonce=1)
    partial = PartialBlock.start(cmpct, [])
    assert partial is not None
    # Transactions that do not hash to the header's merkle root: fetch the full block instead.
    assert partial.fill([_tx(50), _tx(51)]) is None
    # Two short ids alike in one block: READ_STATUS_FAILED, the full block.
    twin = CmpctBlock(cmpct.header, cmpct.nonce, (cmpct.short_ids[0], cmpct.short_ids[0]), cmpct.prefilled)
    assert PartialBlock.start(twin, []) is None
    with pytest.raises(CompactBlockError):
        PartialBlock.start(CmpctBlock(cmpct.header, 1, (), ()), [])
