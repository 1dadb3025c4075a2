"""Reading and writing the JSON form of PoUW objects: typed getters that name the field path.

Owns the JSON conventions: bytes as lowercase hex (ids and block hashes reversed, like txids),
enums as their labels, fixed-point fields as decimal numbers converted exactly, and strict objects
(unknown keys refused). Errors are `PouwError("bad-json")` with the path, e.g. `input.messages[2].role`.
It must never decide validity beyond types and ranges: constructors do that.
"""

from __future__ import annotations

import math
from decimal import Decimal
from string import hexdigits
from typing import Any

from aipgd.core.uint256 import hash_to_hex
from pouw.codec import E
from pouw.errors import BAD_JSON, PouwError

JsonDict = dict[str, Any]
_HEX = frozenset(hexdigits)


def bad_json(path: str, message: str) -> PouwError:
    return PouwError(BAD_JSON, message, path)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def as_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise bad_json(path, f"must be a string, not {_type_name(value)}")
    return value


def as_int(value: object, path: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(path, f"must be an integer, not {_type_name(value)}")
    if not lo <= value <= hi:
        raise bad_json(path, f"{value} is outside {lo}..{hi}")
    return value


def as_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise bad_json(path, f"must be a boolean, not {_type_name(value)}")
    return value


def as_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_json(path, f"must be an array, not {_type_name(value)}")
    return value


def as_hex(value: object, path: str, sizes: tuple[int, ...]) -> bytes:
    text = as_str(value, path)
    if len(text) % 2 or not _HEX.issuperset(text):
        raise bad_json(path, "must be a hex string")
    data = bytes.fromhex(text)
    if len(data) not in sizes:
        wanted = " or ".join(str(n) for n in sizes)
        raise bad_json(path, f"must be {wanted} bytes of hex, got {len(data)}")
    return data


def as_hash_hex(value: object, path: str) -> bytes:
    """A 32-byte id or block hash in display (reversed) hex -> internal byte order."""
    return as_hex(value, path, (32,))[::-1]


def as_enum(value: object, path: str, enum_type: type[E]) -> E:
    label = as_str(value, path)
    try:
        return enum_type.from_label(label)
    except ValueError:
        raise bad_json(path, f"must be one of {enum_type.labels()}, got {label!r}") from None


def fixed_to_json(value: int, scale: int) -> float:
    """A fixed-point integer as the decimal number it stands for (700 milli -> 0.7).

    n / scale is the double nearest that decimal, and repr() of a double is the shortest string
    that reads back to it, so the JSON text is the exact decimal and `as_fixed` recovers n.
    """
    return value / scale


def as_fixed(value: object, path: str, scale: int, lo: int, hi: int) -> int:
    """A JSON number -> fixed-point integer, exactly: 0.7 with scale 1000 -> 700; 0.0005 is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_json(path, f"must be a number, not {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_json(path, "must be a finite number")
    scaled = Decimal(repr(value) if isinstance(value, float) else value) * scale
    if scaled != scaled.to_integral_value():
        places = len(str(scale)) - 1
        raise bad_json(path, f"{value} has more than {places} decimal places")
    n = int(scaled)
    if not lo <= n <= hi:
        raise bad_json(path, f"{value} is outside {lo / scale}..{hi / scale}")
    return n


def hash_json(h: bytes) -> str:
    """Ids and block hashes in display order, like txids."""
    return hash_to_hex(h)


class JsonObject:
    """A JSON object being read field by field; `finish()` refuses keys nobody read."""

    __slots__ = ("_seen", "path", "value")

    def __init__(self, value: object, path: str = "") -> None:
        if not isinstance(value, dict):
            raise bad_json(path or "(root)", f"must be an object, not {_type_name(value)}")
        self.value: dict[Any, Any] = value
        self.path = path
        self._seen: set[str] = set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.value

    def get(self, key: str) -> Any:
        self._seen.add(key)
        if key not in self.value:
            raise bad_json(self.sub(key), "is missing")
        return self.value[key]

    def text(self, key: str) -> str:
        return as_str(self.get(key), self.sub(key))

    def integer(self, key: str, lo: int, hi: int) -> int:
        return as_int(self.get(key), self.sub(key), lo, hi)

    def boolean(self, key: str) -> bool:
        return as_bool(self.get(key), self.sub(key))

    def array(self, key: str) -> list[Any]:
        return as_list(self.get(key), self.sub(key))

    def hex(self, key: str, sizes: tuple[int, ...]) -> bytes:
        return as_hex(self.get(key), self.sub(key), sizes)

    def hash_hex(self, key: str) -> bytes:
        return as_hash_hex(self.get(key), self.sub(key))

    def enum(self, key: str, enum_type: type[E]) -> E:
        return as_enum(self.get(key), self.sub(key), enum_type)

    def fixed(self, key: str, scale: int, lo: int, hi: int) -> int:
        return as_fixed(self.get(key), self.sub(key), scale, lo, hi)

    def obj(self, key: str) -> JsonObject:
        return JsonObject(self.get(key), self.sub(key))

    def finish(self) -> None:
        extra = sorted(str(k) for k in self.value if k not in self._seen)
        if extra:
            raise bad_json(self.sub(extra[0]), "is not a field of this object")

    def check_id(self, key: str, actual: bytes) -> None:
        """An optional display-hex id the object must hash to (a JSON copy cannot drift silently)."""
        if self.has(key) and self.hash_hex(key) != actual:
            raise bad_json(self.sub(key), "does not match the id of the object's content")
