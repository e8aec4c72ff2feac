"""From experiment to production, measured (issue 24): the final fit, the warm start and fresh
events, each beside what it replaces, on logs with real timestamps cut in time.

    BERT4REC_DATA_DIR=DIR nice python benchmarks/lifecycle.py final \\
        --data ml-latest-small ml-100k ml-1m-3k --seeds 0 1 2 [--epochs 40] [--threads 1]
    ... lifecycle.py warm --data ml-100k --seeds 0 1 2 [--warm-epochs 5] [--epochs 40]
    ... lifecycle.py fresh [--events 10] [--rounds 3]

`final`: the log cut at the time that leaves its last 10% of interactions after the cut
(`bert4rec.split.by_time(fraction=0.1)`); BERT4Rec trains on the part before it with
`final=True`, and the selection model (trained without each user's last two items) and the
final model (trained on everything before the cut) both rank the later events of the users
they know (`Model.evaluate(test=...)`: NDCG@10, HR@10, Recall@10, full ranking, viewed items
filtered), beside itemknn fitted on the same data.

`warm`: three periods, the cuts leaving 20% and 10% of interactions after them. Yesterday's
model trains on the first period; today's log is the first two periods (the second brings
new items and users); the warm start (`init_from`, `--warm-epochs` epochs) and a full
retrain (`--epochs`) both train on it, and both rank the third period, beside itemknn; each
seed trains its own yesterday's model, retrain and warm start.
Seconds are each fit's wall time, validation included, measured one after the other in
this process.

`fresh`: a model over ML-1M (ml-1m.txt, 6,040 users; one epoch of the `fast` preset, the
model docs/performance.md times `--all-users` with: the cost of recommending does not depend
on what the model learnt) recommends the top 10 for every user through `Model.recommend`,
plainly and with 10 new events per user (known items drawn at random) as `interactions=`,
the frame's conversion included, as `recommend --all-users` and `--all-users --events` do
(less reading the file); alternating rounds, the median of each.

ML-1M's users 1-2999 (`ml-1m-3k`) come as `$BERT4REC_DATA_DIR/ml-1m/ratings.users-1-2999.dat.gz`,
which no reader takes under that name; the script links it as `ratings.dat.gz` beside
`movies.dat` in a temporary release folder, which the release reader does take. ML-100k and
ML-1M keep every rating (as docs/results.md), ml-latest-small ratings of 4 and up.
Prints JSON lines and writes benchmarks/out/lifecycle-MODE[-DATA...].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

import bert4rec
from bert4rec import rundir
from bert4rec.cli.train import selection_recommender
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.interactions import Interactions
from bert4rec.data.sources import load_source
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.inference.held_out import evaluate_frame

OUT = Path(__file__).resolve().parent / "out"
DATASETS = {
    "ml-latest-small": ("ml-latest-small", PrepareSettings()),
    "ml-100k": ("ml-100k", PrepareSettings(min_rating=None)),
    "ml-1m-3k": ("ml-1m/ratings.users-1-2999.dat.gz", PrepareSettings(min_rating=None)),
}
KEYS = ("NDCG@10", "HR@10", "Recall@10")


def load_log(name: str, scratch: Path) -> tuple[Interactions, PrepareSettings]:
    """The named log with its timestamps, and its data settings."""
    source, settings = DATASETS[name]
    root = Path(os.environ["BERT4REC_DATA_DIR"])
    if source.endswith(".dat.gz"):  # a release folder the reader takes: ratings.dat.gz
        folder = scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        for link, target in (("ratings.dat.gz", root / source),
                             ("movies.dat", root / "ml-1m" / "movies.dat")):
            if not (folder / link).exists():
                (folder / link).symlink_to(target)
        return load_source(folder), settings
    return load_source(source, root), settings


def cut(events: pl.DataFrame, fraction: float) -> int:
    """The timestamp that leaves `fraction` of the events at or after it (by_time's rule)."""
    times = np.sort(events["timestamp"].to_numpy())
    return int(times[min(len(times) - 1, int(len(times) * (1 - fraction)))])


def part(log: Interactions, settings: PrepareSettings, start: int | None, end: int | None
         ) -> SequenceCorpus:
    """The log's events in [start, end) prepared as a corpus."""
    events = log.events
    if start is not None:
        events = events.filter(pl.col("timestamp") >= start)
    if end is not None:
        events = events.filter(pl.col("timestamp") < end)
    return prepare(Interactions(events, log.items, log.name), settings)


def wanted(log: Interactions, settings: PrepareSettings, start: int) -> pl.DataFrame:
    """The events from `start` on that pass the rating filter: the period to rank."""
    events = log.events.filter(pl.col("timestamp") >= start)
    if settings.min_rating is not None and "rating" in events.columns:
        events = events.filter(pl.col("rating") >= settings.min_rating)
    return events.select("user", "item", "timestamp")


def bert(args: argparse.Namespace, epochs: int, seed: int = 0) -> bert4rec.Model:
    """A BERT4Rec of the auto preset (or, for a warm start, the starting run's settings) for
    `epochs` epochs on the CPU with `--threads` threads."""
    return bert4rec.Model(epochs=epochs, seed=seed, device="cpu", threads=args.threads)


def scored(report: dict) -> dict:
    return {key: round(report[key], 4) for key in KEYS} | {"users": report["users"]}


def final_rows(name: str, args: argparse.Namespace, scratch: Path) -> list[dict]:
    log, settings = load_log(name, scratch)
    at = cut(log.events, 0.1)
    corpus = part(log, settings, None, at)
    later = wanted(log, settings, at)
    data = bert4rec.Dataset(corpus, {"source": name})
    new_items = int((~later["item"].is_in(pl.Series(corpus.item_ids).implode())).sum())
    header = {"data": name, "cut": at, "train_interactions": corpus.n_interactions,
              "later_events": later.height, "later_events_of_new_items": new_items}
    rows = []
    knn = bert4rec.Baseline("itemknn").fit(data)
    rows.append({**header, "model": "itemknn", **scored(knn.evaluate(test=later))})
    print(json.dumps(rows[-1]), flush=True)
    for seed in args.seeds:
        start = time.perf_counter()
        model = bert(args, args.epochs, seed).fit(
            data, out=scratch / f"{name}-final-{seed}", progress=False, final=True)
        seconds = time.perf_counter() - start
        run = scratch / f"{name}-final-{seed}"
        selection = evaluate_frame(selection_recommender(run), rundir.read_users(
            run, corpus.n_items), later, ks=DEFAULT_KS)
        rows.append({**header, "model": "selection", "seed": seed,
                     "best_epoch": model.metrics["best_epoch"], **scored(selection)})
        rows.append({**header, "model": "final", "seed": seed, "seconds": round(seconds),
                     **scored(model.evaluate(test=later))})
        for row in rows[-2:]:
            print(json.dumps(row), flush=True)
    return rows


def warm_rows(name: str, args: argparse.Namespace, scratch: Path) -> list[dict]:
    log, settings = load_log(name, scratch)
    first, second = cut(log.events, 0.2), cut(log.events, 0.1)
    old = bert4rec.Dataset(part(log, settings, None, first), {"source": f"{name} old"})
    new = bert4rec.Dataset(part(log, settings, None, second), {"source": f"{name} new"})
    later = wanted(log, settings, second)
    old_items = pl.Series(old.corpus.item_ids).implode()
    header = {"data": name, "cuts": [first, second], "old_interactions": old.n_interactions,
              "new_interactions": new.n_interactions,
              "new_items": int((~pl.Series(new.corpus.item_ids).is_in(old_items)).sum()),
              "later_events": later.height}
    rows = [{**header, "model": "itemknn", **scored(
        bert4rec.Baseline("itemknn").fit(new).evaluate(test=later))}]
    print(json.dumps(rows[-1]), flush=True)
    for seed in args.seeds:
        yesterday = bert(args, args.epochs, seed).fit(
            old, out=scratch / f"{name}-yesterday-{seed}", progress=False)
        for label, epochs, start_from, folder in (
                ("full retrain", args.epochs, None, "retrain"),
                (f"warm start, {args.warm_epochs} epochs", args.warm_epochs, yesterday, "warm")):
            start = time.perf_counter()
            model = bert(args, epochs, seed).fit(
                new, out=scratch / f"{name}-{folder}-{seed}", progress=False,
                init_from=start_from)
            seconds = time.perf_counter() - start
            rows.append({**header, "model": label, "seed": seed, "seconds": round(seconds, 1),
                         **scored(model.evaluate(test=later))})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def fresh_rows(args: argparse.Namespace, scratch: Path) -> list[dict]:
    root = Path(os.environ["BERT4REC_DATA_DIR"])
    data = bert4rec.Dataset.from_source(str(root / "ml-1m" / "ml-1m.txt"), min_rating=None,
                                        min_user_interactions=0)
    model = bert4rec.Model("fast", epochs=1, device="cpu", threads=args.threads).fit(
        data, out=scratch / "ml-1m-fresh", progress=False)
    users = model.users
    rng = np.random.default_rng(0)
    items = model.items["item"].to_numpy()
    events = pl.DataFrame({"user": np.repeat(users, args.events),
                           "item": rng.choice(items, len(users) * args.events),
                           "timestamp": np.tile(np.arange(args.events), len(users))})
    times: dict[str, list[float]] = {"plain": [], "events": []}
    for _ in range(args.rounds):
        for label, extra in (("plain", {}), ("events", {"interactions": events})):
            start = time.perf_counter()
            frame = model.recommend(users=users, k=10, **extra)
            times[label].append(time.perf_counter() - start)
            assert frame.height == 10 * len(users)
    plain, fresh = (statistics.median(times[k]) for k in ("plain", "events"))
    row = {"data": "ml-1m.txt", "users": len(users), "events_per_user": args.events,
           "plain_s": round(plain, 2), "with_events_s": round(fresh, 2),
           "ratio": round(fresh / plain, 3), "rounds": times}
    print(json.dumps(row), flush=True)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["final", "warm", "fresh"])
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40, help="a full run's epochs")
    parser.add_argument("--warm-epochs", type=int, default=5)
    parser.add_argument("--events", type=int, default=10, help="new events per user (fresh)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (fresh)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, load_before = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bert4rec-lifecycle-") as scratch:
        if args.mode == "fresh":
            rows = fresh_rows(args, Path(scratch))
        else:
            make = final_rows if args.mode == "final" else warm_rows
            rows = [row for name in args.data for row in make(name, args, Path(scratch))]
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"started": started, "args": vars(args), "threads": torch.get_num_threads(),
              "machine": platform.platform(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "rows": rows}
    name = args.mode if args.mode == "fresh" else f"{args.mode}-{'-'.join(args.data)}"
    (OUT / f"lifecycle-{name}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
