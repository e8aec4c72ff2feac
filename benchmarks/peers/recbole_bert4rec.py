"""RecBole's BERT4Rec beside ours: same sequences, same model and batch shape, one machine, one run.

Shape (both sides): hidden 64, 2 layers, 2 heads, max length 200, batch 256, mask rate 0.2 (all
[MASK]), full softmax cross-entropy. RecBole trains on every prefix of every sequence, so its
"epoch" is not ours; the comparison is (a) training throughput in sequences/s and masked
targets/s at that identical batch shape, and (b) full-ranking test NDCG@10 reached by each
within the same wall-clock budget. Runs alternate (RecBole, ours, RecBole, ours ...).

RecBole 1.2.1 is installed from PyPI into its own virtual environment (benchmarks/out/), with
torch==2.13.0 kept and numpy < 2 (RecBole 1.2.1 still uses `np.float_`).

    nice python benchmarks/peers/recbole_bert4rec.py --data ml-100k --budget 900
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from bert4rec.cli.allocator import TRAINING_CONF, restart_under_jemalloc
from bert4rec.config import (
    LoopSettings,
    MaskingSettings,
    ModelSettings,
    OptimSettings,
    Settings,
    preset,
)
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.training.loop import TrainingRun, fit
from bert4rec.training.runtime import Runtime

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for its shared helpers
from overrides import parse_overrides  # noqa: E402

OUT = HERE.parent / "out"
VENV = OUT / "recbole-venv"
RECBOLE_REQUIREMENTS = ["torch==2.13.0", "recbole==1.2.1", "numpy<2", "scipy<1.14", "pandas<2.3"]

SHAPE = Settings(
    model=ModelSettings(max_len=200, hidden=64, layers=2, heads=2, dropout=0.2,
                        attention_dropout=0.2),
    masking=MaskingSettings(mask_prob=0.2, mask_token_share=1.0, random_token_share=0.0),
    optim=OptimSettings(optimizer="adam", lr=1e-3, schedule="constant"),
    loop=LoopSettings(batch_size=256, device="cpu"),
)
"""The shared shape; learning rate 0.001 and Adam are RecBole's defaults."""

RECIPE = {
    "model.dropout": 0.0, "model.attention_dropout": 0.0, "masking.last_item_share": 0.2,
    "optim.optimizer": "adamw", "optim.lr": 2e-3, "optim.weight_decay": 0.01,
    "optim.schedule": "warmup_linear", "optim.warmup_fraction": 0.02, "optim.clip_norm": 5.0,
}
"""`--recipe shape`: the shared shape (batch 256, mask rate 0.2) with our optimiser choices."""


def budget_settings(recipe: str, budget: float, epochs: int, changes: list[str]) -> Settings:
    """`shape`: the shared shape with RECIPE; `fast`: the `fast` preset on the same model
    (hidden 64, 2 layers, 2 heads, max length 200) with its own batch size and mask rate;
    then the `--set` changes."""
    run = {"loop.time_budget": budget, "loop.epochs": epochs, "loop.device": "cpu"}
    if recipe == "shape":
        base = SHAPE.override(RECIPE)
    else:
        base = preset("fast").override({"model.max_len": SHAPE.model.max_len})
    return base.override({**run, **parse_overrides(changes)})


def recbole_python() -> Path:
    """The venv's interpreter, creating the venv and installing RecBole on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *RECBOLE_REQUIREMENTS],
                       check=True)
    return python


def write_atomic_files(corpus: SequenceCorpus, folder: Path) -> None:
    """RecBole's .inter file of the corpus: user, item, and the position in time as timestamp."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(corpus.n_users):
        for position, item in enumerate(corpus.sequence(user)):
            lines.append(f"{user + 1}\t{int(item)}\t{position}")
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")


def run_recbole(mode: str, data_path: Path, name: str, args: argparse.Namespace) -> dict:
    command = [
        str(recbole_python()), str(HERE / "_recbole_driver.py"), "--data-path", str(data_path),
        "--dataset", name, "--work-dir", str(OUT / "recbole-work"), "--mode", mode,
        "--steps", str(args.steps), "--budget", str(args.budget), "--threads", str(args.threads),
        "--attention-dropout", str(args.attention_dropout),
    ]
    work = OUT / "recbole-work"
    work.mkdir(parents=True, exist_ok=True)  # RecBole writes its logs into the working directory
    result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=work)
    return json.loads(result.stdout.strip().splitlines()[-1])


def ours_throughput(corpus: SequenceCorpus, steps: int, attention_dropout: float,
                    dropout_on: str = "weights", warmup: int = 3) -> dict:
    """Sequences/s and masked targets/s of our training step at the shared batch shape, with
    attention dropout on `dropout_on` (weights, as RecBole's, or keys: model.py)."""
    shape = SHAPE.override({"model.attention_dropout": attention_dropout,
                            "model.attention_dropout_on": dropout_on})
    run = TrainingRun(corpus, shape, Runtime(torch.device("cpu")), show_progress=False)
    batches, sequences, targets = iter(run.loader), 0, 0
    for step in range(warmup + steps):
        try:
            inputs, labels = next(batches)
        except StopIteration:
            batches = iter(run.loader)
            inputs, labels = next(batches)
        if step == warmup:
            start = time.perf_counter()
        run.step(inputs, labels)
        if step >= warmup:
            sequences += len(inputs)
            targets += int((labels != 0).sum())
    seconds = time.perf_counter() - start
    return {"peer": "bert4rec", "mode": "throughput", "attention_dropout_on": dropout_on,
            "steps": steps, "seconds": seconds,
            "sequences_per_s": sequences / seconds, "targets_per_s": targets / seconds}


def ours_budget(corpus: SequenceCorpus, settings: Settings, recipe: str) -> dict:
    """Train ours within `settings.loop.time_budget` seconds (the linear schedule spans
    `settings.loop.epochs`, chosen to end near the budget) and report full-ranking test
    NDCG@10 and this process's peak resident memory (RecBole runs in a child process)."""
    start = time.perf_counter()
    shutil.rmtree(OUT / "peers-ours-run", ignore_errors=True)  # a benchmark starts afresh
    result = fit(corpus, settings, OUT / "peers-ours-run", progress=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"peer": "bert4rec", "mode": "budget", "recipe": recipe,
            "train_seconds": time.perf_counter() - start, "epochs_run": len(result.history),
            "best_epoch": result.best_epoch, "test_NDCG@10": result.test["NDCG@10"],
            "test_HR@10": result.test["HR@10"], "peak_rss_mib": round(peak_mib)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-100k", choices=["ml-100k", "ml-1m"])
    parser.add_argument("--data-dir", default=os.environ.get("BERT4REC_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput rounds")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per budget run")
    parser.add_argument("--epochs", type=int, default=120,
                        help="our schedule's length in epochs for the budget run")
    parser.add_argument("--skip-budget", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-recbole-budget", action="store_true",
                        help="train only ours in the budget part")
    parser.add_argument("--recipe", default="shape", choices=["shape", "fast"],
                        help="ours in the budget part: the shared shape with our optimiser "
                        "choices, or the fast preset on the same model")
    parser.add_argument("--set", nargs="*", default=[],
                        help="SECTION.FIELD=VALUE changes to ours in the budget part")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention-dropout", type=float, default=0.2,
                        help="attention dropout on both sides for the throughput rows")
    parser.add_argument("--attention-dropout-on", default="keys", choices=["weights", "keys"],
                        help="what our attention dropout drops in the throughput rows: keys "
                        "(our default, model.attention_dropout_on) or probabilities, as RecBole's")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("pass --data-dir or set BERT4REC_DATA_DIR")
    restart_under_jemalloc(TRAINING_CONF)  # as `bert4rec train` does (allocator.py)
    torch.set_num_threads(args.threads)
    source = Path(args.data_dir) / ("ml-1m/ml-1m.txt" if args.data == "ml-1m" else "ml-100k")
    filters = PrepareSettings(min_rating=None, min_user_interactions=0)
    corpus = load_corpus(source, filters)
    atomic = OUT / "recbole-data" / args.data
    write_atomic_files(corpus, atomic)
    rows = []
    for _ in range(0 if args.skip_throughput else args.rounds):
        rows.append(run_recbole("throughput", atomic.parent, args.data, args))
        rows.append(ours_throughput(corpus, args.steps, args.attention_dropout,
                                    args.attention_dropout_on))
        print(json.dumps(rows[-2]), json.dumps(rows[-1]), sep="\n", flush=True)
    if not args.skip_budget:
        if not args.skip_recbole_budget:
            rows.append(run_recbole("budget", atomic.parent, args.data, args))
            print(json.dumps(rows[-1]), flush=True)
        settings = budget_settings(args.recipe, args.budget, args.epochs, args.set)
        rows.append(ours_budget(corpus, settings, args.recipe))
        print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    mode = (f"budget_{args.recipe}" if args.skip_throughput
            else f"attn{args.attention_dropout}_{args.attention_dropout_on}")
    path = OUT / f"peers_recbole_{args.data}_{mode}.json"
    path.write_text(json.dumps({"data": args.data, "corpus": corpus.statistics(),
                                "threads": args.threads,
                                "malloc": os.environ.get("BERT4REC_MALLOC", "system"),
                                "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
