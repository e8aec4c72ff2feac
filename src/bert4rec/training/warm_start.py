"""Warm start: a new model over a new log that begins where a trained one left off.

Tomorrow's log has the old items, new items and new users. The new vocabulary is the new
log's (items in ascending id, as always) and ids map by value: an item the old model knew keeps
its learnt vector and output bias, and every encoder weight (positions, blocks, head) is
carried over. A new item starts at the mean of the vectors of the known items it occurs near
in the new training sequences (weighted by how often, scaled to the known vectors' typical
length), and its bias at its log frequency on the scale the old biases keep to it; a new item
near no known one keeps the random start. Users need nothing: the model reads histories.
`build_model` (training/loop.py) calls `start_from` on the model it has just built.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bert4rec import rundir
from bert4rec.config import ModelSettings
from bert4rec.data import columns as C
from bert4rec.data.cooccurrence import pair_counts
from bert4rec.data.corpus import Split
from bert4rec.data.vocab import Vocabulary
from bert4rec.errors import DataError, SettingsError
from bert4rec.model import BERT4Rec

ITEM_WEIGHT = "encoder.embeddings.item.weight"
"""The item table: rows move with their item ids."""
BIAS = "output_bias"
"""The output bias: entries move with their item ids."""
SHAPE = ("max_len", "hidden", "layers", "heads", "ff_mult")
"""The model settings a warm start must keep: they fix the weights' shapes (dropouts may
change)."""


@dataclass(frozen=True)
class WarmStart:
    """A trained model to start from (`model`, on the CPU) and its items' original ids in
    vocabulary order (`item_ids[i - 1]` is index i), with `source`, what config.json names."""

    model: BERT4Rec
    item_ids: np.ndarray
    source: str

    @classmethod
    def load(cls, run_dir: str | Path) -> WarmStart:
        """The model and items of a run directory."""
        model, _ = rundir.load_model(run_dir)
        items = rundir.read_items(run_dir).sort(C.INDEX)
        return cls(model, items[C.ITEM].to_numpy(), str(run_dir))

    def check_shape(self, shape: ModelSettings) -> None:
        """Refuse model settings whose weights would not fit the old model's, naming one;
        and item features, which a warm start does not carry over yet."""
        old = self.model.config
        if old.item_features or shape.item_features:
            raise SettingsError(
                f"a warm start does not carry item features yet ({old.item_features!r} in "
                f"{self.source}, {shape.item_features!r} here): start from a run without "
                "them, with item_features unset, or train afresh")
        for name in SHAPE:
            if getattr(shape, name) != getattr(old, name):
                raise SettingsError(
                    f"a warm start keeps the model's shape: {name} is {getattr(old, name)} in "
                    f"{self.source} and {getattr(shape, name)} here; leave it unset")

    def shape(self) -> dict[str, Any]:
        """The old model's settings as a `model` section (dropouts included)."""
        return {f.name: getattr(self.model.config, f.name) for f in fields(ModelSettings)}


def start_from(model: BERT4Rec, start: WarmStart, item_ids: np.ndarray, data: Split,
               window: int) -> dict[str, int]:
    """Set `model` (over the vocabulary of `item_ids`, vocabulary order) to `start`'s weights:
    every encoder weight, and for each item the old model knew its vector and bias; new items
    from their co-occurrence with known ones in `data` within `window` positions. Transition
    logits (`model.transitions`) keep their start from the new log's pair counts. Returns the
    counts config.json records: known, new, and new items placed by co-occurrence."""
    start.check_shape(model.config)
    vocab, old_vocab = model.config.vocab, start.model.config.vocab
    old_index = _old_indices(item_ids, start)  # [n_items]: the old index, 0 for new items
    known = old_index > 0
    if not known.any():
        raise DataError(f"none of the {len(item_ids):,} items of the new log is an item of "
                        f"{start.source} ({len(start.item_ids):,} items): the ids must be the "
                        "same kind and values")
    old = start.model.state_dict()
    state = model.state_dict()
    for name, tensor in old.items():  # transition logits: from the new log's pairs
        if name not in (ITEM_WEIGHT, BIAS) and not name.startswith("transitions."):
            state[name] = tensor.to(state[name])
    weight, bias = state[ITEM_WEIGHT], state[BIAS]
    rows = torch.from_numpy(np.flatnonzero(known) + 1)  # new indices of the known items
    from_rows = torch.from_numpy(old_index[known])
    weight[rows] = old[ITEM_WEIGHT][from_rows].to(weight)
    weight[vocab.mask] = old[ITEM_WEIGHT][old_vocab.mask].to(weight)  # [MASK] moves to the end
    placed = _place_new_items(weight, known, data, vocab, window)
    old_bias = old[BIAS].to(bias)
    shift = (old_bias[from_rows] - bias[rows]).mean()  # the old biases' offset from log freq
    new_rows = torch.from_numpy(np.flatnonzero(~known) + 1)
    bias[new_rows] = bias[new_rows] + shift
    bias[rows] = old_bias[from_rows]
    model.load_state_dict(state)
    return {"known_items": int(known.sum()), "new_items": int((~known).sum()),
            "new_items_from_cooccurrence": placed}


def _old_indices(item_ids: np.ndarray, start: WarmStart) -> np.ndarray:
    """For each new item (vocabulary order), its index in the old vocabulary, 0 if new. Ids
    match by value; ids of another kind (numbers against text) match nothing."""
    old_ids = start.item_ids
    if (old_ids.dtype.kind in "iu") != (item_ids.dtype.kind in "iu"):
        return np.zeros(len(item_ids), dtype=np.int64)
    order = np.argsort(old_ids, kind="stable")
    at = np.clip(np.searchsorted(old_ids, item_ids, sorter=order), 0, len(old_ids) - 1)
    found = old_ids[order[at]] == item_ids
    return np.where(found, order[at] + 1, 0).astype(np.int64)


def _place_new_items(weight: torch.Tensor, known: np.ndarray, data: Split, vocab: Vocabulary,
                     window: int) -> int:
    """Set each new item's row of `weight` [V, H] to the co-occurrence-weighted mean of the
    known items' rows near it in `data`, scaled to the known rows' mean length. Returns how
    many new items had a known neighbour."""
    is_known = np.zeros(vocab.size, dtype=bool)
    is_known[1 : vocab.mask] = known
    codes, counts = pair_counts(data, vocab.size, window)
    rows, cols = codes // vocab.size, codes % vocab.size
    use = ~is_known[rows] & is_known[cols] & (rows >= 1) & (rows < vocab.mask)
    if not use.any():
        return 0
    rows, cols, counts = rows[use], cols[use], counts[use].astype(np.float32)
    sums = torch.zeros_like(weight)
    sums.index_add_(0, torch.from_numpy(rows),
                    weight[torch.from_numpy(cols)] * torch.from_numpy(counts)[:, None])
    placed = np.unique(rows)
    means = sums[torch.from_numpy(placed)]
    length = weight[torch.from_numpy(np.flatnonzero(is_known))].norm(dim=1).mean()
    weight[torch.from_numpy(placed)] = means * (length / means.norm(dim=1, keepdim=True)
                                                .clamp_min(1e-12))
    return len(placed)
