"""`TrigramIndex`: which names share the most character trigrams with a query.

Fuzzy title matching scores a query against names with rapidfuzz; over a whole catalogue that
costs time in proportion to the catalogue times the query's length, enough for one long query
to stall a server. The index narrows the names to a bounded candidate set first: a name that
looks like the query shares many of its three-letter pieces, and counting shared trigrams over
posting lists is a few vectorised numpy operations.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np


def trigrams(text: str) -> set[str]:
    """The distinct three-character pieces of `text`, padded so that word starts count."""
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class TrigramIndex:
    """Posting lists from each trigram to the positions of the names that hold it."""

    def __init__(self, names: Sequence[str]) -> None:
        vocabulary: dict[str, int] = {}
        grams, sizes = array("i"), array("i")  # compact while building: millions of entries
        for name in names:
            ids = {vocabulary.setdefault(gram, len(vocabulary)) for gram in trigrams(name)}
            grams.extend(ids)
            sizes.append(len(ids))
        gram_array = np.frombuffer(grams, dtype=np.int32)
        order = np.argsort(gram_array, kind="stable")
        owners = np.repeat(np.arange(len(sizes), dtype=np.int32), np.frombuffer(sizes, np.int32))
        self._vocabulary = vocabulary
        self._owners = owners[order]
        self._starts = np.searchsorted(gram_array[order], np.arange(len(vocabulary) + 1))
        self._sizes = np.frombuffer(sizes, dtype=np.int32).astype(np.int64)

    def __len__(self) -> int:
        return len(self._sizes)

    def candidates(self, query: str, limit: int) -> list[int]:
        """Positions of at most `limit` names sharing at least one trigram with `query`: most
        shared trigrams first, then the closest in trigram count, then by position. The work
        is bounded by the index size, whatever the query."""
        pieces = trigrams(query)
        ids = [self._vocabulary[g] for g in pieces if g in self._vocabulary]
        if not ids or limit < 1:
            return []
        hits = np.concatenate([self._owners[self._starts[i] : self._starts[i + 1]] for i in ids])
        shared = np.bincount(hits, minlength=len(self))  # [n names]
        found = np.flatnonzero(shared)
        if len(found) > limit:
            found = found[np.argpartition(-shared[found], limit - 1)[:limit]]
        distance = np.abs(self._sizes[found] - len(pieces))
        return found[np.lexsort((found, distance, -shared[found]))].tolist()
