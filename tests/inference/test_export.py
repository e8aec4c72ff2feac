"""`bert4rec export` (issue 16): the ONNX graph gives onnxruntime the same top 10 as PyTorch on
real ML-100k histories; the torch.export program reloads without pickle; a file that fails its
check, or a missing extra, leaves nothing behind and says why."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from tiny_run import make_run_dir

from bert4rec import rundir
from bert4rec.cli import main
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import left_pad
from bert4rec.inference import export as ex
from bert4rec.inference.recommender import Recommender, flatten
from bert4rec.model import BERT4Rec, BERT4RecConfig

ROOT = Path(__file__).resolve().parents[2]


def ml100k_run(data_dir, path):
    """A random two-layer BERT4Rec over ML-100k's 1,447 items (the default filters), written as
    training writes it; the item embeddings are spread so the ranking depends on the history."""
    corpus = load_corpus("ml-100k", data_dir=data_dir)
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=corpus.vocab_size, max_len=20, hidden=32, layers=2,
                            heads=2)
    model = BERT4Rec(config)
    with torch.no_grad():
        model.encoder.embeddings.item.weight.normal_(0, 0.5)
        model.encoder.embeddings.item.weight[0].zero_()
    rundir.write_config(path, config, {"source": "ml-100k"}, {})
    rundir.save_weights(model, path / rundir.WEIGHTS)
    corpus.item_table.write_parquet(path / rundir.ITEMS)
    return corpus


@pytest.mark.realdata
@pytest.mark.slow
def test_onnx_gives_the_same_top_10_as_pytorch_on_200_ml100k_histories(data_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    corpus = ml100k_run(data_dir, tmp_path / "run")
    assert corpus.n_items == 1447
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "served")]) == 0
    served = tmp_path / "served"
    signature = json.loads((served / "model.onnx.json").read_text())
    assert signature["inputs"]["history"]["shape"] == ["batch", 19]
    assert (signature["padding_index"], signature["mask_index"], signature["k"]) == (0, 1448, 10)

    users = np.arange(0, corpus.n_users, corpus.n_users // 200)[:200]  # 200 real users
    histories = [corpus.sequence(u).tolist() for u in users]
    assert sum(len(h) > 19 for h in histories) > 100  # most overflow the window
    flat, offsets = flatten(histories)
    expected, _ = Recommender.load(tmp_path / "run").top_k(flat, offsets, 10)

    rows = np.arange(len(histories))
    session = ort.InferenceSession(str(served / "model.onnx"))
    top_items = session.run(["top_items"], {
        "history": left_pad(flat, offsets, rows, 19),  # the 19 most recent, left-padded
        "exclude": left_pad(flat, offsets, rows, max(map(len, histories))),  # all seen
    })[0]
    assert top_items.shape == (200, 10)
    assert np.array_equal(top_items, expected)

    # docs/export.md's onnxruntime block, as written, on this export
    page = (ROOT / "docs" / "export.md").read_text()
    block = re.findall(r"```python\n(.*?)```", page, re.S)[0]
    names: dict = {}
    exec(block.replace("runs/ml100k/export", str(served)), names)
    rec = Recommender.load(tmp_path / "run")
    answers = rec.recommend_many([["id:50", "id:172", "id:181"], ["id:1"]], k=10)
    assert names["recommended"].tolist() == [[r.item for r in a] for a in answers]

    ids = pl.read_csv(served / "items.csv")  # index -> original item id, as a server maps it
    assert ids.columns == ["index", "item", "title", "genres"] and ids.height == 1447
    id_of = dict(zip(ids["index"], ids["item"], strict=True))
    assert [id_of[i] for i in top_items[0]] == [
        int(corpus.item_ids[i - 1]) for i in expected[0]]


@pytest.mark.slow
def test_pt2_reloads_without_pickle_and_ranks_as_the_recommender(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run", max_len=8)
    assert main(["export", str(run), "--format", "pt2", "-k", "3"]) == 0
    path = run / "export" / "model.pt2"
    assert str(path) in capsys.readouterr().out
    with zipfile.ZipFile(path) as archive:
        configs = [n for n in archive.namelist() if n.endswith("weights_config.json")]
        weights = json.loads(archive.read(configs[0]))["config"]
    assert len(weights) > 10  # every tensor is listed ...
    assert not any(entry["use_pickle"] for entry in weights.values())  # ... as raw bytes

    histories = [[1, 2, 3], [], [5, 5, 9, 10, 11, 12, 13, 14, 1, 2]]  # one longer than 7
    flat, offsets = flatten(histories)
    expected, scores = Recommender.load(run).top_k(flat, offsets, 3)
    rows = np.arange(3)
    module = torch.export.load(path).module()
    with torch.no_grad():
        _, top_items, top_scores = module(
            torch.from_numpy(left_pad(flat, offsets, rows, 7)),
            torch.from_numpy(left_pad(flat, offsets, rows, 10)))
    assert top_items.tolist() == expected.tolist()
    assert np.allclose(top_scores.numpy(), scores, atol=1e-5)
    signature = json.loads((run / "export" / "model.pt2.json").read_text())
    assert signature["made_from"]["weights_sha256"] == rundir.file_sha256(run / rundir.WEIGHTS)
    assert signature["outputs"]["top_items"]["shape"] == ["batch", 3]


def test_a_file_that_fails_its_check_is_not_left_behind(tmp_path, monkeypatch):
    run = make_run_dir(tmp_path / "run", max_len=8)

    def half_written_then_refused(scorer, path):
        path.write_bytes(b"half a graph")
        ex._check(scorer, lambda h, e: [np.zeros((len(h), 16), np.float32)] * 3, path)

    monkeypatch.setattr(ex, "_write_pt2", half_written_then_refused)
    with pytest.raises(ex.ExportError, match="disagrees with PyTorch"):
        ex.export(run, "pt2", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no out/, no staging


def test_export_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    run = make_run_dir(tmp_path / "run", max_len=8)
    with pytest.raises(ex.ExportError, match="unknown export format 'tflite'"):
        ex.export(run, "tflite")
    with pytest.raises(ex.ExportError, match="k must be a positive whole number"):
        ex.export(run, "pt2", k=0)
    (tmp_path / "a-file").write_text("")
    assert main(["export", str(run), "--out", str(tmp_path / "a-file")]) == 1
    assert "a-file: exists and is not a folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the extra were not installed
    assert main(["export", str(run), "--out", str(tmp_path / "out")]) == 1
    assert "pip install 'bert4rec[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert main(["export", str(tmp_path / "nowhere")]) == 1
    assert "nowhere: no such folder" in capsys.readouterr().err
