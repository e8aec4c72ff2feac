"""Scoring every user: users per second and top-10 agreement with the exact model, per way of
scoring, side by side in one process.

    nice python benchmarks/scoring.py RUN_DIR [--users 6040] [--repeats 3] [--threads N]
        [--variants model,exact,int8,bf16,window80,window64,window50,bf16+window64]
        [--device cpu|cuda] [--out DIR]

Each variant scores the same users with `Recommender.top_k` (batches of 512, viewed items
left out, as `recommend --all-users` does); the passes over the variants alternate, best
of `--repeats` kept. Variants: `model` (the model's own forward: the reference), `exact`
(what `Recommender` runs: packed float32 linear layers, inference/scoring.py), `int8`
(PyTorch's dynamic quantisation of every linear layer, per-channel weights; measured, not
offered), `bf16` (autocast), `windowN` (`exact` reading the N most recent items:
`recommend --window N`) and `bf16+windowN`. On CUDA: `model`, `bf16` and their windows.
Agreement is the mean share of each user's top 10 that the reference's top 10 holds too.
Also prints the FLOP arithmetic of one user's scoring at the model's shape. Writes JSON to
OUT/scoring.json (default benchmarks/out/).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bert4rec import rundir
from bert4rec.inference.recommender import Recommender
from bert4rec.training.threads import governed

OUT = Path(__file__).resolve().parent / "out"


def multiply_adds(config, items: int, length: int) -> dict[str, int]:
    """Multiply-adds to score one history of `length` positions ([MASK] included) at the
    last position: every block but the last over all positions, the last block's keys and
    values over all and the rest at one, the head and output layer at one."""
    h, t, ff = config.hidden, length, config.ff_mult
    full_block = t * (3 * h * h + h * h + 2 * ff * h * h) + 2 * t * t * h
    last_block = t * 2 * h * h + (h * h + h * h + 2 * ff * h * h) + 2 * t * h
    return {"blocks_before_last": (config.layers - 1) * full_block, "last_block": last_block,
            "head_and_output": h * h + h * (items + 2),
            "first_block_keys_values": 2 * t * h * h}


class Int8Linear(nn.Module):
    """`linear` in int8: the weight quantised per output channel (symmetric), the input per
    call (PyTorch's dynamic quantisation, fbgemm; 8-bit inputs where the CPU has VNNI, else
    7), float32 out. Keeps `weight` and `bias`, which the model's last block slices."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1).clamp_min(1e-12) / 127).double()
        with warnings.catch_warnings():  # the quantised-tensor API warns of its deprecation
            warnings.simplefilter("ignore")
            quantised = torch.quantize_per_channel(
                weight, scale, torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8)
        self.packed = torch.ops.quantized.linear_prepack(quantised, linear.bias.detach())
        self.reduce_range = not torch.cpu._is_vnni_supported()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        out = torch.ops.quantized.linear_dynamic(rows, self.packed, self.reduce_range)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def int8_model(model: nn.Module) -> nn.Module:
    """A copy of `model` (tensors shared) with every `nn.Linear` in int8."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    copied = copy.deepcopy(model, memo=shared)
    for module in list(copied.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    return copied.eval()


def variant_scorer(rec: Recommender, name: str, device: torch.device) -> Recommender:
    """A Recommender over `rec`'s model that scores as `name` says: `model`, `exact`,
    `int8`, `bf16`, each optionally `+windowN`, or `windowN` alone (exact)."""
    base, _, rest = name.partition("+")
    if base.startswith("window"):
        base, rest = "exact", base
    window = int(rest.removeprefix("window")) if rest else None
    scorer = Recommender(rec.model, rec._shown, window=window)
    if base in ("model", "bf16"):
        scorer._scorer = rec.model
    if base == "int8":
        scorer._scorer = int8_model(rec.model)
    if base == "bf16":
        def autocast(x, forward=rec.model):
            with torch.autocast(device.type, torch.bfloat16):
                return forward(x)
        scorer._scorer = autocast
    return scorer


def top10_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean share of each row's items in `other` that are in the same row of `reference`."""
    k = reference.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(reference, other,
                                                                    strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--users", type=int, help="score only the first N users (all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: fitted)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants",
                        default="model,exact,int8,bf16,window80,window64,window50,bf16+window64")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    device = torch.device(args.device)
    variants = args.variants.split(",")
    if device.type != "cpu":
        variants = [v for v in variants if not v.startswith(("exact", "int8"))]
    with governed(args.threads if device.type == "cpu" else None):
        load_before = os.getloadavg()
        rec = Recommender.load(args.run_dir, device=device)
        users = rundir.read_users(args.run_dir, rec.n_items)
        flat, offsets = users.subset(users.positions(users.ids)[0])
        if args.users:
            offsets = offsets[: args.users + 1]
        n = len(offsets) - 1
        scorers = {name: variant_scorer(rec, name, device) for name in variants}
        best = dict.fromkeys(variants, float("inf"))
        tops: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, scorer in scorers.items():
                sync(device)
                start = time.perf_counter()
                tops[name] = scorer.top_k(flat, offsets, 10, batch_size=args.batch_size)[0]
                sync(device)
                best[name] = min(best[name], time.perf_counter() - start)
        reference = tops.get("model", tops[variants[0]])
        config = rec.model.config
        length = int(min(config.max_len, np.diff(offsets).max() + 1))
        adds = multiply_adds(config, rec.n_items, length)
        rows = [{"variant": name, "users_per_s": round(n / best[name], 1),
                 "speedup": round(best[variants[0]] / best[name], 3),
                 "top10_agreement": round(top10_agreement(reference, tops[name]), 4)}
                for name in variants]
        report = {
            "run_dir": str(args.run_dir), "users": n, "items": rec.n_items,
            "max_len": config.max_len, "hidden": config.hidden, "layers": config.layers,
            "device": str(device), "torch_threads": torch.get_num_threads(),
            "repeats": args.repeats, "batch_size": args.batch_size,
            "multiply_adds_per_user": {**adds, "total": sum(v for k, v in adds.items()
                                                            if k != "first_block_keys_values")},
            "rows": rows, "load_average": [load_before, os.getloadavg()],
        }
    for row in rows:
        print(f"{row['variant']:>14}  {row['users_per_s']:>9,.1f} users/s  "
              f"{row['speedup']:.2f}x  agreement {row['top10_agreement']:.4f}")
    total = report["multiply_adds_per_user"]["total"]
    print(f"{total / 1e6:.2f} M multiply-adds per user at length {length}: 10,000 users/s "
          f"needs {2 * total * 1e4 / 1e9:.0f} GFLOP/s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scoring.json").write_text(json.dumps(report, indent=2) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

if __name__ == "__main__":
    main()
