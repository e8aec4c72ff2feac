"""`bert4rec evaluate RUN --test FILE` and `bert4rec baseline NAME SOURCE --test FILE`: the
Python API's `evaluate(test=...)`, from files (issue 24)."""

import json

import numpy as np
import polars as pl
import pytest
from planted import planted_corpus
from random_run import random_run

import bert4rec
from bert4rec.cli import main

COLUMNS = {"user": "uid", "item": "sku", "timestamp": "ts"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A log (uid, sku, ts), its split by time, and a run over the earlier part."""
    root = tmp_path_factory.mktemp("own")
    corpus = planted_corpus(n_users=80)
    events = pl.DataFrame({"uid": np.repeat(corpus.user_ids, corpus.lengths),
                           "sku": corpus.item_ids[corpus.items_flat - 1],
                           "ts": np.arange(corpus.n_interactions) % 200})
    train, test = bert4rec.split.by_time(events, fraction=0.2, timestamp="ts")
    train.write_csv(root / "train.csv")
    test.write_parquet(root / "test.parquet")
    data = bert4rec.Dataset.from_frame(train, user="uid", item="sku", timestamp="ts",
                                       min_user_interactions=3)
    run = random_run(data.corpus, root / "run", data.description)
    return {"root": root, "run": run, "data": data, "test": test, "train": train}


def test_evaluate_a_run_on_a_test_file_as_python_does(files, capsys):
    argv = ["evaluate", str(files["run"]), "--test", str(files["root"] / "test.parquet"),
            "--ks", "5,10", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = bert4rec.Model.load(files["run"]).evaluate(test=files["test"], ks=(5, 10))
    assert printed == {"scorer": "run", "test": str(files["root"] / "test.parquet"), **expected}
    assert printed["users"] > 0 and printed["users_without_history"] > 0
    assert main(argv[:-1]) == 0
    table = capsys.readouterr().out
    assert "without a history left out" in table and "Popularity@k" in table
    assert f"{expected['NDCG@10']:.4f}" in table


def test_the_history_and_columns_can_be_given(files, capsys):
    root = files["root"]
    renamed = {"uid": "u", "sku": "s", "ts": "t"}
    files["test"].rename(renamed).write_csv(root / "renamed.csv")
    files["train"].rename(renamed).write_csv(root / "renamed_train.csv")
    assert main(["evaluate", str(files["run"]), "--test", str(root / "renamed.csv"), "--user-col",
                 "u", "--item-col", "s", "--time-col", "t", "--history",
                 str(root / "renamed_train.csv"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    model = bert4rec.Model.load(files["run"])
    assert printed["NDCG@10"] == model.evaluate(test=files["test"], history=files["train"])[
        "NDCG@10"]
    assert main(["evaluate", str(files["run"]), "--test", str(root / "renamed.csv")]) == 1
    assert ("no column(s) 'uid', 'sku'; it has ['u', 's', 't']. Name the right ones with "
            "--user-col, --item-col and --time-col") in capsys.readouterr().err


def test_a_baseline_on_a_test_file(files, capsys):
    root = files["root"]
    assert main(["baseline", "itemknn", str(root / "train.csv"), "--user-col", "uid",
                 "--item-col", "sku", "--time-col", "ts", "--min-user-interactions", "3",
                 "--no-cache", "--test", str(root / "test.parquet"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    knn = bert4rec.Baseline("itemknn").fit(files["data"])
    assert printed["NDCG@10"] == knn.evaluate(test=files["test"])["NDCG@10"]
    assert printed["scorer"] == "itemknn" and printed["candidates"] == files["data"].n_items
