"""PoUW operator methods: pouw_createapikey, pouw_listapikeys, pouw_revokeapikey, pouw_creditapikey.

Owns the JSON shapes of the paid tier's API keys (amounts as Core prints them). It must never hold
PoUW state: everything lives in the node's PouwService, reached through the RPC context.

With PoUW off, the methods stay registered (so `help` lists them) but answer RPC_METHOD_NOT_FOUND
with "(disabled)", as Core's wallet methods do under -disablewallet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pouw.apikeys import ApiKey, UnknownApiKeyError
from pouw.errors import PouwError
from rpc.dispatch import RPCContext
from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import amount_value
from rpc.rawtransaction import amount_from_value
from rpc.registry import Args, Kind, Method, Param, examples

if TYPE_CHECKING:
    from pouw.service import PouwService

CATEGORY = "pouw"
DISABLED_MESSAGE = "Method not found (disabled): PoUW is off; start aipgd with -pouw or -pouwapi"


def _service(ctx: RPCContext) -> PouwService:
    service: PouwService | None = getattr(ctx, "pouw", None)
    if service is None or not service.running:
        raise RPCError(RPCErrorCode.RPC_METHOD_NOT_FOUND, DISABLED_MESSAGE)
    return service


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "label": key.label,
        "credit": amount_value(key.credit),
        "spent": amount_value(key.spent),
        "requests": key.requests,
        "trusted_only": key.trusted_only,
        "revoked": key.revoked,
        "created": key.created,
        "requests_per_minute": key.requests_per_minute or 0,
        "tokens_per_minute": key.tokens_per_minute or 0,
    }


def _key_id(value: Any) -> str:
    text = str(value)
    if len(text) != 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                       f"id must be the 16 hexadecimal characters of an API key id (not '{text}')")
    return text.lower()


def _call(fn: Any, *args: Any) -> Any:
    """Run a key store action, turning its errors into Core-style RPC errors."""
    try:
        return fn(*args)
    except UnknownApiKeyError as exc:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"Unknown API key id: {exc.key_id}") from None
    except PouwError as exc:
        raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"Invalid {exc.field or 'parameter'}: "
                       f"{exc.message}") from None


def _createapikey(ctx: RPCContext, args: Args) -> Any:
    service = _service(ctx)
    label: str = args[0]
    credit = 0 if args[1] is None else amount_from_value(args[1])
    trusted_only = True if args[2] is None else bool(args[2])
    limits = []
    for name, value in (("requests_per_minute", args[3]), ("tokens_per_minute", args[4])):
        if value is not None and int(value) < 0:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER, f"{name} must not be negative")
        limits.append(int(value) if value else None)
    secret, key = _call(service.create_api_key, label, credit, trusted_only, *limits)
    return {"key": secret, "id": key.key_id, "label": key.label, "credit": amount_value(key.credit),
            "trusted_only": key.trusted_only}


def _listapikeys(ctx: RPCContext, args: Args) -> Any:
    return [_key_json(k) for k in _service(ctx).api_keys.list_keys()]


def _revokeapikey(ctx: RPCContext, args: Args) -> Any:
    service = _service(ctx)
    _call(service.revoke_api_key, _key_id(args[0]))
    return True


def _creditapikey(ctx: RPCContext, args: Args) -> Any:
    service = _service(ctx)
    key_id = _key_id(args[0])
    amount = amount_from_value(args[1])
    if amount <= 0:
        raise RPCError(RPCErrorCode.RPC_TYPE_ERROR, "Invalid amount for credit")
    return _key_json(_call(service.credit_api_key, key_id, amount))


_KEY_FIELDS = (
    '  "id": "hex",              (string) The key\'s public id (the first 8 bytes of sha256(key))\n'
    '  "label": "str",           (string) The label given at creation\n'
    '  "credit": x.xxx,          (numeric) The balance left, in AIPG\n'
    '  "spent": x.xxx,           (numeric) The credit spent so far, in AIPG\n'
    '  "requests": n,            (numeric) The requests billed so far\n'
    '  "trusted_only": true|false, (boolean) Whether its jobs go to trusted workers only\n'
    '  "revoked": true|false,    (boolean) Whether the key was revoked\n'
    '  "created": ttt,           (numeric) Creation time in seconds since epoch (Jan 1 1970 GMT)\n'
    '  "requests_per_minute": n, (numeric) The key\'s own request limit (0: -pouwpaidrpm)\n'
    '  "tokens_per_minute": n    (numeric) The key\'s own token limit (0: -pouwpaidtpm)\n'
)
CREATEAPIKEY_HELP = (
    'pouw_createapikey "label" ( credit trusted_only requests_per_minute tokens_per_minute )\n'
    "\nCreates an API key for the paid tier of this node's OpenAI-compatible API (-pouwapi).\n"
    "The key is shown only once: the node keeps only its sha256 hash.\n"
    "\nArguments:\n"
    '1. "label"          (string, required) A name for the key (at most 256 bytes)\n'
    "2. credit           (numeric or string, optional, default=0) The starting balance in AIPG\n"
    "3. trusted_only     (boolean, optional, default=true) Route the key's jobs to trusted workers only\n"
    "4. requests_per_minute (numeric, optional, default=-pouwpaidrpm) The key's own request rate limit\n"
    "5. tokens_per_minute   (numeric, optional, default=-pouwpaidtpm) The key's own token rate limit\n"
    "\nResult:\n"
    "{\n"
    '  "key": "aipg_sk_...",     (string) The secret key; send it as "Authorization: Bearer <key>"\n'
    '  "id": "hex",              (string) The key\'s public id, for the other pouw_*apikey calls\n'
    '  "label": "str",           (string) The label\n'
    '  "credit": x.xxx,          (numeric) The balance in AIPG\n'
    '  "trusted_only": true|false (boolean) Whether its jobs go to trusted workers only\n'
    "}\n"
    + examples("pouw_createapikey", '"alice" 10', '"alice", 10')
)
LISTAPIKEYS_HELP = (
    "pouw_listapikeys\n"
    "\nLists the paid tier's API keys, oldest first (never their secrets).\n"
    "\nResult:\n"
    "[\n"
    "  {\n"
    + _KEY_FIELDS
    + "  }, ...\n"
    "]\n"
    + examples("pouw_listapikeys")
)
REVOKEAPIKEY_HELP = (
    'pouw_revokeapikey "id"\n'
    "\nRevokes an API key: requests with it are refused from now on (HTTP 401). Requests already\n"
    "admitted still finish and are billed. Revoking a revoked key does nothing.\n"
    "\nArguments:\n"
    '1. "id"             (string, required) The key\'s id (see pouw_listapikeys)\n'
    "\nResult:\n"
    "true                (boolean) The key is revoked\n"
    + examples("pouw_revokeapikey", '"0123456789abcdef"')
)
CREDITAPIKEY_HELP = (
    'pouw_creditapikey "id" amount\n'
    "\nAdds credit to an API key's balance.\n"
    "\nArguments:\n"
    '1. "id"             (string, required) The key\'s id (see pouw_listapikeys)\n'
    "2. amount           (numeric or string, required) The AIPG amount to add\n"
    "\nResult:\n"
    "{\n"
    + _KEY_FIELDS
    + "}\n"
    + examples("pouw_creditapikey", '"0123456789abcdef" 5', '"0123456789abcdef", 5')
)

# Offloaded: the key-changing methods write a synced LevelDB batch.
METHODS = (
    Method("pouw_createapikey", CATEGORY, _createapikey,
           (Param("label", Kind.STR), Param("credit", Kind.AMOUNT, required=False),
            Param("trusted_only", Kind.BOOL, required=False),
            Param("requests_per_minute", Kind.INT, required=False),
            Param("tokens_per_minute", Kind.INT64, required=False)), CREATEAPIKEY_HELP, offload=True),
    Method("pouw_listapikeys", CATEGORY, _listapikeys, (), LISTAPIKEYS_HELP),
    Method("pouw_revokeapikey", CATEGORY, _revokeapikey, (Param("id", Kind.STR),), REVOKEAPIKEY_HELP,
           offload=True),
    Method("pouw_creditapikey", CATEGORY, _creditapikey,
           (Param("id", Kind.STR), Param("amount", Kind.AMOUNT)), CREDITAPIKEY_HELP, offload=True),
)
