"""Context-free transaction checks (Core: CheckTransaction in consensus/tx_verify.cpp).

Owns the rules a transaction must meet on its own: non-empty inputs and outputs, size,
output value ranges, duplicate inputs, coinbase scriptSig length, null prevouts, and the
structural asset-output rules that need no asset payload decoding. It must never look at
coins or the chain; see tx_verify for that.
"""

from __future__ import annotations

from aipgd.consensus.limits import MAX_BLOCK_WEIGHT, WITNESS_SCALE_FACTOR
from aipgd.consensus.validation_state import VALID, ValidationState
from aipgd.core.transaction import MAX_MONEY, NULL_OUTPOINT, Transaction
from aipgd.script.asset_script import AssetScriptType, asset_script_info, count_opcode, is_null_asset
from aipgd.script.opcodes import Op

_ASSET = Op.OP_AIPG_ASSET.value
_ASSET_BYTE = bytes((_ASSET,))


def money_range(value: int) -> bool:
    """Core: MoneyRange."""
    return 0 <= value <= MAX_MONEY


def check_transaction(tx: Transaction, *, check_duplicate_inputs: bool = True, mempool_check: bool = False,
                      block_check: bool = False) -> ValidationState:
    """Core: CheckTransaction(tx, state, fCheckDuplicateInputs, fMempoolCheck, fBlockCheck)."""
    if not tx.vin:
        return ValidationState.invalid("bad-txns-vin-empty", dos=10)
    if not tx.vout:
        return ValidationState.invalid("bad-txns-vout-empty", dos=10)
    # The witness is left out: it has not been checked for malleability yet.
    if tx.base_size * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        return ValidationState.invalid("bad-txns-oversize", dos=100)

    value_out = 0
    has_non_transfer_asset = False
    for txout in tx.vout:
        if txout.value < 0:
            return ValidationState.invalid("bad-txns-vout-negative", dos=100)
        if txout.value > MAX_MONEY:
            return ValidationState.invalid("bad-txns-vout-toolarge", dos=100)
        value_out += txout.value
        if not money_range(value_out):
            return ValidationState.invalid("bad-txns-txouttotal-toolarge", dos=100)
        script = txout.script_pubkey
        if len(script) <= 31 or script[25] != _ASSET:
            continue  # not an asset script (asset_script_info's own first test): nothing to check
        state = _check_asset_output(script, txout.value, mempool_check, block_check)
        if not state:
            return state
        info = asset_script_info(script)
        if info is not None and info[0] != AssetScriptType.TX_TRANSFER_ASSET:
            has_non_transfer_asset = True

    vin = tx.vin
    if check_duplicate_inputs and len(vin) > 1 and len({txin.prevout for txin in vin}) != len(vin):
        return ValidationState.invalid("bad-txns-inputs-duplicate", dos=100)

    if tx.is_coinbase():
        if not 2 <= len(tx.vin[0].script_sig) <= 100:
            return ValidationState.invalid("bad-cb-length", dos=100)
        # Ravencoin: coinbase asset checks are active from genesis on AIPG.
        for txout in tx.vout:
            if asset_script_info(txout.script_pubkey) is not None or is_null_asset(txout.script_pubkey):
                return ValidationState.invalid("bad-txns-coinbase-contains-asset-txes",
                                               debug="coinbase contains asset transaction")
    else:
        for txin in vin:
            if txin.prevout == NULL_OUTPOINT:
                return ValidationState.invalid("bad-txns-prevout-null", dos=10)

    if not has_non_transfer_asset:
        # Core: the fall-through branch for transactions that issue nothing. OP_RVN_ASSET may
        # only appear at the asset position of an asset script or first in a null asset script.
        for txout in tx.vout:
            script = txout.script_pubkey
            # OP_RVN_ASSET can only occur as an op where its byte occurs, and never as an op of
            # a P2PKH script (its ops sit around one 20-byte push).
            if (_ASSET_BYTE in script and not _is_p2pkh(script) and asset_script_info(script) is None
                    and count_opcode(script, Op.OP_AIPG_ASSET)
                    and script[0] != Op.OP_AIPG_ASSET):
                return ValidationState.invalid("bad-txns-op-neox-asset-not-in-right-script-location", dos=100)
    return VALID


def _is_p2pkh(script: bytes) -> bool:
    return (len(script) == 25 and script[0] == _OP_DUP and script[1] == _OP_HASH160 and script[2] == 20
            and script[23] == _OP_EQUALVERIFY and script[24] == _OP_CHECKSIG)


_OP_DUP, _OP_HASH160 = Op.OP_DUP.value, Op.OP_HASH160.value
_OP_EQUALVERIFY, _OP_CHECKSIG = Op.OP_EQUALVERIFY.value, Op.OP_CHECKSIG.value


def _check_asset_output(script: bytes, value: int, mempool_check: bool, block_check: bool) -> ValidationState:
    """The per-output asset value rules of CheckTransaction that need no payload decoding."""
    info = asset_script_info(script)
    if info is None:
        return VALID
    kind = info[0]
    if kind == AssetScriptType.TX_TRANSFER_ASSET:
        if value != 0:
            return ValidationState.invalid("bad-txns-asset-transfer-amount-isn't-zero", dos=100)
    elif kind == AssetScriptType.TX_NEW_ASSET:
        if value != 0:
            return ValidationState.invalid("bad-txns-asset-issued-amount-isn't-zero", dos=100)
    elif kind == AssetScriptType.TX_REISSUE_ASSET:
        # Enforced-values rule: only from CheckBlock (old database entries stay readable).
        if block_check and value != 0:
            return ValidationState.invalid("bad-txns-asset-reissued-amount-isn't-zero")
        if mempool_check and value != 0:
            return ValidationState.invalid("bad-mempool-txns-asset-reissued-amount-isn't-zero")
    return VALID
