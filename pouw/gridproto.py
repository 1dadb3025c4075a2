"""Frames of the AIPG grid's worker WebSocket (`/v1/workers/ws`), as today's grid workers speak them.

Owns the wire shapes only: the registration a worker sends first, the frames the node sends (`ready`,
`job`, `ping`, `no_job`, `cancel`, `ack`, `error`), bounded parsers for the frames a worker sends
(`token`, `done`, `error`, `pong`), `GridJob` (what the node's router hands over) and the check of a
worker's EIP-191 receipt. It must never do I/O; pouw/gridws.py runs the sessions.
Sources: grid-text-worker inference_worker/ws_client.py, grid-core grid_api/routers/worker_ws.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from string import hexdigits
from typing import Any

from pouw.errors import INVALID_FIELD, LIMIT_EXCEEDED, PouwError
from pouw.gridreceipt import recover_grid_signer, verify_grid_receipt

GRID_WS_PATH = "/v1/workers/ws"
OPENAI_CHAT = "openai-chat"
# The values grid-core keeps from a registration; anything else is dropped, as it does.
API_FORMATS = (OPENAI_CHAT, "openai-responses", "anthropic")
MODALITIES = ("text", "image", "video")
JOB_TYPES = ("text", "image", "video", "audio", "3d")
CHAT_ROLES = ("system", "user", "assistant")

# Close codes. 4001/4003/1012 are grid-core's; 4002 and the 10xx reasons are this node's choices.
CLOSE_GOING_AWAY = 1001  # the node shuts down
CLOSE_POLICY = 1008  # registration timeout, too many malformed frames, keepalive lost
CLOSE_TOO_BIG = 1009  # a frame over the size limit (aiohttp closes with it)
CLOSE_INTERNAL = 1011  # the node failed, or a job was not finished after a cancel
CLOSE_REPLACED = 1012  # the same worker connected again; the older socket goes
CLOSE_TRY_LATER = 1013  # the node holds its maximum of grid sessions
CLOSE_AUTH = 4001  # missing apikey or name, or an API key the node does not know
CLOSE_BAD_REGISTRATION = 4002  # a registration that is not JSON or has wrong types
CLOSE_FORBIDDEN = 4003  # a known key that may not serve, a name of another account, no text jobs

GRID_RECEIPT_SCHEME = "aipg-receipt:v1"  # `done.receipt` of grid-text-worker
GRID_LEGACY_SIG_SCHEME = "aipg-job"  # `done.worker_sig`, the form grid-core's signing.py verifies

_HEX = frozenset(hexdigits)
_JOB_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_INT = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class GridFrameLimits:
    """Caps on what a grid worker may send. A frame over `max_frame_bytes` closes the socket (1009)."""

    # A `done` frame carries the whole output (and reasoning) as text: 32768 tokens of a worker's
    # default GRID_MAX_LENGTH stay far below this. Core: MAX_PROTOCOL_MESSAGE_LENGTH is 4 MB too.
    max_frame_bytes: int = 4_000_000
    max_apikey_chars: int = 512
    max_name_chars: int = 128
    max_models: int = 32
    max_model_chars: int = 256
    max_list_items: int = 16  # api_formats, modalities, job_types
    max_agent_chars: int = 256
    max_message_chars: int = 4096  # a worker's error message
    max_id_chars: int = 128
    max_context_tokens: int = 1 << 24


DEFAULT_FRAME_LIMITS = GridFrameLimits()


class GridFrameError(ValueError):
    """A frame that breaks the protocol. `reason` is short and safe to send back in an error frame."""

    def __init__(self, reason: str, *, close_code: int = CLOSE_BAD_REGISTRATION, job_id: str | None = None,
                 frame_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code  # used when the frame was the registration
        self.job_id = job_id  # set when a `done`/`error` frame named its job before breaking a rule
        self.frame_type = frame_type


# ---------------------------------------------------------------------------------------------
# JSON decoding with limits


def _reject_constant(name: str) -> Any:
    raise GridFrameError(f"JSON constant {name} is not allowed")


def decode_json_object(data: str | bytes, limits: GridFrameLimits = DEFAULT_FRAME_LIMITS) -> dict[str, Any]:
    """The JSON object in one frame, size-checked first. NaN/Infinity and deep nesting are refused."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_frame_bytes:
        raise GridFrameError(f"frame of {size} bytes exceeds {limits.max_frame_bytes}",
                             close_code=CLOSE_TOO_BIG)
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except GridFrameError:
        raise
    except (ValueError, RecursionError) as exc:
        raise GridFrameError(f"frame is not JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise GridFrameError(f"frame is a JSON {type(value).__name__}, not an object")
    return value


def _str(obj: dict[str, Any], key: str, max_chars: int, *, default: str | None = None,
         required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise GridFrameError(f"{key}: missing")
        return "" if default is None else default
    if not isinstance(value, str):
        raise GridFrameError(f"{key}: expected a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise GridFrameError(f"{key}: longer than {max_chars} characters")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise GridFrameError(f"{key}: expected true or false, got {type(value).__name__}")
    return value


def _int(obj: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise GridFrameError(f"{key}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise GridFrameError(f"{key}: {value} is outside {lo}..{hi}")
    return value


def _str_list(obj: dict[str, Any], key: str, max_items: int, max_chars: int) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise GridFrameError(f"{key}: expected a list, got {type(value).__name__}")
    if len(value) > max_items:
        raise GridFrameError(f"{key}: more than {max_items} entries")
    for item in value:
        if not isinstance(item, str):
            raise GridFrameError(f"{key}: entries must be strings, got {type(item).__name__}")
        if not item or len(item) > max_chars:
            raise GridFrameError(f"{key}: entries must have 1..{max_chars} characters")
    return tuple(value)


def _known(values: tuple[str, ...] | None, allowed: tuple[str, ...],
           default: tuple[str, ...]) -> tuple[str, ...]:
    # grid-core: unknown values are dropped and an empty result falls back to the default.
    kept = tuple(dict.fromkeys(v for v in values or () if v in allowed))
    return kept or default


def is_eth_address(value: str) -> bool:
    return len(value) == 42 and value[:2] in ("0x", "0X") and _HEX.issuperset(value[2:])


def check_job_id(job_id: str, max_chars: int = DEFAULT_FRAME_LIMITS.max_id_chars) -> str:
    """A job id as the receipt text embeds it: no ':' (the field separator), no spaces or controls."""
    if not isinstance(job_id, str) or not 1 <= len(job_id) <= max_chars \
            or not _JOB_ID_CHARS.issuperset(job_id):
        raise PouwError(INVALID_FIELD, f"must be 1..{max_chars} characters of [A-Za-z0-9._-]", "job_id")
    return job_id


# ---------------------------------------------------------------------------------------------
# Registration (the worker's first frame; it has no "type")


@dataclass(frozen=True, slots=True)
class GridRegistration:
    apikey: str = field(repr=False)
    name: str
    models: tuple[str, ...]
    max_length: int  # the worker's default output budget (GRID_MAX_LENGTH), in tokens
    max_context_length: int  # the backend's context window, in tokens
    api_formats: tuple[str, ...]
    modalities: tuple[str, ...]
    job_types: tuple[str, ...]
    signer_address: str  # the worker's receipt key (EIP-55 text as sent), or "" when it has none
    bridge_agent: str
    has_identity_proof: bool  # a `worker_identity` delegation proof was sent (not checked here)


def parse_registration(data: str | bytes, limits: GridFrameLimits = DEFAULT_FRAME_LIMITS) -> GridRegistration:
    """The registration frame, with grid-core's defaults for what older workers leave out."""
    obj = decode_json_object(data, limits)
    if "type" in obj:
        raise GridFrameError("the first frame must be the registration, not a typed frame")
    apikey = _str(obj, "apikey", limits.max_apikey_chars)
    name = _str(obj, "name", limits.max_name_chars)
    if not apikey or not name:
        raise GridFrameError("Missing apikey or name", close_code=CLOSE_AUTH)  # grid-core's words
    if not name.isprintable():
        raise GridFrameError("name: must be printable text")
    models = _str_list(obj, "models", limits.max_models, limits.max_model_chars)
    if not models:
        raise GridFrameError("models: at least one model is required")
    max_length = _int(obj, "max_length", 512, 1, limits.max_context_tokens)
    max_context = _int(obj, "max_context_length", 2048, 1, limits.max_context_tokens)
    formats = _str_list(obj, "api_formats", limits.max_list_items, 64)
    modalities = _str_list(obj, "modalities", limits.max_list_items, 64)
    job_types = _str_list(obj, "job_types", limits.max_list_items, 64)
    if job_types is None and obj.get("worker_type") is not None:
        job_types = (_str(obj, "worker_type", 64),)  # grid-core's legacy single-type field
    signer = _str(obj, "signer_address", 64)
    if signer and not is_eth_address(signer):
        raise GridFrameError("signer_address: not a 0x-prefixed 20-byte hex address")
    identity = obj.get("worker_identity")
    if identity is not None and not isinstance(identity, dict):
        raise GridFrameError("worker_identity: expected an object")
    return GridRegistration(
        apikey=apikey,
        name=name,
        models=tuple(dict.fromkeys(models)),
        max_length=max_length,
        max_context_length=max_context,
        api_formats=_known(formats, API_FORMATS, (OPENAI_CHAT,)),
        modalities=_known(modalities, MODALITIES, ("text",)),
        job_types=_known(job_types, JOB_TYPES, ("text",)),
        signer_address=signer,
        bridge_agent=_str(obj, "bridge_agent", limits.max_agent_chars, default="grid-ws"),
        has_identity_proof=identity is not None,
    )


# ---------------------------------------------------------------------------------------------
# Frames a worker sends after `ready`


@dataclass(frozen=True, slots=True)
class GridUsage:
    """The backend's usage as the worker reports it (OpenAI field names); a field that is absent or not
    a non-negative integer reads None. Self-reported: never a basis for payment on its own."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True, slots=True)
class ReceiptClaim:
    """`done.receipt` as sent: {"signer", "sig", "result_sha256"}; or a bare `worker_sig` (signer "")."""

    scheme: str
    signer: str
    signature: str
    result_sha256: str


@dataclass(frozen=True, slots=True)
class TokenFrame:
    job_id: str
    content: str
    reasoning: str
    has_tool_calls: bool
    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class DoneFrame:
    job_id: str
    full_text: str
    full_reasoning: str
    finish_reason: str | None
    cancelled: bool
    usage: GridUsage | None
    receipt: ReceiptClaim | None
    receipt_malformed: bool  # a receipt was sent but its shape is wrong


@dataclass(frozen=True, slots=True)
class WorkerErrorFrame:
    job_id: str | None
    message: str
    client_error: bool  # the request itself is at fault: retrying elsewhere fails the same way


@dataclass(frozen=True, slots=True)
class PongFrame:
    pass


WorkerFrame = TokenFrame | DoneFrame | WorkerErrorFrame | PongFrame


def _usage(value: Any) -> GridUsage | None:
    if not isinstance(value, dict):
        return None

    def count(key: str) -> int | None:
        n = value.get(key)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_INT:
            return None
        return n

    return GridUsage(count("prompt_tokens"), count("completion_tokens"), count("total_tokens"))


def _receipt(obj: dict[str, Any]) -> tuple[ReceiptClaim | None, bool]:
    raw = obj.get("receipt")
    if raw is not None:
        if not isinstance(raw, dict):
            return None, True
        parts = [raw.get(key) for key in ("signer", "sig", "result_sha256")]
        if not all(isinstance(p, str) and 0 < len(p) <= 200 for p in parts):
            return None, True
        signer, sig, digest = (str(p) for p in parts)
        return ReceiptClaim(GRID_RECEIPT_SCHEME, signer, sig, digest), False
    sig_only = obj.get("worker_sig")
    if sig_only is not None:
        if not isinstance(sig_only, str) or not 0 < len(sig_only) <= 200:
            return None, True
        return ReceiptClaim(GRID_LEGACY_SIG_SCHEME, "", sig_only, ""), False
    return None, False


def _parse_token(obj: dict[str, Any], job_id: str) -> TokenFrame:
    finish = obj.get("finish_reason")
    if finish is not None and (not isinstance(finish, str) or len(finish) > 64):
        raise GridFrameError("finish_reason: expected a short string or null")
    delta = obj.get("delta")
    if delta is not None:
        if not isinstance(delta, dict):
            raise GridFrameError(f"delta: expected an object, got {type(delta).__name__}")
        content = _str(delta, "content", 1 << 30)
        reasoning = _str(delta, "reasoning_content", 1 << 30) or _str(delta, "reasoning", 1 << 30)
        tool_calls = delta.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise GridFrameError("delta.tool_calls: expected a list")
        return TokenFrame(job_id, content, reasoning, bool(tool_calls), finish)
    # grid-core still reads the older shape: {"text": str, "reasoning": bool}.
    text = _str(obj, "text", 1 << 30)
    is_reasoning = _bool(obj, "reasoning")
    return TokenFrame(job_id, "" if is_reasoning else text, text if is_reasoning else "", False, finish)


def parse_worker_frame(data: str | bytes, limits: GridFrameLimits = DEFAULT_FRAME_LIMITS) -> WorkerFrame:
    """One frame a registered worker sent. Raises `GridFrameError` naming what is wrong."""
    obj = decode_json_object(data, limits)
    frame_type = obj.get("type")
    if not isinstance(frame_type, str):
        raise GridFrameError("type: missing or not a string")
    if frame_type == "pong":
        return PongFrame()
    if frame_type not in ("token", "done", "error"):
        if frame_type == "raw":
            raise GridFrameError("type 'raw': this node dispatches openai-chat jobs only",
                                 frame_type=frame_type)
        raise GridFrameError(f"unknown frame type {frame_type[:32]!r}", frame_type=frame_type)
    if frame_type == "error":
        job_id = None if obj.get("id") is None else _str(obj, "id", limits.max_id_chars)
        try:
            message = _str(obj, "message", limits.max_message_chars, default="Worker error")
            return WorkerErrorFrame(job_id, message, _bool(obj, "client_error"))
        except GridFrameError as exc:
            raise GridFrameError(f"error: {exc.reason}", job_id=job_id, frame_type=frame_type) from None
    job_id = _str(obj, "id", limits.max_id_chars, required=True)
    try:
        if frame_type == "token":
            return _parse_token(obj, job_id)
        finish = obj.get("finish_reason")
        if finish is not None and (not isinstance(finish, str) or len(finish) > 64):
            raise GridFrameError("finish_reason: expected a short string or null")
        receipt, malformed = _receipt(obj)
        return DoneFrame(
            job_id=job_id,
            full_text=_str(obj, "full_text", 1 << 30),
            full_reasoning=_str(obj, "full_reasoning", 1 << 30),
            finish_reason=finish,
            cancelled=_bool(obj, "cancelled"),
            usage=_usage(obj.get("usage")),
            receipt=receipt,
            receipt_malformed=malformed,
        )
    except GridFrameError as exc:
        raise GridFrameError(f"{frame_type}: {exc.reason}", job_id=job_id, frame_type=frame_type) from None


# ---------------------------------------------------------------------------------------------
# Frames the node sends


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def ready_frame(worker_id: str) -> str:
    return _dump({"type": "ready", "worker_id": worker_id})


def ping_frame() -> str:
    return _dump({"type": "ping"})


def no_job_frame() -> str:
    return _dump({"type": "no_job"})


def cancel_frame(job_id: str) -> str:
    return _dump({"type": "cancel", "id": job_id})


def ack_frame(job_id: str, den: float = 0.0) -> str:
    return _dump({"type": "ack", "id": job_id, "den": den})


def error_frame(message: str) -> str:
    return _dump({"type": "error", "message": message})


@dataclass(frozen=True, slots=True)
class GridMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class GridJob:
    """A text job for a grid worker. Exactly one of `prompt` (sent as one user message: grid workers
    only call their backend's chat endpoint, so its chat template applies) and `messages`."""

    job_id: str
    model: str  # a name from the worker's registered `models`
    max_tokens: int
    prompt: str | None = None
    messages: tuple[GridMessage, ...] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None  # passed through; OpenAI servers that do not know it may ignore it
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        if not isinstance(self.model, str) or not 0 < len(self.model) <= DEFAULT_FRAME_LIMITS.max_model_chars:
            raise PouwError(INVALID_FIELD, "must be a model name of 1..256 characters", "model")
        if (self.prompt is None) == (self.messages is None):
            raise PouwError(INVALID_FIELD, "exactly one of prompt and messages is required", "prompt")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise PouwError(INVALID_FIELD, "must be a string", "prompt")
        if self.messages is not None:
            if not self.messages:
                raise PouwError(INVALID_FIELD, "must hold at least one message", "messages")
            for i, message in enumerate(self.messages):
                if not isinstance(message, GridMessage) or message.role not in CHAT_ROLES \
                        or not isinstance(message.content, str):
                    raise PouwError(INVALID_FIELD, f"role must be one of {CHAT_ROLES} and content a string",
                                    f"messages[{i}]")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) \
                or not 1 <= self.max_tokens <= DEFAULT_FRAME_LIMITS.max_context_tokens:
            raise PouwError(LIMIT_EXCEEDED, "must be a positive integer", "max_tokens")
        ranges = (("temperature", self.temperature, 0.0, 2.0), ("top_p", self.top_p, 0.0, 1.0))
        for name, value, lo, hi in ranges:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise PouwError(INVALID_FIELD, f"must be a number in {lo}..{hi}", name)
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or not 0 <= self.top_k <= _MAX_INT):
            raise PouwError(INVALID_FIELD, "must be a non-negative integer", "top_k")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < (1 << 63)):
            raise PouwError(INVALID_FIELD, "must be an integer in 0..2**63-1", "seed")
        if len(self.stop) > 16 or not all(isinstance(s, str) and s for s in self.stop):
            raise PouwError(INVALID_FIELD, "at most 16 non-empty strings", "stop")

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [{"role": m.role, "content": m.content} for m in self.messages]
        assert self.prompt is not None
        return [{"role": "user", "content": self.prompt}]

    def flat_prompt(self) -> str:
        """The one-string prompt of the `payload.prompt` fallback field (for workers that predate
        `payload.request`), role-labelled and ending where the assistant's turn begins."""
        if self.prompt is not None:
            return self.prompt
        labels = {"system": "", "user": "User: ", "assistant": "Assistant: "}
        return "".join(f"{labels[m['role']]}{m['content']}\n" for m in self.chat_messages()) + "Assistant:"

    def payload(self) -> dict[str, Any]:
        """`job.payload` as grid-core builds it for /v1/chat/completions: the OpenAI request the worker
        forwards to its backend (it overrides `model` and `stream` only), plus the fallback fields."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": self.chat_messages(),
            "max_tokens": self.max_tokens,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "stream": True,
        }
        if self.top_k:
            request["top_k"] = self.top_k
        if self.seed is not None:
            request["seed"] = self.seed
        if self.stop:
            request["stop"] = list(self.stop)
        return {
            "request": request,
            "api_format": OPENAI_CHAT,
            "prompt": self.flat_prompt(),
            "max_length": self.max_tokens,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
        }


def job_frame(job: GridJob) -> str:
    return _dump({"type": "job", "id": job.job_id, "model": job.model, "payload": job.payload()})


# ---------------------------------------------------------------------------------------------
# Receipts


class ReceiptStatus(StrEnum):
    VALID = "valid"
    MISSING = "missing"  # the worker sent none (no eth-account installed, or signing failed)
    MALFORMED = "malformed"  # a receipt of the wrong shape
    HASH_MISMATCH = "hash-mismatch"  # result_sha256 is not sha256(full_text)
    STREAM_MISMATCH = "stream-mismatch"  # full_text differs from the tokens the worker streamed
    NO_SIGNER = "no-signer"  # the worker registered no signer_address to check against
    WRONG_SIGNER = "wrong-signer"  # the receipt names another signer than the registered one
    BAD_SIGNATURE = "bad-signature"  # the signature does not recover to the registered signer


@dataclass(frozen=True, slots=True)
class GridReceipt:
    scheme: str
    signer: str  # the registered signer_address the receipt was checked against ("" when none)
    signature: str
    result_sha256: str  # sha256(full_text), lowercase hex, as this node computed it
    status: ReceiptStatus

    @property
    def verified(self) -> bool:
        return self.status is ReceiptStatus.VALID


def result_sha256(full_text: str) -> str:
    return hashlib.sha256(full_text.encode("utf-8", "surrogatepass")).hexdigest()


def check_grid_receipt(job_id: str, full_text: str, streamed_text: str | None, claim: ReceiptClaim | None,
                       malformed: bool, registered_signer: str) -> GridReceipt:
    """Judge a worker's receipt for `full_text`. `streamed_text` is the concatenated token content
    (None when the worker streamed no content). Never raises: a receipt that fails is a status."""
    digest = result_sha256(full_text)
    signer = registered_signer if is_eth_address(registered_signer) else ""

    def verdict(status: ReceiptStatus, scheme: str = GRID_RECEIPT_SCHEME, signature: str = "") -> GridReceipt:
        return GridReceipt(scheme, signer, signature, digest, status)

    if malformed:
        return verdict(ReceiptStatus.MALFORMED)
    if claim is None:
        return verdict(ReceiptStatus.MISSING)
    mark = claim.scheme, claim.signature
    if claim.scheme == GRID_RECEIPT_SCHEME and claim.result_sha256.lower() != digest:
        return verdict(ReceiptStatus.HASH_MISMATCH, *mark)
    if streamed_text is not None and streamed_text != full_text:
        return verdict(ReceiptStatus.STREAM_MISMATCH, *mark)
    if not signer:
        return verdict(ReceiptStatus.NO_SIGNER, *mark)
    if claim.scheme == GRID_RECEIPT_SCHEME:
        if claim.signer.lower() != signer.lower():
            return verdict(ReceiptStatus.WRONG_SIGNER, *mark)
        ok = verify_grid_receipt(job_id, full_text, claim.signature, signer)
    else:
        # grid-core signing.py: personal_sign over "aipg-job:{job_id}:{sha256 hex of the output}".
        recovered = recover_grid_signer(f"{GRID_LEGACY_SIG_SCHEME}:{job_id}:{digest}", claim.signature)
        ok = recovered is not None and recovered.lower() == signer.lower()
    return verdict(ReceiptStatus.VALID if ok else ReceiptStatus.BAD_SIGNATURE, *mark)
