"""Your own evaluation (issue 24): recommendations scored by `bert4rec.metrics` agree with the
built-in evaluator on its leave-one-out split, for the model and the three baselines, and
`evaluate(test=frame)` says what it scored."""

import numpy as np
import polars as pl
import pytest
from planted import planted_corpus
from random_run import random_run

import bert4rec
from bert4rec.errors import DataError

KS = (1, 5, 10)


@pytest.fixture(scope="module")
def data():
    corpus = planted_corpus(n_users=150)
    return bert4rec.Dataset(corpus, {"source": None, "min_rating": None,
                                     "min_item_interactions": 0, "min_user_interactions": 5,
                                     "columns": {"user": "user", "item": "item",
                                                 "timestamp": "timestamp"}})


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    run = random_run(data.corpus, tmp_path_factory.mktemp("run") / "run", data.description)
    return bert4rec.Model.load(run)


@pytest.fixture(scope="module")
def split(data):
    """The built-in test split as frames: every item but the last (history) and the last."""
    corpus = data.corpus
    events = pl.DataFrame({"user": np.repeat(corpus.user_ids, corpus.lengths),
                           "item": corpus.item_ids[corpus.items_flat - 1],
                           "timestamp": np.arange(corpus.n_interactions)})
    return bert4rec.split.leave_last(events)


def test_recommendations_scored_by_the_frame_metrics_agree_with_evaluate(model, data, split):
    """Top-k for every user after all but their last item, seen items left out, scored with
    bert4rec.metrics: the built-in evaluator's figures; with k the whole catalogue, its MRR."""
    history, held = split
    users = held["user"].to_list()
    histories = [history.filter(pl.col("user") == u)["item"].to_list() for u in users]
    recs = model.recommend(histories=histories, k=data.n_items)
    recs = recs.join(pl.DataFrame({"history": range(len(users)), "user": users}), on="history")
    built_in = model.evaluate(data, ks=KS)
    frame = bert4rec.metrics.compute(recs, held, ks=(*KS, data.n_items))
    for k in KS:
        assert frame[f"NDCG@{k}"] == pytest.approx(built_in[f"NDCG@{k}"], abs=1e-12)
        assert frame[f"HR@{k}"] == pytest.approx(built_in[f"HR@{k}"], abs=1e-12)
    assert frame[f"MRR@{data.n_items}"] == pytest.approx(built_in["MRR"], abs=1e-12)
    assert 0 < built_in["HR@10"] < 1  # a random model: neither nothing nor everything


@pytest.mark.parametrize("name", [None, "popular", "markov", "itemknn"])
def test_evaluate_on_a_test_frame_equals_the_built_in_split(model, data, split, name):
    scorer = model if name is None else bert4rec.Baseline(name).fit(data)
    history, held = split
    built_in = scorer.evaluate(data, ks=KS)
    mine = scorer.evaluate(test=held, history=history, ks=KS)
    assert mine["users"] == built_in["users"] == data.n_users
    for k in KS:
        assert mine[f"NDCG@{k}"] == pytest.approx(built_in[f"NDCG@{k}"], abs=1e-12), k
        assert mine[f"HR@{k}"] == mine[f"Recall@{k}"] == pytest.approx(built_in[f"HR@{k}"])
    assert 0 < mine["Coverage@10"] <= 1 and 0 < mine["Popularity@10"] < 100
    past = bert4rec.Dataset.from_frame(history, min_user_interactions=0)  # a Dataset will do
    assert scorer.evaluate(test=held, history=past, ks=KS)["NDCG@10"] == mine["NDCG@10"]


def test_the_report_says_what_it_scored(model, data):
    """Stored histories by default; users without one are counted and left out, items the
    model does not know stay in as misses."""
    some = [str(u) for u in data.corpus.user_ids[:3]]  # text: not the model's integer ids
    users = [int(u) for u in data.corpus.user_ids[:3]]
    known = int(data.corpus.item_ids[0])
    test = pl.DataFrame({"user": [*users, users[0], 10**6], "item": [known] * 3 + [-5, known]})
    report = model.evaluate(test=test, ks=(10,))
    assert report["users"] == 3 and report["users_without_history"] == 1
    assert report["events"] == 4 and report["unknown_items"] == 1
    assert list(report)[:7] == ["protocol", "users", "users_without_history", "events",
                                "unknown_items", "candidates", "filter_viewed"]
    assert report["protocol"] == "held-out frame" and report["candidates"] == data.n_items
    with pytest.raises(DataError, match="none of its 3 users has a history"):
        model.evaluate(test=pl.DataFrame({"user": some, "item": [known] * 3}))


def test_columns_default_to_the_training_logs_and_mix_ups_are_named(model, data, split):
    held = split[1]
    renamed = held.rename({"user": "uid", "item": "sku"})
    assert model.evaluate(test=renamed, user="uid", item="sku", ks=KS)["NDCG@10"] == \
        model.evaluate(test=held, ks=KS)["NDCG@10"]
    with pytest.raises(DataError, match=r"test: no column\(s\) 'user'"):
        model.evaluate(test=renamed)
    with pytest.raises(DataError, match=r"column 'item' holds String\b"):
        model.evaluate(test=held.with_columns(pl.col("item").cast(pl.String)))
    with pytest.raises(ValueError, match="evaluate takes data"):
        model.evaluate()
    with pytest.raises(ValueError, match="the built-in split's options go with data"):
        model.evaluate(test=held, protocol="sampled")


@pytest.mark.slow
@pytest.mark.realdata
def test_the_agreement_holds_on_ml_latest_small(data_dir, tmp_path):
    """The same check on real data: 603 users, 6,298 items (a random model, so that no
    training time is spent: agreement does not depend on the weights)."""
    real = bert4rec.Dataset.from_source("ml-latest-small", data_dir=data_dir)
    model = bert4rec.Model.load(random_run(real.corpus, tmp_path / "run", real.description))
    corpus = real.corpus
    histories = [corpus.item_ids[corpus.sequence(u)[:-1] - 1].tolist()
                 for u in range(corpus.n_users)]
    recs = model.recommend(histories=histories, k=20)
    held = pl.DataFrame({"history": range(corpus.n_users),
                         "item": corpus.item_ids[corpus.items_flat[corpus.offsets[1:] - 1] - 1]})
    frame = bert4rec.metrics.compute(recs, held, ks=(1, 10, 20), user="history")
    built_in = model.evaluate(real, ks=(1, 10, 20))
    assert built_in["users"] == 603
    for key in ("NDCG@1", "HR@1", "NDCG@10", "HR@10", "NDCG@20", "HR@20"):
        assert frame[key] == pytest.approx(built_in[key], abs=1e-12), key
