"""Teacher-forced verification of LLM outputs, and the beacon-driven choice of what to check.

Owns `verify_llm_output`: one batched forward pass over prompt + claimed output (the scorer's
`score`), then a per-position check of each claimed token against the PoUW sampler recorded in the
receipt (`pouw.sampling`), and a check that the output ended the way it claims. Also owns
`should_check` / `choose_positions`, which derive receipt and position samples from a beacon the
worker could not predict. It must never generate text or trust anything the worker computed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from pouw.backends.base import FINISH_REASONS, BackendError, ContextOverflowError
from pouw.jobspec import SamplingParams
from pouw.sampling import candidates, draw_uniform, ranked

__all__ = [
    "GREEDY_MARGIN",
    "LOGIT_TOLERANCE",
    "MISMATCH_ALLOWANCE",
    "PositionCheck",
    "Scorer",
    "Verdict",
    "VerifyOutcome",
    "check_position",
    "check_termination",
    "choose_positions",
    "should_check",
    "verify_llm_output",
]

# Calibration (docs/pouw-protocol.md, "Verification"): on one CPU, logits of the incremental decode
# and of the batched scoring pass differ by at most 0.0045 (thread count: 0; batch size: ~1e-6);
# the same weights stored as f16 instead of f32 move logits by at most 0.042. LOGIT_TOLERANCE
# bounds the honest per-logit error between worker and validator; a greedy token may trail the
# validator's argmax by twice that.
LOGIT_TOLERANCE = 0.05
GREEDY_MARGIN = 2 * LOGIT_TOLERANCE
# Mismatches tolerated before "invalid": floor(allowance * checked); in between is "inconclusive"
# (escalate to more validators, no slashing). At 2%, outputs under 50 checked tokens allow none.
MISMATCH_ALLOWANCE = 0.02

Verdict = Literal["valid", "invalid", "inconclusive"]
_POSITIONS_TAG = b"aipg-pouw-positions/v1"
_CHECK_TAG = b"aipg-pouw-check/v1"


class Scorer(Protocol):
    """What verification needs from a backend (`LlamaCppBackend` is one)."""

    @property
    def n_vocab(self) -> int: ...

    def score(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
              positions: Sequence[int] | None = None) -> npt.NDArray[np.float32]: ...

    def detokenize_bytes(self, tokens: Sequence[int]) -> bytes: ...


class PositionCheck(Enum):
    EXACT = "exact"  # the validator's own sampler draws the claimed token
    TOLERATED = "tolerated"  # not the validator's draw, but within the noise tolerance of it
    MISMATCH = "mismatch"  # no honest worker within the tolerance could have drawn it


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    verdict: Verdict
    score: float  # fraction of checked positions consistent with the claim (1.0 when none checked)
    checked: int  # positions examined (checking stops once the verdict is "invalid")
    first_bad: int | None  # first output position that failed (a token or the termination)
    reason: str
    mismatches: int = 0
    tolerated: int = 0  # consistent only within tolerance (near-ties, draws near a boundary)


def _bounds(c: float, spread: float) -> tuple[float, float]:
    """How far a probability mass fraction c can move when every logit moves by at most
    spread/2 (mass ratios change by at most e^spread)."""
    if c <= 0.0 or c >= 1.0:
        return c, c
    up = math.exp(spread)
    return c / (c + (1 - c) * up), c * up / (c * up + (1 - c))


def check_position(logits: npt.NDArray[np.floating], token: int, sampling: SamplingParams, position: int, *,
                   greedy_margin: float = GREEDY_MARGIN, logit_tolerance: float = LOGIT_TOLERANCE,
                   check_draw: bool = True) -> PositionCheck:
    """Check one claimed token against the validator's logits for its position.

    Greedy: the token's logit trails the maximum by at most `greedy_margin`.

    Sampled: every logit of the worker may differ from the validator's by up to `logit_tolerance`
    (delta). The token must be in the loose kept set (tokens that are kept under some such error),
    and the seeded draw u(seed, position) must fall in the token's inverse-CDF interval, widened by
    (a) the tempered mass of tokens whose membership is ambiguous under the error and (b) the
    worst-case shift of a cumulative mass when logit ratios change by e^(2 delta / T). Away from
    the top-k/top-p boundaries (a) is zero and the widening is tiny, so the draw is checked exactly.
    With `check_draw` False (a worker whose backend does not run the PoUW sampler, e.g. a remote
    server) only membership is checked: in the kept set (EXACT) or the loose one (TOLERATED).
    """
    l64 = np.asarray(logits, dtype=np.float64)
    if sampling.greedy:
        gap = float(l64.max() - l64[token])
        if gap <= 0.0:
            return PositionCheck.EXACT
        return PositionCheck.TOLERATED if gap <= greedy_margin else PositionCheck.MISMATCH
    u = draw_uniform(sampling.seed, position)
    strict = candidates(l64, sampling)
    where = np.flatnonzero(strict.ids == token)
    if not check_draw:
        if where.size:
            return PositionCheck.EXACT
        loose, _certain = _loose_set(l64, sampling, 2 * logit_tolerance)
        return PositionCheck.TOLERATED if token in loose else PositionCheck.MISMATCH
    if where.size:
        i = int(where[0])
        cum = np.cumsum(strict.probs)
        if (float(cum[i - 1]) if i else 0.0) <= u < (float(cum[i]) if i + 1 < cum.shape[0] else 1.0):
            return PositionCheck.EXACT
    spread = 2 * logit_tolerance
    if not _possibly_kept(l64, token, sampling, spread):
        return PositionCheck.MISMATCH
    ids, certain = _loose_set(l64, sampling, spread)
    at = np.flatnonzero(ids == token)
    if at.size == 0:
        return PositionCheck.MISMATCH
    certain = certain.copy()
    certain[at[0]] = True  # the worker kept the token it claims
    w = np.exp((l64[ids] - l64[ids].max()) / sampling.temperature)
    before = ids < token
    c_before = float(w[certain & before].sum())
    z_certain = float(w[certain].sum())
    w_amb_before = float(w[~certain & before].sum())
    w_amb = float(w[~certain].sum())
    w_t = float(w[at[0]])
    a_lo = c_before / (z_certain + w_amb)
    b_hi = (c_before + w_t + w_amb_before) / (z_certain + w_amb_before)
    wide = spread / sampling.temperature
    if _bounds(a_lo, wide)[0] <= u < (_bounds(b_hi, wide)[1] if b_hi < 1.0 else 1.0):
        return PositionCheck.TOLERATED
    return PositionCheck.MISMATCH


def _loose_set(l64: npt.NDArray[np.float64], sampling: SamplingParams,
               spread: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Tokens the worker may have kept when its logits differ from `l64` by up to spread/2 each,
    and which of them it certainly kept.

    Only a prefix of the ranking is examined: it grows (x4) until its last token lies more than
    `spread` below every possibly kept token, so that every token that could rank above one of
    them is inside it. Masses are vectorised; a 150k vocabulary costs a few partitions."""
    n = l64.shape[0]
    k = sampling.top_k if 0 < sampling.top_k < n else n
    top_p_on = sampling.top_p_micro < 1_000_000
    top = float(l64.max())
    if top_p_on:
        # Temperature-1 masses are normalised over the top-k set: the loose top-k set's larger
        # normaliser gives the lower bounds, the certain one's the upper bounds.
        if k < n:
            kth = float(np.partition(l64, n - k)[n - k])
            z_loose = float(np.exp(l64[l64 >= kth - spread] - top).sum())
            z_sure = float(np.exp(l64[l64 > kth + spread] - top).sum()) or z_loose
        else:
            z_loose = z_sure = float(np.exp(l64 - top).sum())
    cut = min(n, max(64, k + 1))
    while True:
        order = ranked(l64, cut)
        lv = l64[order]
        neg = -lv  # ascending, for searchsorted
        # How many tokens certainly / possibly rank above each one.
        certainly_above = np.searchsorted(neg, -(lv + spread), side="left")
        possibly_above = np.searchsorted(neg, -(lv - spread), side="right") - 1
        maybe = certainly_above < k
        sure = possibly_above < k
        if top_p_on:
            w = np.exp(lv - top)
            cum_w = np.concatenate(([0.0], np.cumsum(w)))
            lo = _bounds_array(np.minimum(cum_w[certainly_above] / z_loose, 1.0), spread)[0]
            hi = _bounds_array(np.minimum((cum_w[possibly_above + 1] - w) / z_sure, 1.0), spread)[1]
            maybe &= lo < sampling.top_p
            sure &= hi < sampling.top_p
        if cut >= n or not maybe.any() or lv[-1] < float(lv[maybe].min()) - spread:
            return order[maybe], sure[maybe]
        cut = min(n, cut * 4)


def _bounds_array(c: npt.NDArray[np.float64],
                  spread: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """`_bounds` for an array of mass fractions in [0, 1]."""
    up = math.exp(spread)
    return c / (c + (1 - c) * up), c * up / (c * up + (1 - c))


def _possibly_kept(l64: npt.NDArray[np.float64], token: int, sampling: SamplingParams, spread: float) -> bool:
    """O(vocabulary) pre-check: could any worker within the tolerance have kept `token` at all?
    (Fewer than k tokens certainly above it, and their mass possibly under top_p.) Made-up tokens
    fail here without sorting anything."""
    n = l64.shape[0]
    k = sampling.top_k if 0 < sampling.top_k < n else n
    above = l64 > l64[token] + spread
    if int(above.sum()) >= k:
        return False
    if sampling.top_p_micro >= 1_000_000:
        return True
    top = float(l64.max())
    if k < n:
        kth = float(np.partition(l64, n - k)[n - k])
        z_loose = float(np.exp(l64[l64 >= kth - spread] - top).sum())
    else:
        z_loose = float(np.exp(l64 - top).sum())
    mass = min(float(np.exp(l64[above] - top).sum()) / z_loose, 1.0)
    return _bounds(mass, spread)[0] < sampling.top_p


def _find_stop(text: bytes, stops: Sequence[bytes]) -> bool:
    return any(s in text for s in stops)


def check_termination(scorer: Scorer, output_tokens: Sequence[int], finish_reason: str, max_tokens: int,
                      stop_strings: Sequence[str], eog_tokens: Collection[int]) -> str | None:
    """Why the claimed ending is impossible, or None when it is consistent.

    eos: the last token ends generation and no earlier one does. stop: the text contains a stop
    string and the text before the last token does not (generation stops at the first one).
    length: exactly max_tokens tokens, with no end token and no stop string. cancelled: fewer than
    max_tokens, no end token, no stop string. No stop string may appear before the claimed end.
    """
    if finish_reason not in FINISH_REASONS:
        return f"unknown finish reason {finish_reason!r}"
    n = len(output_tokens)
    if n > max_tokens:
        return f"{n} tokens exceed max_tokens {max_tokens}"
    early = [i for i, t in enumerate(output_tokens[:-1]) if t in eog_tokens]
    if early:
        return f"end-of-generation token at position {early[0]} before the end"
    stops = [s.encode("utf-8") for s in stop_strings]
    ends_with_eog = n > 0 and output_tokens[-1] in eog_tokens
    full = scorer.detokenize_bytes(output_tokens)
    if finish_reason == "eos":
        if not ends_with_eog:
            return "claims eos but the last token is not an end-of-generation token"
    elif ends_with_eog:
        return f"ends with an end-of-generation token but claims {finish_reason}"
    if finish_reason == "stop":
        if not stops or not _find_stop(full, stops):
            return "claims stop but the output contains no stop string"
        if _find_stop(scorer.detokenize_bytes(output_tokens[:-1]), stops):
            return "a stop string occurs before the last token"
        return None
    if _find_stop(full, stops):
        return f"contains a stop string but claims {finish_reason}"
    if finish_reason == "length" and n != max_tokens:
        return f"claims length with {n} of {max_tokens} tokens"
    if finish_reason == "cancelled" and n >= max_tokens:
        return "claims cancelled with all max_tokens tokens"
    return None


def verify_llm_output(scorer: Scorer, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
                      sampling: SamplingParams, finish_reason: str, stop_strings: Sequence[str] | None,
                      eos_token: int | Collection[int], *, positions: Sequence[int] | None = None,
                      greedy_margin: float = GREEDY_MARGIN, logit_tolerance: float = LOGIT_TOLERANCE,
                      mismatch_allowance: float = MISMATCH_ALLOWANCE,
                      check_draw: bool = True) -> VerifyOutcome:
    """Check a claimed LLM output by teacher forcing.

    `prompt_tokens` must be the validator's own tokenization of the job's input (never the
    worker's). `positions` restricts the check to those output positions (see `choose_positions`);
    the last position is added for "eos" and "stop" answers, because it carries the termination
    claim. `stop_strings` defaults to `sampling.stop`; `eos_token` is the model's EOS or its set of
    end tokens. `check_draw` False checks sampled tokens for membership only (receipts whose
    execution was not deterministic).
    """
    output = [int(t) for t in output_tokens]
    n = len(output)
    stops = sampling.stop if stop_strings is None else tuple(stop_strings)
    eog = frozenset({eos_token}) if isinstance(eos_token, int) else frozenset(eos_token)
    bad = [i for i, t in enumerate(output) if not 0 <= t < scorer.n_vocab]
    if bad:
        return VerifyOutcome("invalid", 0.0, 0, bad[0], f"token id {output[bad[0]]} outside the vocabulary")
    why = check_termination(scorer, output, finish_reason, sampling.max_tokens, stops, eog)
    if why is not None:
        return VerifyOutcome("invalid", 0.0, 0, max(n - 1, 0), f"termination: {why}")
    if positions is None:
        wanted = list(range(n))
    else:
        if any(not 0 <= p < n for p in positions):
            raise ValueError("positions outside the output")
        # The token that ends an "eos" or "stop" answer is what a truncating cheater makes up: it is
        # always checked. A "length" answer has no such token, and the pass stops at the last
        # position checked.
        last = {n - 1} if n and finish_reason in ("eos", "stop") else set()
        wanted = sorted(set(positions) | last)
    if not wanted:
        return VerifyOutcome("inconclusive", 1.0, 0, None, "no output tokens to check")
    try:
        rows = scorer.score(prompt_tokens, output, wanted)
    except ContextOverflowError as exc:
        return VerifyOutcome("inconclusive", 1.0, 0, None, f"cannot score: {exc}")
    except BackendError as exc:
        return VerifyOutcome("inconclusive", 1.0, 0, None, f"scorer failed: {exc}")
    allowed = math.floor(mismatch_allowance * len(wanted))
    mismatches = tolerated = checked = 0
    first_bad: int | None = None
    for row, pos in zip(rows, wanted, strict=True):
        result = check_position(row, output[pos], sampling, pos, greedy_margin=greedy_margin,
                                logit_tolerance=logit_tolerance, check_draw=check_draw)
        checked += 1
        if result is PositionCheck.MISMATCH:
            mismatches += 1
            if first_bad is None:
                first_bad = pos
            if mismatches > allowed:
                break  # the verdict is settled: a fake costs the validator no more than this
        elif result is PositionCheck.TOLERATED:
            tolerated += 1
    score = (checked - mismatches) / checked
    if mismatches == 0:
        verdict: Verdict = "valid"
        reason = "all checked tokens consistent"
    elif mismatches <= allowed:
        verdict = "inconclusive"
        reason = f"{mismatches} of {checked} tokens inconsistent (within the allowance of {allowed})"
    else:
        verdict = "invalid"
        reason = f"{mismatches} inconsistent tokens in {checked} checked, first at position {first_bad}"
    return VerifyOutcome(verdict, score, checked, first_bad, reason, mismatches, tolerated)


def _tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    h = hashlib.sha256(tag)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    return h.digest()


def should_check(beacon: bytes, receipt_id: bytes, rate: float) -> bool:
    """Whether a validator re-checks this receipt: sha256(tag, beacon, receipt id)'s first 8 bytes,
    as a big-endian integer, below rate * 2^64. The beacon (e.g. a block hash after the receipt)
    must not be known to the worker when it commits to the receipt."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must lie in [0, 1]")
    x = int.from_bytes(_tagged_hash(_CHECK_TAG, beacon, receipt_id)[:8], "big")
    return x < int(rate * 2 ** 64) or rate == 1.0


def choose_positions(beacon: bytes, receipt_id: bytes, n_out: int, k: int) -> list[int]:
    """k distinct output positions (sorted; all of them when k >= n_out), by a partial
    Fisher-Yates shuffle driven by sha256(seed || counter), seed = sha256(tag, beacon, receipt id)."""
    if n_out < 0 or k < 0:
        raise ValueError("n_out and k must be non-negative")
    if k >= n_out:
        return list(range(n_out))
    seed = _tagged_hash(_POSITIONS_TAG, beacon, receipt_id)
    counter = 0

    def below(bound: int) -> int:
        nonlocal counter
        limit = (2 ** 64 // bound) * bound  # rejection sampling: no modulo bias
        while True:
            x = int.from_bytes(hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()[:8], "big")
            counter += 1
            if x < limit:
                return x % bound

    swapped: dict[int, int] = {}
    chosen: list[int] = []
    for i in range(k):
        j = i + below(n_out - i)
        chosen.append(swapped.get(j, j))
        swapped[j] = swapped.get(i, i)
    return sorted(chosen)
