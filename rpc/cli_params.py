"""aipg-cli's parameter table (Core: rpc/client.cpp vRPCConvertParams).

A snapshot of every method's declared parameters (names, aliases and JSON kinds), so that the
client converts arguments without importing the server's method tables (and with them Numba and
the KawPoW engine). tests/unit/test_cli_params.py fails whenever it differs from the server's
declarations; regenerate it with
`python -c "from rpc.methods import render_cli_params as r; print(r(), end='')" > rpc/cli_params.py`.
It must never hold anything but data.
"""

from __future__ import annotations

from rpc.registry import Kind

PARAMS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "addnode": (
        ("node", Kind.STR),
        ("command", Kind.STR),
    ),
    "clearbanned": (),
    "combinerawtransaction": (
        ("txs", Kind.ARR),
    ),
    "createmultisig": (
        ("nrequired", Kind.ANY),
        ("keys", Kind.ANY),
    ),
    "createrawtransaction": (
        ("inputs", Kind.ARR),
        ("outputs", Kind.OBJ),
        ("locktime", Kind.INT64),
    ),
    "decoderawtransaction": (
        ("hexstring", Kind.STR),
    ),
    "decodescript": (
        ("hexstring", Kind.STR),
    ),
    "disconnectnode": (
        ("address", Kind.STR),
        ("nodeid", Kind.INT),
    ),
    "estimatefee": (
        ("nblocks", Kind.INT),
    ),
    "estimatesmartfee": (
        ("conf_target", Kind.INT),
        ("estimate_mode", Kind.STR),
    ),
    "generate": (
        ("nblocks", Kind.INT),
        ("maxtries", Kind.INT),
    ),
    "generatetoaddress": (
        ("nblocks", Kind.INT),
        ("address", Kind.STR),
        ("maxtries", Kind.INT),
    ),
    "getaddednodeinfo": (
        ("node", Kind.STR),
    ),
    "getbestblockhash": (),
    "getblock": (
        ("blockhash", Kind.STR),
        ("verbosity|verbose", Kind.ANY),
    ),
    "getblockchaininfo": (),
    "getblockcount": (),
    "getblockhash": (
        ("height", Kind.INT),
    ),
    "getblockheader": (
        ("blockhash", Kind.STR),
        ("verbose", Kind.BOOL),
    ),
    "getblocktemplate": (
        ("template_request", Kind.OBJ),
    ),
    "getchaintips": (),
    "getchaintxstats": (
        ("nblocks", Kind.INT),
        ("blockhash", Kind.STR),
    ),
    "getconnectioncount": (),
    "getdifficulty": (),
    "getinfo": (),
    "getkawpowhash": (
        ("header_hash", Kind.STR),
        ("mix_hash", Kind.STR),
        ("nonce", Kind.STR),
        ("height", Kind.INT),
        ("target", Kind.STR),
    ),
    "getmemoryinfo": (
        ("mode", Kind.STR),
    ),
    "getmempoolancestors": (
        ("txid", Kind.STR),
        ("verbose", Kind.ANY),
    ),
    "getmempooldescendants": (
        ("txid", Kind.STR),
        ("verbose", Kind.ANY),
    ),
    "getmempoolentry": (
        ("txid", Kind.STR),
    ),
    "getmempoolinfo": (),
    "getmininginfo": (),
    "getnettotals": (),
    "getnetworkhashps": (
        ("nblocks", Kind.INT),
        ("height", Kind.INT),
    ),
    "getnetworkinfo": (),
    "getpeerinfo": (),
    "getrawmempool": (
        ("verbose", Kind.ANY),
    ),
    "getrawtransaction": (
        ("txid", Kind.STR),
        ("verbose", Kind.ANY),
    ),
    "getrpcinfo": (),
    "gettxout": (
        ("txid", Kind.STR),
        ("n", Kind.INT),
        ("include_mempool", Kind.BOOL),
    ),
    "gettxoutproof": (
        ("txids", Kind.ARR),
        ("blockhash", Kind.STR),
    ),
    "gettxoutsetinfo": (),
    "help": (
        ("command", Kind.STR),
    ),
    "invalidateblock": (
        ("blockhash", Kind.STR),
    ),
    "listbanned": (),
    "ping": (),
    "pouw_createapikey": (
        ("label", Kind.STR),
        ("credit", Kind.AMOUNT),
        ("trusted_only", Kind.BOOL),
        ("requests_per_minute", Kind.INT),
        ("tokens_per_minute", Kind.INT64),
    ),
    "pouw_creditapikey": (
        ("id", Kind.STR),
        ("amount", Kind.AMOUNT),
    ),
    "pouw_getjob": (
        ("job_id", Kind.STR),
    ),
    "pouw_getreceipt": (
        ("receipt_id", Kind.STR),
    ),
    "pouw_getstats": (),
    "pouw_listapikeys": (),
    "pouw_listworkers": (),
    "pouw_revokeapikey": (
        ("id", Kind.STR),
    ),
    "pouw_submitjob": (
        ("request", Kind.OBJ),
        ("wait", Kind.BOOL),
    ),
    "pouw_verifyreceipt": (
        ("receipt", Kind.STR),
        ("job", Kind.STR),
    ),
    "pprpcsb": (
        ("header_hash", Kind.STR),
        ("mix_hash", Kind.STR),
        ("nonce", Kind.STR),
    ),
    "preciousblock": (
        ("blockhash", Kind.STR),
    ),
    "prioritisetransaction": (
        ("txid", Kind.STR),
        ("dummy", Kind.ANY),
        ("fee_delta", Kind.INT64),
    ),
    "pruneblockchain": (
        ("height", Kind.INT),
    ),
    "reconsiderblock": (
        ("blockhash", Kind.STR),
    ),
    "savemempool": (),
    "sendrawtransaction": (
        ("hexstring", Kind.STR),
        ("allowhighfees", Kind.BOOL),
    ),
    "setban": (
        ("subnet", Kind.STR),
        ("command", Kind.STR),
        ("bantime", Kind.INT64),
        ("absolute", Kind.BOOL),
    ),
    "setnetworkactive": (
        ("state", Kind.BOOL),
    ),
    "signmessagewithprivkey": (
        ("privkey", Kind.STR),
        ("message", Kind.STR),
    ),
    "signrawtransaction": (
        ("hexstring", Kind.STR),
        ("prevtxs", Kind.ARR),
        ("privkeys", Kind.ARR),
        ("sighashtype", Kind.STR),
    ),
    "stop": (
        ("wait", Kind.ANY),
    ),
    "submitblock": (
        ("hexdata", Kind.STR),
        ("dummy", Kind.ANY),
    ),
    "testmempoolaccept": (
        ("rawtxs", Kind.ARR),
        ("allowhighfees", Kind.BOOL),
    ),
    "uptime": (),
    "validateaddress": (
        ("address", Kind.STR),
    ),
    "verifychain": (
        ("checklevel", Kind.INT),
        ("nblocks", Kind.INT),
    ),
    "verifymessage": (
        ("address", Kind.STR),
        ("signature", Kind.STR),
        ("message", Kind.STR),
    ),
    "verifytxoutproof": (
        ("proof", Kind.STR),
    ),
    "waitforblock": (
        ("blockhash", Kind.STR),
        ("timeout", Kind.INT),
    ),
    "waitforblockheight": (
        ("height", Kind.INT),
        ("timeout", Kind.INT),
    ),
    "waitfornewblock": (
        ("timeout", Kind.INT),
    ),
}
