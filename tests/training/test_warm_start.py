"""Warm start (issue 24): a model over a new log begins where a trained one left off. Known
items keep their vectors by id (the vocabulary grows and shifts), the encoder its weights, new
items start next to the known items they occur with, and the settings and shape carry over."""

import json

import numpy as np
import polars as pl
import pytest
import torch
from planted import tiny_settings

import bert4rec
from bert4rec.cli import main
from bert4rec.data.corpus import PrepareSettings, prepare
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError, SettingsError
from bert4rec.evaluation.protocols import item_counts
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.training.loop import build_model, fit
from bert4rec.training.losses import log_item_frequency
from bert4rec.training.runtime import Runtime
from bert4rec.training.warm_start import WarmStart

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

CYCLE = np.random.default_rng(3).permutation(30) + 100  # the known items, ids 100..129
NEW = 50  # a new item, id below every known one: each known item's index shifts by one


def walks(n_users: int, seed: int, new_after: int | None = None) -> pl.DataFrame:
    """Users walking CYCLE; with `new_after`, the NEW item follows that known item wherever
    it occurs (then the walk goes on)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        walk = CYCLE[(rng.integers(30) + np.arange(rng.integers(8, 14))) % 30].tolist()
        if new_after is not None:
            walk = [x for item in walk for x in ([item, NEW] if item == new_after else [item])]
        rows += [(user + seed * 1000, item, t) for t, item in enumerate(walk)]
    return pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row")


def corpus_of(events: pl.DataFrame):
    return prepare(Interactions(events, None, "walks"), PrepareSettings(min_rating=None))


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("old") / "run"
    fit(corpus_of(walks(200, seed=1)), tiny_settings(epochs=6), out, progress=False)
    return out


def warm_model(start: WarmStart, corpus):
    settings = tiny_settings()
    data = corpus.split("train")
    log_frequency = log_item_frequency(torch.from_numpy(item_counts(data, corpus.vocab)))
    return build_model(data, corpus.vocab, settings, Runtime(torch.device("cpu"), 0, 1),
                       log_frequency, start=start, item_ids=corpus.item_ids)


def test_known_items_keep_their_vectors_by_id_and_new_ones_start_beside_their_neighbours(
        old_run):
    start = WarmStart.load(old_run)
    old = start.model.state_dict()
    corpus = corpus_of(walks(100, seed=2, new_after=int(CYCLE[4])))
    assert corpus.item_ids[0] == NEW and corpus.n_items == 31  # every known index moved by one
    model = warm_model(start, corpus)
    state = model.state_dict()
    weight, old_weight = (s["encoder.embeddings.item.weight"] for s in (state, old))
    for position, item in enumerate(corpus.item_ids[1:], start=2):
        old_index = int(np.flatnonzero(start.item_ids == item)[0]) + 1
        assert torch.equal(weight[position], old_weight[old_index])
        assert state["output_bias"][position] == old["output_bias"][old_index]
    assert torch.equal(weight[-1], old_weight[-1])  # [MASK] moves to the new end
    assert all(torch.equal(state[k], old[k]) for k in old
               if k not in ("encoder.embeddings.item.weight", "output_bias"))
    # NEW sits right after CYCLE[4] and before CYCLE[5]: it starts in their direction
    near = [int(np.flatnonzero(corpus.item_ids == CYCLE[i])[0]) + 1 for i in (4, 5)]
    cosine = torch.nn.functional.cosine_similarity(weight[1], weight[near].mean(0), dim=0)
    assert cosine > 0.5
    lengths = weight[2:-1].norm(dim=1)
    assert weight[1].norm() == pytest.approx(lengths.mean().item(), rel=1e-4)


def test_a_warm_start_knows_the_pattern_before_training_and_new_users_just_work(old_run,
                                                                                tmp_path):
    old = bert4rec.Model.load(old_run)
    new_data = bert4rec.Dataset.from_frame(walks(150, seed=2, new_after=int(CYCLE[4])),
                                           timestamp="timestamp", min_rating=None)
    warm = bert4rec.Model(epochs=1, lr=1e-4).fit(new_data, init_from=old, progress=False)
    cold = bert4rec.Model("fast", **{"epochs": 1, "lr": 1e-4, **SHAPE}).fit(  # the old one's
        new_data, progress=False)
    # one epoch at a tiny rate: what the warm model knows it brought (cold: 0.24 here)
    assert warm.metrics["valid"]["NDCG@10"] > 0.8 > 0.4 > cold.metrics["valid"]["NDCG@10"]
    assert set(warm.users) == set(new_data.users) and not set(warm.users) & set(old.users)
    config = json.loads((warm.run_dir / "config.json").read_text())
    assert config["fit"]["init_from"] == str(old_run)
    assert config["train"]["model"] == json.loads(
        (old_run / "config.json").read_text())["train"]["model"]
    recs = warm.recommend(histories=[[int(CYCLE[7])]], k=1)
    assert recs["item"].to_list() == [int(CYCLE[8])]


SHAPE = {"max_len": 16, "hidden": 64, "dropout": 0.0, "attention_dropout": 0.0,
         "batch_size": 16, "device": "cpu", "mask_prob": 0.2, "last_item_share": 0.2}


def test_another_shape_or_other_ids_are_refused(old_run):
    start = WarmStart.load(old_run)
    with pytest.raises(SettingsError, match=r"\bhidden is 64\b.*\b32 here\b"):
        start.check_shape(tiny_settings().override({"model.hidden": 32}).model)
    other = pl.DataFrame({"user": [1] * 5, "item": [f"x{i}" for i in range(5)],
                          "timestamp": range(5)})
    corpus = prepare(Interactions(other, None, "text ids"), PrepareSettings(min_rating=None))
    with pytest.raises(DataError, match=r"none of the 5 items\b"):
        warm_model(start, corpus)
    with pytest.raises(SettingsError, match=r"\bhidden is 64\b.*\b32 here\b"):
        bert4rec.Model(hidden=32).fit(bert4rec.Dataset.from_frame(
            walks(20, seed=4), timestamp="timestamp", min_rating=None),
            init_from=old_run, progress=False)
    with pytest.raises(SettingsError, match="does not carry item features yet"):
        start.check_shape(tiny_settings().override({"model.item_features": "genres"}).model)


@pytest.mark.slow
def test_train_init_from_takes_the_runs_settings_and_records_it(old_run, tmp_path, capsys):
    log = tmp_path / "new.csv"
    walks(60, seed=5, new_after=int(CYCLE[2])).write_csv(log)
    out = tmp_path / "warm"
    assert main(["train", str(log), "--out", str(out), "--init-from", str(old_run),
                 "--epochs", "1", "--all-ratings"]) == 0
    printed = capsys.readouterr().out
    assert f"the settings of {old_run} (warm start)" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["fit"]["init_from"] == str(old_run) and config["train"]["loop"]["epochs"] == 1
    assert config["train"]["model"]["hidden"] == 64 and config["model"]["vocab_size"] == 33
    assert isinstance(BERT4Rec(BERT4RecConfig.from_dict(config["model"])), BERT4Rec)
