"""A run directory never contradicts itself (issue 14): resuming checks the data, a failed start
leaves nothing behind, config.json must fit the weights, crash leftovers are cleared."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
import torch
from planted import planted_corpus
from safetensors.torch import load_file, save_file
from tiny_run import make_run_dir

from bert4rec import rundir
from bert4rec.cli import main
from bert4rec.errors import ModelDirError
from bert4rec.inference.recommender import Recommender

TINY = ["--max-len", "16", "--hidden", "16", "--batch-size", "64", "--epochs", "1",
        "--device", "cpu", "--all-ratings", "--min-user-interactions", "3", "--no-cache"]


def write_log(path, n_users=40):
    """A planted log of `n_users` users (6-15 items each) as CSV."""
    corpus = planted_corpus(n_users=n_users)
    rows = [(u, int(corpus.item_ids[i - 1]), t) for u in range(corpus.n_users)
            for t, i in enumerate(corpus.sequence(u))]
    pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").write_csv(path)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run on a planted log: (log, run directory)."""
    root = tmp_path_factory.mktemp("finished")
    log = write_log(root / "log.csv")
    assert main(["train", str(log), "--out", str(root / "run"), *TINY]) == 0
    return log, root / "run"


@pytest.fixture()
def run(finished, tmp_path):
    """A copy of the finished run that a test may change."""
    log, source = finished
    return log, shutil.copytree(source, tmp_path / "run")


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def test_resume_refuses_other_data_settings_and_names_them(run, capsys):
    log, out = run
    metrics = (out / "metrics.json").read_text()
    args = ["train", str(log), "--out", str(out), "--resume", *TINY]
    assert main([*args, "--min-user-interactions", "10"]) == 1
    line = error_line(capsys)
    assert "cannot resume on other data" in line and "--min-user-interactions 3 -> 10" in line
    assert "users" in line  # the corpus changed too: its sizes are named
    assert (out / "metrics.json").read_text() == metrics


def test_resume_refuses_another_source_with_the_same_settings(run, tmp_path, capsys):
    log, out = run
    other = write_log(tmp_path / "other.csv", n_users=30)
    metrics = (out / "metrics.json").read_text()
    assert main(["train", str(other), "--out", str(out), "--resume", *TINY]) == 1
    line = error_line(capsys)
    assert "the prepared corpus (40 -> 30 users" in line and str(log.resolve()) in line
    assert (out / "metrics.json").read_text() == metrics


def test_resume_on_the_same_data_clears_crash_leftovers(run, capsys):
    log, out = run
    orphan = out / "checkpoints" / ".last.pt.k2j4x9ab"  # as a kill -9 mid-write leaves it
    orphan.write_bytes(b"half a checkpoint")
    config = json.loads((out / "config.json").read_text())
    assert len(config["data"]["corpus"]["fingerprint"]) == 32
    assert config["data"]["corpus"]["users"] == 40
    assert main(["train", str(log), "--out", str(out), "--resume", *TINY]) == 0
    assert not orphan.exists() and (out / "checkpoints" / "last.pt").is_file()


def test_a_checkpoint_that_lacks_keys_is_named(run, capsys):
    log, out = run
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    del state["settings"], state["rng"]
    torch.save(state, out / "checkpoints" / "last.pt")
    assert main(["train", str(log), "--out", str(out), "--resume", *TINY]) == 1
    assert "not a complete checkpoint (no rng, settings)" in error_line(capsys)


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_failed_start_leaves_out_as_it_was(tmp_path, capsys, monkeypatch, out_exists):
    log = write_log(tmp_path / "log.csv")
    out = tmp_path / "deep" / "run"
    if out_exists:
        out.mkdir(parents=True)  # an empty folder of the user's: a run may write there

    def explode(*args, **kwargs):
        raise RuntimeError("validation broke")

    # fails after config.json is written
    monkeypatch.setattr("bert4rec.training.loop.validate", explode)
    assert main(["train", str(log), "--out", str(out), *TINY]) == 1
    assert "unexpected RuntimeError: validation broke" in error_line(capsys)
    if out_exists:
        assert list(out.iterdir()) == []
    else:
        assert not (tmp_path / "deep").exists()
    monkeypatch.undo()
    assert main(["train", str(log), "--out", str(out), *TINY]) == 0  # not "already holds a run"


def test_users_too_short_to_evaluate_are_refused_before_out_is_written(tmp_path, capsys):
    log = tmp_path / "pairs.csv"
    rows = [f"{user},{user * 2 + k},{k}" for user in range(20) for k in range(2)]
    log.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["train", str(log), "--out", str(out), *TINY, "--min-user-interactions", "1"]
    assert main(args) == 1
    assert "no user has 3 or more items" in error_line(capsys)
    assert not out.exists()


def test_config_json_must_fit_the_weights(tmp_path):
    run = make_run_dir(tmp_path / "run")  # hidden 16, heads 2, max_len 8, one layer
    pristine = json.loads((run / "config.json").read_text())
    cases = {
        ("heads", 4): r"model\.heads 4 \(the weights have 2\)",
        ("hidden", 4096): r"model\.hidden 4096 \(the weights have 16\)",
        ("heads", 0): r"model\.heads must be a whole number in \[1, 1024\], got 0",
        ("hidden", -16): r"model\.hidden must be a whole number in \[1, 65536\], got -16",
        ("layers", 3): r"model\.layers 3 \(the weights have 1\)",
        ("max_len", "8"): r"model\.max_len must be a whole number in \[2, 65536\], got '8'",
        ("dropout", 1.5): r"model\.dropout must be in \[0, 1\], got 1\.5",
    }
    for (name, value), message in cases.items():
        tampered = {**pristine, "model": {**pristine["model"], name: value}}
        (run / "config.json").write_text(json.dumps(tampered))
        with pytest.raises(ModelDirError, match=message):
            Recommender.load(run)
    inference_only = {**pristine, "model": {**pristine["model"], "dropout": 0.3}}
    (run / "config.json").write_text(json.dumps(inference_only))
    assert Recommender.load(run).n_items == 14  # dropout plays no part in inference


def test_weights_without_a_recorded_config_still_load_by_their_shapes(tmp_path):
    run = make_run_dir(tmp_path / "run")
    tensors = load_file(str(run / rundir.WEIGHTS))
    save_file(tensors, str(run / rundir.WEIGHTS), metadata={"format": "pt"})
    assert Recommender.load(run).n_items == 14
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden"] = 32
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match=r"model\.hidden 32 \(the weights have 16\)"):
        Recommender.load(run)


def test_equal_weights_are_written_as_equal_bytes(tmp_path):
    """safetensors writes its header metadata from a hash map; the run's file sorts it, so two
    identical runs write identical model.safetensors files (issue 23)."""
    from bert4rec.model import BERT4Rec, BERT4RecConfig

    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=12, max_len=8, hidden=8, layers=1, heads=2))
    written = set()
    for i in range(12):
        rundir.save_weights(model, tmp_path / f"w{i}.safetensors")
        written.add((tmp_path / f"w{i}.safetensors").read_bytes())
    assert len(written) == 1
    loaded = load_file(str(tmp_path / "w0.safetensors"))
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    assert rundir.read_header(tmp_path / "w0.safetensors")[1] == model.config.to_dict()
