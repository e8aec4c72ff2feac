"""`bert4rec train SOURCE --preset P --out RUN_DIR`: prepare SOURCE and fit BERT4Rec.

Every training setting has a flag named after it (`--hidden`, `--mask-prob`, ...) that
overrides the preset; the help text comes from `bert4rec.config`.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, fields
from pathlib import Path

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
    SMALL_DATA_INTERACTIONS,
    allowed_values,
    auto_preset,
    preset,
)
from bert4rec.data import columns as C
from bert4rec.data.frames import read_item_file
from bert4rec.evaluation.validation import validation_label
from bert4rec.training.loop import fit


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per settings field, grouped by section; unset flags keep the preset."""
    for name, section in SECTIONS.items():
        group = parser.add_argument_group(f"{name} settings", section.__doc__)
        for f in fields(section):
            flag = "--" + f.name.replace("_", "-")
            plain = f.metadata.get("choices") or f.type == "bool"  # argparse shows these
            limits = "" if plain else f"{allowed_values(f)}; "
            help = f"{f.metadata['help']} ({limits}default: the preset's)"
            if f.type == "bool":  # --refit / --no-refit
                group.add_argument(flag, dest=f"{name}.{f.name}", default=argparse.SUPPRESS,
                                   action=argparse.BooleanOptionalAction, help=help)
                continue
            group.add_argument(
                flag, dest=f"{name}.{f.name}", type=FIELD_TYPES[f.type],
                choices=f.metadata.get("choices"), default=argparse.SUPPRESS,
                metavar=None if f.metadata.get("choices") else f.name.upper(), help=help,
            )


def resolved_preset(name: str, n_interactions: int) -> tuple[str, str]:
    """`name`, or for `auto` the preset it picks for a corpus of `n_interactions`; with the
    words that say why."""
    if name != AUTO:
        return name, name
    chosen = auto_preset(n_interactions)
    side = "under" if n_interactions < SMALL_DATA_INTERACTIONS else "at least"
    return chosen, (f"auto: {chosen} ({n_interactions:,} interactions, {side} "
                    f"{SMALL_DATA_INTERACTIONS:,})")


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
    for name in AUTO_CHOICES if args.preset == AUTO else [args.preset]:
        preset(name).override(overrides)  # settings are checked before the data is read
    rundir.check_out_dir(args.out, args.resume)  # before preparing, which can take minutes
    items = None
    if args.items is not None:
        items = read_item_file(args.items, args.item_col, args.title_col, args.genres_col)
    corpus = corpus_from_args(args)
    if items is not None:
        corpus = corpus.with_items(items, str(args.items))
        titled = corpus.item_table[C.TITLE].is_not_null().sum()
        print(f"bert4rec train: {args.items} gives titles for {titled:,} of the "
              f"{corpus.n_items:,} items")
    name, why = resolved_preset(args.preset, corpus.n_interactions)
    settings = preset(name).override(overrides)
    speak = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints
    if speak:
        print(f"bert4rec train: preset {why}, settings {json.dumps(settings.to_dict())}")
    result = fit(corpus, settings, args.out, data=data_description(args), resume=args.resume)
    if not speak:
        return 0
    print(f"run directory: {result.run_dir}")
    print(f"best epoch {result.best_epoch} of {len(result.history)}, chosen on "
          f"{validation_label(settings.loop, corpus)}")
    keys = ("NDCG@10", "HR@10", "MRR")
    print("valid: " + ", ".join(f"{k} {result.valid[k]:.4f}" for k in keys))
    if result.selected_test is not None:
        print("test (selected weights): "
              + ", ".join(f"{k} {result.selected_test[k]:.4f}" for k in keys))
        print(f"refit for {result.best_epoch} epochs on the training and validation items")
    if result.test is not None:
        print("test:  " + ", ".join(f"{k} {result.test[k]:.4f}" for k in keys))
    return 0


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
                       help="settings to start from; auto (the default) picks small or large "
                       "by the number of interactions (docs/configuration.md)")
    train.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                       help="run directory to create (or to continue with --resume)")
    train.add_argument("--resume", action="store_true",
                       help="continue RUN_DIR from checkpoints/last.pt with the same settings")
    items = train.add_argument_group(
        "item table", "Titles, genres and any other columns of your items, kept in RUN_DIR's "
        "items.parquet so recommendations show them (MovieLens releases bring their own).")
    items.add_argument("--items", type=Path, metavar="FILE",
                       help="a CSV, TSV or Parquet file with one row per item: the item id "
                       "column (named as --item-col), a title and/or a genres column, and any "
                       "others")
    items.add_argument("--title-col", default=C.TITLE, help="title column of --items")
    items.add_argument("--genres-col", default=C.GENRES,
                       help="genres column of --items ('A|B' text, or lists in Parquet)")
    add_setting_flags(train)
    train.set_defaults(handler=run_train)
