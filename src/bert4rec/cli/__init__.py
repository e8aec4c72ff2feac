"""The `bert4rec` command line: parses arguments and calls the library; no logic of its own.

Each command group lives in its own module and exposes `register(subparsers)`; adding a
command means adding it to `COMMANDS`. Only the module of the command being run is imported
(the others appear in `bert4rec --help` by their one-line summary), so `--help` and `--version`
never load torch or polars: they answer in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from bert4rec import __version__
from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc
from bert4rec.cli.terminal import one_line
from bert4rec.cli.wording import in_flags
from bert4rec.errors import Bert4RecError
from bert4rec.training.threads import governed, prepare_process, start_measuring

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("bert4rec.cli.data", "download, list and prepare data sets"),
    "train": ("bert4rec.cli.train", "train BERT4Rec on SOURCE and write a run directory"),
    "evaluate": ("bert4rec.cli.evaluate",
                 "evaluate a trained model (a run directory) with a labelled protocol"),
    "baseline": ("bert4rec.cli.evaluate",
                 "evaluate a baseline (popular, markov, itemknn) on SOURCE"),
    "recommend": ("bert4rec.cli.use",
                  "recommend the next items for a history of titles, known users or all users"),
    "similar": ("bert4rec.cli.use", "items closest to one item in the model's embedding space"),
    "serve": ("bert4rec.cli.serve", "HTTP API and web page for a run directory"),
    "demo": ("bert4rec.cli.use", "train on ml-latest-small and recommend for Harry Potter"),
    "export": ("bert4rec.cli.export",
               "write a run's model as ONNX or a torch.export program for serving"),
}
"""Every command: the module whose `register` adds it (with the same one-line `help`), and that
line, which `bert4rec --help` shows without importing the module."""
# Long-running commands restart under jemalloc when installed, with this MALLOC_CONF (allocator.py)
LONG_RUNNING = {"train": TRAINING_CONF, "demo": TRAINING_CONF, "serve": ""}
# Commands whose torch threads follow the machine (training/threads.py), `--threads N` fixes
# them; `serve` fits them in the app itself (serve/app.py), for however the app is run.
THREADED = {"train", "recommend", "serve", "demo"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: the command it names fully registered (its module imported),
    every other command as a summary only. Without `argv`, every command is registered."""
    parser = argparse.ArgumentParser(
        prog="bert4rec",
        description="BERT4Rec sequential recommendation: prepare data, train, evaluate, serve.",
    )
    parser.add_argument("--version", action="version", version=f"bert4rec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = {module for module, _ in COMMANDS.values()}
    if argv is not None:
        named = command_in(argv)
        wanted = {COMMANDS[named][0]} if named in COMMANDS else set()
    for module in sorted(wanted):
        importlib.import_module(module).register(subparsers)
    for name, (module, summary) in COMMANDS.items():
        if module not in wanted:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def command_in(argv: list[str]) -> str | None:
    """The command `argv` names: its first word that is not an option (the top-level options
    take no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def threads_in(words: list[str]) -> int | None:
    """The value of `--threads N` (or `--threads=N`) among `words`, read before the parser
    (which loads torch) runs; None if absent or not a number (the parser says so later)."""
    for at, word in enumerate(words):
        value = word.partition("=")[2] if word.startswith("--threads=") else None
        if word == "--threads" and at + 1 < len(words):
            value = words[at + 1]
        if value is not None:
            return int(value) if value.isdigit() else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. An expected failure (the package's errors, a bad value, a file that
    cannot be read or written) prints `bert4rec COMMAND: error: ...` on one line; anything
    else prints a one-line summary and a hint (the traceback with -v). Both exit with 1.

    Run as a program (`argv` None), a command with threads first chooses the OpenMP wait
    policy (before torch loads) and a long-running command restarts under jemalloc.
    """
    words = sys.argv[1:] if argv is None else argv
    if argv is None and command_in(words) in THREADED:
        prepare_process(threads_in(words))
    args = build_parser(words).parse_args(words)
    if argv is None and args.command in LONG_RUNNING:
        restart_under_jemalloc(LONG_RUNNING[args.command])
    if args.command in THREADED:
        start_measuring()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    prefix = f"bert4rec {args.command}: error:"
    try:
        if args.command in THREADED and args.command != "serve":
            with governed(args.threads):
                return int(args.handler(args) or 0)
        return int(args.handler(args) or 0)
    except (Bert4RecError, ValueError, OSError) as err:
        print(f"{prefix} {one_line(describe(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bert4rec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: say so in one line, with the way to the traceback
        if args.verbose:
            traceback.print_exc()
        hint = "the traceback is above" if args.verbose else "run with -v for the traceback"
        print(f"{prefix} unexpected {type(err).__name__}: {one_line(describe(err))} ({hint}; "
              "please report it)", file=sys.stderr)
        return 1


def describe(err: BaseException) -> str:
    """An exception as a message: an operating-system error as `PATH: reason`; the Python
    arguments a library error names, as the flags that do the same (`cli/wording.py`)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        target = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{err.filename}{target}: {err.strerror}"
    return in_flags(str(err)) or type(err).__name__
