"""Proof of Useful Work: AI jobs, receipts and attestations, and the node's worker and validator.

This first layer owns the objects every other part exchanges: `JobSpec`, `Receipt` and
`Attestation` with canonical binary encodings (ids are sha256d of them), JSON forms, limits and
secp256k1 signatures (plus the grid's EIP-191 receipts). The objects must never do I/O or run
models; backends, the worker queue, verification and the API build on them. See docs/pouw-protocol.md.
"""

from pouw.attestation import Attestation, CheckMethod, Verdict
from pouw.errors import PouwError
from pouw.gridreceipt import sign_grid_receipt, verify_grid_receipt
from pouw.jobspec import (
    ChatInput,
    ChatMessage,
    ChatRole,
    CompletionInput,
    EmbedInput,
    JobKind,
    JobSpec,
    ModelRef,
    SamplingParams,
    Tier,
)
from pouw.limits import DEFAULT_LIMITS, HARD_LIMITS, PouwLimits, check_jobspec, check_receipt
from pouw.receipt import (
    EmbeddingOutput,
    ExecutionFacts,
    FinishReason,
    Receipt,
    Timings,
    TokenOutput,
    Usage,
)
from pouw.signing import (
    PouwKey,
    WorkerKey,
    sign_attestation,
    sign_receipt,
    sign_requester_ack,
    verify_attestation_signature,
    verify_receipt_signature,
    verify_requester_ack,
)

__all__ = [
    "DEFAULT_LIMITS",
    "HARD_LIMITS",
    "Attestation",
    "ChatInput",
    "ChatMessage",
    "ChatRole",
    "CheckMethod",
    "CompletionInput",
    "EmbedInput",
    "EmbeddingOutput",
    "ExecutionFacts",
    "FinishReason",
    "JobKind",
    "JobSpec",
    "ModelRef",
    "PouwError",
    "PouwKey",
    "PouwLimits",
    "Receipt",
    "SamplingParams",
    "Tier",
    "Timings",
    "TokenOutput",
    "Usage",
    "Verdict",
    "WorkerKey",
    "check_jobspec",
    "check_receipt",
    "sign_attestation",
    "sign_grid_receipt",
    "sign_receipt",
    "sign_requester_ack",
    "verify_attestation_signature",
    "verify_grid_receipt",
    "verify_receipt_signature",
    "verify_requester_ack",
]
