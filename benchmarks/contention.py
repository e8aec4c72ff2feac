"""Training, scoring every user and serving, alone and beside one busy process, per thread policy.

    nice python benchmarks/contention.py RUN_DIR [--parts train,recommend,serve]
        [--policies spin2,one,passive2,asked2,fitted] [--epochs 8] [--serve-seconds 10]

Reproduces docs/performance.md's "Threads beside other work" table: each command runs in its
own process, once alone and once beside `python -c "while True: pass"` (started before it,
killed after), under each thread policy:

- `spin2`: 2 threads spinning at barriers, as before threads were fitted (`--threads 2` with
  libgomp's default spin count set explicitly, so nothing changes it);
- `one`: `--threads 1`;
- `passive2`: 2 threads with OMP_WAIT_POLICY=PASSIVE;
- `asked2`: `--threads 2` alone, which now waits passively where the cores are not free;
- `fitted`: no flag, the count fitted to the machine (training/threads.py).

Parts: `train` times `bert4rec train ml-latest-small --epochs N` (found under --data-dir or
$BERT4REC_DATA_DIR); `recommend` times `bert4rec recommend RUN_DIR --all-users --output
FILE`; `serve` starts `bert4rec serve RUN_DIR` and drives POST /recommend with 8 closed-loop
clients (histories of 1-50 random items) for `--serve-seconds`, reporting requests/s and
p50/p99. Wall times include the interpreter and torch start-up. The "threads:" lines each
command logged are kept, so the JSON shows what the fitted policy chose. Writes JSON to
benchmarks/out/contention.json. On the 2-core development machine a full run takes about 10
minutes when quiet; run it when nothing else does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from serve_load import free_port, python_load, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "spin2": ({"GOMP_SPINCOUNT": "300000"}, ["--threads", "2"]),
    "one": ({}, ["--threads", "1"]),
    "passive2": ({"OMP_WAIT_POLICY": "PASSIVE"}, ["--threads", "2"]),
    "asked2": ({}, ["--threads", "2"]),
    "fitted": ({}, []),
}
"""Each policy: environment variables and command-line words."""
OPENMP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "BERT4REC_THREADS")


@contextmanager
def beside(busy: bool):
    """With `busy`, one process spinning on a core for the duration."""
    spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None)
    try:
        time.sleep(1.0 if busy else 0.0)  # let the scheduler and the load average see it
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def environment(policy: str) -> dict[str, str]:
    """This process's environment without OpenMP choices, plus `policy`'s and the sources."""
    env = {k: v for k, v in os.environ.items() if k not in OPENMP}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return {**env, **POLICIES[policy][0]}


def bert4rec(words: list[str], policy: str) -> dict:
    """Run `bert4rec WORDS` under `policy`; its wall seconds and the thread lines it logged."""
    command = [sys.executable, "-m", "bert4rec", *words, *POLICIES[policy][1]]
    start = time.perf_counter()
    done = subprocess.run(command, env=environment(policy), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    said = [line.split("threads: ", 1)[1] for line in done.stderr.splitlines()
            if "bert4rec.training.threads: threads: " in line]
    return {"seconds": round(seconds, 2), "threads": said}


def serve(run_dir: Path, policy: str, seconds: float) -> dict:
    """`bert4rec serve` under `policy`, driven by 8 closed-loop clients for `seconds`."""
    rng = random.Random(0)
    items = pl.read_parquet(run_dir / "items.parquet")["item"].to_list()
    bodies = [{"history": rng.sample(items, rng.randint(1, min(50, len(items)))), "k": 10}
              for _ in range(500)]
    port = free_port()
    command = [sys.executable, "-m", "bert4rec", "serve", str(run_dir), "--port", str(port),
               *POLICIES[policy][1]]
    server = subprocess.Popen(command, env=environment(policy), stderr=subprocess.PIPE,
                              text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        load = argparse.Namespace(warmup=2.0, seconds=seconds, clients=8, think_ms=0.0)
        figures = asyncio.run(python_load(base, bodies, load))
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    said = [line.split("threads: ", 1)[1] for line in err.splitlines()
            if "bert4rec.training.threads: threads: " in line]
    return {key: figures[key] for key in ("requests_per_s", "p50_ms", "p99_ms", "errors")
            if key in figures} | {"threads": said}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a trained run for recommend and serve")
    parser.add_argument("--parts", default="train,recommend,serve")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--serve-seconds", type=float, default=10.0)
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    parts, policies = args.parts.split(","), args.policies.split(",")
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        parser.error(f"unknown policies {unknown}; known: {sorted(POLICIES)}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for part in parts:
            for policy in policies:
                for busy in (False, True):
                    load = os.getloadavg()[0]
                    with beside(busy):
                        if part == "train":
                            out = Path(scratch, f"{policy}-{busy}")
                            data = ["--data-dir", args.data_dir] if args.data_dir else []
                            figures = bert4rec(["train", "ml-latest-small", "--epochs",
                                                str(args.epochs), "--out", str(out), *data],
                                               policy)
                        elif part == "recommend":
                            figures = bert4rec(["recommend", str(args.run_dir), "--all-users",
                                                "--output", str(Path(scratch, "recs.parquet"))],
                                               policy)
                        else:
                            figures = serve(args.run_dir, policy, args.serve_seconds)
                    row = {"part": part, "policy": policy, "beside_busy": busy,
                           "load_before": round(load, 2), **figures}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "contention.json").write_text(json.dumps(
        {"cpus": len(os.sched_getaffinity(0)), "run_dir": str(args.run_dir), "rows": rows},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
