"""Real MovieLens copies from $BERT4REC_DATA_DIR: counts computed independently in the test with
the standard library, and the awkward rows (colons, latin-1, "(no genres listed)")."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections import defaultdict

import pytest

from bert4rec.cli import main
from bert4rec.data import movielens
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings

pytestmark = pytest.mark.realdata


def independent_counts(rows, min_rating=4.0, min_user=5) -> tuple[int, int, int]:
    """(users, items, interactions) after the default filters, by plain Python."""
    per_user = defaultdict(list)
    for user, item, rating in rows:
        if float(rating) >= min_rating:
            per_user[user].append(item)
    kept = {u: items for u, items in per_user.items() if len(items) >= min_user}
    items = {i for seq in kept.values() for i in seq}
    return len(kept), len(items), sum(map(len, kept.values()))


def corpus_counts(corpus) -> tuple[int, int, int]:
    return corpus.n_users, corpus.n_items, corpus.n_interactions


def test_ml100k_counts_and_latin1_titles(data_dir):
    folder = data_dir / "ml-100k"
    with open(folder / "u.data") as handle:
        rows = [line.split("\t")[:3] for line in handle]
    assert len(rows) == 100_000
    assert corpus_counts(load_corpus("ml-100k", data_dir=data_dir)) == independent_counts(rows)
    items = movielens.load_release(folder).items
    titles = dict(zip(items["item"], items["title"], strict=True))
    assert len(titles) == 1682
    assert titles[543] == "Misérables, Les (1995)"
    assert titles[1104] == "C'est arrivé près de chez vous (1992)"


def test_ml_latest_small_counts_and_no_genres(data_dir):
    folder = data_dir / "ml-latest-small"
    with open(folder / "ratings.csv", newline="") as handle:
        rows = [(r["userId"], r["movieId"], r["rating"]) for r in csv.DictReader(handle)]
    with open(folder / "movies.csv", newline="", encoding="utf-8") as handle:
        movies = list(csv.DictReader(handle))
    assert len(rows) == 100_836
    data = movielens.load_release(folder)
    assert data.events.height == 100_836 and data.items.height == len(movies) == 9742
    no_genres = {int(m["movieId"]) for m in movies if m["genres"] == "(no genres listed)"}
    assert len(no_genres) == 34
    genres = dict(zip(data.items["item"], data.items["genres"].to_list(), strict=True))
    assert all(genres[m] == [] for m in no_genres)
    titles = dict(zip(data.items["item"], data.items["title"], strict=True))
    assert all(titles[int(m["movieId"])] == m["title"] for m in movies)  # commas in quotes
    with open(folder / "links.csv", newline="") as handle:
        links = list(csv.DictReader(handle))
    assert data.items["imdb_id"].null_count() == 0 and len(links) == 9742
    assert data.items["tmdb_id"].null_count() == sum(not r["tmdbId"] for r in links) == 8
    toy_story = data.items.filter(data.items["item"] == 1).row(0, named=True)
    assert (toy_story["imdb_id"], toy_story["tmdb_id"]) == (114709, 862)
    settings = PrepareSettings(min_rating=3.5, min_user_interactions=20)
    corpus = load_corpus(folder, settings)
    assert corpus_counts(corpus) == independent_counts(rows, 3.5, 20)


@pytest.fixture(scope="module")
def partial_ml1m(data_dir, tmp_path_factory):
    """A release folder in the ml-1m layout: the partial ratings.dat (users 1-2999) + movies.dat."""
    folder = tmp_path_factory.mktemp("partial") / "ml-1m"
    folder.mkdir()
    raw = gzip.decompress((data_dir / "ml-1m" / "ratings.users-1-2999.dat.gz").read_bytes())
    (folder / "ratings.dat").write_bytes(raw)
    shutil.copy(data_dir / "ml-1m" / "movies.dat", folder / "movies.dat")
    return folder, raw.decode("latin-1")


@pytest.mark.slow
def test_partial_ml1m_counts_time_order_and_titles(partial_ml1m):
    folder, text = partial_ml1m
    rows = [line.split("::") for line in text.splitlines()]
    assert len(rows) == 487_650
    corpus = load_corpus(folder)
    assert corpus_counts(corpus) == independent_counts((u, i, r) for u, i, r, _ in rows)
    # user 1's sequence is its >= 4 ratings sorted by timestamp, ties in file order
    mine = [(int(t), n, int(i)) for n, (u, i, r, t) in enumerate(rows) if u == "1" and int(r) >= 4]
    assert corpus.user_ids[0] == 1
    assert corpus.item_ids[corpus.sequence(0) - 1].tolist() == [i for _, _, i in sorted(mine)]
    titles = dict(zip(corpus.item_table["item"], corpus.item_table["title"], strict=True))
    assert titles[260] == "Star Wars: Episode IV - A New Hope (1977)"
    items = movielens.load_release(folder).items
    all_titles = dict(zip(items["item"], items["title"], strict=True))
    assert len(all_titles) == 3883
    assert all_titles[73] == "Misérables, Les (1995)"
    assert all_titles[649] == "Cold Fever (Á köldum klaka) (1994)"


def test_partial_ml1m_gzip_in_place_of_ratings_dat(partial_ml1m, tmp_path):
    text = partial_ml1m[1]
    packed = tmp_path / "ml-1m"
    packed.mkdir()
    (packed / "ratings.dat.gz").write_bytes(gzip.compress(text.encode("latin-1"), 1))
    assert movielens.load_release(packed).events.height == 487_650


def test_cli_prepare_json_prints_one_object(data_dir, capsys):
    assert main(["data", "prepare", "ml-latest-small", "--data-dir", str(data_dir), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    stats = json.loads(lines[0])
    corpus = load_corpus("ml-latest-small", data_dir=data_dir)
    assert (stats["users"], stats["items"], stats["interactions"]) == corpus_counts(corpus)
