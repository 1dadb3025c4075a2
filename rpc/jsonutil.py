"""JSON text exactly as AIPG Core writes it: amounts with 8 decimals, doubles at 16 digits.

Core's UniValue keeps numbers as text, so `ValueFromAmount(5000 * COIN)` prints `5000.00000000` and a
difficulty prints with `setprecision(16)`. Python's json module has no raw-number hook, so such
numbers travel as `RawNumber` and are spliced in after encoding. It must never parse requests.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

from aipgd.core.transaction import COIN

# A per-process token, so no string a client sends can pose as a raw number.
_TOKEN = secrets.token_hex(8)
_MARK = f"\x00{_TOKEN}:"
_ESCAPED_MARK = f"\\u0000{_TOKEN}:"
_MARK_RE = re.compile('"' + re.escape(_ESCAPED_MARK) + r'([-+0-9.eE]+)"')


class RawNumber:
    """A number whose JSON text is fixed (Core: UniValue(VNUM, text))."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawNumber):
            return self.text == other.text
        if isinstance(other, int | float | Decimal):
            return Decimal(self.text) == Decimal(str(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"RawNumber({self.text})"


def amount_value(satoshis: int) -> RawNumber:
    """Core: ValueFromAmount, sign then whole.fraction with 8 digits."""
    sign = "-" if satoshis < 0 else ""
    whole, frac = divmod(abs(satoshis), COIN)
    return RawNumber(f"{sign}{whole}.{frac:08d}")


def double_value(value: float) -> RawNumber:
    """A C++ double as UniValue::setFloat prints it (std::setprecision(16))."""
    return RawNumber(f"{value:.16g}")


def _default(obj: object) -> object:
    if isinstance(obj, RawNumber):
        return _MARK + obj.text
    if isinstance(obj, Decimal):
        return _MARK + str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(value: Any, indent: int | None = None) -> str:
    """Compact JSON (Core's write()) or indented (write(2)), with raw numbers in place."""
    if indent is None:
        text = json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(value, default=_default, indent=indent, ensure_ascii=False)
    if _ESCAPED_MARK in text:
        text = _MARK_RE.sub(r"\1", text)
    return text


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid JSON number {name}")


def loads(text: str | bytes) -> Any:
    """Strict JSON: NaN/Infinity are refused, non-integral numbers stay exact (Decimal)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def type_name(value: object) -> str:
    """Core: uvTypeName."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal | RawNumber):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"
