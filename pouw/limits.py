"""Limits on every size and count of a PoUW job and receipt, and the checks that apply them.

Owns `PouwLimits` (the node's policy, configurable), `HARD_LIMITS` (the format's caps: decoders and
constructors enforce them, so hostile bytes cannot make us allocate without bound) and the checks
that raise `PouwError("limit-exceeded")` naming the field and the limit. It must never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from aipgd.core.transaction import MAX_MONEY
from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, PouwError

if TYPE_CHECKING:
    from pouw.jobspec import JobSpec
    from pouw.receipt import Receipt

# No encoded PoUW object may be larger (Core: net.h MAX_PROTOCOL_MESSAGE_LENGTH, 4 MB).
MAX_OBJECT_SIZE = 4_000_000


@dataclass(frozen=True, slots=True)
class PouwLimits:
    """Caps on a job's fields. The defaults are the node's policy; `HARD_LIMITS` is the format's."""

    max_model_name_bytes: int = 128
    # Total UTF-8 bytes of a job's input text: the prompt, all chat message contents, or all embed inputs.
    max_prompt_bytes: int = 256 * 1024
    max_messages: int = 256
    max_chat_template_bytes: int = 64
    max_tokens: int = 8192
    max_temperature_milli: int = 2000  # OpenAI's range for temperature is 0..2
    max_stop_strings: int = 8
    max_stop_bytes: int = 64
    max_embed_inputs: int = 256
    max_fee: int = MAX_MONEY
    max_deadline_s: int = 3600  # how far in the future a deadline may lie (checked when `now` is given)
    max_embedding_dims: int = 16384
    max_backend_bytes: int = 128  # backend name and version strings of a receipt
    max_threads: int = 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"PouwLimits.{f.name} must be a non-negative integer, got {value!r}")

    def within(self, outer: PouwLimits) -> bool:
        """Whether no limit here is looser than in `outer` (policy must sit inside the hard caps)."""
        return all(getattr(self, f.name) <= getattr(outer, f.name) for f in fields(self))


DEFAULT_LIMITS = PouwLimits()

# The version-1 format's caps. Raising one changes which objects exist: it needs a new version.
HARD_LIMITS = PouwLimits(
    max_model_name_bytes=255,
    max_prompt_bytes=2 * 1024 * 1024,
    max_messages=4096,
    max_chat_template_bytes=255,
    max_tokens=131072,
    max_temperature_milli=0xFFFFFFFF,
    max_stop_strings=32,
    max_stop_bytes=255,
    max_embed_inputs=4096,
    max_fee=MAX_MONEY,
    max_deadline_s=0xFFFFFFFF,
    max_embedding_dims=65536,
    max_backend_bytes=255,
    max_threads=0xFFFF,
)


def check_limit(actual: int, limit: int, limit_name: str, field: str, unit: str = "") -> None:
    """Raise limit-exceeded when `actual` is above `limit`; the message names field and limit."""
    if actual > limit:
        amount = f"{actual} {unit}" if unit else str(actual)
        raise PouwError(LIMIT_EXCEEDED, f"{amount} exceeds {limit_name}={limit}", field)


def check_jobspec(spec: JobSpec, limits: PouwLimits = DEFAULT_LIMITS, now: int | None = None) -> None:
    """Every limit of `limits` on `spec`; with `now` (unix time) also the deadline window.

    Raises `PouwError` for the first violation found, in field order.
    """
    spec.check_limits(limits)
    if now is not None:
        if spec.deadline <= now:
            raise PouwError(INVALID_FIELD, f"deadline {spec.deadline} has passed (now {now})", "deadline")
        check_limit(spec.deadline - now, limits.max_deadline_s, "max_deadline_s", "deadline", "seconds ahead")


def check_receipt(receipt: Receipt, limits: PouwLimits = DEFAULT_LIMITS, spec: JobSpec | None = None) -> None:
    """Every limit on `receipt`; with the job's `spec`, also that the receipt answers that job.

    A receipt answers a job when it names its id, model hash and input hash, echoes its sampling
    parameters, has the output kind of its job kind and stays within its max_tokens.
    """
    receipt.check_limits(limits)
    if spec is not None:
        receipt.check_matches(spec)
