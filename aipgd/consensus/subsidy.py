"""Block subsidy and the community/grid-fee output (Core: GetBlockSubsidy, ConnectBlock's AIPG part).

Owns the money schedule and the rule that coinbase output 1 pays the network's community
address exactly its share of the subsidy. It must never look at fees' sources or chain
state: callers pass the height, the coinbase and the fees.
"""

from __future__ import annotations

from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.params import ChainParams
from aipgd.core.transaction import COIN, Transaction


def _shift(value: int, count: int) -> int:
    """`value >> count` as Core's compiled x86-64 code does it: the count is taken modulo 64.

    Core shifts by a negative count on regtest (heights 600..8,849,999 with its 150-block
    halving interval), which is undefined in C++; x86's SAR masks the count, so we do too.
    """
    return value >> (count & 63)


def block_subsidy(height: int, params: ChainParams) -> int:
    """Core: GetBlockSubsidy (AIPG's schedule), in satoshis."""
    halvings = height // params.subsidy_halving_interval
    if halvings < 4:
        return _shift(500 * COIN, halvings)
    if 400_000 <= height < 500_000:
        return 3_125_000_000
    if 500_000 <= height < 3_000_000:
        return 1_562_500_000
    if 3_000_000 <= height < 4_575_000:
        return _shift(1_562_500_000, (height - 3_000_000) // 525_000)
    if 4_575_000 <= height < 8_850_000:
        return 195_312_500
    # C++ integer division truncates toward zero, also for the negative values regtest reaches.
    after = height - 8_850_000
    periods = -((-after) // 1_050_000) if after < 0 else after // 1_050_000
    return _shift(97_656_250, periods)


def community_fee_value(height: int, params: ChainParams) -> int:
    """The amount coinbase output 1 must carry: 5% of the subsidy, `grid_fee_percent`% from the
    network's grid-fee start height (main: 60% from 710,000). Zero on testnet and regtest."""
    subsidy = block_subsidy(height, params)
    if height >= params.grid_fee_start_height:
        return subsidy * params.grid_fee_percent // 100
    return subsidy * params.community_autonomous_percent // 100


def check_coinbase_rewards(coinbase: Transaction, height: int, fees: int,
                           params: ChainParams) -> ValidationState:
    """Core: ConnectBlock's coinbase checks — total value, then the community output (index 1)."""
    limit = fees + block_subsidy(height, params)
    paid = sum(out.value for out in coinbase.vout)
    if paid > limit:
        return ValidationState.invalid("bad-cb-amount", dos=100,
                                       debug=f"coinbase pays too much (actual={paid} vs limit={limit})")
    expected = community_fee_value(height, params)
    if len(coinbase.vout) < 2:
        # Core reads vout[1] unchecked; a one-output coinbase can never carry the fee.
        return ValidationState.invalid("bad-cb-community-autonomous-amount", dos=100,
                                       debug="coinbase has no community output")
    output = coinbase.vout[1]
    if output.value != expected:
        return ValidationState.invalid(
            "bad-cb-community-autonomous-amount", dos=100,
            debug=f"Community Autonomous/Grid Fee Amount Is Invalid. Actual: {output.value} "
                  f"Should be:{expected}")
    if output.script_pubkey != params.community_autonomous_script:
        return ValidationState.invalid(
            "bad-cb-community-autonomous-address", dos=100,
            debug=f"Community Autonomous Address Is Invalid. Actual: {output.script_pubkey.hex()} "
                  f"Should Be: {params.community_autonomous_script.hex()}")
    return VALID
