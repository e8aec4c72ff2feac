"""`bert4rec.Dataset`: interactions prepared for training, from a DataFrame, a log file or a
MovieLens release. The public face of `SequenceCorpus` (filtered, time-ordered sequences over an
item vocabulary) plus the record of how it was made, which a run's config.json keeps.

    data = bert4rec.Dataset.from_frame(ratings, user="userId", item="movieId",
                                       timestamp="timestamp", items=movies)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bert4rec import columns as C
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.frames import interactions_from_frames
from bert4rec.data.interactions import LogColumns


@dataclass(frozen=True)
class Dataset:
    """Prepared interactions (`corpus`) and how to rebuild them (`description`: the source and
    the prepare settings, recorded as `data` in a run's config.json)."""

    corpus: SequenceCorpus
    description: dict[str, Any]

    @classmethod
    def from_frame(
        cls,
        events: Any,
        *,
        user: str = C.USER,
        item: str = C.ITEM,
        timestamp: str | None = C.TIMESTAMP,
        rating: str | None = None,
        items: Any = None,
        title: str = C.TITLE,
        genres: str = C.GENRES,
        min_rating: float | None = 4.0,
        min_user_interactions: int = 5,
        min_item_interactions: int = 0,
    ) -> Dataset:
        """Interactions from a pandas or polars DataFrame with one row per event.

        `user` and `item` name the id columns (whole numbers or text), `timestamp` the time
        (numbers, dates or datetimes; None: the rows are already in time order) and `rating`
        an optional rating column, kept when at least `min_rating` (None keeps all). `items`
        is an optional item table (such as MovieLens's movies) with the same `item` column and
        a `title` and/or `genres` column ("A|B" text or lists), shown with recommendations;
        its other columns are kept too (in the run directory's items.parquet).
        Users with fewer than `min_user_interactions` events and items with fewer than
        `min_item_interactions` are left out. Errors name the column and row at fault.
        """
        columns = LogColumns(user, item, timestamp, rating)
        settings = PrepareSettings(min_rating, min_item_interactions, min_user_interactions)
        corpus = prepare(interactions_from_frames(events, columns, items, title, genres),
                         settings)
        return cls(corpus, {"source": None, **asdict(settings), "columns": asdict(columns)})

    @classmethod
    def from_source(
        cls,
        source: str | Path,
        *,
        data_dir: str | Path | None = None,
        user: str = C.USER,
        item: str = C.ITEM,
        timestamp: str = C.TIMESTAMP,
        rating: str | None = C.RATING,
        min_rating: float | None = 4.0,
        min_user_interactions: int = 5,
        min_item_interactions: int = 0,
    ) -> Dataset:
        """Interactions from what `bert4rec train SOURCE` reads: a MovieLens release name
        ("ml-1m", looked up in `data_dir`, $BERT4REC_DATA_DIR, then the user cache), a
        release folder or zip, or a CSV, TSV, Parquet or "user item" text log (columns named
        as for `from_frame`). Prepared corpora are cached, as on the command line."""
        columns = LogColumns(user, item, timestamp, rating)
        settings = PrepareSettings(min_rating, min_item_interactions, min_user_interactions)
        corpus = load_corpus(source, settings, data_dir=data_dir, columns=columns)
        path = Path(source)
        recorded = str(path.resolve()) if path.exists() else str(source)
        return cls(corpus, {"source": recorded, **asdict(settings), "columns": asdict(columns)})

    @property
    def n_users(self) -> int:
        return self.corpus.n_users

    @property
    def n_items(self) -> int:
        return self.corpus.n_items

    @property
    def n_interactions(self) -> int:
        return self.corpus.n_interactions

    @property
    def users(self) -> np.ndarray:
        """Every user id kept, ascending."""
        return self.corpus.user_ids

    @property
    def items(self) -> pl.DataFrame:
        """Every item kept: item, title, genres (null where unknown), then any other columns
        of the item table."""
        return self.corpus.item_table.drop(C.INDEX)

    def statistics(self) -> dict[str, float | int | str]:
        """Users, items, interactions, sequence-length quantiles and density."""
        return self.corpus.statistics()

    def __repr__(self) -> str:
        return (f"Dataset({self.n_users:,} users, {self.n_items:,} items, "
                f"{self.n_interactions:,} interactions)")
