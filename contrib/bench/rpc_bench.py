#!/usr/bin/env python3
"""JSON-RPC throughput and latency of a real aipgd on loopback.

Starts `aipgd -regtest` on a fresh data directory and a free port, then measures getblockcount and
getblockheader with 1, 8 and 64 concurrent keep-alive clients (requests/s, p50/p99 latency, count of
HTTP 503 answers), and one batch of 1000 getblockhash calls. The load generator is a separate process
(raw HTTP/1.1 over asyncio streams, uvloop when available) so that client and server each get a core.

Anchor (AIPG Core, C++, same kind of 2-core machine): ~33,500 getblockcount/s at 8 clients, p99 0.5 ms.
Target for aipgd: >= 10,000/s at 8 clients with p99 < 5 ms, and no 503 below 64 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGTEST_GENESIS = "0000001a53f7f3d9f8be5f0cdfeddd641bee2c6c7001a9cdfdbb6f72ca66aed5"
ANCHOR_CORE_GETBLOCKCOUNT_8 = 33_500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def build_request(auth: str, body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic " + auth.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


class _Client(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as the previous answer is complete."""

    def __init__(self, request: bytes, deadline: float, latencies: list[float], statuses: dict[int, int],
                 done: asyncio.Future[None]) -> None:
        self.request = request
        self.deadline = deadline
        self.latencies = latencies
        self.statuses = statuses
        self.done = done
        self.buf = b""
        self.start = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.start = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        i = head.lower().find(b"content-length:")
        length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n",
                                                                    i) > 0 else None]) if i >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        now = time.perf_counter()
        self.latencies.append(now - self.start)
        status = int(head[9:12])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.buf = self.buf[end + 4 + length:]
        if (now < self.deadline and status != 503) or now < self.deadline:
            self._send()
        else:
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _client(port: int, request: bytes, deadline: float, latencies: list[float],
                  statuses: dict[int, int]) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    await loop.create_connection(lambda: _Client(request, deadline, latencies, statuses, done),
                                 "127.0.0.1", port)
    await done


async def _load(port: int, request: bytes, clients: int,
                seconds: float) -> tuple[list[float], dict[int, int], float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_client(port, request, deadline, latencies, statuses) for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - start


def _load_process(port: int, request: bytes, clients: int, seconds: float,
                  out: multiprocessing.Queue) -> None:
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    latencies, statuses, elapsed = runner(_load(port, request, clients, seconds))
    out.put((latencies, statuses, elapsed))


def measure(port: int, request: bytes, clients: int, seconds: float) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_load_process, args=(port, request, clients, seconds, queue))
    proc.start()
    latencies, statuses, elapsed = queue.get()
    proc.join()
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "n503": statuses.get(503, 0),
        "non200": sum(v for k, v in statuses.items() if k != 200),
    }


def rpc_call(port: int, auth: str, payload: object) -> tuple[object, float]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps(payload).encode()
    start = time.perf_counter()
    conn.request("POST", "/", body, {"Authorization": "Basic " + auth, "Content-Type": "application/json"})
    reply = conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return json.loads(reply), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each measurement")
    parser.add_argument("--clients", default="1,8,64", help="comma-separated client counts")
    opts = parser.parse_args()

    datadir = Path(tempfile.mkdtemp(prefix="aipg-rpc-bench-"))
    port = free_port()
    cmd = [sys.executable, "-m", "aipgd.daemon", "-regtest", f"-datadir={datadir}", f"-rpcport={port}"]
    node = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        cookie = datadir / "regtest" / ".cookie"
        deadline = time.monotonic() + 60
        auth = ""
        while time.monotonic() < deadline:
            if node.poll() is not None:
                raise SystemExit(f"aipgd exited: {node.stderr.read().decode() if node.stderr else ''}")
            if cookie.exists():
                auth = base64.b64encode(cookie.read_text().strip().encode()).decode()
                try:
                    reply, _ = rpc_call(port, auth, {"id": 0, "method": "getblockcount", "params": []})
                    if isinstance(reply, dict) and reply.get("error") is None:
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            raise SystemExit("aipgd did not answer within 60 s")

        print(f"machine: {machine_description()}")
        print(f"server: aipgd -regtest (pid {node.pid}), loopback port {port}; client: separate process, "
              f"keep-alive HTTP/1.1, {opts.seconds:g} s per row")
        header = ("method", "clients", "req/s", "p50 ms", "p99 ms", "503s", "non-200")
        print("{:<16}{:>8}{:>12}{:>10}{:>10}{:>7}{:>9}".format(*header))
        results: dict[tuple[str, int], dict[str, float]] = {}
        calls = {
            "getblockcount": {"jsonrpc": "1.0", "id": 1, "method": "getblockcount", "params": []},
            "getblockheader": {"jsonrpc": "1.0", "id": 1, "method": "getblockheader",
                               "params": [REGTEST_GENESIS]},
        }
        for name, payload in calls.items():
            request = build_request(auth, json.dumps(payload).encode())
            for clients in (int(c) for c in opts.clients.split(",")):
                r = measure(port, request, clients, opts.seconds)
                results[(name, clients)] = r
                print(f"{name:<16}{clients:>8}{r['rps']:>12,.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}"
                      f"{int(r['n503']):>7}{int(r['non200']):>9}")

        batch = [{"id": i, "method": "getblockhash", "params": [0]} for i in range(1000)]
        reply, elapsed = rpc_call(port, auth, batch)
        ok = (isinstance(reply, list) and len(reply) == 1000
              and all(r.get("result") == REGTEST_GENESIS for r in reply))
        print(f"batch of 1000 getblockhash: {elapsed * 1000:.1f} ms ({1000 / elapsed:,.0f} calls/s), "
              f"{'all correct' if ok else 'WRONG REPLY'}")

        eight = results.get(("getblockcount", 8))
        if eight is not None:
            ratio = eight["rps"] / ANCHOR_CORE_GETBLOCKCOUNT_8
            print(f"getblockcount at 8 clients: {eight['rps']:,.0f}/s = {ratio:.2f}x "
                  f"AIPG Core's ~{ANCHOR_CORE_GETBLOCKCOUNT_8:,}/s; target >= 10,000/s with p99 < 5 ms: "
                  f"{'met' if eight['rps'] >= 10_000 and eight['p99_ms'] < 5 else 'NOT met'}")
        below_64 = sum(r["n503"] for (_, c), r in results.items() if c < 64)
        print(f"503 answers below 64 clients: {int(below_64)}")
    finally:
        node.terminate()
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
