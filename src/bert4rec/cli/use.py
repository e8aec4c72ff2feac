"""`bert4rec recommend`, `similar` and `demo`: use a trained run directory (`serve` is
cli/serve.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bert4rec import rundir
from bert4rec.cli.evaluate import read_frame
from bert4rec.cli.formatting import as_dict, as_json, format_table
from bert4rec.cli.idlists import read_id_list, typed
from bert4rec.cli.output import check_output, write_table
from bert4rec.cli.terminal import escaped_json, printable
from bert4rec.data import columns as C
from bert4rec.data.features import read_item_table
from bert4rec.data.users import UserHistories
from bert4rec.errors import TitleNotFoundError
from bert4rec.inference.held_out import recent_from
from bert4rec.inference.recommender import Recommendations, Recommender
from bert4rec.inference.requests import BATCH_SIZE, RecommendRequest, unknown_events
from bert4rec.training.threads import HELP as THREADS_HELP

FOUNDING_QUERY = [
    "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's Stone)"
    " (2001)",
    "Harry Potter and the Chamber of Secrets (2002)",
    "Harry Potter and the Prisoner of Azkaban (2004)",
    "Harry Potter and the Goblet of Fire (2005)",
]


def run_recommend(args: argparse.Namespace) -> int:
    """Recommend for a history of titles, for `--user`s or for every user; print the result,
    or write it as one long table to `--output`. The arguments become one `RecommendRequest`,
    answered by `Recommender.answer` as the Python and HTTP APIs are."""
    check_recommend_args(args)
    output = check_output(args.output, args.overwrite) if args.output else None
    rec = Recommender.load(args.run_dir, window=args.window)
    if args.items_table:
        rec = rec.add_items(read_new_items(args.run_dir, args.items_table))
    allowed, denied = id_lists(rec, args)
    users, recent = None, None
    if args.events is not None:
        recent = recent_events(args.run_dir, args.events)
    if args.history:
        who = {"histories": [args.history]}
    else:
        users = rundir.read_users(args.run_dir, rec.n_items)
        integer = users.ids.dtype.kind in "iu"
        who = {"users": every_user(users, recent) if args.all_users
               else [typed(u, integer) for u in args.users]}
    request = RecommendRequest(**who, k=args.k, filter_viewed=not args.keep_seen, items=allowed,
                               exclude=denied, on_unknown="skip" if args.skip_unknown else "raise",
                               recent=recent)
    with tqdm(total=len(request), desc="recommend", unit="user",
              disable=None if output is not None else True) as bar:
        try:
            ranking = rec.answer(request, users, batch_size=args.batch_size,
                                 progress=bar.update)
        except TitleNotFoundError as err:
            raise user_hint(err, rec, args.run_dir) from err
    if recent is not None:
        query = ranking.query
        said = f"{query.recent_events:,} new events added to the histories of the users asked"
        print(f"bert4rec recommend: {args.events}: {said}"
              + (f"; {unknown_events(query)}" if query.recent_unknown else ""), file=sys.stderr)
    if output is not None:
        write_table(rec.frame(ranking), output, args.overwrite)
        print(f"wrote recommendations for {len(ranking.query):,} {ranking.query.key}s to "
              f"{output}", file=sys.stderr)
        return 0
    results = rec.results(ranking)
    if args.explain:
        results = [rec.explain(result) for result in results]
    if args.history:
        print(as_json(results[0]) if args.json else format_table(results[0], args.explain))
    elif args.json:
        print(users_json(ranking.query.keys, results))
    else:
        print(users_table(ranking.query.keys, results, args.explain))
    return 0


def recent_events(run_dir: str, path: Path) -> dict[Any, list[Any]]:
    """`--events FILE`: each user's events in FILE (CSV, TSV or Parquet, columns named as in
    the training log), oldest first, as `RecommendRequest.recent` takes them."""
    columns = (rundir.read_config(run_dir).get("data") or {}).get("columns") or {}
    return recent_from(read_frame(path), user=columns.get("user") or C.USER,
                       item=columns.get("item") or C.ITEM,
                       timestamp=columns.get("timestamp", C.TIMESTAMP))


def every_user(users: UserHistories, recent: dict[Any, list[Any]] | None) -> list[Any]:
    """`--all-users`: every user the model knows, then the new users of `--events`."""
    known = users.ids.tolist()
    if not recent:
        return known
    seen = set(known)
    return known + [user for user in recent if user not in seen]


def read_new_items(run_dir: str, path: str):
    """The item table of `--items-table`, its columns named as the run's training item table's
    were (config.json's data section), else item, title and genres."""
    data = rundir.read_config(run_dir).get("data") or {}
    named = data.get("items") or {}
    item = (data.get("columns") or {}).get("item", C.ITEM)
    title, genres = named.get("title", C.TITLE), named.get("genres", C.GENRES)
    hint = (f"Name the columns as the training data did: {item!r} for the ids, {title!r} and "
            f"{genres!r} for titles and genres.")
    return read_item_table(path, item, title, genres, hint)


def user_hint(err: TitleNotFoundError, rec: Recommender, run_dir: str) -> TitleNotFoundError:
    """`err`, or when the title that matched nothing is a user id of the training log, `err`
    with the hint to write `--user` (`recommend RUN 42` means a title)."""
    path = Path(run_dir) / rundir.USERS
    if not path.is_file():
        return err
    users = rundir.read_users(run_dir, rec.n_items)
    integer = users.ids.dtype.kind in "iu"
    if len(users.positions([typed(err.query, integer)], "skip")[1]) == 0:
        return err
    return TitleNotFoundError(f"{err}; {err.query!r} is a user of the training log: write "
                              f"--user {err.query} to recommend for that user", err.query,
                              err.candidates)


def check_recommend_args(args: argparse.Namespace) -> None:
    """Exactly one of TITLEs, --user and --all-users; --all-users writes a file; --explain
    and --json print, so they do not go with --output."""
    given = [name for name, value in (("TITLE", args.history), ("--user", args.users),
                                      ("--all-users", args.all_users)) if value]
    if len(given) != 1:
        which = "not " + " and ".join(given) if given else "one of them"
        raise ValueError("give a history of TITLEs, --user ID (any number of times) or "
                         f"--all-users: {which}")
    if args.all_users and not args.output:
        raise ValueError("--all-users writes a file: add --output recs.parquet (or .csv)")
    if args.events is not None and args.history:
        raise ValueError("--events adds new events to the histories of --user or --all-users; "
                         "a history of TITLEs holds only what it lists")
    clash = [flag for flag, value in (("--explain", args.explain), ("--json", args.json))
             if value and args.output]
    if clash:
        raise ValueError(f"{clash[0]} changes what is printed; it does not go with --output")
    if args.k < 1 or args.batch_size < 1:
        raise ValueError(f"-k and --batch-size must be at least 1, got {args.k} and "
                         f"{args.batch_size}")


def id_lists(rec: Recommender, args: argparse.Namespace) -> tuple[list | None, list | None]:
    """The allow list (--items-from) and deny list (--exclude-from) as item ids the model
    knows; an unknown id fails naming its file and line, or is left out with --skip-unknown."""
    integer = rec.items.schema[C.ITEM].is_integer()
    known = set(rec.item_ids)
    return tuple(
        None if path is None
        else read_id_list(path, integer).known(known, args.skip_unknown, rec.n_items)
        for path in (args.items_from, args.exclude_from)
    )


def users_table(users: list, results: list[Recommendations], explain: bool) -> str:
    """One table per user, each headed by the user's id and history length."""
    blocks = [f"user {printable(str(user))} ({len(result.history):,} items in the history)\n"
              f"{format_table(result, explain)}"
              for user, result in zip(users, results, strict=True)]
    return "\n\n".join(blocks)


def users_json(users: list, results: list[Recommendations]) -> str:
    """A JSON list: each user's id, history and ranked items."""
    return escaped_json(json.dumps([{"user": _plain(user), **as_dict(result)}
                                    for user, result in zip(users, results, strict=True)],
                                   ensure_ascii=False))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number or text JSON writes."""
    return value.item() if hasattr(value, "item") else value


def run_similar(args: argparse.Namespace) -> int:
    rec = Recommender.load(args.run_dir)
    result = rec.similar_items(args.item, k=args.k)
    print(as_json(result) if args.json else format_table(result))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from bert4rec.cli.demo import demo

    return demo(args.data_dir, args.out, FOUNDING_QUERY)


def register(subparsers: argparse._SubParsersAction) -> None:
    recommend = subparsers.add_parser(
        "recommend",
        help="recommend the next items for a history of titles, known users or all users",
        description="Print the top items to watch after the TITLEs given (oldest first; "
        "write item ids as id:2571), or for users the model was trained with (--user ID, "
        "their whole history), or write them for every user to a file (--all-users --output "
        "FILE). Unknown or ambiguous titles fail with candidates; unknown ids fail naming "
        "them unless --skip-unknown.",
    )
    recommend.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    recommend.add_argument("history", metavar="TITLE", nargs="*",
                           help="watched titles or id:ID, oldest first")
    recommend.add_argument("--user", dest="users", action="append", metavar="ID",
                           help="a user id of the training log (repeat for more users)")
    recommend.add_argument("--all-users", action="store_true",
                           help="every user the model was trained with (needs --output)")
    recommend.add_argument("--output", metavar="FILE",
                           help="write one long table (user, rank, item, score, title, "
                           "genres) to FILE (.parquet, .csv or .tsv) instead of printing")
    recommend.add_argument("--overwrite", action="store_true",
                           help="replace FILE if it exists (only a table bert4rec wrote)")
    recommend.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    recommend.add_argument("--keep-seen", action="store_true",
                           help="allow items already in the history (filter_viewed false; "
                           "by default they are filtered)")
    recommend.add_argument("--items-from", metavar="FILE",
                           help="recommend only the item ids listed in FILE (one per line)")
    recommend.add_argument("--exclude-from", metavar="FILE",
                           help="never recommend the item ids listed in FILE (one per line)")
    recommend.add_argument("--items-table", metavar="FILE",
                           help="also offer the new items of FILE (an item table as for "
                           "`train --items`, with the feature columns), scored by their "
                           "features alone; needs a model trained with --item-features")
    recommend.add_argument("--skip-unknown", action="store_true",
                           help="leave out unknown users, titles and item ids instead of "
                           "failing on the first")
    recommend.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                           help=f"histories per forward pass (default {BATCH_SIZE})")
    recommend.add_argument("--window", type=int, metavar="N",
                           help="read only each history's N most recent items (default: as "
                           "many as the model reads, max_len - 1): faster and approximate; "
                           "docs/performance.md gives its top-10 agreement")
    recommend.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    recommend.add_argument("--explain", action="store_true",
                           help="show the history titles each recommendation owes most to")
    recommend.add_argument("--json", action="store_true", help="print JSON instead of a table")
    recommend.add_argument("--events", metavar="FILE", type=Path,
                           help="new events since training (CSV, TSV or Parquet; columns named "
                           "as in the training log) added to the users' histories without "
                           "retraining; users new to the model are answered from them alone; "
                           "events of unknown items are left out and counted")
    recommend.set_defaults(handler=run_recommend)

    similar = subparsers.add_parser(
        "similar", help="items closest to one item in the model's embedding space",
        description="Print the items whose learned embeddings are closest (cosine) to ITEM.",
    )
    similar.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    similar.add_argument("item", metavar="TITLE", help="a title or id:ID")
    similar.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    similar.add_argument("--json", action="store_true", help="print JSON instead of a table")
    similar.set_defaults(handler=run_similar)

    demo = subparsers.add_parser(
        "demo", help="train on ml-latest-small and recommend for Harry Potter",
        description="Find (or download) ml-latest-small, train the preset `auto` picks for it "
        "(`small`) with progress bars (a few minutes on a laptop CPU), and print "
        "recommendations after the first four Harry Potter films.",
    )
    demo.add_argument("--data-dir", help="where MovieLens releases are looked for")
    demo.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    demo.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    demo.set_defaults(handler=run_demo)
