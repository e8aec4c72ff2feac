"""`LeftOut`: what preparing a log takes away, kept so that the package can honour and explain it.

The rating filter drops events (a film rated 2 is no wish for more of the same), yet the user
did see that film: `seen` keeps, per kept user, the items of dropped events, so that
recommendations can leave out everything a user interacted with. The user and item filters
drop whole users and items: `users` and `items` keep their counts, so that asking for one
says why it is missing and which setting keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from bert4rec.data.columns import ITEM, RATING, USER

EVENTS = "events"
"""How many events of the log a left-out user or item had."""
RATED = "rated"
"""How many of them passed the rating filter (all of them without one)."""


@dataclass(frozen=True)
class LeftOut:
    """`seen_flat[seen_offsets[u]:seen_offsets[u + 1]]`: vocabulary indices of items that kept
    user `u` (corpus order) had only in events the rating filter dropped. `users` (user,
    events, rated) and `items` (item, events, rated): the users and items of the log (or of
    the item table, with no events) that the filters left out."""

    seen_flat: np.ndarray
    seen_offsets: np.ndarray
    users: pl.DataFrame
    items: pl.DataFrame

    @classmethod
    def empty(cls, n_users: int, user_dtype: Any = pl.Int64, item_dtype: Any = pl.Int64
              ) -> LeftOut:
        """Nothing left out, for `n_users` kept users."""
        return cls(np.zeros(0, np.int64), np.zeros(n_users + 1, np.int64),
                   _counts(USER, user_dtype), _counts(ITEM, item_dtype))

    def seen(self, user: int) -> np.ndarray:
        return self.seen_flat[self.seen_offsets[user] : self.seen_offsets[user + 1]]


def left_out(events: pl.DataFrame, items: pl.DataFrame | None, min_rating: float | None,
             user_ids: np.ndarray, item_ids: np.ndarray) -> LeftOut:
    """What the filters took from `events` (user, item[, rating]) and the item table `items`,
    given the users and items kept (`user_ids`, `item_ids`, ascending, as the corpus holds
    them; item `item_ids[i]` is vocabulary index i + 1)."""
    rated = (pl.col(RATING) >= min_rating if min_rating is not None and RATING in events.columns
             else pl.lit(True))
    kept_users = pl.Series(USER, user_ids).cast(events[USER].dtype)
    kept_items = pl.Series(ITEM, item_ids).cast(events[ITEM].dtype)
    users = _dropped(events, USER, kept_users, rated)
    dropped_items = _dropped(events, ITEM, kept_items, rated)
    if items is not None and items.height:
        listed = items.select(pl.col(ITEM).cast(events[ITEM].dtype, strict=False)).drop_nulls()
        elsewhere = pl.concat([kept_items, dropped_items[ITEM]])
        only_listed = listed.unique().filter(~pl.col(ITEM).is_in(elsewhere.implode()))
        dropped_items = pl.concat([dropped_items, only_listed.with_columns(
            pl.lit(0, pl.Int64).alias(EVENTS), pl.lit(0, pl.Int64).alias(RATED))])
    if min_rating is not None and RATING in events.columns:
        low = events[RATING].to_numpy() < min_rating
        seen_flat, seen_offsets = _seen(events[USER].to_numpy()[low],
                                        events[ITEM].to_numpy()[low], user_ids, item_ids)
    else:
        seen_flat, seen_offsets = np.zeros(0, np.int64), np.zeros(len(user_ids) + 1, np.int64)
    return LeftOut(seen_flat, seen_offsets, users.sort(USER), dropped_items.sort(ITEM))


def _seen(users: np.ndarray, items: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """(flat, offsets) over the kept users (`user_ids`, ascending) of the distinct kept items
    (vocabulary indices, ascending) among the events `users[n]` had with `items[n]`; events
    of users or items not kept are left out. Sorted searches and one sort: vectorised."""
    position = _found(user_ids, users)
    index = _found(item_ids, items) + 1
    kept = (position >= 0) & (index >= 1)
    width = len(item_ids) + 1
    codes = np.sort(position[kept] * width + index[kept], kind="stable")  # not np.unique:
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes  # numpy 2
    # hashes, 10 s where this takes 0.2 on 2.5 million codes; logs grouped by user sort fast
    counts = np.bincount(codes // width, minlength=len(user_ids))
    return codes % width, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _found(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The position of each of `values` in the ascending `ids`, -1 where absent: a lookup
    table for whole numbers in a compact range (as `corpus._vocabulary`), sorted search
    otherwise (text ids, which polars hands over as Python objects, as numpy text)."""
    if len(ids) == 0 or len(values) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    if ids.dtype.kind in "iu" and values.dtype.kind in "iu":
        low, high = int(ids[0]), int(ids[-1])
        if high - low < 4 * len(ids) + 2**20:
            table = np.full(high - low + 1, -1, dtype=np.int64)
            table[ids - low] = np.arange(len(ids))
            inside = (values >= low) & (values <= high)
            return np.where(inside, table[np.clip(values - low, 0, high - low)], -1)
    values = values.astype(str) if values.dtype == object else values
    at = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    return np.where(ids[at] == values, at, -1)


def _dropped(events: pl.DataFrame, column: str, kept: pl.Series, rated: pl.Expr
             ) -> pl.DataFrame:
    """The ids of `column` not in `kept`, with their event and rated-event counts."""
    return (events.filter(~pl.col(column).is_in(kept.implode()))
            .group_by(column).agg(pl.len().cast(pl.Int64).alias(EVENTS),
                                  rated.sum().cast(pl.Int64).alias(RATED)))


def _same_kind(dtype: pl.DataType, value: Any) -> bool:
    """Whether `value` is an id of a column of `dtype`: a whole number of integer ids, text
    of text ids."""
    if isinstance(value, bool):
        return False
    if dtype.is_integer():
        return isinstance(value, int | np.integer)
    return dtype == pl.String and isinstance(value, str | np.str_)


def _counts(column: str, dtype: Any) -> pl.DataFrame:
    return pl.DataFrame(schema={column: dtype, EVENTS: pl.Int64, RATED: pl.Int64})


def why_missing(kind: str, value: Any, left: pl.DataFrame | None, settings: Any) -> str:
    """Why user or item (`kind`) `value` is not in the model, from the left-out table `left`
    (a `user` or `item` column, events, rated) and the prepare settings (`min_rating`,
    `min_user_interactions`, `min_item_interactions`): a clause to add to an error, or ""
    when nothing is known (a run written before bert4rec kept this, an id of another kind)."""
    if left is None or settings is None:
        return ""
    column = USER if kind == "user" else ITEM
    if column not in left.columns or not _same_kind(left[column].dtype, value):
        return ""  # a number asked of text ids, or text of numbers: the caller says so
    row = left.filter(pl.col(column) == value)
    if row.height == 0:
        return f": no event of the log names this {kind}"
    events, rated = int(row[EVENTS][0]), int(row[RATED][0])
    if events == 0:
        return ": it is in the item table but no event of the log names it"
    floor = settings.min_rating
    if rated == 0:
        return (f": none of its {_count(events, 'event')} has a rating of {floor:g} or more "
                "(min_rating=None keeps every rating)")
    has = f"{_count(rated, 'event')} rated {floor:g} or more (of {events:,})" if rated < events \
        else _count(events, "event")
    if kind == "user":
        enough = settings.min_user_interactions
        if rated < enough:
            return (f": it has {has}, and min_user_interactions={enough} keeps users with "
                    f"{enough} or more (lower it to keep such users)")
        return (f": it has {has}, but min_item_interactions={settings.min_item_interactions} "
                f"left out some of their items, leaving fewer than min_user_interactions="
                f"{enough} (lower either to keep such users)")
    enough = settings.min_item_interactions
    if rated < enough:
        return (f": it has {has}, and min_item_interactions={enough} keeps items with "
                f"{enough} or more (lower it to keep such items)")
    return (f": it has {has}, all by users left out for having fewer than "
            f"min_user_interactions={settings.min_user_interactions} (lower it to keep them)")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
