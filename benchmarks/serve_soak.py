"""Soak test of `bert4rec serve`: 32 clients for 60 s of mixed traffic, 5% of it hostile.

    nice python benchmarks/serve_soak.py RUN_DIR [--clients 32] [--seconds 60] [--hostile 0.05]

Starts the server on 127.0.0.1 in its own process (as serve_load.py does) and runs `--clients`
asyncio + httpx clients, each sending one request at a time, pausing a random 0..2x
`--think-ms` between an answer and the next (paced, like people clicking; 0 is closed loop).
Normal requests: `/recommend` with 1-50 catalogue ids (60%), with 1-5 titles as people type
them (15%), and `/items?q=` title prefixes (25%). Hostile requests (`--hostile`, default 5%):
a 60,000-character title, a 300-character garbage title, unknown ids, malformed JSON, an
oversized body and a 200-character garbage search. Reports the count of 5xx answers and
transport errors, normal-request p50/p99 (client side), hostile statuses, and the server's
RSS (sampled every second, and its peak), prints a table and writes JSON to
benchmarks/out/serve_soak.json. A benchmark, not a test. The client runs in this process and
takes CPU from the server on a small machine: its figures are an upper bound on latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import string
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from serve_load import free_port, loadavg, start_server, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
NORMAL = (("recommend ids", 0.60), ("recommend titles", 0.15), ("search", 0.25))
HOSTILE = ("huge title", "garbage title", "unknown ids", "malformed json", "oversized body",
           "garbage search")


def garbage(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + " ") for _ in range(n))


def request(kind: str, rng: random.Random, ids: list[int], titles: list[str]) -> dict:
    """httpx request arguments (method, url and body) for one request of `kind`."""
    if kind == "recommend ids":
        return {"method": "POST", "url": "/recommend",
                "json": {"history": rng.sample(ids, rng.randint(1, 50)), "k": 10}}
    if kind == "recommend titles":
        picked = rng.sample(titles, rng.randint(1, 5))
        typed = [t if rng.random() < 0.5 else t.rsplit(" (", 1)[0].lower() for t in picked]
        return {"method": "POST", "url": "/recommend", "json": {"history": typed, "k": 10}}
    if kind == "search":
        title = rng.choice(titles)
        return {"method": "GET", "url": "/items",
                "params": {"q": title[: rng.randint(3, 10)], "limit": 10}}
    if kind == "huge title":
        return {"method": "POST", "url": "/recommend", "json": {"history": ["x" * 60_000]}}
    if kind == "garbage title":
        return {"method": "POST", "url": "/recommend", "json": {"history": [garbage(rng, 300)]}}
    if kind == "unknown ids":
        return {"method": "POST", "url": "/recommend",
                "json": {"history": [10**12 + rng.randint(0, 999), -1]}}
    if kind == "malformed json":
        return {"method": "POST", "url": "/recommend", "content": b'{"history": [1, 2',
                "headers": {"content-type": "application/json"}}
    if kind == "oversized body":
        return {"method": "POST", "url": "/recommend",
                "json": {"history": list(range(40_000))}}
    return {"method": "GET", "url": "/items", "params": {"q": garbage(rng, 200)}}


def pick(rng: random.Random, hostile_share: float) -> str:
    if rng.random() < hostile_share:
        return rng.choice(HOSTILE)
    return rng.choices([k for k, _ in NORMAL], weights=[w for _, w in NORMAL])[0]


async def client(seed: int, http: httpx.AsyncClient, deadline: float, args: argparse.Namespace,
                 ids: list[int], titles: list[str], record: list[tuple[str, int, float]]) -> None:
    """One user until the deadline; appends (kind, status or 0 for a transport error, s).
    Users arrive spread over one think time, not all in the same millisecond."""
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0, 2 * args.think_ms / 1000))
    while time.monotonic() < deadline:
        kind = pick(rng, args.hostile)
        start = time.perf_counter()
        try:
            status = (await http.request(**request(kind, rng, ids, titles))).status_code
        except httpx.HTTPError:
            status = 0
        record.append((kind, status, time.perf_counter() - start))
        if args.think_ms:
            await asyncio.sleep(rng.uniform(0, 2 * args.think_ms / 1000))


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process from /proc (KiB), 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def sample_rss(pid: int, deadline: float, samples: list[int]) -> None:
    while time.monotonic() < deadline:
        samples.append(rss_kib(pid))
        await asyncio.sleep(1.0)


async def soak(base: str, pid: int, args: argparse.Namespace, ids: list[int],
               titles: list[str]) -> tuple[list[tuple[str, int, float]], list[int]]:
    """Warm up with all clients, then measure; one connection pool serves every client (a
    client of its own each would cost the load generator seconds of CPU to set up)."""
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        warm_end = time.monotonic() + args.warmup
        await asyncio.gather(*(client(1000 + i, http, warm_end, args, ids, titles, [])
                               for i in range(args.clients)))
        record: list[tuple[str, int, float]] = []
        samples: list[int] = []
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(sample_rss(pid, deadline, samples),
                             *(client(i, http, deadline, args, ids, titles, record)
                               for i in range(args.clients)))
    return record, samples


def summary(record: list[tuple[str, int, float]], samples: list[int], peak_kib: int,
            args: argparse.Namespace) -> dict:
    normal_kinds = {k for k, _ in NORMAL}
    normal = np.array([s for k, st, s in record if k in normal_kinds and st == 200]) * 1000
    by_kind = {}
    for kind in [k for k, _ in NORMAL] + list(HOSTILE):
        rows = [(st, s) for k, st, s in record if k == kind]
        if rows:
            ms = np.array([s for _, s in rows]) * 1000
            by_kind[kind] = {"requests": len(rows),
                             "statuses": dict(Counter(str(st) for st, _ in rows)),
                             "p50_ms": round(float(np.percentile(ms, 50)), 2),
                             "p99_ms": round(float(np.percentile(ms, 99)), 2)}
    third = max(1, len(samples) // 3)
    return {
        "requests": len(record),
        "requests_per_s": round(len(record) / args.seconds, 1),
        "server_errors_5xx": sum(1 for _, st, _ in record if st >= 500),
        "transport_errors": sum(1 for _, st, _ in record if st == 0),
        "normal_not_200": sum(1 for k, st, _ in record if k in normal_kinds and st != 200),
        "normal_p50_ms": round(float(np.percentile(normal, 50)), 2) if len(normal) else None,
        "normal_p99_ms": round(float(np.percentile(normal, 99)), 2) if len(normal) else None,
        "rss_mib_first_third": round(np.mean(samples[:third]) / 1024, 1) if samples else None,
        "rss_mib_last_third": round(np.mean(samples[-third:]) / 1024, 1) if samples else None,
        "rss_peak_mib": round(peak_kib / 1024, 1),
        "by_kind": by_kind,
    }


def print_table(result: dict) -> None:
    print(f"{'kind':<18} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for kind, row in result["by_kind"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row["statuses"].items()))
        print(f"{kind:<18} {row['requests']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8}  {statuses}")
    print(f"5xx: {result['server_errors_5xx']}, transport errors: {result['transport_errors']}, "
          f"normal not 200: {result['normal_not_200']}; normal p50 {result['normal_p50_ms']} ms, "
          f"p99 {result['normal_p99_ms']} ms; {result['requests_per_s']} req/s")
    print(f"server RSS: {result['rss_mib_first_third']} MiB (first third) -> "
          f"{result['rss_mib_last_third']} MiB (last third), peak {result['rss_peak_mib']} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--think-ms", type=float, default=250.0,
                        help="mean pause between an answer and the next request (0: closed)")
    parser.add_argument("--hostile", type=float, default=0.05, help="share of hostile requests")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="the bert4rec sources the server runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "serve_soak.json")
    args = parser.parse_args()
    items = pl.read_parquet(args.run_dir / "items.parquet")
    ids = items["item"].to_list()
    titles = [t for t in items["title"].to_list() if t]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    before = loadavg()
    server = start_server(args.run_dir, port, args.threads, args.src)
    try:
        wait_healthy(base, server)
        record, samples = asyncio.run(soak(base, server.pid, args, ids, titles))
        peak = rss_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck in a long call: a stalled server
            server.kill()
            server.wait()
    result = {
        "run_dir": str(args.run_dir), "clients": args.clients, "seconds": args.seconds,
        "think_ms": args.think_ms, "hostile_share": args.hostile,
        **summary(record, samples, peak, args),
        "loadavg_before": before, "loadavg_after": loadavg(),
        "python": sys.version.split()[0], "machine": platform.machine(),
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
