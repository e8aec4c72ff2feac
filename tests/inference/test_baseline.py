"""bert4rec.Baseline: the baselines through the calls a Model answers (issue 24)."""

import polars as pl
import pytest

import bert4rec
from bert4rec.errors import NotFittedError, SettingsError, UnknownIdError

# Item 1 is the most watched, then 2, 3, 4; item 5 once. Everyone's last two items are held
# out of what a baseline counts (as from a Model's training).
ROWS = [("a", 1), ("a", 2), ("a", 3), ("a", 9), ("a", 9),
        ("b", 1), ("b", 2), ("b", 4), ("b", 9), ("b", 9),
        ("c", 1), ("c", 3), ("c", 5), ("c", 9), ("c", 9),
        ("d", 2), ("d", 1), ("d", 4), ("d", 9), ("d", 9)]
EVENTS = pl.DataFrame(ROWS, schema=["uid", "sku"], orient="row")
MOVIES = pl.DataFrame({"sku": [1, 2, 3, 4, 5, 9], "title": ["One (2001)", "Two (2002)",
                                                          "Three (2003)", "Four (2004)",
                                                          "Five (2005)", "Nine (2009)"]})


@pytest.fixture(scope="module")
def data():
    return bert4rec.Dataset.from_frame(EVENTS, user="uid", item="sku", timestamp=None,
                                       items=MOVIES, min_user_interactions=0)


def test_popular_recommends_the_most_watched_unseen_items_as_a_model_answers(data):
    popular = bert4rec.Baseline("popular").fit(data)
    recs = popular.recommend(users=["c"], k=3)
    assert recs.columns == ["user", "rank", "item", "score", "title"]
    assert recs["item"].to_list() == [2, 4] and recs["score"].to_list() == [3.0, 2.0]
    kept = popular.recommend(users="c", k=3, filter_viewed=False)
    assert kept["item"].to_list() == [1, 2, 3] and kept["title"][0] == "One (2001)"
    by_title = popular.recommend(histories=[["Three", "id:5"]], k=2, items=[1, 2, 4],
                                 exclude=[1])
    assert by_title.columns[0] == "history" and by_title["item"].to_list() == [2, 4]


def test_itemknn_and_markov_follow_the_last_items(data):
    assert bert4rec.Baseline("markov").fit(data).recommend(histories=[[3]], k=1)[
        "item"].to_list() == [5]  # 3 -> 5 once (c); 3 was last of a's training part
    knn = bert4rec.Baseline("itemknn", window=1).fit(data)
    assert knn.recommend(histories=[[5]], k=1)["item"].to_list() == [3]  # next to 5 once (c)
    # 4 was next to 2 (b) and to 1 (d) once each: the more watched 1 first, score 1 + 4/5
    assert knn.recommend(histories=[[4]], k=2)["score"].to_list() == [1.8, 1.6]


def test_unknown_users_and_items_raise_or_are_skipped(data):
    popular = bert4rec.Baseline("popular").fit(data)
    with pytest.raises(UnknownIdError, match=r"user 'z' is not among the 4 users.*"
                       "on_unknown='skip'"):
        popular.recommend(users=["z"])
    with pytest.raises(UnknownIdError, match="item 77 is not among the baseline's 6 items"):
        popular.recommend(users=["a"], items=[77])
    assert popular.recommend(users=["z", "a"], on_unknown="skip")["user"].unique().to_list() \
        == ["a"]


def test_pandas_in_pandas_out(data):
    pd = pytest.importorskip("pandas")
    pandas_data = bert4rec.Dataset.from_frame(EVENTS.to_pandas(), user="uid", item="sku",
                                              timestamp=None, min_user_interactions=0)
    popular = bert4rec.Baseline("popular").fit(pandas_data)
    assert isinstance(popular.recommend(users=["a"], k=2), pd.DataFrame)
    assert isinstance(popular.items, pd.DataFrame)
    assert isinstance(bert4rec.Baseline("popular").fit(data).items, pl.DataFrame)


def test_settings_are_checked_at_once():
    with pytest.raises(SettingsError, match="unknown baseline 'knn'; choose one of popular, "
                       "markov, itemknn"):
        bert4rec.Baseline("knn")
    with pytest.raises(SettingsError, match="baseline 'popular' has no setting 'window'"):
        bert4rec.Baseline("popular", window=3)
    with pytest.raises(NotFittedError, match="call fit"):
        bert4rec.Baseline("markov").recommend(users=["a"])


def test_a_baseline_recommends_through_the_models_path(data, monkeypatch):
    """`apply_filters` decides what a baseline may offer too: a change there alone reaches
    `Baseline.recommend` and `Baseline.evaluate(test=...)` (inference/recommender.py)."""
    from bert4rec.inference import recommender as recommender_module

    popular = bert4rec.Baseline("popular").fit(data)
    assert popular.recommend(users=["c"], k=1)["item"].to_list() == [2]
    plain, calls = recommender_module.apply_filters, []

    def also_banned(scores, query, rows):
        calls.append(len(rows))
        plain(scores, query, rows)
        scores[:, 2] = float("-inf")  # item 2's vocabulary index

    monkeypatch.setattr(recommender_module, "apply_filters", also_banned)
    assert popular.recommend(users=["c"], k=1)["item"].to_list() == [4]
    test = pl.DataFrame({"uid": ["c"], "sku": [2]})
    assert popular.evaluate(test=test, ks=[1])["HR@1"] == 0.0 and calls == [1, 1]
