"""A tiny run directory for the Recommender, API and page tests: a small random BERT4Rec over
a dozen real-looking films, written with the same functions training uses."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from bert4rec import rundir
from bert4rec.model import BERT4Rec, BERT4RecConfig

FILMS = [
    (1, "Toy Story (1995)", ["Adventure", "Animation", "Children", "Comedy"]),
    (260, "Star Wars: Episode IV - A New Hope (1977)", ["Action", "Adventure", "Sci-Fi"]),
    (1196, "Star Wars: Episode V - The Empire Strikes Back (1980)", ["Action", "Sci-Fi"]),
    (1214, "Alien (1979)", ["Horror", "Sci-Fi"]),
    (1200, "Aliens (1986)", ["Action", "Horror", "Sci-Fi"]),
    (2571, "Matrix, The (1999)", ["Action", "Sci-Fi", "Thriller"]),
    (4896, "Harry Potter and the Sorcerer's Stone (a.k.a. Harry Potter and the Philosopher's "
     "Stone) (2001)", ["Adventure", "Children", "Fantasy"]),
    (5816, "Harry Potter and the Chamber of Secrets (2002)", ["Adventure", "Fantasy"]),
    (8368, "Harry Potter and the Prisoner of Azkaban (2004)", ["Adventure", "Fantasy"]),
    (40815, "Harry Potter and the Goblet of Fire (2005)", ["Adventure", "Fantasy"]),
    (1411, "Hamlet (1996)", ["Crime", "Drama", "Romance"]),
    (1941, "Hamlet (1948)", ["Drama"]),
    (838, "Emma (1996)", ["Comedy", "Drama", "Romance"]),
    (26958, "Emma (1996)", ["Romance"]),
]


def item_table() -> pl.DataFrame:
    """index (1..n), item, title, genres, as items.parquet holds them."""
    return pl.DataFrame(
        {
            "index": list(range(1, len(FILMS) + 1)),
            "item": [f[0] for f in FILMS],
            "title": [f[1] for f in FILMS],
            "genres": [f[2] for f in FILMS],
        },
        schema={"index": pl.Int64, "item": pl.Int64, "title": pl.String,
                "genres": pl.List(pl.String)},
    )


# Users by id and what they watched (item ids, oldest first), for `make_run_dir(users=USERS)`:
# Sorcerer's Stone is the most watched Harry Potter film, Goblet of Fire the least.
USERS = {
    7: [4896, 5816, 8368, 2571],
    8: [4896, 5816, 1214, 1200],
    9: [4896, 260, 1196, 40815],
    10: [5816, 8368, 1, 4896],
}
# links.csv's imdbId and tmdbId of three films, for `make_run_dir(links=True)`.
LINKS = {1: (114709, 862), 2571: (133093, 603), 4896: (241527, 671)}


def item_table_with_links() -> pl.DataFrame:
    """`item_table()` plus `imdb_id` and `tmdb_id`, null for films without links."""
    return item_table().with_columns(
        pl.col("item").replace_strict(LINKS, default=None, return_dtype=pl.List(pl.Int64))
        .alias("ids")
    ).with_columns(pl.col("ids").list.get(0).alias("imdb_id"),
                   pl.col("ids").list.get(1).alias("tmdb_id")).drop("ids")


def make_run_dir(path: Path, max_len: int = 8, seed: int = 0,
                 items: pl.DataFrame | None = None, users: dict[int, list[int]] | None = None,
                 links: bool = False) -> Path:
    """A run directory with a random model; the output bias is spread out so scores differ.
    `items` replaces the dozen films (same columns as `item_table()`); `users` (such as
    `USERS`) writes users.parquet; `links` adds links.csv's ids to the films."""
    if items is None:
        items = item_table_with_links() if links else item_table()
    torch.manual_seed(seed)
    config = BERT4RecConfig(vocab_size=len(items) + 2, max_len=max_len, hidden=16, layers=1,
                            heads=2)
    model = BERT4Rec(config)
    with torch.no_grad():
        model.output_bias.copy_(torch.randn(config.vocab_size))
        model.encoder.embeddings.item.weight.normal_(0, 0.5)
        model.encoder.embeddings.item.weight[0].zero_()  # padding
    rundir.write_config(path, config, {"source": "tiny"}, {})
    rundir.save_weights(model, path / rundir.WEIGHTS)
    items.write_parquet(path / rundir.ITEMS)
    if users is not None:
        index = dict(zip(items["item"].to_list(), items["index"].to_list(), strict=True))
        pl.DataFrame({"user": list(users), "history": [[index[i] for i in h]
                                                       for h in users.values()]},
                     schema={"user": pl.Int64, "history": pl.List(pl.Int32)}
                     ).write_parquet(path / rundir.USERS)
    return path
