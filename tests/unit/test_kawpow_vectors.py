"""KawPoW against the reference vectors (tests/data/kawpow_hash.json) and Ravencoin's test facts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import kawpow
from kawpow import ethash
from kawpow.context import ContextCache
from kawpow.keccak import keccak256, keccak512

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "kawpow_hash.json").read_text())
# Sorted by epoch so each epoch's light cache is built once per worker.
VECTORS.sort(key=lambda v: v["block_number"])


@pytest.fixture(scope="module")
def contexts() -> Iterator[ContextCache]:
    cache = ContextCache(capacity=2, prefetch_window=0)
    yield cache
    cache.close()


def test_keccak_known_answers() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak512(b"").hex() == (
        "0eab42de4c3ceb9235fc91acffe746b29c29a8c366b7c60e4e67c466f36a4304"
        "c00fa9caf9d87976ba469bcbe06713b435f091ef2769fb160cdab33d3670680e"
    )


def test_epoch_sizes_and_seed() -> None:
    # ethash's well-known epoch 0 figures (16 MiB cache, 1 GiB dataset, both shrunk to primes)
    assert ethash.light_cache_num_items(0) == 262139
    assert ethash.full_dataset_num_items(0) == 8388593
    assert kawpow.epoch_seed(0) == bytes(32)
    assert kawpow.epoch_seed(1).hex() == "290decd9548b62a8d60345a988386fc84ba6bc95484008f6362f93160ef3e563"


def test_epoch0_l1_cache(contexts: ContextCache) -> None:
    expected = [
        2492749011, 430724829, 2029256771, 3095580433, 3583790154, 3025086503, 805985885,
        4121693337, 2320382801, 3763444918, 1006127899, 1480743010, 2592936015, 2598973744,
        3038068233, 2754267228, 2867798800, 2342573634, 467767296, 246004123,
    ]  # fmt: skip
    assert contexts.get(0).l1_cache[:20].tolist() == expected


@pytest.mark.parametrize(
    ("block_number", "header", "nonce", "mix", "final"),
    [
        (
            0, "00" * 32, 0,
            "6e97b47b134fda0c7888802988e1a373affeb28bcd813b6e9a0fc669c935d03a",
            "e601a7257a70dc48fccc97a7330d704d776047623b92883d77111fb36870f3d1",
        ),
        (
            30000, "ffeeddccbbaa9988776655443322110000112233445566778899aabbccddeeff", 0x123456789ABCDEF0,
            "177b565752a375501e11b6d9d3679c2df6197b2cab3a1ba2d6b10b8c71a3d459",
            "c824bee0418e3cfb7fae56e0d5b3b8b14ba895777feea81c70c0ba947146da69",
        ),
    ],
)  # fmt: skip
def test_ravencoin_facts(
    contexts: ContextCache, block_number: int, header: str, nonce: int, mix: str, final: str
) -> None:
    got = kawpow.hash(block_number, bytes.fromhex(header), nonce, contexts=contexts)
    assert (got[0].hex(), got[1].hex()) == (mix, final)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"block{v['block_number']}")
def test_vector(contexts: ContextCache, vector: dict[str, object]) -> None:
    header = bytes.fromhex(str(vector["header_hash"]))
    nonce = int(str(vector["nonce"]), 16)
    bn = int(str(vector["block_number"]))
    mix, final = kawpow.hash(bn, header, nonce, contexts=contexts)
    assert mix.hex() == vector["mix_hash"]
    assert final.hex() == vector["final_hash"]
    assert kawpow.final_hash(header, mix, nonce) == final
    assert kawpow.verify(bn, header, mix, nonce, final, contexts=contexts)


def test_hash_many_matches_single(contexts: ContextCache) -> None:
    header = bytes(range(32))
    many = kawpow.hash_many(10, header, [1, 2**64 - 1], contexts=contexts)
    assert many == [kawpow.hash(10, header, n, contexts=contexts) for n in (1, 2**64 - 1)]
    assert np.all(np.array([len(m) + len(f) for m, f in many]) == 64)
