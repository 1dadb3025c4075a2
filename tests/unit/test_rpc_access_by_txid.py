"""getrawtransaction without -txindex finds a transaction through any unspent output (Core: AccessByTxid)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from aipgd.core.params import get_params
from aipgd.core.transaction import OutPoint
from rpc.interface import ACCESS_BY_TXID_OUTPUTS, ChainStateView

TXID = bytes(range(32))


@dataclass
class _Coin:
    height: int


class _Coins:
    def __init__(self, unspent: dict[OutPoint, _Coin]) -> None:
        self.unspent = unspent
        self.lookups = 0

    def get_coin(self, outpoint: OutPoint) -> _Coin | None:
        self.lookups += 1
        return self.unspent.get(outpoint)


class _ChainState:
    def __init__(self, coins: _Coins) -> None:
        self.lock = threading.RLock()
        self.coins_tip = coins


def _view(unspent: dict[OutPoint, _Coin]) -> tuple[ChainStateView, _Coins]:
    coins = _Coins(unspent)
    return ChainStateView(get_params("regtest"), _ChainState(coins)), coins


def test_limit_is_cores_max_outputs_per_block() -> None:
    # GetMaxBlockWeight() (8,000,000 with assets) / MIN_TRANSACTION_OUTPUT_WEIGHT (4 * 9).
    assert ACCESS_BY_TXID_OUTPUTS == 222222


def test_finds_transaction_whose_only_unspent_output_is_past_256() -> None:
    view, coins = _view({OutPoint(TXID, 300): _Coin(7), OutPoint(TXID, 400): _Coin(7)})
    assert view.coin_height_by_txid(TXID) == 7
    assert coins.lookups == 301  # stops at the first unspent output


def test_gives_up_at_the_limit_like_core() -> None:
    view, coins = _view({OutPoint(TXID, ACCESS_BY_TXID_OUTPUTS): _Coin(9)})
    assert view.coin_height_by_txid(TXID) is None
    assert coins.lookups == ACCESS_BY_TXID_OUTPUTS
    view, _ = _view({OutPoint(TXID, ACCESS_BY_TXID_OUTPUTS - 1): _Coin(9)})
    assert view.coin_height_by_txid(TXID) == 9
