"""Utility methods (Core: rpc/misc.cpp, rpc/mining.cpp): validateaddress, createmultisig, verifymessage,
signmessagewithprivkey, estimatefee, estimatesmartfee.

Owns address and message checks that need no wallet. It must never hand out an address that loses
coins: on main and test, where P2SH shares P2PKH's prefix (aipg-network.md, "Reference-node quirks"),
a P2SH address would be paid as P2PKH to hash160(script) and the coins could never be spent, so
createmultisig and decodescript return the redeem script with a warning instead of the address.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import coincurve

from aipgd.core.address import AddressError, decode_address, decode_wif, encode_address
from aipgd.core.hashes import hash160, sha256d
from aipgd.core.params import ChainParams
from aipgd.core.serialize import ser_var_str
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script
from aipgd.script.standard import KeyID, ScriptID, script_for_destination
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import amount_value
from rpc.registry import Args, Kind, Method, Param, check_int, examples

# Core: validation.cpp strMessageMagic of AIPG Core.
MESSAGE_MAGIC = "Aipg Signed Message:\n"
# Core: MAX_SCRIPT_ELEMENT_SIZE, the largest redeem script a P2SH spend can push.
MAX_SCRIPT_ELEMENT_SIZE = 520
MAX_MULTISIG_KEYS = 16
# Core: the fee estimator's longest tracked target (LONG_BLOCK_PERIODS * LONG_SCALE).
MAX_CONF_TARGET = 1008
P2SH_WARNING = (
    "No address returned: on this network P2SH addresses share the P2PKH prefix, so AIPG Core (and any "
    "wallet) would pay such an address as P2PKH to hash160(redeemScript), and the coins could never be "
    "spent. Pay to the script with an explicit OP_HASH160 <hash160(redeemScript)> OP_EQUAL output instead.")


def p2sh_address_or_none(script: bytes, params: ChainParams) -> str | None:
    """The P2SH address of `script`, or None where handing it out would lose coins."""
    if not params.prefixes.script_is_distinct:
        return None
    return encode_address(ScriptID(hash160(script)), params.prefixes)


def message_hash(message: str) -> bytes:
    """Core: CHashWriter << strMessageMagic << strMessage."""
    return sha256d(ser_var_str(MESSAGE_MAGIC) + ser_var_str(message))


def parse_private_key(text: str, params: ChainParams) -> tuple[bytes, bool]:
    """Core: CAipgSecret::SetString then CKey::IsValid, with their two RPC error texts."""
    try:
        return decode_wif(text, params.prefixes)
    except AddressError as exc:
        if "out of range" in str(exc):
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY,
                           "Private key outside allowed range") from None
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Invalid private key") from None


def sign_message(secret: bytes, compressed: bool, message: str) -> str:
    """Core: CKey::SignCompact over the message hash, as base64 (header 27 + recid + 4 if compressed)."""
    sig = coincurve.PrivateKey(secret).sign_recoverable(message_hash(message), hasher=None)
    header = 27 + sig[64] + (4 if compressed else 0)
    return base64.b64encode(bytes([header]) + sig[:64]).decode()


def recover_message_key(signature: bytes, message: str) -> bytes | None:
    """Core: CPubKey::RecoverCompact, the serialized key that made the signature, or None."""
    if len(signature) != 65:
        return None
    header = signature[0]
    recid = (header - 27) & 3
    compressed = ((header - 27) & 4) != 0
    try:
        key = coincurve.PublicKey.from_signature_and_message(
            signature[1:] + bytes([recid]), message_hash(message), hasher=None)
    except (ValueError, TypeError, Exception):
        return None
    return bytes(key.format(compressed=compressed))


def _validateaddress(ctx: RPCContext, args: Args) -> Any:
    try:
        dest = decode_address(args[0], ctx.params.prefixes)
    except AddressError:
        return {"isvalid": False}
    return {
        "isvalid": True,
        "address": encode_address(dest, ctx.params.prefixes),
        "scriptPubKey": script_for_destination(dest).hex(),
        # No wallet yet: nothing is ours or watched.
        "ismine": False,
        "iswatchonly": False,
        # AIPG main/test decode every address as P2PKH (shared prefix), so this is false there even for
        # an address made from a script, exactly as AIPG Core reports it.
        "isscript": isinstance(dest, ScriptID),
    }


def multisig_redeem_script(required: Any, keys: Any) -> bytes:
    """Core: _createmultisig_redeemScript for hex public keys (no wallet to look addresses up in)."""
    n_required = check_int(required)
    if not isinstance(keys, list):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not an array as expected")
    if n_required < 1:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR,
                       "a multisignature address must require at least one key to redeem")
    if len(keys) < n_required:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR,
                       f"not enough keys supplied (got {len(keys)} keys, but need at least "
                       f"{n_required} to redeem)")
    if len(keys) > MAX_MULTISIG_KEYS:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR,
                       "Number of addresses involved in the multisignature address creation > "
                       "16\nReduce the number")
    pubkeys: list[bytes] = []
    for key in keys:
        if not isinstance(key, str):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
        try:
            raw = bytes.fromhex(key) if len(key) % 2 == 0 else b""
            coincurve.PublicKey(raw)
        except (ValueError, TypeError):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, f" Invalid public key: {key}") from None
        pubkeys.append(raw)
    script = build_script(n_required, *pubkeys, len(pubkeys), Op.OP_CHECKMULTISIG)
    if len(script) > MAX_SCRIPT_ELEMENT_SIZE:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR,
                       f"redeemScript exceeds size limit: {len(script)} > {MAX_SCRIPT_ELEMENT_SIZE}")
    return script


def _createmultisig(ctx: RPCContext, args: Args) -> Any:
    script = multisig_redeem_script(args[0], args[1])
    address = p2sh_address_or_none(script, ctx.params)
    if address is None:
        return {"redeemScript": script.hex(), "warning": P2SH_WARNING}
    return {"address": address, "redeemScript": script.hex()}


def _verifymessage(ctx: RPCContext, args: Args) -> Any:
    address, signature, message = args
    try:
        dest = decode_address(address, ctx.params.prefixes)
    except AddressError:
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Invalid address") from None
    if not isinstance(dest, KeyID):
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Address does not refer to key")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, "Malformed base64 encoding") from None
    pubkey = recover_message_key(raw, message)
    return pubkey is not None and hash160(pubkey) == dest.hash160


def _signmessagewithprivkey(ctx: RPCContext, args: Args) -> Any:
    secret, compressed = parse_private_key(args[0], ctx.params)
    return sign_message(secret, compressed, args[1])


def _estimatefee(ctx: RPCContext, args: Args) -> Any:
    if "estimatefee" not in ctx.options.get("deprecatedrpc", ()):
        raise RPCError(RPCErrorCode.RPC_METHOD_DEPRECATED,
                       "estimatefee is deprecated and will be fully removed in v0.17. To use estimatefee in "
                       "v0.16, restart aipgd with -deprecatedrpc=estimatefee.\nProjects should transition to "
                       "using estimatesmartfee before upgrading to v0.17")
    blocks = max(check_int(args[0]), 1)
    mgr = getattr(ctx.node, "mempool", None)
    rate = mgr.estimator.estimate_fee(blocks) if mgr is not None else 0
    # Core: -1 when the estimator has no answer.
    return amount_value(rate) if rate else -1


def _estimatesmartfee(ctx: RPCContext, args: Args) -> Any:
    target = check_int(args[0])
    if not 1 <= target <= MAX_CONF_TARGET:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"Invalid conf_target, must be between 1 - {MAX_CONF_TARGET}")
    if args[1] is not None and args[1] not in ("UNSET", "ECONOMICAL", "CONSERVATIVE"):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid estimate_mode parameter")
    conservative = args[1] != "ECONOMICAL"
    mgr = getattr(ctx.node, "mempool", None)
    if mgr is None:
        return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
    pool_floor = mgr.pool.get_min_fee(mgr.options.max_mempool_bytes).per_k
    estimate = mgr.estimator.estimate_smart_fee(target, conservative, pool_floor,
                                                mgr.options.incremental_relay_fee)
    if estimate.fee_rate:
        return {"feerate": amount_value(estimate.fee_rate), "blocks": estimate.returned_target}
    return {"errors": ["Insufficient data or no feerate found"], "blocks": estimate.returned_target}


_EX_ADDR = '"AKjKCgvVvS3FtUDvTNrPrX6dWxSZoXkKmJ"'
VALIDATEADDRESS_HELP = (
    'validateaddress "address"\n'
    "\nReturn information about the given aipg address.\n"
    "\nArguments:\n"
    '1. "address"     (string, required) The aipg address to validate\n'
    "\nResult:\n"
    "{\n"
    '  "isvalid" : true|false,       (boolean) If the address is valid or not. If not, this is the only '
    "property returned.\n"
    '  "address" : "address", (string) The aipg address validated\n'
    '  "scriptPubKey" : "hex",       (string) The hex encoded scriptPubKey generated by the address\n'
    '  "ismine" : true|false,        (boolean) If the address is yours or not (always false: no wallet)\n'
    '  "iswatchonly" : true|false,   (boolean) If the address is watchonly (always false: no wallet)\n'
    '  "isscript" : true|false,      (boolean) If the key is a script (false on main and test, where P2SH '
    "and P2PKH share a prefix)\n"
    "}\n"
    + examples("validateaddress", _EX_ADDR)
)
CREATEMULTISIG_HELP = (
    'createmultisig nrequired ["key",...]\n'
    "\nCreates a multi-signature address with n signature of m keys required.\n"
    "It returns a json object with the address and redeemScript.\n"
    "On main and test, where P2SH and P2PKH addresses share one prefix, no address is returned (paying it "
    "would lose the coins): the result holds the redeemScript and a warning.\n"
    "\nArguments:\n"
    "1. nrequired      (numeric, required) The number of required signatures out of the n keys.\n"
    '2. "keys"       (string, required) A json array of hex-encoded public keys\n'
    "     [\n"
    '       "key"    (string) The hex-encoded public key\n'
    "       ,...\n"
    "     ]\n"
    "\nResult:\n"
    "{\n"
    '  "address":"multisigaddress",  (string) The value of the new multisig address (regtest only).\n'
    '  "redeemScript":"script"       (string) The string value of the hex-encoded redemption script.\n'
    '  "warning":"text"              (string) Why no address was returned (main and test).\n'
    "}\n"
    + examples("createmultisig",
               '2 "[\\"03789ed0bb717d88f7d321a368d905e7430207ebbd82bd342cf11ae157a7ace5fd\\",'
               '\\"03dbc6764b8884a92e871274b87583e6d5c2a58819473e17e107ef3f6aa5a61626\\"]"')
)
VERIFYMESSAGE_HELP = (
    'verifymessage "address" "signature" "message"\n'
    "\nVerify a signed message\n"
    "\nArguments:\n"
    '1. "address"         (string, required) The aipg address to use for the signature.\n'
    '2. "signature"       (string, required) The signature provided by the signer in base 64 encoding (see '
    "signmessage).\n"
    '3. "message"         (string, required) The message that was signed.\n'
    "\nResult:\n"
    "true|false   (boolean) If the signature is verified or not.\n"
    + examples("verifymessage", _EX_ADDR + ' "signature" "my message"')
)
SIGNMESSAGEWITHPRIVKEY_HELP = (
    'signmessagewithprivkey "privkey" "message"\n'
    "\nSign a message with the private key of an address\n"
    "\nArguments:\n"
    '1. "privkey"         (string, required) The private key to sign the message with.\n'
    '2. "message"         (string, required) The message to create a signature of.\n'
    "\nResult:\n"
    '"signature"          (string) The signature of the message encoded in base 64\n'
    + examples("signmessagewithprivkey", '"privkey" "my message"')
)
ESTIMATEFEE_HELP = (
    "estimatefee nblocks\n"
    "\nDEPRECATED. Please use estimatesmartfee for more intelligent estimates.\n"
    "\nEstimates the approximate fee per kilobyte needed for a transaction to begin\n"
    "confirmation within nblocks blocks. Uses virtual transaction size of transaction\n"
    "as defined in BIP 141 (witness data is discounted).\n"
    "\nArguments:\n"
    "1. nblocks     (numeric, required)\n"
    "\nResult:\n"
    "n              (numeric) estimated fee-per-kilobyte\n"
    "\nA negative value is returned if not enough transactions and blocks\n"
    "have been observed to make an estimate.\n"
    + examples("estimatefee", "6")
)
ESTIMATESMARTFEE_HELP = (
    "estimatesmartfee conf_target (\"estimate_mode\")\n"
    "\nEstimates the approximate fee per kilobyte needed for a transaction to begin\n"
    "confirmation within conf_target blocks if possible and return the number of blocks\n"
    "for which the estimate is valid. Uses virtual transaction size as defined\n"
    "in BIP 141 (witness data is discounted).\n"
    "\nArguments:\n"
    "1. conf_target     (numeric) Confirmation target in blocks (1 - 1008)\n"
    '2. "estimate_mode" (string, optional, default=CONSERVATIVE) The fee estimate mode.\n'
    '                   Must be one of: "UNSET", "ECONOMICAL", "CONSERVATIVE"\n'
    "\nResult:\n"
    "{\n"
    '  "feerate" : x.x,     (numeric, optional) estimate fee-per-kilobyte (in AIPG)\n'
    '  "errors": [ str... ] (json array of strings, optional) Errors encountered during processing\n'
    '  "blocks" : n         (numeric) block number where estimate was found\n'
    "}\n"
    + examples("estimatesmartfee", "6")
)

METHODS = (
    Method("validateaddress", "util", _validateaddress, (Param("address", Kind.STR),), VALIDATEADDRESS_HELP,
           tip_cacheable=False),
    Method("createmultisig", "util", _createmultisig,
           (Param("nrequired", Kind.ANY), Param("keys", Kind.ANY)), CREATEMULTISIG_HELP),
    Method("verifymessage", "util", _verifymessage,
           (Param("address", Kind.STR), Param("signature", Kind.STR), Param("message", Kind.STR)),
           VERIFYMESSAGE_HELP, offload=True),
    Method("signmessagewithprivkey", "util", _signmessagewithprivkey,
           (Param("privkey", Kind.STR), Param("message",
                                              Kind.STR)), SIGNMESSAGEWITHPRIVKEY_HELP, offload=True),
    # Offloaded: an estimate walks every fee bucket for each horizon (tens of milliseconds).
    Method("estimatefee", "util", _estimatefee, (Param("nblocks", Kind.INT),), ESTIMATEFEE_HELP,
           strict_types=True, offload=True),
    Method("estimatesmartfee", "util", _estimatesmartfee,
           (Param("conf_target", Kind.INT), Param("estimate_mode", Kind.STR, required=False)),
           ESTIMATESMARTFEE_HELP, strict_types=True, offload=True),
)
