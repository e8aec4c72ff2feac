"""Data the user hands in (issue 23): the prepared-corpus cache notices an edit in place,
exact duplicate events are dropped and counted, and bad ids from Python fail with one
`DataError` naming the column."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest

import bert4rec
from bert4rec.cli import main
from bert4rec.data.cache import load_corpus
from bert4rec.errors import DataError, ModelDirError


def events(n_users: int = 30, length: int = 8, seed: int = 0) -> pl.DataFrame:
    """`n_users` users with `length` distinct items each, at increasing times, all rated 5."""
    rng = np.random.default_rng(seed)
    rows = [(u, int(item), 1000 * u + t, 5.0) for u in range(n_users)
            for t, item in enumerate(rng.choice(50, length, replace=False))]
    return pl.DataFrame(rows, schema=["user", "item", "timestamp", "rating"], orient="row")


def test_the_cache_notices_an_edit_that_keeps_size_and_mtime(tmp_path):
    log = tmp_path / "log.csv"
    frame = events()
    frame.write_csv(log)
    before = load_corpus(log)
    stat = log.stat()
    edited = frame.with_columns(pl.when(pl.col("user") < 10).then(1.0).otherwise(pl.col("rating"))
                                .alias("rating"))  # ten users' ratings drop below 4
    edited.write_csv(log)
    os.utime(log, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert log.stat().st_size == stat.st_size and log.stat().st_mtime_ns == stat.st_mtime_ns
    after = load_corpus(log)
    assert (before.n_users, after.n_users) == (30, 20)
    assert after.fingerprint() == load_corpus(log, use_cache=False).fingerprint()


def test_exact_duplicates_are_dropped_and_counted():
    frame = events()
    once = bert4rec.Dataset.from_frame(frame)
    twice = bert4rec.Dataset.from_frame(pl.concat([frame, frame]))
    assert twice.n_interactions == once.n_interactions == 240
    assert twice.corpus.fingerprint() == once.corpus.fingerprint()
    assert (once.statistics()["duplicates_dropped"], twice.statistics()["duplicates_dropped"]) \
        == (0, 240)
    test = twice.corpus.split("test")
    previous = twice.corpus.items_flat[twice.corpus.offsets[1:] - 2]
    assert not (test.targets == previous[test.users]).any()  # was 112 of 132 on main


def test_the_same_item_at_another_time_is_not_a_duplicate():
    frame = events()
    later = frame.with_columns(pl.col("timestamp") + 500)
    both = bert4rec.Dataset.from_frame(pl.concat([frame, later]))
    assert both.n_interactions == 480 and both.statistics()["duplicates_dropped"] == 0


def test_the_prepare_summary_counts_duplicates(tmp_path, capsys):
    log = tmp_path / "log.csv"
    pl.concat([events(), events().head(5)]).write_csv(log)
    assert main(["data", "prepare", str(log), "--json", "--no-cache"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["duplicates_dropped"] == 5 and stats["interactions"] == 240


@pytest.mark.realdata
@pytest.mark.parametrize(("source", "interactions"), [
    ("ml-100k", 55_361), ("ml-latest-small", 48_562), ("ml-1m/ml-1m.txt", 999_611)])
def test_the_real_data_sets_have_no_exact_duplicates(data_dir, source, interactions):
    path = data_dir / source if "/" in source else source
    corpus = load_corpus(path, data_dir=data_dir, use_cache=False)
    assert corpus.duplicates == 0 and corpus.n_interactions == interactions


def test_ids_above_int64_are_named(tmp_path):
    frame = events().with_columns(pl.col("item").cast(pl.UInt64) + (2**63))
    with pytest.raises(DataError, match=r"DataFrame: row 0, column 'item': id 922337203685477"
                                        r"\d+ is above 9,223,372,036,854,775,807"):
        bert4rec.Dataset.from_frame(frame)


def test_a_pandas_column_of_numbers_and_text_is_named():
    pd = pytest.importorskip("pandas")
    frame = events().to_pandas()
    frame["item"] = frame["item"].astype(object)
    frame.loc[3, "item"] = "a"
    with pytest.raises(DataError, match=r"column 'item' mixes int and str values"):
        bert4rec.Dataset.from_frame(frame)
    assert pd is not None


def test_a_history_entry_that_is_a_list_is_named(tmp_path):
    from tiny_run import make_run_dir

    model = bert4rec.Model.load(make_run_dir(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"histories\[0\]\[0\] is a list"):
        model.recommend(histories=[[[1]]])
    with pytest.raises(ValueError, match=r"histories\[1\]\[1\] is a dict"):
        model.recommend(histories=[[1], [260, {}]])


def test_loading_a_missing_folder_says_so(tmp_path):
    with pytest.raises(ModelDirError, match=r"missing-dir: no such folder"):
        bert4rec.Model.load(tmp_path / "missing-dir")
