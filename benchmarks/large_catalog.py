"""Full against sampled softmax on a synthetic 1,000,000-item catalogue: memory and time per step.

Each loss runs in its own process, so each peak resident set size is its own. Batches are
Zipf-distributed item sequences; the model is the `fast` shape. Not a test.

    nice python benchmarks/large_catalog.py [--items 1000000] [--batch-size 64] [--max-len 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from bert4rec.config import preset
from bert4rec.data.batches import cloze_mask
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.runtime import Runtime
from bert4rec.train import TrainingRun

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
    """Time `args.steps` training steps with `args.loss` (runs inside the child process)."""
    rng = np.random.default_rng(0)
    settings = preset("fast").override({
        "optim.loss": args.loss, "optim.negatives": args.negatives,
        "model.max_len": args.max_len, "loop.batch_size": args.batch_size,
        "masking.mask_prob": 0.2, "model.dropout": 0.1,  # as measured in docs/performance.md
        "loop.device": "cpu",
    })
    corpus = zipf_corpus(rng, args.items, 512, args.max_len)  # its counts give the in-batch log Q
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
        "max_len": args.max_len, "negatives": args.negatives if args.loss == "uniform" else None,
        "seconds_per_step": round(float(np.median(times)), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "parameters": model.num_parameters(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--loss", help="run only this loss (used for the child processes)")
    args = parser.parse_args()
    if args.loss:
        print(json.dumps(one_loss(args)))
        return
    rows = []
    for loss in ("full", "uniform", "in-batch"):
        command = [sys.executable, __file__, "--loss", loss, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"loss": loss, "error": done.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "large_catalog.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {OUT / 'large_catalog.json'}")


if __name__ == "__main__":
    main()
