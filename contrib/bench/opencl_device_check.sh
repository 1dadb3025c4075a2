#!/usr/bin/env bash
# OpenCL-vs-Numba equality check and OpenCL hash rate on a GPU machine (NVIDIA OpenCL).
# Installs nothing: needs python3 with numpy, numba, pyopencl importable (e.g. via PYTHONPATH).
# Usage, from the repository root:  bash contrib/bench/opencl_device_check.sh [P:D]
#   P:D picks the OpenCL platform/device (default: $KAWPOW_OPENCL_DEVICE or the first GPU).
# Steps: build epoch 0's context (~1 s + Numba compile on a fresh machine, ~30 s), build the DAG on
# the device, hash 128 random (block, header, nonce) inputs on the GPU in light mode and with the
# device DAG, compare every (mix, final) with Numba, then time a DAG-mode batch and search.
# Exit 1 on any mismatch. KAWPOW_CHECK_TINY_DAG=1 shrinks the DAG to 2063 items (CPU smoke test).
set -euo pipefail
cd "$(dirname "$0")/../.."
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/kawpow-numba-cache}"
exec timeout 170 python3 - "${1:-}" <<'PY'
import random, sys, time
import numpy as np
import pyopencl as cl
sys.path.insert(0, ".")
import dataclasses, os
import kawpow
from kawpow import opencl
from kawpow.api import hash_with_context
from kawpow.context import ContextCache

dev = sys.argv[1] or None
print("OpenCL devices:", opencl.list_devices())
t = time.time(); ctx = ContextCache(prefetch_window=0).get(0); print(f"epoch 0 context: {time.time() - t:.1f} s")
rng = random.Random(7)
tiny = os.environ.get("KAWPOW_CHECK_TINY_DAG") == "1"
dctx = dataclasses.replace(ctx, full_dataset_num_items=2063) if tiny else ctx
contexts = ContextCache(capacity=1, prefetch_window=0)
contexts._contexts[0] = dctx
inputs = [(rng.randrange(7500), rng.randbytes(32), np.array([rng.getrandbits(64) for _ in range(16)], np.uint64))
          for _ in range(8)]  # 8 headers x 16 nonces = 128 inputs
t = time.time()
want = {c.full_dataset_num_items: [hash_with_context(c, bn, h, ns) for bn, h, ns in inputs] for c in (ctx, dctx)}
print(f"numba light: 128 hashes in {time.time() - t:.1f} s")
bad = 0
for use_dag in (False, True):
    c = dctx if use_dag else ctx
    t = time.time(); hasher = opencl.OpenCLHasher(c, device=dev, use_dag=use_dag)
    print(f"device {hasher.device_name}, dag={use_dag}: setup (compile{' + DAG build' if use_dag else ''}) {time.time() - t:.1f} s")
    for (bn, h, ns), (wm, wf) in zip(inputs, want[c.full_dataset_num_items]):
        gm, gf = hasher.hash_words(bn, h, ns)
        bad += int(not (np.array_equal(gm, wm.astype(np.uint32)) and np.array_equal(gf, wf.astype(np.uint32))))
    print(f"  128 inputs compared, mismatching batches so far: {bad}")
    count = (1 << 10) if tiny else (1 << 20) if use_dag else (1 << 12)
    nonces = np.arange(count, dtype=np.uint64)
    hasher.hash_words(0, bytes(32), nonces[:1024])
    t = time.time(); hasher.hash_words(0, bytes(32), nonces); dt = time.time() - t
    print(f"  OpenCL hash rate ({'device DAG' if use_dag else 'light'}): {count / dt:,.0f} H/s")
    if not use_dag:
        continue
    r = hasher.search(0, bytes(32), b"\x00\x3f" + b"\xff" * 30, 0, 1 << 16)
    ok = r is not None and kawpow.hash(0, bytes(32), r.nonce, contexts=contexts) == (r.mix_hash, r.final_hash)
    print(f"  search found nonce {None if r is None else r.nonce}, verified on CPU: {ok}")
    bad += int(not ok)
print("RESULT:", "OK" if bad == 0 else f"FAIL ({bad})")
sys.exit(1 if bad else 0)
PY
