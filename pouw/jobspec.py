"""The job a requester asks the grid to run: `JobSpec`, its inputs and sampling parameters.

Owns the canonical version-1 encoding of a job (exactly one byte string per job; the decoder
refuses anything else), its id (sha256d of that encoding, shown reversed like a txid) and its JSON
form. It must never judge policy beyond the format's hard caps: `pouw.limits` does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from aipgd.core.hashes import sha256
from aipgd.core.serialize import (
    ByteReader,
    DeserializationError,
    ser_i64,
    ser_u8,
    ser_u32,
    ser_u64,
    ser_var_bytes,
    ser_var_str,
    ser_vector,
)
from aipgd.core.transaction import MAX_MONEY
from pouw.codec import (
    HASH_SIZE,
    U32_MAX,
    U64_MAX,
    HashedObject,
    WireEnum,
    check_bytes,
    check_enum,
    check_identifier,
    check_int,
    check_pubkey,
    check_tuple,
    decode_exact,
    invalid_object,
    read_enum,
    read_identifier,
    read_optional_pubkey,
    read_text,
    text_bytes,
)
from pouw.errors import INVALID_FIELD, UNSUPPORTED, PouwError
from pouw.jsonform import JsonDict, JsonObject, as_enum, as_str, bad_json, fixed_to_json, hash_json
from pouw.limits import HARD_LIMITS, MAX_OBJECT_SIZE, PouwLimits, check_limit

JOBSPEC_VERSION = 1
TEMPERATURE_SCALE = 1000  # temperature in thousandths: 0.7 -> 700
TOP_P_SCALE = 1_000_000  # top_p in millionths: 0.95 -> 950000; 1.0 (1000000) disables it


class JobKind(WireEnum):
    LLM_COMPLETION = 1
    LLM_CHAT = 2
    EMBED = 3
    IMAGE_TXT2IMG = 4  # reserved: known to version 1, but no version-1 job may carry it

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", ".")

    @property
    def supported(self) -> bool:
        return self is not JobKind.IMAGE_TXT2IMG

    @property
    def is_llm(self) -> bool:
        return self in (JobKind.LLM_COMPLETION, JobKind.LLM_CHAT)


class Tier(WireEnum):
    FREE = 1
    PAID = 2


class ChatRole(WireEnum):
    SYSTEM = 1
    USER = 2
    ASSISTANT = 3
    TOOL = 4


def _sum_text_bytes(items: tuple[str, ...], field: str) -> int:
    return sum(len(text_bytes(item, field)) for item in items)


# --- model ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model by name and by the sha256 of its weights file (GGUF), shown in forward hex like
    `sha256sum` prints it."""

    name: str
    sha256: bytes

    def __post_init__(self) -> None:
        check_identifier(self.name, "model.name")
        check_bytes(self.sha256, (HASH_SIZE,), "model.sha256")
        self.check_limits(HARD_LIMITS)

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.name), limits.max_model_name_bytes, "max_model_name_bytes", "model.name",
                    "bytes")

    def serialize(self) -> bytes:
        return ser_var_str(self.name) + self.sha256

    @classmethod
    def read(cls, r: ByteReader) -> ModelRef:
        name = read_identifier(r, "model name", HARD_LIMITS.max_model_name_bytes)
        return cls(name, r.read(HASH_SIZE, "model sha256"))

    def to_json(self) -> JsonDict:
        return {"name": self.name, "sha256": self.sha256.hex()}

    @classmethod
    def from_json(cls, value: object, path: str = "model") -> ModelRef:
        o = JsonObject(value, path)
        ref = cls(o.text("name"), o.hex("sha256", (HASH_SIZE,)))
        o.finish()
        return ref


# --- sampling ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How tokens are drawn. Temperature and top_p are fixed-point so that encodings are exact.

    temperature_milli == 0 means greedy (argmax); top_k == 0 and top_p_micro == 1000000 disable
    those filters. The seed drives the sampler's random draws.
    """

    max_tokens: int
    temperature_milli: int = 0
    top_k: int = 0
    top_p_micro: int = TOP_P_SCALE
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_int(self.max_tokens, 1, U32_MAX, "sampling.max_tokens")
        check_int(self.temperature_milli, 0, U32_MAX, "sampling.temperature")
        check_int(self.top_k, 0, U32_MAX, "sampling.top_k")
        check_int(self.top_p_micro, 0, TOP_P_SCALE, "sampling.top_p")
        check_int(self.seed, 0, U64_MAX, "sampling.seed")
        for i, stop in enumerate(check_tuple(self.stop, "sampling.stop")):
            if not text_bytes(stop, f"sampling.stop[{i}]"):
                raise PouwError(INVALID_FIELD, "must not be empty", f"sampling.stop[{i}]")
        self.check_limits(HARD_LIMITS)

    @property
    def temperature(self) -> float:
        return self.temperature_milli / TEMPERATURE_SCALE

    @property
    def top_p(self) -> float:
        return self.top_p_micro / TOP_P_SCALE

    @property
    def greedy(self) -> bool:
        return self.temperature_milli == 0

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(self.max_tokens, limits.max_tokens, "max_tokens", "sampling.max_tokens")
        check_limit(self.temperature_milli, limits.max_temperature_milli, "max_temperature_milli",
                    "sampling.temperature", "thousandths")
        check_limit(len(self.stop), limits.max_stop_strings, "max_stop_strings", "sampling.stop", "strings")
        for i, stop in enumerate(self.stop):
            check_limit(len(stop.encode("utf-8")), limits.max_stop_bytes, "max_stop_bytes",
                        f"sampling.stop[{i}]", "bytes")

    def serialize(self) -> bytes:
        return b"".join((
            ser_u32(self.max_tokens), ser_u32(self.temperature_milli), ser_u32(self.top_k),
            ser_u32(self.top_p_micro), ser_u64(self.seed), ser_vector(self.stop, ser_var_str),
        ))

    @classmethod
    def read(cls, r: ByteReader) -> SamplingParams:
        max_tokens = r.u32("max_tokens")
        temperature = r.u32("temperature")
        top_k = r.u32("top_k")
        top_p = r.u32("top_p")
        seed = r.u64("seed")
        stop = r.vector(lambda rr: read_text(rr, "stop string", HARD_LIMITS.max_stop_bytes), "stop strings",
                        min_item_size=2, limit=HARD_LIMITS.max_stop_strings)
        return cls(max_tokens, temperature, top_k, top_p, seed, tuple(stop))

    def to_json(self) -> JsonDict:
        return {
            "max_tokens": self.max_tokens,
            "temperature": fixed_to_json(self.temperature_milli, TEMPERATURE_SCALE),
            "top_k": self.top_k,
            "top_p": fixed_to_json(self.top_p_micro, TOP_P_SCALE),
            "seed": self.seed,
            "stop": list(self.stop),
        }

    @classmethod
    def from_json(cls, value: object, path: str = "sampling") -> SamplingParams:
        o = JsonObject(value, path)
        stops = o.array("stop")
        params = cls(
            max_tokens=o.integer("max_tokens", 1, U32_MAX),
            temperature_milli=o.fixed("temperature", TEMPERATURE_SCALE, 0, U32_MAX),
            top_k=o.integer("top_k", 0, U32_MAX),
            top_p_micro=o.fixed("top_p", TOP_P_SCALE, 0, TOP_P_SCALE),
            seed=o.integer("seed", 0, U64_MAX),
            stop=tuple(as_str(s, f"{o.sub('stop')}[{i}]") for i, s in enumerate(stops)),
        )
        o.finish()
        return params


# --- inputs --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CompletionInput:
    """`llm.completion`: a raw prompt, tokenized by the model as given (no normalization)."""

    kind: ClassVar[JobKind] = JobKind.LLM_COMPLETION
    prompt: str

    def __post_init__(self) -> None:
        text_bytes(self.prompt, "input.prompt")
        self.check_limits(HARD_LIMITS)

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.prompt.encode("utf-8")), limits.max_prompt_bytes, "max_prompt_bytes",
                    "input.prompt", "bytes")

    def serialize(self) -> bytes:
        return ser_var_str(self.prompt)

    @classmethod
    def read(cls, r: ByteReader) -> CompletionInput:
        return cls(read_text(r, "prompt", HARD_LIMITS.max_prompt_bytes))

    def to_json(self) -> JsonDict:
        return {"prompt": self.prompt}

    @classmethod
    def from_json(cls, o: JsonObject) -> CompletionInput:
        return cls(o.text("prompt"))


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: ChatRole
    content: str

    def __post_init__(self) -> None:
        check_enum(self.role, ChatRole, "message.role")
        text_bytes(self.content, "message.content")

    def serialize(self) -> bytes:
        return ser_u8(self.role) + ser_var_str(self.content)

    @classmethod
    def read(cls, r: ByteReader) -> ChatMessage:
        role = read_enum(r, ChatRole, "message role")
        return cls(role, read_text(r, "message content", HARD_LIMITS.max_prompt_bytes))

    def to_json(self) -> JsonDict:
        return {"role": self.role.label, "content": self.content}

    @classmethod
    def from_json(cls, value: object, path: str) -> ChatMessage:
        o = JsonObject(value, path)
        message = cls(o.enum("role", ChatRole), o.text("content"))
        o.finish()
        return message


@dataclass(frozen=True, slots=True)
class ChatInput:
    """`llm.chat`: messages rendered by a chat template; an empty template name means the one the
    model's GGUF metadata carries."""

    kind: ClassVar[JobKind] = JobKind.LLM_CHAT
    messages: tuple[ChatMessage, ...]
    chat_template: str = ""

    def __post_init__(self) -> None:
        messages = check_tuple(self.messages, "input.messages")
        if not messages:
            raise PouwError(INVALID_FIELD, "must hold at least one message", "input.messages")
        for i, message in enumerate(messages):
            if not isinstance(message, ChatMessage):
                raise PouwError(INVALID_FIELD, "must be a ChatMessage", f"input.messages[{i}]")
        check_identifier(self.chat_template, "input.chat_template", allow_empty=True)
        self.check_limits(HARD_LIMITS)

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.messages), limits.max_messages, "max_messages", "input.messages", "messages")
        total = _sum_text_bytes(tuple(m.content for m in self.messages), "input.messages")
        check_limit(total, limits.max_prompt_bytes, "max_prompt_bytes", "input.messages", "bytes of content")
        check_limit(len(self.chat_template), limits.max_chat_template_bytes, "max_chat_template_bytes",
                    "input.chat_template", "bytes")

    def serialize(self) -> bytes:
        return ser_vector(self.messages, ChatMessage.serialize) + ser_var_str(self.chat_template)

    @classmethod
    def read(cls, r: ByteReader) -> ChatInput:
        messages = r.vector(ChatMessage.read, "messages", min_item_size=2, limit=HARD_LIMITS.max_messages)
        template = read_identifier(r, "chat template", HARD_LIMITS.max_chat_template_bytes, allow_empty=True)
        return cls(tuple(messages), template)

    def to_json(self) -> JsonDict:
        return {"messages": [m.to_json() for m in self.messages], "chat_template": self.chat_template}

    @classmethod
    def from_json(cls, o: JsonObject) -> ChatInput:
        items = o.array("messages")
        path = o.sub("messages")
        messages = tuple(ChatMessage.from_json(m, f"{path}[{i}]") for i, m in enumerate(items))
        return cls(messages, o.text("chat_template"))


@dataclass(frozen=True, slots=True)
class EmbedInput:
    """`embed`: one embedding vector per non-empty input string, in order."""

    kind: ClassVar[JobKind] = JobKind.EMBED
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        inputs = check_tuple(self.inputs, "input.inputs")
        if not inputs:
            raise PouwError(INVALID_FIELD, "must hold at least one input", "input.inputs")
        for i, text in enumerate(inputs):
            if not text_bytes(text, f"input.inputs[{i}]"):
                raise PouwError(INVALID_FIELD, "must not be empty", f"input.inputs[{i}]")
        self.check_limits(HARD_LIMITS)

    def check_limits(self, limits: PouwLimits) -> None:
        check_limit(len(self.inputs), limits.max_embed_inputs, "max_embed_inputs", "input.inputs", "inputs")
        total = _sum_text_bytes(self.inputs, "input.inputs")
        check_limit(total, limits.max_prompt_bytes, "max_prompt_bytes", "input.inputs", "bytes")

    def serialize(self) -> bytes:
        return ser_vector(self.inputs, ser_var_str)

    @classmethod
    def read(cls, r: ByteReader) -> EmbedInput:
        inputs = r.vector(lambda rr: read_text(rr, "embed input", HARD_LIMITS.max_prompt_bytes),
                          "embed inputs", min_item_size=2, limit=HARD_LIMITS.max_embed_inputs)
        return cls(tuple(inputs))

    def to_json(self) -> JsonDict:
        return {"inputs": list(self.inputs)}

    @classmethod
    def from_json(cls, o: JsonObject) -> EmbedInput:
        items = o.array("inputs")
        return cls(tuple(as_str(s, f"{o.sub('inputs')}[{i}]") for i, s in enumerate(items)))


JobInput = CompletionInput | ChatInput | EmbedInput
_INPUT_TYPES: dict[JobKind, type[CompletionInput] | type[ChatInput] | type[EmbedInput]] = {
    JobKind.LLM_COMPLETION: CompletionInput,
    JobKind.LLM_CHAT: ChatInput,
    JobKind.EMBED: EmbedInput,
}


def read_job_kind(r: ByteReader) -> JobKind:
    start = r.pos
    kind = read_enum(r, JobKind, "job kind")
    if not kind.supported:
        raise DeserializationError("job kind", start, f"{kind.label} is not supported by version 1")
    return kind


# --- the job -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class JobSpec(HashedObject):
    """One request for useful work. Its kind follows from its input; embed jobs have no sampling.

    requester is a 33-byte compressed public key, or empty for an anonymous free-tier request; a
    paid job always names one (it signs the receipt's acknowledgement). fee is in the smallest
    AIPG unit (1e-8), free jobs carry none. deadline is unix time; nonce tells equal requests apart.
    """

    model: ModelRef
    input: JobInput
    sampling: SamplingParams | None
    deadline: int
    nonce: int
    tier: Tier = Tier.FREE
    requester: bytes = b""
    fee: int = 0
    version: int = JOBSPEC_VERSION
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_int(self.version, 0, 0xFF, "version")
        if self.version != JOBSPEC_VERSION:
            raise PouwError(UNSUPPORTED, f"version {self.version} is not supported", "version")
        if not isinstance(self.model, ModelRef):
            raise PouwError(INVALID_FIELD, "must be a ModelRef", "model")
        if not isinstance(self.input, CompletionInput | ChatInput | EmbedInput):
            raise PouwError(INVALID_FIELD, "must be a CompletionInput, ChatInput or EmbedInput", "input")
        label = self.input.kind.label
        if self.input.kind.is_llm:
            if not isinstance(self.sampling, SamplingParams):
                raise PouwError(INVALID_FIELD, f"{label} jobs need SamplingParams", "sampling")
        elif self.sampling is not None:
            raise PouwError(INVALID_FIELD, f"{label} jobs take no sampling", "sampling")
        check_enum(self.tier, Tier, "tier")
        check_pubkey(self.requester, "requester", allow_empty=True)
        check_int(self.fee, 0, MAX_MONEY, "fee")
        check_int(self.deadline, 0, U32_MAX, "deadline")
        check_int(self.nonce, 0, U64_MAX, "nonce")
        if self.tier is Tier.PAID and not self.requester:
            raise PouwError(INVALID_FIELD, "a paid job must name its requester's public key", "requester")
        if self.tier is Tier.FREE and self.fee:
            raise PouwError(INVALID_FIELD, "a free job carries no fee", "fee")
        # The parts checked the format's hard caps when they were built.

    @property
    def kind(self) -> JobKind:
        return self.input.kind

    def check_limits(self, limits: PouwLimits) -> None:
        """Raise `PouwError("limit-exceeded")` for the first field over `limits` (see pouw.limits)."""
        self.model.check_limits(limits)
        self.input.check_limits(limits)
        if self.sampling is not None:
            self.sampling.check_limits(limits)
        check_limit(self.fee, limits.max_fee, "max_fee", "fee", "units")

    # --- encoding -------------------------------------------------------------------------------
    def serialize(self) -> bytes:
        cached = self._cache.get("raw")
        if cached is None:
            cached = self._cache["raw"] = b"".join((
                ser_u8(self.version), ser_u8(self.kind), self.model.serialize(), self.input.serialize(),
                self.sampling.serialize() if self.sampling is not None else b"",
                ser_u8(self.tier), ser_var_bytes(self.requester), ser_i64(self.fee),
                ser_u32(self.deadline), ser_u64(self.nonce),
            ))
        return cached

    @classmethod
    def read(cls, r: ByteReader) -> JobSpec:
        start = r.pos
        version = r.u8("jobspec version")
        if version != JOBSPEC_VERSION:
            raise DeserializationError("jobspec version", start, f"unsupported version {version}")
        kind = read_job_kind(r)
        try:
            model = ModelRef.read(r)
            job_input = _INPUT_TYPES[kind].read(r)
            sampling = SamplingParams.read(r) if kind.is_llm else None
            tier = read_enum(r, Tier, "tier")
            requester = read_optional_pubkey(r, "requester")
            fee = r.i64("fee")
            deadline = r.u32("deadline")
            nonce = r.u64("nonce")
            return cls(model, job_input, sampling, deadline, nonce, tier, requester, fee, version)
        except PouwError as exc:
            raise invalid_object("jobspec", start, exc) from None

    @classmethod
    def from_bytes(cls, data: bytes) -> JobSpec:
        return decode_exact(cls.read, data, "jobspec", MAX_OBJECT_SIZE)

    # --- identity -------------------------------------------------------------------------------
    def hashed_bytes(self) -> bytes:
        return self.serialize()

    @property
    def input_hash(self) -> bytes:
        """sha256 of the kind byte and the input's canonical encoding; receipts commit to it."""
        return sha256(ser_u8(self.kind) + self.input.serialize())

    # --- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> JsonDict:
        return {
            "id": hash_json(self.id),
            "version": self.version,
            "kind": self.kind.label,
            "model": self.model.to_json(),
            "input": self.input.to_json(),
            "sampling": self.sampling.to_json() if self.sampling is not None else None,
            "tier": self.tier.label,
            "requester": self.requester.hex(),
            "fee": self.fee,
            "deadline": self.deadline,
            "nonce": self.nonce,
        }

    @classmethod
    def from_json(cls, value: object) -> JobSpec:
        """The JSON form back to a JobSpec; an "id" member, if present, must match."""
        o = JsonObject(value)
        version = o.integer("version", 0, 0xFF)
        if version != JOBSPEC_VERSION:
            raise bad_json("version", f"unsupported version {version}")
        kind = as_enum(o.get("kind"), "kind", JobKind)
        if not kind.supported:
            raise PouwError(UNSUPPORTED, f"{kind.label} is not supported by version 1", "kind")
        model = ModelRef.from_json(o.get("model"))
        io = o.obj("input")
        job_input: Any = _INPUT_TYPES[kind].from_json(io)
        io.finish()
        raw_sampling = o.get("sampling")
        sampling = SamplingParams.from_json(raw_sampling) if raw_sampling is not None else None
        spec = cls(
            model=model, input=job_input, sampling=sampling,
            deadline=o.integer("deadline", 0, U32_MAX), nonce=o.integer("nonce", 0, U64_MAX),
            tier=o.enum("tier", Tier), requester=o.hex("requester", (0, 33)),
            fee=o.integer("fee", 0, MAX_MONEY), version=version,
        )
        o.check_id("id", spec.id)
        o.finish()
        return spec
