"""Training throughput of the `paper`, `seed` and `fast` presets on ml-1m.txt, fixed step count.

Reports sequences/s, tokens/s (padded positions and real items), peak memory, estimated model
FLOPs per step (forward + backward = 3 x forward, matrix multiplies only) and the achieved share
of this machine's matmul peak, measured in the same run. Not a test.

    nice python benchmarks/train_speed.py --steps 20 [--data-dir DIR] [--device cpu]
        [--presets paper,seed,fast] [--set model.max_len=16 ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch
from overrides import parse_overrides

from bert4rec.config import preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.model import BERT4RecConfig
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime, pick_device

OUT = Path(__file__).resolve().parent / "out"


def flops_per_sequence(config: BERT4RecConfig, n_targets: float) -> float:
    """Approximate forward-pass FLOPs for one sequence of length max_len (2 per multiply-add).

    Counts the matrix multiplies: the blocks' projections and feed-forward, attention scores
    and mixing, and the transform head plus output projection at `n_targets` positions.
    """
    t, h, v = config.max_len, config.hidden, config.vocab_size
    per_block = 2 * t * (3 * h * h + h * h + 2 * config.ff_mult * h * h) + 2 * 2 * t * t * h
    head = 2 * n_targets * (h * h + h * v)
    return float(config.layers * per_block + head)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Best FLOP/s of an n x n matrix product on `device` (2 n^3 FLOPs each)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    """Peak CUDA allocation, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def run_preset(name: str, corpus, device: torch.device, steps: int, warmup: int,
               changes: dict | None = None) -> dict:
    """Time `steps` optimiser steps (after `warmup`) of preset `name` on `corpus`, with the
    settings `changes`."""
    settings = preset(name).override({"loop.device": str(device), **(changes or {})})
    run = TrainingRun(corpus, settings, Runtime(device), show_progress=False)
    config = run.model.config
    batches = iter(run.loader)
    sequences = tokens = real = flops = 0.0
    for step in range(warmup + steps):
        inputs, labels = next(batches)
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        run.step(inputs, labels)
        if step >= warmup:
            sequences += len(inputs)
            tokens += inputs.numel()
            real += (inputs != 0).sum().item()
            flops += 3 * flops_per_sequence(config, 0) * len(inputs)
            flops += 3 * (flops_per_sequence(config, (labels != 0).sum().item())
                          - flops_per_sequence(config, 0))
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "preset": name, "steps": steps, "batch_size": settings.loop.batch_size,
        "max_len": config.max_len, "hidden": config.hidden,
        "parameters": run.model.num_parameters(),
        "seconds": round(seconds, 3), "sequences_per_s": round(sequences / seconds, 1),
        "tokens_per_s": round(tokens / seconds), "real_items_per_s": round(real / seconds),
        "model_gflop_per_step": round(flops / steps / 1e9, 2),
        "achieved_gflop_per_s": round(flops / seconds / 1e9, 2),
        "peak_memory_mib": round(peak_memory_mib(device), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"),
                        help="folder holding ml-1m/ml-1m.txt (default $BERT4REC_DATA_DIR)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", default="paper,seed,fast")
    parser.add_argument("--set", nargs="*", default=[], help="SECTION.FIELD=VALUE changes")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for train_speed.json")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="side of the square product that measures the matmul peak")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    device = pick_device(args.device)
    corpus = load_corpus(Path(args.data_dir) / "ml-1m" / "ml-1m.txt", PrepareSettings())
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = matmul_peak(device, dtype, args.matmul_size)
    changes = parse_overrides(args.set)
    results = [run_preset(name, corpus, device, args.steps, args.warmup, changes)
               for name in args.presets.split(",")]
    for row in results:
        row["share_of_matmul_peak"] = round(row["achieved_gflop_per_s"] * 1e9 / peak, 4)
        print(json.dumps(row))
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "device": str(device), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "matmul_peak_gflop_per_s": round(peak / 1e9, 2), "matmul_dtype": str(dtype),
        "corpus": corpus.statistics(), "changes": changes, "results": results,
    }
    print(f"matmul peak ({dtype}): {peak / 1e9:.1f} GFLOP/s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
