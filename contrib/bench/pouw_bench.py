#!/usr/bin/env python3
"""PoUW benchmark: tokens/s through a node's OpenAI-compatible API vs llama.cpp called directly.

Generates a benchmark model (random weights, llama architecture, larger than the test model so
that compute dominates) and measures, alternating to share the machine's noise:
- direct: llama-cpp-python's own `Llama.create_completion` on the model, greedy, `--tokens` tokens;
- node: a real `aipgd -regtest -pouwapi -pouwmodel=...` process, the same request through the
  official `openai` client (HTTP, admission, queue, routing, our worker and sampler, the signed
  receipt, the job store).
Both use the same thread count. It prints tokens/s of each (completion tokens over the request's
wall time), their ratio (target >= 0.9x), the job routing latency p50/p99 (submission to a worker
starting the job, from `pouw_getstats` after a series of one-token requests), and the
verification cost: the validator's teacher-forced check of the same outputs vs their generation.

Usage: python contrib/bench/pouw_bench.py [--tokens 128] [--runs 5] [--threads 2] [--embd 384]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pouw.tinymodel import write_tiny_llama  # noqa: E402

PROMPT = "The grid serves models to everyone who asks, and"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc(port: int, cookie: Path, method: str, *params: Any) -> Any:
    auth = cookie.read_text().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(
        {"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode())
    import base64
    req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["result"]


def direct_runs(model: Path, threads: int, tokens: int, runs: int, n_ctx: int) -> list[float]:
    """tokens/s of llama-cpp-python's own completion call (greedy, EOS ignored so every run makes
    `tokens` tokens, like max_tokens through the node)."""
    from llama_cpp import Llama
    llm = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, seed=1,
                verbose=False)
    out = []
    for _ in range(runs):
        llm.reset()
        start = time.perf_counter()
        r = llm.create_completion(PROMPT, max_tokens=tokens, temperature=0.0,
                                  logit_bias={llm.token_eos(): -1e9})
        seconds = time.perf_counter() - start
        out.append(r["usage"]["completion_tokens"] / seconds)
    return out


def node_run(client: Any, tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    r = client.completions.create(model="bench", prompt=PROMPT, max_tokens=tokens, temperature=0, seed=1)
    seconds = time.perf_counter() - start
    return r.usage.completion_tokens / seconds, r.usage.completion_tokens


def verification_cost(model: Path, threads: int, tokens: int, runs: int, n_ctx: int) -> None:
    """A validator's teacher-forced check of an output vs generating it, on the same backend."""
    from pouw.backends.llamacpp import LlamaCppBackend
    from pouw.jobspec import SamplingParams
    from pouw.verify import verify_llm_output

    backend = LlamaCppBackend(model, n_threads=threads, n_ctx=n_ctx)
    try:
        prompt = backend.prompt_tokens(PROMPT)
        gen_s, full_s, sampled_s = [], [], []
        for seed in range(runs):
            sampling = SamplingParams(max_tokens=tokens, temperature_milli=800, top_k=40, seed=seed)
            start = time.perf_counter()
            result = backend.generate(prompt, sampling)
            gen_s.append(time.perf_counter() - start)
            for positions, bucket in ((None, full_s), (list(range(0, len(result.tokens), 8)), sampled_s)):
                start = time.perf_counter()
                outcome = verify_llm_output(backend, prompt, result.tokens, sampling, result.finish_reason,
                                            None, backend.eog_tokens, positions=positions)
                bucket.append(time.perf_counter() - start)
                assert outcome.verdict == "valid", outcome.reason
        g, f, k = (statistics.median(x) * 1000 for x in (gen_s, full_s, sampled_s))
        print(f"verification of {tokens}-token outputs (sampled, T=0.8, top_k 40): generation {g:.1f} ms, "
              f"check of every position {f:.1f} ms ({f / g:.0%} of generation; target <= 25%), "
              f"every 8th position {k:.1f} ms ({k / g:.0%})")
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    # One thread by default: llama.cpp's worker threads spin, and on a busy 2-core machine two of them
    # slow every decode step by 10x; pass --threads 2 on an idle machine.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embd", type=int, default=384, help="model width (4 layers)")
    parser.add_argument("--burst", type=int, default=64, help="short requests timed for the routing latency")
    args = parser.parse_args()
    import openai

    tmp = Path(tempfile.mkdtemp(prefix="pouw-bench-"))
    node: subprocess.Popen[bytes] | None = None
    try:
        model = tmp / "bench.gguf"
        n_ctx = 512
        write_tiny_llama(model, seed=7, n_layers=4, n_embd=args.embd, n_head=8, n_ff=args.embd * 3,
                         n_ctx=n_ctx)
        print(f"model: llama, 4 layers, n_embd {args.embd}, {model.stat().st_size / 1e6:.1f} MB; "
              f"{args.threads} thread(s); {args.tokens} tokens greedy per request")
        datadir = tmp / "node"
        datadir.mkdir()
        api_port, rpc_port, p2p_port = free_port(), free_port(), free_port()
        node = subprocess.Popen(
            [sys.executable, "-m", "aipgd.daemon", "-regtest", f"-datadir={datadir}", "-listen=0",
             f"-port={p2p_port}", f"-rpcport={rpc_port}", "-pouwapi", f"-pouwapiport={api_port}",
             f"-pouwmodel=bench={model}", f"-pouwthreads={args.threads}", "-pouwmaxconcurrency=1",
             "-pouwfreerpm=100000", "-pouwfreetpm=100000000", "-pouwvalidator", "-pouwcheckrate=0"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key="none", max_retries=0,
                               timeout=300)
        deadline = time.time() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError as exc:
                if node.poll() is not None or time.time() > deadline:
                    err = node.stderr.read().decode() if node.stderr else ""
                    raise SystemExit("aipgd did not start: " + err) from exc
                time.sleep(0.5)
        node_run(client, 8)  # warm-up
        direct: list[float] = []
        through: list[float] = []
        for _ in range(args.runs):  # alternate so both see the same machine
            direct += direct_runs(model, args.threads, args.tokens, 1, n_ctx)
            through.append(node_run(client, args.tokens)[0])
        d, n = statistics.median(direct), statistics.median(through)
        print(f"llama.cpp direct: {d:8.1f} tokens/s (median of {len(direct)})")
        print(f"through the node: {n:8.1f} tokens/s (median of {len(through)}), ratio {n / d:.2f}x "
              "(target >= 0.9x)")

        # Routing latency: one request at a time, so it is the node's own cost (admission, queue,
        # routing, dispatch to the worker's thread), not time spent waiting behind other jobs.
        before = rpc(rpc_port, datadir / "regtest" / ".cookie", "pouw_getstats")["completed"]
        for _ in range(args.burst):
            node_run(client, 1)
        stats = rpc(rpc_port, datadir / "regtest" / ".cookie", "pouw_getstats")
        lat = stats["routing_latency_ms"]
        print(f"routing latency (submission to the worker starting the job), {stats['completed'] - before} "
              f"sequential requests, last {lat['samples']} jobs: p50 {lat['p50']} ms, p99 {lat['p99']} ms")
        verification_cost(model, args.threads, args.tokens, args.runs, n_ctx)
    finally:
        if node is not None:
            node.terminate()
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
