"""OpenCL batch hashing and nonce search (pyopencl), on a GPU or the CPU runtime (pocl).

Owns device selection (``device="P:D"`` argument or ``KAWPOW_OPENCL_DEVICE``), uploading an
epoch's light cache / L1 cache, building the DAG on the device, and running the kernels of
``opencl_kernel.py``. It must never be needed for consensus: results equal the Numba path,
and callers fall back to it when ``available()`` gives a reason.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from kawpow import progpow
from kawpow.api import MAX_NONCE, SearchResult, _be_words, _bytes32, _nonce, _to_bytes
from kawpow.context import EpochContext, check_block_number
from kawpow.errors import KawpowError
from kawpow.opencl_kernel import KERNEL_SOURCE, period_kernel_source

DEVICE_ENV = "KAWPOW_OPENCL_DEVICE"
_MAX_RESULTS = 4
_RESULT_WORDS = 18
_PERIOD_GROUP_SIZE = 256  # work-items per group for the per-period kernels: 16 teams of 16 lanes
_PERIOD_CACHE = 4  # compiled per-period programs kept per hasher
_PERIOD_LOCAL_BYTES = 20 * 1024  # the L1 cache (16 KiB) and the team scratch, in local memory
_SEARCH_CHUNK = 1 << 22  # nonces per per-period search launch


def _cl() -> Any:
    try:
        import pyopencl
    except ImportError as exc:  # the "gpu" extra is not installed
        raise KawpowError("pyopencl is not installed (pip install 'aipg-node[gpu]')") from exc
    return pyopencl


def available() -> str | None:
    """None when an OpenCL device can be used, else the reason why not (for skips and logs)."""
    try:
        cl = _cl()
    except KawpowError as exc:
        return str(exc)
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:  # e.g. PLATFORM_NOT_FOUND_KHR when no ICD is installed
        return f"no OpenCL platform found ({exc}); install a GPU driver or pocl-opencl-icd (make sysdeps)"
    if not any(p.get_devices() for p in platforms):
        return "OpenCL platforms exist but have no devices"
    return None


def list_devices() -> list[tuple[str, str]]:
    """("P:D", "platform / device name") for every OpenCL device."""
    cl = _cl()
    out = []
    for pi, p in enumerate(cl.get_platforms()):
        for di, d in enumerate(p.get_devices()):
            out.append((f"{pi}:{di}", f"{p.name} / {d.name}"))
    return out


def select_device(device: str | None = None) -> Any:
    """The device named ``"P:D"`` (platform, device index), else ``$KAWPOW_OPENCL_DEVICE``, else
    the first GPU, else the first device of any kind."""
    reason = available()
    if reason is not None:
        raise KawpowError(reason)
    cl = _cl()
    spec = device or os.environ.get(DEVICE_ENV)
    platforms = cl.get_platforms()
    if spec:
        try:
            pi, di = (int(x) for x in spec.split(":"))
            return platforms[pi].get_devices()[di]
        except (ValueError, IndexError) as exc:
            names = ", ".join(f"{k} = {v}" for k, v in list_devices())
            raise KawpowError(f"OpenCL device {spec!r} not found; devices: {names}") from exc
    for p in platforms:
        gpus = p.get_devices(device_type=cl.device_type.GPU) if _has_type(p, cl.device_type.GPU) else []
        if gpus:
            return gpus[0]
    return next(d for p in platforms for d in p.get_devices())


def _has_type(platform: Any, kind: int) -> bool:
    return any(d.type & kind for d in platform.get_devices())


class OpenCLHasher:
    """KawPoW on one OpenCL device for one epoch context.

    ``use_dag=True`` builds the epoch's full DAG in device memory first (fast hashing; about
    1 GiB at epoch 0), else items are computed from the light cache (slow, like verification).
    With the DAG, hashing uses per-period kernels (the period's program compiled as straight-line
    source, 16 work-items per hash; compiled on a period's first use and cached) unless
    ``period_kernels`` is False or the device lacks the local memory; then the generic kernel
    runs. ``period_kernels`` is also an attribute that may be switched later (benchmarks).
    """

    def __init__(
        self,
        ctx: EpochContext,
        *,
        device: str | None = None,
        use_dag: bool = False,
        period_kernels: bool = True,
    ) -> None:
        cl = self._cl = _cl()
        self.ctx = ctx
        self.device = select_device(device)
        self.queue = cl.CommandQueue(cl.Context([self.device]))
        options = ["-DUSE_DAG"] if use_dag else []
        self.program = cl.Program(self.queue.context, KERNEL_SOURCE).build(options=options)
        # Kernel objects hold their arguments: one set per hasher, used under a lock.
        self._lock = threading.Lock()
        self._k_hash = cl.Kernel(self.program, "hash_nonces")
        self._k_search = cl.Kernel(self.program, "search")
        mf = cl.mem_flags
        ro = mf.READ_ONLY | mf.COPY_HOST_PTR
        self._cache = cl.Buffer(self.queue.context, ro, hostbuf=np.ascontiguousarray(ctx.light_cache_words))
        self._l1 = cl.Buffer(self.queue.context, ro, hostbuf=np.ascontiguousarray(ctx.l1_cache))
        self.use_dag = use_dag
        if use_dag:
            self._dag = self._build_dag()
        else:
            self._dag = cl.Buffer(self.queue.context, mf.READ_ONLY, size=256)
        group = min(_PERIOD_GROUP_SIZE, int(self.device.max_work_group_size)) // 16 * 16
        self.period_group_size = group
        fits = group >= 16 and int(self.device.local_mem_size) >= _PERIOD_LOCAL_BYTES
        self.period_kernels = bool(period_kernels and use_dag and fits)
        self._periods: OrderedDict[int, tuple[Any, Any]] = OrderedDict()

    @property
    def device_name(self) -> str:
        return str(self.device.name).strip()

    def _build_dag(self) -> Any:
        cl = self._cl
        n = self.ctx.full_dataset_num_items
        dag = cl.Buffer(self.queue.context, cl.mem_flags.READ_WRITE, size=n * 128)
        step = 1 << 18
        kernel = cl.Kernel(self.program, "build_dag")
        for first in range(0, n, step):
            count = min(step, n - first)
            kernel(self.queue, (count,), None, self._cache, np.uint32(self.ctx.light_cache.shape[0]),
                   np.uint64(first), np.uint64(n), dag)  # fmt: skip
        self.queue.finish()
        return dag

    def _period_kernels(self, period: int) -> tuple[Any, Any]:
        """(period_hash, period_search) kernels of ``period``, compiled on first use (call locked)."""
        found = self._periods.get(period)
        if found is not None:
            self._periods.move_to_end(period)
            return found
        cl = self._cl
        prog = progpow.Program(period)
        while True:
            src = period_kernel_source(prog.cache_ops, prog.math_ops, prog.dag_ops, self.period_group_size)
            program = cl.Program(self.queue.context, src).build()
            kernels = (cl.Kernel(program, "period_hash"), cl.Kernel(program, "period_search"))
            # a kernel using many registers may not run the requested group size: shrink and rebuild
            limit = min(int(k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self.device))
                        for k in kernels)  # fmt: skip
            if limit >= self.period_group_size:
                break
            if limit < 16:
                raise KawpowError(f"the per-period kernel cannot run 16 work-items per group here ({limit})")
            self.period_group_size = limit // 16 * 16
            self._periods.clear()  # kernels built for the old size require it
        self._periods[period] = kernels
        while len(self._periods) > _PERIOD_CACHE:
            self._periods.popitem(last=False)
        return kernels

    def _period_args(self, block_number: int, header_hash: bytes) -> tuple[Any, ...]:
        cl = self._cl
        ro = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
        header = np.frombuffer(header_hash, dtype="<u4").astype(np.uint32)
        return (self._l1, self._dag, np.uint32(self.ctx.dataset_items_2048),
                cl.Buffer(self.queue.context, ro, hostbuf=header))  # fmt: skip

    def _global_size(self, count: int) -> int:
        g = self.period_group_size
        return (count + g - 1) // g * g

    def prepare_period(self, block_number: int) -> None:
        """Compile (and cache) the per-period kernels for ``block_number``'s period ahead of use."""
        if self.period_kernels:
            with self._lock:
                self._period_kernels(check_block_number(block_number) // progpow.PERIOD_LENGTH)

    def _common(self, block_number: int, header_hash: bytes) -> tuple[Any, ...]:
        cl = self._cl
        ro = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
        prog = progpow.program_for_block(block_number).packed()
        header = np.frombuffer(header_hash, dtype="<u4").astype(np.uint32)
        return (
            self._cache, np.uint32(self.ctx.light_cache.shape[0]), self._l1, self._dag,
            np.uint32(self.ctx.dataset_items_2048),
            cl.Buffer(self.queue.context, ro, hostbuf=prog),
            cl.Buffer(self.queue.context, ro, hostbuf=header),
        )  # fmt: skip

    def hash_words(
        self, block_number: int, header_hash: bytes, nonces: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch hash: (mix, final) as (len(nonces), 8) uint32 arrays of little-endian words."""
        cl = self._cl
        bn = check_block_number(block_number)
        hh = _bytes32("header_hash", header_hash)
        ns = np.ascontiguousarray(nonces, dtype=np.uint64)
        count = ns.shape[0]
        mix = np.empty((count, 8), dtype=np.uint32)
        final = np.empty((count, 8), dtype=np.uint32)
        if count == 0:
            return mix, final
        ctx = self.queue.context
        nbuf = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=ns)
        mbuf = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, size=mix.nbytes)
        fbuf = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, size=final.nbytes)
        with self._lock:
            if self.period_kernels:
                k_hash, _ = self._period_kernels(bn // progpow.PERIOD_LENGTH)
                args = (*self._period_args(bn, hh), nbuf, np.uint32(count), mbuf, fbuf)
                k_hash(self.queue, (self._global_size(count),), (self.period_group_size,), *args)
            else:
                args = (*self._common(bn, hh), nbuf, np.uint32(count), mbuf, fbuf)
                self._k_hash(self.queue, (count,), None, *args)
            cl.enqueue_copy(self.queue, mix, mbuf)
            cl.enqueue_copy(self.queue, final, fbuf)
            self.queue.finish()
        return mix, final

    def hash(self, block_number: int, header_hash: bytes, nonces: list[int]) -> list[tuple[bytes, bytes]]:
        """``kawpow.hash`` for many nonces: a list of (mix_hash, final_hash)."""
        ns = np.array([_nonce(n) for n in nonces], dtype=np.uint64)
        mix, final = self.hash_words(block_number, header_hash, ns)
        return [(_to_bytes(mix[i]), _to_bytes(final[i])) for i in range(ns.shape[0])]

    def search(
        self, block_number: int, header_hash: bytes, boundary: bytes, start_nonce: int, iterations: int
    ) -> SearchResult | None:
        """The lowest-index nonce found in ``[start_nonce, start_nonce + iterations)`` within boundary
        (iterations < 2**32 per call)."""
        cl = self._cl
        bn = check_block_number(block_number)
        hh = _bytes32("header_hash", header_hash)
        bd = _be_words(_bytes32("boundary", boundary)).astype(np.uint32)
        start = _nonce(start_nonce, "start_nonce")
        if not 0 <= iterations < 2**32:
            raise KawpowError("iterations must be in [0, 2**32)")
        if iterations == 0:
            return None
        ctx = self.queue.context
        results = np.zeros(1 + _MAX_RESULTS * _RESULT_WORDS, dtype=np.uint32)
        rbuf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=results)
        bbuf = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=bd)
        with self._lock:
            if self.period_kernels:
                _, k_search = self._period_kernels(bn // progpow.PERIOD_LENGTH)
                args = self._period_args(bn, hh)
                # chunked launches: stop at the first chunk with a hit (hits are ordered by chunk)
                for off in range(0, iterations, _SEARCH_CHUNK):
                    n = min(_SEARCH_CHUNK, iterations - off)
                    k_search(self.queue, (self._global_size(n),), (self.period_group_size,), *args,
                             np.uint64((start + off) & MAX_NONCE), np.uint32(n), bbuf, rbuf)  # fmt: skip
                    cl.enqueue_copy(self.queue, results, rbuf)
                    self.queue.finish()
                    if results[0]:
                        break
            else:
                self._k_search(self.queue, (iterations,), None, *self._common(bn, hh), np.uint64(start),
                               np.uint32(iterations), bbuf, rbuf)  # fmt: skip
                cl.enqueue_copy(self.queue, results, rbuf)
                self.queue.finish()
        found = min(int(results[0]), _MAX_RESULTS)
        if found == 0:
            return None
        slots = results[1:].reshape(_MAX_RESULTS, _RESULT_WORDS)[:found]
        nonces = [(int(s[0]) | int(s[1]) << 32) for s in slots]
        best = min(range(found), key=lambda i: (nonces[i] - start) & 0xFFFFFFFFFFFFFFFF)
        s = slots[best]
        return SearchResult(nonces[best], _to_bytes(s[2:10]), _to_bytes(s[10:18]))
