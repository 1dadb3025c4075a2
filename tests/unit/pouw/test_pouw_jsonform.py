"""JSON forms: exact round trips (through real JSON text), fixed-point conversion, bad input paths."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pouw_factories import (
    REQUESTER,
    VALIDATOR,
    WORKER,
    attestation,
    attestations,
    chat_spec,
    completion_spec,
    embed_receipt,
    embed_spec,
    jobspecs,
    receipts,
    token_receipt,
)

from pouw.attestation import Attestation
from pouw.errors import BAD_JSON, INVALID_FIELD, UNSUPPORTED, PouwError
from pouw.jobspec import JobSpec
from pouw.jsonform import as_fixed, fixed_to_json
from pouw.receipt import Receipt
from pouw.signing import sign_attestation, sign_receipt, sign_requester_ack


def _through_text(obj: dict[str, Any]) -> Any:
    return json.loads(json.dumps(obj))


def test_jobspec_json_shape() -> None:
    j = chat_spec().to_json()
    assert j["kind"] == "llm.chat"
    assert j["tier"] == "paid"
    assert j["id"] == chat_spec().id_hex
    assert j["sampling"] == {"max_tokens": 64, "temperature": 0.7, "top_k": 40, "top_p": 0.95, "seed": 42,
                             "stop": ["\n\n"]}
    assert j["input"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert j["requester"] == REQUESTER.pubkey.hex()
    assert embed_spec().to_json()["sampling"] is None
    assert '"temperature": 0.7' in json.dumps(j)


@pytest.mark.parametrize("make", [completion_spec, chat_spec, embed_spec])
def test_jobspec_round_trip(make: Any) -> None:
    spec = make()
    assert JobSpec.from_json(_through_text(spec.to_json())) == spec


@settings(max_examples=200, deadline=None)
@given(jobspecs())
def test_random_jobspec_json_round_trip(spec: JobSpec) -> None:
    assert JobSpec.from_json(_through_text(spec.to_json())) == spec


@settings(max_examples=200, deadline=None)
@given(receipts())
def test_random_receipt_json_round_trip(receipt: Receipt) -> None:
    assert Receipt.from_json(_through_text(receipt.to_json())) == receipt


@settings(max_examples=200, deadline=None)
@given(attestations)
def test_random_attestation_json_round_trip(att: Attestation) -> None:
    assert Attestation.from_json(_through_text(att.to_json())) == att


def test_signed_objects_round_trip() -> None:
    spec = chat_spec()
    receipt = sign_requester_ack(sign_receipt(token_receipt(spec), WORKER), REQUESTER)
    assert Receipt.from_json(_through_text(receipt.to_json())) == receipt
    assert Receipt.from_json(_through_text(embed_receipt().to_json())) == embed_receipt()
    att = sign_attestation(attestation(), VALIDATOR)
    j = att.to_json()
    assert j["beacon"] == ("ab" * 32)
    assert j["receipt_id"] == token_receipt().id_hex
    assert Attestation.from_json(_through_text(j)) == att


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([1000, 1_000_000]))
def test_fixed_point_is_exact(n: int, scale: int) -> None:
    assert as_fixed(_through_text({"v": fixed_to_json(n, scale)})["v"], "v", scale, 0, 0xFFFFFFFF) == n


def test_fixed_point_conversion() -> None:
    assert as_fixed(0.7, "t", 1000, 0, 2000) == 700
    assert as_fixed(1, "t", 1000, 0, 2000) == 1000
    with pytest.raises(PouwError, match="more than 3 decimal places"):
        as_fixed(0.1 + 0.2, "t", 1000, 0, 2000)  # 0.30000000000000004
    with pytest.raises(PouwError, match="more than 6 decimal places"):
        as_fixed(0.0000001, "p", 1_000_000, 0, 1_000_000)
    with pytest.raises(PouwError, match="outside"):
        as_fixed(-0.001, "t", 1000, 0, 2000)
    for bad in (float("nan"), float("inf"), True, "0.7", None):
        with pytest.raises(PouwError) as info:
            as_fixed(bad, "t", 1000, 0, 2000)
        assert info.value.code == BAD_JSON


def _mutate(obj: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "field", "fragment"), [
    (["nonce"], _DELETE, "nonce", "is missing"),
    (["nonce"], "1", "nonce", "must be an integer, not string"),
    (["nonce"], 2**64, "nonce", "outside"),
    (["nonce"], True, "nonce", "must be an integer, not boolean"),
    (["deadline"], -1, "deadline", "outside"),
    (["kind"], "llm.edit", "kind", "must be one of"),
    (["tier"], 1, "tier", "must be a string"),
    (["model", "sha256"], "00", "model.sha256", "32 bytes"),
    (["model", "sha256"], "zz" * 32, "model.sha256", "hex"),
    (["model", "extra"], 1, "model.extra", "not a field"),
    (["input", "messages", 1, "role"], "robot", "input.messages[1].role", "must be one of"),
    (["input", "messages", 0], "hi", "input.messages[0]", "must be an object"),
    (["input", "messages"], {}, "input.messages", "must be an array"),
    (["input", "prompt"], "x", "input.prompt", "not a field"),
    (["sampling", "temperature"], 0.0001, "sampling.temperature", "decimal places"),
    (["sampling", "top_p"], 1.5, "sampling.top_p", "outside"),
    (["sampling", "stop", 0], 5, "sampling.stop[0]", "must be a string"),
    (["sampling"], [], "sampling", "must be an object"),
    (["requester"], "02", "requester", "0 or 33 bytes"),
    (["id"], "00" * 32, "id", "does not match"),
    (["surprise"], 1, "surprise", "not a field"),
    (["version"], 2, "version", "unsupported version"),
])
def test_bad_jobspec_json(path: list[Any], value: Any, field: str, fragment: str) -> None:
    bad = _mutate(chat_spec().to_json(), path, value)
    with pytest.raises(PouwError) as info:
        JobSpec.from_json(bad)
    assert info.value.code == BAD_JSON
    assert info.value.field == field
    assert fragment in info.value.message


def test_jobspec_json_rule_errors_keep_their_codes() -> None:
    with pytest.raises(PouwError) as info:
        JobSpec.from_json(_mutate(completion_spec().to_json(), ["sampling"], None))
    assert (info.value.code, info.value.field) == (INVALID_FIELD, "sampling")
    with pytest.raises(PouwError) as info:
        JobSpec.from_json(_mutate(completion_spec().to_json(), ["kind"], "image.txt2img"))
    assert (info.value.code, info.value.field) == (UNSUPPORTED, "kind")
    with pytest.raises(PouwError, match="must be an object"):
        JobSpec.from_json([])


@pytest.mark.parametrize(("path", "value", "field"), [
    (["output", "type"], "image", "output.type"),
    (["output", "token_ids", 1], -1, "output.token_ids[1]"),
    (["output", "token_ids"], None, "output.token_ids"),
    (["usage", "prompt_tokens"], 1.5, "usage.prompt_tokens"),
    (["timings", "extra"], 0, "timings.extra"),
    (["execution", "deterministic"], 1, "execution.deterministic"),
    (["execution", "sampling", "seed"], _DELETE, "execution.sampling.seed"),
    (["finish_reason"], "done", "finish_reason"),
    (["job_id"], "ab", "job_id"),
    (["worker_signature"], "00" * 63, "worker_signature"),
    (["id"], "11" * 32, "id"),
])
def test_bad_receipt_json(path: list[Any], value: Any, field: str) -> None:
    bad = _mutate(sign_receipt(token_receipt(), WORKER).to_json(), path, value)
    with pytest.raises(PouwError) as info:
        Receipt.from_json(bad)
    assert info.value.code == BAD_JSON
    assert info.value.field == field


@pytest.mark.parametrize(("path", "value", "field"), [
    (["score"], 1.0000001, "score"),
    (["score"], 2, "score"),
    (["verdict"], "maybe", "verdict"),
    (["method"], "vibes", "method"),
    (["beacon"], "00", "beacon"),
    (["checked_positions"], _DELETE, "checked_positions"),
])
def test_bad_attestation_json(path: list[Any], value: Any, field: str) -> None:
    bad = _mutate(attestation().to_json(), path, value)
    with pytest.raises(PouwError) as info:
        Attestation.from_json(bad)
    assert info.value.code == BAD_JSON
    assert info.value.field == field


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _leaf_paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, [*prefix, k])] or [prefix]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, [*prefix, i])] or [prefix]
    return [prefix]


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_raises_only_pouw_error(value: Any) -> None:
    for parse in (JobSpec.from_json, Receipt.from_json, Attestation.from_json):
        with pytest.raises(PouwError):
            parse(value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["chat", "completion", "embed", "receipt", "attestation"]), st.data())
def test_mutated_json_parses_or_raises_pouw_error(which: str, data: st.DataObject) -> None:
    doc, parse = cast(tuple[dict[str, Any], Callable[[Any], Any]], {
        "chat": (chat_spec().to_json(), JobSpec.from_json),
        "completion": (completion_spec().to_json(), JobSpec.from_json),
        "embed": (embed_spec().to_json(), JobSpec.from_json),
        "receipt": (sign_receipt(token_receipt(), WORKER).to_json(), Receipt.from_json),
        "attestation": (attestation().to_json(), Attestation.from_json),
    }[which])
    del doc["id"]
    path = data.draw(st.sampled_from(_leaf_paths(doc, [])))
    if not path:
        return
    mutated = _mutate(doc, path, data.draw(json_values))
    try:
        parsed = parse(mutated)
    except PouwError:
        return
    assert parse(_through_text(parsed.to_json())) == parsed
