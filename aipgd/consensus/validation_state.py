"""The verdict of a consensus check (Core: CValidationState and the REJECT_* codes).

Owns `ValidationState`: valid, or invalid/error with Core's reject code, reject reason string,
DoS score and debug message. States are immutable values; checks return a new one instead
of mutating a shared object. It must never log or raise for an invalid input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class RejectCode(IntEnum):
    """Core: consensus/validation.h (the BIP61 codes)."""

    REJECT_NONE = 0
    REJECT_MALFORMED = 0x01
    REJECT_INVALID = 0x10
    REJECT_OBSOLETE = 0x11
    REJECT_DUPLICATE = 0x12
    REJECT_NONSTANDARD = 0x40
    REJECT_INSUFFICIENTFEE = 0x42
    REJECT_CHECKPOINT = 0x43
    REJECT_MAXREORGDEPTH = 0x44


class Mode(Enum):
    VALID = "valid"
    INVALID = "invalid"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ValidationState:
    mode: Mode = Mode.VALID
    reject_code: RejectCode = RejectCode.REJECT_NONE
    reject_reason: str = ""
    dos: int = 0
    corruption_possible: bool = False
    debug_message: str = ""

    @classmethod
    def invalid(cls, reason: str, *, dos: int = 0, code: RejectCode = RejectCode.REJECT_INVALID,
                corruption_possible: bool = False, debug: str = "") -> ValidationState:
        """Core: state.DoS(level, false, code, reason, corruption, debug) / state.Invalid(...)."""
        return cls(Mode.INVALID, code, reason, dos, corruption_possible, debug)

    @classmethod
    def error(cls, reason: str) -> ValidationState:
        """Core: state.Error — a local failure (not the peer's fault)."""
        return cls(Mode.ERROR, RejectCode.REJECT_NONE, reason)

    def is_valid(self) -> bool:
        return self.mode is Mode.VALID

    def is_invalid(self) -> bool:
        return self.mode is Mode.INVALID

    def is_error(self) -> bool:
        return self.mode is Mode.ERROR

    def __bool__(self) -> bool:
        return self.mode is Mode.VALID

    def __str__(self) -> str:
        """Core: FormatStateMessage — "reason (debug) (code N)"."""
        if self.is_valid():
            return "valid"
        debug = f", {self.debug_message}" if self.debug_message else ""
        return f"{self.reject_reason}{debug} (code {int(self.reject_code)})"


VALID = ValidationState()
