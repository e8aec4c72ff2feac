"""Abuse test of `bert4rec serve`: 4 abusive clients in closed loops beside normal traffic.

    nice python benchmarks/abuse.py RUN_DIR [--seconds 30] [--normal 4] [--think-ms 100]

Starts the server on 127.0.0.1 in its own process (serve_load.start_server), as `bert4rec
serve RUN_DIR` starts it, and runs, for `--seconds` after a warm-up, four abusive clients that
each send their next request as soon as the last is answered (issue 23's cases):

  big 422        {"user": U, "items": [{}] * 10000}: 30 KB in; the 422 echoed 2.2 MB before
  huge title     a 60,000-character title (its 422 echoed it twice, 120 KB)
  non-finite     NaN, 1e309, [NaN], [Infinity] and -Infinity in k, items, exclude, history
                 (each was a 500)
  probe          by turns: {"user": u} for u = 1, 2, ... (every user's history), a foreign
                 Host header (DNS rebinding), {"user": true}, and loose path ids (/items/1_0,
                 /items/+1, /items/%D9%A1)

beside `--normal` clients that recommend for histories of 1-50 catalogue ids, pausing a random
0..2x `--think-ms` between an answer and the next request. Every request has a 10 s client
timeout, and the run is bounded by `--seconds`. Reports each kind's count, statuses and
p50/p99 (client side), the 5xx and transport-error counts, and the normal requests' p50/p99;
prints a table and writes JSON to benchmarks/out/abuse.json. The abusers run in a process of
their own, the normal clients in this one, so that the abusers' answers do not queue on the
normal clients' event loop; on a small machine both processes take CPU from the server. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from serve_load import free_port, loadavg, start_server, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
ABUSIVE = ("big 422", "huge title", "non-finite", "probe")
NON_FINITE = ('{"user": %d, "k": NaN}', '{"user": %d, "k": 1e309}', '{"user": %d, "items": [NaN]}',
              '{"user": %d, "exclude": [Infinity]}', '{"history": [-Infinity], "k": %d}')
JSON = {"content-type": "application/json"}


def abusive_requests(kind: str, users: list, ids: list) -> itertools.cycle:
    """The endless requests (httpx keyword arguments) of one abusive client; bodies are
    serialised once, so the client spends its time sending, not building them."""
    if kind == "big 422":
        body = json.dumps({"user": users[0], "items": [{}] * 10_000}).encode()
        return itertools.cycle([{"method": "POST", "url": "/recommend", "content": body,
                                 "headers": JSON}])
    if kind == "huge title":
        body = json.dumps({"history": ["x" * 60_000]}).encode()
        return itertools.cycle([{"method": "POST", "url": "/recommend", "content": body,
                                 "headers": JSON}])
    if kind == "non-finite":
        return itertools.cycle([{"method": "POST", "url": "/recommend", "headers": JSON,
                                 "content": (text % users[0]).encode()} for text in NON_FINITE])
    probes = []
    for user in users[:200]:  # the enumeration, interleaved with the other probes
        probes.append({"method": "POST", "url": "/recommend", "json": {"user": user}})
    others = [{"method": "GET", "url": "/health", "headers": {"host": "attacker.example"}},
              {"method": "POST", "url": "/recommend", "json": {"user": True}},
              {"method": "GET", "url": "/items/1_0/similar"},
              {"method": "GET", "url": "/items/%2B1/similar"},
              {"method": "GET", "url": "/items/%D9%A1/similar"}]
    mixed = [request for pair in zip(probes, itertools.cycle(others)) for request in pair]
    return itertools.cycle(mixed)


async def abuser(kind: str, http: httpx.AsyncClient, deadline: float, users: list, ids: list,
                 record: list) -> None:
    for request in abusive_requests(kind, users, ids):
        if time.monotonic() >= deadline:
            return
        start = time.perf_counter()
        try:
            status = (await http.request(**request)).status_code
        except httpx.HTTPError:
            status = 0
        record.append((kind, status, time.perf_counter() - start))


async def normal(seed: int, http: httpx.AsyncClient, deadline: float, ids: list,
                 think_ms: float, record: list) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        body = {"history": rng.sample(ids, rng.randint(1, 50)), "k": 10}
        start = time.perf_counter()
        try:
            status = (await http.post("/recommend", json=body)).status_code
        except httpx.HTTPError:
            status = 0
        record.append(("normal", status, time.perf_counter() - start))
        await asyncio.sleep(rng.uniform(0, 2 * think_ms / 1000))


async def abusers(base: str, seconds: float, users: list, ids: list,
                  record: list) -> None:
    """The four abusive clients for `seconds`, recording into `record`."""
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(ABUSIVE))
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as http:
        await asyncio.gather(*(abuser(kind, http, deadline, users, ids, record)
                               for kind in ABUSIVE))


def abuse_process(base: str, seconds: float, users: list, ids: list, ready: Event, go: Event,
                  answer: Connection) -> None:
    """The abusers in a process of their own: says `ready` once imported, starts on `go`, and
    sends back their record."""
    record: list[tuple[str, int, float]] = []
    ready.set()
    go.wait()
    asyncio.run(abusers(base, seconds, users, ids, record))
    answer.send(record)


async def normals(base: str, args: argparse.Namespace, ids: list, seconds: float,
                  record: list) -> None:
    """The normal clients for `seconds`, recording into `record`."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=10,
                                 limits=httpx.Limits(max_connections=args.normal)) as http:
        await asyncio.gather(*(normal(i, http, deadline, ids, args.think_ms, record)
                               for i in range(args.normal)))


def attack(base: str, args: argparse.Namespace, users: list, ids: list,
           abusive: bool, seconds: float) -> list[tuple[str, int, float]]:
    """Normal clients (and, if `abusive`, the four abusers) for `seconds`. The abusers run in
    a process of their own, as clients elsewhere would: in this one, their answers would
    queue on the normal clients' event loop and count in the normal latencies."""
    record: list[tuple[str, int, float]] = []
    if not abusive:
        asyncio.run(normals(base, args, ids, seconds, record))
        return record
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=abuse_process,
                              args=(base, seconds, users, ids, ready, go, send))
    process.start()
    send.close()  # the child's end only: a child that dies then ends `recv` with EOFError
    try:
        if not ready.wait(timeout=120):
            raise SystemExit("the abusers' process did not start")
        go.set()
        asyncio.run(normals(base, args, ids, seconds, record))
        if not receive.poll(timeout=60):
            raise SystemExit("the abusers' process sent nothing back")
        record += receive.recv()
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    return record


def summary(record: list[tuple[str, int, float]]) -> dict:
    by_kind = {}
    for kind in ("normal", *ABUSIVE):
        rows = [(status, s) for k, status, s in record if k == kind]
        if not rows:
            continue
        ms = np.array([s for _, s in rows]) * 1000
        by_kind[kind] = {"requests": len(rows),
                         "statuses": dict(sorted(Counter(str(st) for st, _ in rows).items())),
                         "p50_ms": round(float(np.percentile(ms, 50)), 1),
                         "p99_ms": round(float(np.percentile(ms, 99)), 1)}
    normal_ok = np.array([s for k, st, s in record if k == "normal" and st == 200]) * 1000
    return {
        "requests": len(record),
        "server_errors_5xx": sum(1 for _, st, _ in record if st >= 500),
        "transport_errors": sum(1 for _, st, _ in record if st == 0),
        "normal_not_200": sum(1 for k, st, _ in record if k == "normal" and st != 200),
        "normal_p50_ms": round(float(np.percentile(normal_ok, 50)), 1) if len(normal_ok) else None,
        "normal_p99_ms": round(float(np.percentile(normal_ok, 99)), 1) if len(normal_ok) else None,
        "by_kind": by_kind,
    }


def print_table(title: str, result: dict) -> None:
    print(title)
    print(f"{'kind':<12} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for kind, row in result["by_kind"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
        print(f"{kind:<12} {row['requests']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8}  {statuses}")
    print(f"5xx: {result['server_errors_5xx']}, transport errors: {result['transport_errors']}, "
          f"normal not 200: {result['normal_not_200']}; normal p50 {result['normal_p50_ms']} ms, "
          f"p99 {result['normal_p99_ms']} ms\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--normal", type=int, default=4, help="normal clients")
    parser.add_argument("--think-ms", type=float, default=100.0,
                        help="mean pause of a normal client between an answer and the next")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="the bert4rec sources the server runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="the server's --threads (default: none, the fitted count)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "abuse.json")
    args = parser.parse_args()
    ids = pl.read_parquet(args.run_dir / "items.parquet")["item"].to_list()
    users = pl.read_parquet(args.run_dir / "users.parquet", columns=["user"])["user"].to_list()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    before = loadavg()
    server = start_server(args.run_dir, port, args.threads, args.src)
    try:
        wait_healthy(base, server)
        attack(base, args, users, ids, abusive=True, seconds=args.warmup)
        quiet = summary(attack(base, args, users, ids, False, args.seconds))
        abused = summary(attack(base, args, users, ids, True, args.seconds))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck in a long call: a stalled server
            server.kill()
            server.wait()
    result = {"run_dir": str(args.run_dir), "seconds": args.seconds, "normal_clients": args.normal,
              "think_ms": args.think_ms, "server_threads": args.threads,
              "normal_alone": quiet, "with_abusers": abused,
              "loadavg_before": before, "loadavg_after": loadavg(),
              "python": sys.version.split()[0], "machine": platform.machine()}
    print_table(f"normal clients alone ({args.normal}, {args.seconds:.0f} s):", quiet)
    print_table(f"with the 4 abusive clients ({args.seconds:.0f} s):", abused)
    print(f"load average before {before}, after {result['loadavg_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
