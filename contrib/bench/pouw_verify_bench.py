#!/usr/bin/env python3
"""PoUW verification benchmark: generating 128-token answers vs teacher-forced checking of them.

Generates a random-weight llama model (default 4 layers x 512 wide, f32, about 52 MB: bigger than
the test model so that the forward pass, not Python overhead, dominates), then for several
prompts: generates a 128-token answer with `LlamaCppBackend` (greedy and sampled, PoUW sampler),
times the same generation through llama-cpp-python's own sampler for reference, and checks each
answer with `verify_llm_output` (one batched forward pass over prompt + answer, then the
per-position checks), fully and at k beacon-chosen positions (the answers end by length, so the
pass stops at the last chosen position and computes logits only there). Prints milliseconds, the
check/generate ratio (target: <= 0.25) and the PoUW sampler's cost against the native one. Not a
test: it asserts only that every honest answer verifies.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pouw.backends.llamacpp import LlamaCppBackend  # noqa: E402
from pouw.jobspec import SamplingParams  # noqa: E402
from pouw.tinymodel import write_tiny_llama  # noqa: E402
from pouw.verify import choose_positions, verify_llm_output  # noqa: E402

PROMPTS = ["The grid serves models to everyone who asks, and", "Once upon a time in a data centre",
           "def verify(receipt):\n    ", "Proof of useful work means", "AIPG node operators"]


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=512)
    ap.add_argument("--n-ff", type=int, default=0, help="feed-forward width (default 2.75 x n_embd)")
    ap.add_argument("--tokens", type=int, default=128, help="answer length")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--k", default="1,4,16", help="position sample sizes to time")
    args = ap.parse_args()
    n_ff = args.n_ff or int(args.n_embd * 2.75) // 64 * 64
    ks = [int(k) for k in args.k.split(",") if k]

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.gguf"
        # eos_boost 1.0: answers run to the full length instead of ending by EOS.
        write_tiny_llama(path, seed=11, n_layers=args.layers, n_embd=args.n_embd, n_head=8, n_ff=n_ff,
                         n_ctx=512, eos_boost=1.0)
        size_mb = path.stat().st_size / 1e6
        backend = LlamaCppBackend(path, n_threads=args.threads, n_batch=512, probe=False)
        native = llama_cpp.Llama(str(path), n_ctx=512, n_batch=512, n_threads=args.threads,
                                 n_threads_batch=args.threads, verbose=False)
        print(f"model: llama {args.layers} layers x {args.n_embd} wide, ffn {n_ff}, f32, {size_mb:.0f} MB; "
              f"{args.threads} thread(s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        samplers = {
            "greedy": SamplingParams(max_tokens=args.tokens),
            "sampled": SamplingParams(max_tokens=args.tokens, temperature_milli=800, top_k=40,
                                      top_p_micro=950_000, seed=1),
        }
        for label, sampling in samplers.items():
            gen: list[float] = []
            nat: list[float] = []
            check: list[float] = []
            score_only: list[float] = []
            sub: dict[int, list[float]] = {k: [] for k in ks}
            for i, text in enumerate(PROMPTS[: args.prompts]):
                prompt = backend.prompt_tokens(text)
                sp = replace(sampling, seed=sampling.seed + i)
                t = time.perf_counter()
                result = backend.generate(prompt, sp)
                gen.append(time.perf_counter() - t)
                n_out = len(result.tokens)
                # The same work through llama-cpp-python's own sampler (timing reference only).
                native.reset()
                t = time.perf_counter()
                for produced, _tok in enumerate(native.generate(prompt, temp=sp.temperature, top_k=sp.top_k,
                                                                top_p=sp.top_p, min_p=0.0, reset=True), 1):
                    if produced >= n_out:
                        break
                nat.append(time.perf_counter() - t)
                t = time.perf_counter()
                outcome = verify_llm_output(backend, prompt, result.tokens, sp, result.finish_reason, None,
                                            backend.eog_tokens)
                check.append(time.perf_counter() - t)
                if outcome.verdict != "valid":
                    raise SystemExit(f"honest answer not verified: {outcome}")
                t = time.perf_counter()
                backend.score(prompt, result.tokens)
                score_only.append(time.perf_counter() - t)
                for k in ks:
                    positions = choose_positions(b"bench-beacon", i.to_bytes(4, "little"), n_out, k)
                    t = time.perf_counter()
                    outcome = verify_llm_output(backend, prompt, result.tokens, sp, result.finish_reason,
                                                None, backend.eog_tokens, positions=positions)
                    sub[k].append(time.perf_counter() - t)
                    assert outcome.verdict == "valid"
            # Best of the runs: the minimum is the least disturbed by other load on the machine.
            g, n, c, s = (_ms(min(x)) for x in (gen, nat, check, score_only))
            print(f"\n[{label}] {args.tokens}-token answers, prompts of ~{len(prompt)} tokens, best of "
                  f"{len(gen)}:")
            print(f"  generate (PoUW sampler)        {g:9.1f} ms  {args.tokens / g * 1000:8.1f} tok/s")
            print(f"  generate (llama.cpp sampler)   {n:9.1f} ms  {args.tokens / n * 1000:8.1f} tok/s"
                  f"   PoUW sampler cost: {g / n:.2f}x")
            print(f"  check, full (score + checks)   {c:9.1f} ms  ratio check/generate = {c / g:.3f}"
                  f"  (target <= 0.25)")
            print(f"  of which the forward pass      {s:9.1f} ms")
            for k in ks:
                km = _ms(min(sub[k]))
                print(f"  check, k={k:<3d} positions        {km:9.1f} ms  ratio = {km / g:.3f}")
        native.close()
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
