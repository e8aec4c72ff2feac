"""A run directory over a real prepared corpus with random weights, written by the functions
training uses (config.json, model.safetensors, items.parquet, users.parquet, left_out.parquet):
for tests of what reads a run, without the seconds that training takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bert4rec import rundir
from bert4rec.data.corpus import SequenceCorpus
from bert4rec.model import BERT4Rec, BERT4RecConfig


def random_run(corpus: SequenceCorpus, path: Path, data: dict[str, Any] | None = None,
               max_len: int = 16, seed: int = 0) -> Path:
    """Write a run of a random BERT4Rec over `corpus` to `path`; `data` is config.json's data
    section (a `Dataset.description`: the prepare settings, columns, frames)."""
    torch.manual_seed(seed)
    config = BERT4RecConfig(vocab_size=corpus.vocab_size, max_len=max_len, hidden=16, layers=1,
                            heads=2)
    model = BERT4Rec(config)
    with torch.no_grad():
        model.output_bias.copy_(torch.randn(config.vocab_size))
        model.encoder.embeddings.item.weight.normal_(0, 0.5)
    path.mkdir(parents=True, exist_ok=True)
    rundir.write_config(path, config, data or {"source": None}, {})
    rundir.save_weights(model, path / rundir.WEIGHTS)
    corpus.item_table.write_parquet(path / rundir.ITEMS)
    rundir.write_users(path, corpus)
    return path
