"""The whole pipeline at ML-20M scale: prepare, train, validate, test, recommend to all, serve.

Runs on the synthetic ML-20M-shaped ratings.csv that `benchmarks/prepare.py` writes (138,493
users, 26,744 movies, 20M ratings), or on a real release with `--data DIR`. The synthetic data
has no sequential signal: every figure it gives is a cost (seconds, memory), never a quality.
Each stage runs in its own process, so its peak resident size (VmHWM) is its own:

- prepare: `bert4rec data prepare --no-cache` on the ratings;
- train PRESET: `--steps` optimiser steps (0: one whole epoch) of `fast`, `seed` (the founding
  document's recipe) and `large` (what `auto` picks for ML-20M); sequences/s, the share of
  time spent building batches (the data path), seconds per epoch (projected from the steps
  when not a whole epoch) and the resident size at each point of the start;
- the same steps again, each followed by a step of the same preset on ML-1M (ml-1m.txt in
  $BERT4REC_DATA_DIR) when present, in one process, for the throughput ratio at the same model
  shape under the same machine load;
- valid: one full-ranking validation over every user and over the 10,000-user sample
  (`loop.valid_users`); test: the test evaluation (always every user);
- recommend for every user: `Recommender.top_k` over every user's whole history, the
  scoring behind `bert4rec recommend --all-users` (the JSON says whether this checkout's
  command line has it; `benchmarks/recommend_all.py` times the command's other phases);
- serve: one `Recommender.recommend` call per history (1-50 random items) against the
  27k-item catalogue on one torch thread, as `bert4rec serve` scores, and a batch of 64.

Then it projects the founding 100-epoch recipe (`seed`), `fast` (40 epochs) and `large`
(80 epochs) to hours on this machine: epochs x (seconds per epoch + one sampled validation)
plus the test. It prints a table and writes benchmarks/out/scale.json.

    python benchmarks/scale.py [--steps fast=30,seed=10,large=10] [--presets fast,seed,large]
        [--test-presets fast] [--every-user-presets ...] [--all-users-users N] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SAMPLE = 10_000
SERVE_REQUESTS = 200


def status_mib(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak) of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise KeyError(field)


def sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def load(args: argparse.Namespace, source: str | None = None):
    """The corpus of `source` (default: the benchmark's data), prepared once and cached."""
    from bert4rec.data.cache import load_corpus

    return load_corpus(source or args.data, cache_dir=args.work_dir / "cache",
                       data_dir=os.environ.get("BERT4REC_DATA_DIR"))


def stage_train(args: argparse.Namespace) -> dict:
    """`args.steps_now` steps (0: a whole epoch) of `args.preset` after 3 warm-up steps."""
    import torch

    from bert4rec.config import preset
    from bert4rec.training.loop import TrainingRun
    from bert4rec.training.runtime import Runtime, pick_device

    rss = {"python + torch": status_mib("VmRSS")}
    corpus = load(args, args.source)
    rss["corpus loaded"] = status_mib("VmRSS")
    device = pick_device(args.device)
    settings = preset(args.preset).override({"loop.device": str(device)})
    started = time.perf_counter()
    run = TrainingRun(corpus, settings, Runtime(device), show_progress=False)
    setup_s = time.perf_counter() - started
    rss["model, optimiser, windows"] = status_mib("VmRSS")
    loader = run.loader
    loader.dataset.set_epoch(1)
    loader.batch_sampler.set_epoch(1, loader.dataset.lengths)
    per_epoch = len(loader)
    warmup = 3 if args.steps_now else 0  # a whole epoch is timed from its first step
    steps = min(args.steps_now, per_epoch - warmup) if args.steps_now else per_epoch
    batches, data_s, step_s, cpu_s, sequences, targets = iter(loader), 0.0, 0.0, 0.0, 0, 0
    for step in range(warmup + steps):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        inputs, labels = next(batches)
        t1 = time.perf_counter()
        run.step(inputs, labels)
        sync(device)
        if step >= warmup:
            data_s, step_s = data_s + t1 - t0, step_s + time.perf_counter() - t1
            cpu_s += time.process_time() - c0
            sequences, targets = sequences + len(inputs), targets + int((labels != 0).sum())
        if step == 2:
            rss["after 3 steps"] = status_mib("VmRSS")
    rss["after the timed steps"] = status_mib("VmRSS")
    seconds = data_s + step_s
    return {
        "data": corpus.name, "preset": args.preset, "device": str(device),
        "threads": torch.get_num_threads(), "windows": len(loader.dataset),
        "steps_per_epoch": per_epoch, "timed_steps": steps, "whole_epoch": steps == per_epoch,
        "setup_s": round(setup_s, 2), "sequences_per_s": round(sequences / seconds, 1),
        "data_path_share": round(data_s / seconds, 4),
        "data_path_sequences_per_s": round(sequences / data_s, 1),
        "targets_per_step": round(targets / steps, 1),
        "epoch_s": round(per_epoch * seconds / steps, 1),
        "epoch_cpu_s": round(per_epoch * cpu_s / steps, 1), "rss_mib": rss,
    }


def stage_paired(args: argparse.Namespace) -> dict:
    """Steps of `args.preset` on the benchmark's data and on `args.source` (ML-1M) in turn,
    one each, in one process: both see the same machine load, so their ratio holds on a
    shared machine where two runs minutes apart do not."""
    import torch

    from bert4rec.config import preset
    from bert4rec.training.loop import TrainingRun
    from bert4rec.training.runtime import Runtime, pick_device

    device = pick_device(args.device)
    settings = preset(args.preset).override({"loop.device": str(device)})
    if args.loss:
        settings = settings.override({"optim.loss": args.loss})
    runs = {name: TrainingRun(load(args, source), settings, Runtime(device), show_progress=False)
            for name, source in (("large", None), ("reference", args.source))}
    batches = {name: iter(run.loader) for name, run in runs.items()}
    totals = {name: {"data_s": 0.0, "step_s": 0.0, "sequences": 0, "targets": 0}
              for name in runs}
    for step in range(3 + args.steps_now):
        for name, run in runs.items():
            sync(device)
            t0 = time.perf_counter()
            inputs, labels = next(batches[name])
            t1 = time.perf_counter()
            run.step(inputs, labels)
            sync(device)
            if step >= 3:
                total = totals[name]
                total["data_s"] += t1 - t0
                total["step_s"] += time.perf_counter() - t1
                total["sequences"] += len(inputs)
                total["targets"] += int((labels != 0).sum())
    rates = {name: {"sequences_per_s": round(t["sequences"] / (t["data_s"] + t["step_s"]), 1),
                    "data_path_sequences_per_s": round(t["sequences"] / t["data_s"], 1),
                    "targets_per_step": round(t["targets"] / args.steps_now, 1),
                    "catalogue": runs[name].model.config.vocab_size - 2}
             for name, t in totals.items()}
    return {"preset": args.preset, "loss": settings.optim.loss, "steps": args.steps_now,
            "threads": torch.get_num_threads(), "this": rates["large"],
            "reference": rates["reference"],
            "sequences_ratio": round(rates["large"]["sequences_per_s"]
                                     / rates["reference"]["sequences_per_s"], 3),
            "data_path_ratio": round(rates["large"]["data_path_sequences_per_s"]
                                     / rates["reference"]["data_path_sequences_per_s"], 3)}


def untrained_model(args: argparse.Namespace, corpus):
    """A model of `args.preset`'s shape: ranking costs do not depend on the weights."""
    import torch

    from bert4rec.config import preset
    from bert4rec.model import BERT4Rec, BERT4RecConfig

    torch.manual_seed(0)
    shape = preset(args.preset).model
    return BERT4Rec(BERT4RecConfig.from_shape(shape, corpus.vocab_size)).eval()


def stage_rank(args: argparse.Namespace) -> dict:
    """One full-ranking evaluation of `args.split` over `args.users` users (0: every user)."""
    from bert4rec.config import preset
    from bert4rec.evaluation.validation import full_ranking
    from bert4rec.training.runtime import pick_device

    corpus = load(args)
    device = pick_device(args.device)
    model = untrained_model(args, corpus).to(device)
    loop = preset(args.preset).loop
    started, cpu = time.perf_counter(), time.process_time()
    report = full_ranking(model, corpus, args.split, device, batch_size=loop.eval_batch_size,
                          users=args.users, users_seed=loop.seed)
    seconds = time.perf_counter() - started
    return {"preset": args.preset, "split": args.split, "users": report["users"],
            "seconds": round(seconds, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "users_per_s": round(report["users"] / seconds, 1)}


def stage_all_users(args: argparse.Namespace) -> dict:
    """The top 10 for every user from their whole history, through `Recommender.top_k`
    (`args.users` > 0: for the first that many, projected to every user)."""
    import numpy as np

    from bert4rec.inference.recommender import Recommender

    corpus = load(args)
    rec = Recommender(untrained_model(args, corpus), corpus.item_table)
    users = min(args.users or corpus.n_users, corpus.n_users)
    offsets = corpus.offsets[: users + 1]
    started, cpu = time.perf_counter(), time.process_time()
    items, _ = rec.top_k(corpus.items_flat, offsets, 10)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert items.shape == (users, 10) and (items > 0).all()
    scale = corpus.n_users / users  # projected to every user when only the first ran
    cli = subprocess.run([sys.executable, "-m", "bert4rec", "recommend", "--help"],
                         capture_output=True, text=True).stdout
    return {"preset": args.preset, "how": "Recommender.top_k",
            "cli_has_all_users": "--all-users" in cli, "users": corpus.n_users,
            "users_timed": users, "seconds": round(seconds * scale, 1),
            "cpu_s": round(cpu * scale, 1), "users_per_s": round(users / seconds, 1),
            "distinct_top1": len(np.unique(items[:, 0]))}


def stage_serve(args: argparse.Namespace) -> dict:
    """Latency of one `recommend` per history on one thread, and of a batch of 64."""
    import numpy as np
    import torch

    from bert4rec.inference.recommender import Recommender

    torch.set_num_threads(1)  # as `bert4rec serve` (BERT4REC_SERVE_TORCH_THREADS=1)
    corpus = load(args)
    rec = Recommender(untrained_model(args, corpus), corpus.item_table)
    rng = np.random.default_rng(0)
    ids = rec.item_ids
    histories = [[ids[i] for i in rng.integers(0, len(ids), size=rng.integers(1, 51))]
                 for _ in range(SERVE_REQUESTS)]
    rec.recommend(histories[0])  # warm-up
    single, cpu = [], time.process_time()
    for history in histories:
        started = time.perf_counter()
        rec.recommend(history, k=10)
        single.append(1000 * (time.perf_counter() - started))
    cpu_ms = 1000 * (time.process_time() - cpu) / len(histories)
    batch = []
    for start in range(0, SERVE_REQUESTS, 64):
        started = time.perf_counter()
        rec.recommend_many(histories[start : start + 64], k=10)
        batch.append(1000 * (time.perf_counter() - started) / len(histories[start:start + 64]))
    return {"preset": args.preset, "catalogue": rec.n_items, "requests": SERVE_REQUESTS,
            "p50_ms": round(float(np.percentile(single, 50)), 2),
            "p99_ms": round(float(np.percentile(single, 99)), 2), "cpu_ms": round(cpu_ms, 2),
            "batched_ms_per_history": round(float(np.median(batch)), 2)}


STAGES = {"train": stage_train, "paired": stage_paired, "rank": stage_rank,
          "all-users": stage_all_users, "serve": stage_serve}


def child(args: argparse.Namespace) -> None:
    """Run one stage in this process and print its JSON with the peak resident size (and the
    peak CUDA allocation where the stage used a GPU)."""
    started = time.perf_counter()
    result = STAGES[args.stage](args)
    result.update(wall_s=round(time.perf_counter() - started, 1), peak_mib=status_mib("VmHWM"))
    import torch

    if torch.cuda.is_initialized():
        result["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result))


def spawn(args: argparse.Namespace, stage: str, **options: object) -> dict:
    """Run `stage` in a fresh process; its last stdout line is the stage's JSON."""
    command = [sys.executable, __file__, "--stage", stage, "--data", args.data,
               "--work-dir", str(args.work_dir), "--device", args.device]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    print(f"[{time.strftime('%H:%M:%S')}] {stage} {options}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"    {json.dumps(result)}", flush=True)
    return result


def prepare_stage(args: argparse.Namespace) -> dict:
    """Write the synthetic ratings once (when no `--data` is given), then time the preparation
    as `benchmarks/prepare.py` does."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from prepare import measure, synthesize

    ratings = args.work_dir / "ml-20m-synthetic" / "ratings.csv"
    if args.data == str(ratings.parent) and not ratings.is_file():
        print(f"writing {ratings} (once) ...", flush=True)
        synthesize(ratings)
    result = measure([sys.executable, "-m", "bert4rec", "data", "prepare", "--no-cache",
                      "--json", args.data])
    print(f"    prepare: {json.dumps(result)}", flush=True)
    return result


def projections(report: dict) -> dict:
    """Hours for a whole run of each preset: epochs x (epoch + a validation of the sample)
    plus one test evaluation, from the measured wall seconds (as loaded as the machine was)
    and from the CPU seconds spread over the threads (what an idle machine would approach)."""
    from bert4rec.config import preset

    hours = {}
    for name, train in report["train"].items():
        valid = report["valid"].get(name, {}).get("sample")
        test = report["test"].get(name)
        if valid is None or test is None:
            continue
        epochs = preset(name).loop.epochs
        seconds = epochs * (train["epoch_s"] + valid["seconds"]) + test["seconds"]
        cpu = epochs * (train["epoch_cpu_s"] + valid["cpu_s"]) + test["cpu_s"]
        hours[name] = {"epochs": epochs, "epoch_s": train["epoch_s"],
                       "validation_s": valid["seconds"], "test_s": test["seconds"],
                       "hours": round(seconds / 3600, 1),
                       "cpu_hours_per_core": round(cpu / 3600 / train["threads"], 1)}
    return hours


def table(report: dict) -> str:
    """The report as a plain-text table, one stage per line."""
    lines = [f"{'stage':<42} {'seconds':>9} {'rate':>22} {'peak RSS':>10}"]
    prep = report.get("prepare")
    if prep:
        lines.append(f"{'prepare (bert4rec data prepare)':<42} {prep['wall_s']:>9.1f} "
                     f"{'':>22} {prep['peak_mib']:>7.0f} MiB")
    for name, row in report["train"].items():
        epoch = "epoch" if row["whole_epoch"] else "epoch, projected"
        lines.append(f"{'train ' + name + ' (' + epoch + ')':<42} {row['epoch_s']:>9.1f} "
                     f"{row['sequences_per_s']:>14.1f} seq/s {row['peak_mib']:>7.0f} MiB")
    for name, rows in report["valid"].items():
        for which, row in rows.items():
            label = f"valid {name} ({which}: {row['users']:,} users)"
            lines.append(f"{label:<42} {row['seconds']:>9.1f} {row['users_per_s']:>13.1f} "
                         f"user/s {row['peak_mib']:>7.0f} MiB")
    for name, row in report["test"].items():
        lines.append(f"{'test ' + name + ' (' + format(row['users'], ',') + ' users)':<42} "
                     f"{row['seconds']:>9.1f} {row['users_per_s']:>13.1f} user/s "
                     f"{row['peak_mib']:>7.0f} MiB")
    for name, row in report["all_users"].items():
        lines.append(f"{'top 10 for every user, ' + name:<42} {row['seconds']:>9.1f} "
                     f"{row['users_per_s']:>13.1f} user/s {row['peak_mib']:>7.0f} MiB")
    for name, row in report["serve"].items():
        lines.append(f"{'serve ' + name + ', one history, p50 / p99':<42} "
                     f"{row['p50_ms']:>5.1f} / {row['p99_ms']:.1f} ms "
                     f"(batched {row['batched_ms_per_history']:.2f} ms each) "
                     f"{row['peak_mib']:>5.0f} MiB")
    for name, row in report["projected"].items():
        lines.append(f"projected {name}: {row['epochs']} x ({row['epoch_s']:.0f} s + "
                     f"{row['validation_s']:.0f} s) + {row['test_s']:.0f} s = "
                     f"{row['hours']} h wall; CPU time / threads: "
                     f"{row['cpu_hours_per_core']} h")
    for name, row in report["paired_ml1m"].items():
        lines.append(f"{name}, steps in turn with ML-1M: training sequences/s "
                     f"{row['this']['sequences_per_s']} against "
                     f"{row['reference']['sequences_per_s']} ({row['sequences_ratio']:.0%}); "
                     f"the data path alone "
                     f"{row['data_path_ratio']:.0%}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="folder or file of a release (default: the synthetic ratings)")
    parser.add_argument("--work-dir", type=Path, default=OUT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", default="fast,seed,large")
    parser.add_argument("--steps", default="fast=30,seed=10,large=10",
                        help="timed training steps per preset, PRESET=N,... or one N for all "
                        "(0: one whole epoch)")
    parser.add_argument("--test-presets", default="fast",
                        help="presets whose test evaluation runs (over every user); the others "
                        "project it from their validation sample")
    parser.add_argument("--every-user-presets", default="",
                        help="presets whose validation also runs over every user (it costs "
                        "what the test does: the same users)")
    parser.add_argument("--all-users-users", type=int, default=0,
                        help="recommend for the first N users only, and project (0: all)")
    parser.add_argument("--skip", default="", help="comma-separated: prepare, ml1m, all-users")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--source", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--split", default="valid", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--steps-now", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--loss", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data or str(args.work_dir / "ml-20m-synthetic")
    if args.stage:
        child(args)
        return 0
    skip = set(filter(None, args.skip.split(",")))
    presets = args.presets.split(",")
    steps = ({name: int(args.steps) for name in presets} if args.steps.isdigit() else
             {k: int(v) for k, v in (pair.split("=") for pair in args.steps.split(","))})
    report: dict = {"data": args.data, "steps": args.steps, "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "loadavg_start": os.getloadavg()}, "train": {}, "paired_ml1m": {}, "valid": {},
        "test": {}, "all_users": {}, "serve": {}}
    if "prepare" not in skip:
        report["prepare"] = prepare_stage(args)
    ml1m = Path(os.environ.get("BERT4REC_DATA_DIR", "")) / "ml-1m" / "ml-1m.txt"
    for name in presets:
        report["train"][name] = spawn(args, "train", preset=name, steps_now=steps[name])
        if "ml1m" not in skip and ml1m.is_file():
            report["paired_ml1m"][name] = spawn(args, "paired", preset=name,
                                                steps_now=steps[name], source=ml1m)
            if name == "fast":  # without the full softmax, whose cost grows with the catalogue
                report["paired_ml1m"]["fast, uniform loss"] = spawn(
                    args, "paired", preset=name, steps_now=steps[name], source=ml1m,
                    loss="uniform")
        report["valid"][name] = {"sample": spawn(args, "rank", preset=name, users=SAMPLE)}
        if name in args.every_user_presets.split(","):
            report["valid"][name]["every"] = spawn(args, "rank", preset=name, users=0)
        if name in args.test_presets.split(","):
            report["test"][name] = spawn(args, "rank", preset=name, split="test", users=0)
        else:  # test costs what a validation of every user costs: project it from the sample
            sample = report["valid"][name]["sample"]
            users = int((load(args).lengths >= 3).sum())
            scale = users / sample["users"]
            report["test"][name] = {**sample, "split": "test", "users": users,
                                    "seconds": round(sample["seconds"] * scale, 1),
                                    "cpu_s": round(sample["cpu_s"] * scale, 1),
                                    "projected": True}
    if "all-users" not in skip:
        report["all_users"]["fast"] = spawn(args, "all-users", preset="fast",
                                            users=args.all_users_users)
    report["serve"]["fast"] = spawn(args, "serve", preset="fast")
    report["projected"] = projections(report)
    report["machine"]["loadavg_end"] = os.getloadavg()
    print(table(report))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    path = args.work_dir / "scale.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
