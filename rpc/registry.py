"""Method declarations and the dispatch table (Core: CRPCCommand, CRPCTable, RPCTypeCheck).

Each method declares its parameters once (name, JSON kind, required or not); the same declaration
drives named-argument mapping, argument checks with Core's error texts, `help`, and aipg-cli's
conversion of command-line words into JSON. It must never do I/O: handlers get a context object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from rpc.errors import RPCError, RPCErrorCode
from rpc.jsonutil import type_name

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class Kind(Enum):
    """The JSON kind of a parameter; everything but STR is JSON-decoded by aipg-cli (vRPCConvertParams)."""

    STR = "string"
    INT = "integer"  # int32 (UniValue::get_int)
    INT64 = "integer64"
    AMOUNT = "amount"  # a number or a numeric string (AmountFromValue)
    BOOL = "boolean"
    ARR = "array"
    OBJ = "object"
    ANY = "any"  # any JSON value, checked by the handler (e.g. getblock's verbosity|verbose)

    @property
    def cli_converts(self) -> bool:
        return self is not Kind.STR


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # "a|b" declares an alias, as in Core's argNames
    kind: Kind
    required: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.name.split("|"))


Args = list[Any]
Handler = Callable[["Any", Args], Any]

CATEGORY_HIDDEN = "hidden"


@dataclass(frozen=True)
class Method:
    """One RPC method. `offload` sends it to the worker threads; inline methods run on the event loop
    and must be cheap (a few microseconds of in-memory reads)."""

    name: str
    category: str
    handler: Handler
    params: tuple[Param, ...]
    help: str
    offload: bool = False
    # Core's RPCTypeCheck (RPC_TYPE_ERROR "Expected type x, got y") instead of UniValue get_x()'s
    # runtime_error (RPC_MISC_ERROR "JSON value is not an x as expected").
    strict_types: bool = False
    # Extra trailing positional parameters Core tolerates beyond the declaration.
    max_extra: int = 0
    # The result depends only on (params, chain tip): safe to cache until the tip changes.
    tip_cacheable: bool = False

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if p.required)

    @property
    def max_args(self) -> int:
        return len(self.params) + self.max_extra

    @property
    def summary(self) -> str:
        return self.help.split("\n", 1)[0]


_GET_MESSAGES = {
    Kind.STR: "JSON value is not a string as expected",
    Kind.INT: "JSON value is not an integer as expected",
    Kind.INT64: "JSON value is not an integer as expected",
    Kind.BOOL: "JSON value is not a boolean as expected",
    Kind.ARR: "JSON value is not an array as expected",
    Kind.OBJ: "JSON value is not an object as expected",
    Kind.AMOUNT: "Amount is not a number or string",
}
_UNIVALUE_TYPE = {
    Kind.STR: "string", Kind.INT: "number", Kind.INT64: "number", Kind.BOOL: "bool",
    Kind.ARR: "array", Kind.OBJ: "object", Kind.AMOUNT: "number",
}


def _matches(kind: Kind, value: object) -> bool:
    if kind is Kind.ANY:
        return True
    if kind is Kind.STR:
        return isinstance(value, str)
    if kind in (Kind.INT, Kind.INT64):
        return isinstance(value, int | Decimal) and not isinstance(value, bool)
    if kind is Kind.AMOUNT:
        return isinstance(value, int | Decimal | str) and not isinstance(value, bool)
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.ARR:
        return isinstance(value, list)
    return isinstance(value, dict)


def check_int(value: object, bits: int = 32) -> int:
    """UniValue get_int/get_int64: an integral JSON number within range, else runtime_error (-1)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, _GET_MESSAGES[Kind.INT])
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value() or "." in str(value) \
                or "e" in str(value).lower():
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON integer out of range")
        value = int(value)
    lo, hi = (_INT32_MIN, _INT32_MAX) if bits == 32 else (_INT64_MIN, _INT64_MAX)
    if not lo <= value <= hi:
        raise RPCError(RPCErrorCode.RPC_MISC_ERROR, "JSON integer out of range")
    return value


def type_error(expected: Kind, value: object, strict: bool) -> RPCError:
    if strict:
        return RPCError(RPCErrorCode.RPC_TYPE_ERROR,
                        f"Expected type {_UNIVALUE_TYPE.get(expected, 'any')}, got {type_name(value)}")
    if expected is Kind.AMOUNT:
        return RPCError(RPCErrorCode.RPC_TYPE_ERROR, _GET_MESSAGES[Kind.AMOUNT])
    return RPCError(RPCErrorCode.RPC_MISC_ERROR, _GET_MESSAGES.get(expected, "JSON value has a wrong type"))


@dataclass
class RPCTable:
    methods: dict[str, Method] = field(default_factory=dict)

    def register(self, methods: Iterable[Method]) -> None:
        for method in methods:
            if method.name in self.methods:
                raise ValueError(f"RPC method {method.name} registered twice")
            self.methods[method.name] = method

    def get(self, name: str) -> Method | None:
        return self.methods.get(name)

    # -- arguments ---------------------------------------------------------------------------

    @staticmethod
    def named_to_positional(method: Method, named: dict[str, Any]) -> Args:
        """Core: transformNamedArguments. Holes between given arguments become null; trailing ones
        are left off (methods may act on the number of arguments)."""
        remaining = dict(named)
        out: Args = []
        hole = 0
        for param in method.params:
            found = next((n for n in param.names if n in remaining), None)
            if found is None:
                hole += 1
                continue
            out.extend([None] * hole)
            hole = 0
            out.append(remaining.pop(found))
        if remaining:
            raise RPCError(RPCErrorCode.RPC_INVALID_PARAMETER,
                           f"Unknown named parameter {next(iter(remaining))}")
        return out

    @staticmethod
    def check_args(method: Method, args: Sequence[Any]) -> Args:
        """Arity (Core throws the help text as a runtime_error) and kinds; returns args padded with None."""
        if not method.min_args <= len(args) <= method.max_args:
            raise RPCError(RPCErrorCode.RPC_MISC_ERROR, method.help)
        for param, value in zip(method.params, args, strict=False):
            if value is None:
                if param.required and param.kind is not Kind.ANY:
                    raise type_error(param.kind, value, method.strict_types)
                continue
            if not _matches(param.kind, value):
                raise type_error(param.kind, value, method.strict_types)
            if param.kind is Kind.INT:
                check_int(value)
            elif param.kind is Kind.INT64:
                check_int(value, 64)
        padded = list(args)
        padded.extend([None] * (len(method.params) - len(padded)))
        return padded

    # -- help --------------------------------------------------------------------------------

    def help_text(self, command: str) -> str:
        """Core: CRPCTable::help. No command: every visible method's first line, grouped by category."""
        if command:
            method = self.methods.get(command)
            return method.help.rstrip("\n") if method is not None else f"help: unknown command: {command}"
        out: list[str] = []
        category = ""
        for method in sorted(self.methods.values(), key=lambda m: (m.category, m.name)):
            if method.category == CATEGORY_HIDDEN:
                continue
            if method.category != category:
                if category:
                    out.append("")
                category = method.category
                out.append(f"== {category[:1].upper()}{category[1:]} ==")
            out.append(method.summary)
        return "\n".join(out)


def example_cli(method: str, args: str) -> str:
    """Core: HelpExampleCli."""
    return f"> aipg-cli {method} {args}\n"


def example_rpc(method: str, args: str, port: int = 9788) -> str:
    """Core: HelpExampleRpc (with AIPG's main RPC port)."""
    return ("> curl --user myusername --data-binary '{\"jsonrpc\": \"1.0\", \"id\":\"curltest\", "
            f"\"method\": \"{method}\", \"params\": [{args}] }}' -H 'content-type: text/plain;' "
            f"http://127.0.0.1:{port}/\n")


def examples(method: str, cli_args: str = "", rpc_args: str | None = None) -> str:
    return ("\nExamples:\n" + example_cli(method, cli_args)
            + example_rpc(method, cli_args if rpc_args is None else rpc_args))
