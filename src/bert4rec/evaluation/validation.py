"""How a training run chooses its epoch and scores its result: full ranking with viewed items
filtered (`protocols.FULL`), on the valid split each epoch (every user, or a fixed sample of
`loop.valid_users` of them on large logs) and on every user of the test split at the end."""

from __future__ import annotations

from typing import Any

import torch

from bert4rec.config import EVAL_BATCH_SIZE, LoopSettings
from bert4rec.data.corpus import SequenceCorpus
from bert4rec.evaluation.protocols import FULL, evaluate, model_scorer


def full_ranking(model: torch.nn.Module, corpus: SequenceCorpus, split: str,
                 device: torch.device | str, *, batch_size: int = EVAL_BATCH_SIZE,
                 users: int = 0, users_seed: int = 0) -> dict[str, Any]:
    """Full-ranking metrics (viewed items filtered) of `model` on a split, labelled; `users`
    > 0 scores a fixed sample of that many users (drawn with `users_seed`) when there are more."""
    report = evaluate(model_scorer(model, device), corpus, split, FULL, batch_size=batch_size,
                      users=users, users_seed=users_seed)
    return report.to_dict()


def validate(model: torch.nn.Module, corpus: SequenceCorpus, loop: LoopSettings,
             device: torch.device | str) -> dict[str, float]:
    """The metrics of the valid split that select the epoch (numbers only: `loop.metric` is one)."""
    report = full_ranking(model, corpus, "valid", device, batch_size=loop.eval_batch_size,
                          users=loop.valid_users, users_seed=loop.seed)
    return {key: value for key, value in report.items() if isinstance(value, float)}


def score_test(model: torch.nn.Module, corpus: SequenceCorpus, loop: LoopSettings,
               device: torch.device | str) -> dict[str, Any]:
    """The labelled metrics of the test split, every user scored."""
    return full_ranking(model, corpus, "test", device, batch_size=loop.eval_batch_size)


def validation_label(loop: LoopSettings, corpus: SequenceCorpus) -> str:
    """How the epoch is selected, in words: the metric and protocol, and the sample of users
    when `loop.valid_users` validates on fewer than every user."""
    label = f"valid {loop.metric} (full ranking, viewed items filtered"
    sample = validation_sample(loop, corpus)
    if sample is not None:
        label += (f", a fixed sample of {sample['users']:,} of {sample['split_users']:,} users, "
                  f"seed {sample['seed']}")
    return label + ")"


def validation_sample(loop: LoopSettings, corpus: SequenceCorpus) -> dict[str, int] | None:
    """The users validation scores when it scores a sample (`loop.valid_users` below the
    number of users in the valid split): how many, of how many, and the seed; else None."""
    split_users = int(corpus.evaluable.sum())  # the users `corpus.split("valid")` holds
    if loop.valid_users == 0 or loop.valid_users >= split_users:
        return None
    return {"users": loop.valid_users, "split_users": split_users, "seed": loop.seed}
