"""bert4rec.Dataset: DataFrames (pandas or polars; whole-number, text or datetime columns) and
log files become the same corpus as the command line's; bad columns are named."""

import argparse
import datetime as dt
import inspect
from dataclasses import asdict

import numpy as np
import polars as pl
import pytest

import bert4rec
from bert4rec.cli.data import add_source_options, columns_from_args, settings_from_args
from bert4rec.data.corpus import PrepareSettings
from bert4rec.data.interactions import LogColumns
from bert4rec.errors import DataError

EVENTS = pl.DataFrame({
    "uid": [2, 1, 1, 2, 1, 2, 1],
    "sku": [30, 10, 20, 10, 30, 20, 40],
    "ts": [3, 2, 1, 1, 3, 2, 4],
    "stars": [5.0, 4.0, 5.0, 3.0, 4.5, 5.0, 4.0],
})
MOVIES = pl.DataFrame({
    "sku": [10, 20, 30, 99],
    "name": ["Ten (1990)", "Twenty (1991)", None, "Unused (1999)"],
    "genres": ["Drama|Comedy", "(no genres listed)", "Horror", "Drama"],
})
KEEP_ALL = {"min_user_interactions": 0, "min_rating": None}


@pytest.fixture
def pd():
    """pandas, which the test extra installs; its tests skip without it."""
    return pytest.importorskip("pandas")


def sequences(data: bert4rec.Dataset) -> dict:
    """Each user's items (original ids) in time order."""
    corpus = data.corpus
    return {user: [corpus.item_ids[i - 1] for i in corpus.sequence(pos)]
            for pos, user in enumerate(corpus.user_ids.tolist())}


def test_a_polars_frame_becomes_time_ordered_sequences():
    data = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert sequences(data) == {1: [20, 10, 30, 40], 2: [10, 20, 30]}
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 4, 7)


def test_a_pandas_frame_with_text_ids_and_datetimes_gives_the_same_sequences(pd):
    frame = EVENTS.to_pandas()
    frame["uid"] = "u" + frame["uid"].astype(str)
    frame["ts"] = pd.to_datetime("2024-03-01") + pd.to_timedelta(frame["ts"], unit="h")
    data = bert4rec.Dataset.from_frame(frame, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert sequences(data) == {"u1": [20, 10, 30, 40], "u2": [10, 20, 30]}


@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_polars_dates_and_zoned_datetimes_order_events(zone):
    start = dt.datetime(2024, 1, 1)
    times = EVENTS.with_columns(
        (pl.lit(start) + pl.duration(days=pl.col("ts"))).dt.replace_time_zone(zone).alias("ts"))
    data = bert4rec.Dataset.from_frame(times, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert sequences(data)[1] == [20, 10, 30, 40]
    dates = EVENTS.with_columns((pl.lit(start.date()) + pl.duration(days=pl.col("ts"))).alias("ts"))
    data = bert4rec.Dataset.from_frame(dates, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert sequences(data)[1] == [20, 10, 30, 40]


def test_without_a_timestamp_the_rows_are_in_time_order():
    data = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp=None, **KEEP_ALL)
    assert sequences(data) == {1: [10, 20, 30, 40], 2: [30, 10, 20]}


def test_ratings_below_min_rating_and_short_users_are_left_out():
    data = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts",
                                       rating="stars", min_rating=4.5, min_user_interactions=2)
    assert sequences(data) == {1: [20, 30], 2: [20, 30]}


def test_a_column_named_rating_is_the_rating_by_default_as_on_the_command_line():
    rated = EVENTS.rename({"stars": "rating"})
    data = bert4rec.Dataset.from_frame(rated, user="uid", item="sku", timestamp="ts",
                                       min_user_interactions=0)  # min_rating 4 by default
    assert sequences(data) == {1: [20, 10, 30, 40], 2: [20, 30]}  # the 3.0 is left out


def test_the_data_settings_have_one_set_of_defaults():
    parser = argparse.ArgumentParser()
    add_source_options(parser)
    args = parser.parse_args(["SOURCE"])
    assert settings_from_args(args) == PrepareSettings()
    assert columns_from_args(args) == LogColumns()
    for method in (bert4rec.Dataset.from_frame, bert4rec.Dataset.from_source):
        given = inspect.signature(method).parameters
        assert {name: given[name].default for name in asdict(PrepareSettings())} == asdict(
            PrepareSettings()), method.__name__
        assert {name: given[name].default for name in asdict(LogColumns())} == asdict(
            LogColumns()), method.__name__


def test_an_item_table_brings_titles_and_genres(pd):
    data = bert4rec.Dataset.from_frame(EVENTS.to_pandas(), user="uid", item="sku", timestamp="ts",
                                       items=MOVIES.to_pandas(), title="name", **KEEP_ALL)
    assert type(data.items).__module__.startswith("pandas")  # pandas in, pandas out
    items = {row["item"]: row for row in pl.from_pandas(data.items).to_dicts()}
    assert items[10]["title"] == "Ten (1990)" and items[10]["genres"] == ["Drama", "Comedy"]
    assert items[20]["genres"] == [] and items[30]["title"] is None
    assert items[40]["title"] is None and 99 not in items
    listed = MOVIES.with_columns(pl.col("genres").str.split("|"))
    again = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts",
                                        items=listed, title="name", **KEEP_ALL)
    assert again.items.filter(pl.col("item") == 10)["genres"].to_list() == [["Drama", "Comedy"]]


def test_other_columns_of_the_item_table_are_kept():
    extra = MOVIES.with_columns(year=pl.Series([1990, 1991, 1992, 1999]),
                                url=pl.lit("https://example.org"))
    data = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts",
                                       items=extra, title="name", **KEEP_ALL)
    assert data.items.columns == ["item", "title", "genres", "year", "url"]
    assert data.items["year"].to_list() == [1990, 1991, 1992, None]
    with pytest.raises(DataError, match="column 'title' would clash"):
        bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts",
                                    items=extra.with_columns(title=pl.lit("x")), title="name")


def test_a_log_file_through_from_source(tmp_path):
    path = tmp_path / "events.csv"
    EVENTS.write_csv(path)
    data = bert4rec.Dataset.from_source(path, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert sequences(data) == {1: [20, 10, 30, 40], 2: [10, 20, 30]}
    assert data.description["source"] == str(path.resolve())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user": "user_id"}, "DataFrame: missing column(s) 'user_id'; it has 'uid', 'sku', 'ts', "
                              "'stars'. Name the right ones with user=, item=, timestamp="),
        ({"rating": "score"}, "missing column(s) 'score'"),
    ],
)
def test_a_missing_column_is_named_with_the_argument_to_change(change, message):
    arguments = {"user": "uid", "item": "sku", "timestamp": "ts", **change}
    with pytest.raises(DataError) as error:
        bert4rec.Dataset.from_frame(EVENTS, **arguments)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("uid", [2, None, 1, 2, 1, 2, 1], "DataFrame: row 1, column 'uid': value is empty"),
        ("sku", [30.0, 10.5, 20, 10, 30, 20, 40],
         "row 1, column 'sku': expected a number, got 10.5"),
        ("ts", ["3", "2", "soon", "1", "3", "2", "4"], "row 2, column 'ts': expected a number, got "
                                                        "'soon'"),
        ("ts", [dt.timedelta(1)] * 7, "column 'ts' holds durations"),
        ("sku", [[1]] * 7, "column 'sku' holds List(Int64) values"),
    ],
)
def test_a_bad_value_is_named_by_row_and_column(column, values, message):
    frame = EVENTS.with_columns(pl.Series(column, values, strict=False))
    with pytest.raises(DataError) as error:
        bert4rec.Dataset.from_frame(frame, user="uid", item="sku", timestamp="ts")
    assert message in str(error.value)


def test_a_datetime_gap_in_pandas_is_named(pd):
    frame = EVENTS.to_pandas()
    frame["ts"] = pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-01", "2024-01-02",
                                  "2024-01-02", "2024-01-05"])
    with pytest.raises(DataError, match="row 1, column 'ts': value is empty"):
        bert4rec.Dataset.from_frame(frame, user="uid", item="sku", timestamp="ts")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (MOVIES.rename({"sku": "movieId"}), "items: no item column 'sku'"),
        (MOVIES.select("sku"), "items: neither a title column 'title' nor a genres column"),
        (MOVIES.with_columns(pl.lit(3).alias("genres")), "column 'genres' holds Int32"),
    ],
)
def test_a_bad_item_table_is_named(items, message):
    with pytest.raises(DataError, match=message):
        bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts", items=items)


def test_only_data_frames_are_taken():
    with pytest.raises(DataError, match=r"DataFrame, got dict$"):
        bert4rec.Dataset.from_frame({"uid": [1]}, user="uid")
    with pytest.raises(DataError, match="the frame has no rows"):
        bert4rec.Dataset.from_frame(EVENTS.clear(), user="uid", item="sku", timestamp="ts")


def test_users_are_ascending_ids():
    data = bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp="ts", **KEEP_ALL)
    assert np.array_equal(data.users, [1, 2]) and "2 users, 4 items" in repr(data)
