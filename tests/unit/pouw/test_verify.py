"""Teacher-forced verification: honest workers are never flagged, fakes (random tokens, another
model's output, truncated answers) are caught on every checked receipt, the sampler and its
tolerance rules hold, and receipt/position sampling follows the beacon."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from pouw.backends.base import ContextOverflowError
from pouw.backends.llamacpp import LlamaCppBackend
from pouw.jobspec import SamplingParams
from pouw.sampling import candidates, draw_uniform, sample_token
from pouw.tinymodel import EOS_ID, write_tiny_llama
from pouw.verify import (
    LOGIT_TOLERANCE,
    PositionCheck,
    check_position,
    choose_positions,
    should_check,
    verify_llm_output,
)

BEACON = hashlib.sha256(b"block 1000").digest()

# The honest mix: greedy and sampled, with and without top-k/top-p, hot and cold.
SAMPLERS = [
    dict(temperature_milli=0),
    dict(temperature_milli=700, top_k=40, top_p_micro=950_000),
    dict(temperature_milli=1000),
    dict(temperature_milli=1300, top_k=10),
    dict(temperature_milli=500, top_p_micro=800_000),
]


def _job(backend: LlamaCppBackend, i: int) -> tuple[list[int], SamplingParams]:
    """Job i of the mix: a completion or a chat prompt, 8..16 tokens, stop strings now and then."""
    stop = tuple("etaoins ") if i % 4 == 3 else ()
    sampling = SamplingParams(max_tokens=8 + i % 9, seed=10_000 + i, stop=stop, **SAMPLERS[i % len(SAMPLERS)])
    if i % 3 == 0:
        prompt = backend.chat_prompt_tokens([("user", f"Question {i}: what is {i} + {i}?")])
    else:
        prompt = backend.prompt_tokens(f"Job {i}: the grid says")
    return prompt, sampling


def _verify(backend: LlamaCppBackend, prompt: list[int], tokens: Sequence[int], sampling: SamplingParams,
            finish: str, positions: Sequence[int] | None = None) -> str:
    return verify_llm_output(backend, prompt, tokens, sampling, finish, None, backend.eog_tokens,
                             positions=positions).verdict


# --- detection on real models ---------------------------------------------------------------------

def test_honest_worker_is_never_flagged_across_200_jobs(tiny_backend: LlamaCppBackend) -> None:
    endings: dict[str, int] = {}
    for i in range(200):
        prompt, sampling = _job(tiny_backend, i)
        result = tiny_backend.generate(prompt, sampling)
        endings[result.finish_reason] = endings.get(result.finish_reason, 0) + 1
        outcome = verify_llm_output(tiny_backend, prompt, result.tokens, sampling, result.finish_reason, None,
                                    tiny_backend.eog_tokens)
        assert outcome.verdict == "valid", (i, outcome)
        assert outcome.score == 1.0 and outcome.checked == len(result.tokens)
        positions = choose_positions(BEACON, i.to_bytes(32, "little"), len(result.tokens), 4)
        sampled = _verify(tiny_backend, prompt, result.tokens, sampling, result.finish_reason, positions)
        assert sampled == "valid", i
    # The mix exercises every honest ending.
    assert endings.get("length", 0) > 20 and endings.get("eos", 0) > 10 and endings.get("stop", 0) > 5


def _fakes(tiny_backend: LlamaCppBackend, other_backend: LlamaCppBackend,
           kind: str) -> Iterator[tuple[list[int], SamplingParams, tuple[int, ...], str]]:
    rng = np.random.RandomState(7)
    made = 0
    for i in range(1000):
        prompt, sampling = _job(tiny_backend, i)
        honest = tiny_backend.generate(prompt, sampling)
        if kind == "random":
            tokens = tuple(int(t) for t in rng.randint(3, tiny_backend.n_vocab, size=sampling.max_tokens))
            yield prompt, sampling, tokens, "length"
        elif kind == "other-model":
            other = other_backend.generate(prompt, sampling)
            if other.tokens == honest.tokens:
                continue  # the same answer is not a fake
            yield prompt, sampling, other.tokens, other.finish_reason
        else:
            if len(honest.tokens) < 4 or honest.finish_reason == "stop":
                continue
            cut = honest.tokens[:len(honest.tokens) // 2]
            claim = ("stop", "eos", "length")[made % 3]
            yield prompt, sampling, cut + ((EOS_ID,) if claim == "eos" else ()), claim
        made += 1
        if made == 20:
            return
    raise AssertionError(f"could not make 20 {kind} fakes")


@pytest.mark.parametrize("kind", ["random", "other-model", "truncated"])
def test_fake_outputs_are_caught_on_every_checked_receipt(tiny_backend: LlamaCppBackend,
                                                          other_backend: LlamaCppBackend, kind: str) -> None:
    caught = 0
    for n, (prompt, sampling, tokens, claim) in enumerate(_fakes(tiny_backend, other_backend, kind)):
        full = verify_llm_output(tiny_backend, prompt, tokens, sampling, claim, None, tiny_backend.eog_tokens)
        assert full.verdict == "invalid", (kind, n, full)
        assert full.first_bad is not None and full.score < 1.0
        positions = choose_positions(BEACON, n.to_bytes(32, "little"), len(tokens), 4)
        assert _verify(tiny_backend, prompt, tokens, sampling, claim, positions) == "invalid"
        caught += 1
    assert caught == 20


def test_a_validator_on_f16_weights_still_accepts_honest_f32_work(tmp_path_factory: pytest.TempPathFactory,
                                                                  tiny_backend: LlamaCppBackend) -> None:
    """The same weights stored as f16 move logits by up to about 0.04: within LOGIT_TOLERANCE, so
    an honest worker on different numerics is not flagged (the margin's calibration)."""
    path = tmp_path_factory.mktemp("f16") / "tiny-s1-f16.gguf"
    write_tiny_llama(path, seed=1, f16=True)
    validator = LlamaCppBackend(path, probe=False)
    try:
        for i in range(40):
            prompt, sampling = _job(tiny_backend, i)
            result = tiny_backend.generate(prompt, sampling)
            assert _verify(validator, prompt, result.tokens, sampling, result.finish_reason) == "valid", i
    finally:
        validator.close()


# --- termination ------------------------------------------------------------------------------------

class TableScorer:
    """A scorer with fixed logits (one row per output position) and a one-byte-per-token vocabulary
    (token t renders as chr(t)), for rules that need no model."""

    n_vocab = 128

    def __init__(self, rows: npt.NDArray[np.float32]) -> None:
        self.rows = rows

    def score(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int],
              positions: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
        wanted = range(len(output_tokens)) if positions is None else positions
        if len(prompt_tokens) > 1000:
            raise ContextOverflowError("too long")
        return self.rows[list(wanted)]

    def detokenize_bytes(self, tokens: Sequence[int]) -> bytes:
        return bytes(t for t in tokens if t != 0)  # token 0 is EOS: renders empty


def _greedy_rows(tokens: Sequence[int]) -> npt.NDArray[np.float32]:
    """Logits under which each token is the clear argmax."""
    rows = np.zeros((max(len(tokens), 1), TableScorer.n_vocab), dtype=np.float32)
    for i, t in enumerate(tokens):
        rows[i, t] = 10.0
    return rows


def _check(tokens: Sequence[int], finish: str) -> str:
    """The verdict of a greedy claim (max_tokens 8, stop "xy", EOS = token 0), or the reason it is
    invalid."""
    outcome = verify_llm_output(TableScorer(_greedy_rows(tokens)), [1], tokens,
                                SamplingParams(max_tokens=8, stop=("xy",)), finish, None, 0)
    return outcome.verdict if outcome.verdict != "invalid" else outcome.reason


def test_termination_rules() -> None:
    a, b, x, y = (ord(c) for c in "abxy")
    assert _check([a, b, a, b, a, b, a, b], "length") == "valid"
    assert _check([a, b, a, 0], "eos") == "valid"
    assert _check([a, b, x, y], "stop") == "valid"
    assert _check([a, b], "cancelled") == "valid"
    assert _check([], "cancelled") == "inconclusive"
    assert "claims stop but" in _check([a, b, a], "stop")
    assert "claims eos but" in _check([a, b, a], "eos")
    assert "claims length with 3 of 8" in _check([a, b, a], "length")
    assert "before the end" in _check([a, 0, b, 0], "eos")
    assert "occurs before the last token" in _check([x, y, a, x, y], "stop")
    assert "contains a stop string but claims length" in _check([a, x, y, a, b, a, b, a], "length")
    assert "exceed max_tokens" in _check([a] * 9, "length")
    assert "claims cancelled with all" in _check([a] * 8, "cancelled")
    assert "unknown finish reason" in _check([a], "done")
    assert "end-of-generation token but claims length" in _check([a, b, a, b, a, b, a, 0], "length")


def test_out_of_vocabulary_tokens_and_unscorable_inputs() -> None:
    scorer = TableScorer(_greedy_rows([5, 6]))
    bad = verify_llm_output(scorer, [1], [5, 500], SamplingParams(max_tokens=2), "length", None, 0)
    assert bad.verdict == "invalid" and bad.first_bad == 1 and "outside the vocabulary" in bad.reason
    long_prompt = verify_llm_output(scorer, [1] * 2000, [5, 6], SamplingParams(max_tokens=2), "length", None,
                                    0)
    assert long_prompt.verdict == "inconclusive" and "cannot score" in long_prompt.reason


def test_a_few_mismatches_in_a_long_output_are_inconclusive_not_invalid() -> None:
    tokens = [ord("a")] * 100
    sampling = SamplingParams(max_tokens=100)
    rows = _greedy_rows(tokens)
    rows[40, ord("b")] = 20.0  # at one position the claimed token trails the argmax by 10 logits
    outcome = verify_llm_output(TableScorer(rows), [1], tokens, sampling, "length", None, 0)
    assert (outcome.verdict, outcome.mismatches, outcome.first_bad) == ("inconclusive", 1, 40)
    rows[41:44, ord("b")] = 20.0
    outcome = verify_llm_output(TableScorer(rows), [1], tokens, sampling, "length", None, 0)
    # Invalid once a third mismatch exceeds the allowance of 2: checking stops there.
    assert (outcome.verdict, outcome.mismatches, outcome.checked) == ("invalid", 3, 43)


# --- per-position rules and the sampler ----------------------------------------------------------------

def test_greedy_margin() -> None:
    logits = np.array([0.0, 5.0, 4.95, 4.0], dtype=np.float32)
    greedy = SamplingParams(max_tokens=1)
    assert check_position(logits, 1, greedy, 0) is PositionCheck.EXACT
    assert check_position(logits, 2, greedy, 0) is PositionCheck.TOLERATED
    assert check_position(logits, 3, greedy, 0) is PositionCheck.MISMATCH


def test_sampled_token_outside_top_k_is_a_mismatch() -> None:
    logits = np.array([3.0, 2.0, 1.0, 0.0, -1.0], dtype=np.float32)
    sampling = SamplingParams(max_tokens=1, temperature_milli=1000, top_k=2, seed=5)
    drawn = sample_token(logits, sampling, 0)
    assert drawn in (0, 1)
    assert check_position(logits, drawn, sampling, 0) is PositionCheck.EXACT
    assert check_position(logits, 2, sampling, 0) is PositionCheck.MISMATCH
    assert check_position(logits, 1 - drawn, sampling, 0) is PositionCheck.MISMATCH  # wrong draw
    # Membership only (a worker whose server ran its own sampler): any kept token passes.
    assert check_position(logits, 1 - drawn, sampling, 0, check_draw=False) is PositionCheck.EXACT
    assert check_position(logits, 2, sampling, 0, check_draw=False) is PositionCheck.MISMATCH


def test_honest_draws_under_logit_noise_are_never_mismatches() -> None:
    """Worker logits = validator logits + noise within LOGIT_TOLERANCE, including near-ties and
    top-k/top-p boundaries (logits on a coarse grid): the claimed draw always passes."""
    rng = np.random.RandomState(3)
    results = {c: 0 for c in PositionCheck}
    for _ in range(3000):
        n = int(rng.choice([5, 50, 400]))
        logits = rng.standard_normal(n) * float(rng.choice([0.3, 2.0, 8.0]))
        if rng.rand() < 0.4:
            logits = np.round(logits / 0.04) * 0.04
        sampling = SamplingParams(max_tokens=1, temperature_milli=int(rng.choice([0, 100, 700, 1000, 2000])),
                                  top_k=int(rng.choice([0, 1, 2, 5, 40])),
                                  top_p_micro=int(rng.choice([1_000_000, 950_000, 500_000, 100_000])),
                                  seed=int(rng.randint(1 << 30)))
        worker = (logits + rng.uniform(-LOGIT_TOLERANCE, LOGIT_TOLERANCE, n)).astype(np.float32)
        position = int(rng.randint(100))
        result = check_position(logits.astype(np.float32), sample_token(worker, sampling, position), sampling,
                                position)
        results[result] += 1
    assert results[PositionCheck.MISMATCH] == 0
    assert results[PositionCheck.EXACT] > 0.9 * 3000  # the tolerance is rarely needed


def test_draw_uniform_is_the_documented_hash() -> None:
    # sha256("aipg-pouw-sampler/v1" || u64le(seed) || u32le(position)), top 53 bits.
    digest = hashlib.sha256(b"aipg-pouw-sampler/v1" + (42).to_bytes(8, "little") + (7).to_bytes(4, "little"))
    assert draw_uniform(42, 7) == (int.from_bytes(digest.digest()[:8], "big") >> 11) / 2 ** 53
    assert draw_uniform(42, 7) == 0.008074040541492744  # pinned: changing the sampler is a new version
    assert 0.0 <= draw_uniform(0, 0) < 1.0 and draw_uniform(1, 0) != draw_uniform(0, 1)


def test_candidates_apply_top_k_then_top_p_then_temperature() -> None:
    logits = np.log(np.array([0.05, 0.4, 0.3, 0.2, 0.05]))
    both = candidates(logits, SamplingParams(max_tokens=1, temperature_milli=1000, top_k=3,
                                             top_p_micro=700_000))
    assert both.ids.tolist() == [1, 2]  # top-3 is {1, 2, 3}; within it 0.4/0.9 + 0.3/0.9 >= 0.7
    np.testing.assert_allclose(both.probs, [0.4 / 0.7, 0.3 / 0.7])
    hot = candidates(logits, SamplingParams(max_tokens=1, temperature_milli=2000, top_k=2))
    np.testing.assert_allclose(hot.probs, np.sqrt([0.4, 0.3]) / np.sqrt([0.4, 0.3]).sum())
    every = candidates(logits, SamplingParams(max_tokens=1, temperature_milli=1000))
    assert every.ids.tolist() == [0, 1, 2, 3, 4]
    big = np.random.RandomState(0).standard_normal(5000)
    nucleus = candidates(big, SamplingParams(max_tokens=1, temperature_milli=1000, top_p_micro=900_000))
    order = np.argsort(-big)
    probs = np.exp(big - big.max())
    cum = np.cumsum(probs[order] / probs.sum())
    assert sorted(nucleus.ids.tolist()) == sorted(order[: int(np.argmax(cum >= 0.9)) + 1].tolist())


def test_greedy_ties_take_the_lowest_token_id() -> None:
    assert sample_token(np.array([1.0, 3.0, 3.0], dtype=np.float32), SamplingParams(max_tokens=1), 0) == 1


# --- sampling what to check ---------------------------------------------------------------------------

def test_choose_positions_is_deterministic_distinct_and_follows_the_beacon() -> None:
    rid = bytes(32)
    chosen = choose_positions(BEACON, rid, 128, 8)
    assert chosen == choose_positions(BEACON, rid, 128, 8)
    assert chosen == sorted(set(chosen)) and len(chosen) == 8 and all(0 <= p < 128 for p in chosen)
    assert chosen != choose_positions(hashlib.sha256(b"other").digest(), rid, 128, 8)
    assert chosen != choose_positions(BEACON, b"\x01" * 32, 128, 8)
    assert choose_positions(BEACON, rid, 5, 8) == [0, 1, 2, 3, 4]
    assert choose_positions(BEACON, rid, 5, 0) == []
    counts = np.zeros(10)
    for i in range(2000):
        counts[choose_positions(BEACON, i.to_bytes(4, "little"), 10, 3)] += 1
    assert np.all(np.abs(counts / 2000 - 0.3) < 0.05)


def test_should_check_samples_receipts_at_the_rate() -> None:
    ids = [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(4000)]
    assert not any(should_check(BEACON, r, 0.0) for r in ids)
    assert all(should_check(BEACON, r, 1.0) for r in ids)
    picked = [r for r in ids if should_check(BEACON, r, 0.25)]
    assert abs(len(picked) / 4000 - 0.25) < 0.03
    assert picked != [r for r in ids if should_check(b"another beacon", r, 0.25)]
    with pytest.raises(ValueError):
        should_check(BEACON, ids[0], 1.5)


def test_verify_checks_the_last_position_even_when_not_sampled(tiny_backend: LlamaCppBackend) -> None:
    """A fake EOS appended to an honest prefix sits at the last position: always checked."""
    greedy = SamplingParams(max_tokens=16)
    for i in range(50):
        prompt = tiny_backend.prompt_tokens(f"Last position {i}")
        result = tiny_backend.generate(prompt, greedy)
        if result.finish_reason == "length":
            break
    fake = (*result.tokens[:6], EOS_ID)
    outcome = verify_llm_output(tiny_backend, prompt, fake, greedy, "eos", None, tiny_backend.eog_tokens,
                                positions=[0])
    assert outcome.verdict == "invalid" and outcome.first_bad == 6 and outcome.checked == 2
