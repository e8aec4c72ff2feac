"""Throughput of `bert4rec recommend RUN --all-users --output FILE`: users per second.

    nice python benchmarks/recommend_all.py RUN_DIR [--threads 2] [--repeats 3] [--k 10]

Times, in one process, each phase of the command as `cli/use.py` runs it: loading the run
(weights, items.parquet, users.parquet), scoring every user (`Recommender.top_k`: batches of
similar length, only as wide as needed, top-k on each batch), building the long table and
writing it as Parquet and as CSV. Scoring is timed `--repeats` times (best and median kept);
`--all-positions` also times the forward pass as it was before the final block learned to
compute only the last position, for comparison. Prints the figures, the torch thread count
and the load average, and writes them as JSON to benchmarks/out/recommend_all.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bert4rec import rundir
from bert4rec.cli.output import write_table
from bert4rec.inference.recommender import Recommender
from bert4rec.model import BERT4Rec

ROOT = Path(__file__).resolve().parents[1]


def timed(work):
    start = time.perf_counter()
    value = work()
    return value, time.perf_counter() - start


def all_positions(self: BERT4Rec, items: torch.Tensor, targets=None, project: bool = True):
    """BERT4Rec.forward at inference as it was: every position through every block."""
    return self.project(self.encoder(items)[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--all-positions", action="store_true",
                        help="also time the forward pass over every position")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rec, load_s = timed(lambda: Recommender.load(args.run_dir))
    users, users_s = timed(lambda: rundir.read_users(args.run_dir, rec.n_items))
    positions, keys = users.positions(users.ids)
    flat, offsets = users.subset(positions)

    def score():
        return rec.top_k(flat, offsets, args.k, True, None, batch_size=args.batch_size)

    times = [timed(score)[1] for _ in range(args.repeats)]
    top = score()
    frame, frame_s = timed(lambda: rec.to_frame("user", keys, *top))
    writes = {}
    with tempfile.TemporaryDirectory() as folder:
        for suffix in (".parquet", ".csv"):
            writes[suffix] = timed(lambda s=suffix: write_table(frame, Path(folder, "r" + s)))[1]
    figures = {
        "run_dir": str(args.run_dir), "users": len(keys), "items": rec.n_items,
        "max_len": rec.model.config.max_len, "hidden": rec.model.config.hidden,
        "mean_history": float(users.lengths.mean()), "k": args.k,
        "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
        "load_s": load_s, "read_users_s": users_s, "score_best_s": min(times),
        "score_median_s": statistics.median(times), "frame_s": frame_s,
        "write_parquet_s": writes[".parquet"], "write_csv_s": writes[".csv"],
        "users_per_s_scoring": len(keys) / min(times),
        "users_per_s_to_parquet": len(keys) / (min(times) + frame_s + writes[".parquet"]),
    }
    if args.all_positions:
        original = BERT4Rec.forward
        BERT4Rec.forward = all_positions
        try:
            before = min(timed(score)[1] for _ in range(args.repeats))
        finally:
            BERT4Rec.forward = original
        figures["score_all_positions_best_s"] = before
        figures["users_per_s_scoring_all_positions"] = len(keys) / before
    figures["load_average"] = [load_before, os.getloadavg()]
    for key, value in figures.items():
        print(f"{key:>34}  {value:,.3f}" if isinstance(value, float) else f"{key:>34}  {value}")
    out = ROOT / "benchmarks" / "out" / "recommend_all.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
