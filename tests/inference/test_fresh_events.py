"""Fresh events at inference (issue 24): what users did since training extends their stored
histories without retraining, through the one recommend path, in Python (`interactions=`), on
the command line (`--events`) and over HTTP (`recent`); events of unknown items are left out
and counted, and a user new to the model is answered from their events alone."""

import itertools
import json

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from planted import planted_corpus, tiny_settings

import bert4rec
from bert4rec.cli import main
from bert4rec.errors import UnknownIdError
from bert4rec.inference.requests import RecommendRequest
from bert4rec.serve import create_app
from bert4rec.training.loop import fit

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A model that learnt the planted cycle (each item's partner is the item after it), the
    corpus it learnt from, and the cycle's successor of each item id. It learns next items
    only (the cloze task alone learns the cycle's neighbours in both directions, so after a
    jump to an item the one before it scores as high as its partner)."""
    corpus = planted_corpus(n_users=500)
    out = tmp_path_factory.mktemp("fresh") / "run"
    settings = tiny_settings(epochs=6, **{"masking.last_item_share": 1.0,
                                          "masking.last_item_prefix": 1.0})
    fit(corpus, settings, out, data={"source": "planted"}, progress=False)
    successor = {}
    for user in range(corpus.n_users):
        ids = corpus.item_ids[corpus.sequence(user) - 1].tolist()
        successor.update(itertools.pairwise(ids))
    return out, corpus, successor


def fresh_pairs(corpus, successor, n: int = 40) -> dict[int, int]:
    """For the first `n` users, a new event: an item whose partner (successor) is neither the
    partner of their last stored item nor in their history, so only the new event leads
    there."""
    chosen = {}
    for position in range(corpus.n_users):
        ids = corpus.item_ids[corpus.sequence(position) - 1].tolist()
        for item in sorted(successor):
            partner = successor[item]
            if item not in ids and partner not in ids and partner != successor[ids[-1]]:
                chosen[int(corpus.user_ids[position])] = item
                break
        if len(chosen) == n:
            return chosen
    return chosen


def share_of_partners(frame, new_event: dict[int, int], successor) -> float:
    top = dict(zip(frame.filter(pl.col("rank") == 1)["user"].to_list(),
                   frame.filter(pl.col("rank") == 1)["item"].to_list(), strict=True))
    return np.mean([top[user] == successor[item] for user, item in new_event.items()])


def test_a_new_event_leads_to_its_partner_in_python(planted):
    run, corpus, successor = planted
    model = bert4rec.Model.load(run)
    new_event = fresh_pairs(corpus, successor)
    users = list(new_event)
    before = model.recommend(users=users, k=1)
    assert share_of_partners(before, new_event, successor) < 0.2
    events = pl.DataFrame({"user": users, "item": [new_event[u] for u in users],
                           "timestamp": [10**9] * len(users)})
    after = model.recommend(users=users, k=1, interactions=events)
    assert share_of_partners(after, new_event, successor) > 0.8
    # the stored histories are untouched: without the events, the old answers come back
    assert model.recommend(users=users, k=1).equals(before)


def test_unknown_items_are_left_out_and_counted_and_new_users_just_work(planted):
    run, corpus, successor = planted
    model = bert4rec.Model.load(run)
    item = int(corpus.item_ids[0])
    events = pl.DataFrame({"user": [1, 1, 1, 777_777], "item": [123_456, item, 654_321, item],
                           "timestamp": [5, 6, 7, 1]})
    with pytest.warns(UserWarning, match=r"^2 of the 4 new events\b"):
        recs = model.recommend(users=[1, 777_777], k=3, interactions=events)
    assert recs["user"].unique(maintain_order=True).to_list() == [1, 777_777]
    new_user = recs.filter(pl.col("user") == 777_777)
    assert new_user["item"][0] == successor[item] and item not in new_user["item"].to_list()
    with pytest.raises(UnknownIdError, match="user 888888 is not among the 500 users"):
        model.recommend(users=[888_888], interactions=events)
    with pytest.raises(ValueError, match="recent events extend users' stored histories"):
        RecommendRequest(histories=[[item]], recent={1: [item]})


def test_a_new_event_leads_to_its_partner_on_the_command_line(planted, tmp_path, capsys):
    run, corpus, successor = planted
    user, item = next(iter(fresh_pairs(corpus, successor, n=1).items()))
    events = tmp_path / "new.csv"
    pl.DataFrame({"user": [user, user], "item": [item, 999_999],
                  "timestamp": [1, 2]}).write_csv(events)
    assert main(["recommend", str(run), "--user", str(user), "--events", str(events), "-k",
                 "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["items"][0]["item"] == successor[item]
    assert "2 new events added" in captured.err and "1 of the 2 new events" in captured.err
    out = tmp_path / "all.csv"
    assert main(["recommend", str(run), "--all-users", "--events", str(events), "-k", "1",
                 "--output", str(out)]) == 0
    every = pl.read_csv(out)
    assert every.height == corpus.n_users
    assert every.filter(pl.col("user") == user)["item"][0] == successor[item]
    assert main(["recommend", str(run), "Film", "--events", str(events)]) == 1
    assert "--events adds new events to the histories of --user" in capsys.readouterr().err


def test_a_new_event_leads_to_its_partner_over_http(planted):
    run, corpus, successor = planted
    user, item = next(iter(fresh_pairs(corpus, successor, n=1).items()))
    with TestClient(create_app(run), base_url="http://127.0.0.1") as client:
        plain = client.post("/recommend", json={"user": user, "k": 1}).json()
        assert plain["items"][0]["item"] != successor[item] and plain["recent_unknown"] == 0
        answer = client.post("/recommend", json={"user": user, "k": 1,
                                                 "recent": [item, 999_999]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["items"][0]["item"] == successor[item] and body["recent_unknown"] == 1
        assert body["history"][-1]["item"] == item  # what the model read ends with it
        refused = client.post("/recommend", json={"history": [item], "recent": [item]})
        assert refused.status_code == 422 and "'recent' adds events" in refused.text
