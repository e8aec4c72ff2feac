"""bert4rec.split: leave_last and by_time on polars and pandas frames, every column and row kept."""

import datetime as dt

import polars as pl
import pytest

import bert4rec
from bert4rec.errors import DataError

# user 1: times 3, 1, 2 (last is item 10, at time 3); user 2: 5, 4; user 3: one event
EVENTS = pl.DataFrame({"uid": [1, 1, 1, 2, 2, 3], "sku": [10, 11, 12, 20, 21, 30],
                       "ts": [3, 1, 2, 5, 4, 9], "note": list("abcdef")})


def test_import_bert4rec_loads_split_and_metrics_without_torch():
    import subprocess
    import sys

    code = ("import sys, bert4rec; bert4rec.split.by_time; bert4rec.metrics.ndcg; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert {"split", "metrics", "Baseline"} <= set(dir(bert4rec))


def test_leave_last_holds_out_each_users_last_events_by_time():
    train, test = bert4rec.split.leave_last(EVENTS, user="uid", timestamp="ts")
    assert test.to_dict(as_series=False) == {"uid": [1, 2], "sku": [10, 20], "ts": [3, 5],
                                             "note": ["a", "d"]}
    assert train["note"].to_list() == ["b", "c", "e", "f"]  # user 3 (one event) stays whole
    train, test = bert4rec.split.leave_last(EVENTS, n=2, user="uid", timestamp="ts")
    assert test["sku"].to_list() == [10, 12]  # user 2 has only 2 events: kept whole
    assert train["sku"].to_list() == [11, 20, 21, 30]


def test_leave_last_without_a_time_column_takes_row_order_and_ties_by_row():
    _, test = bert4rec.split.leave_last(EVENTS, user="uid", timestamp=None)
    assert test["sku"].to_list() == [12, 21]
    tied = pl.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [5, 5, 5]})
    assert bert4rec.split.leave_last(tied)[1]["item"].to_list() == [3]


def test_by_time_cuts_once_for_everyone():
    train, test = bert4rec.split.by_time(EVENTS, at=4, timestamp="ts")
    assert test["ts"].to_list() == [5, 4, 9] and train["ts"].to_list() == [3, 1, 2]
    train, test = bert4rec.split.by_time(EVENTS, fraction=0.5, timestamp="ts")
    assert test["ts"].to_list() == [5, 4, 9]  # the last 3 of 6 events by time
    _, test = bert4rec.split.by_time(EVENTS, fraction=0.1, timestamp="ts")
    assert test["ts"].to_list() == [9]
    assert max(train["ts"]) < min(test["ts"])


def test_by_time_takes_dates_datetimes_and_iso_text_on_any_time_column():
    days = EVENTS.with_columns(pl.from_epoch("ts", "d").alias("ts"))  # 1970-01-04 etc.
    for at in ("1970-01-05", dt.date(1970, 1, 5), dt.datetime(1970, 1, 5)):
        assert bert4rec.split.by_time(days, at=at, timestamp="ts")[1]["sku"].to_list() == [
            20, 21, 30]
    seconds = EVENTS.with_columns(pl.col("ts") * 86_400)  # the same times as epoch seconds
    assert bert4rec.split.by_time(seconds, at="1970-01-05", timestamp="ts")[1].height == 3
    text = days.with_columns(pl.col("ts").cast(pl.String))
    assert bert4rec.split.by_time(text, at="1970-01-05", timestamp="ts")[1].height == 3


def test_pandas_in_pandas_out_with_its_index():
    pd = pytest.importorskip("pandas")
    frame = EVENTS.to_pandas()
    frame.index = list("pqrstu")
    train, test = bert4rec.split.leave_last(frame, user="uid", timestamp="ts")
    assert isinstance(test, pd.DataFrame) and list(test.index) == ["p", "s"]
    train, test = bert4rec.split.by_time(frame, fraction=0.5, timestamp="ts")
    assert list(train.index) == ["p", "q", "r"] and list(test.columns) == list(frame.columns)


def test_bad_arguments_are_named():
    with pytest.raises(DataError, match=r"no column 'user'.*user="):
        bert4rec.split.leave_last(EVENTS)
    with pytest.raises(DataError, match=r"no column 'timestamp'.*timestamp="):
        bert4rec.split.by_time(EVENTS, fraction=0.2)
    with pytest.raises(ValueError, match="not both and not neither"):
        bert4rec.split.by_time(EVENTS, timestamp="ts")
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        bert4rec.split.by_time(EVENTS, fraction=1.0, timestamp="ts")
    with pytest.raises(ValueError, match="n must be a whole number"):
        bert4rec.split.leave_last(EVENTS, n=0, user="uid")
    with pytest.raises(ValueError, match="is not a date"):
        bert4rec.split.by_time(EVENTS, at="soon", timestamp="ts")
    with pytest.raises(DataError, match=r"row 1, column 'ts': value is empty"):
        bert4rec.split.by_time(EVENTS.with_columns(pl.Series("ts", [1, None, 2, 3, 4, 5])),
                               at=2, timestamp="ts")
