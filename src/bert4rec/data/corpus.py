"""`SequenceCorpus`: filtered, time-ordered per-user item sequences over a dense item vocabulary.

The item vocabulary is laid out as `data.vocab.Vocabulary` says (padding, the items in
ascending original id, [MASK]). Sequences are stored flat (one array of vocab indices plus
offsets), which keeps 20M interactions in a few hundred megabytes and makes every batch a slice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from bert4rec.data.columns import GENRES, INDEX, ITEM, RATING, TIMESTAMP, TITLE, USER
from bert4rec.data.interactions import Interactions
from bert4rec.data.leftout import LeftOut, left_out
from bert4rec.data.vocab import PAD, Vocabulary
from bert4rec.errors import DataError
from bert4rec.files import temp_dir

logger = logging.getLogger(__name__)
# 2: the item table keeps further columns (links); 3: exact duplicates dropped;
# 4: what the filters left out (left_out.npz and its tables)
FORMAT_VERSION = 4
SPLITS = ("train", "valid", "test", "train+valid", "all")


@dataclass(frozen=True)
class PrepareSettings:
    """How raw interactions become sequences (founding document: ratings >= 4, >= 5 per user).

    Defined here once: each field carries its help text, from which the command line builds
    its flags (`cli/data.py`), and `Dataset.from_frame` and `from_source` take these defaults.
    """

    min_rating: float | None = field(default=4.0, metadata={
        "help": "keep interactions rated at least this (None keeps all; ignored for logs "
        "without ratings)"})
    min_item_interactions: int = field(default=0, metadata={
        "help": "drop items with fewer interactions than this (before the user filter)"})
    min_user_interactions: int = field(default=5, metadata={
        "help": "drop users with fewer interactions than this (after the item filter)"})

    def __post_init__(self) -> None:
        for name in ("min_item_interactions", "min_user_interactions"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Split:
    """One side of the leave-one-out split: per-user histories (flat + offsets) and targets.

    `users` are corpus user positions; `targets` holds one vocab index per user (None for train).
    """

    name: str
    users: np.ndarray
    flat: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray | None

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def history(self, row: int) -> np.ndarray:
        return self.flat[self.offsets[row] : self.offsets[row + 1]]

    def padded(self, rows: np.ndarray, length: int | None = None) -> np.ndarray:
        """Histories of `rows` as a [len(rows), length] int64 array, left-padded with 0.

        Longer histories keep their most recent `length` items; `length` defaults to the longest.
        """
        return left_pad(self.flat, self.offsets, np.asarray(rows), length)


def left_pad(
    flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, length: int | None = None
) -> np.ndarray:
    """Gather ragged rows into a left-padded matrix, keeping the last `length` items of each."""
    return left_pad_ranges(flat, offsets[rows], offsets[rows + 1], length)


def left_pad_ranges(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                    length: int | None = None) -> np.ndarray:
    """`left_pad` for the ranges `flat[starts[b]:ends[b]]`: a [B, length] int64 matrix."""
    if length is None:
        length = int((ends - starts).max(initial=1))
    if len(flat) == 0:
        return np.full((len(starts), length), PAD, dtype=np.int64)
    index = ends[:, None] - length + np.arange(length)[None, :]  # (B, length)
    valid = index >= starts[:, None]
    return np.where(valid, flat[np.clip(index, 0, len(flat) - 1)], PAD).astype(np.int64, copy=False)


@dataclass(frozen=True)
class SequenceCorpus:
    """Per-user item sequences in time order, the item vocabulary and the item table."""

    items_flat: np.ndarray
    offsets: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_table: pl.DataFrame
    name: str
    settings: PrepareSettings
    left_out: LeftOut | None = None
    """What the filters took away (`data/leftout.py`); None for a corpus built by hand."""
    duplicates: int = 0
    """Exact duplicate events (same user, item and time) that `prepare` dropped."""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.items_flat)

    @property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.n_items)

    @property
    def mask_token(self) -> int:
        return self.vocab.mask

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def evaluable(self) -> np.ndarray:
        """[n_users] bool: users with 3 or more items, the ones `valid` and `test` hold (their
        last two items are held out)."""
        return self.lengths >= 3

    def sequence(self, user: int) -> np.ndarray:
        """The vocab indices of user position `user`, oldest first."""
        return self.items_flat[self.offsets[user] : self.offsets[user + 1]]

    def split(self, name: str) -> Split:
        """Leave-one-out: last item = test target, second last = valid target, the rest = train.

        Users with fewer than 3 items cannot be evaluated: their whole sequence is training data
        and they are left out of `valid` and `test`. `train+valid` is the training part plus
        each validation item (everything but the test item); `all` is every sequence whole,
        what a final fit trains on once the epoch is chosen.
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        lengths, evaluable = self.lengths, self.evaluable
        holdout = {"train": 2, "valid": 2, "test": 1, "train+valid": 1, "all": 0}[name]
        training = name.startswith("train") or name == "all"
        users = np.arange(self.n_users) if training else np.flatnonzero(evaluable)
        keep = lengths[users] - np.where(evaluable[users], holdout, 0)
        starts = self.offsets[users]
        flat = self.items_flat[concatenated_ranges(starts, keep)]
        offsets = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
        targets = None if training else self.items_flat[starts + keep]
        return Split(name, users, flat, offsets, targets)

    def fingerprint(self) -> str:
        """A digest of the sequences, user ids and item ids: equal exactly when two corpora
        hold the same data, whatever their source path or name."""
        digest = hashlib.sha256()
        for array in (self.offsets, self.items_flat, self.user_ids, self.item_ids):
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()[:32]

    def with_items(self, items: pl.DataFrame, name: str = "items") -> SequenceCorpus:
        """This corpus with `items` (item, title, genres and any further columns, as
        `items_from_frame` gives it) as its item table; items it does not list get no title.
        An item table that names none of the corpus's items raises `DataError` (`name` is
        where it came from): its ids are surely of another kind."""
        matched = "__bert4rec_matched__"
        table = _item_table(self.item_ids, items.with_columns(pl.lit(True).alias(matched)))
        if not table[matched].any():
            raise DataError(
                f"{name}: none of its {items.height:,} item ids is an item of the log (it "
                f"has {_examples(items[ITEM])}; the log {_examples(table[ITEM])}); the item "
                "table must use the log's item ids"
            )
        return replace(self, item_table=table.drop(matched))

    def check_trainable(self) -> None:
        """Refuse a corpus that training cannot use: validation and test need at least one
        user with 3 or more items (the last two are held out)."""
        if not self.evaluable.any():
            raise DataError(
                f"{self.name}: no user has 3 or more items ({self.n_users:,} users, longest "
                f"sequence {int(self.lengths.max(initial=0))}), so nothing is left to validate "
                "and test on; keep more interactions per user (lower min_rating or pass "
                "min_rating=None) or use a log with longer histories"
            )

    def statistics(self) -> dict[str, float | int | str]:
        """Users, items, interactions, sequence-length quantiles and density, for reports."""
        lengths = self.lengths
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "length_min": int(lengths.min()),
            "length_median": float(np.median(lengths)),
            "length_mean": round(float(lengths.mean()), 2),
            "length_p90": float(np.quantile(lengths, 0.9)),
            "length_max": int(lengths.max()),
            "density": round(self.n_interactions / (self.n_users * self.n_items), 6),
            "duplicates_dropped": self.duplicates,
        }

    def save(self, directory: str | Path) -> None:
        """Write arrays (npz, no pickle), item table (Parquet) and metadata (JSON) atomically."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_dir(directory.parent, prefix=f".{directory.name}.")
        try:
            np.savez(
                staging / "arrays.npz",
                items_flat=self.items_flat,
                offsets=self.offsets,
                user_ids=self.user_ids,
                item_ids=self.item_ids,
            )
            self.item_table.write_parquet(staging / "items.parquet")
            if self.left_out is not None:
                np.savez(staging / "left_out.npz", seen_flat=self.left_out.seen_flat,
                         seen_offsets=self.left_out.seen_offsets)
                self.left_out.users.write_parquet(staging / "left_out_users.parquet")
                self.left_out.items.write_parquet(staging / "left_out_items.parquet")
            meta = {
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "settings": asdict(self.settings),
                **self.statistics(),
            }
            (staging / "meta.json").write_text(json.dumps(meta, indent=2))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: str | Path) -> SequenceCorpus:
        """Read a corpus written by `save`; refuses other format versions."""
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{directory}: corpus format {meta.get('format_version')} is not "
                f"{FORMAT_VERSION}; delete the folder to rebuild it"
            )
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            parts = {key: arrays[key] for key in arrays.files}
        if (directory / "left_out.npz").is_file():
            with np.load(directory / "left_out.npz", allow_pickle=False) as arrays:
                parts["left_out"] = LeftOut(
                    arrays["seen_flat"], arrays["seen_offsets"],
                    pl.read_parquet(directory / "left_out_users.parquet"),
                    pl.read_parquet(directory / "left_out_items.parquet"))
        return cls(
            item_table=pl.read_parquet(directory / "items.parquet"),
            name=meta["name"],
            settings=PrepareSettings(**meta["settings"]),
            duplicates=int(meta.get("duplicates_dropped", 0)),
            **parts,
        )


def flatten(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists of item indices as (flat, offsets) int64, the layout `left_pad` and
    `Recommender.top_k` take."""
    lengths = np.fromiter((len(seq) for seq in sequences), dtype=np.int64, count=len(sequences))
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64,
                       count=int(lengths.sum()))
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def concatenated_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated aranges [s, s + c) for each (s, c), vectorised: the flat positions of
    ragged rows that start at `starts` and hold `counts` entries."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    row_starts = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return row_starts + np.arange(total)


def prepare(
    interactions: Interactions, settings: PrepareSettings = PrepareSettings()
) -> SequenceCorpus:
    """Filter (rating; exact duplicates, the same user, item and time, dropped and counted;
    then item count, then user count), build the vocabulary and order each user's items by
    timestamp, ties in input order; record what the filters left out."""
    events, duplicates = _filtered(interactions, settings)
    order = _time_order(events[USER], events[TIMESTAMP])
    item_ids, items_flat = _vocabulary(events[ITEM].to_numpy()[order])
    users = events[USER].to_numpy()[order]
    boundaries = np.flatnonzero(users[1:] != users[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(users)]]).astype(np.int64)
    user_ids, item_ids = _storable(users[offsets[:-1]]), _storable(item_ids)
    return SequenceCorpus(
        items_flat=items_flat,
        offsets=offsets,
        user_ids=user_ids,
        item_ids=item_ids,
        item_table=_item_table(item_ids, interactions.items),
        name=interactions.name,
        settings=settings,
        left_out=left_out(interactions.events, interactions.items, settings.min_rating,
                          user_ids, item_ids),
        duplicates=duplicates,
    )


def _storable(ids: np.ndarray) -> np.ndarray:
    """String ids as a fixed-width unicode array, which npz stores without pickle."""
    return ids.astype(str) if ids.dtype == object else ids


def _filtered(interactions: Interactions, settings: PrepareSettings) -> tuple[pl.DataFrame, int]:
    """The events that pass the rating filter, less exact duplicates (the first of each is
    kept), that then pass the item-count and user-count filters, in input order; and how many
    duplicates were dropped. A duplicate would count twice towards the filters, and would
    often become its own next item (a held-out target equal to the item before it)."""
    events = interactions.events
    if RATING in events.columns:
        _check_ratings(events[RATING], interactions.name)
    if settings.min_rating is not None and RATING in events.columns:
        events = events.filter(pl.col(RATING) >= settings.min_rating)
    events, duplicates = _without_duplicates(events)
    if duplicates:
        logger.info("%s: dropped %s exact duplicate events (same user, item and time)",
                    interactions.name, f"{duplicates:,}")
    if settings.min_item_interactions > 1:
        events = events.filter(pl.len().over(ITEM) >= settings.min_item_interactions)
    if settings.min_user_interactions > 1:
        events = events.filter(pl.len().over(USER) >= settings.min_user_interactions)
    if events.height == 0:
        raise DataError(
            f"{interactions.name}: no interactions left after filtering with {settings} "
            f"({interactions.events.height:,} before); lower min_rating (or pass "
            "min_rating=None), min_user_interactions or min_item_interactions"
        )
    return events.select(USER, ITEM, TIMESTAMP), duplicates


def _without_duplicates(events: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """`events` less exact duplicates (same user, item and time; the first is kept, the order
    is kept) and how many were dropped. A sorted array of row hashes rules them out first in
    a fifth of the time of the exact check, which runs only when two hashes are equal."""
    key = [USER, ITEM, TIMESTAMP]
    hashes = np.sort(events.select(pl.struct(key).hash(seed=0)).to_series().to_numpy())
    if not (hashes[1:] == hashes[:-1]).any():
        return events, 0
    unique = events.unique(key, keep="first", maintain_order=True)
    return unique, events.height - unique.height


def _check_ratings(ratings: pl.Series, name: str) -> None:
    """Refuse missing, NaN or infinite ratings, naming the rows: they would pass or fail the
    rating filter by accident (polars orders NaN above every number)."""
    bad = ratings.is_null() | ~ratings.cast(pl.Float64).is_finite().fill_null(True)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise DataError(
            f"{name}: {len(rows):,} ratings are missing, NaN or infinite (event rows {shown}, "
            "counting from 0); fix or remove those rows"
        )


def _time_order(users: pl.Series, times: pl.Series) -> np.ndarray:
    """The permutation that sorts by (user, timestamp), ties in input order (a stable sort).

    Integer users and timestamps are packed into one int64 key when they fit, which sorts
    several times faster than a two-key sort.
    """
    codes = _sort_codes(users)
    stamps = times.to_numpy()
    span = int(stamps.max()) - int(stamps.min()) + 1
    if int(codes.max()) < (2**62) // span:
        key = codes * span + (stamps - stamps.min())
        return np.argsort(key, kind="stable")
    return np.lexsort((stamps, codes))


def _sort_codes(values: pl.Series) -> np.ndarray:
    """Non-negative int64 codes in the same order as `values` (ascending id)."""
    if values.dtype.is_integer():
        array = values.to_numpy().astype(np.int64, copy=False)
        return array - array.min()
    return values.rank("dense").cast(pl.Int64).to_numpy()


def _vocabulary(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, vocab index 1..n of each event). Dense integer ids use a lookup
    table (linear time); other ids are sorted."""
    if items.dtype.kind in "iu" and int(items.max()) - int(items.min()) < 4 * len(items) + 2**20:
        low = int(items.min())
        present = np.zeros(int(items.max()) - low + 1, dtype=bool)
        present[items - low] = True
        lookup = np.cumsum(present, dtype=np.int64)
        return np.flatnonzero(present) + low, lookup[items - low]
    item_ids, inverse = np.unique(items, return_inverse=True)
    return item_ids, inverse.astype(np.int64).reshape(-1) + 1


def _examples(ids: pl.Series) -> str:
    """The first three ids, as an error message shows them."""
    return ", ".join(repr(i) for i in ids.head(3).to_list()) + (", ..." if len(ids) > 3 else "")


def _item_table(item_ids: np.ndarray, items: pl.DataFrame | None) -> pl.DataFrame:
    """index, item, title, genres for every vocab item (title/genres null where unknown), then
    any further columns the item table has (links.csv's `imdb_id` and `tmdb_id`, the
    columns of a `train --items` file)."""
    table = pl.DataFrame({INDEX: np.arange(1, len(item_ids) + 1), ITEM: item_ids})
    if items is None or items.height == 0:
        return table.with_columns(
            pl.lit(None, pl.String).alias(TITLE), pl.lit(None, pl.List(pl.String)).alias(GENRES)
        )
    extra = [name for name in items.columns if name not in (INDEX, ITEM, TITLE, GENRES)]
    items = items.select(ITEM, TITLE, GENRES, *extra).unique(ITEM, keep="first")
    if items[ITEM].dtype != table[ITEM].dtype:
        items = items.with_columns(pl.col(ITEM).cast(table[ITEM].dtype, strict=False))
    return table.join(items, on=ITEM, how="left", maintain_order="left")
