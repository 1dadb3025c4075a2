"""The worker's signed statement of a job it ran: `Receipt`, its output, usage and execution facts.

Owns the canonical version-1 encoding of a receipt and its id: sha256d of everything but the two
signatures (so the worker and the requester sign the same id, in either order). A receipt records
what a validator needs to re-check the work: output tokens, sampler, seed, backend and threads.
It must never verify signatures (pouw.signing) or outputs (the verifier).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from aipgd.core.hashes import sha256
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_u8,
    ser_u16,
    ser_u32,
    ser_var_bytes,
    ser_var_str,
    ser_vector,
)
from pouw.codec import (
    HASH_SIZE,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    U16_MAX,
    U32_MAX,
    HashedObject,
    WireEnum,
    check_bool,
    check_bytes,
    check_enum,
    check_identifier,
    check_int,
    check_pubkey,
    check_signature_field,
    check_tuple,
    decode_exact,
    invalid_object,
    read_bool,
    read_enum,
    read_identifier,
    read_pubkey,
    read_signature,
)
from pouw.errors import INVALID_FIELD, UNSUPPORTED, PouwError
from pouw.jobspec import EmbedInput, JobKind, JobSpec, SamplingParams
from pouw.jsonform import JsonDict, JsonObject, as_int, bad_json, hash_json
from pouw.limits import HARD_LIMITS, MAX_OBJECT_SIZE, PouwLimits, check_limit

RECEIPT_VERSION = 1


class FinishReason(WireEnum):
    STOP = 1  # a stop string matched (embed jobs: finished normally)
    LENGTH = 2  # max_tokens reached
    EOS = 3  # the model emitted end-of-sequence
    CANCELLED = 4
    ERROR = 5


class OutputType(WireEnum):
    TOKENS = 1
    EMBEDDING = 2


def _ser_token(token: int) -> bytes:
    return ser_u32(token)


@dataclass(frozen=True, slots=True)
class TokenOutput:
    """An LLM output: the generated token ids (so a validator can teacher-force them) and the
    sha256 of the output text's UTF-8 bytes (the same digest the grid's receipts sign)."""

    output_type: ClassVar[OutputType] = OutputType.TOKENS
    token_ids: tuple[int, ...]
    text_sha256: bytes

    def __post_init__(self) -> None:
        for i, token in enumerate(check_tuple(self.token_ids, "output.token_ids")):
            check_int(token, 0, U32_MAX, f"output.token_ids[{i}]")
        check_bytes(self.text_sha256, (HASH_SIZE,), "output.text_sha256")
        self.check_limits(HARD_LIMITS)

    @classmethod
    def from_text(cls, token_ids: Sequence[int], text: str) -> TokenOutput:
        return cls(tuple(token_ids), sha256(text.encode("utf-8")))

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.token_ids), limits.max_tokens, "max_tokens", "output.token_ids", "tokens")

    def serialize(self) -> bytes:
        return ser_vector(self.token_ids, _ser_token) + self.text_sha256

    @classmethod
    def read(cls, r: ByteReader) -> TokenOutput:
        tokens = r.vector(lambda rr: rr.u32("token id"), "output tokens", min_item_size=4,
                          limit=HARD_LIMITS.max_tokens)
        return cls(tuple(tokens), r.read(HASH_SIZE, "output text sha256"))

    def to_json(self) -> JsonDict:
        return {"type": "tokens", "token_ids": list(self.token_ids), "text_sha256": self.text_sha256.hex()}

    @classmethod
    def from_json(cls, o: JsonObject) -> TokenOutput:
        path = o.sub("token_ids")
        tokens = tuple(as_int(t, f"{path}[{i}]", 0, U32_MAX) for i, t in enumerate(o.array("token_ids")))
        return cls(tokens, o.hex("text_sha256", (HASH_SIZE,)))


@dataclass(frozen=True, slots=True)
class EmbeddingOutput:
    """An embed output: `count` vectors of `dims` float32 each, committed to by the sha256 of their
    little-endian float32 bytes, vectors in input order."""

    output_type: ClassVar[OutputType] = OutputType.EMBEDDING
    count: int
    dims: int
    vectors_sha256: bytes

    def __post_init__(self) -> None:
        check_int(self.count, 1, HARD_LIMITS.max_embed_inputs, "output.count")
        check_int(self.dims, 1, HARD_LIMITS.max_embedding_dims, "output.dims")
        check_bytes(self.vectors_sha256, (HASH_SIZE,), "output.vectors_sha256")

    @classmethod
    def from_vectors(cls, vectors: Sequence[Sequence[float]]) -> EmbeddingOutput:
        if not vectors:
            raise PouwError(INVALID_FIELD, "needs at least one vector", "output")
        dims = len(vectors[0])
        if any(len(v) != dims for v in vectors):
            raise PouwError(INVALID_FIELD, "vectors differ in length", "output")
        packed = b"".join(struct.pack(f"<{dims}f", *v) for v in vectors)
        return cls(len(vectors), dims, sha256(packed))

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(self.count, limits.max_embed_inputs, "max_embed_inputs", "output.count", "vectors")
        check_limit(self.dims, limits.max_embedding_dims, "max_embedding_dims", "output.dims", "dimensions")

    def serialize(self) -> bytes:
        return ser_u32(self.count) + ser_u32(self.dims) + self.vectors_sha256

    @classmethod
    def read(cls, r: ByteReader) -> EmbeddingOutput:
        return cls(r.u32("embedding count"), r.u32("embedding dims"), r.read(HASH_SIZE, "embedding sha256"))

    def to_json(self) -> JsonDict:
        return {"type": "embedding", "count": self.count, "dims": self.dims,
                "vectors_sha256": self.vectors_sha256.hex()}

    @classmethod
    def from_json(cls, o: JsonObject) -> EmbeddingOutput:
        return cls(o.integer("count", 1, U32_MAX), o.integer("dims", 1, U32_MAX),
                   o.hex("vectors_sha256", (HASH_SIZE,)))


ReceiptOutput = TokenOutput | EmbeddingOutput


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def __post_init__(self) -> None:
        check_int(self.prompt_tokens, 0, U32_MAX, "usage.prompt_tokens")
        check_int(self.completion_tokens, 0, U32_MAX, "usage.completion_tokens")

    def serialize(self) -> bytes:
        return ser_u32(self.prompt_tokens) + ser_u32(self.completion_tokens)

    @classmethod
    def read(cls, r: ByteReader) -> Usage:
        return cls(r.u32("prompt tokens"), r.u32("completion tokens"))

    def to_json(self) -> JsonDict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @classmethod
    def from_json(cls, value: object, path: str = "usage") -> Usage:
        o = JsonObject(value, path)
        usage = cls(o.integer("prompt_tokens", 0, U32_MAX), o.integer("completion_tokens", 0, U32_MAX))
        o.finish()
        return usage


@dataclass(frozen=True, slots=True)
class Timings:
    """Milliseconds waiting in the queue, in prefill (prompt) and in decode (generation)."""

    queued_ms: int
    prefill_ms: int
    decode_ms: int

    def __post_init__(self) -> None:
        check_int(self.queued_ms, 0, U32_MAX, "timings.queued_ms")
        check_int(self.prefill_ms, 0, U32_MAX, "timings.prefill_ms")
        check_int(self.decode_ms, 0, U32_MAX, "timings.decode_ms")

    def serialize(self) -> bytes:
        return ser_u32(self.queued_ms) + ser_u32(self.prefill_ms) + ser_u32(self.decode_ms)

    @classmethod
    def read(cls, r: ByteReader) -> Timings:
        return cls(r.u32("queued ms"), r.u32("prefill ms"), r.u32("decode ms"))

    def to_json(self) -> JsonDict:
        return {"queued_ms": self.queued_ms, "prefill_ms": self.prefill_ms, "decode_ms": self.decode_ms}

    @classmethod
    def from_json(cls, value: object, path: str = "timings") -> Timings:
        o = JsonObject(value, path)
        timings = cls(o.integer("queued_ms", 0, U32_MAX), o.integer("prefill_ms", 0, U32_MAX),
                      o.integer("decode_ms", 0, U32_MAX))
        o.finish()
        return timings


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    """How the job ran: backend name and version, thread count (0 when not applicable, e.g. all
    layers on a GPU), whether the run was deterministic, and the sampling parameters in effect
    (LLM jobs only)."""

    backend: str
    backend_version: str
    n_threads: int
    deterministic: bool
    sampling: SamplingParams | None

    def __post_init__(self) -> None:
        check_identifier(self.backend, "execution.backend")
        check_identifier(self.backend_version, "execution.backend_version", allow_empty=True)
        check_int(self.n_threads, 0, U16_MAX, "execution.n_threads")
        check_bool(self.deterministic, "execution.deterministic")
        if self.sampling is not None and not isinstance(self.sampling, SamplingParams):
            raise PouwError(INVALID_FIELD, "must be SamplingParams or None", "execution.sampling")
        self.check_limits(HARD_LIMITS)

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.backend), limits.max_backend_bytes, "max_backend_bytes", "execution.backend",
                    "bytes")
        check_limit(len(self.backend_version), limits.max_backend_bytes, "max_backend_bytes",
                    "execution.backend_version", "bytes")
        check_limit(self.n_threads, limits.max_threads, "max_threads", "execution.n_threads", "threads")

    def serialize(self) -> bytes:
        parts = [ser_var_str(self.backend), ser_var_str(self.backend_version), ser_u16(self.n_threads),
                 ser_u8(self.deterministic)]
        if self.sampling is None:
            parts.append(ser_u8(0))
        else:
            parts += (ser_u8(1), self.sampling.serialize())
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> ExecutionFacts:
        backend = read_identifier(r, "backend", HARD_LIMITS.max_backend_bytes)
        version = read_identifier(r, "backend version", HARD_LIMITS.max_backend_bytes, allow_empty=True)
        n_threads = r.u16("n_threads")
        deterministic = read_bool(r, "deterministic")
        sampling = SamplingParams.read(r) if read_bool(r, "has sampling") else None
        return cls(backend, version, n_threads, deterministic, sampling)

    def to_json(self) -> JsonDict:
        return {"backend": self.backend, "backend_version": self.backend_version, "n_threads": self.n_threads,
                "deterministic": self.deterministic,
                "sampling": self.sampling.to_json() if self.sampling is not None else None}

    @classmethod
    def from_json(cls, value: object, path: str = "execution") -> ExecutionFacts:
        o = JsonObject(value, path)
        raw_sampling = o.get("sampling")
        facts = cls(
            o.text("backend"), o.text("backend_version"), o.integer("n_threads", 0, U16_MAX),
            o.boolean("deterministic"),
            SamplingParams.from_json(raw_sampling, o.sub("sampling")) if raw_sampling is not None else None,
        )
        o.finish()
        return facts


_OUTPUT_TYPES: dict[OutputType, type[TokenOutput] | type[EmbeddingOutput]] = {
    OutputType.TOKENS: TokenOutput,
    OutputType.EMBEDDING: EmbeddingOutput,
}


@dataclass(frozen=True, slots=True)
class Receipt(HashedObject):
    """A worker's statement that it ran job `job_id` and produced `output`.

    The id covers every field except `requester_ack` and `worker_signature`, which both sign it
    (see pouw.signing). Empty signatures mean "not signed yet".
    """

    job_id: bytes
    worker_pubkey: bytes
    model_hash: bytes
    input_hash: bytes
    output: ReceiptOutput
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    execution: ExecutionFacts
    started: int
    finished: int
    requester_ack: bytes = b""
    worker_signature: bytes = b""
    version: int = RECEIPT_VERSION
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_int(self.version, 0, 0xFF, "version")
        if self.version != RECEIPT_VERSION:
            raise PouwError(UNSUPPORTED, f"version {self.version} is not supported", "version")
        check_bytes(self.job_id, (HASH_SIZE,), "job_id")
        check_pubkey(self.worker_pubkey, "worker_pubkey")
        check_bytes(self.model_hash, (HASH_SIZE,), "model_hash")
        check_bytes(self.input_hash, (HASH_SIZE,), "input_hash")
        if not isinstance(self.output, TokenOutput | EmbeddingOutput):
            raise PouwError(INVALID_FIELD, "must be a TokenOutput or EmbeddingOutput", "output")
        check_enum(self.finish_reason, FinishReason, "finish_reason")
        for name, kind in (("usage", Usage), ("timings", Timings), ("execution", ExecutionFacts)):
            if not isinstance(getattr(self, name), kind):
                raise PouwError(INVALID_FIELD, f"must be {kind.__name__}", name)
        check_int(self.started, 0, U32_MAX, "started")
        check_int(self.finished, 0, U32_MAX, "finished")
        if self.finished < self.started:
            raise PouwError(INVALID_FIELD, f"{self.finished} is before started ({self.started})", "finished")
        check_signature_field(self.requester_ack, "requester_ack")
        check_signature_field(self.worker_signature, "worker_signature")
        if isinstance(self.output, TokenOutput):
            if self.execution.sampling is None:
                raise PouwError(INVALID_FIELD, "an LLM receipt must echo its sampling parameters",
                                "execution.sampling")
            # A worker behind a remote OpenAI-compatible server sees text, not token ids: its
            # (non-deterministic) receipts carry no tokens, so no validator can re-check them.
            text_only = not self.execution.deterministic and not self.output.token_ids
            if not text_only and self.usage.completion_tokens != len(self.output.token_ids):
                raise PouwError(INVALID_FIELD, f"{self.usage.completion_tokens} differs from the "
                                f"{len(self.output.token_ids)} output tokens", "usage.completion_tokens")
        else:
            if self.execution.sampling is not None:
                raise PouwError(INVALID_FIELD, "an embed receipt has no sampling", "execution.sampling")
            if self.usage.completion_tokens:
                raise PouwError(INVALID_FIELD, "an embed receipt generates no tokens",
                                "usage.completion_tokens")
        # The parts checked the format's hard caps when they were built.

    def check_limits(self, limits: PouwLimits) -> None:
        self.output.check_limits(limits)
        self.execution.check_limits(limits)
        if self.execution.sampling is not None:
            self.execution.sampling.check_limits(limits)

    def check_matches(self, spec: JobSpec) -> None:
        """Raise `PouwError("invalid-field")` unless this receipt answers `spec` (see pouw.limits)."""
        def mismatch(name: str, what: str) -> PouwError:
            return PouwError(INVALID_FIELD, f"does not match the job's {what}", name)

        if self.job_id != spec.id:
            raise mismatch("job_id", "id")
        if self.model_hash != spec.model.sha256:
            raise mismatch("model_hash", "model sha256")
        if self.input_hash != spec.input_hash:
            raise mismatch("input_hash", "input hash")
        if self.execution.sampling != spec.sampling:
            raise mismatch("execution.sampling", "sampling parameters")
        if (spec.kind is JobKind.EMBED) != isinstance(self.output, EmbeddingOutput):
            raise mismatch("output", f"kind ({spec.kind.label})")
        if isinstance(self.output, EmbeddingOutput):
            if isinstance(spec.input, EmbedInput) and self.output.count != len(spec.input.inputs):
                raise mismatch("output.count", "number of inputs")
        elif spec.sampling is not None:
            check_limit(len(self.output.token_ids), spec.sampling.max_tokens, "the job's max_tokens",
                        "output.token_ids", "tokens")

    @property
    def kind_is_llm(self) -> bool:
        return isinstance(self.output, TokenOutput)

    # --- encoding -------------------------------------------------------------------------------
    def serialize_unsigned(self) -> bytes:
        """The bytes the id hashes: everything but the two signatures."""
        cached = self._cache.get("unsigned")
        if cached is None:
            cached = self._cache["unsigned"] = b"".join((
                ser_u8(self.version), self.job_id, self.worker_pubkey, self.model_hash, self.input_hash,
                ser_u8(self.output.output_type), self.output.serialize(), ser_u8(self.finish_reason),
                self.usage.serialize(), self.timings.serialize(), self.execution.serialize(),
                ser_u32(self.started), ser_u32(self.finished),
            ))
        return cached

    def serialize(self) -> bytes:
        signatures = ser_var_bytes(self.requester_ack) + ser_var_bytes(self.worker_signature)
        return self.serialize_unsigned() + signatures

    @classmethod
    def read(cls, r: ByteReader) -> Receipt:
        start = r.pos
        version = r.u8("receipt version")
        if version != RECEIPT_VERSION:
            raise DeserializationError("receipt version", start, f"unsupported version {version}")
        try:
            job_id = r.read(HASH_SIZE, "job id")
            worker = read_pubkey(r, "worker pubkey")
            model_hash = r.read(HASH_SIZE, "model hash")
            input_hash = r.read(HASH_SIZE, "input hash")
            output = _OUTPUT_TYPES[read_enum(r, OutputType, "output type")].read(r)
            finish = read_enum(r, FinishReason, "finish reason")
            usage = Usage.read(r)
            timings = Timings.read(r)
            execution = ExecutionFacts.read(r)
            started = r.u32("started")
            finished = r.u32("finished")
            ack = read_signature(r, "requester ack")
            sig = read_signature(r, "worker signature")
            return cls(job_id, worker, model_hash, input_hash, output, finish, usage, timings, execution,
                       started, finished, ack, sig, version)
        except PouwError as exc:
            raise invalid_object("receipt", start, exc) from None

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        return decode_exact(cls.read, data, "receipt", MAX_OBJECT_SIZE)

    # --- identity -------------------------------------------------------------------------------
    def hashed_bytes(self) -> bytes:
        return self.serialize_unsigned()

    def unsigned(self) -> Receipt:
        return replace(self, requester_ack=b"", worker_signature=b"")

    # --- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> JsonDict:
        return {
            "id": hash_json(self.id),
            "version": self.version,
            "job_id": hash_json(self.job_id),
            "worker_pubkey": self.worker_pubkey.hex(),
            "model_hash": self.model_hash.hex(),
            "input_hash": self.input_hash.hex(),
            "output": self.output.to_json(),
            "finish_reason": self.finish_reason.label,
            "usage": self.usage.to_json(),
            "timings": self.timings.to_json(),
            "execution": self.execution.to_json(),
            "started": self.started,
            "finished": self.finished,
            "requester_ack": self.requester_ack.hex(),
            "worker_signature": self.worker_signature.hex(),
        }

    @classmethod
    def from_json(cls, value: object) -> Receipt:
        o = JsonObject(value)
        version = o.integer("version", 0, 0xFF)
        if version != RECEIPT_VERSION:
            raise bad_json("version", f"unsupported version {version}")
        oo = o.obj("output")
        output_type = oo.text("type")
        if output_type == "tokens":
            output: ReceiptOutput = TokenOutput.from_json(oo)
        elif output_type == "embedding":
            output = EmbeddingOutput.from_json(oo)
        else:
            raise bad_json("output.type", f"must be 'tokens' or 'embedding', got {output_type!r}")
        oo.finish()
        receipt = cls(
            job_id=o.hash_hex("job_id"),
            worker_pubkey=o.hex("worker_pubkey", (PUBKEY_SIZE,)),
            model_hash=o.hex("model_hash", (HASH_SIZE,)),
            input_hash=o.hex("input_hash", (HASH_SIZE,)),
            output=output,
            finish_reason=o.enum("finish_reason", FinishReason),
            usage=Usage.from_json(o.get("usage")),
            timings=Timings.from_json(o.get("timings")),
            execution=ExecutionFacts.from_json(o.get("execution")),
            started=o.integer("started", 0, U32_MAX),
            finished=o.integer("finished", 0, U32_MAX),
            requester_ack=o.hex("requester_ack", (0, SIGNATURE_SIZE)),
            worker_signature=o.hex("worker_signature", (0, SIGNATURE_SIZE)),
            version=version,
        )
        o.check_id("id", receipt.id)
        o.finish()
        return receipt
