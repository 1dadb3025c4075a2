"""Forging workers for tests of the verification layer (-pouwtestcheat, regtest only).

Owns `CheatingWorker`: it runs the job honestly on a real `LocalWorker`, then replaces what it
reports the way a dishonest operator would, and signs the forged receipt with its own worker key,
so the forgery passes every check a requester can make (signature, job match) and only a
validator's re-check can catch it. Modes: "random" (random tokens, as a worker skipping the work),
"truncate" (half the output, claimed as a natural end), "text" (honest tokens, other text handed to
the requester). It must never be reachable outside regtest; pouw.config accepts the option there
only.
"""

from __future__ import annotations

import dataclasses
import random
import threading

from pouw.api import TextSink
from pouw.jobspec import JobSpec
from pouw.receipt import FinishReason, TokenOutput, Usage
from pouw.signing import sign_receipt
from pouw.validator import expected_text
from pouw.worker import JobOutcome, LocalWorker

__all__ = ["CheatingWorker"]


class CheatingWorker:
    """A `LocalWorker` that forges its outputs (see the module docstring)."""

    def __init__(self, inner: LocalWorker, mode: str) -> None:
        if mode not in ("random", "truncate", "text"):
            raise ValueError(f"unknown cheat mode {mode!r}")
        self.inner = inner
        self.mode = mode
        self.worker_info = inner.worker_info
        self._rng = random.Random()

    async def execute(self, spec: JobSpec, stop: threading.Event, on_text: TextSink | None = None, *,
                      queued_ms: int = 0) -> JobOutcome:
        honest = await self.inner.execute(spec, stop, None, queued_ms=queued_ms)
        receipt = honest.receipt
        if not isinstance(receipt.output, TokenOutput) or not receipt.output.token_ids:
            return honest
        backend = self.inner.backend
        tokens = list(receipt.output.token_ids)
        finish = receipt.finish_reason
        if self.mode == "random":
            n_vocab = backend.info().n_vocab
            tokens = [t for t in (self._rng.randrange(n_vocab) for _ in range(4 * len(tokens)))
                      if t not in backend.eog_tokens][:len(tokens)]
            finish = FinishReason.LENGTH
            text = expected_text(backend, tokens, finish, ())
        elif self.mode == "truncate":
            tokens = tokens[:max(1, len(tokens) // 2)]
            finish = FinishReason.EOS
            text = expected_text(backend, tokens, finish, ())
        else:
            text = (honest.text or "") + " [edited]"
        forged = dataclasses.replace(receipt, output=TokenOutput.from_text(tokens, text),
                                     finish_reason=finish,
                                     usage=Usage(receipt.usage.prompt_tokens, len(tokens)),
                                     worker_signature=b"")
        signed = sign_receipt(forged, self.inner.key)
        if on_text is not None and text:
            result = on_text(text)
            if result is not None:
                await result
        return JobOutcome(signed, text=text)
