"""Relay policy: which transactions a node relays and mines (Core: policy/policy.cpp, AIPG values).

Owns standardness (IsStandardTx, IsStandard, dust, AreInputsStandard, IsWitnessStandard), the
fee-rate arithmetic (CFeeRate) and virtual size. Nothing here is consensus: a block may hold
non-standard transactions. It must never read the chain or the mempool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aipgd.consensus.limits import MAX_BLOCK_SIGOPS_COST, WITNESS_SCALE_FACTOR
from aipgd.core.transaction import Transaction, TxOut
from aipgd.script.asset_script import is_asset_script, is_unspendable
from aipgd.script.checker import BaseSignatureChecker
from aipgd.script.errors import ScriptEvalError
from aipgd.script.flags import SCRIPT_VERIFY_NONE, SIGVERSION_BASE
from aipgd.script.interpreter import eval_script
from aipgd.script.script import is_p2sh, is_push_only, sigop_count, witness_program
from aipgd.script.standard import TxoutType, solver

# Core: policy.h / validation.h / standard.h with AIPG Core's values.
MAX_STANDARD_TX_WEIGHT = 400_000
MAX_STANDARD_VERSION = 2
MAX_P2SH_SIGOPS = 15
MAX_STANDARD_TX_SIGOPS_COST = MAX_BLOCK_SIGOPS_COST // 5
MAX_STANDARD_SCRIPTSIG_SIZE = 1650
DEFAULT_BYTES_PER_SIGOP = 20
MAX_STANDARD_P2WSH_STACK_ITEMS = 100
MAX_STANDARD_P2WSH_STACK_ITEM_SIZE = 80
MAX_STANDARD_P2WSH_SCRIPT_SIZE = 3600
MAX_OP_RETURN_RELAY = 83
MAX_ASSET_DATA_OUTPUTS = 100
DUST_RELAY_TX_FEE = 3000
DEFAULT_MIN_RELAY_TX_FEE = 1_000_000  # AIPG Core: 0.01 AIPG/kB
DEFAULT_INCREMENTAL_RELAY_FEE = 1000
DEFAULT_BLOCK_MIN_TX_FEE = 1000
DEFAULT_ACCEPT_DATACARRIER = True
DEFAULT_PERMIT_BAREMULTISIG = True


class FeeRate:
    """Core: CFeeRate, satoshis per 1000 virtual bytes."""

    __slots__ = ("per_k",)

    def __init__(self, per_k: int) -> None:
        self.per_k = int(per_k)

    @classmethod
    def from_fee(cls, fee: int, size: int) -> FeeRate:
        return cls(fee * 1000 // size if size > 0 else 0)

    def fee(self, size: int) -> int:
        """Core: GetFee, never zero for a positive rate and size (rounded away from zero)."""
        fee = self.per_k * size // 1000 if self.per_k >= 0 else -((-self.per_k * size) // 1000)
        if fee == 0 and size != 0:
            if self.per_k > 0:
                return 1
            if self.per_k < 0:
                return -1
        return fee

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeeRate) and other.per_k == self.per_k

    def __lt__(self, other: FeeRate) -> bool:
        return self.per_k < other.per_k

    def __le__(self, other: FeeRate) -> bool:
        return self.per_k <= other.per_k

    def __hash__(self) -> int:
        return hash(self.per_k)

    def __repr__(self) -> str:
        return f"FeeRate({self.per_k})"

    def __str__(self) -> str:
        """Core: CFeeRate::ToString."""
        return f"{self.per_k // 100_000_000}.{self.per_k % 100_000_000:08d} AIPG/kB"


@dataclass(frozen=True)
class StandardPolicy:
    """The options behind IsStandardTx (-datacarrier, -datacarriersize, -permitbaremultisig,
    -dustrelayfee, -bytespersigop)."""

    accept_datacarrier: bool = DEFAULT_ACCEPT_DATACARRIER
    max_datacarrier_bytes: int = MAX_OP_RETURN_RELAY
    permit_bare_multisig: bool = DEFAULT_PERMIT_BAREMULTISIG
    dust_relay_fee: int = DUST_RELAY_TX_FEE
    bytes_per_sigop: int = DEFAULT_BYTES_PER_SIGOP


DEFAULT_POLICY = StandardPolicy()


def virtual_size(weight: int, sigop_cost: int = 0, bytes_per_sigop: int = DEFAULT_BYTES_PER_SIGOP) -> int:
    """Core: GetVirtualTransactionSize, weight with sigops priced in, rounded up to vbytes."""
    return (max(weight, sigop_cost * bytes_per_sigop) + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR


def dust_threshold(txout: TxOut, dust_relay_fee: int = DUST_RELAY_TX_FEE) -> int:
    """Core: GetDustThreshold, the cost of spending the output later at the dust relay fee."""
    if is_unspendable(txout.script_pubkey):
        return 0
    size = len(txout.serialize())
    if witness_program(txout.script_pubkey) is not None:
        size += 32 + 4 + 1 + 107 // WITNESS_SCALE_FACTOR + 4
    else:
        size += 32 + 4 + 1 + 107 + 4
    return FeeRate(dust_relay_fee).fee(size)


def is_dust(txout: TxOut, dust_relay_fee: int = DUST_RELAY_TX_FEE) -> bool:
    """Core (Ravencoin): asset outputs carry zero AIPG and are never dust."""
    if is_asset_script(txout.script_pubkey):
        return False
    return txout.value < dust_threshold(txout, dust_relay_fee)


def is_standard_script(script_pubkey: bytes, policy: StandardPolicy = DEFAULT_POLICY) -> TxoutType | None:
    """Core: IsStandard. The template type, or None when the output is not standard."""
    kind, solutions = solver(script_pubkey)
    if kind == TxoutType.TX_MULTISIG:
        m, n = solutions[0][0], solutions[-1][0]
        if not 1 <= n <= 3 or not 1 <= m <= n:
            return None
    elif kind == TxoutType.TX_NULL_DATA:
        if not policy.accept_datacarrier or len(script_pubkey) > policy.max_datacarrier_bytes:
            return None
    elif kind == TxoutType.TX_RESTRICTED_ASSET_DATA and len(script_pubkey) > MAX_OP_RETURN_RELAY:
        return None
    return None if kind == TxoutType.TX_NONSTANDARD else kind


def is_standard_tx(tx: Transaction, policy: StandardPolicy = DEFAULT_POLICY) -> str | None:
    """Core: IsStandardTx. None when standard, else the reject reason."""
    version = tx.version - (1 << 32) if tx.version >= 1 << 31 else tx.version
    if version > MAX_STANDARD_VERSION or version < 1:
        return "version"
    # Larger transactions take quadratic time to sign-hash and are rarely needed.
    if tx.weight >= MAX_STANDARD_TX_WEIGHT:
        return "tx-size"
    for txin in tx.vin:
        # 1650 bytes: a 15-of-15 P2SH multisig with compressed keys, with room to spare.
        if len(txin.script_sig) > MAX_STANDARD_SCRIPTSIG_SIZE:
            return "scriptsig-size"
        if not is_push_only(txin.script_sig):
            return "scriptsig-not-pushonly"
    data_outputs = asset_data_outputs = 0
    for txout in tx.vout:
        kind = is_standard_script(txout.script_pubkey, policy)
        if kind is None:
            return "scriptpubkey"
        if kind == TxoutType.TX_NULL_DATA:
            data_outputs += 1
        elif kind == TxoutType.TX_RESTRICTED_ASSET_DATA:
            asset_data_outputs += 1
        elif kind == TxoutType.TX_MULTISIG and not policy.permit_bare_multisig:
            return "bare-multisig"
        elif is_dust(txout, policy.dust_relay_fee):
            return "dust"
    if data_outputs > 1:
        return "multi-op-return"
    if asset_data_outputs > MAX_ASSET_DATA_OUTPUTS:
        return "tomany-op-neox-asset"
    return None


def _p2sh_redeem_script(script_sig: bytes) -> bytes | None:
    """The last item the scriptSig pushes (evaluated with no flags), or None if it fails."""
    stack: list[bytes] = []
    try:
        eval_script(stack, script_sig, SCRIPT_VERIFY_NONE, BaseSignatureChecker(), SIGVERSION_BASE)
    except ScriptEvalError:
        return None
    return stack[-1] if stack else None


def are_inputs_standard(tx: Transaction, spent: Sequence[TxOut]) -> bool:
    """Core: AreInputsStandard. Guards against scriptSigs stuffed with extra data and P2SH
    redeem scripts with too many expensive signature checks. `spent[i]` is input i's coin."""
    if tx.is_coinbase():
        return True
    for txin, prev in zip(tx.vin, spent, strict=True):
        kind, _ = solver(prev.script_pubkey)
        if kind == TxoutType.TX_NONSTANDARD:
            return False
        if kind == TxoutType.TX_SCRIPTHASH:
            redeem = _p2sh_redeem_script(txin.script_sig)
            if redeem is None or sigop_count(redeem, True) > MAX_P2SH_SIGOPS:
                return False
    return True


def is_witness_standard(tx: Transaction, spent: Sequence[TxOut]) -> bool:
    """Core: IsWitnessStandard, bounds on P2WSH witness scripts and stacks."""
    if tx.is_coinbase():
        return True
    for txin, prev in zip(tx.vin, spent, strict=True):
        if not txin.witness:
            continue
        script = prev.script_pubkey
        if is_p2sh(script):
            redeem = _p2sh_redeem_script(txin.script_sig)
            if redeem is None:
                return False
            script = redeem
        program = witness_program(script)
        if program is None:
            # Witness data spending a non-witness output.
            return False
        version, prog = program
        if version == 0 and len(prog) == 32:
            if len(txin.witness[-1]) > MAX_STANDARD_P2WSH_SCRIPT_SIZE:
                return False
            items = txin.witness[:-1]
            if len(items) > MAX_STANDARD_P2WSH_STACK_ITEMS:
                return False
            if any(len(item) > MAX_STANDARD_P2WSH_STACK_ITEM_SIZE for item in items):
                return False
    return True
