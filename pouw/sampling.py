"""The PoUW token sampler: a pure, documented function of (logits, sampling parameters, seed, position).

Owns the sampler that workers run and validators re-run: greedy argmax, or top-k -> top-p ->
temperature -> one draw from a counter-mode sha256 PRNG keyed by (seed, output position). Nothing in
it depends on the backend, the thread count or earlier draws, so a validator holding the receipt's
seed can recompute any single position's draw. It must never use a stateful or library RNG.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pouw.jobspec import SamplingParams

__all__ = ["SAMPLER_TAG", "Candidates", "candidates", "draw_uniform", "nucleus", "ranked", "sample_token",
           "select_by_draw"]

SAMPLER_TAG = b"aipg-pouw-sampler/v1"
_FIRST_CUT = 64  # candidates examined first when top-p alone is active; x4 until the nucleus fits


def draw_uniform(seed: int, position: int) -> float:
    """The uniform draw in [0, 1) for output position `position` (0 = first generated token):
    the top 53 bits of sha256(SAMPLER_TAG || seed as u64 LE || position as u32 LE), big-endian,
    times 2^-53. Exactly representable in a double, identical on every machine."""
    message = SAMPLER_TAG + seed.to_bytes(8, "little") + position.to_bytes(4, "little")
    digest = hashlib.sha256(message).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) * 2.0 ** -53


@dataclass(frozen=True, slots=True)
class Candidates:
    """The sampler's kept tokens at one position, in ascending token-id order, with their
    tempered probabilities (float64, summing to 1)."""

    ids: npt.NDArray[np.int64]
    probs: npt.NDArray[np.float64]


def ranked(logits: npt.NDArray[np.float64], limit: int) -> npt.NDArray[np.int64]:
    """The `limit` best token ids by (logit descending, token id ascending), exactly that order."""
    n = logits.shape[0]
    if limit >= n:
        idx = np.arange(n, dtype=np.int64)
    else:
        # Everything tied with the limit-th logit must be considered for the id tie-break.
        threshold = np.partition(logits, n - limit)[n - limit]
        idx = np.flatnonzero(logits >= threshold).astype(np.int64)
    # idx is ascending, so a stable sort on the logit alone breaks ties by token id.
    order = np.argsort(-logits[idx], kind="stable")
    return idx[order][:limit]


def _softmax(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(x - x.max())
    out: npt.NDArray[np.float64] = e / e.sum()
    return out


def nucleus(l64: npt.NDArray[np.float64], k: int,
            top_p: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """The top-p cut over the k best tokens (k = n_vocab: no top-k).

    Returns a prefix of the ranking that holds the nucleus, the cumulative temperature-1 masses
    along it (normalised over all k tokens) and the nucleus size m. Without top-k only as much of
    the ranking is sorted as needed: vocabularies run to 150k tokens and a nucleus to a few hundred.
    """
    n = l64.shape[0]
    if k < n:
        order = ranked(l64, k)
        weights = np.exp(l64[order] - l64[order[0]])
        cum = np.cumsum(weights / weights.sum())
        return order, cum, _nucleus_size(cum, top_p)
    weights = np.exp(l64 - l64.max())
    z = float(weights.sum())
    cut = _FIRST_CUT
    while cut < n:
        # The tokens at or above the cut-th logit are a prefix of the ranking (ties included);
        # sort them only once they hold the nucleus.
        threshold = np.partition(l64, n - cut)[n - cut]
        chosen = np.flatnonzero(l64 >= threshold)
        if float(weights[chosen].sum()) / z >= top_p:
            order = chosen[np.argsort(-l64[chosen], kind="stable")].astype(np.int64)
            break
        cut *= 4
    else:
        order = ranked(l64, n)
    cum = np.cumsum(weights[order] / z)
    return order, cum, _nucleus_size(cum, top_p)


def candidates(logits: npt.NDArray[np.floating], sampling: SamplingParams) -> Candidates:
    """The kept set and its probabilities for a sampled (temperature > 0) position.

    1. top-k (k > 0): the k best tokens by (logit desc, id asc).
    2. top-p (top_p < 1): of those, in the same order, the shortest prefix whose probability mass at
       temperature 1 (softmax over the top-k set) reaches top_p; at least one token. This is
       llama.cpp's order (top-k, top-p, then temperature).
    3. temperature: probabilities softmax(logit / T) over the kept tokens.
    """
    l64 = np.asarray(logits, dtype=np.float64)
    n = l64.shape[0]
    k = sampling.top_k if 0 < sampling.top_k < n else n
    if sampling.top_p_micro < 1_000_000:
        order, _cum, m = nucleus(l64, k, sampling.top_p)
        ids = order[:m]
    elif k < n:
        ids = ranked(l64, k)
    else:
        ids = np.arange(n, dtype=np.int64)
    temperature = sampling.temperature
    ids = np.sort(ids)
    probs = _softmax(l64[ids] / temperature)
    return Candidates(ids, probs)


def _nucleus_size(cum: npt.NDArray[np.float64], top_p: float) -> int:
    """Length of the shortest prefix whose cumulative mass reaches top_p (all of it if rounding
    leaves the total just under top_p; at least one token)."""
    reached = np.flatnonzero(cum >= top_p)
    return int(reached[0]) + 1 if reached.size else int(cum.shape[0])


def select_by_draw(cands: Candidates, u: float) -> int:
    """Inverse-CDF selection: the first kept token (in token-id order) whose cumulative probability
    exceeds u."""
    cum = np.cumsum(cands.probs)
    i = int(np.searchsorted(cum, u, side="right"))
    return int(cands.ids[min(i, cands.ids.shape[0] - 1)])


def sample_token(logits: npt.NDArray[np.floating], sampling: SamplingParams, position: int) -> int:
    """The token the PoUW sampler draws at output `position` from `logits` (one row, n_vocab)."""
    if sampling.greedy:
        return int(np.argmax(logits))  # numpy returns the lowest id among equal maxima
    return select_by_draw(candidates(logits, sampling), draw_uniform(sampling.seed, position))
