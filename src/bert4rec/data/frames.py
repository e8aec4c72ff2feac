"""DataFrames handed in from Python (pandas or polars) as `Interactions`: the same column checks
as a log file gets, with errors that name the column, the row and the argument to change; and
results handed back in the kind of frame that came in (`handed_out`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from bert4rec.data.columns import GENRES, INDEX, ITEM, TITLE
from bert4rec.data.interactions import (
    TABLE_SUFFIXES,
    Interactions,
    LogColumns,
    Origin,
    id_column,
    normalise_events,
    read_table,
)
from bert4rec.data.mlformats import genres_expr
from bert4rec.errors import DataError

EVENTS_HINT = "Name the right ones with user=, item=, timestamp= and rating=."
ITEMS_HINT = "Name the right ones with item=, title= and genres=."
ITEM_FLAGS_HINT = "Name the right ones with --item-col, --title-col and --genres-col."
ROW_ORDER = "__bert4rec_row__"
"""The column that stands for time when no timestamp column is named: the row number."""


def is_pandas(frame: Any) -> bool:
    """Whether `frame` is a pandas DataFrame (told without importing pandas)."""
    return type(frame).__module__.partition(".")[0] == "pandas" and hasattr(frame, "columns")


def to_polars(frame: Any, name: str) -> pl.DataFrame:
    """A polars DataFrame (or LazyFrame) as it is, a pandas DataFrame converted; anything else
    is refused by its type. The index of a pandas frame is not a column: `reset_index()` first
    to use it."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pl.DataFrame):
        return frame
    if is_pandas(frame):
        try:
            return pl.from_pandas(frame)
        except ImportError as err:
            raise DataError(f"{name}: converting a pandas DataFrame needs pyarrow ({err}); "
                            "pip install 'bert4rec[pandas]', or pass a polars DataFrame"
                            ) from err
        except (TypeError, ValueError, pl.exceptions.PolarsError) as err:
            raise DataError(f"{name}: {_pandas_problem(frame)}cannot convert this pandas "
                            f"DataFrame to polars ({str(err).splitlines()[0]})") from err
    raise DataError(f"{name}: expected a pandas or polars DataFrame, got {type(frame).__name__}")


def handed_out(frame: pl.DataFrame, pandas: bool) -> Any:
    """A result as the caller's kind of frame: pandas when a pandas frame went in (genres
    become arrays of names), else polars as it is."""
    if not pandas:
        return frame
    try:
        return frame.to_pandas()
    except ImportError as err:
        raise DataError(f"answering in pandas needs pyarrow ({err}); pip install "
                        "'bert4rec[pandas]'") from err


def _pandas_problem(frame: Any) -> str:
    """Which column of a pandas frame polars cannot take, and why, as the start of a message:
    a column that mixes numbers and text is the usual one."""
    for column in frame.columns:
        try:
            pl.from_pandas(frame[[column]])
        except (TypeError, ValueError, ImportError, pl.exceptions.PolarsError):
            kinds = sorted({type(value).__name__ for value in frame[column].head(10_000)})
            mixed = f" mixes {' and '.join(kinds)} values" if len(kinds) > 1 else ""
            return (f"column {str(column)!r}{mixed}; make it one kind (.astype(str) for ids "
                    "that are text); ")
    return ""


def events_from_frame(frame: Any, columns: LogColumns, name: str = "DataFrame") -> pl.DataFrame:
    """The events (user, item, timestamp[, rating]) of a frame, checked and typed as a log
    file's are. `columns.timestamp` None: the rows are in time order."""
    table = to_polars(frame, name)
    if table.height == 0:
        raise DataError(f"{name}: the frame has no rows; expected one row per interaction")
    if columns.timestamp is None:
        table = table.with_row_index(ROW_ORDER)
        columns = LogColumns(columns.user, columns.item, ROW_ORDER, columns.rating)
    return normalise_events(table, columns, Origin(name, lines=False, column_hint=EVENTS_HINT))


def items_from_frame(frame: Any, item: str, title: str = TITLE, genres: str = GENRES, *,
                     name: str = "items", hint: str = ITEMS_HINT, lines: bool = False
                     ) -> pl.DataFrame:
    """The item table (item, title, genres, then any further columns, kept as they are) of a
    frame such as MovieLens's movies: ids in the `item` column, titles and genres where those
    columns exist (genres as a list, or text "A|B"). Titles may be missing for some items; ids
    may not. `hint` says how the caller names the columns; `lines`: errors count file lines
    (after a header), not rows."""
    table = to_polars(frame, name)
    if item not in table.columns:
        raise DataError(f"{name}: no item column {item!r}; it has {table.columns}. The item "
                        f"table names its items in the same column as the events. {hint}")
    if title not in table.columns and genres not in table.columns:
        raise DataError(f"{name}: neither a title column {title!r} nor a genres column "
                        f"{genres!r}; it has {table.columns}. {hint}")
    extras = [c for c in table.columns if c not in (item, title, genres)]
    clash = next((c for c in extras if c in (INDEX, ITEM, TITLE, GENRES)), None)
    if clash is not None:
        raise DataError(f"{name}: column {clash!r} would clash with the item table's own "
                        f"{clash!r} column; rename or drop it. {hint}")
    ids = id_column(table[item], item, Origin(name, lines=lines, column_hint=hint))
    titles = _titles(table, title, name)
    return pl.DataFrame({ITEM: ids, TITLE: titles}).with_columns(
        _genres(table, genres, name), *(table[c] for c in extras))


def read_item_file(path: str | Path, item: str, title: str = TITLE, genres: str = GENRES,
                   hint: str = ITEM_FLAGS_HINT) -> pl.DataFrame:
    """The item table of a CSV, TSV or Parquet file (`bert4rec train --items FILE`), as
    `items_from_frame` gives it; errors name the file, the column and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a CSV, TSV or Parquet item "
                                "table)")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unknown item table format {suffix!r}; expected one of "
                        f"{', '.join(sorted(TABLE_SUFFIXES))}")
    table = read_table(path, TABLE_SUFFIXES[suffix])
    if table.height == 0:
        raise DataError(f"{path}: the file holds no items (only a header, or empty)")
    return items_from_frame(table, item, title, genres, name=str(path), hint=hint,
                            lines=suffix not in (".parquet", ".pq"))


def _titles(table: pl.DataFrame, title: str, name: str) -> pl.Series:
    if title not in table.columns:
        return pl.Series(TITLE, [None] * table.height, dtype=pl.String)
    if table[title].dtype.is_nested():
        raise DataError(f"{name}: column {title!r} holds {table[title].dtype}; expected text")
    return table[title].cast(pl.String).alias(TITLE)


def _genres(table: pl.DataFrame, genres: str, name: str) -> pl.Series:
    """Genres as List(String): text split on "|", lists of text as they are."""
    if genres not in table.columns:
        return pl.Series(GENRES, [None] * table.height, dtype=pl.List(pl.String))
    dtype = table[genres].dtype
    if dtype == pl.String or dtype == pl.Categorical:
        return table.select(genres_expr(pl.col(genres).cast(pl.String)))[GENRES]
    if isinstance(dtype, pl.List | pl.Array) and not dtype.inner.is_nested():
        return table[genres].cast(pl.List(pl.String)).alias(GENRES)
    raise DataError(f"{name}: column {genres!r} holds {dtype}; expected text such as "
                    "'Comedy|Drama' or a list of genre names")


def interactions_from_frames(events: Any, columns: LogColumns, items: Any = None,
                             title: str = TITLE, genres: str = GENRES) -> Interactions:
    """`Interactions` from an events frame and an optional item table keyed by the same item
    column name."""
    table = None if items is None else items_from_frame(items, columns.item, title, genres)
    return Interactions(events_from_frame(events, columns), table, "DataFrame")
