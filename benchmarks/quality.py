"""Quality beside the baselines: BERT4Rec's presets over several seeds, popular, markov and
itemknn on the same split, one table per data set.

Data: ml-latest-small (ratings >= 4), ML-100k (every rating), Amazon Beauty (the S3-Rec file,
`amazon-beauty/Beauty.txt`, with the item attributes of `Beauty_item2attributes.json`) and
ML-1M (`ml-1m/ml-1m.txt`), found in --data-dir or $BERT4REC_DATA_DIR. Leave-one-out by time,
the epoch chosen on validation; every figure is full ranking with the user's viewed items
filtered. Each training run is a process of its own, so
its peak resident memory (VmHWM) is its own; `--jobs 2` runs two at a time (one thread each:
the seconds then count a shared machine). On ml-latest-small each run also answers the
founding document's Harry Potter query: how many of the four later films, and how many
Adventure or Fantasy films, are in its top 10.

    BERT4REC_DATA_DIR=DIR nice python benchmarks/quality.py \\
        [--data ml-latest-small ml-100k beauty ml-1m] [--presets auto] [--seeds 0 1 2] \\
        [--threads 2] [--jobs 1] [--set section.field=value ...]

Prints a table per data set and writes benchmarks/out/quality.json (rewritten after every
run, so an interrupted benchmark keeps what finished).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
DATASETS = {  # name: (path under the data folder, prepare settings beyond the defaults)
    "ml-latest-small": ("ml-latest-small", {}),
    "ml-100k": ("ml-100k", {"min_rating": None}),
    "beauty": ("amazon-beauty/Beauty.txt", {}),
    "ml-1m": ("ml-1m/ml-1m.txt", {"min_rating": None, "min_user_interactions": 0}),
}
ITEM_TABLES = {"beauty": "amazon-beauty/Beauty_item2attributes.json"}  # the S3-Rec attributes
BASELINES = ("popular", "markov", "itemknn")
LATER_HARRY_POTTER = {
    "Harry Potter and the Order of the Phoenix (2007)",
    "Harry Potter and the Half-Blood Prince (2009)",
    "Harry Potter and the Deathly Hallows: Part 1 (2010)",
    "Harry Potter and the Deathly Hallows: Part 2 (2011)",
}


def load(name: str, data_dir: str):
    """The prepared corpus of one data set, and the record a run directory keeps of it."""
    from bert4rec.data.cache import load_corpus
    from bert4rec.data.corpus import PrepareSettings
    from bert4rec.data.features import read_item_table

    path, changes = DATASETS[name]
    settings = PrepareSettings(**changes)
    source = Path(data_dir) / path
    corpus = load_corpus(source, settings)
    if name in ITEM_TABLES:
        corpus = corpus.with_items(read_item_table(Path(data_dir) / ITEM_TABLES[name]), name)
    return corpus, {"source": str(source), **changes}


def figures(report: dict) -> dict:
    return {"NDCG@10": report["NDCG@10"], "HR@10": report["HR@10"]}


def baselines(name: str, data_dir: str) -> dict:
    """Each baseline fitted on the training part, scored on valid and test, with its seconds."""
    from bert4rec.evaluation.baselines import fit_baseline
    from bert4rec.evaluation.protocols import evaluate

    corpus, _ = load(name, data_dir)
    rows = {}
    for baseline in BASELINES:
        start = time.perf_counter()
        scorer = fit_baseline(baseline, corpus)
        rows[baseline] = {"valid": figures(evaluate(scorer, corpus, "valid").to_dict()),
                          "test": figures(evaluate(scorer, corpus, "test").to_dict()),
                          "seconds": round(time.perf_counter() - start, 1)}
    return {"users": corpus.n_users, "items": corpus.n_items,
            "interactions": corpus.n_interactions, "baselines": rows}


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def harry_potter(run_dir: Path) -> dict:
    """The run's top 10 after the first four films: later films, Adventure/Fantasy, titles."""
    from bert4rec.cli.use import FOUNDING_QUERY
    from bert4rec.inference.recommender import Recommender

    result = Recommender.load(run_dir).recommend(FOUNDING_QUERY, k=10)
    return {"later_films": sum(r.title in LATER_HARRY_POTTER for r in result),
            "adventure_or_fantasy": sum(bool({"Adventure", "Fantasy"} & set(r.genres))
                                        for r in result),
            "titles": [r.title for r in result]}


def child(args: argparse.Namespace) -> None:
    """One training run in this process; prints one JSON line."""
    import torch
    from overrides import parse_overrides

    from bert4rec.config import auto_choice, preset
    from bert4rec.training.loop import fit

    torch.set_num_threads(args.threads)
    corpus, data = load(args.child, args.data_dir)
    auto = args.preset == "auto"
    name, why = (auto_choice(corpus.n_interactions, corpus.n_users, corpus.n_items) if auto
                 else (args.preset, "named"))
    settings = preset(name).override({**parse_overrides(args.set), "loop.seed": args.seed,
                                      "loop.device": "cpu"})
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        start = time.perf_counter()
        result = fit(corpus, settings, run_dir, data=data, progress=False)
        seconds = time.perf_counter() - start
        row = {"preset": args.preset, "chose": name, "why": why, "seed": args.seed,
               "best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "valid": figures(result.valid), "test": figures(result.test),
               "seconds": round(seconds, 1), "peak_mib": peak_mib()}
        if args.child == "ml-latest-small":
            row["harry_potter"] = harry_potter(run_dir)
    print(json.dumps(row), flush=True)


def run_child(args: argparse.Namespace, data: str, preset: str, seed: int) -> dict:
    """`child` in a process of its own; its JSON line."""
    command = [sys.executable, __file__, "--child", data, "--preset", preset, "--seed",
               str(seed), "--threads", str(args.threads), "--data-dir", args.data_dir,
               "--set", *args.set]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{data} {preset} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    """Mean and spread (sample standard deviation) of each figure over the seeds."""
    out = {}
    for split in ("valid", "test"):
        for metric in ("NDCG@10", "HR@10"):
            values = [r[split][metric] for r in runs]
            out[f"{split}_{metric}"] = {
                "mean": round(statistics.mean(values), 4),
                "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
    for key in ("seconds", "peak_mib"):
        out[key] = round(statistics.mean(r[key] for r in runs), 1)
    return out


def table(name: str, entry: dict) -> str:
    """Markdown: BERT4Rec's presets (mean ± sd over seeds) then the baselines."""
    lines = [f"{name}: {entry['users']:,} users, {entry['items']:,} items, "
             f"{entry['interactions']:,} interactions",
             "| model | test NDCG@10 | test HR@10 | valid NDCG@10 | seconds | peak MiB |",
             "| --- | --- | --- | --- | --- | --- |"]
    for preset, block in entry.get("bert4rec", {}).items():
        s, runs = block["summary"], block["runs"]
        chose = sorted({r["chose"] for r in runs})
        label = f"BERT4Rec `{preset}`" + (f" ({', '.join(chose)})" if preset == "auto" else "")
        lines.append(
            f"| {label}, {len(runs)} seeds | {s['test_NDCG@10']['mean']:.4f} ± "
            f"{s['test_NDCG@10']['sd']:.4f} | {s['test_HR@10']['mean']:.4f} | "
            f"{s['valid_NDCG@10']['mean']:.4f} | {s['seconds']:.0f} | {s['peak_mib']:.0f} |")
    for baseline, row in entry["baselines"].items():
        lines.append(f"| {baseline} | {row['test']['NDCG@10']:.4f} | {row['test']['HR@10']:.4f} "
                     f"| {row['valid']['NDCG@10']:.4f} | {row['seconds']:.0f} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--data", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--presets", nargs="+", default=["auto"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--set", nargs="*", default=[], help="section.field=value changes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    if args.child:
        child(args)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"threads": args.threads, "jobs": args.jobs, "set": args.set,
              "machine": platform.platform(), "cpus": os.cpu_count(), "results": {}}
    for name in args.data:
        entry = report["results"][name] = baselines(name, args.data_dir)
        jobs = [(preset, seed) for preset in args.presets for seed in args.seeds]
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda job, data=name: run_child(args, data, *job), jobs))
        for preset in args.presets:
            runs = [r for r in rows if r["preset"] == preset]
            entry.setdefault("bert4rec", {})[preset] = {"runs": runs, "summary": summary(runs)}
            for run in runs:
                print(json.dumps({"data": name, **run}), flush=True)
        (OUT / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
        print("\n" + table(name, entry) + "\n", flush=True)
    print(f"wrote {OUT / 'quality.json'}")


if __name__ == "__main__":
    main()
