"""`bert4rec data ...`: download MovieLens releases, list them, prepare a source."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace

from bert4rec.data import download, movielens
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.data.interactions import LogColumns

COLUMN_FLAGS = {"user": "--user-col", "item": "--item-col", "timestamp": "--time-col",
                "rating": "--rating-col"}
"""The flag that names each `LogColumns` field."""


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """SOURCE plus the options that say where data lives and how it is prepared."""
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a MovieLens release name (ml-1m), a release folder, or a log file",
    )
    parser.add_argument("--data-dir", help="where MovieLens releases are looked for")
    parser.add_argument("--cache-dir", help="where prepared corpora are cached")
    parser.add_argument("--no-cache", action="store_true", help="prepare afresh, do not cache")
    defaults = PrepareSettings()
    for f in fields(PrepareSettings):  # one flag per data setting, its default and help
        default = getattr(defaults, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(default),
                            default=default, help=f"{f.metadata['help']} (default {default})")
    parser.add_argument("--all-ratings", action="store_true",
                        help="keep every rating (--min-rating None)")
    columns = LogColumns()
    for name, flag in COLUMN_FLAGS.items():
        default = getattr(columns, name)
        parser.add_argument(flag, default=default,
                            help=f"{name} column of a log file (default {default})")


def settings_from_args(args: argparse.Namespace) -> PrepareSettings:
    """The data settings the source options name (`--all-ratings`: no rating filter)."""
    settings = PrepareSettings(**{f.name: getattr(args, f.name) for f in fields(PrepareSettings)})
    return replace(settings, min_rating=None) if args.all_ratings else settings


def columns_from_args(args: argparse.Namespace) -> LogColumns:
    """The log columns the source options name."""
    return LogColumns(**{name: getattr(args, flag[2:].replace("-", "_"))
                         for name, flag in COLUMN_FLAGS.items()})


def corpus_from_args(args: argparse.Namespace):
    """Load the corpus named by the source options (through the cache)."""
    return load_corpus(
        args.source,
        settings_from_args(args),
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        columns=columns_from_args(args),
        use_cache=not args.no_cache,
    )


def run_prepare(args: argparse.Namespace) -> int:
    stats = corpus_from_args(args).statistics()
    if args.json:
        print(json.dumps(stats))
    else:
        width = max(map(len, stats))
        for key, value in stats.items():
            print(
                f"{key:<{width}}  {value:,}"
                if isinstance(value, int)
                else f"{key:<{width}}  {value}"
            )
    return 0


def run_download(args: argparse.Namespace) -> int:
    path = download.download(args.name, args.data_dir, base_url=args.base_url)
    print(path)
    return 0


def run_list(args: argparse.Namespace) -> int:
    for name, entry in movielens.RELEASES.items():
        found = movielens.find(name, args.data_dir)
        checksum = "sha256" if entry.sha256 else "md5" if entry.md5 else "unverifiable"
        size = f"{entry.size / 1e6:7.1f} MB" if entry.size else "      ? MB"
        where = f"present  {found}" if found else "absent"
        print(f"{name:<16} {size}  {checksum:<12}  {where}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="download, list and prepare data sets")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    fetch = commands.add_parser(
        "download",
        help="download and verify a MovieLens release",
        description=download.download.__doc__,
    )
    fetch.add_argument("name", metavar="NAME", choices=list(movielens.RELEASES))
    fetch.add_argument("--data-dir", help="where to put it (default $BERT4REC_DATA_DIR or cache)")
    fetch.add_argument("--base-url", help=f"mirror to download from (or ${download.BASE_URL_ENV})")
    fetch.set_defaults(handler=run_download)
    listing = commands.add_parser(
        "list", help="list MovieLens releases and where they are", description=movielens.__doc__
    )
    listing.add_argument("--data-dir", help="also look here first")
    listing.set_defaults(handler=run_list)
    prepare = commands.add_parser(
        "prepare",
        help="prepare SOURCE and print its statistics",
        description="Filter, order and index SOURCE into per-user sequences; print statistics.",
    )
    add_source_options(prepare)
    prepare.add_argument("--json", action="store_true", help="print one JSON object")
    prepare.set_defaults(handler=run_prepare)
