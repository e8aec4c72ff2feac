"""`bert4rec train SOURCE --preset P --out RUN_DIR`: prepare SOURCE and fit BERT4Rec.

Every training setting has a flag named after it (`--hidden`, `--mask-prob`, ...) that
overrides the preset; the help text comes from `bert4rec.config`. `--final` trains a final
model on every interaction once validation has chosen the epoch count, `--holdout none` holds
nothing out, `--init-from RUN` starts from a trained run's weights (a warm start), and
`--split time:DATE` trains on the events before DATE and scores the events from DATE on.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import polars as pl

from bert4rec import rundir
from bert4rec.cli.data import (
    add_source_options,
    columns_from_args,
    corpus_from_args,
    settings_from_args,
)
from bert4rec.config import (
    AUTO,
    AUTO_CHOICES,
    FIELD_TYPES,
    PRESETS,
    SECTIONS,
    Settings,
    allowed_values,
    auto_choice,
    preset,
)
from bert4rec.data import columns as C
from bert4rec.data.corpus import SequenceCorpus, prepare
from bert4rec.data.features import ItemFeatures, read_item_table
from bert4rec.data.interactions import Interactions
from bert4rec.data.sources import load_source
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.split import by_time
from bert4rec.evaluation.validation import validation_label
from bert4rec.training.loop import HOLDOUTS, fit
from bert4rec.training.threads import HELP as THREADS_HELP
from bert4rec.training.warm_start import WarmStart

SPLIT_PREFIX = "time:"
"""`--split time:DATE`: the one kind of split the command line takes."""


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per settings field, grouped by section; unset flags keep the preset."""
    for name, section in SECTIONS.items():
        group = parser.add_argument_group(f"{name} settings", section.__doc__)
        for f in fields(section):
            flag = "--" + f.name.replace("_", "-")
            plain = f.metadata.get("choices") or f.type == "bool"  # argparse shows these
            limits = "" if plain else f"{allowed_values(f)}; "
            help = f"{f.metadata['help']} ({limits}default: the preset's)"
            if f.type == "bool":  # --flag / --no-flag
                group.add_argument(flag, dest=f"{name}.{f.name}", default=argparse.SUPPRESS,
                                   action=argparse.BooleanOptionalAction, help=help)
                continue
            group.add_argument(
                flag, dest=f"{name}.{f.name}", type=FIELD_TYPES[f.type],
                choices=f.metadata.get("choices"), default=argparse.SUPPRESS,
                metavar=None if f.metadata.get("choices") else f.name.upper(), help=help,
            )


def resolved_preset(name: str, n_interactions: int, n_users: int,
                    n_items: int) -> tuple[str, str]:
    """`name`, or for `auto` the preset it picks for a corpus of `n_interactions` by `n_users`
    over `n_items` items; with the words that say why."""
    if name != AUTO:
        return name, name
    chosen, why = auto_choice(n_interactions, n_users, n_items)
    return chosen, f"auto: {chosen} ({why})"


def data_description(args: argparse.Namespace) -> dict:
    """What config.json records so the corpus can be rebuilt (docs/architecture.md): the source,
    the `PrepareSettings` fields flat, and the log's columns."""
    source = Path(args.source)
    described = {
        "source": str(source.resolve()) if source.exists() else args.source,
        **asdict(settings_from_args(args)),
        "columns": asdict(columns_from_args(args)),
    }
    if args.items is not None:
        described["items"] = {"file": str(args.items.resolve()), "title": args.title_col,
                              "genres": args.genres_col}
    return described


def run_train(args: argparse.Namespace) -> int:
    overrides = {key: value for key, value in vars(args).items() if "." in key}
    start = WarmStart.load(args.init_from) if args.init_from is not None else None
    for name in AUTO_CHOICES if args.preset == AUTO else [args.preset]:
        preset(name).override(overrides)  # settings are checked before the data is read
    cut = split_date(args.split) if args.split is not None else None
    if args.holdout == "none" and args.resume:
        raise ValueError("--holdout none keeps no checkpoint to resume from; train afresh")
    rundir.check_out_dir(args.out, args.resume)  # before preparing, which can take minutes
    items = None
    if args.items is not None:
        items = read_item_table(args.items, args.item_col, args.title_col, args.genres_col)
    later = None
    if cut is None:
        corpus = corpus_from_args(args)
    else:
        corpus, later = corpus_before(args, cut)
    speak = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints
    if items is not None:
        corpus = corpus.with_items(items, str(args.items))
        titled = corpus.item_table[C.TITLE].is_not_null().sum()
        if speak:
            print(f"bert4rec train: {args.items} gives titles for {titled:,} of the "
                  f"{corpus.n_items:,} items")
    settings, why = training_settings(args, corpus, overrides, start)
    setting = settings.model.item_features
    features = ItemFeatures.from_items(corpus.item_table, setting, corpus.vocab_size)
    if speak:
        print(f"bert4rec train: {why}, settings {json.dumps(settings.to_dict())}")
        if setting:
            chosen = features.describe() if features is not None else "none in the item table"
            print(f"bert4rec train: item features ({setting}): {chosen}")
    result = fit(corpus, settings, args.out, data=data_description(args), resume=args.resume,
                 final=args.final, holdout=args.holdout, start=start)
    if not speak:
        return 0
    print(f"run directory: {result.run_dir}")
    keys = ("NDCG@10", "HR@10", "MRR")
    if args.holdout != "none":
        print(f"best epoch {result.best_epoch} of {len(result.history)}, chosen on "
              f"{validation_label(settings.loop, corpus)}")
        whose = " (selection model)" if result.final is not None else ""
        print(f"valid{whose}: " + ", ".join(f"{k} {result.valid[k]:.4f}" for k in keys))
        if result.test is not None:
            print(f"test{whose}:  " + ", ".join(f"{k} {result.test[k]:.4f}" for k in keys))
    if result.final is not None:
        print(f"final model: {result.final['epochs']} epochs on all "
              f"{result.final['interactions']:,} interactions, each user's last two included "
              f"({result.final['seconds']:.0f} s)")
    if later is not None:
        score_later(result.run_dir, later, args.split, result.final is not None)
    return 0


def split_date(text: str) -> str:
    """DATE of `--split time:DATE`, checked: an ISO date or datetime, or a number in the log's
    time unit (seconds since 1970 for MovieLens)."""
    if not text.startswith(SPLIT_PREFIX) or len(text) == len(SPLIT_PREFIX):
        raise ValueError(f"--split takes time:DATE (such as time:2003-01-01), got {text!r}")
    return text[len(SPLIT_PREFIX):]


def corpus_before(args: argparse.Namespace, cut: str) -> tuple[SequenceCorpus, pl.DataFrame]:
    """The corpus of the events before `cut` (prepared with the source options, uncached), and
    the events from `cut` on that count as wanted (`--min-rating` applies to them too):
    user, item, timestamp."""
    settings = settings_from_args(args)
    log = load_source(args.source, args.data_dir, columns_from_args(args))
    at: Any = int(cut) if cut.lstrip("-").isdigit() else cut
    before, after = by_time(log.events, at=at)
    if before.height == 0 or after.height == 0:
        first, last = log.events[C.TIMESTAMP].min(), log.events[C.TIMESTAMP].max()
        raise ValueError(f"--split time:{cut} leaves {before.height:,} events before it and "
                         f"{after.height:,} from it; the log runs from {first} to {last} "
                         "(seconds since 1970 for dated logs)")
    if settings.min_rating is not None and C.RATING in after.columns:
        after = after.filter(pl.col(C.RATING) >= settings.min_rating)
    corpus = prepare(Interactions(before, log.items, log.name), settings)
    print(f"bert4rec train: --split time:{cut}: {before.height:,} events before it train, "
          f"{after.height:,} from it are scored")
    return corpus, after.select(C.USER, C.ITEM, C.TIMESTAMP)


def training_settings(args: argparse.Namespace, corpus: SequenceCorpus,
                      overrides: dict[str, Any], start: WarmStart | None
                      ) -> tuple[Settings, str]:
    """The run's settings and the words that say where they came from: the preset (auto
    picks by size), or for a warm start with no --preset the starting run's settings; the
    flags override either. A warm start keeps the model's shape."""
    stored = rundir.read_config(args.init_from).get("train") if start is not None else None
    if stored and args.preset == AUTO:
        settings = Settings.from_dict(stored).override(overrides)
        why = f"the settings of {args.init_from} (warm start)"
    else:
        name, why = resolved_preset(args.preset, corpus.n_interactions, corpus.n_users,
                                    corpus.n_items)
        settings, why = preset(name).override(overrides), f"preset {why}"
    if start is not None:
        start.check_shape(settings.model)
    return settings, why


def score_later(run_dir: Path, later: pl.DataFrame, split: str, final: bool) -> None:
    """Score the events after the --split cut with the run's model (and, for a final fit,
    the selection model too), print the figures and add them to metrics.json as `later`."""
    from bert4rec.inference.held_out import evaluate_frame
    from bert4rec.inference.recommender import Recommender

    users = rundir.read_users(run_dir, Recommender.load(run_dir).n_items)
    models = {"final" if final else "model": Recommender.load(run_dir)}
    if final:
        models["selection"] = selection_recommender(run_dir)
    reports = {name: evaluate_frame(rec, users, later, ks=DEFAULT_KS)
               for name, rec in models.items()}
    path = run_dir / rundir.METRICS
    metrics = json.loads(path.read_text())
    metrics["later"] = {"split": split, **reports}
    rundir.write_json(path, metrics)
    for name, report in reports.items():
        print(f"later ({split}, {report['users']:,} users, {report['events']:,} events), "
              f"{name}: NDCG@10 {report['NDCG@10']:.4f}, HR@10 {report['HR@10']:.4f}, "
              f"Recall@10 {report['Recall@10']:.4f}")


def selection_recommender(run_dir: Path):
    """The selection model of a final fit (checkpoints/selected.safetensors) as a
    Recommender over the run's items."""
    from safetensors.torch import load_file

    from bert4rec.inference.recommender import Recommender

    model, _ = rundir.load_model(run_dir)
    model.load_state_dict(load_file(str(run_dir / rundir.SELECTED)))
    return Recommender(model.eval(), rundir.read_items(run_dir))


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train BERT4Rec on SOURCE and write a run directory",
        description=(
            "Prepare SOURCE, train BERT4Rec with a preset (any setting overridable), keep the "
            "weights with the best validation metric and write RUN_DIR (config.json, "
            "model.safetensors, items.parquet, metrics.json, tensorboard/, checkpoints/). "
            "Launch with torchrun for multi-GPU or multi-node data parallel training."
        ),
    )
    add_source_options(train)
    train.add_argument("--preset", choices=[AUTO, *sorted(PRESETS)], default=AUTO,
                       help="settings to start from; auto (the default) picks short, small, "
                       "causal or large by sequence length, size and catalogue "
                       "(docs/configuration.md)")
    train.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                       help="run directory to create (or to continue with --resume)")
    train.add_argument("--resume", action="store_true",
                       help="continue RUN_DIR from checkpoints/last.pt with the same settings")
    train.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    lifecycle = train.add_argument_group(
        "lifecycle", "From experiment to production: a final model on everything, a warm "
        "start from yesterday's run, and a split in time (docs/python.md).")
    lifecycle.add_argument("--final", action="store_true",
                           help="once validation has chosen the epoch count, train the run's "
                           "model afresh on every interaction (each user's last two included) "
                           "for that many epochs; metrics.json keeps the selection model's "
                           "figures, labelled so")
    lifecycle.add_argument("--holdout", choices=HOLDOUTS, default=HOLDOUTS[0],
                           help="what is held out of each user's sequence: the last two items "
                           "(validation and test; the default), or none: train --epochs on "
                           "every interaction, with no figures")
    lifecycle.add_argument("--init-from", metavar="RUN", type=Path,
                           help="warm start from this run: its items keep their vectors and "
                           "the encoder its weights, new items start from their co-occurrence "
                           "with known ones; its settings unless --preset or flags say "
                           "otherwise (the model's shape stays)")
    lifecycle.add_argument("--split", metavar="time:DATE",
                           help="train on the events before DATE (ISO date, or a number in the "
                           "log's time unit) and score the events from DATE on with the run's "
                           "model (and the selection model, with --final): NDCG, HR and Recall "
                           "in metrics.json's `later`")
    items = train.add_argument_group(
        "item table", "Titles, genres and any other columns of your items, kept in RUN_DIR's "
        "items.parquet so recommendations show them (MovieLens releases bring their own).")
    items.add_argument("--items", type=Path, metavar="FILE",
                       help="a CSV, TSV or Parquet file with one row per item: the item id "
                       "column (named as --item-col), a title and/or a genres column, and any "
                       "others; or a JSON object of item id -> list of attributes (as "
                       "Beauty_item2attributes.json), which become the column 'attributes'. "
                       "--item-features turns columns into model features")
    items.add_argument("--title-col", default=C.TITLE, help="title column of --items")
    items.add_argument("--genres-col", default=C.GENRES,
                       help="genres column of --items ('A|B' text, or lists in Parquet)")
    add_setting_flags(train)
    train.set_defaults(handler=run_train)
