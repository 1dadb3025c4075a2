"""Builders and hypothesis strategies for the PoUW object tests (valid objects only)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from pouw.attestation import Attestation, CheckMethod, Verdict
from pouw.jobspec import (
    ChatInput,
    ChatMessage,
    ChatRole,
    CompletionInput,
    EmbedInput,
    JobSpec,
    ModelRef,
    SamplingParams,
    Tier,
)
from pouw.receipt import EmbeddingOutput, ExecutionFacts, FinishReason, Receipt, Timings, TokenOutput, Usage
from pouw.signing import PouwKey

WORKER = PouwKey(bytes.fromhex("11" * 32))
VALIDATOR = PouwKey(bytes.fromhex("22" * 32))
REQUESTER = PouwKey(bytes.fromhex("33" * 32))
MODEL = ModelRef("tiny-llama-2l", bytes(range(32)))
SAMPLING = SamplingParams(max_tokens=64, temperature_milli=700, top_k=40, top_p_micro=950_000, seed=42,
                          stop=("\n\n",))


def completion_spec(**changes: Any) -> JobSpec:
    spec = JobSpec(MODEL, CompletionInput("Once upon a time"), SAMPLING, deadline=1_800_000_000, nonce=1)
    return replace(spec, **changes) if changes else spec


def chat_spec(**changes: Any) -> JobSpec:
    messages = (ChatMessage(ChatRole.SYSTEM, "Be brief."), ChatMessage(ChatRole.USER, "Hello"))
    spec = JobSpec(MODEL, ChatInput(messages, "chatml"), SAMPLING, deadline=1_800_000_000, nonce=2,
                   tier=Tier.PAID, requester=REQUESTER.pubkey, fee=150_000_000)
    return replace(spec, **changes) if changes else spec


def embed_spec(**changes: Any) -> JobSpec:
    spec = JobSpec(MODEL, EmbedInput(("alpha", "beta")), None, deadline=1_800_000_000, nonce=3)
    return replace(spec, **changes) if changes else spec


def token_receipt(spec: JobSpec | None = None, **changes: Any) -> Receipt:
    spec = spec or completion_spec()
    receipt = Receipt(
        job_id=spec.id, worker_pubkey=WORKER.pubkey, model_hash=spec.model.sha256, input_hash=spec.input_hash,
        output=TokenOutput.from_text([17, 4, 99], " there was"), finish_reason=FinishReason.EOS,
        usage=Usage(prompt_tokens=5, completion_tokens=3), timings=Timings(3, 12, 40),
        execution=ExecutionFacts("llama.cpp", "0.3.16", 4, True, spec.sampling),
        started=1_799_999_000, finished=1_799_999_001,
    )
    return replace(receipt, **changes) if changes else receipt


def embed_receipt(**changes: Any) -> Receipt:
    spec = embed_spec()
    receipt = Receipt(
        job_id=spec.id, worker_pubkey=WORKER.pubkey, model_hash=spec.model.sha256, input_hash=spec.input_hash,
        output=EmbeddingOutput.from_vectors([[0.5, -1.0, 2.0], [0.0, 0.25, 1.5]]),
        finish_reason=FinishReason.STOP, usage=Usage(4, 0), timings=Timings(0, 5, 0),
        execution=ExecutionFacts("llama.cpp", "0.3.16", 4, True, None), started=10, finished=10,
    )
    return replace(receipt, **changes) if changes else receipt


def attestation(**changes: Any) -> Attestation:
    att = Attestation(
        receipt_id=token_receipt().id, validator_pubkey=VALIDATOR.pubkey, verdict=Verdict.VALID,
        score_micro=987_654, method=CheckMethod.TEACHER_FORCED, checked_positions=16,
        beacon=bytes.fromhex("ab" * 32), time=1_800_000_100,
    )
    return replace(att, **changes) if changes else att


# --- strategies ----------------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
hashes = st.binary(min_size=32, max_size=32)
identifiers = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
texts = st.text(max_size=60)
nonempty_texts = st.text(min_size=1, max_size=30)
pubkeys = st.sampled_from([WORKER.pubkey, VALIDATOR.pubkey, REQUESTER.pubkey])
signatures = st.one_of(st.just(b""), st.binary(min_size=64, max_size=64))

models = st.builds(ModelRef, identifiers, hashes)
samplings = st.builds(
    SamplingParams, max_tokens=st.integers(1, 131072), temperature_milli=u32, top_k=u32,
    top_p_micro=st.integers(0, 1_000_000), seed=u64,
    stop=st.lists(nonempty_texts.filter(lambda s: len(s.encode()) <= 255), max_size=4).map(tuple),
)
messages = st.builds(ChatMessage, st.sampled_from(list(ChatRole)), texts)
inputs = st.one_of(
    st.builds(CompletionInput, texts),
    st.builds(ChatInput, st.lists(messages, min_size=1, max_size=5).map(tuple),
              st.one_of(st.just(""), identifiers)),
    st.builds(EmbedInput, st.lists(nonempty_texts, min_size=1, max_size=5).map(tuple)),
)


@st.composite
def jobspecs(draw: st.DrawFn) -> JobSpec:
    job_input = draw(inputs)
    sampling = None if isinstance(job_input, EmbedInput) else draw(samplings)
    tier = draw(st.sampled_from(list(Tier)))
    requester = draw(pubkeys) if tier is Tier.PAID else draw(st.one_of(st.just(b""), pubkeys))
    fee = draw(st.integers(0, 21_000_000_000 * 100_000_000)) if tier is Tier.PAID else 0
    return JobSpec(draw(models), job_input, sampling, draw(u32), draw(u64), tier, requester, fee)


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    started = draw(u32)
    if draw(st.booleans()):
        tokens = tuple(draw(st.lists(u32, max_size=20)))
        output: TokenOutput | EmbeddingOutput = TokenOutput(tokens, draw(hashes))
        sampling: SamplingParams | None = draw(samplings)
        usage = Usage(draw(u32), len(tokens))
    else:
        output = EmbeddingOutput(draw(st.integers(1, 4096)), draw(st.integers(1, 65536)), draw(hashes))
        sampling = None
        usage = Usage(draw(u32), 0)
    execution = ExecutionFacts(draw(identifiers), draw(st.one_of(st.just(""), identifiers)),
                               draw(st.integers(0, 0xFFFF)), draw(st.booleans()), sampling)
    return Receipt(
        draw(hashes), draw(pubkeys), draw(hashes), draw(hashes), output,
        draw(st.sampled_from(list(FinishReason))),
        usage, Timings(draw(u32), draw(u32), draw(u32)), execution, started,
        draw(st.integers(started, 0xFFFFFFFF)), draw(signatures), draw(signatures),
    )


attestations = st.builds(
    Attestation, hashes, pubkeys, st.sampled_from(list(Verdict)), st.integers(0, 1_000_000),
    st.sampled_from(list(CheckMethod)), u32, hashes, u32, signatures,
)
