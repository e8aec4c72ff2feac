"""Runs RecBole's BERT4Rec inside RecBole's own virtual environment; prints one JSON line.

Not imported by bert4rec: `recbole_bert4rec.py` runs it with the venv's interpreter. Modes:
`throughput` times a fixed number of training steps; `budget` trains for a wall-clock budget
(stopping mid-epoch if need be) and then runs RecBole's full-ranking test evaluation.
"""

import argparse
import contextlib
import json
import logging
import time

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import BERT4Rec
from recbole.trainer import Trainer
from recbole.utils import init_seed


class Stop(Exception):
    """Raised from inside the training step to end training at a step count or time budget."""


def config_for(args: argparse.Namespace) -> Config:
    settings = {
        "data_path": args.data_path,
        "dataset": args.dataset,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "hidden_size": 64,
        "inner_size": 256,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dropout_prob": 0.2,
        "attn_dropout_prob": 0.2,
        "MAX_ITEM_LIST_LENGTH": 200,
        "mask_ratio": 0.2,
        "loss_type": "CE",
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "learning_rate": 0.001,
        "epochs": 1000,
        "train_neg_sample_args": None,
        "show_progress": False,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "device": "cpu",
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "checkpoint_dir": args.work_dir,
        "log_wandb": False,
        "eval_step": 10**9,
    }
    return Config(model="BERT4Rec", config_dict=settings)


def instrument(model: BERT4Rec, args: argparse.Namespace, counters: dict) -> None:
    """Count sequences and masked targets per step, and stop at the step or time limit."""
    original = model.calculate_loss

    def calculate_loss(interaction):
        if counters["steps"] == args.warmup_steps:
            counters["t0"] = time.perf_counter()
            counters["sequences"] = counters["targets"] = 0
        elapsed = time.perf_counter() - counters["start"]
        if (args.mode == "throughput" and counters["steps"] >= args.warmup_steps + args.steps) or (
            args.mode == "budget" and elapsed >= args.budget
        ):
            counters["t1"] = time.perf_counter()
            raise Stop
        loss = original(interaction)
        counters["steps"] += 1
        counters["sequences"] += len(interaction)
        counters["targets"] += int((interaction[model.POS_ITEMS] > 0).sum())
        return loss

    model.calculate_loss = calculate_loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--mode", choices=["throughput", "budget"], required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attention-dropout", type=float, default=0.2)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import torch

    torch.set_num_threads(args.threads)
    config = config_for(args)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid, test_data = data_preparation(config, dataset)
    model = BERT4Rec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    counters = {"steps": 0, "sequences": 0, "targets": 0, "start": time.perf_counter()}
    counters["t0"] = counters["start"]
    instrument(model, args, counters)
    with contextlib.suppress(Stop):
        trainer.fit(train_data, valid_data=None, saved=False, show_progress=False)
    seconds = counters.get("t1", time.perf_counter()) - counters["t0"]
    result = {
        "peer": "recbole",
        "mode": args.mode,
        "train_samples_per_epoch": len(train_data.dataset),
        "steps": counters["steps"],
        "seconds": seconds,
        "sequences_per_s": counters["sequences"] / seconds,
        "targets_per_s": counters["targets"] / seconds,
    }
    if args.mode == "budget":
        result["train_seconds"] = time.perf_counter() - counters["start"]
        scores = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        result["test_NDCG@10"] = float(scores["ndcg@10"])
        result["test_HR@10"] = float(scores["hit@10"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
