"""The one exception of the PoUW objects and its stable machine codes.

Owns `PouwError`: a short code (like Core's reject strings, stable for RPC mappings and logs), the
field path it concerns and a readable message naming the field and the rule. Binary decoders raise
`aipgd.core.serialize.DeserializationError` instead, as every parser of the node does.
"""

from __future__ import annotations

from aipgd.core.serialize import DeserializationError

# The codes never change meaning; callers map them to RPC errors and misbehaviour scores.
INVALID_ENCODING = "invalid-encoding"  # bytes that are not the canonical encoding of an object
INVALID_FIELD = "invalid-field"  # a value outside its type's range or a broken cross-field rule
LIMIT_EXCEEDED = "limit-exceeded"  # a size or count above the limits in force
UNSUPPORTED = "unsupported"  # a known but unsupported kind or version
BAD_SIGNATURE = "bad-signature"  # a key or signature that cannot be used
BAD_JSON = "bad-json"  # a JSON form with a missing field, a wrong type or an unexpected key

ERROR_CODES = frozenset({INVALID_ENCODING, INVALID_FIELD, LIMIT_EXCEEDED, UNSUPPORTED, BAD_SIGNATURE,
                         BAD_JSON})


class PouwError(Exception):
    """A PoUW object or request that breaks a rule. `str()` reads "field: message"."""

    def __init__(self, code: str, message: str, field: str = "") -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown PoUW error code {code!r}")
        super().__init__(f"{field}: {message}" if field else message)
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_decode(cls, exc: DeserializationError) -> PouwError:
        """A decoder's error as `invalid-encoding`, for callers that report codes (RPC, API)."""
        return cls(INVALID_ENCODING, f"{exc.reason} (at byte {exc.offset})", exc.what)

    def at(self, prefix: str) -> PouwError:
        """The same error with its field path placed under `prefix` (for nested objects)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return PouwError(self.code, self.message, field)
