"""What preparing leaves out (issue 24): the items a kept user saw only in events the rating
filter dropped, and the users and items dropped whole, with their counts and why."""

import numpy as np
import polars as pl
import pytest

from bert4rec import rundir
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.interactions import Interactions
from bert4rec.data.leftout import why_missing
from bert4rec.data.users import UserHistories

# user 1 likes items 1-3, rated item 4 a 2 and item 5 a 1; user 2 likes 1-4; user 3 likes two
# items; user 4 likes 1 and 6 and rated 2 and 3 low. Item 7 is only in the item table.
ROWS = [(1, 1, 1, 5.0), (1, 2, 2, 5.0), (1, 4, 3, 2.0), (1, 3, 4, 5.0), (1, 5, 5, 1.0),
        (2, 1, 1, 5.0), (2, 2, 2, 5.0), (2, 3, 3, 5.0), (2, 4, 4, 4.0),
        (3, 1, 1, 5.0), (3, 2, 2, 5.0),
        (4, 1, 1, 5.0), (4, 2, 2, 3.0), (4, 3, 3, 2.0), (4, 6, 4, 5.0)]
SETTINGS = PrepareSettings(min_rating=4.0, min_user_interactions=3)


def corpus(settings: PrepareSettings = SETTINGS) -> SequenceCorpus:
    events = pl.DataFrame(ROWS, schema=["user", "item", "timestamp", "rating"], orient="row")
    items = pl.DataFrame({"item": [1, 2, 3, 4, 5, 6, 7], "title": list("ABCDEFG"),
                          "genres": [["Drama"]] * 7})
    return prepare(Interactions(events, items, "toy"), settings)


def test_prepare_records_what_the_filters_took():
    prepared = corpus()
    assert prepared.user_ids.tolist() == [1, 2] and prepared.item_ids.tolist() == [1, 2, 3, 4]
    left = prepared.left_out
    assert left.seen(0).tolist() == [4] and left.seen(1).tolist() == []  # item 5 is no item
    assert left.users.rows() == [(3, 2, 2), (4, 4, 2)]  # user, events, rated
    assert left.items.rows() == [(5, 1, 0), (6, 1, 1), (7, 0, 0)]
    everything = corpus(PrepareSettings(min_rating=None, min_user_interactions=0)).left_out
    assert len(everything.seen_flat) == 0 and everything.users.height == 0
    assert everything.items.rows() == [(7, 0, 0)]


def test_a_saved_corpus_keeps_it(tmp_path):
    prepared = corpus()
    prepared.save(tmp_path / "c")
    again = SequenceCorpus.load(tmp_path / "c")
    assert again.left_out.seen_offsets.tolist() == prepared.left_out.seen_offsets.tolist()
    assert again.left_out.items.equals(prepared.left_out.items)


@pytest.mark.parametrize(("kind", "value", "why"), [
    ("user", 3, ": it has 2 events, and min_user_interactions=3 keeps users with 3 or more "
                "(lower it to keep such users)"),
    ("user", 4, ": it has 2 events rated 4 or more (of 4), and min_user_interactions=3 keeps "
                "users with 3 or more"),
    ("user", 99, ": no event of the log names this user"),
    ("user", "3", ""),  # text asked of number ids: the caller says what ids look like
    ("item", 5, ": none of its 1 event has a rating of 4 or more (min_rating=None keeps every "
                "rating)"),
    ("item", 6, ": it has 1 event, all by users left out for having fewer than "
                "min_user_interactions=3 (lower it to keep them)"),
    ("item", 7, ": it is in the item table but no event of the log names it"),
])
def test_why_a_user_or_item_is_missing(kind, value, why):
    left = corpus().left_out
    table = left.users if kind == "user" else left.items
    assert why_missing(kind, value, table, SETTINGS).startswith(why)


def test_the_item_filter_is_named_when_it_dropped_the_item():
    settings = PrepareSettings(min_rating=4.0, min_item_interactions=2, min_user_interactions=3)
    left = corpus(settings).left_out
    assert why_missing("item", 6, left.items, settings).startswith(
        ": it has 1 event, and min_item_interactions=2 keeps items with 2 or more")


def test_users_parquet_keeps_the_seen_items_and_old_files_still_read(tmp_path):
    prepared = corpus()
    rundir.write_users(tmp_path, prepared)
    users = UserHistories.read(tmp_path / rundir.USERS, prepared.n_items)
    assert users.seen_subset(np.array([1, 0]))[0].tolist() == [4]
    assert pl.read_parquet(tmp_path / rundir.LEFT_OUT).columns == ["user", "item", "events",
                                                                   "rated"]
    old = pl.read_parquet(tmp_path / rundir.USERS).drop("seen")  # before 2026-12-04
    old.write_parquet(tmp_path / rundir.USERS)
    users = UserHistories.read(tmp_path / rundir.USERS, prepared.n_items)
    assert users.seen_subset(np.array([0, 1])) is None and users.ids.tolist() == [1, 2]
