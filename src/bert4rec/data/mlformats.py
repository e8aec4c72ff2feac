"""Readers for the three MovieLens file layouts, from a folder or straight out of a zip.

- `u.data` (tab: user, item, rating, timestamp) + `u.item` (pipe, latin-1) + `u.genre`: ml-100k;
- `ratings.dat` + `movies.dat` (`::`, latin-1): ml-1m, ml-10m;
- `ratings.csv` + `movies.csv` (quoted CSV with a header, UTF-8, LF or CRLF): ml-20m and later;
  their `links.csv` adds each film's IMDb and TMDB ids to the item table (`imdb_id`, `tmdb_id`).

Each reader parses ratings with explicit dtypes in polars (the fast path) and, only when that
fails, rescans the file line by line to name the first bad line and column.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from pathlib import Path

import polars as pl

from bert4rec.data.columns import GENRES, IMDB, ITEM, RATING, TIMESTAMP, TITLE, TMDB, USER
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError

NO_GENRES = "(no genres listed)"
RATING_FIELDS = (USER, ITEM, RATING, TIMESTAMP)
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")
LINKS_HEADER = ("movieId", "imdbId", "tmdbId")
_DTYPES = (pl.Int64, pl.Int64, pl.Float64, pl.Int64)


class ReleaseFiles:
    """The files of one release: a folder, or a folder inside a zip (read without extracting).

    A file may also be stored gzip-compressed (`ratings.dat.gz`); it is read transparently.
    """

    def __init__(self, location: Path, prefix: str = "") -> None:
        self.location = location
        self.prefix = prefix
        self._zip: zipfile.ZipFile | None = None
        if location.is_file():
            try:
                self._zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError) as err:
                raise DataError(
                    f"{location}: not a readable zip archive ({err}); it is probably truncated: "
                    "delete it and download it again (`bert4rec data download NAME`)"
                ) from err
            self._names = set(self._zip.namelist())

    def names(self) -> list[str]:
        """Every member of the zip (empty for a folder)."""
        return sorted(self._names) if self._zip is not None else []

    def _member(self, name: str) -> str | None:
        """The stored name of `name` (plain or .gz), or None."""
        for candidate in (name, name + ".gz"):
            if self._zip is not None:
                if self.prefix + candidate in self._names:
                    return candidate
            elif (self.location / candidate).is_file():
                return candidate
        return None

    def has(self, name: str) -> bool:
        return self._member(name) is not None

    def describe(self, name: str) -> str:
        """How error messages name a file: a path, or `archive.zip:folder/file`."""
        stored = self._member(name) or name
        if self._zip is not None:
            return f"{self.location}:{self.prefix}{stored}"
        return str(self.location / stored)

    def source(self, name: str) -> Path | bytes:
        """A plain file's path (polars memory-maps it) or the file's bytes."""
        stored = self._member(name)
        if stored is None:
            raise FileNotFoundError(f"{self.describe(name)}: no such file in this release")
        if self._zip is None and not stored.endswith(".gz"):
            return self.location / stored
        return self.read_bytes(name)

    def read_bytes(self, name: str) -> bytes:
        stored = self._member(name)
        if stored is None:
            raise FileNotFoundError(f"{self.describe(name)}: no such file in this release")
        try:
            if self._zip is not None:
                raw = self._zip.read(self.prefix + stored)
            else:
                raw = (self.location / stored).read_bytes()
            return gzip.decompress(raw) if stored.endswith(".gz") else raw
        except (zipfile.BadZipFile, EOFError, gzip.BadGzipFile, OSError, zlib.error) as err:
            raise DataError(
                f"{self.describe(name)}: cannot be read ({err}); the file is damaged or "
                "truncated: download the release again"
            ) from err

    def text(self, name: str, encoding: str) -> str:
        """Decode a small file. Latin-1 releases are tried as UTF-8 first, because some
        redistributed copies were re-encoded; UTF-8 releases must be valid UTF-8."""
        raw = self.read_bytes(name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if encoding.lower() in ("latin-1", "latin1", "iso-8859-1"):
                return raw.decode("latin-1")
            line = raw[: err.start].count(b"\n") + 1
            raise DataError(
                f"{self.describe(name)}: line {line}: not valid {encoding} ({err.reason}); "
                "the file is damaged or not from this release"
            ) from err


def read_100k(files: ReleaseFiles, encoding: str = "latin-1") -> Interactions:
    """ml-100k: u.data (tab-separated, no header) and u.item/u.genre (pipe, latin-1)."""
    events = _read_ratings(files, "u.data", b"\t", has_header=False)
    genre_names = [
        line.split("|")[0] for line in files.text("u.genre", encoding).splitlines() if line.strip()
    ]
    rows = []
    for number, line in enumerate(files.text("u.item", encoding).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(genre_names) or not fields[0].isdigit():
            raise DataError(
                f"{files.describe('u.item')}: line {number}: expected 'id|title|date|video date|"
                f"url' and {len(genre_names)} genre flags, got {line[:80]!r}"
            )
        flags = fields[5:]
        genres = [name for name, flag in zip(genre_names, flags, strict=True) if flag == "1"]
        rows.append((int(fields[0]), fields[1], genres))
    return Interactions(events, _item_frame(rows), files.location.name)


def read_dat(files: ReleaseFiles, encoding: str = "latin-1") -> Interactions:
    """ml-1m / ml-10m: ratings.dat and movies.dat, fields separated by '::'."""
    events = _read_ratings(files, "ratings.dat", b"::", has_header=False)
    rows = []
    if files.has("movies.dat"):
        for number, line in enumerate(files.text("movies.dat", encoding).splitlines(), start=1):
            if not line.strip():
                continue
            movie, _, rest = line.partition("::")
            title, separator, genres = rest.rpartition("::")
            if not separator or not movie.isdigit():
                raise DataError(
                    f"{files.describe('movies.dat')}: line {number}: expected "
                    f"'MovieID::Title::Genres', got {line[:80]!r}"
                )
            rows.append((int(movie), title, _split_genres(genres)))
    return Interactions(events, _item_frame(rows) if rows else None, files.location.name)


def read_csv(files: ReleaseFiles, encoding: str = "utf-8") -> Interactions:
    """ml-20m and later: ratings.csv and movies.csv (quoted CSV with a header, UTF-8)."""
    events = _read_ratings(files, "ratings.csv", b",", has_header=True)
    items = None
    if files.has("movies.csv"):
        source = files.source("movies.csv")
        _check_header(files, "movies.csv", source, MOVIES_HEADER)
        try:
            items = pl.read_csv(
                source,
                schema={"movieId": pl.Int64, "title": pl.String, "genres": pl.String},
                encoding="utf8",
            )
        except pl.exceptions.PolarsError as err:
            raise DataError(
                f"{files.describe('movies.csv')}: cannot be read as 'movieId,title,genres' "
                f"CSV: {_first_line(err)}"
            ) from err
        items = items.select(
            pl.col("movieId").alias(ITEM),
            pl.col("title").alias(TITLE),
            genres_expr(pl.col("genres")),
        )
        if files.has("links.csv"):
            items = items.join(_read_links(files), on=ITEM, how="left", maintain_order="left")
    return Interactions(events, items, files.location.name)


def _read_links(files: ReleaseFiles) -> pl.DataFrame:
    """links.csv as `item`, `imdb_id`, `tmdb_id` (whole numbers; null where a film has none)."""
    source = files.source("links.csv")
    _check_header(files, "links.csv", source, LINKS_HEADER)
    try:
        links = pl.read_csv(source, schema=dict.fromkeys(LINKS_HEADER, pl.Int64))
    except pl.exceptions.PolarsError as err:
        raise DataError(
            f"{files.describe('links.csv')}: cannot be read as 'movieId,imdbId,tmdbId' CSV of "
            f"whole numbers: {_first_line(err)}"
        ) from err
    return links.select(pl.col("movieId").alias(ITEM), pl.col("imdbId").alias(IMDB),
                        pl.col("tmdbId").alias(TMDB)).unique(ITEM, keep="first")


def _read_ratings(files: ReleaseFiles, name: str, separator: bytes, has_header: bool):
    """user, item, rating, timestamp with explicit dtypes; columns reordered to the contract."""
    source = files.source(name)
    if has_header:
        _check_header(files, name, source, CSV_HEADER)
    if len(separator) > 1:  # polars wants one byte: '::' becomes a tab (ids never hold tabs)
        source = (source.read_bytes() if isinstance(source, Path) else source).replace(
            separator, b"\t"
        )
        separator = b"\t"
    try:
        events = pl.read_csv(
            source,
            separator=separator.decode(),
            has_header=has_header,
            schema=dict(zip(CSV_HEADER if has_header else RATING_FIELDS, _DTYPES, strict=True)),
            quote_char=None,
        )
    except pl.exceptions.PolarsError as err:
        raise _diagnose(files, name, source, separator, has_header, err) from err
    if any(events.null_count().row(0)):  # a short line: polars fills the missing fields
        raise _diagnose(files, name, source, separator, has_header, None)
    if events.height == 0:
        raise DataError(f"{files.describe(name)}: holds no ratings")
    events.columns = list(RATING_FIELDS)
    return events.select(USER, ITEM, TIMESTAMP, RATING)


def _diagnose(files, name, source, separator: bytes, has_header: bool, err) -> DataError:
    """Find the first line that the fast parser rejected and say what is wrong with it.

    Streams the file line by line, so even a bad line near the end of ml-32m costs no memory.
    """
    expected = CSV_HEADER if has_header else RATING_FIELDS
    with source.open("rb") if isinstance(source, Path) else io.BytesIO(source) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.decode("latin-1").rstrip("\r\n")
            if (has_header and number == 1) or not line.strip():
                continue
            problem = _line_problem(line.split(separator.decode()), expected)
            if problem:
                return DataError(f"{files.describe(name)}: line {number}{problem}")
    reason = _first_line(err) if err is not None else "empty fields"
    return DataError(f"{files.describe(name)}: cannot be parsed: {reason}")


def _line_problem(fields: list[str], expected: tuple[str, ...]) -> str | None:
    """What is wrong with one ratings line, or None."""
    if len(fields) != 4:
        return (
            f": expected 4 fields ({', '.join(expected)}), got {len(fields)}: "
            f"{'|'.join(fields)[:80]!r}"
        )
    for column, value, kind in zip(expected, fields, (int, int, float, int), strict=True):
        try:
            kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            return f", column {column!r}: expected {what}, got {value!r}"
    return None


def _check_header(files: ReleaseFiles, name: str, source: Path | bytes, expected) -> None:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            first = handle.readline()
    else:
        first = source.split(b"\n", 1)[0]
    header = first.decode("utf-8-sig", "replace").strip().split(",")
    if tuple(h.strip('"') for h in header) != tuple(expected):
        raise DataError(
            f"{files.describe(name)}: line 1: expected the header {','.join(expected)!r}, "
            f"got {first.decode('utf-8', 'replace').strip()[:80]!r}; is this a MovieLens file?"
        )


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _split_genres(genres: str) -> list[str]:
    return [] if genres in ("", NO_GENRES) else genres.split("|")


def genres_expr(column: pl.Expr) -> pl.Expr:
    """'A|B' -> ['A', 'B']; "(no genres listed)" and empty -> []."""
    return (
        pl.when(column == NO_GENRES)
        .then(pl.lit(""))
        .otherwise(column.fill_null(""))
        .str.split("|")
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias(GENRES)
    )


def _item_frame(rows: list[tuple[int, str, list[str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={ITEM: pl.Int64, TITLE: pl.String, GENRES: pl.List(pl.String)}, orient="row"
    )
