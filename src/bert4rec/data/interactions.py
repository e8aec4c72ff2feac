"""Interaction logs: the `Interactions` hand-off and readers for CSV, TSV, Parquet and text.

Every reader returns the same shape: an events frame with `user`, `item`, `timestamp` and
optionally `rating`, plus an optional item table (`item`, `title`, `genres`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bert4rec.data.columns import ITEM, RATING, TIMESTAMP, USER
from bert4rec.errors import DataError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".parquet": None, ".pq": None}
TEXT_SUFFIXES = {".txt", ".dat"}


@dataclass(frozen=True)
class Interactions:
    """Events (user, item, timestamp[, rating]) and, where the source has one, an item table."""

    events: pl.DataFrame
    items: pl.DataFrame | None
    name: str


@dataclass(frozen=True)
class Origin:
    """Where a table came from, as error messages name it: `name` (a file, or "DataFrame"),
    whether its rows are file lines after one header line, and how a caller names columns."""

    name: str
    lines: bool
    column_hint: str

    def row(self, row: int) -> str:
        """A 0-based data row as the user sees it: `line N` of a file, else `row N`."""
        return f"line {row + 2}" if self.lines else f"row {row}"


FLAGS_HINT = "Name the right ones with --user-col, --item-col, --time-col and --rating-col."


@dataclass(frozen=True)
class LogColumns:
    """Which columns of a log hold the user, item, timestamp and (optional) rating."""

    user: str = USER
    item: str = ITEM
    timestamp: str = TIMESTAMP
    rating: str | None = RATING


def read_log(path: str | Path, columns: LogColumns = LogColumns()) -> Interactions:
    """Read a CSV, TSV or Parquet log, or a "user item" text file (file order is time order)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a CSV, TSV, Parquet or .txt log)")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_sequence_text(path)
    if suffix not in TABLE_SUFFIXES:
        known = ", ".join(sorted([*TABLE_SUFFIXES, *TEXT_SUFFIXES]))
        raise DataError(f"{path}: unknown log format {suffix!r}; expected one of {known}")
    frame = read_table(path, TABLE_SUFFIXES[suffix])
    if frame.height == 0:
        raise DataError(f"{path}: the file holds no interactions (only a header, or empty)")
    origin = Origin(str(path), suffix not in (".parquet", ".pq"), FLAGS_HINT)
    return Interactions(normalise_events(frame, columns, origin), None, path.name)


def read_table(path: Path, separator: str | None) -> pl.DataFrame:
    """Read with inferred types; if a value late in the file breaks the inferred type, read
    everything as text so that `normalise_events` can name the offending line."""
    kind = path.suffix[1:]
    try:
        if separator is None:
            return pl.read_parquet(path)
        try:
            return pl.read_csv(path, separator=separator, infer_schema_length=10_000)
        except pl.exceptions.ComputeError:
            return pl.read_csv(path, separator=separator, infer_schema=False)
    except pl.exceptions.NoDataError as err:
        raise DataError(f"{path}: the file is empty; expected a header and rows") from err
    except (pl.exceptions.PolarsError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{path}: cannot be read as {kind}: {first}; check that it is a {kind} file "
            "with a header row"
        ) from err


def normalise_events(frame: pl.DataFrame, columns: LogColumns, origin: Origin) -> pl.DataFrame:
    """Pick and rename the configured columns and check their types, naming the bad line."""
    wanted = {USER: columns.user, ITEM: columns.item, TIMESTAMP: columns.timestamp}
    if columns.rating is not None and (columns.rating in frame.columns or columns.rating != RATING):
        wanted[RATING] = columns.rating
    missing = [source for source in wanted.values() if source not in frame.columns]
    if missing:
        raise DataError(
            f"{origin.name}: missing column(s) {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(repr, frame.columns))}. {origin.column_hint}"
        )
    frame = frame.select([pl.col(source).alias(name) for name, source in wanted.items()])
    for name, source in wanted.items():
        _check_scalar(frame[name], source, origin)
    frame = frame.with_columns(
        _id_column(frame, USER, wanted[USER], origin),
        _id_column(frame, ITEM, wanted[ITEM], origin),
        _timestamp_column(frame, wanted[TIMESTAMP], origin),
    )
    if RATING in frame.columns:
        frame = frame.with_columns(_numeric(frame, RATING, wanted[RATING], origin, pl.Float64))
    return frame


def id_column(series: pl.Series, source: str, origin: Origin) -> pl.Series:
    """Ids as Int64 (whole numbers) or String, checked as an events column's are: no empty
    values, no nested values, no fractions."""
    _check_scalar(series, source, origin)
    return _id_column(series.alias(ITEM).to_frame(), ITEM, source, origin)


def _check_scalar(series: pl.Series, source: str, origin: Origin) -> None:
    """One number, text or date per row: nested columns (lists, structs) are refused."""
    if series.dtype.is_nested() or series.dtype in (pl.Binary, pl.Object, pl.Null):
        raise DataError(
            f"{origin.name}: column {source!r} holds {series.dtype} values; expected one "
            "number or text value (or a date) per row"
        )


INT64_MAX = 2**63 - 1


def _id_column(frame: pl.DataFrame, name: str, source: str, origin: Origin) -> pl.Series:
    series = frame[name]
    _check_no_nulls(series, source, origin)
    if series.dtype.is_integer():
        if series.dtype.is_unsigned_integer() and (series > INT64_MAX).any():
            row = int(np.flatnonzero((series > INT64_MAX).to_numpy())[0])
            raise DataError(
                f"{origin.name}: {origin.row(row)}, column {source!r}: id {series[row]} is "
                f"above {INT64_MAX:,}, the largest whole-number id bert4rec keeps; pass such "
                "ids as text (cast the column to strings)"
            )
        return series.cast(pl.Int64)
    if series.dtype.is_float():
        return _numeric(frame, name, source, origin, pl.Int64)
    return series.cast(pl.String)


def _timestamp_column(frame: pl.DataFrame, source: str, origin: Origin) -> pl.Series:
    series = frame[TIMESTAMP]
    if series.dtype.is_temporal() and series.dtype != pl.Time:
        _check_no_nulls(series, source, origin)
        if series.dtype == pl.Duration:
            raise DataError(f"{origin.name}: column {source!r} holds durations; expected "
                            "points in time (numbers, dates or datetimes)")
        return series.dt.epoch("s").alias(TIMESTAMP)
    if series.dtype == pl.String:
        parsed = series.str.strip_chars().cast(pl.Int64, strict=False)
        if parsed.null_count() > series.null_count():
            try:
                dates = series.str.to_datetime(strict=False)
            except pl.exceptions.ComputeError:  # no date format fits: report the bad line below
                dates = None
            if dates is not None and dates.null_count() == series.null_count():
                return dates.dt.epoch("s").alias(TIMESTAMP)
        series = parsed if parsed.null_count() == series.null_count() else series
    return _numeric(frame.with_columns(series), TIMESTAMP, source, origin, pl.Int64)


def _numeric(
    frame: pl.DataFrame, name: str, source: str, origin: Origin, dtype: type[pl.DataType]
) -> pl.Series:
    """Cast a column to a number, or fail naming the first offending line and value."""
    series = frame[name]
    _check_no_nulls(series, source, origin)
    cast = series.cast(dtype, strict=False)
    bad = cast.is_null() & series.is_not_null()
    if dtype == pl.Int64 and series.dtype.is_float():
        bad = bad | (series != series.floor())
    infinite = (~cast.is_finite().fill_null(True) if cast.dtype.is_float()
                else pl.repeat(False, len(cast), eager=True))
    bad = bad | infinite  # NaN and infinity are no rating: the filter would keep or drop them
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        kind = "a finite number" if infinite[int(rows[0])] else "a number"
        more = f" ({len(rows):,} such rows; fix or remove them)" if len(rows) > 1 else ""
        raise DataError(
            f"{origin.name}: {origin.row(int(rows[0]))}, column {source!r}: expected {kind}, "
            f"got {series[int(rows[0])]!r}{more}"
        )
    return cast.alias(name)


def _check_no_nulls(series: pl.Series, source: str, origin: Origin) -> None:
    if series.null_count():
        row = int(np.flatnonzero(series.is_null().to_numpy())[0])
        raise DataError(f"{origin.name}: {origin.row(row)}, column {source!r}: value is empty")


def read_sequence_text(path: str | Path) -> Interactions:
    """Read the SASRec/BERT4Rec benchmark format: "user item" per line, or "user item1 item2 ..."
    per line; file order is time order, so the timestamp is the position in the file."""
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    if lines and "::" in lines[0]:
        raise DataError(
            f"{path}: line 1 holds '::': this looks like a MovieLens ratings.dat; pass the "
            "release folder (or zip) that holds it, not the file"
        )
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise DataError(
                f"{path}: line {number}: expected 'user item' or 'user item1 item2 ...', "
                f"got {line.strip()!r}"
            )
        users.extend([tokens[0]] * (len(tokens) - 1))
        items.extend(tokens[1:])
    if not users:
        raise DataError(f"{path}: the file holds no interactions")
    events = pl.DataFrame({USER: users, ITEM: items})
    events = events.with_columns(
        _text_ids(events[USER]),
        _text_ids(events[ITEM]),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(TIMESTAMP),
    )
    return Interactions(events, None, path.name)


def _text_ids(series: pl.Series) -> pl.Series:
    as_int = series.cast(pl.Int64, strict=False)
    return as_int if as_int.null_count() == 0 else series

