#!/usr/bin/env bash
# OpenCL-vs-Numba equality check and OpenCL hash rates on a GPU machine (NVIDIA OpenCL).
# Installs nothing: needs python3 with numpy, numba, pyopencl importable (e.g. via PYTHONPATH).
# Usage, from the repository root:  bash contrib/bench/opencl_device_check.sh [P:D]
#   P:D picks the OpenCL platform/device (default: $KAWPOW_OPENCL_DEVICE or the first GPU).
# Steps: build epoch 0's context (~1 s + Numba compile on a fresh machine, ~30 s); hash 128 random
# (block, header, nonce) inputs with Numba; on the device: light mode (generic kernel), then build
# the DAG on the device and compare the same 128 inputs with the per-period kernels (8 periods,
# one compile each) and with the generic DAG kernel; time both DAG kernels on one batch; run a
# per-period search and verify its nonce on the CPU.
# Exit 1 on any mismatch (RESULT: FAIL); the timings are skipped past a soft deadline, and a
# hard `timeout 150` stops everything well under 170 s (exit 124).
# KAWPOW_CHECK_TINY_DAG=1 shrinks the DAG to 2063 items (CPU smoke test, e.g. on pocl).
set -euo pipefail
cd "$(dirname "$0")/../.."
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/kawpow-numba-cache}"
exec timeout 150 python3 - "${1:-}" <<'PY'
import dataclasses, os, random, sys, time
import numpy as np
sys.path.insert(0, ".")
import kawpow
from kawpow import opencl
from kawpow.api import hash_with_context
from kawpow.context import ContextCache

T0 = time.time()
SOFT_DEADLINE = 110  # seconds: past this, skip the remaining timings (checks always run)


def log(msg):
    print(f"[{time.time() - T0:6.1f} s] {msg}", flush=True)


dev = sys.argv[1] or None
log(f"OpenCL devices: {opencl.list_devices()}")
t = time.time(); ctx = ContextCache(prefetch_window=0).get(0); log(f"epoch 0 context: {time.time() - t:.1f} s")
rng = random.Random(7)
tiny = os.environ.get("KAWPOW_CHECK_TINY_DAG") == "1"
dctx = dataclasses.replace(ctx, full_dataset_num_items=2063) if tiny else ctx
contexts = ContextCache(capacity=1, prefetch_window=0)
contexts._contexts[0] = dctx
# 8 headers x 16 nonces = 128 inputs; block numbers from 8 different ProgPoW periods
blocks = rng.sample(range(0, 7500, 3), 8)
inputs = [(bn + rng.randrange(3), rng.randbytes(32), np.array([rng.getrandbits(64) for _ in range(16)], np.uint64))
          for bn in blocks]
t = time.time()
want = {c.full_dataset_num_items: [hash_with_context(c, bn, h, ns) for bn, h, ns in inputs] for c in ([ctx, dctx] if tiny else [ctx])}
log(f"numba light: {128 * len(want)} hashes in {time.time() - t:.1f} s")
bad = 0


def compare(hasher, c, label):
    global bad
    wrong = 0
    t = time.time()
    for (bn, h, ns), (wm, wf) in zip(inputs, want[c.full_dataset_num_items]):
        gm, gf = hasher.hash_words(bn, h, ns)
        for i in range(len(ns)):
            if not (np.array_equal(gm[i], wm[i].astype(np.uint32)) and np.array_equal(gf[i], wf[i].astype(np.uint32))):
                wrong += 1
                if wrong <= 3:
                    print(f"  MISMATCH {label}: block {bn} header {h.hex()} nonce {int(ns[i]):016x}: "
                          f"got {gm[i].tobytes().hex()} want {wm[i].astype('<u4').tobytes().hex()}")
    bad += wrong
    log(f"  {label}: 128 inputs compared in {time.time() - t:.1f} s, mismatches: {wrong}")


def rate(hasher, count):
    nonces = np.arange(count, dtype=np.uint64)
    hasher.hash_words(0, bytes(32), nonces[:256])  # warm-up (and the period's compile)
    best = None
    for _ in range(3):
        t = time.time(); hasher.hash_words(0, bytes(32), nonces); dt = time.time() - t
        best = dt if best is None else min(best, dt)
    return count / best


t = time.time(); light = opencl.OpenCLHasher(ctx, device=dev, use_dag=False)
log(f"device {light.device_name}, light mode: setup (compile) {time.time() - t:.1f} s")
compare(light, ctx, "light, generic kernel")
if time.time() - T0 < SOFT_DEADLINE:
    log(f"  OpenCL hash rate (light, generic kernel): {rate(light, (1 << 8) if tiny else (1 << 12)):,.0f} H/s")
del light

t = time.time(); hasher = opencl.OpenCLHasher(dctx, device=dev, use_dag=True)
log(f"device DAG ({dctx.full_dataset_num_items} items): setup (compile + DAG build) {time.time() - t:.1f} s; "
    f"per-period kernels: {hasher.period_kernels}, group size {hasher.period_group_size}")
if not hasher.period_kernels:
    print("  per-period kernels NOT available on this device (local memory / work-group size)")
    bad += 1
t = time.time()
compare(hasher, dctx, "device DAG, per-period kernels (8 periods, compiles included)")
hasher.period_kernels = False
compare(hasher, dctx, "device DAG, generic kernel")
hasher.period_kernels = True

count = (1 << 12) if tiny else (1 << 22)
if time.time() - T0 < SOFT_DEADLINE:
    hasher.period_kernels = False
    generic = rate(hasher, count)
    hasher.period_kernels = True
    log(f"  OpenCL hash rate (device DAG, generic kernel): {generic:,.0f} H/s")
else:
    generic = None
    log("  generic DAG timing skipped (soft deadline)")
if time.time() - T0 < SOFT_DEADLINE:
    period = rate(hasher, count)
    ratio = f", {period / generic:.2f}x the generic kernel" if generic else ""
    log(f"  OpenCL hash rate (device DAG, per-period kernel): {period:,.0f} H/s{ratio}")
else:
    log("  per-period DAG timing skipped (soft deadline)")

r = hasher.search(0, bytes(32), b"\x00\x3f" + b"\xff" * 30, 0, 1 << 16)
ok = r is not None and kawpow.hash(0, bytes(32), r.nonce, contexts=contexts) == (r.mix_hash, r.final_hash)
log(f"  per-period search found nonce {None if r is None else r.nonce}, verified on CPU: {ok}")
bad += int(not ok)
print("RESULT:", "OK" if bad == 0 else f"FAIL ({bad})", flush=True)
sys.exit(1 if bad else 0)
PY
