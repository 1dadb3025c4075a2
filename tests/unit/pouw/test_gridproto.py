"""The grid worker WebSocket frames: the registration and frames today's grid workers send, the frames
the node sends, GridJob, and the EIP-191 receipt check (against a signer written here, independently
of pouw.gridreceipt, with coincurve and keccak)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from coincurve import PrivateKey
from Crypto.Hash import keccak

from pouw.errors import PouwError
from pouw.gridproto import (
    CLOSE_AUTH,
    CLOSE_BAD_REGISTRATION,
    CLOSE_TOO_BIG,
    GRID_LEGACY_SIG_SCHEME,
    DoneFrame,
    GridFrameError,
    GridFrameLimits,
    GridJob,
    GridMessage,
    PongFrame,
    ReceiptClaim,
    ReceiptStatus,
    TokenFrame,
    WorkerErrorFrame,
    ack_frame,
    cancel_frame,
    check_grid_receipt,
    error_frame,
    job_frame,
    parse_registration,
    parse_worker_frame,
    ping_frame,
    ready_frame,
    result_sha256,
)


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


class EthKey:
    """An Ethereum key as eth_account uses it: address = keccak(pubkey)[12:], personal_sign = EIP-191."""

    def __init__(self, secret: bytes) -> None:
        self.key = PrivateKey(secret)
        self.address = "0x" + _keccak(self.key.public_key.format(compressed=False)[1:])[-20:].hex()

    def personal_sign(self, text: str) -> str:
        data = text.encode("utf-8")
        digest = _keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
        sig = self.key.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes((sig[64] + 27,))).hex()

    def receipt(self, job_id: str, full_text: str) -> dict[str, str]:
        """grid-text-worker's `done.receipt`."""
        digest = hashlib.sha256(full_text.encode()).hexdigest()
        return {"signer": self.address, "sig": self.personal_sign(f"aipg-receipt:v1:{job_id}:{digest}"),
                "result_sha256": digest}


# eth_account's documented example key and its address (a known answer for the derivation above).
DOC_KEY = EthKey(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
OTHER_KEY = EthKey(bytes(31) + b"\x07")

# The registration grid-text-worker sends (ws_client.py connect()), field for field.
WORKER_REGISTRATION: dict[str, Any] = {
    "apikey": "grid-key-1",
    "name": "rig-a",
    "models": ["grid/tiny-llama"],
    "max_length": 32768,
    "max_context_length": 131072,
    "api_formats": ["openai-chat", "openai-responses"],
    "modalities": ["text"],
    "signer_address": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
    "bridge_agent": "Grid Inference Worker:2.1.0:streaming",
}


def test_doc_key_address_known_answer() -> None:
    assert DOC_KEY.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".lower()


# -- registration ---------------------------------------------------------------------------------


def test_registration_of_the_public_worker() -> None:
    reg = parse_registration(json.dumps(WORKER_REGISTRATION))
    assert reg.apikey == "grid-key-1"
    assert reg.name == "rig-a"
    assert reg.models == ("grid/tiny-llama",)
    assert (reg.max_length, reg.max_context_length) == (32768, 131072)
    assert reg.api_formats == ("openai-chat", "openai-responses")
    assert reg.modalities == ("text",)
    assert reg.job_types == ("text",)
    assert reg.signer_address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert reg.bridge_agent == "Grid Inference Worker:2.1.0:streaming"
    assert not reg.has_identity_proof
    assert "grid-key-1" not in repr(reg)


def test_registration_defaults_and_filters_like_grid_core() -> None:
    minimal = {"apikey": "k", "name": "n", "models": ["m"], "api_formats": ["anthropic", "soap"],
               "modalities": ["smell"], "worker_type": "text", "signer_address": "", "worker_identity": {}}
    reg = parse_registration(json.dumps(minimal).encode())
    assert (reg.max_length, reg.max_context_length) == (512, 2048)
    assert reg.api_formats == ("anthropic",)
    assert reg.modalities == ("text",)
    assert reg.job_types == ("text",)
    assert reg.signer_address == ""
    assert reg.bridge_agent == "grid-ws"
    assert reg.has_identity_proof


@pytest.mark.parametrize(("change", "code", "words"), [
    ({"apikey": ""}, CLOSE_AUTH, "Missing apikey or name"),
    ({"name": None}, CLOSE_AUTH, "Missing apikey or name"),
    ({"apikey": 7}, CLOSE_BAD_REGISTRATION, "apikey: expected a string"),
    ({"models": "grid/tiny-llama"}, CLOSE_BAD_REGISTRATION, "models: expected a list"),
    ({"models": []}, CLOSE_BAD_REGISTRATION, "at least one model"),
    ({"models": [3]}, CLOSE_BAD_REGISTRATION, "entries must be strings"),
    ({"max_length": "32768"}, CLOSE_BAD_REGISTRATION, "max_length: expected an integer"),
    ({"max_length": True}, CLOSE_BAD_REGISTRATION, "max_length: expected an integer"),
    ({"max_context_length": 0}, CLOSE_BAD_REGISTRATION, "outside"),
    ({"signer_address": "0x1234"}, CLOSE_BAD_REGISTRATION, "signer_address"),
    ({"api_formats": "openai-chat"}, CLOSE_BAD_REGISTRATION, "api_formats: expected a list"),
    ({"worker_identity": "proof"}, CLOSE_BAD_REGISTRATION, "worker_identity"),
    ({"type": "token"}, CLOSE_BAD_REGISTRATION, "must be the registration"),
])
def test_registration_rejects_wrong_types(change: dict[str, Any], code: int, words: str) -> None:
    frame = {**WORKER_REGISTRATION, **change}
    with pytest.raises(GridFrameError) as info:
        parse_registration(json.dumps(frame))
    assert info.value.close_code == code
    assert words in info.value.reason


@pytest.mark.parametrize("data", [b"not json", "[1, 2]", '{"apikey": NaN}', "\xff", "[" * 100_000])
def test_registration_rejects_non_objects(data: str | bytes) -> None:
    with pytest.raises(GridFrameError) as info:
        parse_registration(data)
    assert info.value.close_code == CLOSE_BAD_REGISTRATION


def test_frames_over_the_size_limit_are_refused_before_parsing() -> None:
    limits = GridFrameLimits(max_frame_bytes=100)
    with pytest.raises(GridFrameError) as info:
        parse_worker_frame(json.dumps({"type": "token", "id": "j", "delta": {"content": "x" * 200}}), limits)
    assert info.value.close_code == CLOSE_TOO_BIG


# -- worker frames ----------------------------------------------------------------------------------


def test_token_frame_of_the_public_worker() -> None:
    frame = parse_worker_frame(json.dumps(
        {"type": "token", "id": "job-1", "delta": {"content": "Hel"}, "finish_reason": None}))
    assert frame == TokenFrame("job-1", "Hel", "", False, None)
    reasoning = parse_worker_frame(json.dumps(
        {"type": "token", "id": "job-1", "delta": {"reasoning_content": "hmm"}, "finish_reason": "stop"}))
    assert reasoning == TokenFrame("job-1", "", "hmm", False, "stop")
    tools = parse_worker_frame(json.dumps({"type": "token", "id": "job-1", "delta": {"tool_calls": [{}]}}))
    assert isinstance(tools, TokenFrame) and tools.has_tool_calls


def test_legacy_token_frame() -> None:
    assert parse_worker_frame('{"type":"token","id":"j","text":"a"}') == TokenFrame("j", "a", "", False, None)
    assert parse_worker_frame('{"type":"token","id":"j","text":"b","reasoning":true}') == \
        TokenFrame("j", "", "b", False, None)


def test_done_frame_of_the_public_worker() -> None:
    receipt = DOC_KEY.receipt("job-1", "Hello")
    frame = parse_worker_frame(json.dumps({
        "type": "done", "id": "job-1", "full_text": "Hello", "full_reasoning": "", "finish_reason": "stop",
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                  "prompt_tokens_details": None},
        "receipt": receipt,
    }))
    assert isinstance(frame, DoneFrame)
    assert (frame.job_id, frame.full_text, frame.finish_reason) == ("job-1", "Hello", "stop")
    assert not frame.cancelled
    assert frame.usage is not None
    assert (frame.usage.prompt_tokens, frame.usage.completion_tokens, frame.usage.total_tokens) == (12, 2, 14)
    assert frame.receipt == ReceiptClaim("aipg-receipt:v1", receipt["signer"], receipt["sig"],
                                         receipt["result_sha256"])
    assert not frame.receipt_malformed


def test_done_frame_tolerates_odd_usage_and_flags_malformed_receipts() -> None:
    frame = parse_worker_frame(json.dumps({"type": "done", "id": "j", "full_text": "x", "cancelled": True,
                                           "usage": {"prompt_tokens": -1, "completion_tokens": "2"},
                                           "receipt": {"signer": 1, "sig": "0x", "result_sha256": "a"}}))
    assert isinstance(frame, DoneFrame)
    assert frame.cancelled
    assert frame.usage is not None
    assert frame.usage.prompt_tokens is None and frame.usage.completion_tokens is None
    assert frame.receipt is None and frame.receipt_malformed
    legacy = parse_worker_frame(
        json.dumps({"type": "done", "id": "j", "full_text": "x", "worker_sig": "0xab"}))
    assert isinstance(legacy, DoneFrame) and legacy.receipt is not None
    assert legacy.receipt.scheme == GRID_LEGACY_SIG_SCHEME


def test_error_and_pong_frames() -> None:
    assert parse_worker_frame('{"type":"pong"}') == PongFrame()
    assert parse_worker_frame(json.dumps({"type": "error", "id": "j", "message": "backend returned HTTP 500",
                                          "client_error": False})) == \
        WorkerErrorFrame("j", "backend returned HTTP 500", False)
    assert parse_worker_frame('{"type":"error","message":"x","client_error":true}') == \
        WorkerErrorFrame(None, "x", True)


@pytest.mark.parametrize(("frame", "words", "job_id"), [
    ({"id": "j"}, "type: missing", None),
    ({"type": 5}, "type: missing or not a string", None),
    ({"type": "telepathy"}, "unknown frame type", None),
    ({"type": "raw", "id": "j", "event": None, "data": "{}"}, "openai-chat jobs only", None),
    ({"type": "token"}, "id: missing", None),
    ({"type": "token", "id": 5}, "id: expected a string", None),
    ({"type": "token", "id": "j", "delta": "Hel"}, "delta: expected an object", "j"),
    ({"type": "token", "id": "j", "delta": {"content": ["Hel"]}}, "content: expected a string", "j"),
    ({"type": "token", "id": "j", "delta": {}, "finish_reason": 3}, "finish_reason", "j"),
    ({"type": "done", "id": "j", "full_text": 42}, "full_text: expected a string", "j"),
    ({"type": "done", "id": "j", "cancelled": "yes"}, "cancelled: expected true or false", "j"),
    ({"type": "error", "id": "j", "message": {"m": 1}}, "message: expected a string", "j"),
])
def test_malformed_worker_frames(frame: dict[str, Any], words: str, job_id: str | None) -> None:
    with pytest.raises(GridFrameError) as info:
        parse_worker_frame(json.dumps(frame))
    assert words in info.value.reason
    assert info.value.job_id == job_id


@pytest.mark.parametrize("data", ["", "{", "null", '"pong"', '{"type":"pong","x":Infinity}', b"\x80\x81"])
def test_worker_frames_that_are_not_json_objects(data: str | bytes) -> None:
    with pytest.raises(GridFrameError):
        parse_worker_frame(data)


# -- node frames and GridJob ----------------------------------------------------------------------------


def test_node_frames() -> None:
    assert json.loads(ready_frame("w1")) == {"type": "ready", "worker_id": "w1"}
    assert json.loads(ping_frame()) == {"type": "ping"}
    assert json.loads(cancel_frame("j")) == {"type": "cancel", "id": "j"}
    assert json.loads(ack_frame("j")) == {"type": "ack", "id": "j", "den": 0.0}
    assert json.loads(error_frame("Invalid API key")) == {"type": "error", "message": "Invalid API key"}


def test_job_frame_carries_the_openai_request_the_worker_forwards() -> None:
    job = GridJob("job-7", "grid/tiny-llama", 64,
                  messages=(GridMessage("system", "Be brief."), GridMessage("user", "Hi")),
                  temperature=0.0, top_p=0.95, top_k=40, seed=1234, stop=("\n\n",))
    frame = json.loads(job_frame(job))
    assert frame["type"] == "job" and frame["id"] == "job-7" and frame["model"] == "grid/tiny-llama"
    payload = frame["payload"]
    assert payload["api_format"] == "openai-chat"
    assert payload["request"] == {
        "model": "grid/tiny-llama",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 64, "temperature": 0.0, "top_p": 0.95, "stream": True,
        "top_k": 40, "seed": 1234, "stop": ["\n\n"],
    }
    assert payload["prompt"] == "Be brief.\nUser: Hi\nAssistant:"
    assert (payload["max_length"], payload["temperature"], payload["top_p"]) == (64, 0.0, 0.95)


def test_prompt_jobs_become_one_user_message() -> None:
    payload = json.loads(job_frame(GridJob("j", "m", 8, prompt="Once upon")))["payload"]
    assert payload["request"]["messages"] == [{"role": "user", "content": "Once upon"}]
    assert payload["prompt"] == "Once upon"
    assert "seed" not in payload["request"] and "top_k" not in payload["request"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"job_id": "a:b"}, "job_id"),
    ({"job_id": ""}, "job_id"),
    ({"model": ""}, "model"),
    ({"prompt": None}, "prompt"),
    ({"messages": (GridMessage("user", "x"),)}, "prompt"),
    ({"prompt": None, "messages": (GridMessage("wizard", "x"),)}, "messages[0]"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"seed": 1 << 63}, "seed"),
    ({"stop": ("",)}, "stop"),
])
def test_gridjob_rejects_bad_fields(kwargs: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"job_id": "j", "model": "m", "max_tokens": 8, "prompt": "p"}
    with pytest.raises(PouwError) as info:
        GridJob(**{**base, **kwargs})
    assert info.value.field == field


# -- receipts -------------------------------------------------------------------------------------


def _claim(receipt: dict[str, str]) -> ReceiptClaim:
    return ReceiptClaim("aipg-receipt:v1", receipt["signer"], receipt["sig"], receipt["result_sha256"])


def test_valid_receipt() -> None:
    text = "Hello, grid ♥"
    receipt = check_grid_receipt("job-1", text, text, _claim(DOC_KEY.receipt("job-1", text)), False,
                                 "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")
    assert receipt.status is ReceiptStatus.VALID and receipt.verified
    assert receipt.result_sha256 == hashlib.sha256(text.encode()).hexdigest() == result_sha256(text)


def test_receipt_signed_by_another_key() -> None:
    text = "Hello"
    forged = {**OTHER_KEY.receipt("job-1", text), "signer": DOC_KEY.address}
    assert check_grid_receipt("job-1", text, text, _claim(forged), False, DOC_KEY.address).status \
        is ReceiptStatus.BAD_SIGNATURE
    honest_other = OTHER_KEY.receipt("job-1", text)
    assert check_grid_receipt("job-1", text, text, _claim(honest_other), False, DOC_KEY.address).status \
        is ReceiptStatus.WRONG_SIGNER


@pytest.mark.parametrize(("job_id", "full_text", "streamed", "status"), [
    ("job-2", "Hello", "Hello", ReceiptStatus.BAD_SIGNATURE),  # signed for another job
    ("job-1", "Hellp", "Hellp", ReceiptStatus.HASH_MISMATCH),  # another output than the signed one
    ("job-1", "Hello", "Help", ReceiptStatus.STREAM_MISMATCH),  # streamed text differs from full_text
])
def test_receipt_bound_to_job_and_output(job_id: str, full_text: str, streamed: str,
                                         status: ReceiptStatus) -> None:
    claim = _claim(DOC_KEY.receipt("job-1", "Hello"))
    if status is ReceiptStatus.BAD_SIGNATURE:
        claim = ReceiptClaim(claim.scheme, claim.signer, claim.signature, result_sha256(full_text))
    assert check_grid_receipt(job_id, full_text, streamed, claim, False, DOC_KEY.address).status is status


def test_missing_malformed_and_unbound_receipts() -> None:
    claim = _claim(DOC_KEY.receipt("j", "x"))
    assert check_grid_receipt("j", "x", "x", None, False, DOC_KEY.address).status is ReceiptStatus.MISSING
    assert check_grid_receipt("j", "x", "x", None, True, DOC_KEY.address).status is ReceiptStatus.MALFORMED
    assert check_grid_receipt("j", "x", "x", claim, False, "").status is ReceiptStatus.NO_SIGNER
    bad_sig = ReceiptClaim(claim.scheme, claim.signer, "0x" + "00" * 65, claim.result_sha256)
    assert check_grid_receipt("j", "x", "x", bad_sig, False, DOC_KEY.address).status \
        is ReceiptStatus.BAD_SIGNATURE


def test_grid_core_worker_sig_form() -> None:
    text = "Hello"
    sig = DOC_KEY.personal_sign(f"aipg-job:j:{hashlib.sha256(text.encode()).hexdigest()}")
    claim = ReceiptClaim(GRID_LEGACY_SIG_SCHEME, "", sig, "")
    assert check_grid_receipt("j", text, text, claim, False, DOC_KEY.address).verified
    assert check_grid_receipt("j", text, text, claim, False, OTHER_KEY.address).status \
        is ReceiptStatus.BAD_SIGNATURE
