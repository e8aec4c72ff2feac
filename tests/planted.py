"""A tiny synthetic log with a planted pattern: each user walks one fixed cycle over the items.

The next item is a deterministic function of the previous one, so a sequence model can reach
HR@10 near 1 while item popularity (uniform here) stays near 10 / n_items.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.interactions import Interactions


def planted_corpus(n_users: int = 200, n_items: int = 40, seed: int = 0) -> SequenceCorpus:
    """Users of 6-15 items each, following one random cycle through all items."""
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(n_items) + 100  # original ids 100..
    users, items, times = [], [], []
    for user in range(n_users):
        start, length = rng.integers(n_items), rng.integers(6, 16)
        walk = cycle[(start + np.arange(length)) % n_items]
        users += [user] * length
        items += walk.tolist()
        times += list(range(length))
    events = pl.DataFrame({"user": users, "item": items, "timestamp": times},
                          schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64})
    return prepare(Interactions(events, None, "planted"), PrepareSettings(min_rating=None))


def tiny_settings(epochs: int = 5, **changes):
    """Settings small enough for a few seconds of CPU training on `planted_corpus`; masking 20%
    (not `fast`'s 40%) because the planted sequences hold only 6-15 items."""
    from bert4rec.config import preset

    base = {
        "model.max_len": 16, "model.hidden": 64, "model.dropout": 0.0,
        "model.attention_dropout": 0.0, "loop.batch_size": 16, "loop.patience": 0,
        "loop.epochs": epochs, "loop.device": "cpu", "optim.lr": 5e-3,
        "masking.last_item_share": 0.2, "masking.mask_prob": 0.2,
    }
    return preset("fast").override({**base, **changes})


def ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One process of a CPU DDP run (gloo) with a final fit; saves its final weights (the
    final model's) as rank<N>.safetensors."""
    import os
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from bert4rec.training.loop import fit

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    settings = tiny_settings(epochs=4)
    result = fit(planted_corpus(n_users=500), settings, out_dir, progress=False, final=True)
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(Path(out_dir).parent / f"rank{rank}.safetensors"))


def paired_corpus(n_pairs: int = 30, teachers: int = 4, seed: int = 0) -> SequenceCorpus:
    """Pairs of items (a, b) that co-occur in the histories of a few users each, amid noise.

    Per pair, `teachers` users watch three noise films, a, b, three noise films; one probe user
    watches five noise films, then a, then b, so b is the probe's test item and a the last
    item of its test history. Noise films are drawn from 2 * n_pairs others, each watched more
    often than any pair item, so popularity ranks b low. Original ids: pair k is (1000 + 2k,
    1001 + 2k); probe users are 10_000 + k.
    """
    rng = np.random.default_rng(seed)
    noise = np.arange(2 * n_pairs) + 100
    users, items = [], []
    for k in range(n_pairs):
        a, b = 1000 + 2 * k, 1001 + 2 * k
        for t in range(teachers):
            users.append(k * teachers + t)
            items.append([*rng.choice(noise, 3), a, b, *rng.choice(noise, 3)])
        users.append(10_000 + k)
        items.append([*rng.choice(noise, 5), a, b])
    lengths = [len(seq) for seq in items]
    events = pl.DataFrame(
        {"user": np.repeat(users, lengths), "item": np.concatenate(items),
         "timestamp": np.concatenate([np.arange(n) for n in lengths])},
        schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64})
    return prepare(Interactions(events, None, "paired"), PrepareSettings(min_rating=None))
