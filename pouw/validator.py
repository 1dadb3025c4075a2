"""The validator: re-checks a sample of receipts and signs attestations.

Owns `Validator`. A receipt is checked when the beacon says so (`pouw.verify.should_check`: a value
the worker could not know when it signed, e.g. a later block hash). Checking an LLM receipt is
teacher-forced scoring (`pouw.verify.verify_llm_output`) on the validator's own copy of the model,
over the validator's own tokenization of the job's input, plus two checks of what the requester
was given: the output text must be the text of the claimed tokens (EOS dropped, cut before the stop
string), and the receipt must answer the job (`Receipt.check_matches`). An embedding receipt is
checked by re-running it: equal vectors are "valid", different ones "inconclusive" (float results
differ across hardware; they are never grounds for slashing).

It must never attest a receipt whose worker signature does not verify (that receipt is nobody's
claim), and never sign "valid" for a check it could not run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import cast

from pouw.attestation import SCORE_SCALE, Attestation, CheckMethod, Verdict
from pouw.backends.base import BackendError, InferenceBackend
from pouw.errors import PouwError
from pouw.jobspec import EmbedInput, JobSpec
from pouw.receipt import EmbeddingOutput, FinishReason, Receipt, TokenOutput
from pouw.signing import PouwKey, sign_attestation, verify_receipt_signature
from pouw.verify import Scorer, choose_positions, should_check, verify_llm_output
from pouw.worker import prompt_tokens_for

__all__ = ["CheckResult", "UncheckableError", "Validator", "expected_text"]

_VERDICTS = {"valid": Verdict.VALID, "invalid": Verdict.INVALID, "inconclusive": Verdict.INCONCLUSIVE}


class UncheckableError(Exception):
    """This validator cannot check the receipt (no copy of the model, unsigned receipt...)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    attestation: Attestation
    reason: str
    seconds: float


def expected_text(backend: InferenceBackend, tokens: Sequence[int], finish: FinishReason,
                  stops: Sequence[str]) -> str:
    """The text a requester must have been given for `tokens`: their bytes without a final
    end-of-generation token, cut before the first stop string when the generation stopped on one,
    decoded as UTF-8 with replacement characters (as the worker's incremental decoding does)."""
    body = list(tokens)
    if finish is FinishReason.EOS and body and body[-1] in backend.eog_tokens:
        body.pop()
    data = backend.detokenize_bytes(body)
    if finish is FinishReason.STOP:
        hits = [i for i in (data.find(s.encode("utf-8")) for s in stops) if i >= 0]
        if hits:
            data = data[:min(hits)]
    return data.decode("utf-8", errors="replace")


class Validator:
    """Checks receipts for the models it holds (by sha256) and signs attestations with `key`."""

    def __init__(self, backends: dict[bytes, InferenceBackend], key: PouwKey, executor: Executor, *,
                 rate: float = 1.0, positions: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must lie in [0, 1]")
        self.backends = backends
        self.key = key
        self.rate = rate
        self.positions = positions  # None: every output position; else a beacon-chosen sample
        self._executor = executor
        self._clock = clock

    def selects(self, receipt: Receipt, beacon: bytes) -> bool:
        return should_check(beacon, receipt.id, self.rate)

    async def check(self, spec: JobSpec, receipt: Receipt, beacon: bytes) -> CheckResult:
        """Checks `receipt` (an answer to `spec`) and returns the signed attestation."""
        if not verify_receipt_signature(receipt):
            raise UncheckableError("the receipt's worker signature does not verify")
        backend = self.backends.get(receipt.model_hash)
        if backend is None:
            raise UncheckableError(f"this validator has no model with sha256 {receipt.model_hash.hex()}")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        verdict, score, checked, method, reason = await loop.run_in_executor(
            self._executor, self._check_sync, backend, spec, receipt, beacon)
        attestation = Attestation(receipt.id, self.key.pubkey, verdict, round(score * SCORE_SCALE),
                                  method, checked, beacon, int(self._clock()))
        return CheckResult(sign_attestation(attestation, self.key), reason, time.perf_counter() - started)

    def _check_sync(self, backend: InferenceBackend, spec: JobSpec, receipt: Receipt,
                    beacon: bytes) -> tuple[Verdict, float, int, CheckMethod, str]:
        try:
            receipt.check_matches(spec)
        except PouwError as exc:
            method = CheckMethod.RERUN if isinstance(spec.input, EmbedInput) else CheckMethod.TEACHER_FORCED
            return Verdict.INVALID, 0.0, 0, method, f"the receipt does not answer the job: {exc}"
        if isinstance(receipt.output, EmbeddingOutput):
            assert isinstance(spec.input, EmbedInput)
            try:
                again = EmbeddingOutput.from_vectors(backend.embed(spec.input.inputs))
            except BackendError as exc:
                raise UncheckableError(f"re-running the embedding failed: {exc}") from exc
            if again == receipt.output:
                return (Verdict.VALID, 1.0, receipt.output.count, CheckMethod.RERUN,
                        "re-run gives the same vectors")
            return (Verdict.INCONCLUSIVE, 0.0, receipt.output.count, CheckMethod.RERUN,
                    "re-run vectors differ (float results may differ across hardware)")
        assert isinstance(receipt.output, TokenOutput) and spec.sampling is not None
        tokens = receipt.output.token_ids
        sampling = spec.sampling
        text = expected_text(backend, tokens, receipt.finish_reason, sampling.stop)
        if hashlib.sha256(text.encode("utf-8")).digest() != receipt.output.text_sha256:
            return (Verdict.INVALID, 0.0, 0, CheckMethod.TEACHER_FORCED,
                    "the output text is not the text of the claimed tokens")
        try:
            prompt = prompt_tokens_for(backend, spec)
        except BackendError as exc:
            raise UncheckableError(f"cannot tokenize the job's input: {exc}") from exc
        positions = (None if self.positions is None
                     else choose_positions(beacon, receipt.id, len(tokens), self.positions))
        # The service gives a validator in-process backends only (llama.cpp), which all score and
        # expose n_vocab; an HTTP backend cannot teacher-force.
        scorer = cast(Scorer, backend)
        outcome = verify_llm_output(scorer, prompt, tokens, sampling, receipt.finish_reason.label, None,
                                    backend.eog_tokens, positions=positions)
        return (_VERDICTS[outcome.verdict], outcome.score, outcome.checked, CheckMethod.TEACHER_FORCED,
                outcome.reason)
