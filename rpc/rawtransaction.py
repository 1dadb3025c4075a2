"""Raw transaction methods (Core: rpc/rawtransaction.cpp): decoderawtransaction, decodescript,
createrawtransaction, combinerawtransaction, signrawtransaction (explicit keys, no wallet) and
sendrawtransaction (handed to rpc/mempool.py).

Owns argument parsing with Core's error codes and texts. It must never look coins up except through
NodeInterface.get_coin (and the mempool's transactions), and never broadcast anything.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aipgd.core.address import AddressError, decode_address
from aipgd.core.serialize import ByteReader, DeserializationError
from aipgd.core.transaction import COIN, MAX_MONEY, OutPoint, Transaction, TxIn, TxOut
from aipgd.core.uint256 import hash_to_hex
from aipgd.script import errors as script_errors
from aipgd.script.asm import script_to_asm
from aipgd.script.checker import TransactionSignatureChecker
from aipgd.script.errors import ScriptError
from aipgd.script.flags import (
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_NONE,
    SIGHASH_SINGLE,
    STANDARD_SCRIPT_VERIFY_FLAGS,
)
from aipgd.script.opcodes import Op
from aipgd.script.script import build_script, is_p2sh, is_p2wsh
from aipgd.script.standard import script_for_destination
from aipgd.script.verify import verify_script
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import type_name
from rpc.registry import Args, Kind, Method, Param, check_int, examples
from rpc.signing import KeyStore, SigChecker, SignatureData, Signer, combine
from rpc.txjson import script_pubkey_json, tx_to_json
from rpc.util import P2SH_WARNING, p2sh_address_or_none, parse_private_key

_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_FIXED_POINT_RE = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$")
_UINT32_MAX = 0xFFFFFFFF
SIGHASH_TYPES = {
    "ALL": SIGHASH_ALL, "ALL|ANYONECANPAY": SIGHASH_ALL | SIGHASH_ANYONECANPAY,
    "NONE": SIGHASH_NONE, "NONE|ANYONECANPAY": SIGHASH_NONE | SIGHASH_ANYONECANPAY,
    "SINGLE": SIGHASH_SINGLE, "SINGLE|ANYONECANPAY": SIGHASH_SINGLE | SIGHASH_ANYONECANPAY,
}


def script_error_text(error: ScriptError) -> str:
    """Core: ScriptErrorString."""
    messages: dict[ScriptError, str] = getattr(script_errors, "_MESSAGES", {})
    return messages.get(error, "unknown error")


def is_hex(text: str) -> bool:
    """Core: IsHex, a non-empty even number of hex digits."""
    return bool(_HEX_RE.match(text))


def parse_hex_v(value: Any, name: str) -> bytes:
    """Core: ParseHexV."""
    text = value if isinstance(value, str) else ""
    if not is_hex(text):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal string (not '{text}')")
    return bytes.fromhex(text)


def parse_hash_v(value: Any, name: str) -> bytes:
    """Core: ParseHashV, 64 hex digits in display order."""
    text = value if isinstance(value, str) else ""
    if not is_hex(text):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal string (not '{text}')")
    if len(text) != 64:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(text)})")
    return bytes.fromhex(text)[::-1]


def amount_from_value(value: Any) -> int:
    """Core: AmountFromValue (ParseFixedPoint with 8 decimals, then MoneyRange), AIPG's texts."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Amount is not a number or string")
    text = str(value)
    try:
        if not _FIXED_POINT_RE.match(text):
            raise InvalidOperation
        scaled = Decimal(text) * COIN
        if scaled != scaled.to_integral_value() or abs(scaled) >= Decimal(10) ** 18:
            raise InvalidOperation
    except InvalidOperation:
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, f"Invalid amount (3): {text}") from None
    amount = int(scaled)
    if not 0 <= amount <= MAX_MONEY:
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, f"Amount out of range: {amount}")
    return amount


def _read_tx_without_witness(data: bytes) -> Transaction:
    r = ByteReader(data)
    version = r.i32("tx version")
    vin = r.vector(TxIn.read, "tx inputs", 41)
    vout = r.vector(TxOut.read, "tx outputs", 9)
    locktime = r.u32("tx locktime")
    r.expect_end("transaction")
    return Transaction(version, tuple(vin), tuple(vout), locktime)


def decode_hex_tx(text: Any) -> Transaction | None:
    """Core: DecodeHexTx(tx, hex, fTryNoWitness=true): the legacy encoding first, then BIP144."""
    if not isinstance(text, str) or not is_hex(text):
        return None
    data = bytes.fromhex(text)
    try:
        return _read_tx_without_witness(data)
    except DeserializationError:
        pass
    try:
        return Transaction.from_bytes(data)
    except DeserializationError:
        return None


def _decoderawtransaction(ctx: RPCContext, args: Args) -> Any:
    tx = decode_hex_tx(args[0])
    if tx is None:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "TX decode failed")
    return tx_to_json(tx, ctx.params.prefixes, include_hex=False)


def _decodescript(ctx: RPCContext, args: Args) -> Any:
    script = parse_hex_v(args[0], "argument") if args[0] else b""
    result = script_pubkey_json(script, ctx.params.prefixes, include_hex=False)
    if result["type"] != "scripthash":
        # P2SH cannot be wrapped in a P2SH (Core); nor is a P2SH address handed out where it loses coins.
        address = p2sh_address_or_none(script, ctx.params)
        if address is not None:
            result["p2sh"] = address
        else:
            result["p2sh_warning"] = P2SH_WARNING
    return result


def _createrawtransaction(ctx: RPCContext, args: Args) -> Any:
    inputs, outputs, locktime_v = args[0], args[1], args[2]
    if inputs is None or outputs is None:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       "Invalid parameter, arguments 1 and 2 must be non-null")
    locktime = 0
    if locktime_v is not None:
        locktime = check_int(locktime_v, 64)
        if not 0 <= locktime <= _UINT32_MAX:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid parameter, locktime out of range")
    vin: list[TxIn] = []
    for item in inputs:
        if not isinstance(item, dict):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not an object as expected")
        txid = parse_hash_v(item.get("txid"), "txid")
        vout_v = item.get("vout")
        if isinstance(vout_v, bool) or not isinstance(vout_v, int | Decimal):
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid parameter, missing vout key")
        n = check_int(vout_v)
        if n < 0:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid parameter, vout must be positive")
        sequence = _UINT32_MAX - 1 if locktime else _UINT32_MAX
        seq_v = item.get("sequence")
        if isinstance(seq_v, int | Decimal) and not isinstance(seq_v, bool):
            seq = check_int(seq_v, 64)
            if not 0 <= seq <= _UINT32_MAX:
                raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                               "Invalid parameter, sequence number is out of range")
            sequence = seq
        vin.append(TxIn(OutPoint(txid, n), b"", sequence))
    vout: list[TxOut] = []
    seen: set[bytes] = set()
    for name, value in outputs.items():
        if name == "data":
            data = parse_hex_v(value if isinstance(value, str) else str(value), "Data")
            vout.append(TxOut(0, build_script(Op.OP_RETURN, data)))
            continue
        try:
            dest = decode_address(name, ctx.params.prefixes)
        except AddressError:
            raise RPCError(RPCErrorCode.RPC_INVALID_ADDRESS_OR_KEY, f"Invalid Aipg address: {name}") from None
        script = script_for_destination(dest)
        if script in seen:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           f"Invalid parameter, duplicated address: {name}")
        seen.add(script)
        if isinstance(value, dict):
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           "Invalid parameter, asset outputs (issue, reissue, transfer, ...) are "
                           "not supported "
                           "by aipgd yet")
        vout.append(TxOut(amount_from_value(value), script))
    return Transaction(2, tuple(vin), tuple(vout), locktime).serialize().hex()


def _input_error(txin: TxIn, message: str) -> dict[str, Any]:
    """Core: TxInErrorToJSON."""
    return {"txid": hash_to_hex(txin.prevout.txid), "vout": txin.prevout.n,
            "witness": [item.hex() for item in txin.witness], "scriptSig": txin.script_sig.hex(),
            "sequence": txin.sequence, "error": message}


def _sig_data(txin: TxIn) -> SignatureData:
    """Core: DataFromTransaction."""
    return SignatureData(txin.script_sig, list(txin.witness))


def _with_sig_data(tx: Transaction, n_in: int, data: SignatureData) -> Transaction:
    """Core: UpdateTransaction, the input's scriptSig and witness replaced."""
    vin = list(tx.vin)
    old = vin[n_in]
    vin[n_in] = TxIn(old.prevout, data.script_sig, old.sequence, tuple(data.witness))
    return Transaction(tx.version, tuple(vin), tx.vout, tx.locktime)


def _coins_for(ctx: RPCContext, tx: Transaction) -> dict[OutPoint, TxOut]:
    """Core: the UTXO set seen through the mempool (CCoinsViewMemPool): unconfirmed outputs count."""
    coins: dict[OutPoint, TxOut] = {}
    mempool = getattr(ctx.node, "mempool", None)
    for txin in tx.vin:
        coin = ctx.node.get_coin(txin.prevout)
        if coin is not None:
            coins[txin.prevout] = coin.out
        elif mempool is not None:
            pooled = mempool.get_transaction(txin.prevout.txid)
            if pooled is not None and txin.prevout.n < len(pooled.vout):
                coins[txin.prevout] = pooled.vout[txin.prevout.n]
    return coins


def _signrawtransaction(ctx: RPCContext, args: Args) -> Any:
    tx = decode_hex_tx(args[0])
    if tx is None:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "TX decode failed")
    coins = _coins_for(ctx, tx)
    keystore = KeyStore()
    given_keys = args[2] is not None
    for key in args[2] or []:
        if not isinstance(key, str):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
        secret, compressed = parse_private_key(key, ctx.params)
        keystore.add_key(secret, compressed)
    for prev in args[1] or []:
        if not isinstance(prev, dict):
            raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR,
                           "expected object with {\"txid'\",\"vout\",\"scriptPubKey\"}")
        for key, kind in (("txid", str), ("vout", (int, Decimal)), ("scriptPubKey", str)):
            if key not in prev:
                raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, f"Missing {key}")
            if not isinstance(prev[key], kind) or isinstance(prev[key], bool):
                expected = "number" if key == "vout" else "string"
                raise RPCError(RPCErrorCode.RPC_TYPE_ERROR,
                               f"Expected type {expected} for {key}, got {type_name(prev[key])}")
        txid = parse_hash_v(prev["txid"], "txid")
        n = check_int(prev["vout"])
        if n < 0:
            raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "vout must be positive")
        outpoint = OutPoint(txid, n)
        script = parse_hex_v(prev["scriptPubKey"], "scriptPubKey")
        existing = coins.get(outpoint)
        if existing is not None and existing.script_pubkey != script:
            raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR,
                           "Previous output scriptPubKey mismatch:\n" + script_to_asm(existing.script_pubkey)
                           + "\nvs:\n" + script_to_asm(script))
        amount = amount_from_value(prev["amount"]) if "amount" in prev else 0
        coins[outpoint] = TxOut(amount, script)
        if given_keys and (is_p2sh(script) or is_p2wsh(script)):
            redeem = prev.get("redeemScript")
            if redeem is not None and not isinstance(redeem, str):
                raise RPCError(RPCErrorCode.RPC_TYPE_ERROR,
                               f"Expected type string for redeemScript, got {type_name(redeem)}")
            if redeem is not None:
                keystore.add_script(parse_hex_v(redeem, "redeemScript"))
    hash_type = SIGHASH_ALL
    if args[3] is not None:
        if args[3] not in SIGHASH_TYPES:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, "Invalid sighash param")
        hash_type = SIGHASH_TYPES[args[3]]
    hash_single = (hash_type & ~SIGHASH_ANYONECANPAY) == SIGHASH_SINGLE

    errors: list[dict[str, Any]] = []
    original = tx
    for i, txin in enumerate(original.vin):
        coin = coins.get(txin.prevout)
        if coin is None:
            errors.append(_input_error(txin, "Input not found or already spent"))
            continue
        produced = SignatureData()
        if not hash_single or i < len(tx.vout):
            produced = Signer(original, i, coin.value, hash_type, keystore).produce(coin.script_pubkey)
        merged = combine(coin.script_pubkey, SigChecker(original, i, coin.value), produced, _sig_data(txin))
        tx = _with_sig_data(tx, i, merged)
    for i, txin in enumerate(tx.vin):
        coin = coins.get(txin.prevout)
        if coin is None:
            continue
        checker = TransactionSignatureChecker(tx, i, coin.value)
        err = verify_script(txin.script_sig, coin.script_pubkey, txin.witness, STANDARD_SCRIPT_VERIFY_FLAGS,
                            checker)
        if err != ScriptError.SCRIPT_ERR_OK:
            if err == ScriptError.SCRIPT_ERR_INVALID_STACK_OPERATION:
                message = "Unable to sign input, invalid stack size (possibly missing key)"
            else:
                message = script_error_text(err)
            errors.append(_input_error(txin, message))
    result: dict[str, Any] = {"hex": tx.serialize().hex(), "complete": not errors}
    if errors:
        result["errors"] = errors
    return result


def _combinerawtransaction(ctx: RPCContext, args: Args) -> Any:
    variants: list[Transaction] = []
    for idx, item in enumerate(args[0]):
        if not isinstance(item, str):
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON value is not a string as expected")
        tx = decode_hex_tx(item)
        if tx is None:
            raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, f"TX decode failed for tx {idx}")
        variants.append(tx)
    if not variants:
        raise RPCError(RPCErrorCode.RPC_DESERIALIZATION_ERROR, "Missing transactions")
    merged = variants[0]
    coins = _coins_for(ctx, merged)
    base = merged
    for i, txin in enumerate(base.vin):
        coin = coins.get(txin.prevout)
        if coin is None:
            raise RPCError(RPCErrorCode.RPC_VERIFY_ERROR, "Input not found or already spent")
        checker = SigChecker(base, i, coin.value)
        data = SignatureData()
        for variant in variants:
            if len(variant.vin) > i:
                data = combine(coin.script_pubkey, checker, data, _sig_data(variant.vin[i]))
        merged = _with_sig_data(merged, i, data)
    return merged.serialize().hex()


def _sendrawtransaction(ctx: RPCContext, args: Args) -> Any:
    from rpc.mempool import send_raw_transaction

    return send_raw_transaction(ctx, args)


_EX_TX = '"[{\\"txid\\":\\"myid\\",\\"vout\\":0}]" "{\\"address\\":0.01}"'
DECODERAWTRANSACTION_HELP = (
    'decoderawtransaction "hexstring"\n'
    "\nReturn a JSON object representing the serialized, hex-encoded transaction.\n"
    "\nArguments:\n"
    '1. "hexstring"      (string, required) The transaction hex string\n'
    "\nResult:\n"
    "{\n"
    '  "txid" : "id",        (string) The transaction id\n'
    '  "hash" : "id",        (string) The transaction hash (differs from txid for witness transactions)\n'
    '  "size" : n,             (numeric) The transaction size\n'
    '  "vsize" : n,            (numeric) The virtual transaction size (differs from size for witness '
    "transactions)\n"
    '  "version" : n,          (numeric) The version\n'
    '  "locktime" : ttt,       (numeric) The lock time\n'
    '  "vin" : [               (array of json objects)\n'
    "     {\n"
    '       "txid": "id",    (string) The transaction id\n'
    '       "vout": n,         (numeric) The output number\n'
    '       "scriptSig": {     (json object) The script\n'
    '         "asm": "asm",  (string) asm\n'
    '         "hex": "hex"   (string) hex\n'
    "       },\n"
    '       "txinwitness": ["hex", ...] (array of string) hex-encoded witness data (if any)\n'
    '       "sequence": n     (numeric) The script sequence number\n'
    "     }\n"
    "     ,...\n"
    "  ],\n"
    '  "vout" : [             (array of json objects)\n'
    "     {\n"
    '       "value" : x.xxx,            (numeric) The value in AIPG\n'
    '       "n" : n,                    (numeric) index\n'
    '       "scriptPubKey" : {          (json object)\n'
    '         "asm" : "asm",          (string) the asm\n'
    '         "hex" : "hex",          (string) the hex\n'
    '         "reqSigs" : n,            (numeric) The required sigs\n'
    "         \"type\" : \"pubkeyhash\",  (string) The type, eg 'pubkeyhash'\n"
    '         "addresses" : [           (json array of string)\n'
    '           "address"     (string) aipg address\n'
    "           ,...\n"
    "         ]\n"
    "       }\n"
    "     }\n"
    "     ,...\n"
    "  ],\n"
    "}\n"
    + examples("decoderawtransaction", '"hexstring"')
)
DECODESCRIPT_HELP = (
    'decodescript "hexstring"\n'
    "\nDecode a hex-encoded script.\n"
    "\nArguments:\n"
    '1. "hexstring"     (string) the hex encoded script\n'
    "\nResult:\n"
    "{\n"
    '  "asm":"asm",   (string) Script public key\n'
    '  "hex":"hex",   (string) hex encoded public key\n'
    '  "type":"type", (string) The output type\n'
    '  "reqSigs": n,    (numeric) The required signatures\n'
    '  "addresses": [   (json array of string)\n'
    '     "address"     (string) aipg address\n'
    "     ,...\n"
    "  ],\n"
    '  "p2sh","address" (string) address of P2SH script wrapping this redeem script (not returned if the '
    "script is already a P2SH, nor on main and test, where it would lose coins: see p2sh_warning).\n"
    "}\n"
    + examples("decodescript", '"hexstring"')
)
CREATERAWTRANSACTION_HELP = (
    'createrawtransaction [{"txid":"id","vout":n},...] {"address":amount,"data":"hex",...} ( locktime )\n'
    "\nCreate a transaction spending the given inputs and creating new outputs.\n"
    "Outputs can be addresses or data.\n"
    "Returns hex-encoded raw transaction.\n"
    "Note that the transaction's inputs are not signed, and\n"
    "it is not stored in the wallet or transmitted to the network.\n"
    "\nArguments:\n"
    '1. "inputs"                (array, required) A json array of json objects\n'
    "     [\n"
    "       {\n"
    '         "txid":"id",    (string, required) The transaction id\n'
    '         "vout":n,         (numeric, required) The output number\n'
    '         "sequence":n      (numeric, optional) The sequence number\n'
    "       } \n"
    "       ,...\n"
    "     ]\n"
    '2. "outputs"               (object, required) a json object with outputs\n'
    "    {\n"
    '      "address": x.xxx,    (numeric or string, required) The key is the aipg address, the numeric '
    "value (can be string) is the AIPG amount\n"
    '      "data": "hex"      (string, required) The key is "data", the value is hex encoded data\n'
    "      ,...\n"
    "    }\n"
    "3. locktime                  (numeric, optional, default=0) Raw locktime. Non-0 value also "
    "locktime-activates inputs\n"
    "\nResult:\n"
    '"transaction"              (string) hex string of the transaction\n'
    + examples("createrawtransaction", _EX_TX)
)
COMBINERAWTRANSACTION_HELP = (
    'combinerawtransaction ["hexstring",...]\n'
    "\nCombine multiple partially signed transactions into one transaction.\n"
    "The combined transaction may be another partially signed transaction or a \n"
    "fully signed transaction.\n"
    "Arguments:\n"
    '1. "txs"         (string) A json array of hex strings of partially signed transactions\n'
    "    [\n"
    '      "hexstring"     (string) A transaction hash\n'
    "      ,...\n"
    "    ]\n"
    "\nResult:\n"
    '"hex"            (string) The hex-encoded raw transaction with signature(s)\n'
    + examples("combinerawtransaction", '["myhex1", "myhex2", "myhex3"]')
)
SIGNRAWTRANSACTION_HELP = (
    'signrawtransaction "hexstring" ( [{"txid":"id","vout":n,"scriptPubKey":"hex","redeemScript":"hex"},...] '
    '["privatekey1",...] sighashtype )\n'
    "\nSign inputs for raw transaction (serialized, hex-encoded).\n"
    "The second optional argument (may be null) is an array of previous transaction outputs that\n"
    "this transaction depends on but may not yet be in the block chain.\n"
    "The third optional argument (may be null) is an array of base58-encoded private\n"
    "keys that, if given, will be the only keys used to sign the transaction.\n"
    "(aipgd has no wallet yet: without private keys nothing is signed.)\n"
    "\nArguments:\n"
    '1. "hexstring"     (string, required) The transaction hex string\n'
    '2. "prevtxs"       (string, optional) An json array of previous dependent transaction outputs\n'
    "     [               (json array of json objects, or 'null' if none provided)\n"
    "       {\n"
    '         "txid":"id",             (string, required) The transaction id\n'
    '         "vout":n,                  (numeric, required) The output number\n'
    '         "scriptPubKey": "hex",   (string, required) script key\n'
    '         "redeemScript": "hex",   (string, required for P2SH or P2WSH) redeem script\n'
    '         "amount": value            (numeric, required) The amount spent\n'
    "       }\n"
    "       ,...\n"
    "    ]\n"
    '3. "privkeys"     (string, optional) A json array of base58-encoded private keys for signing\n'
    "    [                  (json array of strings, or 'null' if none provided)\n"
    '      "privatekey"   (string) private key in base58-encoding\n'
    "      ,...\n"
    "    ]\n"
    '4. "sighashtype"     (string, optional, default=ALL) The signature hash type. Must be one of\n'
    '       "ALL"\n'
    '       "NONE"\n'
    '       "SINGLE"\n'
    '       "ALL|ANYONECANPAY"\n'
    '       "NONE|ANYONECANPAY"\n'
    '       "SINGLE|ANYONECANPAY"\n'
    "\nResult:\n"
    "{\n"
    '  "hex" : "value",           (string) The hex-encoded raw transaction with signature(s)\n'
    '  "complete" : true|false,   (boolean) If the transaction has a complete set of signatures\n'
    '  "errors" : [                 (json array of objects) Script verification errors (if there are any)\n'
    "    {\n"
    '      "txid" : "hash",           (string) The hash of the referenced, previous transaction\n'
    '      "vout" : n,                (numeric) The index of the output to spent and used as input\n'
    '      "scriptSig" : "hex",       (string) The hex-encoded signature script\n'
    '      "sequence" : n,            (numeric) Script sequence number\n'
    '      "error" : "text"           (string) Verification or signing error related to the input\n'
    "    }\n"
    "    ,...\n"
    "  ]\n"
    "}\n"
    + examples("signrawtransaction", '"myhex"')
)
SENDRAWTRANSACTION_HELP = (
    'sendrawtransaction "hexstring" ( allowhighfees )\n'
    "\nSubmits raw transaction (serialized, hex-encoded) to local node and network.\n"
    "\nAlso see createrawtransaction and signrawtransaction calls.\n"
    "\nArguments:\n"
    '1. "hexstring"    (string, required) The hex string of the raw transaction)\n'
    "2. allowhighfees    (boolean, optional, default=false) Allow high fees\n"
    "\nResult:\n"
    '"hex"             (string) The transaction hash in hex\n'
    + examples("sendrawtransaction", '"signedhex"')
)

METHODS = (
    Method("createrawtransaction", "rawtransactions", _createrawtransaction,
           (Param("inputs", Kind.ARR), Param("outputs", Kind.OBJ), Param("locktime", Kind.INT64,
                                                                         required=False)),
           CREATERAWTRANSACTION_HELP, strict_types=True),
    Method("decoderawtransaction", "rawtransactions", _decoderawtransaction, (Param("hexstring", Kind.STR),),
           DECODERAWTRANSACTION_HELP, offload=True, strict_types=True),
    Method("decodescript", "rawtransactions", _decodescript, (Param("hexstring", Kind.STR),),
           DECODESCRIPT_HELP,
           strict_types=True),
    Method("sendrawtransaction", "rawtransactions", _sendrawtransaction,
           (Param("hexstring", Kind.STR), Param("allowhighfees", Kind.BOOL, required=False)),
           SENDRAWTRANSACTION_HELP, offload=True, strict_types=True),
    Method("combinerawtransaction", "rawtransactions", _combinerawtransaction, (Param("txs", Kind.ARR),),
           COMBINERAWTRANSACTION_HELP, offload=True),
    Method("signrawtransaction", "rawtransactions", _signrawtransaction,
           (Param("hexstring", Kind.STR), Param("prevtxs", Kind.ARR, required=False),
            Param("privkeys", Kind.ARR, required=False), Param("sighashtype", Kind.STR, required=False)),
           SIGNRAWTRANSACTION_HELP, offload=True, strict_types=True),
)
