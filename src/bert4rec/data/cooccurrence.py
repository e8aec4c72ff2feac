"""Item co-occurrence in the training sequences: the pairs, and embeddings that summarise them.

`item_pairs` lists every (earlier, later) pair of items at most `window` positions apart in
one user's sequence: the counts behind the `markov` and `itemknn` baselines. `ppmi_embeddings`
factorises the positive pointwise mutual information of those pairs (Levy & Goldberg, NIPS
2014) with a truncated SVD: items that are rated close together get nearby vectors. BERT4Rec
can start its item embeddings there instead of at random (docs/training-recipe.md, "Session 6").
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from bert4rec.data.corpus import Split


def item_pairs(split: Split, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) vocab indices of the item pairs 1..`window` positions apart within each
    sequence of `split`."""
    user_of = np.repeat(np.arange(len(split)), split.lengths)
    earlier, later = [], []
    for gap in range(1, window + 1):
        same_user = user_of[gap:] == user_of[:-gap]
        earlier.append(split.flat[:-gap][same_user])
        later.append(split.flat[gap:][same_user])
    return np.concatenate(earlier), np.concatenate(later)


def ppmi_embeddings(split: Split, vocab_size: int, dim: int, window: int = 5) -> torch.Tensor:
    """[vocab_size, dim] float32: row i is item i's vector U_i * S of a rank-`dim` SVD of the
    symmetric positive-PMI matrix of pairs within `window` positions. Rows of items without any
    co-occurrence (and of padding and [MASK]) are zero. Deterministic: the randomised SVD runs on
    its own seeded generator state, leaving the caller's untouched."""
    earlier, later = item_pairs(split, window)
    rows, cols = np.concatenate([earlier, later]), np.concatenate([later, earlier])
    codes, counts = np.unique(rows * vocab_size + cols, return_counts=True)
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
    rank = min(dim, vocab_size - 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        u, s, _ = torch.svd_lowrank(matrix, q=min(rank + 16, vocab_size), niter=6)  # [V, q], [q]
    vectors = torch.zeros(vocab_size, dim)
    vectors[:, :rank] = u[:, :rank] * s[:rank]
    vectors[np.bincount(rows[keep], minlength=vocab_size) == 0] = 0.0  # nothing to go on
    return vectors
