"""The PoUW P2P messages: capability adverts, remote jobs and receipt (with job)/attestation gossip.

Owns one frozen class per pouw* command (aipgd.net Message subclasses with exact encodings),
`WorkerCaps` (a worker's signed, link-bound capability advertisement) and the per-command payload
caps (aipgd.net.protocol.POUW_PAYLOAD_LIMITS, checked on the frame header). Every count and length
is bounded before allocation, and a payload must end where its fields end. It must never act on a
message: pouw.gossip does. See docs/pouw-protocol.md "Network".
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import ClassVar

from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_u8,
    ser_u16,
    ser_u32,
    ser_u64,
    ser_var_bytes,
    ser_var_str,
    ser_vector,
)
from aipgd.net.message_base import DecodeContext, Message
from aipgd.net.protocol import POUW_PAYLOAD_LIMITS
from pouw.attestation import Attestation
from pouw.codec import (
    HASH_SIZE,
    U32_MAX,
    U64_MAX,
    HashedObject,
    check_bytes,
    check_identifier,
    check_int,
    check_pubkey,
    check_signature_field,
    invalid_object,
    read_identifier,
    read_pubkey,
    read_signature,
)
from pouw.errors import INVALID_FIELD, PouwError
from pouw.jobspec import JobSpec
from pouw.limits import HARD_LIMITS
from pouw.receipt import Receipt
from pouw.signing import CAPS_TAG, PouwKey, signature_digest, verify_digest

__all__ = [
    "CAPS_TAG", "MAX_CAPS_MODELS", "MAX_ERROR_CODE_BYTES", "MAX_ERROR_MESSAGE_BYTES", "MAX_RESULT_TEXT_BYTES",
    "MAX_TOKEN_TEXT_BYTES", "POUW_MESSAGE_TYPES", "ModelCapability", "PouwAttestationMessage", "PouwCancel",
    "PouwCapsMessage", "PouwErrorMessage", "PouwJob", "PouwReceiptMessage", "PouwResult",
    "PouwToken", "WorkerCaps", "split_text",
]

CAPS_VERSION = 1
MAX_CAPS_MODELS = 64
MAX_BACKEND_NAME_BYTES = 64
MAX_CONCURRENCY = 1024
CAPS_FLAG_DETERMINISTIC = 1
MAX_TOKEN_TEXT_BYTES = 4000  # one pouwtoken's text; longer pieces are split
MAX_RESULT_TEXT_BYTES = 1024 * 1024
MAX_ERROR_CODE_BYTES = 32
MAX_ERROR_MESSAGE_BYTES = 512
_FLOAT = struct.Struct("<f")


def _end(r: ByteReader, command: str) -> None:
    # PoUW payloads are exact: a later format is a new object version or a new command.
    r.expect_end(f"{command} payload")


# --- capabilities ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ModelCapability:
    """A model a worker serves: name, sha256 of its weights file (zeros when unknown), context length."""

    name: str
    sha256: bytes
    context_length: int

    def __post_init__(self) -> None:
        check_identifier(self.name, "caps.models.name")
        if len(self.name) > HARD_LIMITS.max_model_name_bytes:
            raise PouwError(INVALID_FIELD, "model name is too long", "caps.models.name")
        check_bytes(self.sha256, (HASH_SIZE,), "caps.models.sha256")
        check_int(self.context_length, 0, U32_MAX, "caps.models.context_length")

    def serialize(self) -> bytes:
        return ser_var_str(self.name) + self.sha256 + ser_u32(self.context_length)

    @classmethod
    def read(cls, r: ByteReader) -> ModelCapability:
        name = read_identifier(r, "caps model name", HARD_LIMITS.max_model_name_bytes)
        return cls(name, r.read(HASH_SIZE, "caps model sha256"), r.u32("caps model context"))


@dataclass(frozen=True, slots=True)
class WorkerCaps(HashedObject):
    """A worker's capability advertisement, signed by its worker key and bound to one link.

    `link_nonce` is the nonce of the recipient's version message, so an advert copied to another
    connection does not verify there. tokens/s is in thousandths so the encoding is exact.
    """

    worker_pubkey: bytes
    models: tuple[ModelCapability, ...]
    max_concurrency: int
    tokens_per_second_milli: int
    backend: str
    time: int
    link_nonce: int
    flags: int = 0
    signature: bytes = b""
    version: int = CAPS_VERSION
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_int(self.version, CAPS_VERSION, CAPS_VERSION, "caps.version")
        check_pubkey(self.worker_pubkey, "caps.worker_pubkey")
        if not isinstance(self.models, tuple) or not 1 <= len(self.models) <= MAX_CAPS_MODELS:
            raise PouwError(INVALID_FIELD, f"must be a tuple of 1..{MAX_CAPS_MODELS} models", "caps.models")
        for model in self.models:
            if not isinstance(model, ModelCapability):
                raise PouwError(INVALID_FIELD, "must hold ModelCapability", "caps.models")
        check_int(self.max_concurrency, 1, MAX_CONCURRENCY, "caps.max_concurrency")
        check_int(self.tokens_per_second_milli, 0, U32_MAX, "caps.tokens_per_second_milli")
        check_identifier(self.backend, "caps.backend")
        if len(self.backend) > MAX_BACKEND_NAME_BYTES:
            raise PouwError(INVALID_FIELD, "backend name is too long", "caps.backend")
        check_int(self.time, 0, U32_MAX, "caps.time")
        check_int(self.link_nonce, 0, U64_MAX, "caps.link_nonce")
        check_int(self.flags, 0, 0xFF, "caps.flags")
        check_signature_field(self.signature, "caps.signature")

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_second_milli / 1000

    @property
    def deterministic(self) -> bool:
        return bool(self.flags & CAPS_FLAG_DETERMINISTIC)

    def serialize_unsigned(self) -> bytes:
        cached = self._cache.get("unsigned")
        if cached is None:
            cached = self._cache["unsigned"] = b"".join((
                ser_u8(self.version), self.worker_pubkey, ser_vector(self.models, ModelCapability.serialize),
                ser_u16(self.max_concurrency), ser_u32(self.tokens_per_second_milli),
                ser_var_str(self.backend),
                ser_u32(self.time), ser_u64(self.link_nonce), ser_u8(self.flags),
            ))
        return cached

    def serialize(self) -> bytes:
        return self.serialize_unsigned() + ser_var_bytes(self.signature)

    def hashed_bytes(self) -> bytes:
        return self.serialize_unsigned()

    def signed(self, key: PouwKey) -> WorkerCaps:
        if key.pubkey != self.worker_pubkey:
            raise PouwError(INVALID_FIELD, "the key is not the advert's worker key", "caps.worker_pubkey")
        unsigned = replace(self, signature=b"")
        return replace(unsigned, signature=key.sign_digest(signature_digest(CAPS_TAG, unsigned.id)))

    def verify(self) -> bool:
        return verify_digest(self.worker_pubkey, self.signature, signature_digest(CAPS_TAG, self.id))

    @classmethod
    def read(cls, r: ByteReader) -> WorkerCaps:
        start = r.pos
        version = r.u8("caps version")
        if version != CAPS_VERSION:
            raise DeserializationError("caps version", start, f"unsupported version {version}")
        try:
            pubkey = read_pubkey(r, "caps worker pubkey")
            models = r.vector(ModelCapability.read, "caps models", min_item_size=1 + 32 + 4,
                              limit=MAX_CAPS_MODELS)
            concurrency = r.u16("caps max concurrency")
            tps = r.u32("caps tokens/s")
            backend = read_identifier(r, "caps backend", MAX_BACKEND_NAME_BYTES)
            time = r.u32("caps time")
            nonce = r.u64("caps link nonce")
            flags = r.u8("caps flags")
            signature = read_signature(r, "caps signature")
            return cls(pubkey, tuple(models), concurrency, tps, backend, time, nonce, flags, signature,
                       version)
        except PouwError as exc:
            raise invalid_object("caps", start, exc) from None


# --- messages ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PouwCapsMessage(Message):
    command: ClassVar[str] = "pouwcaps"
    caps: WorkerCaps

    def serialize(self) -> bytes:
        return self.caps.serialize()

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwCapsMessage:
        message = cls(WorkerCaps.read(r))
        _end(r, cls.command)
        return message


@dataclass(frozen=True, slots=True)
class PouwJob(Message):
    """Requester -> worker: run `spec` under `request_id` (unique per link); `stream` asks for tokens."""

    command: ClassVar[str] = "pouwjob"
    request_id: int
    spec: JobSpec
    stream: bool = False

    def serialize(self) -> bytes:
        return ser_u64(self.request_id) + self.spec.serialize() + ser_u8(int(self.stream))

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwJob:
        request_id = r.u64("pouwjob request id")
        spec = JobSpec.read(r)
        start = r.pos
        flag = r.u8("pouwjob stream")
        if flag > 1:
            raise DeserializationError("pouwjob stream", start, f"boolean must be 0 or 1, got {flag}")
        _end(r, cls.command)
        return cls(request_id, spec, flag == 1)


@dataclass(frozen=True, slots=True)
class PouwToken(Message):
    """Worker -> requester: the `seq`-th piece (from 0) of the output text of a streamed job."""

    command: ClassVar[str] = "pouwtoken"
    request_id: int
    seq: int
    text: str

    def serialize(self) -> bytes:
        return ser_u64(self.request_id) + ser_u32(self.seq) + ser_var_str(self.text)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwToken:
        message = cls(r.u64("pouwtoken request id"), r.u32("pouwtoken seq"),
                      r.var_str("pouwtoken text", MAX_TOKEN_TEXT_BYTES))
        _end(r, cls.command)
        return message


@dataclass(frozen=True, slots=True)
class PouwResult(Message):
    """Worker -> requester: the signed receipt, the output text (LLM jobs) and the embedding vectors
    (embed jobs: `count` vectors of `dims` little-endian float32, in input order)."""

    command: ClassVar[str] = "pouwresult"
    request_id: int
    receipt: Receipt
    text: str = ""
    embeddings: tuple[tuple[float, ...], ...] = ()

    def serialize(self) -> bytes:
        dims = len(self.embeddings[0]) if self.embeddings else 0
        floats = b"".join(_FLOAT.pack(x) for vector in self.embeddings for x in vector)
        return (ser_u64(self.request_id) + self.receipt.serialize() + ser_var_str(self.text)
                + ser_u32(len(self.embeddings)) + ser_u32(dims) + floats)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwResult:
        request_id = r.u64("pouwresult request id")
        receipt = Receipt.read(r)
        text = r.var_str("pouwresult text", MAX_RESULT_TEXT_BYTES)
        start = r.pos
        count = r.u32("pouwresult vector count")
        dims = r.u32("pouwresult vector dims")
        if count > HARD_LIMITS.max_embed_inputs or dims > HARD_LIMITS.max_embedding_dims \
                or (count == 0) != (dims == 0) or count * dims * 4 != r.remaining:
            raise DeserializationError("pouwresult vectors", start,
                                       f"{count} x {dims} vectors do not fit the {r.remaining} bytes left")
        raw = r.read(count * dims * 4, "pouwresult vectors")
        values = [v[0] for v in _FLOAT.iter_unpack(raw)]
        vectors = tuple(tuple(values[i * dims:(i + 1) * dims]) for i in range(count))
        return cls(request_id, receipt, text, vectors)


@dataclass(frozen=True, slots=True)
class PouwErrorMessage(Message):
    """Worker -> requester: the job failed or was refused; `code` is a stable identifier."""

    command: ClassVar[str] = "pouwerror"
    request_id: int
    code: str
    message: str = ""

    def serialize(self) -> bytes:
        return ser_u64(self.request_id) + ser_var_str(self.code) + ser_var_str(self.message)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwErrorMessage:
        message = cls(r.u64("pouwerror request id"),
                      read_identifier(r, "pouwerror code", MAX_ERROR_CODE_BYTES),
                      r.var_str("pouwerror message", MAX_ERROR_MESSAGE_BYTES))
        _end(r, cls.command)
        return message


@dataclass(frozen=True, slots=True)
class PouwCancel(Message):
    """Requester -> worker: stop the job (the worker answers with its result so far or pouwerror)."""

    command: ClassVar[str] = "pouwcancel"
    request_id: int

    def serialize(self) -> bytes:
        return ser_u64(self.request_id)

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwCancel:
        message = cls(r.u64("pouwcancel request id"))
        _end(r, cls.command)
        return message


@dataclass(frozen=True, slots=True)
class PouwReceiptMessage(Message):
    """A receipt and the job it answers, sent in answer to getdata(MSG_POUW_RECEIPT, receipt id).

    The job travels with the receipt because a receipt alone cannot be re-checked. Whether `spec`
    is the receipt's job (`Receipt.check_matches`) is the receiver's check, not the decoder's.
    """

    command: ClassVar[str] = "pouwrcpt"
    receipt: Receipt
    spec: JobSpec

    def serialize(self) -> bytes:
        return self.receipt.serialize() + self.spec.serialize()

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwReceiptMessage:
        message = cls(Receipt.read(r), JobSpec.read(r))
        _end(r, cls.command)
        return message


@dataclass(frozen=True, slots=True)
class PouwAttestationMessage(Message):
    """A full attestation, sent in answer to getdata(MSG_POUW_ATTESTATION)."""

    command: ClassVar[str] = "pouwatt"
    attestation: Attestation

    def serialize(self) -> bytes:
        return self.attestation.serialize()

    @classmethod
    def read(cls, r: ByteReader, ctx: DecodeContext) -> PouwAttestationMessage:
        message = cls(Attestation.read(r))
        _end(r, cls.command)
        return message


POUW_MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType({
    cls.command: cls for cls in (
        PouwCapsMessage, PouwJob, PouwToken, PouwResult, PouwErrorMessage, PouwCancel, PouwReceiptMessage,
        PouwAttestationMessage,
    )
})
assert set(POUW_MESSAGE_TYPES) == set(POUW_PAYLOAD_LIMITS)
assert all(len(command) <= 12 for command in POUW_MESSAGE_TYPES)


def split_text(text: str, limit: int = MAX_TOKEN_TEXT_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, never splitting a character."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8", "surrogatepass"))
        if size + n > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    if current:
        pieces.append("".join(current))
    return pieces
