"""Load test of `bert4rec serve`: N concurrent clients POST /recommend for a bounded time.

    nice python benchmarks/serve_load.py RUN_DIR [--clients 32] [--seconds 30] [--think-ms 0]

Starts the server on 127.0.0.1 in its own process, waits for /health, then runs `--clients`
clients, each sending one request at a time with histories of 1-50 random catalogue items
(seeded), or with `--by user` the ids of 1,000 random users of the run's users.parquet (each
scored on their whole history, everything they watched left out). `--think-ms 0` is closed
loop (back to back); otherwise each client pauses a random 0..2x`--think-ms` (mean
`--think-ms`) between an answer and its next request, a paced load like people clicking. The
client is `wrk` (C, little CPU: it matters on a 2-core machine) when installed, else asyncio +
httpx (`--client` picks). Reports requests/s, p50/p90/p99 latency (client side, so it
includes HTTP and JSON), errors, the client used and the load average before and after, and
writes them as JSON to benchmarks/out/serve_load.json.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
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


def start_server(run_dir: Path, port: int, threads: int | None, src: Path) -> subprocess.Popen:
    """`bert4rec serve` in a child process (its own GIL), using the sources in `src`."""
    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
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


async def client(base: str, bodies: list[dict], deadline: float, think: float,
                 latencies: list[float], errors: list[str]) -> None:
    """One user: request, wait for the answer, think, repeat until the deadline."""
    rng = random.Random(len(latencies) + id(latencies))
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            body = rng.choice(bodies)
            start = time.perf_counter()
            try:
                answer = await http.post("/recommend", json=body)
                if answer.status_code != 200:
                    errors.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as err:
                errors.append(f"{type(err).__name__}: {err}")
            latencies.append(time.perf_counter() - start)
            if think:
                await asyncio.sleep(rng.uniform(0, 2 * think))


async def python_load(base: str, bodies: list[dict], args: argparse.Namespace) -> dict:
    """The asyncio + httpx client (in this process; it competes with the server for CPU)."""
    latencies: list[float] = []
    errors: list[str] = []
    warm_end = time.monotonic() + args.warmup
    await asyncio.gather(*(client(base, bodies, warm_end, 0, [], []) for _ in range(4)))
    start = time.monotonic()
    deadline = start + args.seconds
    await asyncio.gather(*(client(base, bodies, deadline, args.think_ms / 1000, latencies,
                                  errors)
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


# wrk runs this Lua in each of its threads: bodies in turn from a random start, a random
# think time (0..2x mean) before each request but the first, and JSON figures at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {%(bodies)s}
local think_ms = %(think_ms)f
local next_body = 1
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  next_body = math.random(#bodies)
end
function request()
  next_body = next_body %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
function delay()
  return math.random() * 2 * think_ms
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_load(base: str, bodies: list[dict], args: argparse.Namespace) -> dict:
    """The `wrk` client: a warm-up run, then the measured one; figures from the Lua `done`."""
    lua = WRK_SCRIPT % {"bodies": ",".join(json.dumps(json.dumps(b)) for b in bodies),
                        "think_ms": args.think_ms}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        def run(seconds: float, clients: int) -> str:
            command = ["wrk", "-t", str(min(2, clients)), "-c", str(clients),
                       "-d", f"{seconds:g}s", "--timeout", "10s", "-s", script.name,
                       f"{base}/recommend"]
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        run(args.warmup, 4)
        stats = json.loads(run(args.seconds, args.clients).strip().splitlines()[-1])
    finally:
        os.unlink(script.name)
    return {
        "requests": stats["requests"],
        "requests_per_s": round(stats["requests"] / (stats["duration_us"] / 1e6), 1),
        **{f"{p}_ms": round(stats[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p99", "max")},
        "errors": stats["errors"],
    }


def loadavg() -> str:
    """The first three fields of /proc/loadavg (1, 5, 15 minutes), or "" off Linux."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time (<= 60)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between requests")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--by", choices=["history", "user"], default="history",
                        help="requests name a history of random items, or a user id")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator (auto: wrk when installed)")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="sources the server runs (another checkout's, to compare)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "serve_load.json")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")

    rng = random.Random(0)
    if args.by == "user":
        users = pl.read_parquet(args.run_dir / "users.parquet", columns=["user"])["user"]
        whom = [{"user": user} for user in rng.sample(users.to_list(), min(1000, len(users)))]
    else:
        items = pl.read_parquet(args.run_dir / "items.parquet")["item"].to_list()
        whom = [{"history": rng.sample(items, rng.randint(1, 50))} for _ in range(1000)]
    bodies = [{**who, "k": args.k, "explain": args.explain} for who in whom]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_name = args.client
    if client_name == "auto":
        client_name = "wrk" if shutil.which("wrk") else "python"
    server = start_server(args.run_dir, port, args.threads, args.src)
    try:
        health = wait_healthy(base, server)
        load_before = loadavg()
        if client_name == "wrk":
            figures = wrk_load(base, bodies, args)
        else:
            figures = asyncio.run(python_load(base, bodies, args))
        load_after = loadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "benchmark": "serve_load", "run_dir": str(args.run_dir), "model_items": health["items"],
        "max_len": health["max_len"], "clients": args.clients, "seconds": args.seconds,
        "think_ms": args.think_ms, "k": args.k, "explain": args.explain, "by": args.by,
        "server_torch_threads": args.threads, "client": client_name, "cpus": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "machine": platform.processor() or platform.machine(), **figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
