"""The smaller frictions of issue 24, through the Python API, the command line and HTTP: a
user's viewed items include what the rating filter dropped, dropped users and items say why
and which setting keeps them, pandas in gives pandas out, Python errors speak Python (the
CLI its flags), and similar items take allow and deny lists and a viewed filter."""

import json

import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient
from random_run import random_run

import bert4rec
from bert4rec.cli import main
from bert4rec.errors import DataError, ModelDirError, TitleNotFoundError, UnknownIdError
from bert4rec.serve import create_app

# users 1 and 2 like items 1-4 and 6-8; user 1 rated item 4 a 2 (seen, yet no wish);
# user 3 likes only two items (dropped: fewer than 3); item 5 only ever got a 1 (dropped)
ROWS = [(1, 1, 1, 5.0), (1, 2, 2, 5.0), (1, 4, 3, 2.0), (1, 3, 4, 5.0), (1, 5, 5, 1.0),
        (2, 1, 1, 5.0), (2, 2, 2, 5.0), (2, 3, 3, 5.0), (2, 4, 4, 4.0), (2, 6, 5, 4.0),
        (2, 7, 6, 4.0), (2, 8, 7, 4.0), (3, 1, 1, 5.0), (3, 2, 2, 5.0)]
EVENTS = pl.DataFrame(ROWS, schema=["userId", "movieId", "timestamp", "rating"], orient="row")
MOVIES = pl.DataFrame({"movieId": list(range(1, 9)),
                       "title": [f"Film {i} (199{i})" for i in range(1, 9)]})
OPTIONS = {"user": "userId", "item": "movieId", "rating": "rating", "items": MOVIES,
           "min_user_interactions": 3}


@pytest.fixture(scope="module")
def data():
    return bert4rec.Dataset.from_frame(EVENTS, **OPTIONS)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return random_run(data.corpus, tmp_path_factory.mktemp("run") / "run", data.description)


@pytest.fixture(scope="module")
def model(run):
    return bert4rec.Model.load(run)


def test_filter_viewed_leaves_out_what_the_rating_filter_dropped(model, data, run, tmp_path,
                                                                 capsys):
    """User 1 saw item 4 (rated 2): no list of theirs offers it, in Python, on the command
    line (printed or written) or over HTTP; with the filter off it comes back."""
    assert data.n_items == 7 and 4 in data.corpus.item_ids.tolist()
    assert set(model.recommend(users=[1], k=7)["item"].to_list()) == {6, 7, 8}
    assert 4 in model.recommend(users=[1], k=7, filter_viewed=False)["item"].to_list()
    assert main(["recommend", str(run), "--user", "1", "-k", "7", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {r["item"] for r in printed[0]["items"]} == {6, 7, 8}
    out = tmp_path / "recs.csv"
    assert main(["recommend", str(run), "--all-users", "-k", "7", "--output", str(out)]) == 0
    written = pl.read_csv(out).filter(pl.col("user") == 1)
    assert set(written["item"].to_list()) == {6, 7, 8}
    with TestClient(create_app(run), base_url="http://127.0.0.1") as client:
        answer = client.post("/recommend", json={"user": 1, "k": 7}).json()
        assert {r["item"] for r in answer["items"]} == {6, 7, 8}
        kept = client.post("/recommend", json={"user": 1, "k": 7, "filter_viewed": False})
        assert 4 in {r["item"] for r in kept.json()["items"]}


def test_a_dropped_user_or_item_says_why_and_which_setting_keeps_it(model, run, capsys):
    with pytest.raises(UnknownIdError, match=r"^user 3 .*\b2 users\b.*\b2 events\b.*"
                       r"min_user_interactions=3 .*on_unknown='skip'"):
        model.recommend(users=[3])
    with pytest.raises(UnknownIdError, match=r"^user 9 .*no event of the log"):
        model.recommend(users=[9])
    with pytest.raises(UnknownIdError, match=r"^item 5 .*\b7 items\b.*\b1 event\b.*\b4 or more\b.*"
                       r"min_rating=None.*on_unknown='skip'"):
        model.recommend(users=[1], items=[5])
    with pytest.raises(TitleNotFoundError, match="item id 5 is not in the catalogue: none of its"):
        model.recommend(histories=[[1, 5]])
    assert main(["recommend", str(run), "--user", "3"]) == 1
    err = capsys.readouterr().err
    assert "--min-user-interactions=3 keeps users with 3 or more" in err
    assert "pass --skip-unknown to leave unknown users out" in err and "on_unknown" not in err


def test_pandas_in_pandas_out(tmp_path, model):
    pd = pytest.importorskip("pandas")
    data = bert4rec.Dataset.from_frame(EVENTS.to_pandas(), **{**OPTIONS,
                                                             "items": MOVIES.to_pandas()})
    pandas_model = bert4rec.Model.load(random_run(data.corpus, tmp_path / "run",
                                                  data.description))
    recs = pandas_model.recommend(users=[1, 2], k=2)
    assert isinstance(recs, pd.DataFrame)
    assert list(recs.columns) == ["user", "rank", "item", "score", "title"]
    assert isinstance(pandas_model.similar_items([1], k=2), pd.DataFrame)
    assert isinstance(pandas_model.items, pd.DataFrame) and isinstance(data.items, pd.DataFrame)
    assert isinstance(model.recommend(users=[1], k=2), pl.DataFrame)  # polars in, polars out


def test_similar_items_take_allow_and_deny_lists_and_a_viewed_filter(model):
    everything = model.similar_items([1, 2], k=6)
    assert set(everything.filter(pl.col("query") == 1)["item"].to_list()) == {2, 3, 4, 6, 7, 8}
    allowed = model.similar_items(1, k=6, items=[2, 3, 6], exclude=[3])
    assert set(allowed["item"].to_list()) == {2, 6}
    unseen = model.similar_items([1, 2], k=6, filter_viewed=True)
    assert not {1, 2} & set(unseen["item"].to_list()) and unseen.height == 2 * 5
    with pytest.raises(UnknownIdError, match="item 99 is not among the model's 7 items"):
        model.similar_items(1, items=[99])


def test_python_errors_speak_python_and_the_command_line_its_flags(data, run, tmp_path,
                                                                   capsys):
    with pytest.raises(ModelDirError,
                       match=r"already holds a run.*bert4rec\.Model\.load\(") as info:
        bert4rec.Model(epochs=1).fit(data, out=run, progress=False)
    assert "--" not in str(info.value)
    other = random_run(data.corpus, tmp_path / "other")
    with pytest.raises(ModelDirError, match="already holds a run; save into another folder"):
        bert4rec.Model.load(run).save(other)
    with pytest.raises(DataError, match=r"min_rating=None.*min_user_interactions.*min_item_"
                       "interactions") as info:
        bert4rec.Dataset.from_frame(EVENTS, **{**OPTIONS, "min_user_interactions": 50})
    assert "--" not in str(info.value)
    log = tmp_path / "log.csv"
    EVENTS.write_csv(log)
    assert main(["data", "prepare", str(log), "--user-col", "userId", "--item-col", "movieId",
                 "--min-user-interactions", "50", "--no-cache"]) == 1
    assert ("lower --min-rating (or pass --all-ratings), --min-user-interactions or "
            "--min-item-interactions") in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_missing_gpu_is_named_in_the_words_of_each(data, tmp_path, capsys):
    with pytest.raises(ValueError, match="CUDA is not available; pass device='cpu'"):
        bert4rec.Model(epochs=1, device="cuda").fit(data, progress=False)
    log = tmp_path / "log.csv"
    EVENTS.write_csv(log)
    assert main(["train", str(log), "--user-col", "userId", "--item-col", "movieId", "--out",
                 str(tmp_path / "run"), "--device", "cuda", "--epochs", "1"]) == 1
    assert "CUDA is not available; pass --device cpu" in capsys.readouterr().err
