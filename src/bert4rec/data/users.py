"""`UserHistories`: every user's item sequence as the model was trained on it, so a trained model
can recommend for a known user by id (`users.parquet` in a run directory).

The file has one row per user: `user` (the original id, ascending), `history`, the user's
items as vocabulary indices (the `index` column of items.parquet), oldest first, and `seen`,
the items the user had only in events the rating filter dropped (ascending; runs written
before 2026-12-04 lack the column and read as having none). Recommending leaves out both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from bert4rec.data.columns import USER
from bert4rec.data.corpus import SequenceCorpus, concatenated_ranges
from bert4rec.data.vocab import Vocabulary
from bert4rec.errors import DataError, UnknownIdError

HISTORY = "history"
SEEN = "seen"
OnUnknown = Literal["raise", "skip"]
ON_UNKNOWN = ("raise", "skip")


@dataclass(frozen=True)
class UserHistories:
    """User ids (ascending) and their histories as flat vocabulary indices plus offsets, as in
    `SequenceCorpus`: user `u`'s history is `flat[offsets[u]:offsets[u + 1]]`, and the
    further items it interacted with (dropped by the rating filter) are
    `seen_flat[seen_offsets[u]:seen_offsets[u + 1]]`. `why_missing(user)` says why a user
    is not among `ids` (a clause for the error; "" when unknown)."""

    ids: np.ndarray
    flat: np.ndarray
    offsets: np.ndarray
    seen_flat: np.ndarray | None = None
    seen_offsets: np.ndarray | None = None
    why_missing: Callable[[Any], str] = field(default=lambda user: "", compare=False)

    @classmethod
    def from_corpus(cls, corpus: SequenceCorpus) -> UserHistories:
        """Every user of `corpus` with their whole sequence (test and validation items too:
        recommendations follow everything a user did) and the items the rating filter
        took from it."""
        left = corpus.left_out
        return cls(corpus.user_ids, corpus.items_flat, corpus.offsets,
                   None if left is None else left.seen_flat,
                   None if left is None else left.seen_offsets)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def item_counts(self, n_items: int) -> np.ndarray:
        """How often each item (vocabulary index 1..n_items, as [n_items]) occurs in the
        histories: its popularity in the data the model was trained on."""
        vocab = Vocabulary(n_items)
        return np.bincount(self.flat, minlength=vocab.mask)[vocab.item_columns]

    def subset(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat, offsets) of the users at `positions`, in that order."""
        lengths = self.lengths[positions]
        flat = self.flat[concatenated_ranges(self.offsets[positions], lengths)]
        return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def seen_subset(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(flat, offsets) of the further items seen by the users at `positions` (as
        `subset`), or None when no user has any."""
        if self.seen_flat is None or self.seen_offsets is None or len(self.seen_flat) == 0:
            return None
        lengths = np.diff(self.seen_offsets)[positions]
        flat = self.seen_flat[concatenated_ranges(self.seen_offsets[positions], lengths)]
        return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def positions(self, users: Iterable[Any], on_unknown: OnUnknown = "raise"
                  ) -> tuple[np.ndarray, list[Any]]:
        """The positions of `users` (original ids) and the ids found, in the order given.
        An id the model was not trained with raises `UnknownIdError` naming it, or with
        `on_unknown="skip"` is left out."""
        check_on_unknown(on_unknown)
        wanted = list(users)
        found = self._found(wanted)  # [N] position, or -1
        if (found < 0).any() and on_unknown == "raise":
            missing = [wanted[i] for i in np.flatnonzero(found < 0)]
            kind = "integers" if self.ids.dtype.kind in "iu" else "text"
            why = self.why_missing(missing[0]) or f" (their ids are {kind})"
            raise UnknownIdError(
                f"user {missing[0]!r} is not among the {len(self):,} users the model was trained "
                f"with{why}{more_note(missing, ';')}; pass on_unknown='skip' to leave unknown "
                "users out",
                missing,
            )
        kept = np.flatnonzero(found >= 0)
        return found[kept], [wanted[i] for i in kept]

    def _found(self, wanted: list[Any]) -> np.ndarray:
        """Each wanted id's position, -1 where unknown: one sorted search when the ids are all
        of the model's kind (numbers for numbers, text for text), one by one otherwise."""
        integer = self.ids.dtype.kind in "iu"
        values = np.asarray(wanted) if wanted else np.zeros(0, self.ids.dtype)
        if values.dtype.kind not in ("iu" if integer else "U") or values.ndim != 1:
            return np.array([self._position(user) for user in wanted], dtype=np.int64)
        at = np.minimum(np.searchsorted(self.ids, values), max(len(self.ids) - 1, 0))
        hit = (self.ids[at] == values) if len(self.ids) else np.zeros(len(values), bool)
        return np.where(hit, at, -1).astype(np.int64)

    def _position(self, user: Any) -> int:
        if isinstance(user, bool) or not isinstance(user, int | str | np.integer | np.str_):
            return -1
        if (self.ids.dtype.kind in "iu") != isinstance(user, int | np.integer):
            return -1
        pos = int(np.searchsorted(self.ids, user))
        return pos if pos < len(self.ids) and self.ids[pos] == user else -1

    def write(self, path: Path) -> None:
        """users.parquet: `user`, `history` and `seen` (List(Int32) of vocabulary indices)."""
        frame = pl.DataFrame({USER: self.ids, HISTORY: _lists(self.flat, self.offsets)})
        seen = (self.seen_flat, self.seen_offsets) if self.seen_offsets is not None else \
            (np.zeros(0, np.int64), np.zeros(len(self.ids) + 1, np.int64))
        frame.with_columns(_lists(*seen).alias(SEEN)).write_parquet(path)

    @classmethod
    def read(cls, path: Path, n_items: int) -> UserHistories:
        """users.parquet, checked: ascending unique ids, non-empty histories of indices
        1..n_items. Raises `DataError` naming the file and what is wrong."""
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as err:
            raise DataError(f"{path}: not a readable Parquet file "
                            f"({str(err).strip().splitlines()[0]})") from err
        if (USER not in frame.columns or HISTORY not in frame.columns
                or not isinstance(frame[HISTORY].dtype, pl.List)):
            raise DataError(f"{path}: expected the columns {USER!r} and {HISTORY!r} (a list "
                            f"of item indices per user); it has {frame.schema}")
        ids = frame[USER].to_numpy()
        if ids.dtype == object:
            ids = ids.astype(str)
        flat, offsets = _ragged(frame[HISTORY])
        if len(ids) and not (ids[1:] > ids[:-1]).all():
            raise DataError(f"{path}: user ids must be unique and in ascending order")
        if (np.diff(offsets) < 1).any() or not ((flat >= 1) & (flat <= n_items)).all():
            raise DataError(f"{path}: every history needs item indices in 1..{n_items} (the "
                            "index column of items.parquet); the file does not fit this model")
        if SEEN not in frame.columns:  # written before the column existed
            return cls(ids, flat, offsets)
        seen_flat, seen_offsets = _ragged(frame[SEEN])
        if not ((seen_flat >= 1) & (seen_flat <= n_items)).all():
            raise DataError(f"{path}: column {SEEN!r} needs item indices in 1..{n_items}; the "
                            "file does not fit this model")
        return cls(ids, flat, offsets, seen_flat, seen_offsets)


def _lists(flat: np.ndarray, offsets: np.ndarray) -> pl.Series:
    """Ragged rows (flat, offsets) as a List(Int32) series, empty rows as empty lists."""
    lengths = np.diff(offsets)
    rows = pl.DataFrame({"row": np.repeat(np.arange(len(lengths)), lengths),
                         "values": flat.astype(np.int32)})
    lists = rows.group_by("row", maintain_order=True).agg("values")
    every = pl.DataFrame({"row": np.arange(len(lengths))}).join(lists, on="row", how="left")
    return every["values"].fill_null(pl.lit([], pl.List(pl.Int32)))


def _ragged(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat int64 values, offsets); a null list counts as empty."""
    lengths = column.list.len().fill_null(0).to_numpy()
    flat = column.explode().drop_nulls().to_numpy().astype(np.int64)
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def check_on_unknown(on_unknown: str) -> None:
    """Refuse a policy other than "raise" or "skip", naming it."""
    if on_unknown not in ON_UNKNOWN:
        raise ValueError(f"on_unknown must be 'raise' or 'skip', got {on_unknown!r}")


def more_note(missing: Sequence[Any], lead: str = "") -> str:
    """" (nor are N more)" after the first of several unknown ids an error names (with
    `lead`, such as ";", in place of the parentheses)."""
    if len(missing) < 2:
        return ""
    return f"{lead} nor are {len(missing) - 1:,} more" if lead else \
        f" (nor are {len(missing) - 1:,} more)"
