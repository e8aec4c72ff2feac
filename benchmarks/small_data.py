"""BERT4Rec beside the simple baselines where data is small: one table, several seeds.

Rows: ml-latest-small (ratings >= 4), ML-100k (every rating) and ML-1M (ml-1m.txt, the
published benchmark file). Columns: BERT4Rec with `--preset auto` (each seed a full run, the
epoch chosen on validation), then itemknn, markov and popular (deterministic: one run). Every
figure is test, full ranking, seen items excluded. On ml-latest-small the run's answer to the
founding document's Harry Potter query is scored too: how many of the four later Harry Potter
films, and how many Adventure or Fantasy films, are in its top 10. Not a test.

    BERT4REC_DATA_DIR=DIR nice python benchmarks/small_data.py \\
        [--data ml-latest-small ml-100k ml-1m] [--seeds 0 1 2] [--threads 2]

Prints a table and writes benchmarks/out/small_data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from overrides import parse_overrides

from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc
from bert4rec.cli.use import FOUNDING_QUERY
from bert4rec.config import auto_preset, preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.evaluation.baselines import fit_baseline
from bert4rec.evaluation.protocols import evaluate
from bert4rec.inference.recommender import Recommender
from bert4rec.training.loop import fit

OUT = Path(__file__).resolve().parent / "out"
DATASETS = {
    "ml-latest-small": ("ml-latest-small", PrepareSettings()),
    "ml-100k": ("ml-100k", PrepareSettings(min_rating=None)),
    "ml-1m": ("ml-1m/ml-1m.txt", PrepareSettings(min_rating=None, min_user_interactions=0)),
}
BASELINES = ("itemknn", "markov", "popular")  # strongest first
LATER_HARRY_POTTER = {
    "Harry Potter and the Order of the Phoenix (2007)",
    "Harry Potter and the Half-Blood Prince (2009)",
    "Harry Potter and the Deathly Hallows: Part 1 (2010)",
    "Harry Potter and the Deathly Hallows: Part 2 (2011)",
}


def harry_potter(run_dir: Path) -> dict:
    """The run's top 10 after the first four films: titles, later films, Adventure/Fantasy."""
    result = Recommender.load(run_dir).recommend(FOUNDING_QUERY, k=10)
    return {"titles": [r.title for r in result],
            "later_films": sum(r.title in LATER_HARRY_POTTER for r in result),
            "adventure_or_fantasy": sum(bool({"Adventure", "Fantasy"} & set(r.genres))
                                        for r in result)}


def bert4rec_runs(name: str, corpus, data: dict, seeds: list[int], changes: dict) -> dict:
    """One `auto` run per seed; their test figures, seconds and (ml-latest-small) query."""
    chosen = auto_preset(corpus.n_interactions, corpus.n_users, corpus.n_items)
    runs = []
    for seed in seeds:
        settings = preset(chosen).override({**changes, "loop.seed": seed})
        run_dir = OUT / "small_data" / f"{name}-seed{seed}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a benchmark starts afresh
        start = time.perf_counter()
        result = fit(corpus, settings, run_dir, data=data, progress=False)
        run = {"seed": seed, "seconds": round(time.perf_counter() - start, 1),
               "best_epoch": result.best_epoch, "valid_NDCG@10": result.valid["NDCG@10"],
               "NDCG@10": result.test["NDCG@10"], "HR@10": result.test["HR@10"]}
        if name == "ml-latest-small":
            run["harry_potter"] = harry_potter(run_dir)
        runs.append(run)
        print(json.dumps(run), flush=True)
    return {"preset": chosen, "runs": runs, **{
        f"{key}_{stat}": round(fn([r[key] for r in runs]), 4)
        for key in ("NDCG@10", "HR@10", "seconds")
        for stat, fn in (("mean", statistics.mean), ("sd", _sd))}}


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def baseline_rows(corpus) -> dict:
    """Each baseline fitted on the training part and scored on test, with its seconds."""
    rows = {}
    for name in BASELINES:
        start = time.perf_counter()
        report = evaluate(fit_baseline(name, corpus), corpus, "test")
        rows[name] = {"NDCG@10": report.metrics["NDCG@10"], "HR@10": report.metrics["HR@10"],
                      "seconds": round(time.perf_counter() - start, 1)}
    return rows


def table(results: dict) -> str:
    """Markdown: one row per data set, NDCG@10 / HR@10 / seconds per column."""
    head = "| data | BERT4Rec (auto) | " + " | ".join(BASELINES) + " |"
    lines = [head, "| --- " * (2 + len(BASELINES)) + "|"]
    for name, entry in results.items():
        b = entry["bert4rec"]
        cells = [f"{name} ({entry['interactions']:,})",
                 f"{b['NDCG@10_mean']:.4f} ± {b['NDCG@10_sd']:.4f} / {b['HR@10_mean']:.4f} / "
                 f"{b['seconds_mean']:.0f} s ({b['preset']}, {len(b['runs'])} seeds)"]
        cells += [f"{r['NDCG@10']:.4f} / {r['HR@10']:.4f} / {r['seconds']:.0f} s"
                  for r in entry["baselines"].values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--data", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="section.field=value changes")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    restart_under_jemalloc(TRAINING_CONF)  # as `bert4rec train` does (allocator.py)
    torch.set_num_threads(args.threads)
    changes = {"loop.device": "cpu", **parse_overrides(args.set)}
    results = {}
    for name in args.data:
        path, settings = DATASETS[name]
        corpus = load_corpus(Path(args.data_dir) / path, settings)
        data = {"source": str(Path(args.data_dir) / path), **asdict(settings)}  # evaluate rebuilds
        print(f"{name}: {corpus.n_users:,} users, {corpus.n_items:,} items, "
              f"{corpus.n_interactions:,} interactions", flush=True)
        results[name] = {"interactions": corpus.n_interactions,
                         "baselines": baseline_rows(corpus),
                         "bert4rec": bert4rec_runs(name, corpus, data, args.seeds, changes)}
    print("\ntest, full ranking, seen items excluded: NDCG@10 / HR@10 / seconds\n")
    print(table(results))
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"threads": args.threads, "machine": platform.platform(),
              "processor": platform.processor(), "torch": torch.__version__,
              "malloc": os.environ.get("BERT4REC_MALLOC", "system"), "set": args.set,
              "results": results}
    (OUT / "small_data.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {OUT / 'small_data.json'}")


if __name__ == "__main__":
    main()
