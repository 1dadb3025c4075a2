"""Digest functions against published test vectors."""

from __future__ import annotations

from aipgd.core.hashes import hash160, ripemd160, sha256, sha256d, x16rv2


def test_ripemd160_vectors() -> None:
    # The RIPEMD-160 paper's test vectors.
    assert ripemd160(b"").hex() == "9c1185a5c5e9fc54612808977ee8f548b2258d31"
    assert ripemd160(b"abc").hex() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
    assert ripemd160(b"message digest").hex() == "5d0689ef49d2fae572b881b123a85ffa21595f36"


def test_sha256d_and_hash160() -> None:
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
    # hash160 of the generator point's compressed encoding (Bitcoin's well-known key 1).
    g = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert hash160(g).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"


def test_x16rv2_is_deterministic_and_length_checked() -> None:
    header = bytes(range(80))
    assert x16rv2(header) == x16rv2(header)
    assert len(x16rv2(header)) == 32
    try:
        x16rv2(header[:79])
    except ValueError as exc:
        assert "80-byte" in str(exc)
    else:
        raise AssertionError("a short header was hashed")
