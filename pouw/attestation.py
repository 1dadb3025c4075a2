"""A validator's signed verdict on one receipt: `Attestation`.

Owns the canonical version-1 encoding and the id (sha256d of everything but the signature). The
beacon records the unpredictable value (a later block hash) that picked the receipt and its checked
positions, so anyone can confirm the sample was not chosen by the validator. It must never judge
receipts: the verifier does, and pouw.signing signs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aipgd.core.serialize import ByteReader, DeserializationError, ser_u8, ser_u32, ser_var_bytes
from pouw.codec import (
    HASH_SIZE,
    PUBKEY_SIZE,
    SIGNATURE_SIZE,
    U32_MAX,
    HashedObject,
    WireEnum,
    check_bytes,
    check_enum,
    check_int,
    check_pubkey,
    check_signature_field,
    decode_exact,
    invalid_object,
    read_enum,
    read_pubkey,
    read_signature,
)
from pouw.errors import UNSUPPORTED, PouwError
from pouw.jsonform import JsonDict, JsonObject, bad_json, fixed_to_json, hash_json

ATTESTATION_VERSION = 1
SCORE_SCALE = 1_000_000  # score in millionths: 1.0 -> 1000000
_SIZE = 1 + 32 + 33 + 1 + 4 + 1 + 4 + 32 + 4 + 1 + SIGNATURE_SIZE  # the largest encoding


class Verdict(WireEnum):
    VALID = 1
    INVALID = 2
    INCONCLUSIVE = 3


class CheckMethod(WireEnum):
    TEACHER_FORCED = 1  # one forward pass over prompt + claimed output, tokens checked against the sampler
    RERUN = 2  # the job run again with the same seed (embeddings, images), outputs compared
    KNOWN_ANSWER = 3  # a planted job whose answer the network knows


@dataclass(frozen=True, slots=True)
class Attestation(HashedObject):
    """Validator `validator_pubkey` checked receipt `receipt_id` by `method` at
    `checked_positions` positions chosen from `beacon`, and found `verdict` with `score` (the
    fraction of checks passed, in millionths) at unix time `time`."""

    receipt_id: bytes
    validator_pubkey: bytes
    verdict: Verdict
    score_micro: int
    method: CheckMethod
    checked_positions: int
    beacon: bytes
    time: int
    signature: bytes = b""
    version: int = ATTESTATION_VERSION
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_int(self.version, 0, 0xFF, "version")
        if self.version != ATTESTATION_VERSION:
            raise PouwError(UNSUPPORTED, f"version {self.version} is not supported", "version")
        check_bytes(self.receipt_id, (HASH_SIZE,), "receipt_id")
        check_pubkey(self.validator_pubkey, "validator_pubkey")
        check_enum(self.verdict, Verdict, "verdict")
        check_int(self.score_micro, 0, SCORE_SCALE, "score")
        check_enum(self.method, CheckMethod, "method")
        check_int(self.checked_positions, 0, U32_MAX, "checked_positions")
        check_bytes(self.beacon, (HASH_SIZE,), "beacon")
        check_int(self.time, 0, U32_MAX, "time")
        check_signature_field(self.signature, "signature")

    @property
    def score(self) -> float:
        return self.score_micro / SCORE_SCALE

    # --- encoding -------------------------------------------------------------------------------
    def serialize_unsigned(self) -> bytes:
        return b"".join((
            ser_u8(self.version), self.receipt_id, self.validator_pubkey, ser_u8(self.verdict),
            ser_u32(self.score_micro), ser_u8(self.method), ser_u32(self.checked_positions), self.beacon,
            ser_u32(self.time),
        ))

    def serialize(self) -> bytes:
        return self.serialize_unsigned() + ser_var_bytes(self.signature)

    @classmethod
    def read(cls, r: ByteReader) -> Attestation:
        start = r.pos
        version = r.u8("attestation version")
        if version != ATTESTATION_VERSION:
            raise DeserializationError("attestation version", start, f"unsupported version {version}")
        try:
            receipt_id = r.read(HASH_SIZE, "receipt id")
            validator = read_pubkey(r, "validator pubkey")
            verdict = read_enum(r, Verdict, "verdict")
            score = r.u32("score")
            method = read_enum(r, CheckMethod, "method")
            positions = r.u32("checked positions")
            beacon = r.read(HASH_SIZE, "beacon")
            time = r.u32("time")
            signature = read_signature(r, "validator signature")
            return cls(receipt_id, validator, verdict, score, method, positions, beacon, time, signature,
                       version)
        except PouwError as exc:
            raise invalid_object("attestation", start, exc) from None

    @classmethod
    def from_bytes(cls, data: bytes) -> Attestation:
        return decode_exact(cls.read, data, "attestation", _SIZE)

    # --- identity -------------------------------------------------------------------------------
    def hashed_bytes(self) -> bytes:
        return self.serialize_unsigned()

    def unsigned(self) -> Attestation:
        return replace(self, signature=b"")

    # --- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> JsonDict:
        return {
            "id": hash_json(self.id),
            "version": self.version,
            "receipt_id": hash_json(self.receipt_id),
            "validator_pubkey": self.validator_pubkey.hex(),
            "verdict": self.verdict.label,
            "score": fixed_to_json(self.score_micro, SCORE_SCALE),
            "method": self.method.label,
            "checked_positions": self.checked_positions,
            "beacon": hash_json(self.beacon),
            "time": self.time,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, value: object) -> Attestation:
        o = JsonObject(value)
        version = o.integer("version", 0, 0xFF)
        if version != ATTESTATION_VERSION:
            raise bad_json("version", f"unsupported version {version}")
        attestation = cls(
            receipt_id=o.hash_hex("receipt_id"),
            validator_pubkey=o.hex("validator_pubkey", (PUBKEY_SIZE,)),
            verdict=o.enum("verdict", Verdict),
            score_micro=o.fixed("score", SCORE_SCALE, 0, SCORE_SCALE),
            method=o.enum("method", CheckMethod),
            checked_positions=o.integer("checked_positions", 0, U32_MAX),
            beacon=o.hash_hex("beacon"),
            time=o.integer("time", 0, U32_MAX),
            signature=o.hex("signature", (0, SIGNATURE_SIZE)),
            version=version,
        )
        o.check_id("id", attestation.id)
        o.finish()
        return attestation
