"""Links out from the page: each item's IMDb and TMDB pages, built from the `imdb_id` and
`tmdb_id` columns that MovieLens's links.csv puts in items.parquet (`data/mlformats.py`).

URLs are built here from whole numbers only, never copied from a file, so a tampered item
table can point nowhere but these two sites.
"""

from __future__ import annotations

import polars as pl

from bert4rec.data import columns as C
from bert4rec.inference.catalog import ItemId

SITES = {
    "imdb": (C.IMDB, "https://www.imdb.com/title/tt{:07d}/"),
    "tmdb": (C.TMDB, "https://www.themoviedb.org/movie/{}"),
}


class ItemLinks:
    """The `links` of each item that has any: {"imdb": url, "tmdb": url}."""

    def __init__(self, items: pl.DataFrame) -> None:
        """`items` has `item` and, where known, `imdb_id` and `tmdb_id` (whole numbers)."""
        self._links: dict[ItemId, dict[str, str]] = {}
        for site, (column, url) in SITES.items():
            if column not in items.columns or not items[column].dtype.is_integer():
                continue
            known = items.select(C.ITEM, column).filter(pl.col(column) > 0)
            for item, number in known.iter_rows():
                self._links.setdefault(item, {})[site] = url.format(number)

    def __call__(self, item: ItemId) -> dict[str, str]:
        """The item's links (empty when the data had none)."""
        return self._links.get(item, {})

    def __len__(self) -> int:
        return len(self._links)
