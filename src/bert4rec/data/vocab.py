"""The item vocabulary's layout, shared by the corpus, the batches, the model and the scorers.

0 is padding, 1..n_items are the items in ascending original id and n_items + 1 is [MASK],
so a vocabulary of n items has n + 2 entries. `Vocabulary` says so once; everything else asks it.
"""

from __future__ import annotations

from dataclasses import dataclass

PAD = 0
"""The padding index: never an item, never a prediction; its embedding stays zero."""


@dataclass(frozen=True)
class Vocabulary:
    """The layout of a vocabulary of `n_items` items: PAD, the items, then [MASK]."""

    n_items: int

    @classmethod
    def of_size(cls, size: int) -> Vocabulary:
        """The vocabulary with `size` entries (a model's `vocab_size`)."""
        return cls(size - 2)

    @property
    def size(self) -> int:
        """Entries in all: padding, the items and [MASK]."""
        return self.n_items + 2

    @property
    def mask(self) -> int:
        """The [MASK] index: the last entry."""
        return self.n_items + 1

    @property
    def items(self) -> range:
        """The item indices, 1..n_items."""
        return range(PAD + 1, self.mask)

    @property
    def item_columns(self) -> slice:
        """The items' entries along a [..., size] axis, such as a row of scores."""
        return slice(self.items.start, self.items.stop)

    @property
    def not_items(self) -> tuple[int, int]:
        """The entries that are never an item: padding and [MASK]."""
        return PAD, self.mask
