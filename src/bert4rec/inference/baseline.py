"""`bert4rec.Baseline`: the baselines (popular, markov, itemknn) behind the calls a `Model`
answers, so that every comparison is one line:

    knn = bert4rec.Baseline("itemknn").fit(data)
    knn.evaluate(data)                   # the built-in leave-one-out split, as Model.evaluate
    knn.evaluate(test=test)              # a held-out frame of your own
    knn.recommend(users=[1, 2], k=10)    # user, rank, item, score, title, genres

A baseline counts what it learns on the part of `data` a `Model` trains on (each user's
sequence less its last two items, held out for validation and test), so the two compare on
equal terms; it recommends after a user's whole history, as a `Model` does.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from bert4rec.data import columns as C
from bert4rec.data.corpus import flatten, left_pad
from bert4rec.data.frames import handed_out
from bert4rec.data.users import OnUnknown, UserHistories, check_on_unknown
from bert4rec.data.vocab import PAD
from bert4rec.errors import (
    DataError,
    NotFittedError,
    SettingsError,
    TitleNotFoundError,
    UnknownIdError,
)
from bert4rec.evaluation.baselines import BASELINES, train_item_counts
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.protocols import evaluate
from bert4rec.inference.catalog import Catalog, ItemId
from bert4rec.inference.held_out import evaluate_frame, histories_from
from bert4rec.inference.recommender import exclude_rows

if TYPE_CHECKING:
    from bert4rec.api import Dataset

BATCH = 512
"""Histories scored at a time when recommending."""


class Baseline:
    """A fitted baseline scorer with the item table and user histories of its data."""

    def __init__(self, name: str = "itemknn", **options: Any) -> None:
        """`name` is "popular" (most often watched), "markov" (what followed the last item
        most often) or "itemknn" (what occurred near the last `window` items most often;
        `window=5`). Checked now."""
        if name not in BASELINES:
            raise SettingsError(f"unknown baseline {name!r}; choose one of "
                                f"{', '.join(BASELINES)}")
        known = [p for p in inspect.signature(BASELINES[name]).parameters if p != "corpus"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise SettingsError(f"baseline {name!r} has no setting {unknown[0]!r}; {takes}")
        self.name, self.options = name, options
        self._fitted: dict[str, Any] | None = None

    def fit(self, data: Dataset) -> Baseline:
        """Count what the baseline needs in `data` (a `bert4rec.Dataset`) and return it."""
        corpus = data.corpus
        table = corpus.item_table
        self._fitted = {
            "corpus": corpus,
            "scorer": BASELINES[self.name](corpus, **self.options),
            "users": UserHistories.from_corpus(corpus),
            "ids": table[C.ITEM],
            "shown": table.select(C.INDEX, C.ITEM, *[c for c in (C.TITLE, C.GENRES)
                                                    if table[c].null_count() < table.height]),
            "catalog": Catalog(table, popularity=train_item_counts(corpus)[1:-1].tolist()),
            "pandas": data.description.get("frames") == "pandas",
            "columns": data.description.get("columns") or {},
        }
        return self

    @property
    def users(self) -> np.ndarray:
        """Every user id the baseline can recommend for by id, ascending."""
        return self._state()["users"].ids

    @property
    def items(self) -> Any:
        """Every item it can recommend: item, and title and genres where known."""
        state = self._state()
        return handed_out(state["shown"].drop(C.INDEX), state["pandas"])

    def recommend(
        self,
        users: Iterable[Any] | Any = None,
        *,
        histories: Sequence[Sequence[ItemId]] | None = None,
        k: int = 10,
        filter_viewed: bool = True,
        items: Iterable[ItemId] | None = None,
        exclude: Iterable[ItemId] | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> Any:
        """As `Model.recommend`: one long frame of `user` (or `history`), `rank`, `item`,
        `score` (the baseline's count: watches, transitions or co-occurrences, plus a
        popularity tie-break below 1), then `title` and `genres` where known."""
        state = self._state()
        check_on_unknown(on_unknown)
        if (users is None) == (histories is None):
            raise ValueError("recommend takes users=[...] or histories=[[...], ...], not both "
                             "and not neither")
        allowed = self._candidates(items, exclude, on_unknown)
        viewed = None
        if users is not None:
            positions, keys = state["users"].positions(_as_list(users), on_unknown)
            flat, offsets = state["users"].subset(positions)
            viewed, key = state["users"].seen_subset(positions), C.USER
        else:
            catalog, index = state["catalog"], self._index()
            indices = []
            for history in histories:
                found = []
                for ref in history:
                    try:
                        found.append(index[catalog.resolve(ref)])
                    except TitleNotFoundError:  # an ambiguous title raises: it names items
                        if on_unknown == "raise":
                            raise
                indices.append(found)
            flat, offsets = flatten(indices)
            key, keys = "history", list(range(len(indices)))
        top = self._top_k(flat, offsets, k, filter_viewed, allowed, viewed)
        return handed_out(self._frame(key, keys, *top), state["pandas"])

    def evaluate(self, data: Dataset | None = None, split: str = "test", *, test: Any = None,
                 history: Any = None, ks: Sequence[int] = DEFAULT_KS, user: str | None = None,
                 item: str | None = None, timestamp: str | None = None,
                 **options: Any) -> dict[str, Any]:
        """As `Model.evaluate`: the built-in leave-one-out split of `data` (the data it was
        fitted on, or data over the same items) with any protocol option, or a held-out
        frame `test` (`history` as there; columns named as in the data it was fitted on)."""
        state = self._state()
        corpus = state["corpus"]
        if test is None:
            if data is None:
                raise ValueError("evaluate takes data (the built-in split) or test=frame")
            if not np.array_equal(data.corpus.item_ids, corpus.item_ids):
                raise DataError("the data has other items than the baseline was fitted on: "
                                "evaluate on the data it was fitted on")
            return evaluate(state["scorer"], data.corpus, split, ks=tuple(ks),
                            **options).to_dict()
        if data is not None or options:
            raise ValueError("evaluate(test=...) takes history=, ks=, user=, item= and "
                             "timestamp=; the built-in split's options go with data")
        columns = state["columns"]
        user, item = user or columns.get("user", C.USER), item or columns.get("item", C.ITEM)
        timestamp = timestamp or columns.get("timestamp")
        histories = state["users"]
        if history is not None:
            histories, _ = histories_from(history, state["ids"], user=user, item=item,
                                          timestamp=timestamp)
        top_k = lambda flat, offsets, k, viewed: self._top_k(  # noqa: E731
            flat, offsets, k, True, None, viewed)
        return evaluate_frame(top_k, histories, state["ids"], test, ks=ks, user=user,
                              item=item)

    def __repr__(self) -> str:
        fitted = "fitted" if self._fitted is not None else "not fitted"
        return f"Baseline({self.name!r}, {self.options}, {fitted})"

    def _state(self) -> dict[str, Any]:
        if self._fitted is None:
            raise NotFittedError(f"this {self.name} baseline is not fitted yet: call fit(data)")
        return self._fitted

    def _index(self) -> dict[ItemId, int]:
        ids = self._state()["ids"].to_list()
        return {item: position + 1 for position, item in enumerate(ids)}

    def _candidates(self, allowed: Iterable[ItemId] | None, excluded: Iterable[ItemId] | None,
                    on_unknown: OnUnknown) -> torch.Tensor | None:
        """As `Recommender.candidates`: bool [vocab_size] of what may be offered, or None."""
        if allowed is None and excluded is None:
            return None
        index, n_items = self._index(), len(self._state()["ids"])
        mask = torch.zeros(n_items + 2, dtype=torch.bool)

        def indices(ids: Iterable[ItemId]) -> list[int]:
            wanted = list(ids)
            missing = [i for i in wanted if i not in index]
            if missing and on_unknown == "raise":
                raise UnknownIdError(f"item {missing[0]!r} is not among the {n_items:,} items "
                                     "the baseline was fitted on; pass on_unknown='skip' to "
                                     "leave unknown items out", missing)
            return [index[i] for i in wanted if i in index]

        if allowed is None:
            mask[1 : n_items + 1] = True
        else:
            mask[indices(allowed)] = True
        if excluded is not None:
            mask[indices(excluded)] = False
        return mask

    def _top_k(self, flat: np.ndarray, offsets: np.ndarray, k: int, exclude_seen: bool,
               candidates: torch.Tensor | None,
               viewed: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """The best `k` vocabulary indices [B, k] and scores [B, k] (-inf where fewer are on
        offer) for B histories, as `Recommender.top_k` gives them."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive whole number of items, got {k!r}")
        scorer, n_items = self._state()["scorer"], len(self._state()["ids"])
        lengths = np.diff(offsets)
        width = min(k, n_items)
        top_items = np.zeros((len(lengths), width), dtype=np.int64)
        top_scores = np.full((len(lengths), width), -np.inf)
        for start in range(0, len(lengths), BATCH):
            rows = np.arange(start, min(start + BATCH, len(lengths)))
            padded = left_pad(flat, offsets, rows, max(1, int(lengths[rows].max(initial=1))))
            scores = scorer(torch.from_numpy(padded)).clone()  # [b, V]
            scores[:, [PAD, n_items + 1]] = float("-inf")
            if candidates is not None:
                scores.masked_fill_(~candidates, float("-inf"))
            if exclude_seen:
                exclude_rows(scores, flat, offsets, rows)
                if viewed is not None:
                    exclude_rows(scores, *viewed, rows)
            top_items[rows], top_scores[rows] = (t.numpy() for t in top_by_index(scores, width))
        return top_items, top_scores

    def _frame(self, key: str, keys: Sequence[Any], items: np.ndarray, scores: np.ndarray
               ) -> pl.DataFrame:
        rows, cols = np.nonzero(np.isfinite(scores))
        frame = pl.DataFrame({key: pl.Series(key, list(keys)).gather(rows) if len(keys)
                              else pl.Series(key, []),
                              C.RANK: pl.Series(C.RANK, cols + 1, dtype=pl.Int32),
                              C.INDEX: items[rows, cols], C.SCORE: scores[rows, cols]})
        shown = self._state()["shown"]
        frame = frame.join(shown, on=C.INDEX, how="left", maintain_order="left")
        return frame.select(key, C.RANK, C.ITEM, C.SCORE, *shown.columns[2:])


def top_by_index(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` best columns of each row of `scores` [B, V] and their scores, best first, ties
    going to the smaller index as the evaluator breaks them (`evaluation/metrics.py`), so a
    baseline's lists give the figures its evaluation does: counts tie often."""
    kth = scores.topk(k, dim=1).values[:, -1:]  # [B, 1]
    above = scores > kth
    level = scores == kth
    room = k - above.sum(dim=1, keepdim=True)  # [B, 1] places left for the tied
    chosen = above | (level & (level.cumsum(dim=1) <= room))  # [B, V], k per row
    index = chosen.nonzero()[:, 1].view(len(scores), k)  # ascending index
    values = scores.gather(1, index)
    order = values.sort(dim=1, descending=True, stable=True).indices
    return index.gather(1, order), values.gather(1, order)


def _as_list(values: Iterable[Any] | Any) -> list[Any]:
    if isinstance(values, str | bytes | int | np.integer):
        return [values]
    return list(values)
