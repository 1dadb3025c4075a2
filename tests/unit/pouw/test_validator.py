"""Validator: honest receipts attested valid; forged outputs (random tokens, another model's output,
truncation, text that is not the tokens' text, a receipt for another job) attested invalid."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pouw.attestation import CheckMethod, Verdict
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.jobspec import CompletionInput, EmbedInput, JobSpec, ModelRef, SamplingParams
from pouw.receipt import FinishReason, Receipt, TokenOutput, Usage
from pouw.signing import PouwKey, sign_receipt, verify_attestation_signature
from pouw.tinymodel import write_tiny_llama
from pouw.validator import UncheckableError, Validator, expected_text
from pouw.worker import JobOutcome, LocalWorker

WORKER = PouwKey(bytes(31) + b"\x31")
CHEATER = PouwKey(bytes(31) + b"\x32")
VALIDATOR = PouwKey(bytes(31) + b"\x33")
BEACON = hashlib.sha256(b"a later block hash").digest()


@dataclasses.dataclass
class Rig:
    sha: bytes
    worker: LocalWorker
    other: LocalWorker  # the same architecture, other weights: "another model"
    validator: Validator


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("validator")
    sha = write_tiny_llama(tmp / "a.gguf", seed=41)
    write_tiny_llama(tmp / "b.gguf", seed=42)
    a = LlamaCppBackend(tmp / "a.gguf", model_name="tiny", n_ctx=256)
    b = LlamaCppBackend(tmp / "b.gguf", model_name="tiny", n_ctx=256)
    checker = LlamaCppBackend(tmp / "a.gguf", model_name="tiny", n_ctx=256)  # the validator's own copy
    with ThreadPoolExecutor(2) as pool:
        yield Rig(sha, LocalWorker("w", a, WORKER, pool), LocalWorker("o", b, CHEATER, pool),
                  Validator({sha: checker}, VALIDATOR, pool))
    for backend in (a, b, checker):
        backend.close()


def job(sha: bytes, prompt: str, sampling: SamplingParams, nonce: int = 0) -> JobSpec:
    return JobSpec(ModelRef("tiny", sha), CompletionInput(prompt), sampling, deadline=2_000_000_000,
                   nonce=nonce)


def run(rig: Rig, spec: JobSpec, worker: LocalWorker | None = None) -> JobOutcome:
    return asyncio.run((worker or rig.worker).execute(spec, threading.Event()))


def check(rig: Rig, spec: JobSpec, receipt: Receipt) -> tuple[Verdict, str]:
    result = asyncio.run(rig.validator.check(spec, receipt, BEACON))
    a = result.attestation
    assert verify_attestation_signature(a) and a.receipt_id == receipt.id and a.beacon == BEACON
    assert a.validator_pubkey == VALIDATOR.pubkey
    return a.verdict, result.reason


def forged(receipt: Receipt, tokens: list[int], text: str, finish: FinishReason | None = None) -> Receipt:
    """The cheater's receipt: its own key, claimed tokens and text (consistent with each other)."""
    out = dataclasses.replace(receipt, worker_pubkey=CHEATER.pubkey,
                              output=TokenOutput.from_text(tokens, text),
                              usage=Usage(receipt.usage.prompt_tokens, len(tokens)),
                              finish_reason=finish or receipt.finish_reason, worker_signature=b"")
    return sign_receipt(out, CHEATER)


def test_honest_receipts_are_valid(rig: Rig) -> None:
    rng = random.Random(5)
    for i in range(12):
        greedy = i % 2 == 0
        sampling = SamplingParams(max_tokens=rng.randint(4, 16), temperature_milli=0 if greedy else 900,
                                  top_k=0 if greedy else 40, top_p_micro=1_000_000 if greedy else 950_000,
                                  seed=rng.randrange(1 << 32), stop=("zz",) if i % 3 == 0 else ())
        spec = job(rig.sha, f"prompt {i}: " + "abc" * rng.randint(0, 5), sampling, i)
        outcome = run(rig, spec)
        verdict, reason = check(rig, spec, outcome.receipt)
        assert verdict is Verdict.VALID, reason


def test_forgeries_are_invalid(rig: Rig) -> None:
    rng = random.Random(9)
    n_vocab = rig.worker.backend.info().n_vocab
    for i in range(4):
        spec = job(rig.sha, f"forge {i}", SamplingParams(max_tokens=12, seed=i), 100 + i)
        honest = run(rig, spec)
        r = honest.receipt
        backend = rig.worker.backend
        # Random tokens (no end token among them), claimed to have run to max_tokens.
        eog = backend.eog_tokens
        tokens = [t for t in (rng.randrange(3, n_vocab) for _ in range(40)) if t not in eog][:12]
        fake = forged(r, tokens, expected_text(backend, tokens, FinishReason.LENGTH, ()), FinishReason.LENGTH)
        assert check(rig, spec, fake)[0] is Verdict.INVALID
        # Another model's output for the same job.
        other_spec = job(rig.other.backend_info.model_sha256, f"forge {i}",
                         SamplingParams(max_tokens=12, seed=i), 100 + i)
        other = run(rig, other_spec, rig.other).receipt
        assert isinstance(other.output, TokenOutput)
        other_tokens = list(other.output.token_ids)
        if other_tokens != list(r.output.token_ids):  # type: ignore[union-attr]
            fake = forged(r, other_tokens, expected_text(backend, other_tokens, other.finish_reason, ()),
                          other.finish_reason)
            assert check(rig, spec, fake)[0] is Verdict.INVALID
        # A truncated answer claimed as a natural end.
        assert isinstance(r.output, TokenOutput)
        cut = list(r.output.token_ids[: len(r.output.token_ids) // 2])
        fake = forged(r, cut, expected_text(backend, cut, FinishReason.EOS, ()), FinishReason.EOS)
        verdict, reason = check(rig, spec, fake)
        assert verdict is Verdict.INVALID, reason
        # Honest tokens, but the requester was handed other text.
        fake = forged(r, list(r.output.token_ids), (honest.text or "") + " (edited)")
        verdict, reason = check(rig, spec, fake)
        assert verdict is Verdict.INVALID and "text" in reason


def test_receipt_for_another_job_and_unsigned(rig: Rig) -> None:
    spec = job(rig.sha, "one job", SamplingParams(max_tokens=6, seed=1), 7)
    other_spec = job(rig.sha, "another job", SamplingParams(max_tokens=6, seed=1), 8)
    receipt = run(rig, spec).receipt
    verdict, reason = check(rig, other_spec, receipt)
    assert verdict is Verdict.INVALID and "does not answer the job" in reason
    with pytest.raises(UncheckableError, match="signature"):
        asyncio.run(rig.validator.check(spec, dataclasses.replace(receipt, worker_signature=b""), BEACON))
    unknown = dataclasses.replace(receipt, model_hash=bytes(32), worker_signature=b"")
    with pytest.raises(UncheckableError, match="no model"):
        asyncio.run(rig.validator.check(spec, sign_receipt(unknown, WORKER), BEACON))


def test_sampled_positions_and_embeddings(rig: Rig) -> None:
    spec = job(rig.sha, "sample positions", SamplingParams(max_tokens=24, temperature_milli=700, seed=3), 9)
    receipt = run(rig, spec).receipt
    sampled = Validator(rig.validator.backends, VALIDATOR, rig.worker._executor, positions=4)
    result = asyncio.run(sampled.check(spec, receipt, BEACON))
    assert result.attestation.verdict is Verdict.VALID
    assert 4 <= result.attestation.checked_positions <= 5  # the last position is always added
    embed = JobSpec(ModelRef("tiny", rig.sha), EmbedInput(("x", "yy")), None, deadline=2_000_000_000, nonce=1)
    er = run(rig, embed).receipt
    result = asyncio.run(rig.validator.check(embed, er, BEACON))
    assert (result.attestation.verdict, result.attestation.method) == (Verdict.VALID, CheckMethod.RERUN)
    # Sampling by beacon: about `rate` of the receipts are chosen, and the choice is reproducible.
    half = Validator(rig.validator.backends, VALIDATOR, rig.worker._executor, rate=0.5)
    receipts = [dataclasses.replace(receipt, started=i, finished=i + 10) for i in range(400)]
    picks = [half.selects(r, BEACON) for r in receipts]
    assert 150 < sum(picks) < 250
    assert picks == [half.selects(r, BEACON) for r in receipts]
