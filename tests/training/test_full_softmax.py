"""The fused full-softmax loss gives F.cross_entropy's loss and gradients, and training uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_corpus import tiny_corpus

from bert4rec.config import preset
from bert4rec.data.batches import IGNORE, target_inputs
from bert4rec.training import full_softmax
from bert4rec.training.full_softmax import exclude_from_logits, fused_cross_entropy
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


def test_excluded_items_lose_their_probability_but_never_a_rows_own_target():
    """`optim.exclude_history`: each row's excluded items get probability 0 and no gradient,
    except the row's own target, which is always scored; fused equals unfused."""
    hidden, weight, bias, targets = _inputs(n=300, items=50)
    generator = torch.Generator().manual_seed(1)
    exclude = torch.randint(0, 50, (300, 6), generator=generator)
    exclude[:, 0] = targets.clamp_min(0)  # every real row lists its own target too

    def unfused(h, w, b, t):
        return F.cross_entropy(exclude_from_logits(F.linear(h, w, b), t, exclude), t,
                               ignore_index=IGNORE)

    expected = _loss_and_grads(unfused, hidden, weight, bias, targets)
    got = _loss_and_grads(lambda h, w, b, t: fused_cross_entropy(h, w, b, t, exclude),
                          hidden, weight, bias, targets)
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want)
    plain = _loss_and_grads(fused_cross_entropy, hidden, weight, bias, targets)
    assert got[0] < plain[0]  # fewer rivals in every row
    row = 2  # a real row: its excluded items, but not its target, get no gradient
    assert targets[row] != IGNORE
    others = exclude[row][exclude[row] != targets[row]]
    probabilities = torch.softmax(exclude_from_logits(
        F.linear(hidden[row:row + 1], weight, bias), targets[row:row + 1], exclude[row:row + 1]),
        dim=1)[0]
    assert probabilities[others].sum() == 0 and probabilities[targets[row]] > 0


def test_a_causal_target_excludes_what_came_before_it_and_a_cloze_one_its_whole_row():
    inputs = torch.tensor([[0, 0, 7, 8, 9], [3, 4, 5, 99, 6]])  # 99: [MASK]
    positions = (torch.tensor([0, 0, 1]), torch.tensor([2, 4, 1]))
    assert target_inputs(inputs, positions, causal=True).tolist() == [
        [0, 0, 7, 0, 0], [0, 0, 7, 8, 9], [3, 4, 0, 0, 0]]
    assert target_inputs(inputs, positions, causal=False).tolist() == [
        [0, 0, 7, 8, 9], [0, 0, 7, 8, 9], [3, 4, 5, 99, 6]]


def test_a_training_step_with_exclude_history_takes_the_excluded_loss():
    corpus = tiny_corpus([[1, 2, 3, 4, 5, 6, 7, 8], [2, 4, 6, 8, 1, 3], [5, 6, 7, 8, 1, 2]] * 4)
    settings = preset("fast").override({"loop.device": "cpu", "model.causal": True,
                                        "model.dropout": 0.0, "loop.batch_size": 12,
                                        "optim.exclude_history": True})
    run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
    run.model.eval()
    inputs, labels = next(iter(run.loader))
    positions = (labels != 0).nonzero(as_tuple=True)
    logits = run.model(inputs, positions)
    seen = target_inputs(inputs, positions, causal=True)
    expected = F.cross_entropy(exclude_from_logits(logits, labels[positions], seen),
                               labels[positions])
    torch.testing.assert_close(run.loss(inputs, labels), expected)
    assert expected < F.cross_entropy(logits, labels[positions])


def test_a_sampled_loss_leaves_exclude_history_aside():
    """`causal` turns it on; with a sampled loss for a large catalogue it must not get in the
    way: the same step, the same loss."""
    corpus = tiny_corpus([[1, 2, 3, 4, 5, 6, 7, 8], [2, 4, 6, 8, 1, 3], [5, 6, 7, 8, 1, 2]] * 4)
    losses = []
    for exclude in (True, False):
        torch.manual_seed(0)
        settings = preset("causal").override({
            "loop.device": "cpu", "model.dropout": 0.0, "loop.batch_size": 12,
            "optim.loss": "uniform", "optim.negatives": 4, "optim.exclude_history": exclude})
        run = TrainingRun(corpus, settings, Runtime(torch.device("cpu")), show_progress=False)
        run.model.eval()
        inputs, labels = next(iter(run.loader))
        torch.manual_seed(1)
        losses.append(run.loss(inputs, labels))
    assert torch.isfinite(losses[0])
    torch.testing.assert_close(losses[0], losses[1])
