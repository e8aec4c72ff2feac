"""Cold items: how well items that no one has touched are recommended from their features.

`hold_out_items` draws a random share of the items (10% by default) and takes every interaction
with them out of the corpus, except where one is a user's last item, the test target, and the
user keeps at least two other items: nothing of a held-out item is trained on, yet some users'
test items are held-out ones. The evaluator's `cold` protocol (`ColdItems.protocol()`)
scores exactly those users, ranking the target among the held-out items. Its validation form
(`split="valid"`) keeps a held-out item only as a user's second-to-last item, the validation
target, so that settings for new items can be chosen without looking at the test split. The
baselines for it: `CategoryPopular` (items of the user's categories, the most popular
categories first) and `RandomItems`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from bert4rec.data.corpus import SequenceCorpus
from bert4rec.data.features import ItemFeatures
from bert4rec.data.vocab import PAD
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.protocols import Protocol, train_item_counts

COLD_SHARE = 0.1


@dataclass(frozen=True)
class ColdItems:
    """A corpus with `items` (vocabulary indices, ascending) held out of training, how they
    were drawn, and the `split` ("valid" or "test") whose targets may be held-out items."""

    corpus: SequenceCorpus
    items: np.ndarray
    share: float
    seed: int
    split: str = "test"

    def protocol(self, ks: tuple[int, ...] = DEFAULT_KS) -> Protocol:
        """The `cold` protocol over these items: `evaluate(scorer, self.corpus, self.split,
        self.protocol())`."""
        return Protocol(name="cold", cold_items=tuple(self.items.tolist()), ks=ks)


def hold_out_items(corpus: SequenceCorpus, share: float = COLD_SHARE, seed: int = 0,
                   split: str = "test") -> ColdItems:
    """`corpus` without a random `share` of its items (drawn with `seed`; the vocabulary and
    item table stay): each user's sequence loses them, except a last item when at least two
    others remain, which is then the user's test target. Users left with no item are dropped.
    The training split (every sequence but its last two items) never holds a held-out item.

    With `split="valid"` the same items are drawn, and the one kept is instead a user's
    second-to-last item, when the last is not held out and at least two more remain: the
    user's validation target, with a history as long as a test target's."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, 0, 25])  # a stream of its own
    count = max(1, round(share * corpus.n_items))
    items = np.sort(rng.choice(np.arange(1, corpus.n_items + 1), size=count, replace=False))
    cold = np.zeros(corpus.vocab_size, dtype=bool)
    cold[items] = True
    lengths = corpus.lengths
    user_of = np.repeat(np.arange(corpus.n_users), lengths)
    held = cold[corpus.items_flat]
    warm = np.bincount(user_of, weights=~held, minlength=corpus.n_users)
    ends = corpus.offsets[1:][lengths > 0]
    target = np.zeros(len(held), dtype=bool)
    if split == "test":
        target[ends - 1] = True
        keep = ~held | (target & (warm[user_of] >= 2))
    else:  # the second-to-last item, before a last item that is not held out
        ends = ends[(lengths[lengths > 0] >= 2) & ~held[ends - 1]]
        target[ends - 2] = True
        keep = ~held | (target & (warm[user_of] >= 3))
    kept = np.bincount(user_of[keep], minlength=corpus.n_users)
    users = kept > 0
    offsets = np.concatenate([[0], np.cumsum(kept[users])]).astype(np.int64)
    form = "" if split == "test" else ", validation form"
    name = f"{corpus.name}, {count:,} items held out (seed {seed}{form})"
    held_out = replace(corpus, items_flat=corpus.items_flat[keep], offsets=offsets,
                       user_ids=corpus.user_ids[users], name=name)
    return ColdItems(held_out, items, share, seed, split)


class CategoryPopular:
    """Items of the user's categories, the most popular categories first: score(i) = how many
    of the user's history items share each of i's feature values, summed over its values,
    plus (below 1, to order equal counts) how popular its values are in training, the mean
    over its values of the training interactions of the items that have each."""

    def __init__(self, item_values: np.ndarray, value_popularity: np.ndarray) -> None:
        self.item_values = torch.from_numpy(item_values)  # [V, L]
        values = np.where(item_values == PAD, 0.0, value_popularity[item_values])
        mean = values.sum(1) / np.maximum((item_values != PAD).sum(1), 1)  # [V]
        self.tie_break = torch.from_numpy(mean / (mean.max() + 1.0))  # [V], each < 1
        self.n_values = len(value_popularity)

    @classmethod
    def fit(cls, corpus: SequenceCorpus, features: ItemFeatures) -> CategoryPopular:
        counts = train_item_counts(corpus).astype(np.float64)  # [V]
        values = features.item_values
        popularity = np.bincount(values.reshape(-1), weights=np.repeat(counts, values.shape[1]),
                                 minlength=features.size)
        popularity[PAD] = 0.0
        return cls(values, popularity)

    def __call__(self, histories: torch.Tensor) -> torch.Tensor:
        seen = self.item_values[histories].flatten(1)  # [B, T * L]; padding has no values
        profile = torch.zeros(len(histories), self.n_values, dtype=torch.float64)
        profile.scatter_add_(1, seen, torch.ones(seen.shape, dtype=torch.float64))
        profile[:, PAD] = 0.0
        scores = self.tie_break.expand(len(histories), -1).clone()  # [B, V]
        for slot in range(self.item_values.shape[1]):
            scores += profile[:, self.item_values[:, slot]]
        return scores


class RandomItems:
    """Every item a fresh uniform random score for each user (seeded)."""

    def __init__(self, vocab_size: int, seed: int = 0) -> None:
        self.vocab_size = vocab_size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, histories: torch.Tensor) -> torch.Tensor:
        return torch.rand(len(histories), self.vocab_size, generator=self.generator,
                          dtype=torch.float64)
