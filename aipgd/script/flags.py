"""Script verification flags with Core's names and bit values (Core: script/interpreter.h).

Owns the SCRIPT_VERIFY_* bits, the sighash type constants and the signature versions.
The interpreter tests plain ints for speed; `VerifyFlags` names them for parsing and
display. Nothing here chooses which flags apply at a height: that is consensus' job.
"""

from __future__ import annotations

from enum import IntFlag


class VerifyFlags(IntFlag):
    SCRIPT_VERIFY_NONE = 0
    SCRIPT_VERIFY_P2SH = 1 << 0
    SCRIPT_VERIFY_STRICTENC = 1 << 1
    SCRIPT_VERIFY_DERSIG = 1 << 2
    SCRIPT_VERIFY_LOW_S = 1 << 3
    SCRIPT_VERIFY_NULLDUMMY = 1 << 4
    SCRIPT_VERIFY_SIGPUSHONLY = 1 << 5
    SCRIPT_VERIFY_MINIMALDATA = 1 << 6
    SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS = 1 << 7
    SCRIPT_VERIFY_CLEANSTACK = 1 << 8
    SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY = 1 << 9
    SCRIPT_VERIFY_CHECKSEQUENCEVERIFY = 1 << 10
    SCRIPT_VERIFY_WITNESS = 1 << 11
    SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM = 1 << 12
    SCRIPT_VERIFY_MINIMALIF = 1 << 13
    SCRIPT_VERIFY_NULLFAIL = 1 << 14
    SCRIPT_VERIFY_WITNESS_PUBKEYTYPE = 1 << 15


SCRIPT_VERIFY_NONE = 0
SCRIPT_VERIFY_P2SH = 1 << 0
SCRIPT_VERIFY_STRICTENC = 1 << 1
SCRIPT_VERIFY_DERSIG = 1 << 2
SCRIPT_VERIFY_LOW_S = 1 << 3
SCRIPT_VERIFY_NULLDUMMY = 1 << 4
SCRIPT_VERIFY_SIGPUSHONLY = 1 << 5
SCRIPT_VERIFY_MINIMALDATA = 1 << 6
SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS = 1 << 7
SCRIPT_VERIFY_CLEANSTACK = 1 << 8
SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY = 1 << 9
SCRIPT_VERIFY_CHECKSEQUENCEVERIFY = 1 << 10
SCRIPT_VERIFY_WITNESS = 1 << 11
SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM = 1 << 12
SCRIPT_VERIFY_MINIMALIF = 1 << 13
SCRIPT_VERIFY_NULLFAIL = 1 << 14
SCRIPT_VERIFY_WITNESS_PUBKEYTYPE = 1 << 15

# Core: policy.h. Consensus-critical flags every block must satisfy once deployed are chosen
# by consensus; these two sets are what relay policy asks of mempool transactions.
MANDATORY_SCRIPT_VERIFY_FLAGS = SCRIPT_VERIFY_P2SH
STANDARD_SCRIPT_VERIFY_FLAGS = (
    MANDATORY_SCRIPT_VERIFY_FLAGS | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_STRICTENC
    | SCRIPT_VERIFY_MINIMALDATA | SCRIPT_VERIFY_NULLDUMMY | SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_NOPS
    | SCRIPT_VERIFY_CLEANSTACK | SCRIPT_VERIFY_MINIMALIF | SCRIPT_VERIFY_NULLFAIL
    | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY | SCRIPT_VERIFY_LOW_S
    | SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM
    | SCRIPT_VERIFY_WITNESS_PUBKEYTYPE
)

# Core: interpreter.h SigVersion.
SIGVERSION_BASE = 0
SIGVERSION_WITNESS_V0 = 1

# Core: interpreter.h sighash types.
SIGHASH_ALL = 1
SIGHASH_NONE = 2
SIGHASH_SINGLE = 3
SIGHASH_ANYONECANPAY = 0x80


def parse_flags(text: str) -> int:
    """"P2SH,STRICTENC" -> bits, as the test vectors and Core's ParseScriptFlags spell them.

    "NONE" and "" are zero; an unknown name raises ValueError.
    """
    flags = 0
    if not text:
        return flags
    for word in text.split(","):
        try:
            flags |= VerifyFlags["SCRIPT_VERIFY_" + word]
        except KeyError:
            raise ValueError(f"unknown script verification flag {word!r}") from None
    return flags


def format_flags(flags: int) -> str:
    """The inverse of `parse_flags`, in bit order."""
    return ",".join(
        f.name[len("SCRIPT_VERIFY_"):] for f in VerifyFlags if f and f.name and flags & f
    )
