"""SequenceCorpus: filters, vocabulary, time order, leave-one-out split, save/load."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import polars as pl
import pytest

from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, left_pad, prepare
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError


def make(rows: list[tuple], with_rating: bool = True) -> Interactions:
    names = ["user", "item", "timestamp", "rating"][: 4 if with_rating else 3]
    frame = pl.DataFrame(rows, schema=names, orient="row")
    return Interactions(
        frame.with_columns(pl.col("rating").cast(pl.Float64)) if with_rating else frame, None, "toy"
    )


def test_time_order_with_stable_ties_and_vocab_by_ascending_id():
    rows = [(7, 30, 5, 5), (7, 10, 1, 5), (7, 20, 5, 5), (7, 40, 9, 5), (7, 50, 3, 5)]
    corpus = prepare(make(rows), PrepareSettings(min_user_interactions=0))
    assert corpus.item_ids.tolist() == [10, 20, 30, 40, 50]
    # time 1 -> item 10, time 3 -> 50, time 5 ties keep file order (30 then 20), time 9 -> 40
    assert corpus.item_ids[corpus.sequence(0) - 1].tolist() == [10, 50, 30, 20, 40]
    assert corpus.mask_token == 6 and corpus.vocab_size == 7


def test_filters_apply_rating_then_items_then_users():
    rows = [(1, i, i, 5.0) for i in (1, 2, 3)] + [(3, i, i, 5.0) for i in (1, 2)]
    rows += [(2, 1, 1, 5.0), (2, 2, 2, 5.0), (2, 3, 3, 5.0), (2, 4, 4, 3.0), (2, 9, 5, 5.0)]
    settings = PrepareSettings(min_rating=4, min_item_interactions=2, min_user_interactions=3)
    corpus = prepare(make(rows), settings)
    # rating drops (2, 4); item 9 has one interaction -> dropped; then user 3 has 2 -> dropped.
    assert corpus.user_ids.tolist() == [1, 2]
    assert corpus.item_ids.tolist() == [1, 2, 3]
    assert corpus.n_interactions == 6
    with pytest.raises(DataError, match="no interactions left"):
        prepare(make(rows), PrepareSettings(min_user_interactions=10))


def test_leave_one_out_split():
    rows = [(1, i, i, 5.0) for i in (1, 2, 3, 4)] + [(2, i, i, 5.0) for i in (5, 6)]
    corpus = prepare(make(rows), PrepareSettings(min_user_interactions=0))
    train, valid, test = (corpus.split(name) for name in ("train", "valid", "test"))
    assert train.history(0).tolist() == [1, 2] and train.history(1).tolist() == [5, 6]
    assert valid.users.tolist() == [0] and valid.targets.tolist() == [3]
    assert valid.history(0).tolist() == [1, 2]
    assert test.targets.tolist() == [4] and test.history(0).tolist() == [1, 2, 3]
    refit = corpus.split("train+valid")  # everything but the test item, targets none
    assert refit.history(0).tolist() == [1, 2, 3] and refit.history(1).tolist() == [5, 6]
    assert refit.targets is None and refit.users.tolist() == [0, 1]
    everything = corpus.split("all")  # what a final fit trains on: nothing held out
    assert everything.history(0).tolist() == [1, 2, 3, 4] and everything.targets is None
    assert everything.history(1).tolist() == [5, 6] and everything.users.tolist() == [0, 1]


def test_left_pad_keeps_most_recent():
    flat = np.array([1, 2, 3, 4, 5, 6])
    offsets = np.array([0, 4, 6])
    assert left_pad(flat, offsets, np.array([0, 1]), 3).tolist() == [[2, 3, 4], [0, 5, 6]]


def test_save_load_round_trip(tmp_path):
    corpus = prepare(make([(1, i, i, 5.0) for i in range(1, 8)]))
    corpus.save(tmp_path / "c")
    again = SequenceCorpus.load(tmp_path / "c")
    assert np.array_equal(again.items_flat, corpus.items_flat)
    assert again.settings == corpus.settings and again.item_table.equals(corpus.item_table)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


@pytest.mark.realdata
def test_ml_latest_small_counts_match_an_independent_count(data_dir):
    from bert4rec.data.cache import load_corpus

    per_user = defaultdict(list)
    with open(data_dir / "ml-latest-small" / "ratings.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if float(row["rating"]) >= 4:
                per_user[row["userId"]].append(int(row["movieId"]))
    kept = {u: items for u, items in per_user.items() if len(items) >= 5}
    corpus = load_corpus("ml-latest-small", data_dir=data_dir)
    assert corpus.n_users == len(kept)
    assert corpus.n_interactions == sum(map(len, kept.values()))
    assert corpus.n_items == len({i for items in kept.values() for i in items})


@pytest.mark.realdata
def test_ml1m_benchmark_file_unfiltered(data_dir):
    from bert4rec.data.cache import load_corpus

    corpus = load_corpus(
        data_dir / "ml-1m" / "ml-1m.txt", PrepareSettings(min_rating=None, min_user_interactions=0)
    )
    assert (corpus.n_users, corpus.n_items, corpus.n_interactions) == (6040, 3416, 999611)
    # ml-1m.txt numbers items by first appearance, so user 1's sequence starts 1, 2, 3 ...
    assert corpus.item_ids[corpus.sequence(0)[:5] - 1].tolist() == [1, 2, 3, 4, 5]
