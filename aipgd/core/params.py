"""Network parameters of AIPG main, test and regtest (Core: chainparams.cpp).

Owns the constants that make this node byte-compatible with AIPG Core: message start,
ports, address prefixes, genesis blocks, PoW limits, subsidy/fee settings, burn
addresses and checkpoints. Each genesis block is rebuilt from its fields and checked
against the known hash and merkle root on construction. Nothing here holds a
"current network": callers pass the `ChainParams` they were given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from aipgd.core.address import AddressError, Base58Prefixes, decode_address
from aipgd.core.block import Block, BlockHeader
from aipgd.core.transaction import COIN, NULL_OUTPOINT, Transaction, TxIn, TxOut
from aipgd.core.uint256 import ZERO_HASH, hash_to_hex, hex_to_hash
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script, encode_script_num
from aipgd.script.standard import script_for_destination

NETWORKS = ("main", "test", "regtest")

GENESIS_TIMESTAMP = b"Bloomberg 10/30/23 Biden Signs Sweeping Order Regulating Artificial Intelligence"
GENESIS_PUBKEY = bytes.fromhex(
    "04f529c0007624ffa8c565cf9fbbcf406701b2a279a3ef06232069429b3c8c9fe8"
    "cac1b4062b418cdd4e4e2ea72ddbdf935a8f30fc3ca04d1844f6963332df8581")
GENESIS_MERKLE_ROOT = "e04a78dcf0ad3d5c7f1ac4460c4c04bc333e677d52371b7453b5b09603b41d54"
# Core's regtest passes 500 AIPG but asserts the merkle root of a 5000-AIPG coinbase;
# only 5000 reproduces the asserted hashes, so every network uses it.
GENESIS_REWARD = 5000 * COIN
GENESIS_BITS = 0x1E00FFFF
GENESIS_VERSION = 4

# Core: regtest's nKAWPOWActivationTime (year 2083), restored by -kawpowactivationtime.
CORE_REGTEST_KAWPOW_ACTIVATION = 3582830167


@dataclass(frozen=True, slots=True)
class Deployment:
    """One BIP9 deployment (Core: Consensus::BIP9Deployment with AIPG's per-deployment overrides).

    `name` is the getblocktemplate rule name (Core: VersionBitsDeploymentInfo); `info_name` the key
    in getblockchaininfo's bip9_softforks, or "" where Core leaves it out (testdummy).
    """

    name: str
    info_name: str
    bit: int
    start_time: int
    timeout: int
    # AIPG: nOverrideRuleChangeActivationThreshold / nOverrideMinerConfirmationWindow (0: the network's).
    threshold: int = 0
    window: int = 0
    gbt_force: bool = True


def _deployments(start: int, timeout: int, windows: tuple[tuple[int, int], ...]) -> tuple[Deployment, ...]:
    """Core: vDeployments, in DeploymentPos order. Names and bits are the same on every network; within
    a network all deployments share one start and timeout, and differ in (threshold, window)."""
    names = (("testdummy", "", 28), ("assets", "assets", 6),
             ("messaging_restricted", "messaging_restricted", 7), ("transfer_script", "transfer_script", 8),
             ("enforce_value", "enforce", 9), ("coinbase", "coinbase", 10))
    return tuple(Deployment(name, info, bit, start, timeout, threshold, window)
                 for (name, info, bit), (threshold, window) in zip(names, windows, strict=True))


# Core (AIPG) main and test: start 20 May 2022 / 17 Jul 2022, all timed out before genesis (2023).
_MAIN_TEST_WINDOWS = ((1814, 2016), (1814, 2016), (1714, 2016), (1714, 2016), (1411, 2016), (1411, 2016))
_REGTEST_WINDOWS = ((108, 144), (108, 144), (108, 144), (208, 288), (108, 144), (400, 500))


class ParamsError(ValueError):
    """Unknown network, or parameters that do not reproduce the known genesis block."""


@dataclass(frozen=True, slots=True)
class AssetBurns:
    """Ravencoin asset-layer burn amounts (satoshis) and burn addresses."""

    issue_amount: int
    reissue_amount: int
    issue_sub_amount: int
    issue_unique_amount: int
    issue_msg_channel_amount: int
    issue_qualifier_amount: int
    issue_sub_qualifier_amount: int
    issue_restricted_amount: int
    add_null_qualifier_tag_amount: int
    issue_address: str
    reissue_address: str
    issue_sub_address: str
    issue_unique_address: str
    issue_msg_channel_address: str
    issue_qualifier_address: str
    issue_sub_qualifier_address: str
    issue_restricted_address: str
    add_null_qualifier_tag_address: str
    global_burn_address: str


@dataclass(frozen=True)
class ChainParams:
    network: str
    data_subdir: str
    message_start: bytes
    default_port: int
    rpc_port: int
    prefixes: Base58Prefixes
    bip44_coin_type: int
    genesis: Block
    genesis_hash: bytes
    kawpow_activation_time: int
    # Proof of work (Core: Consensus::Params).
    pow_limit: int
    kawpow_limit: int
    pow_target_spacing: int
    pow_target_timespan: int
    pow_allow_min_difficulty_blocks: bool
    pow_no_retargeting: bool
    dgw_activation_height: int
    # Money.
    subsidy_halving_interval: int
    coinbase_maturity: int
    community_autonomous_percent: int
    grid_fee_percent: int
    grid_fee_start_height: int
    community_autonomous_address: str
    community_autonomous_script: bytes
    # Activation heights.
    bip34_height: int
    asset_activation_height: int
    messaging_activation_height: int
    restricted_activation_height: int
    burns: AssetBurns
    # Chain selection and policy.
    checkpoints: MappingProxyType[int, bytes]
    default_assume_valid: bytes
    minimum_chain_work: int
    max_reorganization_depth: int
    require_standard: bool
    mine_blocks_on_demand: bool
    mining_requires_peers: bool
    dns_seeds: tuple[str, ...] = field(default=())
    # Core: nPruneAfterHeight, the chain height below which automatic pruning never starts.
    prune_after_height: int = 100000
    # BIP9 (Core: nRuleChangeActivationThreshold, nMinerConfirmationWindow, vDeployments).
    rule_change_activation_threshold: int = 1613
    miner_confirmation_window: int = 2016
    deployments: tuple[Deployment, ...] = ()

    @property
    def genesis_hash_hex(self) -> str:
        return hash_to_hex(self.genesis_hash)

    def is_kawpow_time(self, n_time: int) -> bool:
        return n_time >= self.kawpow_activation_time


def _genesis_block(n_time: int, nonce: int) -> Block:
    """Core: CreateGenesisBlock. The scriptSig pushes CScriptNum(0), 486604799, CScriptNum(4), text."""
    script_sig = build_script(b"", 486604799, encode_script_num(4), GENESIS_TIMESTAMP)
    coinbase = Transaction(
        version=1,
        vin=(TxIn(NULL_OUTPOINT, script_sig),),
        vout=(TxOut(GENESIS_REWARD, build_script(GENESIS_PUBKEY, Op.OP_CHECKSIG)),),
        locktime=0,
    )
    header = BlockHeader(GENESIS_VERSION, ZERO_HASH, coinbase.txid, n_time, GENESIS_BITS, nonce=nonce)
    return Block(header, (coinbase,))


def _checked_genesis(network: str, n_time: int, nonce: int, expected_hash: str) -> Block:
    genesis = _genesis_block(n_time, nonce)
    merkle, _ = genesis.compute_merkle_root()
    if hash_to_hex(merkle) != GENESIS_MERKLE_ROOT:
        raise ParamsError(f"{network} genesis merkle root {hash_to_hex(merkle)} != {GENESIS_MERKLE_ROOT}")
    if genesis.hash_hex != expected_hash:
        raise ParamsError(f"{network} genesis hash {genesis.hash_hex} != {expected_hash}")
    return genesis


def _community_script(address: str, prefixes: Base58Prefixes) -> bytes:
    """Core: GetScriptForDestination(DecodeDestination(addr)); an undecodable address gives ''.

    That is the testnet quirk: its community address has the main prefix, so the
    required script is empty (verified against AIPG Core).
    """
    if not address:
        return b""
    try:
        return script_for_destination(decode_address(address, prefixes))
    except AddressError:
        return b""


_MAIN_BURNS = AssetBurns(
    50 * COIN, 10 * COIN, 10 * COIN, COIN // 2, 10 * COIN, 100 * COIN, 10 * COIN, 150 * COIN, COIN // 100,
    issue_address="AIissueAssetXXXXXXXXXXXXXXXXXhhZGt",
    reissue_address="AIReissueAssetXXXXXXXXXXXXXXVEFAWu",
    issue_sub_address="AIissueSubAssetXXXXXXXXXXXXXWcwhwL",
    issue_unique_address="AIissueUniqueAssetXXXXXXXXXXWEAe58",
    issue_msg_channel_address="AIissueMsgChanneLAssetXXXXXXSjHvAY",
    issue_qualifier_address="AIissueQuaLifierXXXXXXXXXXXXUgEDbC",
    issue_sub_qualifier_address="AIissueSubQuaLifierXXXXXXXXXVTzvv5",
    issue_restricted_address="AIissueRestrictedXXXXXXXXXXXXzJZ1q",
    add_null_qualifier_tag_address="AIaddTagBurnXXXXXXXXXXXXXXXXZQm5ya",
    global_burn_address="AIBurnXXXXXXXXXXXXXXXXXXXXXXWUo9FV",
)

# Testnet and regtest share Core's `n1…` burn addresses (prefix 111).
_TEST_BURNS = AssetBurns(
    50 * COIN, 10 * COIN, 10 * COIN, COIN // 2, 10 * COIN, 100 * COIN, 10 * COIN, 150 * COIN, COIN // 100,
    issue_address="n1issueAssetXXXXXXXXXXXXXXXXWdnemQ",
    reissue_address="n1ReissueAssetXXXXXXXXXXXXXXWG9NLd",
    issue_sub_address="n1issueSubAssetXXXXXXXXXXXXXbNiH6v",
    issue_unique_address="n1issueUniqueAssetXXXXXXXXXXS4695i",
    issue_msg_channel_address="n1issueMsgChanneLAssetXXXXXXT2PBdD",
    issue_qualifier_address="n1issueQuaLifierXXXXXXXXXXXXUysLTj",
    issue_sub_qualifier_address="n1issueSubQuaLifierXXXXXXXXXYffPLh",
    issue_restricted_address="n1issueRestrictedXXXXXXXXXXXXZVT9V",
    add_null_qualifier_tag_address="n1addTagBurnXXXXXXXXXXXXXXXXX5oLMH",
    global_burn_address="n1BurnXXXXXXXXXXXXXXXXXXXXXXU1qejP",
)

_MAIN_CHECKPOINTS = {
    0: "000000fe8c99a7aacc5aff074278a8378e625c0d02e4894db8f09bab185f4eb6",
    1000: "0000000896d9bff8ff18634e4a6371c746f910a188b7e27912a7f99bf46b7619",
    5000: "000000000001de284a9c92a2e1ac6e27318eda12d40af4cde7cef76d1938383a",
    10000: "00000000000012a7e53f095089df469faee1c88374d34faff345cf63344e9f44",
    17500: "0000000000003b97704bb221c3d891ba0a180170a883bcf673a6027ec7d3f256",
    25000: "000000000000244c4b9141badcc9ea3793a616fde2f71117f691f5594497f601",
    32500: "00000000000044067d88c8e8d31ba7484f42a54ce69b8dd96e1aaf0c18741bf1",
    40000: "0000000000004d631d9a7e09ebd68dda413a0a38c4c7f9f0ec5d89016632aaf1",
    50000: "0000000000001db9dc268fc6ad716468f8431031af3eac52f0f2dd877247bc01",
    62500: "0000000000004b6d4a5ea2ff4cd8466098ad767b4a117b0cd32435afe8be6314",
    100000: "0000000000003cd083d33367cb52c2e01cc7c26335d99bfdb8d030849f76c987",
    101775: "0000000000006c4a234393ce042d5f938ba24c0e54bdb2efcbcdb7da9a4b4613",
    300000: "00000000000e895e615f66c9e8c957910f3717cc26215ac2f676d569c096aea1",
    400000: "0000000000155a8ffba384ae87a54a3fd0fe47cb4397999fdb624555befdfaae",
    500000: "000000000059f6cc99399239ee56e16ddedbfa3b1923c51694c76cfe6c501531",
}


def _checkpoints(table: dict[int, str]) -> MappingProxyType[int, bytes]:
    return MappingProxyType({height: hex_to_hash(h) for height, h in table.items()})


_XPUB_MAIN, _XPRV_MAIN = bytes.fromhex("0488B21E"), bytes.fromhex("0488ADE4")
_XPUB_TEST, _XPRV_TEST = bytes.fromhex("043587CF"), bytes.fromhex("04358394")
_MAIN_PREFIXES = Base58Prefixes(bytes([23]), bytes([23]), bytes([128]), _XPUB_MAIN, _XPRV_MAIN)
_TEST_PREFIXES = Base58Prefixes(bytes([20]), bytes([20]), bytes([239]), _XPUB_TEST, _XPRV_TEST)
_REGTEST_PREFIXES = Base58Prefixes(bytes([111]), bytes([196]), bytes([239]), _XPUB_TEST, _XPRV_TEST)


def _main() -> ChainParams:
    genesis = _checked_genesis(
        "main", 1688352006, 22801899, "000000fe8c99a7aacc5aff074278a8378e625c0d02e4894db8f09bab185f4eb6")
    community = "Ab8KBCTTJgy7XnsPsHbnwRMJD4MFjG12hU"
    return ChainParams(
        network="main", data_subdir="", message_start=b"AI4E", default_port=8865, rpc_port=9788,
        prefixes=_MAIN_PREFIXES, bip44_coin_type=2686,
        genesis=genesis, genesis_hash=genesis.hash, kawpow_activation_time=1688764800,
        pow_limit=int("00" + "ff" * 31, 16), kawpow_limit=int("0000000f" + "ff" * 28, 16),
        pow_target_spacing=60, pow_target_timespan=2016 * 60,
        pow_allow_min_difficulty_blocks=False, pow_no_retargeting=False, dgw_activation_height=1,
        subsidy_halving_interval=100000, coinbase_maturity=100,
        community_autonomous_percent=5, grid_fee_percent=60, grid_fee_start_height=710000,
        community_autonomous_address=community,
        community_autonomous_script=_community_script(community, _MAIN_PREFIXES),
        bip34_height=6048,  # Core: BIP34LockedIn
        asset_activation_height=1, messaging_activation_height=1, restricted_activation_height=1,
        burns=_MAIN_BURNS, checkpoints=_checkpoints(_MAIN_CHECKPOINTS),
        default_assume_valid=genesis.hash, minimum_chain_work=0, max_reorganization_depth=60,
        require_standard=True, mine_blocks_on_demand=False, mining_requires_peers=True,
        dns_seeds=("dnsseed.aipowergrid.io", "us-seed1.aipowergrid.io", "us-seed2.aipowergrid.io",
                   "us-seed3.aipowergrid.io", "jp-seed1.aipowergrid.io", "au-seed1.aipowergrid.io",
                   "eu-seed1.aipowergrid.io", "in-seed1.aipowergrid.io"),
        deployments=_deployments(1653004800, 1653264000, _MAIN_TEST_WINDOWS),
    )


def _test() -> ChainParams:
    genesis = _checked_genesis(
        "test", 1688350555, 18991761, "000000f798386703ae778eeaf8a2f426dc2715eb8989b4226cddc1681b567760")
    community = "AcYHNBj8C6nCFSpu1ANsJxturWp31W32cd"
    return ChainParams(
        network="test", data_subdir="testnet_aipg", message_start=b"AI4T", default_port=18865,
        rpc_port=19788, prefixes=_TEST_PREFIXES, bip44_coin_type=1,
        genesis=genesis, genesis_hash=genesis.hash, kawpow_activation_time=1688764800,
        pow_limit=int("00" + "ff" * 31, 16), kawpow_limit=int("00" + "ff" * 31, 16),
        pow_target_spacing=60, pow_target_timespan=2016 * 60,
        pow_allow_min_difficulty_blocks=False, pow_no_retargeting=False, dgw_activation_height=1,
        subsidy_halving_interval=100000, coinbase_maturity=100,
        # Core never sets the grid-fee fields on testnet: they are zero in practice.
        community_autonomous_percent=5, grid_fee_percent=0, grid_fee_start_height=0,
        community_autonomous_address=community,
        community_autonomous_script=_community_script(community, _TEST_PREFIXES),
        # Core leaves BIP34LockedIn unset on testnet; its miner always commits the height,
        # so enforcing it from the first block after genesis accepts every real block.
        bip34_height=1,
        asset_activation_height=1, messaging_activation_height=1, restricted_activation_height=1,
        burns=_TEST_BURNS, checkpoints=_checkpoints({}),
        default_assume_valid=genesis.hash, minimum_chain_work=0, max_reorganization_depth=60,
        require_standard=False, mine_blocks_on_demand=False, mining_requires_peers=True,
        dns_seeds=("seed1-testnet.aipowergrid.io", "seed2-testnet.aipowergrid.io",
                   "seed3-testnet.aipowergrid.io", "seed4-testnet.aipowergrid.io"),
        prune_after_height=1000,
        deployments=_deployments(1658055600, 1659178800, _MAIN_TEST_WINDOWS),
    )


def _regtest(kawpow_activation_time: int | None) -> ChainParams:
    genesis_time = 1688340000
    genesis = _checked_genesis(
        "regtest", genesis_time, 1925563, "0000001a53f7f3d9f8be5f0cdfeddd641bee2c6c7001a9cdfdbb6f72ca66aed5")
    # Unlike Core (activation in 2083), our regtest mines KawPoW from height 1, so tests
    # exercise the real algorithm; the genesis block itself stays a legacy header.
    activation = genesis_time + 1 if kawpow_activation_time is None else kawpow_activation_time
    if activation <= genesis_time:
        raise ParamsError(f"-kawpowactivationtime must be after the regtest genesis time {genesis_time}")
    return ChainParams(
        network="regtest", data_subdir="regtest", message_start=b"AI4R", default_port=18550,
        rpc_port=19555, prefixes=_REGTEST_PREFIXES, bip44_coin_type=1,
        genesis=genesis, genesis_hash=genesis.hash, kawpow_activation_time=activation,
        pow_limit=int("7f" + "ff" * 31, 16), kawpow_limit=int("7f" + "ff" * 31, 16),
        pow_target_spacing=60, pow_target_timespan=2016 * 60,
        pow_allow_min_difficulty_blocks=True, pow_no_retargeting=True, dgw_activation_height=200,
        subsidy_halving_interval=150, coinbase_maturity=100,
        community_autonomous_percent=5, grid_fee_percent=0, grid_fee_start_height=0,
        community_autonomous_address="", community_autonomous_script=b"",
        bip34_height=1,
        asset_activation_height=0, messaging_activation_height=0, restricted_activation_height=0,
        burns=_TEST_BURNS, checkpoints=_checkpoints({}),
        default_assume_valid=genesis.hash, minimum_chain_work=0, max_reorganization_depth=60,
        require_standard=False, mine_blocks_on_demand=True, mining_requires_peers=False,
        prune_after_height=1000,
        rule_change_activation_threshold=108, miner_confirmation_window=144,
        deployments=_deployments(0, 999999999999, _REGTEST_WINDOWS),
    )


def get_params(network: str, *, kawpow_activation_time: int | None = None) -> ChainParams:
    """Build and check the parameters of `network` ("main", "test" or "regtest").

    `kawpow_activation_time` overrides the activation on regtest only (Core's value is
    CORE_REGTEST_KAWPOW_ACTIVATION); it is an error elsewhere.
    """
    if network == "regtest":
        return _regtest(kawpow_activation_time)
    if kawpow_activation_time is not None:
        raise ParamsError("-kawpowactivationtime is only allowed on regtest")
    if network == "main":
        return _main()
    if network == "test":
        return _test()
    raise ParamsError(f"Unknown chain {network!r}: expected one of {', '.join(NETWORKS)}")
