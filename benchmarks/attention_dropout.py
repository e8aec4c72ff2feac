"""Training steps per second with attention dropout, by where the dropout goes: side by side in
one process, on the same batches.

    nice python benchmarks/attention_dropout.py [--data-dir DIR] [--steps 5] [--rounds 3]
        [--variants none,weights,keys,keys-per-query,output] [--rate 0.2] [--threads N]
        [--profile]

The `paper` shape (batch 256, length 200, width 64, 2 blocks, 2 heads, dropout 0.2, full
softmax) on ML-1M's `ml-1m.txt`. Variants of `SelfAttention` (model.py), each at `--rate`:
`none` (no attention dropout: PyTorch's fused CPU attention), `weights` (dropout on the
attention probabilities, the classic BERT recipe: SDPA falls back to its unfused math kernel on
the CPU), `keys` (DropKey shared by a head's queries: each head of each sequence ignores a
random share of the keys, the others renormalised, through the fused kernel's mask: the
model's `attention_dropout_on=keys`), `keys-per-query` (DropKey drawn per query: a [B, heads,
T, T] mask) and `output` (dropout on the attention's output, before its projection).
Each round times `--steps` optimiser steps of every variant in turn (after one warm-up step
each), each variant from its own copy of the same start; the best round counts. `--profile`
prints where a `weights` step spends its time. Writes JSON to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bert4rec.config import preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.model import SelfAttention
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime
from bert4rec.training.threads import governed

OUT = Path(__file__).resolve().parent / "out"
ORIGINAL = SelfAttention.forward


def attention(kind: str, rate: float):
    """A `SelfAttention.forward` that drops as `kind` says while training."""
    if kind in ("none", "weights", "keys"):
        return ORIGINAL

    def forward(self, x, keep, last=False):
        b, t, h = x.shape
        q, k, v = self.qkv(x).split(h, dim=-1)
        q, k, v = (z.view(b, -1, self.heads, h // self.heads).transpose(1, 2)
                   for z in (q, k, v))
        mask = keep
        if self.training and kind == "keys-per-query":
            dropped = torch.rand(b, self.heads, t, t, device=x.device) < rate
            mask = keep & ~dropped
            mask = mask | ~mask.any(dim=-1, keepdim=True)  # a query left with no key keeps all
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if self.training and kind == "output":
            y = F.dropout(y, rate)
        return self.out(y.transpose(1, 2).reshape(b, -1, h))

    return forward


def settings_for(kind: str, rate: float):
    on = "keys" if kind == "keys" else "weights"
    dropout = rate if kind in ("weights", "keys") else 0.0
    return preset("paper").override({"model.attention_dropout": dropout,
                                     "model.attention_dropout_on": on,
                                     "loop.device": "cpu"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--threads", type=int, help="torch threads (default: fitted)")
    parser.add_argument("--variants",
                        default="none,weights,keys,keys-per-query,output")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    corpus = load_corpus(Path(args.data_dir) / "ml-1m" / "ml-1m.txt",
                         PrepareSettings(min_rating=None, min_user_interactions=0))
    variants = args.variants.split(",")
    with governed(args.threads):
        runs = {kind: TrainingRun(corpus, settings_for(kind, args.rate),
                                  Runtime(torch.device("cpu")), show_progress=False)
                for kind in variants}
        batches = list(zip(range(args.steps + 1), runs[variants[0]].loader, strict=False))
        best = dict.fromkeys(variants, float("inf"))
        load = [os.getloadavg()]
        for _ in range(args.rounds):
            for kind, run in runs.items():
                SelfAttention.forward = attention(kind, args.rate)
                try:
                    run.model.train()
                    run.step(*batches[0][1])  # warm-up
                    start = time.perf_counter()
                    for _, (inputs, labels) in batches[1:]:
                        run.step(inputs, labels)
                    best[kind] = min(best[kind], time.perf_counter() - start)
                finally:
                    SelfAttention.forward = ORIGINAL
        load.append(os.getloadavg())
        if args.profile:
            profile(runs.get("weights") or next(iter(runs.values())), batches[1][1])
        threads = torch.get_num_threads()
    sequences = sum(len(inputs) for _, (inputs, _) in batches[1:])
    rows = [{"variant": kind, "sequences_per_s": round(sequences / best[kind], 1),
             "vs_none": round(best.get("none", best[kind]) / best[kind], 3)}
            for kind in variants]
    for row in rows:
        print(f"{row['variant']:>15}  {row['sequences_per_s']:>7.1f} sequences/s  "
              f"{row['vs_none']:.2f} of none's speed")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "attention_dropout.json").write_text(json.dumps(
        {"shape": "paper", "rate": args.rate, "steps": args.steps, "rounds": args.rounds,
         "threads": threads, "load_average": load, "rows": rows}, indent=2) + "\n")


def profile(run: TrainingRun, batch) -> None:
    """Print the operators one step of `run` spends its time in."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    with profiler(activities=[ProfilerActivity.CPU]) as prof:
        run.step(*batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
