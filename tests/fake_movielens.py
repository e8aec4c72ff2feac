"""Tiny fake MovieLens releases in the exact published layouts (torchvision's fake-data idea).

Each release has the published top folder and file names (ml-10m unpacks to ml-10M100K/), the
published separators and encodings, and the awkward rows: titles with colons and commas,
latin-1 accents in the old releases, and a film with "(no genres listed)".
"""

from __future__ import annotations

import zipfile
from pathlib import Path

# (user, movie, rating, timestamp), in file order (grouped by user as GroupLens ships them)
RATINGS = [
    (1, 260, 5.0, 1000),
    (1, 10, 4.0, 990),
    (1, 20, 3.0, 1005),
    (1, 30, 4.5, 1010),
    (2, 10, 5.0, 2000),
    (2, 260, 4.0, 2000),
    (2, 40, 1.0, 1500),
]
MOVIES = [
    (10, "American President, The (1995)", "Comedy|Drama|Romance"),
    (20, "Misérables, Les (1995)", "Drama|War"),
    (30, "Nothing Special (2001)", "(no genres listed)"),
    (40, "Another Film (1999)", "Comedy"),
    (260, "Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Sci-Fi"),
]
GENRES_100K = ["unknown", "Action", "Adventure", "Comedy", "Drama", "Romance", "Sci-Fi", "War"]

LAYOUT = {
    "ml-100k": ("ml-100k", "100k"),
    "ml-1m": ("ml-1m", "1m"),
    "ml-10m": ("ml-10M100K", "10m"),
    "ml-20m": ("ml-20m", "20m"),
    "ml-25m": ("ml-25m", "20m"),
    "ml-32m": ("ml-32m", "32m"),
    "ml-latest-small": ("ml-latest-small", "small"),
    "ml-latest": ("ml-latest", "20m"),
}


def _rating_text(value: float, integral: bool) -> str:
    return str(int(value)) if integral else f"{value:.1f}"


def release_files(name: str, crlf: bool = False) -> dict[str, bytes]:
    """File name -> bytes of a fake release, as GroupLens publishes it."""
    kind = LAYOUT[name][1]
    if kind == "100k":
        return _files_100k()
    if kind in ("1m", "10m"):
        return _files_dat(kind)
    return _files_csv(kind, crlf)


def _files_100k() -> dict[str, bytes]:
    data = "".join(f"{u}\t{m}\t{int(r)}\t{t}\n" for u, m, r, t in RATINGS if r == int(r))
    items = []
    for movie, title, genres in MOVIES:
        flags = ["1" if g in genres.split("|") else "0" for g in GENRES_100K]
        url = "http://us.imdb.com/M/title-exact?x"
        items.append("|".join([str(movie), title, "01-Jan-1995", "", url, *flags]))
    genre = "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n"
    return {
        "u.data": data.encode(),
        "u.item": ("\n".join(items) + "\n").encode("latin-1"),
        "u.genre": genre.encode(),
        "u.user": b"1|24|M|technician|85711\n2|53|F|other|94043\n",
        "u.info": b"2 users\n5 items\n6 ratings\n",
        "u.occupation": b"other\ntechnician\n",
        "README": b"MovieLens 100K (fake)\n",
    }


def _files_dat(kind: str) -> dict[str, bytes]:
    integral = kind == "1m"
    rows = [(u, m, r, t) for u, m, r, t in RATINGS if r == int(r) or not integral]
    ratings = "".join(f"{u}::{m}::{_rating_text(r, integral)}::{t}\n" for u, m, r, t in rows)
    movies = "".join(f"{m}::{title}::{genres}\n" for m, title, genres in MOVIES)
    files = {"ratings.dat": ratings.encode(), "movies.dat": movies.encode("latin-1")}
    if kind == "1m":
        files["users.dat"] = b"1::M::25::7::85711\n2::F::50::1::94043\n"
        files["README"] = b"MovieLens 1M (fake)\n"
    else:
        files["tags.dat"] = b"1::260::classic::1001\n"
        files["README.html"] = b"<html>MovieLens 10M (fake)</html>\n"
        files["allbut.pl"] = b"#!/usr/bin/perl\n"
        files["split_ratings.sh"] = b"#!/bin/sh\n"
    return files


def _csv_title(title: str) -> str:
    return f'"{title}"' if "," in title or '"' in title else title


def _files_csv(kind: str, crlf: bool) -> dict[str, bytes]:
    end = "\r\n" if crlf else "\n"
    ratings = "userId,movieId,rating,timestamp" + end
    ratings += "".join(f"{u},{m},{r:.1f},{t}{end}" for u, m, r, t in RATINGS)
    movies = "movieId,title,genres" + end
    movies += "".join(f"{m},{_csv_title(t)},{g}{end}" for m, t, g in MOVIES)
    files = {
        "ratings.csv": ratings.encode(),
        "movies.csv": movies.encode("utf-8"),
        "tags.csv": f"userId,movieId,tag,timestamp{end}1,260,classic,1001{end}".encode(),
        "links.csv": f"movieId,imdbId,tmdbId{end}260,0076759,11{end}".encode(),
        "README.txt": b"MovieLens (fake)\n",
    }
    if kind == "20m":
        files["genome-scores.csv"] = b"movieId,tagId,relevance\n260,1,0.5\n"
        files["genome-tags.csv"] = b"tagId,tag\n1,classic\n"
    if kind == "32m":
        files["checksums.txt"] = b"00000000000000000000000000000000  ratings.csv\n"
    return files


def expected_events(name: str) -> list[tuple[int, int, int, float]]:
    """(user, item, timestamp, rating) rows the reader must return, in file order."""
    integral = LAYOUT[name][1] in ("100k", "1m")
    return [(u, m, t, r) for u, m, r, t in RATINGS if r == int(r) or not integral]


def write_release(
    name: str, root: Path, as_zip: bool = False, crlf: bool = False, folder: str | None = None
) -> Path:
    """Write release `name` under `root` as its published folder, or as `<name>.zip`."""
    top = folder or LAYOUT[name][0]
    files = release_files(name, crlf)
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = root / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{top}/", b"")
            for file, data in files.items():
                archive.writestr(f"{top}/{file}", data)
        return path
    path = root / top
    path.mkdir(parents=True, exist_ok=True)
    for file, data in files.items():
        (path / file).write_bytes(data)
    return path
