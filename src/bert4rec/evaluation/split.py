"""Splitters for your own evaluation: an events frame in, its training and test parts out.

    train, test = bert4rec.split.by_time(ratings, fraction=0.1, timestamp="timestamp")
    train, test = bert4rec.split.leave_last(ratings, n=1, user="userId")

`by_time` is the global temporal split of the data-leakage literature (Ji et al., TOIS 2023;
Sun, RecSys 2023): one cut in time for everyone, so nothing after the cut is ever training
history. `leave_last` holds out each user's last events, as the built-in evaluation does; it
leaks, because one user's test event may come before another user's training events.

Both keep every column and the row order; a pandas frame gives two pandas frames (its index
kept), a polars frame two polars frames. Errors name the column at fault.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import polars as pl

from bert4rec.data.columns import TIMESTAMP, USER
from bert4rec.data.frames import to_polars
from bert4rec.errors import DataError


def leave_last(events: Any, n: int = 1, *, user: str = USER,
               timestamp: str | None = TIMESTAMP) -> tuple[Any, Any]:
    """(train, test): each user's last `n` events (by `timestamp`, ties in row order; None:
    the rows are in time order) in test, the rest in train. A user with `n` events or fewer
    stays wholly in train: a test needs some history to predict from."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number of events, at least 1; got {n!r}")
    table = to_polars(events, "events")
    _need(table, user, "user")
    key = pl.int_range(pl.len()) if timestamp is None else _seconds(table, timestamp)
    rows = (table.select(pl.col(user), key.alias("__time")).with_row_index("__row")
            .sort(user, "__time", "__row"))
    from_end = pl.len().over(user) - pl.int_range(pl.len()).over(user) - 1
    held = rows.select("__row", ((from_end < n) & (pl.len().over(user) > n)).alias("held"))
    is_test = np.zeros(table.height, dtype=bool)
    is_test[held["__row"].to_numpy()] = held["held"].to_numpy()
    return _parts(events, table, is_test)


def by_time(events: Any, *, at: Any = None, fraction: float | None = None,
            timestamp: str = TIMESTAMP) -> tuple[Any, Any]:
    """(train, test): events before the cut in train, events at or after it in test.

    Give the cut as `at` (a number in the column's unit, a date, a datetime or an ISO text
    such as "2017-01-01"; dates count as UTC when the column holds numbers, read as seconds
    since 1970) or as `fraction`, the share of events to hold out: the cut is then the time
    of the earliest of the last `fraction` of events, so ties at the cut go to test too."""
    if (at is None) == (fraction is None):
        raise ValueError("by_time takes at=... (a time) or fraction=... (a share of the "
                         "events), not both and not neither")
    table = to_polars(events, "events")
    times = table.select(_seconds(table, timestamp))[timestamp]
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0 < fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        ordered = np.sort(times.to_numpy())
        cut = ordered[min(len(ordered) - 1, math.floor(len(ordered) * (1 - fraction)))]
    else:
        cut = _cut_seconds(at, table[timestamp].dtype)
    return _parts(events, table, (times >= cut).to_numpy())


def _need(table: pl.DataFrame, column: str, argument: str) -> None:
    if column not in table.columns:
        raise DataError(f"events: no column {column!r}; it has {table.columns}. Name the "
                        f"right one with {argument}=")


def _seconds(table: pl.DataFrame, column: str) -> pl.Expr:
    """The time column as a number to compare (seconds since 1970 for dates and datetimes,
    ISO texts parsed), named as the column. Refuses empty values and other types."""
    _need(table, column, "timestamp")
    series = table[column]
    if series.null_count():
        row = int(np.flatnonzero(series.is_null().to_numpy())[0])
        raise DataError(f"events: row {row}, column {column!r}: value is empty")
    if series.dtype.is_numeric():
        return pl.col(column)
    if series.dtype in (pl.Date, pl.Datetime) or isinstance(series.dtype, pl.Datetime):
        return pl.col(column).dt.epoch("s")
    if series.dtype == pl.String:
        parsed = _parsed(series)
        if parsed is not None and parsed.null_count() == 0:
            return pl.lit(parsed.dt.epoch("s")).alias(column)
    raise DataError(f"events: column {column!r} holds {series.dtype} values; expected "
                    "numbers, dates, datetimes or ISO date texts")


def _cut_seconds(at: Any, dtype: pl.DataType) -> float:
    """`at` as `_seconds` reads the column: numbers as they are, dates and texts as seconds
    since 1970 (UTC when naive)."""
    if isinstance(at, bool):
        raise ValueError(f"at must be a time, got {at!r}")
    if isinstance(at, int | float | np.integer | np.floating) and dtype.is_numeric():
        return float(at)
    if isinstance(at, str):
        parsed = _parsed(pl.Series([at]))
        if parsed is None or parsed.null_count():
            raise ValueError(f"at={at!r} is not a date or datetime such as '2017-01-01'")
        return float(parsed.dt.epoch("s")[0])
    if isinstance(at, dt.datetime):
        when = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
        return when.timestamp()
    if isinstance(at, dt.date):
        return dt.datetime(at.year, at.month, at.day, tzinfo=dt.timezone.utc).timestamp()
    try:
        series = pl.Series([at])  # numpy datetime64 and the like
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        series = None
    if series is not None and series.dtype.is_temporal():
        return float(series.dt.epoch("s")[0])
    raise ValueError(f"at={at!r} does not fit a time column of {dtype}: give a number in the "
                     "column's unit, a date, a datetime or an ISO text")


def _parsed(texts: pl.Series) -> pl.Series | None:
    """ISO dates or datetimes as datetimes (null where one does not parse); None when no
    format fits the texts at all."""
    try:
        return texts.str.to_datetime(strict=False)
    except pl.exceptions.ComputeError:
        return None


def _parts(events: Any, table: pl.DataFrame, is_test: np.ndarray) -> tuple[Any, Any]:
    """The rows of `events` outside and inside `is_test`, in the frame type that came in."""
    if isinstance(events, pl.DataFrame | pl.LazyFrame):
        mask = pl.Series(is_test)
        return table.filter(~mask), table.filter(mask)
    return events[~is_test], events[is_test]
