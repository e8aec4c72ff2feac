"""The causal objective (`model.causal`): each position sees only itself and earlier items and
is trained to predict the next one (SASRec's training); prediction reads the newest item's
state, so every face that appends [MASK] to a history works unchanged."""

from __future__ import annotations

import pytest
import torch
from planted import planted_corpus, tiny_settings

from bert4rec.data.batches import NextItemCollate, prediction_inputs
from bert4rec.evaluation.protocols import evaluate
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.training.loop import fit


def causal_model(vocab_size: int = 30, max_len: int = 12) -> BERT4Rec:
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=vocab_size, max_len=max_len, hidden=16, layers=2,
                            heads=2, dropout=0.0, attention_dropout=0.0, causal=True)
    return BERT4Rec(config).eval()


def test_a_position_never_sees_the_items_after_it():
    model = causal_model()
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = items.clone()
    changed[0, 5:] = torch.tensor([9, 10, 11])
    states, other = model.encoder(items), model.encoder(changed)
    torch.testing.assert_close(states[0, :5], other[0, :5])  # padding and items 3, 4, 5
    assert not torch.allclose(states[0, 5:], other[0, 5:])


def test_the_bidirectional_encoder_does_see_them():
    model = causal_model()
    model.encoder.causal = False
    items = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = items.clone()
    changed[0, 7] = 9
    assert not torch.allclose(model.encoder(items)[0, 2], model.encoder(changed)[0, 2])


def test_prediction_reads_the_newest_items_state_whatever_the_padding():
    model = causal_model()
    histories = [[3, 4, 5], [7], []]
    logits = model(prediction_inputs(histories, 12, model.config.mask_token))  # [3, V]
    for row, history in enumerate(histories[:2]):
        states = model.encoder(torch.tensor([history]))  # no padding, no [MASK]
        expected = model.project(states[:, -1])
        torch.testing.assert_close(logits[row], expected[0])
    assert torch.isfinite(logits[2, 1:-1]).all()  # an empty history still gets scores
    alone = model(torch.tensor([[model.config.mask_token]]))  # no column but [MASK]
    torch.testing.assert_close(alone[0], logits[2])


def test_next_item_batches_put_the_following_item_at_every_real_position():
    windows = torch.tensor([[0, 0, 0, 5, 6, 7], [0, 0, 0, 0, 8, 9], [1, 2, 3, 4, 5, 6]])
    inputs, labels = NextItemCollate()(windows)
    assert inputs.shape == labels.shape == (3, 5)
    assert inputs.tolist() == [[0, 0, 0, 5, 6], [0, 0, 0, 0, 8], [1, 2, 3, 4, 5]]
    assert labels.tolist() == [[0, 0, 0, 6, 7], [0, 0, 0, 0, 9], [2, 3, 4, 5, 6]]


@pytest.mark.slow
def test_a_causal_model_learns_the_planted_pattern(tmp_path):
    corpus = planted_corpus()
    result = fit(corpus, tiny_settings(epochs=5, **{"model.causal": True}), tmp_path / "run",
                 progress=False)
    assert result.model.config.causal
    assert result.test["HR@10"] > 0.9
    again = evaluate(lambda h: result.model(prediction_inputs(h, 16, corpus.mask_token)),
                     corpus, "test")
    assert again.metrics["HR@10"] == result.test["HR@10"]
