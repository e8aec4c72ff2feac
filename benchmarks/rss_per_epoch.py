"""Resident memory after every epoch of a training run, under glibc's malloc and under jemalloc.

Runs `fit` (training, validation each epoch, test at the end) once per allocator, each in its
own process, one after the other, and prints the resident size (VmRSS) after each epoch, the
peak (VmHWM), the seconds per epoch and test NDCG@10. "flat" compares the resident size
after epoch 5 with the one after the last epoch (the target: within 10%).

    nice python benchmarks/rss_per_epoch.py ml-100k --preset fast --epochs 25 \
        --set model.max_len=200 [--threads 1] [--allocators system,jemalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def status_mib(field: str) -> float:
    """A `VmRSS`/`VmHWM`-style line of /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(args: argparse.Namespace) -> None:
    """One training run under this process's allocator; prints one JSON line at the end."""
    from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc

    if os.environ.get("BERT4REC_MALLOC") != "system":
        restart_under_jemalloc(TRAINING_CONF)
    import torch
    from overrides import parse_overrides

    from bert4rec.config import preset
    from bert4rec.data.cache import load_corpus
    from bert4rec.training.loop import fit

    torch.set_num_threads(args.threads)
    corpus = load_corpus(args.data, data_dir=os.environ.get("BERT4REC_DATA_DIR"))
    settings = preset(args.preset).override(
        {"loop.epochs": args.epochs, "loop.device": "cpu", **parse_overrides(args.set)})
    epochs: list[dict[str, float]] = []
    last = [time.perf_counter()]

    def record(model, row: dict[str, float]) -> None:
        now = time.perf_counter()
        epochs.append({"epoch": row["epoch"], "rss_mib": round(status_mib("VmRSS"), 1),
                       "seconds": round(now - last[0], 2)})
        last[0] = now

    with tempfile.TemporaryDirectory() as out:
        result = fit(corpus, settings, Path(out) / "run", progress=False, callback=record)
    print(json.dumps({
        "allocator": os.environ.get("BERT4REC_MALLOC", "jemalloc"),
        "ld_preload": os.environ.get("LD_PRELOAD", ""), "epochs": epochs,
        "peak_mib": round(status_mib("VmHWM"), 1),
        "test_ndcg10": result.test["NDCG@10"] if result.test else None,
    }))


def summary(run: dict) -> dict:
    """RSS after epoch 5 and after the last, their ratio and the median epoch seconds."""
    rss = [e["rss_mib"] for e in run["epochs"]]
    fifth = rss[min(4, len(rss) - 1)]
    seconds = sorted(e["seconds"] for e in run["epochs"])
    return {"after_5": fifth, "after_last": rss[-1], "growth": round(rss[-1] / fifth - 1, 4),
            "median_epoch_s": seconds[len(seconds) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a data set name or path (as for `bert4rec train`)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--allocators", default="system,jemalloc")
    parser.add_argument("--label", default="", help="a name for this run in the JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    runs = []
    for allocator in args.allocators.split(","):
        env = {k: v for k, v in os.environ.items() if k != "BERT4REC_MALLOC"}
        if allocator == "system":
            env["BERT4REC_MALLOC"] = "system"
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        run = json.loads(done.stdout.strip().splitlines()[-1])
        run["summary"] = summary(run)
        runs.append(run)
        line = " ".join(f"{e['rss_mib']:.0f}" for e in run["epochs"])
        print(f"{run['allocator']:>8}: RSS per epoch (MiB) {line}")
        print(f"{'':>8}  {json.dumps(run['summary'])}, peak {run['peak_mib']:.0f} MiB, "
              f"test NDCG@10 {run['test_ndcg10']:.4f}")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"rss_per_epoch{'-' + args.label if args.label else ''}.json"
    (OUT / name).write_text(json.dumps({"argv": sys.argv[1:], "runs": runs}, indent=2) + "\n")
    print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
