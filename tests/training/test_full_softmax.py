"""The fused full-softmax loss gives F.cross_entropy's loss and gradients, and training uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_corpus import tiny_corpus

from bert4rec.config import preset
from bert4rec.data.batches import IGNORE
from bert4rec.training import full_softmax
from bert4rec.training.full_softmax import fused_cross_entropy
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime


def _inputs(n: int, items: int, width: int = 8):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, width, generator=generator, dtype=torch.float64)
    weight = torch.randn(items, width, generator=generator, dtype=torch.float64)
    bias = torch.randn(items, generator=generator, dtype=torch.float64)
    targets = torch.randint(2, items, (n,), generator=generator)
    targets[::5] = IGNORE  # padding rows
    return hidden, weight, bias, targets


def _loss_and_grads(loss_fn, hidden, weight, bias, targets):
    leaves = [x.clone().requires_grad_() for x in (hidden, weight, bias)]
    masked = leaves[2].index_fill(0, torch.tensor([0, 1]), float("-inf"))  # PAD and [MASK]
    loss = loss_fn(leaves[0], leaves[1], masked, targets)
    (loss * 3.0).backward()  # a scaled loss scales every gradient
    return [loss.detach()] + [x.grad for x in leaves]


@pytest.mark.parametrize("rows", [300, 128, 7])  # one block, the default, many ragged blocks
def test_loss_and_gradients_equal_the_unfused_cross_entropy(monkeypatch, rows):
    monkeypatch.setattr(full_softmax, "ROWS", rows)
    data = _inputs(n=300, items=50)

    def unfused(h, w, b, t):
        return F.cross_entropy(F.linear(h, w, b), t, ignore_index=IGNORE)

    expected = _loss_and_grads(unfused, *data)
    got = _loss_and_grads(fused_cross_entropy, *data)
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want)
    assert got[2][:2].abs().sum() == 0  # padding and [MASK] get no gradient in the item matrix
    assert torch.isfinite(got[0])


def test_only_padding_rows_give_zero_loss_and_gradient():
    hidden, weight, bias, targets = _inputs(n=4, items=10)
    loss, grad_hidden, grad_weight, grad_bias = _loss_and_grads(
        fused_cross_entropy, hidden, weight, bias, torch.full_like(targets, IGNORE))
    assert loss == 0
    assert grad_hidden.abs().sum() == grad_weight.abs().sum() == grad_bias.abs().sum() == 0


@pytest.mark.parametrize("causal", [False, True])
def test_a_cpu_training_step_takes_the_fused_loss_with_the_unfused_value(monkeypatch, causal):
    corpus = tiny_corpus([[1, 2, 3, 4, 5, 6, 7, 8], [2, 4, 6, 8, 1, 3], [5, 6, 7, 8, 1, 2]] * 4)
    settings = preset("fast").override({"loop.device": "cpu", "model.causal": causal,
                                        "model.dropout": 0.0, "loop.batch_size": 12})
    run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
    run.model.eval()  # no dropout: both losses see the same network
    inputs, labels = next(iter(run.loader))
    calls = []
    real = full_softmax.fused_cross_entropy
    monkeypatch.setattr("bert4rec.training.loop.fused_cross_entropy",
                        lambda *args: calls.append(1) or real(*args))
    fused = run.loss(inputs, labels)
    positions = (labels != 0).nonzero(as_tuple=True)
    unfused = F.cross_entropy(run.model(inputs, positions), labels[positions])
    assert calls == [1]
    torch.testing.assert_close(fused, unfused)
