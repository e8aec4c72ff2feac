"""Full against sampled softmax, dense against sparse item gradients, on synthetic catalogues of
1 and 10 million items: memory and time per step.

Each row runs in its own process, so each peak resident set size is its own. Batches are
Zipf-distributed item sequences; the model is the `fast` shape. The full softmax and dense item
gradients run only up to `--dense-max` items (at 10M the full softmax's logits alone would take
N x V x 4 bytes, ~26 GB, and dense Adam four copies of the 2.6 GB table). With `--fit` each
row runs `fit` end to end for one epoch instead (the model's start, the epoch, validation,
the checkpoint, test). Not a test.

    nice python benchmarks/large_catalog.py [--items 1000000 10000000] [--batch-size 64]
    nice python benchmarks/large_catalog.py --fit --items 10000000 --losses in-batch
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from bert4rec.config import Settings, preset
from bert4rec.data.batches import cloze_mask
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.training import sparse_items
from bert4rec.training.loop import TrainingRun, fit
from bert4rec.training.runtime import Runtime

OUT = Path(__file__).resolve().parent / "out"


def zipf_batch(rng: np.random.Generator, items: int, batch: int, length: int) -> torch.Tensor:
    """[batch, length] item indices in 1..items, popularity following Zipf's law."""
    ranks = rng.zipf(1.1, size=(batch, length))
    return torch.from_numpy((ranks - 1) % items + 1)


def zipf_corpus(rng: np.random.Generator, items: int, users: int, length: int) -> SequenceCorpus:
    """`users` Zipf sequences of `length` items over a catalogue of `items` (ids 1..items)."""
    flat = zipf_batch(rng, items, users, length).numpy().reshape(-1)
    ids = np.arange(1, items + 1)
    table = pl.DataFrame({"index": ids, "item": ids, "title": None, "genres": None},
                         schema={"index": pl.Int64, "item": pl.Int64, "title": pl.String,
                                 "genres": pl.List(pl.String)})
    return SequenceCorpus(items_flat=flat, offsets=np.arange(users + 1) * length,
                          user_ids=np.arange(users), item_ids=ids, item_table=table,
                          name="zipf", settings=PrepareSettings())


def one_loss(args: argparse.Namespace) -> dict:
    """Time `args.steps` training steps with `args.loss` over `args.items[0]` items, the item
    table's gradients dense or sparse as `args.item_gradients` says (the child process)."""
    args.items = args.items[0]
    sparse_items.SPARSE_ITEMS_FROM = 1 if args.item_gradients == "sparse" else args.items + 1
    rng = np.random.default_rng(0)
    settings = preset("fast").override({
        "optim.loss": args.loss, "optim.negatives": args.negatives,
        "model.max_len": args.max_len, "loop.batch_size": args.batch_size,
        "masking.mask_prob": 0.2, "model.dropout": 0.1,  # as measured in docs/performance.md
        "loop.device": "cpu",
    })
    corpus = zipf_corpus(rng, args.items, 512, args.max_len)  # its counts give the in-batch log Q
    if args.fit:
        return one_fit(args, corpus, settings)
    run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
    model = run.model
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(args.warmup + args.steps):
        items = zipf_batch(rng, args.items, args.batch_size, args.max_len)
        inputs, labels = cloze_mask(items, settings.masking, corpus.mask_token, generator)
        start = time.perf_counter()
        run.step(inputs, labels)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return {
        "loss": args.loss, "items": args.items, "batch_size": args.batch_size,
        "item_gradients": "sparse" if run.sparse_items else "dense",
        "max_len": args.max_len, "negatives": args.negatives if args.loss == "uniform" else None,
        "seconds_per_step": round(float(np.median(times)), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "parameters": model.num_parameters(),
    }


def one_fit(args: argparse.Namespace, corpus: SequenceCorpus, settings: Settings) -> dict:
    """`fit` end to end for one epoch in a temporary run directory: the model's start, the
    epoch, validation, the checkpoint, test. Reports its seconds, peak memory and files."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        fit(corpus, settings.override({"loop.epochs": 1}), Path(out) / "run", progress=False)
        files = {p.name: p.stat().st_size >> 20 for p in Path(out).rglob("*")
                 if p.suffix in (".pt", ".safetensors")}
    return {
        "fit": True, "loss": args.loss, "items": args.items,
        "item_gradients": args.item_gradients, "users": len(corpus.user_ids),
        "seconds": round(time.perf_counter() - started),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "files_mib": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--losses", nargs="+", default=["full", "uniform", "in-batch"])
    parser.add_argument("--dense-max", type=int, default=1_000_000,
                        help="largest catalogue run with the full softmax or dense gradients")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--fit", action="store_true",
                        help="run fit end to end for one epoch instead of timing steps")
    parser.add_argument("--out", type=Path, default=OUT / "large_catalog.json")
    parser.add_argument("--loss", help="run only this loss (used for the child processes)")
    parser.add_argument("--item-gradients", choices=("dense", "sparse"),
                        help="the child's item-table gradients")
    args = parser.parse_args()
    if args.loss:
        print(json.dumps(one_loss(args)))
        return
    rows = []
    for items in args.items:
        for loss in args.losses:
            for gradients in ("dense",) if loss == "full" else ("dense", "sparse"):
                if gradients == "dense" and items > args.dense_max:
                    continue
                command = [sys.executable, __file__, *sys.argv[1:], "--items", str(items),
                           "--loss", loss, "--item-gradients", gradients]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                    rows.append({"loss": loss, "items": items, "item_gradients": gradients,
                                 "error": error})
                else:
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
