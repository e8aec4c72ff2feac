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


def make_run_dir(path: Path, max_len: int = 8, seed: int = 0,
                 items: pl.DataFrame | None = None) -> Path:
    """A run directory with a random model; the output bias is spread out so scores differ.
    `items` replaces the dozen films (same columns as `item_table()`)."""
    items = item_table() if items is None else items
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
    return path
