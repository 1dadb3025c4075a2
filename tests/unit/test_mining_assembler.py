"""Block assembly and regtest mining produce blocks that pass the consensus checks."""

from __future__ import annotations

import pytest

from aipgd.consensus.block_check import check_block, contextual_check_block, witness_commitment_index
from aipgd.consensus.pow import check_block_header_pow
from aipgd.consensus.subsidy import block_subsidy, check_coinbase_rewards
from aipgd.core.params import CORE_REGTEST_KAWPOW_ACTIVATION, get_params
from aipgd.core.transaction import COIN
from aipgd.mining.assembler import MiningError, coinbase_script_sig, create_block, mine_block

PAYOUT = bytes.fromhex("76a914") + bytes(range(20)) + bytes.fromhex("88ac")


def test_regtest_kawpow_block_is_valid() -> None:
    params = get_params("regtest")
    genesis = params.genesis.header
    block = create_block(params, params.genesis_hash, 0, genesis.time, 0x207FFFFF, [], PAYOUT,
                         genesis.time + 60)
    mined = mine_block(block, params, max_tries=256)
    assert mined is not None
    header = mined.header
    assert header.kawpow and header.height == 1 and header.prev_hash == params.genesis_hash
    assert check_block_header_pow(header, params)
    assert check_block(mined)
    assert contextual_check_block(mined, 0, genesis.time, bip34_height=params.bip34_height)
    coinbase = mined.vtx[0]
    assert coinbase.vin[0].script_sig == bytes((0x51, 0x00))  # OP_1 OP_0: Core's "<height> OP_0"
    assert coinbase.vout[0].value == block_subsidy(1, params) == 500 * COIN
    assert (coinbase.vout[1].value, coinbase.vout[1].script_pubkey) == (0, b"")
    assert witness_commitment_index(mined) == 2
    assert check_coinbase_rewards(coinbase, 1, 0, params)


def test_main_layout_pays_community_fee() -> None:
    params = get_params("main")
    block = create_block(params, bytes(32), 299_999, params.kawpow_activation_time, 0x1D00FFFF, [], PAYOUT,
                         params.kawpow_activation_time + 100, fees=1234)
    coinbase = block.vtx[0]
    subsidy = block_subsidy(300_000, params)
    assert coinbase.vout[1].value == subsidy * 5 // 100
    assert coinbase.vout[1].script_pubkey == params.community_autonomous_script
    assert coinbase.vout[0].value == subsidy - subsidy * 5 // 100 + 1234
    assert check_coinbase_rewards(coinbase, 300_000, 1234, params)
    assert block.header.height == 300_000


def test_legacy_regtest_mining_with_core_activation() -> None:
    params = get_params("regtest", kawpow_activation_time=CORE_REGTEST_KAWPOW_ACTIVATION)
    genesis = params.genesis.header
    block = create_block(params, params.genesis_hash, 0, genesis.time, 0x207FFFFF, [], PAYOUT,
                         genesis.time + 1)
    mined = mine_block(block, params, max_tries=1000)
    assert mined is not None and not mined.header.kawpow
    assert len(mined.header.serialize()) == 80
    assert check_block_header_pow(mined.header, params)


def test_time_must_follow_median_time_past() -> None:
    params = get_params("regtest")
    with pytest.raises(MiningError, match="median time past"):
        create_block(params, params.genesis_hash, 0, 1000, 0x207FFFFF, [], PAYOUT, 1000)


def test_extra_nonce_changes_the_coinbase() -> None:
    assert coinbase_script_sig(200, 0) != coinbase_script_sig(200, 1)
    assert coinbase_script_sig(200, 1).startswith(bytes((2, 200, 0)))
