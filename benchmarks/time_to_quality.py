"""Time to quality on ML-1M: full-ranking NDCG@10 against wall-clock training time.

Trains a preset (default `fast`) on ml-1m.txt (the published benchmark file, no filtering) and
records after every epoch the training seconds so far (the per-epoch test evaluation done for
this plot counts neither there nor against the budget; validation, which training itself
needs, does), the validation and
test full-ranking NDCG@10 (seen items excluded). Writes JSON and a PNG plot with the published
BERT4Rec figure (0.1537, Klenitskiy & Vasilev, RecSys 2023) as a line. Not a test.

    nice python benchmarks/time_to_quality.py --budget 1500 [--preset fast] [--set optim.lr=2e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

import torch
from overrides import parse_overrides

from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc
from bert4rec.config import preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.evaluation.protocols import Protocol, evaluate, model_scorer
from bert4rec.training.loop import fit

OUT = Path(__file__).resolve().parent / "out"
PUBLISHED = 0.1537


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Draw NDCG@10 against training time; without matplotlib (the `bench` extra) say so."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        print(f"no plot: matplotlib is not installed (pip install 'bert4rec[bench]'); {path.name} "
              "not written")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    seconds = [r["train_seconds"] for r in rows]
    ax.plot(seconds, [r["test_NDCG@10"] for r in rows], marker="o", ms=3, label="test")
    ax.plot(seconds, [r["valid_NDCG@10"] for r in rows], ls="--", label="valid")
    ax.axhline(PUBLISHED, color="grey", ls=":", label=f"published BERT4Rec {PUBLISHED}")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("full-ranking NDCG@10 (seen excluded)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--budget", type=float, default=1500.0, help="training seconds")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--set", nargs="*", default=[], help="section.field=value changes")
    parser.add_argument("--name", default="time_to_quality")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (bf16 autocast)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the JSON, plot, run")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    restart_under_jemalloc(TRAINING_CONF)  # as `bert4rec train` does (allocator.py)
    corpus = load_corpus(Path(args.data_dir) / "ml-1m" / "ml-1m.txt",
                         PrepareSettings(min_rating=None, min_user_interactions=0))
    changes = {"loop.time_budget": args.budget, "loop.device": args.device,
               **parse_overrides(args.set)}
    if args.epochs:
        changes["loop.epochs"] = args.epochs
    settings = preset(args.preset).override(changes)
    rows: list[dict] = []

    def record(model, epoch: dict) -> None:
        test = evaluate(model_scorer(model, args.device), corpus, "test", Protocol(ks=(10,)))
        model.train()
        rows.append({"epoch": epoch["epoch"], "train_seconds": round(epoch["seconds"], 1),
                     "loss": epoch["loss"], "valid_NDCG@10": epoch["NDCG@10"],
                     "test_NDCG@10": test.metrics["NDCG@10"], "test_HR@10": test.metrics["HR@10"]})
        print(json.dumps(rows[-1]), flush=True)

    out = args.out
    shutil.rmtree(out / f"{args.name}-run", ignore_errors=True)  # a benchmark starts afresh
    data = {"source": str(Path(args.data_dir) / "ml-1m" / "ml-1m.txt"), "min_rating": None,
            "min_item_interactions": 0, "min_user_interactions": 0}
    result = fit(corpus, settings, out / f"{args.name}-run", data=data, progress=False,
                 callback=record)
    reached = next((r["train_seconds"] for r in rows if r["test_NDCG@10"] >= PUBLISHED), None)
    report = {
        "preset": args.preset, "settings": settings.to_dict(), "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(args.device) if args.device != "cpu" else "cpu",
        "malloc": os.environ.get("BERT4REC_MALLOC", "system"),
        "machine": platform.platform(), "processor": platform.processor(),
        "best_epoch": result.best_epoch, "selected_test": result.test,
        "seconds_to_published_ndcg10": reached, "epochs": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    where = report["device"] if args.device != "cpu" else f"{torch.get_num_threads()} CPU threads"
    plot(rows, out / f"{args.name}.png", f"BERT4Rec ({args.preset}) on ML-1M, {where}")
    print(f"selected (best valid) epoch {result.best_epoch}: test NDCG@10 "
          f"{result.test['NDCG@10']:.4f}; reached {PUBLISHED} after: {reached} s")


if __name__ == "__main__":
    main()
