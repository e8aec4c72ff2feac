"""MovieLens readers and detection on fake archives in every published layout (issue 2)."""

from __future__ import annotations

import gzip
import shutil
import zipfile

import polars as pl
import pytest
from fake_movielens import LAYOUT, MOVIES, expected_events, release_files, write_release

from bert4rec.data import movielens, sources
from bert4rec.data.corpus import PrepareSettings, prepare
from bert4rec.errors import DataError

ALL = list(movielens.RELEASES)


def titles(interactions) -> dict[int, str]:
    return dict(zip(interactions.items["item"], interactions.items["title"], strict=True))


def genres(interactions) -> dict[int, list[str]]:
    items = interactions.items
    return dict(zip(items["item"], items["genres"].to_list(), strict=True))


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("name", ALL)
def test_every_release_layout_reads_faithfully(tmp_path, name, as_zip):
    path = write_release(name, tmp_path, as_zip=as_zip)
    data = movielens.load_release(path)
    assert data.name == name
    assert data.events.columns == ["user", "item", "timestamp", "rating"]
    assert [str(d) for d in data.events.dtypes] == ["Int64", "Int64", "Int64", "Float64"]
    assert data.events.rows() == expected_events(name)
    # colons, commas and latin-1 accents survive; "(no genres listed)" means no genres
    assert titles(data) == {movie: title for movie, title, _ in MOVIES}
    assert genres(data)[30] == []
    assert genres(data)[260][:2] == ["Action", "Adventure"]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_links_csv_gives_imdb_and_tmdb_ids(tmp_path, as_zip):
    """Issue 16: links.csv's ids reach the item table (null for films it does not list) and
    the prepared corpus, so items.parquet and the web page can link out."""
    data = movielens.load_release(write_release("ml-latest-small", tmp_path, as_zip=as_zip))
    links = {row["item"]: (row["imdb_id"], row["tmdb_id"]) for row in data.items.iter_rows(
        named=True)}
    assert links[260] == (76759, 11) and links[10] == (None, None)
    table = prepare(data, PrepareSettings(min_user_interactions=1)).item_table
    assert table.columns[-2:] == ["imdb_id", "tmdb_id"]
    assert table.filter(pl.col("item") == 260).row(0, named=True)["imdb_id"] == 76759


def test_a_bad_links_csv_is_named(tmp_path):
    folder = write_release("ml-latest-small", tmp_path)
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n260,tt0076759,11\n")
    with pytest.raises(DataError, match=r"links\.csv.*movieId,imdbId,tmdbId"):
        movielens.load_release(folder)


def test_csv_with_crlf_line_endings(tmp_path):
    data = movielens.load_release(write_release("ml-latest-small", tmp_path, crlf=True))
    assert data.events.rows() == expected_events("ml-latest-small")
    assert titles(data)[10] == "American President, The (1995)"
    assert genres(data)[10] == ["Comedy", "Drama", "Romance"]


def test_ml10m_zip_unpacks_to_its_own_folder_name(tmp_path):
    path = write_release("ml-10m", tmp_path, as_zip=True)
    layout, files = movielens.detect(path)
    assert layout is movielens.DAT and files.prefix == "ml-10M100K/"
    assert movielens.release_name(write_release("ml-10m", tmp_path / "x")) == "ml-10m"


def test_detection_by_files_in_a_renamed_folder(tmp_path):
    path = write_release("ml-1m", tmp_path, folder="my-ratings")
    assert movielens.detect(path)[0] is movielens.DAT
    assert movielens.load_release(path).name == "my-ratings"


def test_detection_through_one_nested_folder(tmp_path):
    write_release("ml-100k", tmp_path / "ml-100k")  # unzipped into a folder of the same name
    layout, files = movielens.detect(tmp_path / "ml-100k")
    assert layout is movielens.U_DATA and files.location == tmp_path / "ml-100k" / "ml-100k"


def test_detection_of_gzip_compressed_ratings(tmp_path):
    path = write_release("ml-1m", tmp_path)
    raw = (path / "ratings.dat").read_bytes()
    (path / "ratings.dat").unlink()
    (path / "ratings.dat.gz").write_bytes(gzip.compress(raw))
    assert movielens.load_release(path).events.rows() == expected_events("ml-1m")


def test_detection_of_a_zip_without_a_top_folder(tmp_path):
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        for file, data in release_files("ml-25m").items():
            archive.writestr(file, data)
    layout, files = movielens.detect(flat)
    assert layout is movielens.CSV and files.prefix == ""
    assert movielens.load_release(flat).events.rows() == expected_events("ml-25m")


def test_not_a_release(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("photos/cat.jpg", b"meow")
    with pytest.raises(DataError, match=r"other\.zip: not a MovieLens release"):
        movielens.detect(tmp_path / "other.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"not a MovieLens release.*ratings\.csv"):
        movielens.detect(tmp_path)
    with pytest.raises(FileNotFoundError):
        movielens.detect(tmp_path / "missing")


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    """Three empty roots: --data-dir, $BERT4REC_DATA_DIR and the user cache."""
    paths = {key: tmp_path / key for key in ("arg", "env", "cache")}
    monkeypatch.setenv(movielens.DATA_DIR_ENV, str(paths["env"]))
    monkeypatch.setattr(movielens, "default_root", lambda: paths["cache"])
    return paths


def test_lookup_order_data_dir_then_env_then_cache(roots):
    for key in ("cache", "env", "arg"):
        write_release("ml-1m", roots[key])
        assert movielens.locate("ml-1m", roots["arg"]) == roots[key] / "ml-1m"
    shutil.rmtree(roots["arg"] / "ml-1m")
    assert movielens.locate("ml-1m", roots["arg"]) == roots["env"] / "ml-1m"


def test_lookup_finds_zips_and_published_folder_names(roots):
    write_release("ml-20m", roots["cache"], as_zip=True)
    assert movielens.locate("ml-20m") == roots["cache"] / "ml-20m.zip"
    write_release("ml-10m", roots["env"])
    assert movielens.locate("ml-10m") == roots["env"] / "ml-10M100K"


def test_explicit_path_wins_over_release_names(roots, tmp_path):
    write_release("ml-1m", roots["env"])
    explicit = write_release("ml-100k", tmp_path / "elsewhere", as_zip=True)
    assert sources.resolve(explicit) == explicit
    assert sources.load_source(explicit).name == "ml-100k"
    assert sources.load_source("ml-1m").name == "ml-1m"


def test_missing_release_says_where_it_looked_and_what_to_run(roots):
    with pytest.raises(FileNotFoundError) as err:
        movielens.locate("ml-25m", roots["arg"])
    message = str(err.value)
    assert str(roots["arg"] / "ml-25m") in message and str(roots["cache"] / "ml-25m.zip") in message
    assert "bert4rec data download ml-25m" in message
    with pytest.raises(DataError, match="unknown MovieLens release 'ml-3m'"):
        movielens.locate("ml-3m")


def test_release_table_is_complete_and_https():
    assert set(LAYOUT) == set(movielens.RELEASES)
    for entry in movielens.RELEASES.values():
        assert entry.url().startswith("https://files.grouplens.org/datasets/movielens/")
        assert entry.url().endswith(f"/{entry.name}.zip")
        assert entry.checksum_source
        if entry.sha256:
            assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        if entry.md5:
            assert len(entry.md5) == 32 and int(entry.md5, 16) >= 0
    assert movielens.RELEASES["ml-10m"].folder == "ml-10M100K"
    assert not movielens.RELEASES["ml-latest"].verifiable
