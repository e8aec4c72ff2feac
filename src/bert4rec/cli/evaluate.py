"""`bert4rec evaluate RUN_DIR` and `bert4rec baseline NAME SOURCE`: one labelled evaluation.

Both call `bert4rec.evaluation.protocols.evaluate` with the same protocol options, so a model and a
baseline measured on the same corpus, split and protocol are directly comparable. With `--test
FILE` both score a held-out file of your own instead (`Model.evaluate(test=...)`,
`Baseline.evaluate(test=...)`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import polars as pl

from bert4rec import rundir
from bert4rec.cli.data import add_source_options, corpus_from_args
from bert4rec.config import EVAL_BATCH_SIZE
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.data.interactions import TABLE_SUFFIXES, LogColumns, read_table
from bert4rec.errors import DataError, ModelDirError
from bert4rec.evaluation import baselines
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.protocols import EVAL_DEVICE, EvalReport, Protocol, evaluate, model_scorer
from bert4rec.training.runtime import pick_device


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0]


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--ks wants comma-separated integers, got {text!r}"
        ) from err
    if any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"--ks values must be >= 1, got {text!r}")
    return ks


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    """The protocol options shared by `evaluate` and `baseline`."""
    parser.add_argument(
        "--split",
        choices=("valid", "test"),
        default="test",
        help="which held-out item to rank (default test; select models on valid)",
    )
    parser.add_argument(
        "--protocol",
        choices=("full", "sampled"),
        default="full",
        help="full: rank against every item (default); sampled: against "
        "--n-negatives sampled items (the BERT4Rec paper's protocol)",
    )
    parser.add_argument(
        "--negatives",
        choices=("popular", "uniform"),
        default="popular",
        help="how sampled negatives are drawn (default popular: by training counts)",
    )
    parser.add_argument(
        "--n-negatives",
        type=_positive,
        default=100,
        help="negatives per user for --protocol sampled (default 100)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the negative sampling")
    parser.add_argument(
        "--keep-seen",
        action="store_true",
        help="keep the items of the user's history as candidates (filter_viewed false; by "
        "default they are filtered)",
    )
    parser.add_argument(
        "--ks",
        type=_ks,
        default=DEFAULT_KS,
        metavar="K,K,...",
        help="cut-offs for NDCG@k and HR@k (default 1,5,10,20)",
    )
    parser.add_argument("--batch-size", type=_positive, default=EVAL_BATCH_SIZE,
                        help=f"users per scoring batch (default {EVAL_BATCH_SIZE})")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (protocol, split, filter_viewed, users, metrics)",
    )


def protocol_from_args(args: argparse.Namespace) -> Protocol:
    """The `Protocol` the options of `args` name."""
    return Protocol(args.protocol, args.negatives, args.n_negatives,
                    filter_viewed=not args.keep_seen, ks=args.ks, seed=args.seed)


def run_evaluation(scorer, corpus, args: argparse.Namespace) -> EvalReport:
    """Call evaluate() with the protocol options of `args`."""
    return evaluate(scorer, corpus, args.split, protocol_from_args(args),
                    batch_size=args.batch_size, progress=not args.json)


def print_report(report: EvalReport, name: str, as_json: bool) -> None:
    """One JSON object, or a table headed by the protocol label."""
    if as_json:
        print(json.dumps({"scorer": name, **report.to_dict()}))
        return
    print(f"{name}: {report.label()}")
    ks = sorted({int(key.split("@")[1]) for key in report.metrics if "@" in key})
    print(f"{'k':>4}  {'NDCG@k':>8}  {'HR@k':>8}")
    for k in ks:
        print(f"{k:>4}  {report.metrics[f'NDCG@{k}']:>8.4f}  {report.metrics[f'HR@{k}']:>8.4f}")
    print(f" MRR  {report.metrics['MRR']:>8.4f}")


def run_baseline(args: argparse.Namespace) -> int:
    if args.test:
        return run_baseline_test(args)
    corpus = corpus_from_args(args)
    scorer = baselines.fit_baseline(args.name, corpus)
    print_report(run_evaluation(scorer, corpus, args), args.name, args.json)
    return 0


def corpus_for_run(
    run_dir: Path, config: dict[str, Any], args: argparse.Namespace
) -> SequenceCorpus:
    """Rebuild the run's corpus from config.json's "data" section: `source`, the prepare
    settings (flat) and optional "columns"; --source overrides the source."""
    data = config.get("data") or {}
    source = args.source or data.get("source")
    if not source:
        raise ModelDirError(
            f"{run_dir / rundir.CONFIG}: the 'data' section names no 'source'; "
            "pass --source SOURCE (the data the model was trained on)"
        )
    names = {f.name for f in fields(PrepareSettings)}
    settings = PrepareSettings(**{key: data[key] for key in names if key in data})
    columns = LogColumns(**data["columns"]) if data.get("columns") else LogColumns()
    return load_corpus(source, settings, data_dir=args.data_dir, cache_dir=args.cache_dir,
                       columns=columns, use_cache=not args.no_cache)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.test:
        return run_evaluate_test(args)
    run_dir = Path(args.run_dir)
    device = pick_device(args.device)
    model, config = rundir.load_model(run_dir, device)
    corpus = corpus_for_run(run_dir, config, args)
    if corpus.vocab_size != model.config.vocab_size:
        raise ModelDirError(
            f"{run_dir}: the model has vocab_size {model.config.vocab_size} but the rebuilt "
            f"corpus has {corpus.vocab_size}; pass the --source the model was trained on"
        )
    report = run_evaluation(model_scorer(model, device), corpus, args)
    print_report(report, run_dir.name, args.json)
    return 0


def add_test_options(parser: argparse.ArgumentParser, columns: bool) -> None:
    """--test FILE (and --history FILE): score a held-out file of your own."""
    parser.add_argument("--test", metavar="FILE", type=Path,
                        help="score this held-out file (CSV, TSV or Parquet, one row per event, "
                        "such as the later part of a split by time) instead of the built-in "
                        "split: each of its users gets the top max(--ks) items after their "
                        "history; --split, --protocol and the sampling options do not apply")
    parser.add_argument("--history", metavar="FILE", type=Path,
                        help="with --test: each user's history from this file (default: what "
                        "the model or baseline was fitted on)")
    if columns:  # `baseline` has --user-col and --item-col from its source options already
        parser.add_argument("--user-col", help="with --test: the user column (default: the "
                            "training log's)")
        parser.add_argument("--item-col", help="with --test: the item column (default: the "
                            "training log's)")
        parser.add_argument("--time-col", help="with --history: the time column (default: "
                            "the training log's)")


def read_frame(path: Path) -> pl.DataFrame:
    """A CSV, TSV or Parquet table, as the log readers read one."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a CSV, TSV or Parquet table)")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unknown table format {suffix!r}; expected one of "
                        f"{', '.join(sorted(TABLE_SUFFIXES))}")
    return read_table(path, TABLE_SUFFIXES[suffix])


def run_evaluate_test(args: argparse.Namespace) -> int:
    """`evaluate RUN --test FILE`: the run's recommendations for FILE's users, measured."""
    from bert4rec.api import Model

    history = read_frame(args.history) if args.history else None
    report = Model.load(args.run_dir).evaluate(
        test=read_frame(args.test), history=history, ks=args.ks, user=args.user_col,
        item=args.item_col, timestamp=args.time_col)
    print_frame_report(report, Path(args.run_dir).name, args.test, args.json)
    return 0


def run_baseline_test(args: argparse.Namespace) -> int:
    """`baseline NAME SOURCE --test FILE`: the baseline fitted on SOURCE, scored on FILE."""
    from bert4rec.api import Dataset
    from bert4rec.inference.baseline import Baseline

    data = Dataset(corpus_from_args(args), {"columns": {"user": args.user_col,
                                                        "item": args.item_col,
                                                        "timestamp": args.time_col}})
    history = read_frame(args.history) if args.history else None
    report = Baseline(args.name).fit(data).evaluate(test=read_frame(args.test), history=history,
                                                    ks=args.ks)
    print_frame_report(report, args.name, args.test, args.json)
    return 0


def print_frame_report(report: dict[str, Any], name: str, test: Path, as_json: bool) -> None:
    """One JSON object, or a table headed by what was scored."""
    if as_json:
        print(json.dumps({"scorer": name, "test": str(test), **report}))
        return
    print(f"{name}: {test.name}, {report['users']:,} users ({report['users_without_history']:,} "
          f"without a history left out), {report['events']:,} held-out events "
          f"({report['unknown_items']:,} of items the model does not know), full ranking over "
          f"{report['candidates']:,} items, viewed items filtered")
    ks = sorted({int(key.split("@")[1]) for key in report if key.startswith("NDCG@")})
    names = ["NDCG", "HR", "Recall", "Coverage", "Popularity"]
    names = [n for n in names if f"{n}@{ks[0]}" in report]
    print(f"{'k':>4}  " + "  ".join(f"{n + '@k':>12}" for n in names))
    for k in ks:
        print(f"{k:>4}  " + "  ".join(f"{report[f'{n}@{k}']:>12.4f}" for n in names))
    mrr = next(key for key in report if key.startswith("MRR@"))
    print(f"{mrr}  {report[mrr]:.4f}")


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model (a run directory) with a labelled protocol",
        description=_first_line(evaluate.__doc__),
    )
    run.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `bert4rec train`")
    run.add_argument("--source", help="the data to rebuild (default: config.json's data.source)")
    run.add_argument("--data-dir", help="where MovieLens releases are looked for")
    run.add_argument("--cache-dir", help="where prepared corpora are cached")
    run.add_argument("--no-cache", action="store_true", help="prepare afresh, do not cache")
    run.add_argument("--device", default=EVAL_DEVICE,
                     help=f"auto, cpu, cuda, cuda:N or mps (default {EVAL_DEVICE}: CUDA, then "
                     "MPS, then the CPU)")
    add_eval_options(run)
    add_test_options(run, columns=True)
    run.set_defaults(handler=run_evaluate)
    baseline = subparsers.add_parser(
        "baseline",
        help="evaluate a baseline (popular, markov, itemknn) on SOURCE",
        description=f"{_first_line(baselines.__doc__)} {_first_line(evaluate.__doc__)}",
    )
    baseline.add_argument(
        "name",
        choices=tuple(baselines.BASELINES),
        metavar="NAME",
        help=f"one of {', '.join(baselines.BASELINES)}",
    )
    add_source_options(baseline)
    add_eval_options(baseline)
    add_test_options(baseline, columns=False)
    baseline.set_defaults(handler=run_baseline)
