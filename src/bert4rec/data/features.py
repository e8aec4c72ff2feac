"""Item side information as model features, and the reader for attribute files.

The categorical and multi-valued columns of the item table (genres, category, brand, tags, an
attribute list) become features: each distinct value of each chosen column (a "feature value")
gets an embedding in the model, and every item lists the values it has. A `title` column, when
named, counts by its words, each hashed into one of `TITLE_BUCKETS` buckets (a fixed-size
hashing trick: no vocabulary to download, and a new item's title words land in known buckets).

Value indices: 0 pads an item's list, 1 (`NO_VALUE`) stands for "no known value" (an item
without any), 2.. are the values, in column order and then by name. A value carried by fewer
than `MIN_ITEMS_PER_VALUE` items is dropped: it would tell nothing its one item's id does not.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bert4rec.data.columns import GENRES, INDEX, ITEM, TITLE
from bert4rec.data.frames import ITEM_FLAGS_HINT, items_from_frame, read_item_file, to_polars
from bert4rec.data.vocab import PAD
from bert4rec.errors import DataError

AUTO = "auto"
"""The `model.item_features` setting that takes every categorical column there is."""
NO_VALUE = 1
"""The value index of an item with no known value: its own learned vector and bias."""
MIN_ITEMS_PER_VALUE = 2
MAX_VALUES_PER_COLUMN = 32
"""Most values one item takes from one column (a long tag list keeps its first 32)."""
TITLE_BUCKETS = 1 << 14
TITLE_WORDS = 16
"""Most words of one title that count (the first ones)."""
ATTRIBUTES = "attributes"
"""The item-table column `read_attributes` fills."""

FEATURE, VALUE, VALUE_INDEX, ITEMS = "feature", "value", "value_index", "items"
"""The columns of the value vocabulary (`ItemFeatures.to_frame`, the run's features.parquet)."""
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class ItemFeatures:
    """The chosen columns, the vocabulary of their values (`vocabulary`: value_index, feature,
    value) and each vocabulary entry's value indices (`item_values` [vocab_size, slots],
    ascending, then padded with 0; padding and [MASK] have none)."""

    columns: tuple[str, ...]
    vocabulary: pl.DataFrame
    item_values: np.ndarray

    @property
    def size(self) -> int:
        """Rows of the model's value table: padding, `NO_VALUE` and every value."""
        return self.vocabulary.height + 2

    @property
    def slots(self) -> int:
        return self.item_values.shape[1]

    @classmethod
    def from_items(cls, table: pl.DataFrame, setting: str, vocab_size: int
                   ) -> ItemFeatures | None:
        """The features `setting` names ("" none, "auto", or "genres,brand") of an item table
        with `index` (vocabulary index 1..vocab_size - 2) and the named columns. None when
        nothing is chosen (or `auto` finds no categorical column)."""
        columns = chosen_columns(table, setting)
        if not columns:
            return None
        long = _values_long(table, columns)
        carried = long.group_by(FEATURE, VALUE).agg(pl.col(INDEX).n_unique().alias("n"))
        kept = carried.filter(pl.col("n") >= MIN_ITEMS_PER_VALUE)
        order = {name: position for position, name in enumerate(columns)}
        kept = kept.with_columns(pl.col(FEATURE).replace_strict(order).alias("order"))
        vocabulary = kept.sort("order", VALUE).select(
            pl.int_range(NO_VALUE + 1, NO_VALUE + 1 + pl.len(), dtype=pl.Int32).alias(VALUE_INDEX),
            FEATURE, VALUE)
        pairs = long.join(vocabulary, on=[FEATURE, VALUE]).select(INDEX, VALUE_INDEX)
        return cls(tuple(columns), vocabulary, _matrix(pairs, vocab_size))

    def encode(self, table: pl.DataFrame) -> np.ndarray:
        """The value indices [rows, slots] of the items of `table` (new items: rows in order),
        from this vocabulary: values it does not know are left out, an item with none left gets
        `NO_VALUE`, and an item with more than `slots` keeps the lowest indices."""
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise DataError(f"the new items have no column {missing[0]!r}, a feature the model "
                            f"was trained with ({', '.join(self.columns)}); they have "
                            f"{table.columns}")
        rows = table.select(pl.int_range(1, pl.len() + 1).alias(INDEX), *self.columns)
        pairs = _values_long(rows, list(self.columns)).join(
            self.vocabulary, on=[FEATURE, VALUE]).select(INDEX, VALUE_INDEX)
        return _matrix(pairs, table.height + 2, self.slots)[1:-1]

    def describe(self) -> str:
        """Each column with its number of values, for the training log."""
        counts = self.vocabulary.group_by(FEATURE).len()
        known = dict(zip(counts[FEATURE].to_list(), counts["len"].to_list(), strict=True))
        named = [f"{c} words ({known.get(c, 0):,} buckets)" if c == TITLE
                 else f"{c} ({known.get(c, 0):,} values)" for c in self.columns]
        featureless = int((self.item_values[1:-1, 0] == NO_VALUE).sum())
        return (", ".join(named) + f"; {featureless:,} of {len(self.item_values) - 2:,} items "
                "have no known value")

    def to_frame(self) -> pl.DataFrame:
        """The vocabulary with the items (vocabulary indices) that carry each value: one
        table that holds everything, written as the run's features.parquet."""
        rows, slots = np.nonzero(self.item_values)
        pairs = pl.DataFrame({INDEX: rows, VALUE_INDEX: self.item_values[rows, slots]},
                             schema={INDEX: pl.Int32, VALUE_INDEX: pl.Int32})
        members = pairs.group_by(VALUE_INDEX).agg(pl.col(INDEX).sort().alias(ITEMS))
        none = pl.DataFrame({VALUE_INDEX: [NO_VALUE], FEATURE: [""], VALUE: [""]},
                            schema=self.vocabulary.schema)
        return (pl.concat([none, self.vocabulary])
                .join(members, on=VALUE_INDEX, how="left", maintain_order="left")
                .with_columns(pl.col(ITEMS).fill_null(pl.lit([], pl.List(pl.Int32)))))

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, columns: tuple[str, ...], vocab_size: int,
                   slots: int, name: str) -> ItemFeatures:
        """Inverse of `to_frame` for a model of `vocab_size` entries and `slots` values per
        item; what does not fit raises `DataError` naming `name` (the file)."""
        wanted = {VALUE_INDEX: pl.Int32, FEATURE: pl.String, VALUE: pl.String,
                  ITEMS: pl.List(pl.Int32)}
        if dict(frame.schema) != wanted:
            raise DataError(f"{name}: columns {dict(frame.schema)}; expected {wanted}")
        if frame[VALUE_INDEX].to_list() != list(range(NO_VALUE, NO_VALUE + frame.height)):
            raise DataError(f"{name}: value_index must count 1, 2, ... in order")
        pairs = frame.select(VALUE_INDEX, ITEMS).explode(ITEMS).drop_nulls()
        indices = pairs[ITEMS].to_numpy()
        if len(indices) and (indices.min() < 1 or indices.max() > vocab_size - 2):
            raise DataError(f"{name}: an item index outside 1..{vocab_size - 2}")
        counts = np.bincount(indices, minlength=vocab_size)
        if counts.max(initial=0) > slots:
            raise DataError(f"{name}: an item has {counts.max()} values; the model takes {slots}")
        pairs = pairs.rename({ITEMS: INDEX})
        return cls(columns, frame.slice(1).drop(ITEMS), _matrix(pairs, vocab_size, slots))


def chosen_columns(table: pl.DataFrame, setting: str) -> list[str]:
    """The item-table columns `setting` names: none for "", for "auto" every column of text
    or lists whose values repeat across items (not the title, the id or numbers), else each
    comma-separated name, which must be a column of text, lists, whole numbers or `title`."""
    if setting == "":
        return []
    if setting == AUTO:
        return [c for c in table.columns if c not in (INDEX, ITEM, TITLE)
                and _categorical(table[c]) and _repeats(table[c])]
    names = [name.strip() for name in setting.split(",")]
    for name in names:
        if name not in table.columns or name in (INDEX, ITEM):
            usable = [c for c in table.columns if c not in (INDEX, ITEM)]
            raise DataError(f"item features: no column {name!r} in the item table; it has "
                            f"{usable} (pass --items FILE for an item table of your own)")
        if name != TITLE and not (_categorical(table[name]) or table[name].dtype.is_integer()):
            raise DataError(f"item features: column {name!r} holds {table[name].dtype}; a "
                            "feature is text, a list of text or whole numbers (a category)")
    if len(set(names)) != len(names):
        raise DataError(f"item features: {setting!r} names a column twice")
    return names


def _categorical(series: pl.Series) -> bool:
    """Text or categories, or a list of them or of whole numbers."""
    dtype = series.dtype
    if isinstance(dtype, pl.List | pl.Array):
        dtype = dtype.inner
        if dtype.is_integer():
            return True
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _repeats(series: pl.Series) -> bool:
    """Whether some value is shared by two or more items (an id-like column never is)."""
    values = series.explode() if isinstance(series.dtype, pl.List | pl.Array) else series
    values = values.drop_nulls()
    return values.n_unique() < len(values)


def _values_long(table: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """One row (index, feature, value) per value each item of `table` has in `columns`."""
    parts = []
    for column in columns:
        values = _title_words(table[column]) if column == TITLE else _value_lists(table[column])
        part = pl.DataFrame({INDEX: table[INDEX], VALUE: values})
        parts.append(part.explode(VALUE).drop_nulls(VALUE)
                     .with_columns(pl.lit(column).alias(FEATURE)))
    return pl.concat(parts).select(INDEX, FEATURE, VALUE).unique(maintain_order=True)


def _value_lists(series: pl.Series) -> pl.Series:
    """Each item's values of one column as a list of text (empty for none)."""
    if isinstance(series.dtype, pl.List | pl.Array):
        lists = series.cast(pl.List(pl.String))
    else:
        lists = series.cast(pl.String).to_frame().select(
            pl.concat_list(pl.col(series.name)).list.drop_nulls())[series.name]
    lists = lists.list.eval(pl.element().str.strip_chars().filter(pl.element() != "").unique(
        maintain_order=True)).list.head(MAX_VALUES_PER_COLUMN)
    return lists.fill_null(pl.lit([], pl.List(pl.String)))


def _title_words(series: pl.Series) -> pl.Series:
    """Each title's first `TITLE_WORDS` words (lower case), each as its bucket's number."""
    words = series.cast(pl.String).str.to_lowercase().str.extract_all(WORD.pattern)
    words = words.list.head(TITLE_WORDS).fill_null(pl.lit([], pl.List(pl.String)))
    distinct = words.explode().drop_nulls().unique()
    buckets = {word: str(zlib.crc32(word.encode()) % TITLE_BUCKETS) for word in distinct}
    return words.list.eval(pl.element().replace_strict(buckets, default=None,
                                                       return_dtype=pl.String))


def _matrix(pairs: pl.DataFrame, vocab_size: int, slots: int | None = None) -> np.ndarray:
    """(index, value_index) pairs as [vocab_size, slots] value indices, each row ascending
    then 0; item rows (1..vocab_size - 2) without a pair get `NO_VALUE`. `slots` None: the
    most values any item has; else rows keep their `slots` lowest."""
    pairs = pairs.unique().sort(INDEX, VALUE_INDEX)
    index, value = pairs[INDEX].to_numpy(), pairs[VALUE_INDEX].to_numpy()
    counts = np.bincount(index, minlength=vocab_size)
    width = max(1, int(counts.max(initial=0))) if slots is None else slots
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(index)) - starts[index]
    keep = position < width
    matrix = np.full((vocab_size, width), PAD, dtype=np.int64)
    matrix[index[keep], position[keep]] = value[keep]
    empty = counts == 0
    empty[[0, vocab_size - 1]] = False
    matrix[empty, 0] = NO_VALUE
    return matrix


def read_attributes(path: str | Path) -> pl.DataFrame:
    """An attribute file shaped like S3-Rec's `Beauty_item2attributes.json` (a JSON object:
    item id -> list of attribute ids or names) as an item table: `item` (whole numbers when
    every id is one), `title` (empty) and `attributes` (a list of text per item)."""
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file (expected an item -> attributes JSON "
                                "object)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(f"{path}: expected a JSON object mapping each item id to a list of "
                        "attributes, such as {\"4\": [1, 2, 3]}")
    for key, values in mapping.items():
        if not isinstance(values, list) or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            raise DataError(f"{path}: item {key!r}: expected a list of attribute ids or "
                            f"names, got {json.dumps(values)[:80]}")
    ids = pl.Series(ITEM, list(mapping))
    numeric = ids.cast(pl.Int64, strict=False)
    return pl.DataFrame({
        ITEM: numeric if numeric.null_count() == 0 else ids,
        TITLE: pl.Series(TITLE, [None] * len(ids), dtype=pl.String),
        ATTRIBUTES: pl.Series(ATTRIBUTES, [[str(v) for v in values] for values in
                                           mapping.values()], dtype=pl.List(pl.String)),
    })


def new_item_table(frame: object, item: str = ITEM, title: str = TITLE, genres: str = GENRES,
                   name: str = "items") -> pl.DataFrame:
    """An item table of new items (pandas or polars) as `items_from_frame` gives it; unlike
    a display table it may hold feature columns alone, without title or genres."""
    table = to_polars(frame, name)
    if title not in table.columns and genres not in table.columns:
        table = table.with_columns(pl.lit(None, pl.String).alias(title))
    return items_from_frame(table, item, title, genres, name=name)


def read_item_table(path: str | Path, item: str = ITEM, title: str = TITLE,
                    genres: str = GENRES, hint: str = ITEM_FLAGS_HINT) -> pl.DataFrame:
    """The item table of a file: a JSON attribute file (`read_attributes`) by its `.json`
    suffix, else a CSV, TSV or Parquet table (`read_item_file`; `hint` says how the caller
    names its columns)."""
    if Path(path).suffix.lower() == ".json":
        return items_from_frame(read_attributes(path), ITEM, name=str(path))
    return read_item_file(path, item, title, genres, hint)
