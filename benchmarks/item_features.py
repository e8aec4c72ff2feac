"""BERT4Rec with and without item features, and on items no one has touched (issue 25).

For each data set, with the item table that brings its features:
- `warm`: test, full ranking, seen items excluded: the recipe `--preset auto` picks without
  features and with `model.item_features` (default `auto`), several seeds, with itemknn and
  markov beside them; seconds are training plus validation, each run in turn in one process.
- `cold`: a random 10% of the items held out of training (`evaluation/cold.py`, hold-out seed
  0); the users whose test item is held out, the target ranked among the held-out items; the
  model with features (one run per seed) against popular-in-category and random items.
  `--cold-split valid` takes the protocol's validation form instead: the held-out item kept is
  a user's validation target, for choosing settings without the test split.
- `cost`: milliseconds per training step of the same recipe with ids only, with features and
  with features and their matches with the history (`model.feature_match`), side by side in
  one process on the same batches (`--steps`, the best of `--rounds`), and the ratios.

Data sets: Amazon Beauty (S3-Rec's Beauty.txt, 22,363 users, with Beauty_item2attributes.json:
categories and brand), ml-latest-small (ratings >= 4, genres) and ML-1M (ml-1m.txt, the
published benchmark file, with movies.dat's genres through ml-1m.txt.itemmap.tsv).

    BERT4REC_DATA_DIR=DIR nice python benchmarks/item_features.py \\
        [--data beauty ml-latest-small ml-1m] [--parts warm cold cost] [--seeds 0 1 2] \\
        [--features auto] [--cold-split test] [--threads 2] [--steps 40] [--rounds 2] \\
        [--set loop.epochs=20 ...]

Prints one JSON line per run and writes benchmarks/out/item_features.json.
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
from functools import partial
from pathlib import Path

import polars as pl
import torch
from overrides import parse_overrides
from step_timing import best_run_seconds

from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc
from bert4rec.config import auto_preset, preset
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.data.features import ItemFeatures, read_item_table
from bert4rec.evaluation.baselines import fit_baseline
from bert4rec.evaluation.cold import CategoryPopular, RandomItems, hold_out_items
from bert4rec.evaluation.protocols import evaluate, model_scorer
from bert4rec.training.loop import TrainingRun, fit
from bert4rec.training.runtime import Runtime

OUT = Path(__file__).resolve().parent / "out"
DATASETS = ("beauty", "ml-latest-small", "ml-1m")
BASELINES = ("itemknn", "markov")


def ml1m_items(folder: Path) -> pl.DataFrame:
    """ml-1m.txt's items (its own ids) with movies.dat's titles and genres."""
    mapping = pl.read_csv(folder / "ml-1m.txt.itemmap.tsv", separator="\t")
    rows = [line.split("::") for line in
            (folder / "movies.dat").read_text(encoding="latin-1").splitlines() if line]
    movies = pl.DataFrame({"ml1m_movie": [int(r[0]) for r in rows], "title": [r[1] for r in rows],
                           "genres": [r[2].split("|") for r in rows]})
    return mapping.join(movies, on="ml1m_movie").select(
        pl.col("sasrec_item").alias("item"), "title", "genres")


def load(name: str, data_dir: Path) -> tuple[SequenceCorpus, dict]:
    """The corpus of a data set with its item table, and how config.json records it."""
    if name == "beauty":
        folder = data_dir / "amazon-beauty"
        path, settings = folder / "Beauty.txt", PrepareSettings()
        items = read_item_table(folder / "Beauty_item2attributes.json")
    elif name == "ml-latest-small":
        path, settings, items = data_dir / "ml-latest-small", PrepareSettings(), None
    else:
        path = data_dir / "ml-1m" / "ml-1m.txt"
        settings = PrepareSettings(min_rating=None, min_user_interactions=0)
        items = ml1m_items(data_dir / "ml-1m")
    corpus = load_corpus(path, settings)
    if items is not None:
        corpus = corpus.with_items(items, name)
    return corpus, {"source": str(path), **asdict(settings)}


def train(corpus: SequenceCorpus, data: dict, changes: dict, out: Path) -> tuple[object, float]:
    """One `auto` run into `out` (started afresh); the result and its seconds."""
    chosen = auto_preset(corpus.n_interactions, corpus.n_users, corpus.n_items)
    settings = preset(chosen).override(changes)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = fit(corpus, settings, out, data=data, progress=False)
    return result, round(time.perf_counter() - start, 1)


def warm(name: str, corpus: SequenceCorpus, data: dict, seeds: list[int], changes: dict,
         features: str) -> dict:
    """Test figures of the recipe without and with features, per seed, and the baselines."""
    rows = {}
    for baseline in BASELINES:
        report = evaluate(fit_baseline(baseline, corpus), corpus, "test")
        rows[baseline] = {k: report.metrics[k] for k in ("NDCG@10", "HR@10")}
    for label, setting in (("ids", ""), ("features", features)):
        runs = []
        for seed in seeds:
            run_changes = {**changes, "loop.seed": seed, "model.item_features": setting}
            result, seconds = train(corpus, data, run_changes,
                                    OUT / "item_features" / f"{name}-{label}-seed{seed}")
            run = {"data": name, "model": label, "seed": seed, "seconds": seconds,
                   "best_epoch": result.best_epoch, "valid_NDCG@10": result.valid["NDCG@10"],
                   "NDCG@10": result.test["NDCG@10"], "HR@10": result.test["HR@10"]}
            print(json.dumps(run), flush=True)
            runs.append(run)
        rows[label] = summary(runs)
    return rows


def cold(name: str, corpus: SequenceCorpus, data: dict, seeds: list[int], changes: dict,
         features: str, split: str = "test") -> dict:
    """The cold-item protocol on `split`: the model with features per seed, and the two
    baselines."""
    held = hold_out_items(corpus, seed=0, split=split)
    chosen = ItemFeatures.from_items(corpus.item_table, features, corpus.vocab_size)
    rows = {"held_out": len(held.items)}
    for label, scorer in (("popular-in-category", CategoryPopular.fit(held.corpus, chosen)),
                          ("random", RandomItems(corpus.vocab_size))):
        report = evaluate(scorer, held.corpus, split, held.protocol())
        rows[label] = {k: report.metrics[k] for k in ("NDCG@10", "HR@10")}
        rows["label"] = report.label()
    runs = []
    for seed in seeds:
        run_changes = {**changes, "loop.seed": seed, "model.item_features": features}
        form = "" if split == "test" else f"-{split}"
        result, seconds = train(held.corpus, data, run_changes,
                                OUT / "item_features" / f"{name}-cold{form}-seed{seed}")
        report = evaluate(model_scorer(result.model, "cpu"), held.corpus, split,
                          held.protocol())
        run = {"data": name, "model": f"features, cold protocol, {split}", "seed": seed,
               "seconds": seconds, "NDCG@10": report.metrics["NDCG@10"],
               "HR@10": report.metrics["HR@10"], "users": report.users,
               "warm_valid_NDCG@10": result.valid["NDCG@10"],
               "warm_test_NDCG@10": result.test["NDCG@10"]}
        print(json.dumps(run), flush=True)
        runs.append(run)
    rows["features"] = summary(runs)
    return rows


def cost(corpus: SequenceCorpus, changes: dict, features: str, steps: int, rounds: int
         ) -> dict:
    """Milliseconds per training step of `auto`'s recipe with ids only, with `features` and
    with their matches as well, on the same batches, and the ratios to ids only."""
    chosen = auto_preset(corpus.n_interactions, corpus.n_users, corpus.n_items)
    variants = {"ids": {"model.item_features": ""},
                "features": {"model.item_features": features, "model.feature_match": False},
                "features and matches": {"model.item_features": features,
                                         "model.feature_match": True}}
    runs = {}
    for label, setting in variants.items():
        torch.manual_seed(0)
        runs[label] = TrainingRun(corpus, preset(chosen).override({**changes, **setting}),
                                  Runtime(torch.device("cpu")), show_progress=False)
    batches = [batch for batch, _ in zip(runs["ids"].loader, range(steps + 1), strict=False)]
    seconds = best_run_seconds({label: (lambda run=run: run) for label, run in runs.items()},
                               batches, rounds)
    row = {"preset": chosen, "steps": steps, "rounds": rounds,
           **{f"{label} ms": round(1000 * s, 2) for label, s in seconds.items()},
           **{f"{label} / ids": round(s / seconds["ids"], 3) for label, s in seconds.items()
              if label != "ids"}}
    print(json.dumps(row), flush=True)
    return row


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summary(runs: list[dict]) -> dict:
    """The runs and the mean and spread of their figures."""
    return {"runs": runs, **{f"{key}_{stat}": round(fn([r[key] for r in runs]), 4)
                             for key in ("NDCG@10", "HR@10", "seconds")
                             for stat, fn in (("mean", statistics.mean), ("sd", spread))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--data", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--parts", nargs="+", choices=("warm", "cold", "cost"),
                        default=["warm", "cold"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--features", default="auto", help="model.item_features of the runs")
    parser.add_argument("--cold-split", choices=("test", "valid"), default="test",
                        help="the cold part's split: its test form or its validation form")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="timed steps of the cost part")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the cost part")
    parser.add_argument("--set", nargs="*", default=[], help="section.field=value changes")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    restart_under_jemalloc(TRAINING_CONF)  # as `bert4rec train` does (allocator.py)
    torch.set_num_threads(args.threads)
    changes = {"loop.device": "cpu", **parse_overrides(args.set)}
    results = {}
    for name in args.data:
        corpus, data = load(name, Path(args.data_dir))
        print(f"{name}: {corpus.n_users:,} users, {corpus.n_items:,} items, "
              f"{corpus.n_interactions:,} interactions", flush=True)
        parts = {"warm": warm, "cold": partial(cold, split=args.cold_split)}
        results[name] = {part: (cost(corpus, changes, args.features, args.steps, args.rounds)
                                if part == "cost" else
                                parts[part](name, corpus, data, args.seeds, changes,
                                            args.features)) for part in args.parts}
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"threads": args.threads, "machine": platform.platform(), "torch": torch.__version__,
              "seeds": args.seeds, "features": args.features, "cold_split": args.cold_split,
              "set": args.set,
              "results": results}
    (OUT / "item_features.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'item_features.json'}")


if __name__ == "__main__":
    main()
