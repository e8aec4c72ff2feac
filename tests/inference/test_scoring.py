"""The model a Recommender scores with (inference/scoring.py): packed linear layers that score
as the model does, the model itself where they would not, and the opt-in shorter window."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from tiny_run import FILMS, USERS, make_run_dir

from bert4rec.cli import main
from bert4rec.inference import scoring
from bert4rec.inference.recommender import Recommender
from bert4rec.model import BERT4Rec, BERT4RecConfig

NO_ONEDNN = not torch.backends.mkldnn.is_available()


def two_blocks() -> tuple[BERT4Rec, torch.Tensor]:
    """A random two-block model and a batch of inputs, some left-padded."""
    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=60, max_len=20, hidden=32, layers=2, heads=2))
    items = torch.randint(1, 59, (6, 20))
    items[:3, :12] = 0
    items[:, -1] = 59  # [MASK]
    return model.eval(), items


@pytest.mark.skipif(NO_ONEDNN, reason="this torch has no oneDNN")
def test_the_packed_model_scores_as_the_model_and_shares_its_weights():
    model, items = two_blocks()
    packed = scoring.scoring_model(model)
    kinds = [type(m).__name__ for m in packed.modules()]
    assert kinds.count("PackedLinear") == 2 * 4 + 1 and "GELU" not in kinds  # fused
    assert packed.encoder.embeddings.item.weight is model.encoder.embeddings.item.weight
    with torch.inference_mode():
        expected, got = model(items), packed(items)
    assert torch.equal(torch.isinf(expected), torch.isinf(got))
    finite = torch.isfinite(expected)
    assert torch.allclose(got[finite], expected[finite], atol=1e-5, rtol=1e-5)
    assert torch.equal(got.topk(10).indices, expected.topk(10).indices)


@pytest.mark.skipif(NO_ONEDNN, reason="this torch has no oneDNN")
def test_packed_layers_that_disagree_on_the_probe_are_not_used(monkeypatch, caplog):
    model, _ = two_blocks()
    original = scoring.PackedLinear.forward
    monkeypatch.setattr(scoring.PackedLinear, "forward", lambda self, x: original(self, x) * 1.1)
    with caplog.at_level(logging.WARNING, logger="bert4rec.inference.scoring"):
        assert scoring.scoring_model(model) is model
    assert "disagree with the model on a probe batch" in caplog.text


def test_a_model_without_the_kernel_scores_as_it_is(monkeypatch):
    model, _ = two_blocks()

    def missing(*args, **kwargs):
        raise RuntimeError("no such op")

    monkeypatch.setattr(scoring.PackedLinear, "__init__", missing)
    assert scoring.scoring_model(model) is model


LONG = [f[0] for f in FILMS] * 2  # 28 entries; the model reads the last 7


def test_a_window_reads_only_the_most_recent_items(tmp_path):
    run = make_run_dir(tmp_path / "run")
    windowed = Recommender.load(run, window=3).recommend(LONG, k=5, filter_viewed=False)
    recent = Recommender.load(run).recommend(LONG[-3:], k=5, filter_viewed=False)
    whole = Recommender.load(run).recommend(LONG, k=5, filter_viewed=False)
    assert [(r.item, r.score) for r in windowed] == [(r.item, r.score) for r in recent]
    assert [r.score for r in windowed] != [r.score for r in whole]
    with pytest.raises(ValueError, match=r"^window .*got 0$"):
        Recommender.load(run, window=0)


def test_the_command_line_reads_the_window(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run", users=USERS)
    argv = ["recommend", str(run), "--user", "7", "-k", "3", "--json", "--keep-seen"]
    assert main([*argv, "--window", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)[0]
    expected = Recommender.load(run).recommend(USERS[7][-2:], k=3, filter_viewed=False)
    assert [r["item"] for r in printed["items"]] == [r.item for r in expected]
