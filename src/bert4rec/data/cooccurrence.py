"""Item co-occurrence in the training sequences: the pairs, and embeddings that summarise them.

`item_pairs` lists every (earlier, later) pair of items at most `window` positions apart in
one user's sequence: the counts behind the `markov` and `itemknn` baselines. `pair_counts`
counts them a chunk at a time into a symmetric matrix; `ppmi_embeddings` factorises the
positive pointwise mutual information of those pairs (Levy & Goldberg, NIPS 2014) with a
truncated SVD: items that are rated close together get nearby vectors. BERT4Rec can start
its item embeddings there instead of at random (docs/training-recipe.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from bert4rec.data.corpus import Split
from bert4rec.data.vocab import Vocabulary

PAIR_CHUNK = 4_000_000
"""Flat positions whose pairs are counted at once: bounds the memory of `pair_counts` (about
100 bytes per position) whatever the size of the log."""


def _gap_pairs(split: Split, window: int,
               chunk: int = PAIR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(earlier, later) vocab indices of the pairs 1..`window` positions apart within one
    sequence, gap by gap and, within a gap, `chunk` earlier positions at a time."""
    flat, n = split.flat, len(split.flat)
    sequence_end = np.repeat(split.offsets[1:], split.lengths)  # [n] where each item's row ends
    for gap in range(1, window + 1):
        for start in range(0, max(n - gap, 0), chunk):
            earlier = np.arange(start, min(start + chunk, n - gap))
            earlier = earlier[earlier + gap < sequence_end[earlier]]
            yield flat[earlier], flat[earlier + gap]


def item_pairs(split: Split, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) vocab indices of the item pairs 1..`window` positions apart within each
    sequence of `split`."""
    earlier, later = [split.flat[:0]], [split.flat[:0]]
    for before, after in _gap_pairs(split, window):
        earlier.append(before)
        later.append(after)
    return np.concatenate(earlier), np.concatenate(later)


def pair_counts(split: Split, vocab_size: int, window: int,
                chunk: int = PAIR_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric co-occurrence matrix of pairs within `window` positions, as sorted cell
    codes `row * vocab_size + col` and their counts (a pair counts once in each direction).

    Counted a chunk of pairs at a time on the unordered pair (smaller index first) and merged
    into the running counts, so memory grows with the distinct pairs, not with the
    window x interactions pairs a log holds (ML-20M: ~50M pairs, a few million distinct ones).
    """
    codes, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for earlier, later in _gap_pairs(split, window, chunk):
        low, high = np.minimum(earlier, later), np.maximum(earlier, later)
        new, new_counts = np.unique(low.astype(np.int64) * vocab_size + high,
                                    return_counts=True)
        codes, counts = _merge_counts(codes, counts, new, new_counts)
    low, high = codes // vocab_size, codes % vocab_size
    across = low != high  # a pair (i, i) is its own mirror: it counts twice in one cell
    cells = np.concatenate([codes, high[across] * vocab_size + low[across]])
    order = np.argsort(cells, kind="stable")
    weights = np.where(across, counts, 2 * counts)
    return cells[order], np.concatenate([weights, counts[across]])[order]


def _merge_counts(codes: np.ndarray, counts: np.ndarray, new: np.ndarray,
                  new_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add the counts of sorted distinct codes `new` to the sorted distinct `codes`; linear
    apart from the binary search, and the result is sorted and distinct again. `counts` is
    updated in place (the caller keeps only the result)."""
    at = np.searchsorted(codes, new)  # [M] where each new code belongs
    seen = at < len(codes)
    seen[seen] = codes[at[seen]] == new[seen]
    counts[at[seen]] += new_counts[seen]
    return (np.insert(codes, at[~seen], new[~seen]),
            np.insert(counts, at[~seen], new_counts[~seen]))


def ppmi_embeddings(split: Split, vocab_size: int, dim: int, window: int = 5) -> torch.Tensor:
    """[vocab_size, dim] float32: row i is item i's vector U_i * S of a rank-`dim` SVD of the
    symmetric positive-PMI matrix of pairs within `window` positions. Rows of items without any
    co-occurrence (and of padding and [MASK]) are zero. Deterministic: the randomised SVD runs on
    its own seeded generator state, leaving the caller's untouched."""
    codes, counts = pair_counts(split, vocab_size, window)
    rows, cols = codes // vocab_size, codes % vocab_size
    marginal = np.bincount(rows, weights=counts, minlength=vocab_size)  # [V]
    pmi = np.log(counts * counts.sum() / (marginal[rows] * marginal[cols]))
    keep = pmi > 0  # codes are sorted, so the kept cells are in compressed-row order
    if not keep.any():
        return torch.zeros(vocab_size, dim)
    row_starts = np.searchsorted(rows[keep], np.arange(vocab_size + 1))  # [V + 1]
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only @ and SVD
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(
            torch.from_numpy(row_starts), torch.from_numpy(cols[keep]),
            torch.from_numpy(pmi[keep].astype(np.float32)), (vocab_size, vocab_size),
            check_invariants=True,
        )
    rank = min(dim, Vocabulary.of_size(vocab_size).n_items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        u, s, _ = torch.svd_lowrank(matrix, q=min(rank + 16, vocab_size), niter=6)  # [V, q], [q]
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, :rank] = u[:, :rank] * s[:rank]
    vectors[np.bincount(rows[keep], minlength=vocab_size) == 0] = 0.0  # nothing to go on
    return vectors
