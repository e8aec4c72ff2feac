"""`model.transitions`: a learnt logit per pair of consecutive training items, added to the next
item's score. The pairs come from the training sequences only; a model learns them where item
vectors alone cannot, and a run directory holds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from planted import planted_corpus, tiny_settings

from bert4rec.data.corpus import Split
from bert4rec.inference.export import export
from bert4rec.model import BERT4Rec, BERT4RecConfig, TransitionBias
from bert4rec.rundir import load_model
from bert4rec.training.loop import fit, transition_keys


def test_keys_are_the_consecutive_pairs_within_each_sequence_once():
    data = Split("train", np.arange(3), np.array([3, 4, 3, 4, 5, 7, 8]),
                 np.array([0, 2, 5, 7]), None)
    keys, counts = transition_keys(data, 10)
    assert keys.tolist() == [3 * 10 + 4, 4 * 10 + 5, 7 * 10 + 8]  # not 4 -> 3, across users
    assert counts.tolist() == [2, 1, 1]


def test_rows_and_pairs_agree_and_unseen_pairs_add_nothing():
    bias = TransitionBias(vocab_size=10, n_pairs=4)
    bias.start_at(torch.tensor([3 * 10 + 4, 3 * 10 + 7, 5 * 10 + 1, 8 * 10 + 8]),
                  torch.ones(4))
    with torch.no_grad():
        bias.values.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    previous = torch.tensor([3, 5, 6, 8])
    rows = bias.add_rows(torch.zeros(4, 10), previous)
    expected = torch.zeros(4, 10)
    expected[0, 4], expected[0, 7], expected[1, 1], expected[3, 8] = 1.0, 2.0, 3.0, 4.0
    assert torch.equal(rows, expected)
    candidates = torch.arange(10)[None, :]
    assert torch.equal(bias.pairs(previous[:, None], candidates), expected)
    assert torch.equal(bias.pairs(previous, torch.tensor([7, 1, 1, 8])),
                       torch.tensor([2.0, 3.0, 0.0, 4.0]))
    assert torch.equal(bias.shared(previous, torch.arange(10)), expected.T)  # [S, N]
    repeated = torch.tensor([8, 4, 1, 4, 9, 7])  # shared negatives, drawn with repeats
    assert torch.equal(bias.shared(previous, repeated), expected[:, repeated].T)


def test_shared_candidates_train_each_pair_as_often_as_it_is_scored():
    bias = TransitionBias(vocab_size=10, n_pairs=3)
    bias.start_at(torch.tensor([3 * 10 + 4, 3 * 10 + 7, 5 * 10 + 4]), torch.ones(3))
    bias.shared(torch.tensor([3, 5, 3]), torch.tensor([4, 4, 7, 2])).sum().backward()
    assert bias.values.grad.tolist() == [4.0, 2.0, 2.0]  # (3, 4): twice in each of two rows


def test_a_prediction_adds_the_newest_history_items_transitions():
    torch.manual_seed(0)
    config = BERT4RecConfig(vocab_size=12, max_len=6, hidden=8, layers=1, heads=2,
                            transitions=True, transition_pairs=1, transition_width=1)
    model = BERT4Rec(config).eval()
    model.transitions.start_at(torch.tensor([5 * 12 + 9]), torch.ones(1))
    with torch.no_grad():
        model.transitions.values.fill_(7.0)
    mask = config.vocab.mask
    after_5, after_4 = torch.tensor([[0, 3, 5, mask]]), torch.tensor([[0, 3, 4, mask]])
    with torch.no_grad():
        lifted = model(after_5)[0] - model.project(model.encoder(after_5)[:, -1])[0]
        plain = model(after_4)[0] - model.project(model.encoder(after_4)[:, -1])[0]
    expected = torch.zeros(10)
    expected[9 - 1] = 7.0
    torch.testing.assert_close(lifted[1:-1], expected)  # items only: padding and [MASK] are -inf
    torch.testing.assert_close(plain[1:-1], torch.zeros(10))


def test_a_run_learns_transitions_and_its_directory_keeps_them(tmp_path):
    corpus = planted_corpus()
    settings = tiny_settings(epochs=3, **{"model.causal": True, "model.transitions": True,
                                          "optim.loss": "uniform", "optim.negatives": 16})
    result = fit(corpus, settings, tmp_path / "run", progress=False)
    transitions = result.model.transitions
    assert len(transitions.keys) == 40  # the planted cycle: each item has one successor
    assert transitions.values.abs().min() > 0  # every pair was trained
    assert result.test["HR@10"] > 0.9
    loaded, _ = load_model(tmp_path / "run")
    assert torch.equal(loaded.transitions.keys, transitions.keys)
    assert torch.equal(loaded.transitions.values, transitions.values)


@pytest.mark.slow
def test_a_model_with_transitions_exports_to_both_formats(tmp_path):
    corpus = planted_corpus()
    settings = tiny_settings(epochs=1, **{"model.causal": True, "model.transitions": True,
                                          "optim.loss": "uniform", "optim.negatives": 16})
    fit(corpus, settings, tmp_path / "run", progress=False)
    for fmt in ("onnx", "pt2"):  # each checked against PyTorch on random histories inside
        path = export(tmp_path / "run", fmt, tmp_path / fmt, k=5)
        assert path.is_file()



def test_a_prediction_gathers_the_same_pairs_as_training():
    keys = torch.tensor([1 * 9 + 2, 1 * 9 + 5, 1 * 9 + 7, 4 * 9 + 4, 7 * 9 + 1])
    bias = TransitionBias(vocab_size=9, n_pairs=5, width=3)
    bias.start_at(keys, torch.ones(5))
    with torch.no_grad():
        bias.values.copy_(torch.tensor([1.0, -2.0, 3.0, 4.0, 5.0]))
    previous = torch.tensor([1, 0, 4, 7, 1, 8])  # padding and [MASK] start no pair
    trained = bias.add_rows(torch.zeros(6, 9), previous)
    bias.eval()
    predicted = bias.add_rows(torch.zeros(6, 9), previous)
    assert torch.equal(predicted, trained)
    assert predicted[0].tolist() == [0, 0, 1, 0, 0, -2, 0, 3, 0]
