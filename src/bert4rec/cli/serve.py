"""`bert4rec serve RUN_DIR`: the HTTP API and web page for a run directory.

The settings are checked (a host beyond loopback needs a token) and the model is loaded
before the port is bound, and the port is bound here rather than by uvicorn, so a port in
use, a missing token or a broken run directory each fail with one line.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
from pathlib import Path

from bert4rec.errors import SettingsError
from bert4rec.training.threads import HELP as THREADS_HELP

TOKEN_FILE_BYTES = 4096
"""A token file larger than this is not a token."""


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bert4rec.inference.recommender import Recommender
    from bert4rec.serve import create_app
    from bert4rec.serve.settings import ServeSettings

    overrides = {"host": args.host, "port": args.port, "torch_threads": args.threads,
                 "allowed_hosts": args.allowed_hosts, "by_user": args.by_user,
                 "token": read_token(args.token_file) if args.token_file else None}
    try:
        settings = ServeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as err:  # pydantic's report, as one line per setting
        raise SettingsError(f"serve settings: {settings_problem(err)}") from err
    settings.check_exposure()
    rec = Recommender.load(args.run_dir)  # a broken run directory fails here, in one line
    app = create_app(args.run_dir, settings, rec)
    listening = bind(settings.host, settings.port)
    print(f"serving {args.run_dir} at http://{settings.host}:{settings.port}/ (Ctrl-C stops)"
          + ("; every request but /health needs the bearer token" if settings.token else ""))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    freeze_heap()
    server.run(sockets=[listening])
    return 0


def freeze_heap() -> None:
    """Move every object alive now (the model, the catalogue, the imported modules: some
    230,000 on an ML-1M run) out of the garbage collector's sight. A full collection scans
    them all, about 90 ms on the development machine, and every request in flight waits for
    it: the p99 of `benchmarks/abuse.py` was that pause. They live as long as the process."""
    gc.collect()
    gc.freeze()


def read_token(path: Path) -> str:
    """The bearer token in `path` (its first line, without surrounding whitespace)."""
    if path.is_file() and path.stat().st_size > TOKEN_FILE_BYTES:
        raise SettingsError(f"{path}: {path.stat().st_size:,} bytes; a token file holds one "
                            "line")
    text = path.read_text(encoding="utf-8-sig")
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def settings_problem(err: ValueError) -> str:
    """A pydantic validation error as `field: message` pairs on one line."""
    errors = getattr(err, "errors", None)
    if errors is None:
        return str(err)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors())


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), ready for uvicorn to listen on; a port in use or an
    address this machine does not have is an `OSError` naming `host:port`."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror}; check --host", f"{host}:{port}") from err
    try:
        if os.name != "nt":  # as uvicorn does: a restart may reuse a port in TIME_WAIT
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without it, uvloop leaves Nagle's algorithm on and
        # each answer waits for the client's delayed ACK (40 ms more per request on Linux)
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listening.bind((host, port))
    except OSError as err:
        listening.close()
        raise OSError(err.errno, f"{err.strerror}; stop what listens there or pass another "
                      "--port", f"{host}:{port}") from err
    return listening


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="HTTP API and web page for a run directory",
        description="Serve POST /recommend, GET /items, GET /items/{id}/similar, GET /health, "
        "the OpenAPI docs at /docs and the web page at /. Binds to 127.0.0.1 unless told; "
        "another --host needs a bearer token (--token-file or BERT4REC_SERVE_TOKEN). "
        "docs/serving.md says what each endpoint reveals.",
    )
    serve.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    serve.add_argument("--token-file", type=Path, metavar="FILE",
                       help="a file holding the bearer token every request but /health must "
                       "send (Authorization: Bearer TOKEN); required with a --host other than "
                       "loopback")
    serve.add_argument("--allowed-host", dest="allowed_hosts", action="append", metavar="NAME",
                       help="a Host header value to accept (repeat for more; default: the "
                       "loopback names and --host, or any host when --host is 0.0.0.0)")
    serve.add_argument("--by-user", choices=["on", "no-history", "off"],
                       help="recommending for a user id: 'on' (default) returns their stored "
                       "history too, 'no-history' does not, 'off' refuses it")
    serve.set_defaults(handler=run_serve)
