"""Benchmark `bert4rec data prepare` on a synthetic ML-20M-shaped ratings.csv against pandas.

Writes the synthetic file once (20,000,263 ratings, 138,493 users, 26,744 movies, ratings
0.5..5 in halves, Zipf-skewed movie popularity, log-normal user activity), then runs each
implementation as its own process and reports wall time and peak resident memory
(`ru_maxrss` of that process). Figures go to stdout and to JSON under the work directory.

    nice python benchmarks/prepare.py [--work-dir benchmarks/out] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_RATINGS, N_USERS, N_MOVIES = 20_000_263, 138_493, 26_744
MIN_PER_USER = 20  # ML-20M keeps users with at least 20 ratings


def synthesize(path: Path, seed: int = 20) -> None:
    """Write the synthetic ratings.csv (and a small movies.csv) atomically."""
    import polars as pl

    rng = np.random.default_rng(seed)
    weights = rng.lognormal(mean=0.0, sigma=1.2, size=N_USERS)
    extra = rng.multinomial(N_RATINGS - MIN_PER_USER * N_USERS, weights / weights.sum())
    per_user = MIN_PER_USER + extra
    users = np.repeat(np.arange(1, N_USERS + 1, dtype=np.int64), per_user)
    popularity = 1.0 / (np.arange(N_MOVIES) + 20.0) ** 1.1
    movie_ids = np.sort(rng.choice(np.arange(1, 140_000), size=N_MOVIES, replace=False))
    items = rng.choice(movie_ids, size=N_RATINGS, p=popularity / popularity.sum())
    items[rng.choice(N_RATINGS, size=N_MOVIES, replace=False)] = movie_ids  # every movie rated
    ratings = rng.choice(np.arange(1, 11) / 2, size=N_RATINGS, p=_rating_shape())
    start = rng.integers(789_652_009, 1_400_000_000, size=N_USERS)
    timestamps = np.repeat(start, per_user) + rng.integers(0, 30_000_000, size=N_RATINGS)
    frame = pl.DataFrame(
        {"userId": users, "movieId": items, "rating": ratings, "timestamp": timestamps}
    ).sort("userId", "movieId")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".csv.part")
    frame.write_csv(staging, float_precision=1)
    os.replace(staging, path)
    movies = pl.DataFrame(
        {"movieId": movie_ids, "title": [f"Movie {i} (2000)" for i in movie_ids]}
    ).with_columns(genres=pl.lit("Drama|Comedy"))
    movies.write_csv(path.with_name("movies.csv"))


def _rating_shape() -> np.ndarray:
    """Roughly ML-20M's rating histogram over 0.5, 1.0, ..., 5.0."""
    shape = np.array([1.2, 3.3, 1.8, 7.2, 4.4, 21.4, 11.0, 27.6, 7.6, 14.5])
    return shape / shape.sum()


PANDAS_PREPARE = """
import sys, json, numpy as np, pandas as pd
path = sys.argv[1]
df = pd.read_csv(path, dtype={"userId": "int64", "movieId": "int64", "rating": "float64",
                              "timestamp": "int64"})
df = df[df["rating"] >= 4.0]
df = df[df.groupby("userId")["userId"].transform("size") >= 5]
df = df.sort_values(["userId", "timestamp"], kind="stable")
item_ids = np.sort(df["movieId"].unique())
items_flat = np.searchsorted(item_ids, df["movieId"].to_numpy()) + 1
users = df["userId"].to_numpy()
offsets = np.concatenate([[0], np.flatnonzero(users[1:] != users[:-1]) + 1, [len(users)]])
print(json.dumps({"users": len(offsets) - 1, "items": len(item_ids),
                  "interactions": int(len(items_flat))}))
"""

MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "wall_s": wall, "peak_mib": peak_kib / 1024,
                  "stdout": done.stdout.strip().splitlines()[-1:] or [""],
                  "stderr": done.stderr[-2000:]}))
"""


def measure(command: list[str]) -> dict:
    """Run `command` in a fresh wrapper process so ru_maxrss covers this command alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env
    )
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result['stderr']}")
    result["output"] = json.loads(result.pop("stdout")[0])
    del result["stderr"], result["rc"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = args.work_dir / "ml-20m-synthetic" / "ratings.csv"
    if not data.is_file():
        print(f"writing {data} (once) ...", flush=True)
        synthesize(data)
    ours = [sys.executable, "-m", "bert4rec", "data", "prepare", "--no-cache", "--json"]
    runs: dict[str, list[dict]] = {"bert4rec": [], "pandas": []}
    for _ in range(args.repeats):
        runs["bert4rec"].append(measure([*ours, str(data.parent)]))
        runs["pandas"].append(measure([sys.executable, "-c", PANDAS_PREPARE, str(data)]))
    report = {
        "data": str(data),
        "rows": N_RATINGS,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
        "best": {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()},
        "peak_mib": {name: max(r["peak_mib"] for r in rs) for name, rs in runs.items()},
    }
    for name, rs in runs.items():
        counts = {k: rs[0]["output"][k] for k in ("users", "items", "interactions")}
        print(
            f"{name:<9} wall {report['best'][name]:6.1f} s   peak {report['peak_mib'][name]:7.0f}"
            f" MiB   {counts}"
        )
    out = args.work_dir / "prepare.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
