"""Network parameters: genesis blocks, hashes and the facts of aipg-network.md."""

from __future__ import annotations

import pytest

from aipgd.core.block import Block
from aipgd.core.hashes import sha256d
from aipgd.core.params import (
    CORE_REGTEST_KAWPOW_ACTIVATION,
    GENESIS_MERKLE_ROOT,
    GENESIS_TIMESTAMP,
    ParamsError,
    get_params,
)
from aipgd.core.transaction import COIN
from aipgd.core.uint256 import hash_to_hex

GENESIS = {
    "main": ("000000fe8c99a7aacc5aff074278a8378e625c0d02e4894db8f09bab185f4eb6", 1688352006, 22801899),
    "test": ("000000f798386703ae778eeaf8a2f426dc2715eb8989b4226cddc1681b567760", 1688350555, 18991761),
    "regtest": ("0000001a53f7f3d9f8be5f0cdfeddd641bee2c6c7001a9cdfdbb6f72ca66aed5", 1688340000, 1925563),
}


@pytest.mark.parametrize("network", sorted(GENESIS))
def test_genesis_hash_and_merkle_root(network: str) -> None:
    params = get_params(network)
    expected_hash, n_time, nonce = GENESIS[network]
    header = params.genesis.header
    assert params.genesis_hash_hex == expected_hash
    assert hash_to_hex(header.merkle_root) == GENESIS_MERKLE_ROOT
    assert (header.time, header.nonce, header.bits, header.version) == (n_time, nonce, 0x1E00FFFF, 4)
    assert not header.kawpow
    assert len(header.serialize()) == 80
    # The coinbase pays 5000 AIPG to the genesis pubkey with OP_CHECKSIG.
    (coinbase,) = params.genesis.vtx
    assert coinbase.is_coinbase()
    assert coinbase.vout[0].value == 5000 * COIN
    assert coinbase.vout[0].script_pubkey[0] == 65 and coinbase.vout[0].script_pubkey[-1] == 0xAC
    assert hash_to_hex(coinbase.txid) == GENESIS_MERKLE_ROOT


@pytest.mark.parametrize("network", sorted(GENESIS))
def test_genesis_block_round_trips(network: str) -> None:
    params = get_params(network)
    raw = params.genesis.serialize()
    again = Block.deserialize(raw, params.kawpow_activation_time)
    assert again.serialize() == raw
    assert again.hash == params.genesis_hash


def test_genesis_coinbase_script_sig_matches_core() -> None:
    script_sig = get_params("main").genesis.vtx[0].vin[0].script_sig
    # OP_0, push4 0x1d00ffff, push1 0x04, OP_PUSHDATA1 80 text: Core's CScriptNum(0)/486604799/CScriptNum(4).
    assert script_sig[:10] == bytes.fromhex("0004ffff001d01044c50")
    assert script_sig[10:] == GENESIS_TIMESTAMP
    assert GENESIS_TIMESTAMP.startswith(b"Bloomberg 10/30/23 Biden Signs Sweeping Order")


def test_network_constants() -> None:
    main, test, regtest = get_params("main"), get_params("test"), get_params("regtest")
    assert (main.message_start, test.message_start, regtest.message_start) == (b"AI4E", b"AI4T", b"AI4R")
    assert (main.default_port, test.default_port, regtest.default_port) == (8865, 18865, 18550)
    assert (main.rpc_port, test.rpc_port, regtest.rpc_port) == (9788, 19788, 19555)
    assert (main.data_subdir, test.data_subdir, regtest.data_subdir) == ("", "testnet_aipg", "regtest")
    assert main.prefixes.pubkey_address == main.prefixes.script_address == b"\x17"
    assert test.prefixes.pubkey_address == test.prefixes.script_address == b"\x14"
    assert (regtest.prefixes.pubkey_address, regtest.prefixes.script_address) == (b"\x6f", b"\xc4")
    assert main.kawpow_activation_time == test.kawpow_activation_time == 1688764800
    assert main.bip44_coin_type == 2686
    assert main.checkpoints[500000] == bytes.fromhex(
        "000000000059f6cc99399239ee56e16ddedbfa3b1923c51694c76cfe6c501531")[::-1]
    assert main.burns.issue_amount == 50 * COIN and main.burns.add_null_qualifier_tag_amount == COIN // 100


def test_community_scripts() -> None:
    main = get_params("main")
    # Ab8KBCTTJgy7XnsPsHbnwRMJD4MFjG12hU decodes to a P2PKH script.
    assert main.community_autonomous_script.hex() == "76a914d4480519a83f60e1e9aca8d82f971f9c11f128f288ac"
    assert (main.grid_fee_percent, main.grid_fee_start_height) == (60, 710000)
    # Testnet quirk: the 'A' address does not decode with prefix 20, so the script is empty.
    assert get_params("test").community_autonomous_script == b""
    assert get_params("test").grid_fee_percent == 0


def test_regtest_kawpow_activation() -> None:
    regtest = get_params("regtest")
    genesis_time = regtest.genesis.header.time
    assert not regtest.is_kawpow_time(genesis_time)
    assert regtest.is_kawpow_time(genesis_time + 1)
    core_like = get_params("regtest", kawpow_activation_time=CORE_REGTEST_KAWPOW_ACTIVATION)
    assert not core_like.is_kawpow_time(2_000_000_000)
    with pytest.raises(ParamsError, match="after the regtest genesis"):
        get_params("regtest", kawpow_activation_time=genesis_time)
    with pytest.raises(ParamsError, match="only allowed on regtest"):
        get_params("main", kawpow_activation_time=CORE_REGTEST_KAWPOW_ACTIVATION)


def test_unknown_network() -> None:
    with pytest.raises(ParamsError, match="Unknown chain"):
        get_params("mainnet")


def test_genesis_hash_is_x16rv2_not_sha256d() -> None:
    header = get_params("main").genesis.header
    assert header.hash != sha256d(header.serialize())
