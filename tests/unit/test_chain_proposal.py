"""BIP23 proposals (Core: TestBlockValidity): every rule up to ConnectBlock, and no state change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_builder import OP_TRUE, ChainBuilder, open_chain, spend, submit_all, with_coinbase_outputs

import kawpow
from aipgd.chain.chainstate import ChainState
from aipgd.chain.proposal import validate_block_proposal
from aipgd.core.params import ChainParams
from aipgd.core.transaction import COIN, OutPoint


@pytest.fixture(scope="module")
def builder(params: ChainParams) -> ChainBuilder:
    return ChainBuilder(params, kawpow.ContextCache(prefetch_window=0))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, builder: ChainBuilder,
          params: ChainParams) -> Iterator[ChainState]:
    blocks = builder.chain(params.genesis_hash, params.coinbase_maturity + 1)
    netdir: Path = tmp_path_factory.mktemp("proposal")
    with open_chain(netdir, params, builder.contexts) as cs:
        submit_all(cs, blocks)
        yield cs


def _first_coinbase(builder: ChainBuilder, cs: ChainState) -> OutPoint:
    first = cs.chain[1]
    assert first is not None
    return OutPoint(builder.blocks[first.block_hash].vtx[0].txid, 0)


def test_valid_proposal_spends_nothing(builder: ChainBuilder, chain: ChainState) -> None:
    tip = chain.chain.tip
    assert tip is not None
    source = _first_coinbase(builder, chain)
    coin = chain.coins_tip.get_coin(source)
    assert coin is not None
    tx = spend([source], [(coin.out.value - COIN, OP_TRUE)])
    block = builder.block(tip.block_hash, [tx], fees=COIN, mine=False)  # proposals skip proof of work
    assert validate_block_proposal(chain, block)
    assert chain.chain.tip is tip
    assert chain.coins_tip.get_coin(source) == coin
    assert chain.coins_tip.get_coin(OutPoint(tx.txid, 0)) is None
    assert chain.block_index.get(block.hash) is None


def test_connect_block_reasons(builder: ChainBuilder, chain: ChainState) -> None:
    tip = chain.chain.tip
    assert tip is not None
    missing = spend([OutPoint(b"\x22" * 32, 0)], [(1, OP_TRUE)])
    block = builder.block(tip.block_hash, [missing], mine=False)
    assert validate_block_proposal(chain, block).reject_reason == "bad-txns-inputs-missingorspent"
    source = _first_coinbase(builder, chain)
    first = spend([source], [(COIN, OP_TRUE)])
    again = spend([source], [(COIN, OP_TRUE), (1, OP_TRUE)])
    block = builder.block(tip.block_hash, [first, again], mine=False)
    assert validate_block_proposal(chain, block).reject_reason == "bad-txns-inputs-missingorspent"
    greedy = builder.block(tip.block_hash, coinbase=with_coinbase_outputs(600 * COIN), mine=False)
    assert validate_block_proposal(chain, greedy).reject_reason == "bad-cb-amount"
    stale_bits = builder.block(tip.block_hash, header=lambda h: h.with_fields(bits=0x1D00FFFF), mine=False)
    assert validate_block_proposal(chain, stale_bits).reject_reason == "bad-diffbits"
    assert chain.coins_tip.get_coin(source) is not None
