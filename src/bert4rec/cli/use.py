"""`bert4rec recommend`, `similar`, `serve` and `demo`: use a trained run directory."""

from __future__ import annotations

import argparse

from bert4rec.cli.formatting import as_json, format_table
from bert4rec.recommender import Recommender

FOUNDING_QUERY = [
    "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's Stone)"
    " (2001)",
    "Harry Potter and the Chamber of Secrets (2002)",
    "Harry Potter and the Prisoner of Azkaban (2004)",
    "Harry Potter and the Goblet of Fire (2005)",
]


def run_recommend(args: argparse.Namespace) -> int:
    rec = Recommender.load(args.run_dir)
    result = rec.recommend(
        args.history, k=args.k, exclude_seen=not args.keep_seen,
        explain=args.explain,
    )
    print(as_json(result) if args.json else format_table(result, args.explain))
    return 0


def run_similar(args: argparse.Namespace) -> int:
    rec = Recommender.load(args.run_dir)
    result = rec.similar_items(args.item, k=args.k)
    print(as_json(result) if args.json else format_table(result))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bert4rec.serve import create_app
    from bert4rec.serve.settings import ServeSettings

    overrides = {"host": args.host, "port": args.port, "torch_threads": args.threads}
    settings = ServeSettings(**{k: v for k, v in overrides.items() if v is not None})
    rec = Recommender.load(args.run_dir)  # a broken run directory fails here, in one line
    print(f"serving {args.run_dir} at http://{settings.host}:{settings.port}/ (Ctrl-C stops)")
    uvicorn.run(create_app(args.run_dir, settings, rec), host=settings.host, port=settings.port,
                log_level="warning")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from bert4rec.cli.demo import demo

    return demo(args.data_dir, args.out, FOUNDING_QUERY)


def register(subparsers: argparse._SubParsersAction) -> None:
    recommend = subparsers.add_parser(
        "recommend", help="recommend the next items for a history of titles",
        description="Print the top items to watch after HISTORY (titles, oldest first; "
        "write item ids as id:2571). Unknown or ambiguous titles fail with candidates.",
    )
    recommend.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    recommend.add_argument("history", metavar="TITLE", nargs="+", help="watched titles or id:ID")
    recommend.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    recommend.add_argument("--keep-seen", action="store_true",
                           help="allow items already in the history")
    recommend.add_argument("--explain", action="store_true",
                           help="show the history titles each recommendation owes most to")
    recommend.add_argument("--json", action="store_true", help="print JSON instead of a table")
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

    serve = subparsers.add_parser(
        "serve", help="HTTP API and web page for a run directory",
        description="Serve POST /recommend, GET /items, GET /items/{id}/similar, GET /health, "
        "the OpenAPI docs at /docs and the web page at /. Binds to 127.0.0.1 unless told.",
    )
    serve.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--threads", type=int, help="torch threads per request (default 1)")
    serve.set_defaults(handler=run_serve)

    demo = subparsers.add_parser(
        "demo", help="train on ml-latest-small and recommend for Harry Potter",
        description="Find (or download) ml-latest-small, train the preset `auto` picks for it "
        "(`small`) with progress bars (a few minutes on a laptop CPU), and print "
        "recommendations after the first four Harry Potter films.",
    )
    demo.add_argument("--data-dir", help="where MovieLens releases are looked for")
    demo.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    demo.set_defaults(handler=run_demo)
