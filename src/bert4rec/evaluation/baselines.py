"""Baseline scorers, fitted on the training part and evaluated by the same `evaluate()`.

Every baseline is a scorer (see `bert4rec.evaluation.protocols`): left-padded histories [B, T] in,
float64 scores [B, vocab_size] out. Float64 keeps integer counts plus a fractional
tie-breaker exact. Counts are sparse (item pairs as int64 codes, numpy bincount/unique).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bert4rec.data.cooccurrence import item_pairs, pair_counts
from bert4rec.data.corpus import SequenceCorpus, concatenated_ranges
from bert4rec.evaluation.protocols import train_item_counts


class Popularity:
    """score(i) = number of times item i occurs in the training part, the same for every user."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = torch.as_tensor(counts, dtype=torch.float64)  # [V]

    @classmethod
    def fit(cls, corpus: SequenceCorpus) -> Popularity:
        return cls(train_item_counts(corpus))

    def __call__(self, histories: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(len(histories), -1).clone()  # [B, V]


class SparseRows:
    """A sparse [V, V] count matrix in compressed-row form, read densely a few rows at a time."""

    def __init__(self, codes: np.ndarray, counts: np.ndarray, vocab_size: int) -> None:
        """From sorted distinct cell codes `row * vocab_size + col` and their counts."""
        self.vocab_size = vocab_size
        self.cols = codes % vocab_size
        self.values = counts.astype(np.float64)
        self.indptr = np.searchsorted(codes // vocab_size, np.arange(vocab_size + 1))

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, vocab_size: int) -> SparseRows:
        """The matrix counting each (rows[n], cols[n]) pair once."""
        return cls(*np.unique(rows * vocab_size + cols, return_counts=True), vocab_size)

    def dense(self, rows: np.ndarray, groups: int = 1) -> np.ndarray:
        """Sum of the counts of each run of `groups` consecutive `rows`, as dense float64
        [len(rows) // groups, V]; vectorised (bincount over output cells, no loop over rows)."""
        starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        position = concatenated_ranges(starts, lengths)  # entries of every requested row
        out_row = np.repeat(np.arange(len(rows)) // groups, lengths)
        n_out = len(rows) // groups
        cells = np.bincount(
            out_row * self.vocab_size + self.cols[position],
            weights=self.values[position],
            minlength=n_out * self.vocab_size,
        )
        return cells.reshape(n_out, self.vocab_size)


class Markov:
    """First-order Markov chain: score(i) = #(last item -> i) in training + popularity tie-break.

    The popularity term is count(i) / (max count + 1) < 1, so it orders items only among
    equal transition counts. Users with an empty history get pure popularity.
    """

    def __init__(self, transitions: SparseRows, counts: np.ndarray) -> None:
        self.transitions = transitions
        self.tie_break = counts / (counts.max() + 1.0)  # [V], each < 1

    @classmethod
    def fit(cls, corpus: SequenceCorpus) -> Markov:
        before, after = item_pairs(corpus.split("train"), window=1)
        return cls(SparseRows.from_pairs(before, after, corpus.vocab_size),
                   train_item_counts(corpus))

    def __call__(self, histories: torch.Tensor) -> torch.Tensor:
        last = histories[:, -1].numpy()  # [B]; 0 (padding) has no transitions
        return torch.from_numpy(self.transitions.dense(last) + self.tie_break[None, :])


class ItemKNN:
    """Co-occurrence within `window` positions: score(i) = sum over the user's last `window`
    items h of #(h and i within `window` of each other in training), popularity tie-break."""

    def __init__(self, cooccurrence: SparseRows, counts: np.ndarray, window: int) -> None:
        self.cooccurrence = cooccurrence
        self.tie_break = counts / (counts.max() + 1.0)
        self.window = window

    @classmethod
    def fit(cls, corpus: SequenceCorpus, window: int = 5) -> ItemKNN:
        codes, counts = pair_counts(corpus.split("train"), corpus.vocab_size, window)
        return cls(SparseRows(codes, counts, corpus.vocab_size), train_item_counts(corpus), window)

    def __call__(self, histories: torch.Tensor) -> torch.Tensor:
        recent = histories[:, -self.window :].numpy()  # [B, w]; padding rows are empty
        scores = self.cooccurrence.dense(recent.reshape(-1), groups=recent.shape[1])  # [B, V]
        return torch.from_numpy(scores + self.tie_break[None, :])


BASELINES: dict[str, Callable[[SequenceCorpus], Callable[[torch.Tensor], torch.Tensor]]] = {
    "popular": Popularity.fit,
    "markov": Markov.fit,
    "itemknn": ItemKNN.fit,
}


def fit_baseline(name: str, corpus: SequenceCorpus) -> Callable[[torch.Tensor], torch.Tensor]:
    """The baseline scorer called `name` ("popular", "markov", "itemknn"), fitted on `corpus`."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    return BASELINES[name](corpus)
