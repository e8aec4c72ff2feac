"""Evaluating on a held-out frame of your own: each test user's top items after their history,
measured by `evaluation.frame_metrics` against the frame.

`Model.evaluate(test=...)` and `Baseline.evaluate(test=...)` both answer through
`evaluate_frame`, so a model and a baseline scored on one split compare directly. A user's
history is what the model keeps for that user (the data it was fitted on), or one passed in
(`histories_from`); users of the test frame without one are counted and left out (no model
can rank for them), items the model does not know stay in as misses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from bert4rec.data import columns as C
from bert4rec.data.corpus import SequenceCorpus
from bert4rec.data.frames import to_polars
from bert4rec.data.users import UserHistories
from bert4rec.errors import DataError
from bert4rec.evaluation.frame_metrics import compute
from bert4rec.inference.recommender import Ranker
from bert4rec.inference.requests import RecommendRequest


def histories_from(events: Any, item_ids: pl.Series, *, user: str = C.USER, item: str = C.ITEM,
                   timestamp: str | None = C.TIMESTAMP) -> tuple[UserHistories, int]:
    """Each user's history, oldest first, from an events frame (`timestamp` None: the rows
    are in time order) or a `Dataset` (its sequences), over the vocabulary `item_ids`
    (vocabulary index i + 1 is `item_ids[i]`), and how many events named items outside it
    (left out)."""
    if isinstance(getattr(events, "corpus", None), SequenceCorpus):
        events, user, item, timestamp = _events_of(events.corpus), C.USER, C.ITEM, C.TIMESTAMP
    table = to_polars(events, "history")
    _need(table, "history", [user, item, *([timestamp] if timestamp else [])])
    order = pl.int_range(pl.len()) if timestamp is None else pl.col(timestamp)
    rows = table.select(pl.col(user).alias(C.USER), pl.col(item).alias(C.ITEM),
                        order.alias("__time")).with_row_index("__row")
    rows = _ids_as(rows, C.ITEM, item_ids.dtype, "history", item)
    vocab = pl.DataFrame({C.ITEM: item_ids, C.INDEX: np.arange(1, len(item_ids) + 1)})
    known = rows.join(vocab, on=C.ITEM).sort(C.USER, "__time", "__row")
    users = known[C.USER].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else \
        np.zeros(0, np.int64)
    offsets = np.r_[starts, len(users)].astype(np.int64)
    ids = users[starts]
    ids = ids.astype(str) if ids.dtype == object else ids
    return UserHistories(ids, known[C.INDEX].to_numpy().astype(np.int64), offsets), \
        rows.height - known.height


def recent_from(events: Any, *, user: str = C.USER, item: str = C.ITEM,
                timestamp: str | None = C.TIMESTAMP) -> dict[Any, list[Any]]:
    """Each user's events of an events frame (pandas or polars), oldest first (by `timestamp`,
    ties in row order; rows in time order without one), as item ids: what
    `RecommendRequest.recent` takes."""
    table = to_polars(events, "events")
    if timestamp is not None and timestamp not in table.columns:
        timestamp = None
    _need(table, "events", [user, item])
    order = pl.int_range(pl.len()) if timestamp is None else pl.col(timestamp)
    rows = (table.select(pl.col(user).alias(C.USER), pl.col(item).alias(C.ITEM),
                         order.alias("__time")).with_row_index("__row")
            .sort("__time", "__row").group_by(C.USER, maintain_order=True).agg(C.ITEM))
    return dict(zip(rows[C.USER].to_list(), rows[C.ITEM].to_list(), strict=True))


def evaluate_frame(ranker: Ranker, histories: UserHistories, test: Any, *, ks: Sequence[int],
                   user: str = C.USER, item: str = C.ITEM) -> dict[str, Any]:
    """Rank the top max(`ks`) items for every user of `test` that has a history (viewed items
    left out) through `ranker`'s recommend path (`Ranker.answer`) and measure them against
    `test` (`frame_metrics.compute`; popularity by the histories). The report says what was
    scored: users, users without a history (left out), held-out events and how many of them
    name items the model does not know."""
    item_ids = ranker.items[C.ITEM]
    table = to_polars(test, "test")
    _need(table, "test", [user, item])
    held = table.select(pl.col(user).alias(C.USER), pl.col(item).alias(C.ITEM))
    held = _ids_as(held, C.ITEM, item_ids.dtype, "test", item)
    wanted = held[C.USER].unique(maintain_order=True)
    ks = sorted(set(ks))
    request = RecommendRequest(users=wanted.to_list(), k=ks[-1], on_unknown="skip")
    ranking = ranker.answer(request, histories)
    found, items, scores = ranking.query.keys, ranking.items, ranking.scores
    if not found:
        raise DataError(f"test: none of its {len(wanted):,} users has a history to recommend "
                        f"after (the model knows {len(histories):,} users); check the "
                        f"{user!r} column, or pass history=")
    rows, cols = np.nonzero(np.isfinite(scores))
    found = pl.Series(found, dtype=held[C.USER].dtype)
    recs = pl.DataFrame({C.USER: found.gather(rows), C.ITEM: item_ids.gather(items[rows, cols] - 1),
                         C.RANK: cols + 1})
    held = held.filter(pl.col(C.USER).is_in(found.implode()))
    train = pl.DataFrame({C.ITEM: item_ids.gather(histories.flat - 1)})
    metrics = compute(recs, held, ks, train=train, catalog=len(item_ids))
    return {
        "protocol": "held-out frame",
        "users": len(found),
        "users_without_history": len(wanted) - len(found),
        "events": held.height,
        "unknown_items": int((~held[C.ITEM].is_in(item_ids.implode())).sum()),
        "candidates": len(item_ids),
        "filter_viewed": True,
        **metrics,
    }


def _events_of(corpus: SequenceCorpus) -> pl.DataFrame:
    """A corpus's sequences as events: user, item, timestamp (the position, oldest first)."""
    return pl.DataFrame({C.USER: np.repeat(corpus.user_ids, corpus.lengths),
                         C.ITEM: corpus.item_ids[corpus.items_flat - 1],
                         C.TIMESTAMP: np.arange(corpus.n_interactions)})


def _need(table: pl.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{name}: no column(s) {', '.join(map(repr, missing))}; it has "
                        f"{table.columns}. Name the right ones with user=, item= and "
                        "timestamp=")


def _ids_as(table: pl.DataFrame, column: str, dtype: pl.DataType, name: str, source: str
            ) -> pl.DataFrame:
    """`table` with its id `column` cast to the model's id type; numbers for text ids (or
    text for numbers) are refused, naming the column."""
    have = table[column].dtype
    if have == dtype:
        return table
    if have.is_integer() and dtype.is_integer():
        return table.with_columns(pl.col(column).cast(dtype))
    raise DataError(f"{name}: column {source!r} holds {have} but the model's item ids are "
                    f"{dtype}; pass ids of the kind the model was trained with")
