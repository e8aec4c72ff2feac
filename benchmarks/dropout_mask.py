"""Training step time with the model's CPU dropout (a uniform draw kept as bools) against
`nn.Dropout` (a float Bernoulli mask): side by side in one process, on the same batches.

    nice python benchmarks/dropout_mask.py [--data-dir DIR] [--steps 10] [--rounds 2]
        [--presets paper,causal,large] [--attention-dropout-on keys] [--threads N]

ML-1M's `ml-1m.txt`. For each preset, one training run takes the same `--steps` batches with
each kind of dropout module in turn, `--rounds` times (after one warm-up step each); the best
round counts. Both drop each element with the same chance and scale the rest alike
(tests/test_model.py), so only the random draws differ. Writes JSON to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from pathlib import Path

import torch
from step_timing import best_step_seconds
from torch import nn

from bert4rec.config import preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.model import Dropout
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime
from bert4rec.training.threads import governed

OUT = Path(__file__).resolve().parent / "out"
KINDS = {"nn.Dropout": nn.Dropout, "bool mask": Dropout}


def use_dropout(model: nn.Module, kind: type[nn.Module]) -> None:
    """Replace every dropout module of `model` by one of `kind` with the same chance."""
    for module in model.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, tuple(KINDS.values())):
                setattr(module, name, kind(child.p))


def time_preset(corpus, name: str, changes: dict, steps: int, rounds: int) -> dict[str, float]:
    """Best seconds per step of each dropout kind on `steps` batches of preset `name`."""
    run = TrainingRun(corpus, preset(name).override({"loop.device": "cpu", **changes}),
                      Runtime(torch.device("cpu")), show_progress=False)
    batches = [batch for _, batch in zip(range(steps + 1), run.loader, strict=False)]
    variants = {kind: partial(use_dropout, run.model, module) for kind, module in KINDS.items()}
    return best_step_seconds(run, batches, variants, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--presets", default="paper,causal,large")
    parser.add_argument("--attention-dropout-on", choices=("weights", "keys"), default="keys")
    parser.add_argument("--threads", type=int, help="torch threads (default: fitted)")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    corpus = load_corpus(Path(args.data_dir) / "ml-1m" / "ml-1m.txt",
                         PrepareSettings(min_rating=None, min_user_interactions=0))
    changes = {"model.attention_dropout_on": args.attention_dropout_on}
    rows, load = [], [os.getloadavg()]
    with governed(args.threads):
        for name in args.presets.split(","):
            best = time_preset(corpus, name, changes, args.steps, args.rounds)
            old, new = best["nn.Dropout"], best["bool mask"]
            row = {"preset": name, "nn_dropout_ms": round(old * 1000, 1),
                   "bool_mask_ms": round(new * 1000, 1), "speed_up": round(old / new, 3)}
            rows.append(row)
            print(f"{name:>8}  nn.Dropout {row['nn_dropout_ms']:7.1f} ms/step  bool mask "
                  f"{row['bool_mask_ms']:7.1f} ms/step  {row['speed_up']:.3f}x", flush=True)
        threads = torch.get_num_threads()
    load.append(os.getloadavg())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dropout_mask.json").write_text(json.dumps(
        {"steps": args.steps, "rounds": args.rounds, "threads": threads,
         "attention_dropout_on": args.attention_dropout_on, "load_average": load,
         "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
