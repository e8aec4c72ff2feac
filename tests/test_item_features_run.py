"""Item features from the command line to serving (issue 25): `train --items attributes.json
--item-features auto` writes features.parquet, a run directory checks it on load, `recommend
--items-table` and `Model.add_items` offer new items without retraining, and ONNX exports it."""

import json
import shutil

import polars as pl
import pytest
from planted import planted_corpus

from bert4rec import Dataset, Model, rundir
from bert4rec.cli import main
from bert4rec.errors import ModelDirError
from bert4rec.inference.recommender import Recommender

TINY = ["--max-len", "16", "--hidden", "32", "--batch-size", "32", "--epochs", "1",
        "--device", "cpu", "--all-ratings", "--min-user-interactions", "3"]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def attributes(item: int) -> list[int]:
    """Two attributes per planted item (ids 100..139): its parity and its tens."""
    return [item % 2, 10 + (item // 10) % 10]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    corpus = planted_corpus(n_users=80)
    users = [u for u in range(corpus.n_users) for _ in corpus.sequence(u)]
    log = pl.DataFrame({"user": users, "item": corpus.item_ids[corpus.items_flat - 1],
                        "timestamp": list(range(len(users)))})
    log.write_csv(folder / "log.csv")
    known = {str(i): attributes(i) for i in corpus.item_ids.tolist()}
    (folder / "attributes.json").write_text(json.dumps(known))
    (folder / "new.json").write_text(json.dumps({"500": attributes(101), "501": [1, 99]}))
    return folder


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "features"
    assert main(["train", str(files / "log.csv"), "--out", str(out), "--items",
                 str(files / "attributes.json"), "--item-features", "auto", "--feature-match",
                 *TINY, "--epochs", "2"]) == 0  # one epoch leaves parity short of ranking first
    return out


def test_train_reads_an_attribute_file_and_keeps_its_values_as_features(files, tmp_path,
                                                                        capsys):
    out = tmp_path / "run"
    assert main(["train", str(files / "log.csv"), "--out", str(out), "--items",
                 str(files / "attributes.json"), "--item-features", "auto", *TINY]) == 0
    printed = capsys.readouterr().out
    assert ("item features (auto): attributes (6 values); 0 of 40 items have no known value"
            in printed)  # even, odd and the tens of 100..139
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["item_features"] == "attributes"
    assert config["train"]["model"]["item_features"] == "auto"
    assert (config["model"]["feature_vocab_size"], config["model"]["feature_slots"]) == (8, 2)
    frame = pl.read_parquet(out / rundir.FEATURES)
    assert frame["value"].to_list() == ["", "0", "1", "10", "11", "12", "13"]
    assert frame["items"].list.len().to_list() == [0, 20, 20, 10, 10, 10, 10]


def test_a_features_file_that_does_not_fit_the_weights_is_refused(run, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    frame = pl.read_parquet(changed / rundir.FEATURES)
    swapped = frame.with_columns(pl.col("items").shift(1).over(pl.lit(0)).fill_null([]))
    swapped.write_parquet(changed / rundir.FEATURES)
    with pytest.raises(ModelDirError, match=r"does not match model\.safetensors"):
        rundir.load_model(changed)
    (changed / rundir.FEATURES).unlink()
    with pytest.raises(ModelDirError, match="missing; the model was trained with item features"):
        Recommender.load(changed)


def test_recommend_offers_new_items_from_an_items_table(run, files, tmp_path, capsys):
    allowed = tmp_path / "new-ids.txt"
    allowed.write_text("500\n501\n")
    assert main(["recommend", str(run), "id:100", "id:101", "--items-table",
                 str(files / "new.json"), "--items-from", str(allowed), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sorted(r["item"] for r in shown["items"]) == [500, 501]


def test_a_model_without_features_cannot_take_new_items(files, tmp_path, capsys):
    out = tmp_path / "plain"
    assert main(["train", str(files / "log.csv"), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["recommend", str(out), "id:100", "--items-table",
                 str(files / "new.json")]) != 0
    assert "trained without item features" in capsys.readouterr().err


def test_model_add_items_scores_new_items_by_their_features(run, files):
    model = Model.load(run)
    before = model.recommend(histories=[[100, 102]], k=5)
    new = pl.DataFrame({"item": [500, 501], "attributes": [attributes(101), ["1", "99"]]})
    assert model.add_items(new) is model
    assert model.items["item"].to_list()[-2:] == [500, 501]
    after = model.recommend(histories=[[100, 102]], k=5, exclude=[500, 501])
    assert after["item"].to_list() == before["item"].to_list()  # trained items score as before
    assert after["score"].to_list() == pytest.approx(before["score"].to_list(), abs=1e-5)
    only_new = model.recommend(histories=[[100, 102]], k=5, items=[500, 501])
    assert sorted(only_new["item"].to_list()) == [500, 501]
    similar = model.similar_items(500, k=3)["item"].to_list()  # odd, as 501 is
    assert all(item % 2 == 1 for item in similar), similar


def test_model_fit_with_item_features_from_a_dataframe(files, tmp_path):
    log = pl.read_csv(files / "log.csv")
    items = pl.DataFrame({"item": sorted(set(log["item"].to_list()))}).with_columns(
        pl.col("item").map_elements(lambda i: "odd" if i % 2 else "even",
                                    return_dtype=pl.String).alias("parity"),
        pl.lit(None, pl.String).alias("title"))
    data = Dataset.from_frame(log, items=items, min_rating=None, min_user_interactions=3)
    model = Model("fast", item_features="parity", epochs=1, max_len=16, hidden=32,
                  device="cpu").fit(data, out=tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"][
        "item_features"] == "parity"
    model.add_items(pl.DataFrame({"item": [900], "parity": ["odd"]}))
    assert model.recommend(histories=[[100]], k=1, items=[900])["item"].to_list() == [900]


def test_onnx_export_carries_the_features_and_their_matches(run, tmp_path):
    pytest.importorskip("onnxruntime")
    from bert4rec.inference.export import export

    assert json.loads((run / "config.json").read_text())["model"]["feature_match"]
    path = export(run, "onnx", tmp_path / "export")  # checked against PyTorch as it is written
    signature = json.loads(path.with_name(path.name + ".json").read_text())
    assert signature["item_features"] == "attributes"


def test_a_feature_column_the_item_table_lacks_is_named_before_training(files, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(files / "log.csv"), "--out", str(out), "--items",
                 str(files / "attributes.json"), "--item-features", "brand", *TINY]) != 0
    err = capsys.readouterr().err
    assert "item features: no column 'brand' in the item table; it has ['title', 'genres', " \
           "'attributes']" in err
    assert not out.exists()


def test_a_config_that_claims_another_feature_table_is_refused_before_building(run, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    config = json.loads((changed / "config.json").read_text())
    config["model"]["feature_vocab_size"] = 10**9
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match=r"model\.feature_vocab_size 1000000000 \(the "
                       r"weights have 8\)"):
        rundir.load_model(changed)
