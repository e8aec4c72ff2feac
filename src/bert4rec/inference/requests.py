"""What every face asks of a trained model, and what it gets back, in one vocabulary.

A `RecommendRequest` is one request as the Python API (`Model.recommend`), the command line
(`bert4rec recommend`) and the HTTP API (`POST /recommend`) all take it: users by id (with any
`recent` events since training) or histories of item ids and titles, `k`, `filter_viewed`, an
allow list (`items`), a deny list (`exclude`) and what to do with unknown ids (`on_unknown`).
`Recommender.query` resolves it to a `Query` (vocabulary indices), `Recommender.rank` scores a
`Query` into a `Ranking`, and `Recommender.answer` is the two in a row: the one recommend
path. The faces only parse their input into a request and format the ranking they get back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bert4rec.data import columns as C
from bert4rec.data.corpus import concatenated_ranges
from bert4rec.data.users import OnUnknown, check_on_unknown
from bert4rec.inference.catalog import ItemId

BATCH_SIZE = 512
"""Histories scored per forward pass when recommending, by every face."""
FILTER_VIEWED = True
"""Whether a history's own items are left out of its recommendations unless asked otherwise."""
HISTORY_KEY = "history"
"""The first column of an answer for histories: each history's position in the request."""
USER_KEY = C.USER
"""The first column of an answer for users: the user's id."""


@dataclass(frozen=True)
class RecommendRequest:
    """The top `k` items for each of `users` (ids the model was trained with; each one's whole
    history is used) or for each of `histories` (item ids or titles, oldest first), from the
    `items` allowed (every item if None) less those in `exclude`, leaving out each history's
    own items when `filter_viewed`. An unknown user, item id or title raises an error naming
    it, or with `on_unknown="skip"` is left out. `recent` maps users to events since training
    (item ids or titles, oldest first), added to their stored histories without retraining: a
    user the model never saw is answered from these alone, and events of items the model does
    not know are left out and counted (`Query.recent_unknown`). Checked when built."""

    users: Sequence[Any] | None = None
    histories: Sequence[Sequence[ItemId]] | None = None
    k: int = 10
    filter_viewed: bool = FILTER_VIEWED
    items: Sequence[ItemId] | None = None
    exclude: Sequence[ItemId] | None = None
    on_unknown: OnUnknown = "raise"
    recent: Mapping[Any, Sequence[ItemId]] | None = None

    def __post_init__(self) -> None:
        check_on_unknown(self.on_unknown)
        if (self.users is None) == (self.histories is None):
            raise ValueError("recommend takes users=[...] or histories=[[...], ...], not both "
                             "and not neither")
        if self.recent is not None and self.users is None:
            raise ValueError("recent events extend users' stored histories: give users=[...] "
                             "with them (a history already holds what it holds)")
        if self.histories is not None and any(_is_id(h) for h in self.histories):
            raise ValueError("histories is a list of histories, each a list of item ids or "
                             "titles: write histories=[[1, 2, 3]] for one")
        if self.histories is not None:
            _check_entries(self.histories)
        check_k(self.k)

    def __len__(self) -> int:
        """How many users or histories are asked about."""
        return len(self.users if self.users is not None else self.histories)


@dataclass(frozen=True)
class Query:
    """A request resolved to vocabulary indices: `keys` (the users found, or each history's
    position) with their histories `flat[offsets[b]:offsets[b + 1]]`, oldest first; `k`,
    `filter_viewed`, `candidates`, the entries that may be offered (bool [vocab_size];
    None: every item), and `viewed`, (flat, offsets) of the further items each history's
    user saw that `filter_viewed` leaves out too (those the rating filter took from the
    history; None: none); `recent_events` and `recent_unknown`: the request's recent events
    for these users, and how many of them named items the model does not know (left out)."""

    key: str
    keys: list[Any]
    flat: np.ndarray
    offsets: np.ndarray
    k: int
    filter_viewed: bool
    candidates: torch.Tensor | None
    viewed: tuple[np.ndarray, np.ndarray] | None = None
    recent_events: int = 0
    recent_unknown: int = 0

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def concat(cls, queries: Sequence[Query]) -> Query:
        """One query of the histories of `queries`, in order: what concurrent requests of the
        same `k`, `filter_viewed` and candidates share (they must agree on those)."""
        first = queries[0]
        flat, offsets = _concat([(q.flat, q.offsets) for q in queries])
        viewed = None
        if any(q.viewed is not None for q in queries):
            viewed = _concat([q.viewed if q.viewed is not None
                              else (np.zeros(0, np.int64), np.zeros(len(q) + 1, np.int64))
                              for q in queries])
        return cls(first.key, [key for q in queries for key in q.keys], flat, offsets,
                   first.k, first.filter_viewed, first.candidates, viewed,
                   sum(q.recent_events for q in queries), sum(q.recent_unknown for q in queries))


@dataclass(frozen=True)
class Ranking:
    """The answer to a `Query`: for each of its histories the best items (vocabulary indices
    [B, width], best first) and their scores ([B, width]; -inf where fewer were on offer)."""

    query: Query
    items: np.ndarray
    scores: np.ndarray


def unknown_events(query: Query) -> str:
    """What every face says of a request's recent events that named unknown items."""
    return (f"{query.recent_unknown:,} of the {query.recent_events:,} new events name items the "
            "model does not know (new since training, or not in its catalogue); they were left "
            "out")


def check_k(k: int) -> None:
    """Refuse a `k` that is not a positive whole number, naming it."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive whole number of items, got {k!r}")


def _is_id(value: Any) -> bool:
    """Whether `value` is one id or title rather than a history of them."""
    return isinstance(value, str | bytes | int | np.integer)


def append_rows(first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows (flat, offsets): row b of `first` followed by row b of `then`."""
    (a_flat, a_offsets), (b_flat, b_offsets) = first, then
    a_lengths, b_lengths = np.diff(a_offsets), np.diff(b_offsets)
    offsets = np.concatenate([[0], np.cumsum(a_lengths + b_lengths)]).astype(np.int64)
    flat = np.empty(offsets[-1], dtype=np.int64)
    flat[concatenated_ranges(offsets[:-1], a_lengths)] = a_flat
    flat[concatenated_ranges(offsets[:-1] + a_lengths, b_lengths)] = b_flat
    return flat, offsets


def _concat(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows (flat, offsets) of several parts as one, in order."""
    lengths = np.concatenate([np.diff(offsets) for _, offsets in parts])
    return (np.concatenate([flat for flat, _ in parts]),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def _check_entries(histories: Sequence[Sequence[Any]]) -> None:
    """Refuse a history entry that is neither an id nor a title, naming where it is."""
    for row, history in enumerate(histories):
        if not isinstance(history, Sequence | np.ndarray):
            continue  # an iterator: read once, where it is used
        for column, entry in enumerate(history):
            if not isinstance(entry, str | int | np.integer | np.str_) or isinstance(entry, bool):
                raise ValueError(f"histories[{row}][{column}] is a {type(entry).__name__}; "
                                 "each history entry is an item id (a number or text) or a "
                                 "title")
