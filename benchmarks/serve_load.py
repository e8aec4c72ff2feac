"""Load test of `bert4rec serve`: N concurrent clients POST /recommend for a bounded time.

    nice python benchmarks/serve_load.py RUN_DIR [--clients 32] [--seconds 30] [--think-ms 0]

Starts the server on 127.0.0.1 in its own process, waits for /health, then runs `--clients`
asyncio clients, each sending one request at a time (closed loop) with histories of 1-50
random catalogue items (seeded), pausing `--think-ms` between requests. Reports requests/s,
p50/p90/p99 latency (client side, so it includes HTTP and JSON) and errors, and writes the
figures as JSON to benchmarks/out/serve_load.json. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run_dir: Path, port: int, threads: int | None) -> subprocess.Popen:
    """`bert4rec serve` in a child process (its own GIL), using this checkout's sources."""
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, "-m", "bert4rec", "serve", str(run_dir), "--port", str(port)]
    if threads:
        command += ["--threads", str(threads)]
    return subprocess.Popen(command, env=env)


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with status {server.returncode}")
        try:
            return httpx.get(f"{base}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server not healthy after {timeout:.0f} s")


async def client(base: str, histories: list[list[int]], deadline: float, think: float,
                 k: int, explain: bool, latencies: list[float], errors: list[str]) -> None:
    """One user: request, wait for the answer, think, repeat until the deadline."""
    rng = random.Random(len(latencies) + id(latencies))
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            body = {"history": rng.choice(histories), "k": k, "explain": explain}
            start = time.perf_counter()
            try:
                answer = await http.post("/recommend", json=body)
                if answer.status_code != 200:
                    errors.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as err:
                errors.append(f"{type(err).__name__}: {err}")
            latencies.append(time.perf_counter() - start)
            if think:
                await asyncio.sleep(think)


async def load(base: str, histories: list[list[int]], args: argparse.Namespace) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    warm_end = time.monotonic() + args.warmup
    await asyncio.gather(*(client(base, histories, warm_end, 0, args.k, args.explain, [], [])
                           for _ in range(4)))
    start = time.monotonic()
    deadline = start + args.seconds
    await asyncio.gather(*(client(base, histories, deadline, args.think_ms / 1000, args.k,
                                  args.explain, latencies, errors)
                           for _ in range(args.clients)))
    elapsed = time.monotonic() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "errors": len(errors),
        "first_errors": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time (<= 60)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between requests")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "serve_load.json")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")

    items = pl.read_parquet(args.run_dir / "items.parquet")["item"].to_list()
    rng = random.Random(0)
    histories = [rng.sample(items, rng.randint(1, 50)) for _ in range(1000)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args.run_dir, port, args.threads)
    try:
        health = wait_healthy(base, server)
        figures = asyncio.run(load(base, histories, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "benchmark": "serve_load", "run_dir": str(args.run_dir), "model_items": health["items"],
        "max_len": health["max_len"], "clients": args.clients, "seconds": args.seconds,
        "think_ms": args.think_ms, "k": args.k, "explain": args.explain,
        "server_torch_threads": args.threads, "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(), **figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
