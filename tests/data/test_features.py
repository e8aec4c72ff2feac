"""Item features (issue 25): which columns count, the value vocabulary, each item's values,
hashed title words, the round trip through features.parquet, and the attribute-file reader."""

import json

import numpy as np
import polars as pl
import pytest

from bert4rec.data.features import (
    NO_VALUE,
    TITLE_BUCKETS,
    ItemFeatures,
    chosen_columns,
    new_item_table,
    read_attributes,
    read_item_table,
)
from bert4rec.errors import DataError


def table() -> pl.DataFrame:
    """Five items as a corpus's item table holds them (index 1..5)."""
    return pl.DataFrame({
        "index": [1, 2, 3, 4, 5],
        "item": [10, 20, 30, 40, 50],
        "title": ["Alien (1979)", "Aliens (1986)", "Emma (1996)", None, "Hamlet (1996)"],
        "genres": [["Horror", "Sci-Fi"], ["Action", "Horror", "Sci-Fi"], ["Romance"], [],
                   ["Drama", "Romance"]],
        "brand": ["Fox", "Fox", "Miramax", "Miramax", "Castle Rock"],
        "url": ["a", "b", "c", "d", "e"],
        "year": [1979, 1986, 1996, 1990, 1996],
    })


def test_auto_takes_the_repeating_text_and_list_columns_and_says_nothing_of_the_rest():
    assert chosen_columns(table(), "auto") == ["genres", "brand"]  # not url, year or title
    assert chosen_columns(table(), "") == []
    assert chosen_columns(table(), "brand,year,title") == ["brand", "year", "title"]


@pytest.mark.parametrize(("setting", "message"), [
    ("genre", r"no column 'genre' in the item table; it has \['title', 'genres'"),
    ("item", "no column 'item'"),
    ("brand,brand", "names a column twice"),
])
def test_a_column_that_cannot_be_a_feature_is_refused_naming_it(setting, message):
    with pytest.raises(DataError, match=message):
        chosen_columns(table(), setting)


def test_a_column_of_fractions_is_refused_naming_its_type():
    with pytest.raises(DataError, match="column 'score' holds Float64"):
        chosen_columns(table().with_columns(pl.lit(0.5).alias("score")), "score")


def test_values_of_one_item_are_dropped_and_an_item_without_values_gets_no_value():
    features = ItemFeatures.from_items(table(), "genres,brand", vocab_size=7)
    vocabulary = list(zip(features.vocabulary["feature"], features.vocabulary["value"],
                          features.vocabulary["value_index"], strict=True))
    # Action and Drama (one item each) and Castle Rock (one item) are dropped
    assert vocabulary == [("genres", "Horror", 2), ("genres", "Romance", 3),
                          ("genres", "Sci-Fi", 4), ("brand", "Fox", 5),
                          ("brand", "Miramax", 6)]
    assert features.size == 7 and features.slots == 3
    assert features.item_values.tolist() == [
        [0, 0, 0],  # padding
        [2, 4, 5], [2, 4, 5], [3, 6, 0], [6, 0, 0], [3, 0, 0],
        [0, 0, 0],  # [MASK]
    ]
    only_genres = ItemFeatures.from_items(table(), "genres", vocab_size=7)
    assert only_genres.item_values[4].tolist() == [NO_VALUE, 0]  # no genres at all
    assert "1 of 5 items have no known value" in only_genres.describe()


def test_nothing_chosen_is_no_features():
    assert ItemFeatures.from_items(table(), "", vocab_size=7) is None
    assert ItemFeatures.from_items(table().select("index", "item", "url"), "auto", 7) is None


def test_title_words_share_buckets_across_items_and_reach_new_items():
    features = ItemFeatures.from_items(table(), "title", vocab_size=7)
    words = features.vocabulary["value"].to_list()
    assert len(words) == 1 and 0 <= int(words[0]) < TITLE_BUCKETS  # only "1996" is shared
    assert features.item_values[:, 0].tolist() == [0, 1, 1, 2, 1, 2, 0]
    new = pl.DataFrame({"item": [60, 70], "title": ["Fargo (1996)", "Fargo"]})
    assert features.encode(new).tolist() == [[2], [NO_VALUE]]


def test_new_items_keep_the_known_values_only():
    features = ItemFeatures.from_items(table(), "genres,brand", vocab_size=7)
    new = pl.DataFrame({"item": [60, 70, 80],
                        "genres": [["Horror", "Western"], ["Western"], None],
                        "brand": ["Miramax", "Pixar", "Fox"]})
    assert features.encode(new).tolist() == [[2, 6, 0], [NO_VALUE, 0, 0], [5, 0, 0]]
    with pytest.raises(DataError, match="no column 'brand', a feature the model was trained"):
        features.encode(new.drop("brand"))


def test_the_parquet_frame_round_trips_and_a_bad_one_is_refused(tmp_path):
    features = ItemFeatures.from_items(table(), "genres,brand", vocab_size=7)
    path = tmp_path / "features.parquet"
    features.to_frame().write_parquet(path)
    frame = pl.read_parquet(path)
    assert frame["items"].to_list()[:3] == [[], [1, 2], [3, 5]]  # none, Horror, Romance
    back = ItemFeatures.from_frame(frame, ("genres", "brand"), 7, 3, str(path))
    assert np.array_equal(back.item_values, features.item_values)
    assert back.vocabulary.equals(features.vocabulary)
    with pytest.raises(DataError, match=r"an item index outside 1\.\.4"):
        ItemFeatures.from_frame(frame, ("genres", "brand"), 6, 3, str(path))
    with pytest.raises(DataError, match="an item has 3 values; the model takes 2"):
        ItemFeatures.from_frame(frame, ("genres", "brand"), 7, 2, str(path))


def test_an_attribute_file_becomes_an_item_table(tmp_path):
    path = tmp_path / "attributes.json"
    path.write_text(json.dumps({"4": [1, 2, 3], "83": [4, 1], "7": []}))
    items = read_attributes(path)
    assert items["item"].to_list() == [4, 83, 7] and items["item"].dtype == pl.Int64
    assert items["attributes"].to_list() == [["1", "2", "3"], ["4", "1"], []]
    assert read_item_table(path)["title"].null_count() == 3  # as items_from_frame gives it


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "expected a JSON object mapping each item id"),
    ('{"4": [1, 2], "5": 3}', "item '5': expected a list of attribute ids or names, got 3"),
    ('{"4": [1, [2]]}', "item '4': expected a list"),
    ('{"4": [1, 2}', "not valid JSON"),
])
def test_a_bad_attribute_file_is_refused_naming_the_file_and_item(tmp_path, text, message):
    path = tmp_path / "attributes.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_attributes(path)
    assert str(path) in str(caught.value)


def test_a_new_item_table_may_hold_feature_columns_alone():
    items = new_item_table(pl.DataFrame({"item": [1, 2], "brand": ["Fox", "Pixar"]}))
    assert items.columns == ["item", "title", "genres", "brand"]


@pytest.mark.realdata
def test_amazon_beautys_attribute_file_gives_637_values_over_12101_items(data_dir):
    from bert4rec.data.cache import load_corpus

    beauty = data_dir / "amazon-beauty"
    if not beauty.is_dir():
        pytest.skip(f"real data incomplete: {data_dir} lacks amazon-beauty")
    corpus = load_corpus(beauty / "Beauty.txt", use_cache=False)
    corpus = corpus.with_items(read_item_table(beauty / "Beauty_item2attributes.json"))
    assert (corpus.n_users, corpus.n_items, corpus.n_interactions) == (22_363, 12_101, 198_502)
    features = ItemFeatures.from_items(corpus.item_table, "auto", corpus.vocab_size)
    assert features.columns == ("attributes",)
    assert (features.size, features.slots) == (637 + 2, 6)
    assert not (features.item_values[1:-1, 0] == NO_VALUE).any()
