"""Lazy (sparse item gradients) against dense Adam on a real log: does the lazy update cost quality?

Trains the `small` preset with each sampled loss on ml-latest-small twice per seed, once with the
item table's gradients dense and once sparse (`sparse_items.SPARSE_ITEMS_FROM` set around its
6,298 items), and prints validation and test NDCG@10 of the epoch chosen on validation. One
torch thread. Not a test.

    nice python benchmarks/sparse_quality.py [--source ml-latest-small] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bert4rec.api import Dataset
from bert4rec.config import preset
from bert4rec.training import sparse_items
from bert4rec.training.loop import fit

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="ml-latest-small")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--losses", nargs="+", default=["in-batch", "uniform"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, help="the preset's when not given")
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = Dataset.from_source(args.source).corpus
    rows = []
    for loss in args.losses:
        for seed in args.seeds:
            for gradients in ("dense", "sparse"):
                changes = {"optim.loss": loss, "loop.seed": seed, "loop.device": "cpu"}
                if args.epochs:
                    changes["loop.epochs"] = args.epochs
                settings = preset(args.preset).override(changes)
                sparse_items.SPARSE_ITEMS_FROM = 1 if gradients == "sparse" else corpus.n_items + 1
                started = time.perf_counter()
                with tempfile.TemporaryDirectory() as out:
                    result = fit(corpus, settings, Path(out) / "run", progress=False)
                rows.append({
                    "source": args.source, "preset": args.preset, "loss": loss, "seed": seed,
                    "item_gradients": gradients, "epochs": settings.loop.epochs,
                    "best_epoch": result.best_epoch,
                    "valid_NDCG@10": round(result.valid["NDCG@10"], 4),
                    "test_NDCG@10": round(result.test["NDCG@10"], 4),
                    "test_HR@10": round(result.test["HR@10"], 4),
                    "seconds": round(time.perf_counter() - started),
                })
                print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sparse_quality.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {OUT / 'sparse_quality.json'}")


if __name__ == "__main__":
    main()
