"""Undo records in AIPG Core's rev-file format (Core: undo.h CTxUndo / CBlockUndo, UndoWriteToDisk).

Owns encoding and decoding the coins a block spent (one list per non-coinbase transaction, in
input order) and the record's checksum, sha256d(parent block hash + undo bytes), which is what
Core hashes (CHashWriter << pprev hash << blockundo). Pure bytes in and out: it must never touch
files or the UTXO set.
"""

from __future__ import annotations

from aipgd.chain.coins import Coin, compress_txout, decompress_amount, read_compressed_script
from aipgd.consensus.limits import MAX_BLOCK_WEIGHT, WITNESS_SCALE_FACTOR
from aipgd.core.hashes import sha256d
from aipgd.core.serialize import ByteReader, DeserializationError, ser_compact_size, ser_varint
from aipgd.core.transaction import TxOut

# Core: MIN_TRANSACTION_INPUT_WEIGHT (an empty CTxIn is 41 bytes) bounds the records per transaction.
MIN_TRANSACTION_INPUT_WEIGHT = WITNESS_SCALE_FACTOR * 41
MAX_INPUT_UNDO_RECORDS = MAX_BLOCK_WEIGHT // MIN_TRANSACTION_INPUT_WEIGHT
# The smallest encoded record: code, amount and a one-byte special script form plus 20 bytes.
_MIN_TXIN_UNDO_SIZE = 3

TxUndo = list[Coin]




def _read_txin_undo(r: ByteReader) -> Coin:
    code = r.varint("undo coin code", max_value=0xFFFFFFFF)
    height, coinbase = code >> 1, bool(code & 1)
    if height > 0:
        r.varint("undo version dummy", max_value=0x7FFFFFFF)
    value = decompress_amount(r.varint("undo coin amount"))
    script = read_compressed_script(r)
    return Coin(TxOut(value, script), height, coinbase)


def serialize_block_undo(block_undo: list[TxUndo]) -> bytes:
    """Core: CBlockUndo's serialization, a vector of CTxUndo, each a vector of TxInUndoSerializer
    records: VARINT(height*2 + coinbase), a zero 'version' byte when the height is nonzero (for
    compatibility with the pre-0.15 format), then the compressed output."""
    parts = [ser_compact_size(len(block_undo))]
    append = parts.append
    for tx_undo in block_undo:
        append(ser_compact_size(len(tx_undo)))
        for coin in tx_undo:
            height = coin.height
            append(ser_varint(height * 2 + coin.coinbase))
            if height > 0:
                append(b"\x00")
            append(compress_txout(coin.out))
    return b"".join(parts)


def _read_tx_undo(r: ByteReader) -> TxUndo:
    start = r.pos
    count = r.compact_size("undo record count")
    if count > MAX_INPUT_UNDO_RECORDS:
        raise DeserializationError("CTxUndo", start, "Too many input undo records")
    if count * _MIN_TXIN_UNDO_SIZE > r.remaining:
        raise DeserializationError("CTxUndo", start, f"{count} records cannot fit in {r.remaining} bytes")
    return [_read_txin_undo(r) for _ in range(count)]


def deserialize_block_undo(data: bytes) -> list[TxUndo]:
    r = ByteReader(data)
    block_undo = r.vector(_read_tx_undo, "CBlockUndo", min_item_size=1)
    r.expect_end("CBlockUndo")
    return block_undo


def undo_checksum(prev_block_hash: bytes, undo_bytes: bytes) -> bytes:
    """Core: the hash UndoWriteToDisk appends, keyed by the parent block's hash."""
    return sha256d(prev_block_hash + undo_bytes)
