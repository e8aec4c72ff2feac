"""MovieLens releases: where they live on disk and how to read each layout.

Layouts: `u.data`/`u.item` (ml-100k), `ratings.dat`/`movies.dat` (ml-1m, ml-10m), and
`ratings.csv`/`movies.csv` (ml-20m and later, ml-latest, ml-latest-small).
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from bert4rec.columns import GENRES, ITEM, RATING, TIMESTAMP, TITLE, USER
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError

RELEASES = (
    "ml-100k",
    "ml-1m",
    "ml-10m",
    "ml-20m",
    "ml-25m",
    "ml-32m",
    "ml-latest-small",
    "ml-latest",
)
DATA_DIR_ENV = "BERT4REC_DATA_DIR"


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Where releases are looked for, in order: --data-dir, $BERT4REC_DATA_DIR, the user cache."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_DIR_ENV):
        roots.append(Path(os.environ[DATA_DIR_ENV]))
    from platformdirs import user_cache_dir

    roots.append(Path(user_cache_dir("bert4rec")) / "data")
    return roots


def locate(name: str, data_dir: str | Path | None = None) -> Path:
    """The directory of release `name`, or FileNotFoundError saying where it was looked for."""
    if name not in RELEASES:
        raise DataError(f"unknown MovieLens release {name!r}; known: {', '.join(RELEASES)}")
    tried = [root / name for root in data_roots(data_dir)]
    for candidate in tried:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"MovieLens release {name} not found (looked in {', '.join(map(str, tried))}); "
        f"run `bert4rec data download {name}` or pass --data-dir"
    )


def load_release(path: str | Path) -> Interactions:
    """Read a release directory, whichever of the three layouts it has."""
    path = Path(path)
    if (path / "ratings.csv").is_file():
        return _read_csv_layout(path)
    if (path / "u.data").is_file():
        return _read_100k_layout(path)
    if (path / "ratings.dat").is_file():
        return _read_dat_layout(path)
    raise DataError(
        f"{path}: not a MovieLens release (expected ratings.csv, ratings.dat or u.data)"
    )


def _read_csv_layout(path: Path) -> Interactions:
    events = pl.read_csv(
        path / "ratings.csv",
        schema_overrides={
            "userId": pl.Int64,
            "movieId": pl.Int64,
            "rating": pl.Float64,
            "timestamp": pl.Int64,
        },
    ).select(
        pl.col("userId").alias(USER),
        pl.col("movieId").alias(ITEM),
        pl.col("timestamp").alias(TIMESTAMP),
        pl.col("rating").alias(RATING),
    )
    items = pl.read_csv(path / "movies.csv", schema_overrides={"movieId": pl.Int64}).select(
        pl.col("movieId").alias(ITEM),
        pl.col("title").alias(TITLE),
        _genres(pl.col("genres")),
    )
    return Interactions(events, items, path.name)


def _read_100k_layout(path: Path) -> Interactions:
    events = pl.read_csv(
        path / "u.data",
        separator="\t",
        has_header=False,
        new_columns=[USER, ITEM, RATING, TIMESTAMP],
        schema_overrides=[pl.Int64, pl.Int64, pl.Float64, pl.Int64],
    ).select(USER, ITEM, TIMESTAMP, RATING)
    genre_names = [
        line.split("|")[0]
        for line in (path / "u.genre").read_text(encoding="latin-1").splitlines()
        if line
    ]
    rows = []
    for line in (path / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        flags = fields[5:]
        rows.append(
            (
                int(fields[0]),
                fields[1],
                [name for name, flag in zip(genre_names, flags, strict=False) if flag == "1"],
            )
        )
    items = pl.DataFrame(
        rows, schema={ITEM: pl.Int64, TITLE: pl.String, GENRES: pl.List(pl.String)}, orient="row"
    )
    return Interactions(events, items, path.name)


def _read_dat_layout(path: Path) -> Interactions:
    ratings = (path / "ratings.dat").read_text(encoding="latin-1").replace("::", "\t")
    events = pl.read_csv(
        ratings.encode(),
        separator="\t",
        has_header=False,
        new_columns=[USER, ITEM, RATING, TIMESTAMP],
        schema_overrides=[pl.Int64, pl.Int64, pl.Float64, pl.Int64],
    ).select(USER, ITEM, TIMESTAMP, RATING)
    rows = []
    for line in (path / "movies.dat").read_text(encoding="latin-1").splitlines():
        movie, rest = line.split("::", 1)
        title, genres = rest.rsplit("::", 1)
        rows.append((int(movie), title, genres))
    items = pl.DataFrame(
        rows, schema={ITEM: pl.Int64, TITLE: pl.String, GENRES: pl.String}, orient="row"
    ).with_columns(_genres(pl.col(GENRES)))
    return Interactions(events, items, path.name)


def _genres(column: pl.Expr) -> pl.Expr:
    """'A|B' -> ['A', 'B']; "(no genres listed)" -> []."""
    return (
        pl.when(column == "(no genres listed)")
        .then(pl.lit(""))
        .otherwise(column)
        .str.split("|")
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias(GENRES)
    )
