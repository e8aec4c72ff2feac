"""Training step time with the full softmax fused with the output layer, against the unfused
`F.cross_entropy` of the logits: side by side in one process, on the same batches.

    nice python benchmarks/full_softmax.py [--data-dir DIR] [--steps 20] [--rounds 2]
        [--presets causal,large] [--threads N]

ML-1M's `ml-1m.txt`. For each preset, one training run takes the same `--steps` batches with
each loss in turn, `--rounds` times (after one warm-up step each); the best round counts. The
two losses give the same values (tests/training/test_full_softmax.py), so the run's weights
move alike under both. Writes JSON to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from step_timing import best_step_seconds

import bert4rec.training.loop as training_loop
from bert4rec.config import preset
from bert4rec.data.batches import IGNORE
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.training.full_softmax import exclude_from_logits, fused_cross_entropy
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime
from bert4rec.training.threads import governed

OUT = Path(__file__).resolve().parent / "out"


def unfused_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          targets: torch.Tensor, exclude: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """What training computed before the fused loss: the [N, V] logits, then cross-entropy."""
    logits = F.linear(hidden, weight, bias)
    if exclude is not None:
        logits = exclude_from_logits(logits, targets, exclude)
    return F.cross_entropy(logits, targets, ignore_index=IGNORE)


LOSSES = {"unfused": unfused_cross_entropy, "fused": fused_cross_entropy}


def time_preset(corpus, name: str, steps: int, rounds: int) -> dict[str, float]:
    """Best seconds per step of each loss on `steps` batches of preset `name`."""
    run = TrainingRun(corpus, preset(name).override({"loop.device": "cpu"}),
                      Runtime(torch.device("cpu")), show_progress=False)
    batches = [batch for _, batch in zip(range(steps + 1), run.loader, strict=False)]

    def use(loss: Callable) -> Callable[[], None]:
        return lambda: setattr(training_loop, "fused_cross_entropy", loss)

    try:
        return best_step_seconds(run, batches, {k: use(loss) for k, loss in LOSSES.items()},
                                 rounds)
    finally:
        training_loop.fused_cross_entropy = fused_cross_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--presets", default="causal,large")
    parser.add_argument("--threads", type=int, help="torch threads (default: fitted)")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    corpus = load_corpus(Path(args.data_dir) / "ml-1m" / "ml-1m.txt",
                         PrepareSettings(min_rating=None, min_user_interactions=0))
    rows, load = [], [os.getloadavg()]
    with governed(args.threads):
        for name in args.presets.split(","):
            best = time_preset(corpus, name, args.steps, args.rounds)
            row = {"preset": name, **{f"{kind}_ms": round(s * 1000, 1) for kind, s in best.items()},
                   "speed_up": round(best["unfused"] / best["fused"], 2)}
            rows.append(row)
            print(f"{name:>8}  unfused {row['unfused_ms']:7.1f} ms/step  fused "
                  f"{row['fused_ms']:7.1f} ms/step  {row['speed_up']:.2f}x", flush=True)
        threads = torch.get_num_threads()
    load.append(os.getloadavg())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "full_softmax.json").write_text(json.dumps(
        {"steps": args.steps, "rounds": args.rounds, "threads": threads,
         "load_average": load, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
