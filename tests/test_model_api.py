"""bert4rec.Model: fit on a Dataset, recommend for users by id or for histories as one long
frame (filters, allow and deny lists, the unknown-id policy), similar items, evaluate, and
save/load as a run directory that `Recommender.load` reads too."""

import gc

import numpy as np
import polars as pl
import pytest
from planted import planted_corpus
from tiny_run import make_run_dir

import bert4rec
from bert4rec.errors import (
    ModelDirError,
    NotFittedError,
    SettingsError,
    TitleNotFoundError,
    UnknownIdError,
)
from bert4rec.inference.recommender import Recommender

TINY = {"preset": "fast", "epochs": 3, "max_len": 16, "batch_size": 16, "device": "cpu",
        "mask_prob": 0.2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    """The planted cycle as a user's DataFrame: text user ids, titles for the items."""
    corpus = planted_corpus(n_users=120)
    rows = [(f"u{u}", int(corpus.item_ids[i - 1]), t)
            for u in range(corpus.n_users) for t, i in enumerate(corpus.sequence(u))]
    events = pl.DataFrame(rows, schema=["user", "item", "time"], orient="row")
    movies = pl.DataFrame({"item": corpus.item_ids, "title": [f"Film {i}" for i in corpus.item_ids],
                           "genres": ["Drama|Comedy"] * corpus.n_items})
    return bert4rec.Dataset.from_frame(events, timestamp="time", items=movies,
                                       min_user_interactions=0)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    return bert4rec.Model(**TINY).fit(data, out=tmp_path_factory.mktemp("m") / "run",
                                      progress=False)


def history_of(data, user: str) -> list:
    corpus = data.corpus
    position = corpus.user_ids.tolist().index(user)
    return [corpus.item_ids[i - 1].item() for i in corpus.sequence(position)]


def test_recommend_for_users_is_one_long_frame_equal_to_the_history_path(model, data):
    recs = model.recommend(users=["u3", "u7"], k=5)
    assert recs.columns == ["user", "rank", "item", "score", "title", "genres"]
    assert recs["user"].to_list() == ["u3"] * 5 + ["u7"] * 5
    assert recs["rank"].to_list() == [1, 2, 3, 4, 5] * 2
    assert recs["title"][0] == f"Film {recs['item'][0]}"
    assert recs["genres"][0].to_list() == ["Drama", "Comedy"]
    reference = Recommender.load(model.run_dir)
    for user in ("u3", "u7"):
        expected = reference.recommend(history_of(data, user), k=5)
        got = recs.filter(pl.col("user") == user)
        assert got["item"].to_list() == [r.item for r in expected]
        assert got["score"].to_list() == pytest.approx([r.score for r in expected], abs=1e-4)


def test_filter_viewed_leaves_out_the_history_unless_turned_off(model, data):
    seen = set(history_of(data, "u5"))
    assert not seen & set(model.recommend(users=["u5"], k=40)["item"].to_list())
    everything = model.recommend(users=["u5"], k=40, filter_viewed=False)
    assert seen <= set(everything["item"].to_list()) and everything.height == 40


def test_allow_and_deny_lists_limit_what_is_offered(model, data):
    allowed = [int(i) for i in data.corpus.item_ids[:6]]
    recs = model.recommend(users=["u1", "u2"], k=10, items=allowed, exclude=allowed[:2],
                           filter_viewed=False)
    assert set(recs["item"].to_list()) == set(allowed[2:])
    assert recs.group_by("user").len()["len"].to_list() == [4, 4]  # fewer than k left


def test_unknown_users_and_items_raise_naming_them_or_are_skipped(model, data):
    with pytest.raises(UnknownIdError, match="user 'nobody' is not among the 120 users") as err:
        model.recommend(users=["u1", "nobody", "ghost"])
    assert err.value.ids == ["nobody", "ghost"]
    with pytest.raises(UnknownIdError, match=r"user 7 is not among .*\(their ids are text\)"):
        model.recommend(users=[7])
    skipped = model.recommend(users=["nobody", "u1"], k=3, on_unknown="skip")
    assert skipped["user"].to_list() == ["u1"] * 3
    with pytest.raises(UnknownIdError, match="item 5 is not among the model's 40 items"):
        model.recommend(users=["u1"], items=[5, int(data.corpus.item_ids[0])])
    only = model.recommend(users=["u1"], items=[5, int(data.corpus.item_ids[0])],
                           filter_viewed=False, on_unknown="skip")
    assert only["item"].to_list() == [int(data.corpus.item_ids[0])]
    with pytest.raises(ValueError, match="on_unknown must be 'raise' or 'skip', got 'ignore'"):
        model.recommend(users=["u1"], on_unknown="ignore")


def test_histories_take_ids_and_titles_and_may_skip_unknown_entries(model, data):
    first, second = (int(i) for i in data.corpus.item_ids[:2])
    recs = model.recommend(histories=[[first, f"Film {second}"], []], k=4)
    assert recs.columns[0] == "history" and recs["history"].to_list() == [0] * 4 + [1] * 4
    assert not {first, second} & set(recs.filter(pl.col("history") == 0)["item"].to_list())
    with pytest.raises(TitleNotFoundError, match="Not A Film"):
        model.recommend(histories=[[first, "Not A Film (2042)"]])
    skipped = model.recommend(histories=[[first, "Not A Film (2042)"]], k=4, on_unknown="skip")
    assert skipped.equals(model.recommend(histories=[[first]], k=4))
    with pytest.raises(ValueError, match=r"histories=\[\[1, 2, 3\]\]"):
        model.recommend(histories=[first, second])
    with pytest.raises(ValueError, match=r"users=.* or histories="):
        model.recommend()


def test_similar_items_agree_with_the_recommender(model, data):
    item = int(data.corpus.item_ids[4])
    similar = model.similar_items([item, "Film 999"], k=3, on_unknown="skip")
    expected = Recommender.load(model.run_dir).similar_items(item, k=3)
    assert similar["query"].to_list() == [item] * 3
    assert similar["item"].to_list() == [r.item for r in expected]


def test_evaluate_reproduces_the_test_figures_of_fit(model, data):
    report = model.evaluate(data, device="cpu")  # where fit scored test: equal to the digit
    assert report["protocol"] == "full" and report["filter_viewed"] is True
    assert report["NDCG@10"] == pytest.approx(model.metrics["test"]["NDCG@10"], abs=1e-6)
    sampled = model.evaluate(data, protocol="sampled", n_negatives=10, filter_viewed=False)
    assert sampled["candidates"] == 11 and sampled["filter_viewed"] is False


def test_save_and_load_give_the_same_answers(model, tmp_path):
    before = model.recommend(users=["u1", "u9"], k=5)
    saved = bert4rec.Model.load(model.save(tmp_path / "saved").run_dir)
    assert saved.recommend(users=["u1", "u9"], k=5).equals(before)
    assert not (tmp_path / "saved" / "checkpoints").exists()
    assert Recommender.load(tmp_path / "saved").n_items == 40
    assert saved.settings.loop.epochs == 3 and saved.users.tolist()[:2] == ["u0", "u1"]
    with pytest.raises(ModelDirError, match="already holds a run"):
        saved.save(tmp_path / "elsewhere").save(tmp_path / "saved")


def test_without_out_the_run_lives_in_a_temporary_folder_until_saved(data, tmp_path):
    model = bert4rec.Model(**{**TINY, "epochs": 1}).fit(data, progress=False)
    temporary = model.run_dir
    assert (temporary / "users.parquet").is_file()
    model.save(tmp_path / "kept")
    del model
    gc.collect()
    assert not temporary.exists() and (tmp_path / "kept" / "model.safetensors").is_file()


def test_settings_are_checked_when_the_model_is_made():
    assert bert4rec.Model().preset == "auto"
    with pytest.raises(SettingsError, match="unknown setting 'epoch'; did you mean epochs"):
        bert4rec.Model(epoch=3)
    with pytest.raises(SettingsError, match=r"loop\.epochs must be >= 1, got 0"):
        bert4rec.Model(epochs=0)
    with pytest.raises(SettingsError, match="unknown preset 'tiny'"):
        bert4rec.Model("tiny")


def test_a_model_answers_only_once_trained_or_loaded(tmp_path):
    with pytest.raises(NotFittedError, match="call fit"):
        bert4rec.Model().recommend(users=[1])
    old = bert4rec.Model.load(make_run_dir(tmp_path / "old"))  # written before users.parquet
    assert old.recommend(histories=[[1]], k=2).height == 2
    with pytest.raises(ModelDirError, match=r"users\.parquet is missing"):
        old.recommend(users=[1])


def test_many_users_in_batches_of_mixed_length_answer_as_one_at_a_time(model, data):
    users = data.users.tolist()
    together = model.recommend(users=users, k=3)
    alone = pl.concat([model.recommend(users=[u], k=3) for u in users[::17]])
    assert together.filter(pl.col("user").is_in(users[::17])).select("user", "item").equals(
        alone.select("user", "item"))
    assert np.array_equal(np.unique(together["user"].to_numpy()), np.sort(users))


@pytest.mark.slow
def test_fit_final_and_with_nothing_held_out(data):
    """`fit(final=True)` keeps the selection model's figures, labelled, and answers with the
    final model; `holdout="none"` trains the epochs it is given, with no figures."""
    final = bert4rec.Model(**TINY).fit(data, progress=False, final=True)
    metrics = final.metrics
    assert metrics["final"]["epochs"] == metrics["best_epoch"] and metrics["test"]["HR@10"] > 0
    assert metrics["figures_of"].startswith("the selection model")
    assert final.recommend(users=["u3"], k=2).height == 2
    everything = bert4rec.Model(**TINY).fit(data, progress=True, holdout="none")
    assert everything.metrics["final"]["epochs"] == 3 and everything.metrics["valid"] is None
    assert everything.recommend(users=["u3"], k=2).height == 2
