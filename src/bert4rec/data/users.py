"""`UserHistories`: every user's item sequence as the model was trained on it, so a trained model
can recommend for a known user by id (`users.parquet` in a run directory).

The file has one row per user: `user` (the original id, ascending) and `history`, the user's
items as vocabulary indices (the `index` column of items.parquet), oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from bert4rec.data.columns import USER
from bert4rec.data.corpus import SequenceCorpus, concatenated_ranges
from bert4rec.data.vocab import Vocabulary
from bert4rec.errors import DataError, UnknownIdError

HISTORY = "history"
OnUnknown = Literal["raise", "skip"]
ON_UNKNOWN = ("raise", "skip")


@dataclass(frozen=True)
class UserHistories:
    """User ids (ascending) and their histories as flat vocabulary indices plus offsets, as in
    `SequenceCorpus`: user `u`'s history is `flat[offsets[u]:offsets[u + 1]]`."""

    ids: np.ndarray
    flat: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_corpus(cls, corpus: SequenceCorpus) -> UserHistories:
        """Every user of `corpus` with their whole sequence (test and validation items too:
        recommendations follow everything a user did)."""
        return cls(corpus.user_ids, corpus.items_flat, corpus.offsets)

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
            raise UnknownIdError(
                f"user {missing[0]!r} is not among the {len(self):,} users the model was trained "
                f"with{more_note(missing)} (their ids are {kind}); pass on_unknown='skip' "
                "(--skip-unknown) to leave unknown users out",
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
        """users.parquet: `user` and `history` (List(Int32) of vocabulary indices)."""
        users = np.repeat(self.ids, self.lengths)
        frame = pl.DataFrame({USER: users, HISTORY: self.flat.astype(np.int32)})
        frame.group_by(USER, maintain_order=True).agg(pl.col(HISTORY)).write_parquet(path)

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
        lengths = frame[HISTORY].list.len().to_numpy()
        flat = frame[HISTORY].explode().to_numpy()
        if len(ids) and not (ids[1:] > ids[:-1]).all():
            raise DataError(f"{path}: user ids must be unique and in ascending order")
        if (lengths < 1).any() or not ((flat >= 1) & (flat <= n_items)).all():
            raise DataError(f"{path}: every history needs item indices in 1..{n_items} (the "
                            "index column of items.parquet); the file does not fit this model")
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(ids, flat.astype(np.int64), offsets)


def check_on_unknown(on_unknown: str) -> None:
    """Refuse a policy other than "raise" or "skip", naming it."""
    if on_unknown not in ON_UNKNOWN:
        raise ValueError(f"on_unknown must be 'raise' or 'skip', got {on_unknown!r}")


def more_note(missing: Sequence[Any]) -> str:
    """" (nor are N more)" after the first of several unknown ids an error names."""
    return f" (nor are {len(missing) - 1:,} more)" if len(missing) > 1 else ""
