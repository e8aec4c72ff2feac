"""Sampled cloze losses: they agree with the full softmax where they must, and learn."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bert4rec.data.batches import IGNORE
from bert4rec.training.losses import (
    candidate_rows,
    log_item_frequency,
    sampled_cloze_loss,
    sampled_cross_entropy,
)


def toy(n: int = 6, v: int = 12, h: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, h, generator=g),
        torch.randn(v, h, generator=g),
        torch.randn(v, generator=g),
        torch.randint(1, v - 1, (n,), generator=g),
    )


def test_sampled_with_every_item_and_uniform_q_equals_full_softmax():
    hidden, weight, bias, targets = toy()
    items = torch.arange(weight.shape[0])
    log_q = torch.full((), -math.log(len(items)))
    sampled = sampled_cross_entropy(
        hidden, weight, bias, targets, items, log_q_negatives=log_q,
        log_q_targets=log_q.expand_as(targets)
    )
    full = F.cross_entropy(hidden @ weight.T + bias, targets)  # softmax over every item
    assert sampled.item() == pytest.approx(full.item(), rel=1e-5)


def test_pair_logits_add_to_targets_and_to_the_negatives_laid_out_s_by_n():
    hidden, weight, bias, targets = toy()
    extra = torch.randn(len(targets), weight.shape[0], generator=torch.Generator().manual_seed(1))

    def pair_logits(candidates: torch.Tensor) -> torch.Tensor:
        if candidates.dim() == 1:  # each row's own target
            return extra.gather(1, candidates[:, None])[:, 0]
        return extra[:, candidates[:, 0]].T  # the shared negatives [S, 1] -> [S, N]

    items = torch.arange(weight.shape[0])
    log_q = torch.full((), -math.log(len(items)))
    sampled = sampled_cross_entropy(
        hidden, weight, bias, targets, items, log_q_negatives=log_q,
        log_q_targets=log_q.expand_as(targets), pair_logits=pair_logits,
    )
    full = F.cross_entropy(hidden @ weight.T + bias + extra, targets)
    assert sampled.item() == pytest.approx(full.item(), rel=1e-5)


def test_accidental_hits_are_removed():
    hidden, weight, bias, targets = toy(n=1)
    only_target = targets.clone()
    zero = torch.zeros(())
    loss = sampled_cross_entropy(hidden, weight, bias, targets, only_target,
                                 log_q_negatives=zero, log_q_targets=zero[None])
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["uniform", "in-batch"])
def test_the_candidates_rows_alone_give_the_loss_of_the_whole_table(kind):
    hidden, weight, bias, targets = toy(n=8, v=30)
    targets[-2:] = IGNORE  # padding rows
    negatives = (torch.tensor([3, 3, 7, 28, 1, 12]) if kind == "uniform"
                 else torch.unique(targets[:-2]))
    log_q = torch.linspace(-5, -1, 30)
    whole = sampled_cloze_loss(hidden, weight, bias, targets, kind=kind, n_items=28,
                               item_log_q=log_q, negatives=negatives)
    rows, row_targets, row_negatives = candidate_rows(targets, negatives)
    assert len(rows) < 30 and rows[row_negatives].tolist() == negatives.tolist()
    assert row_targets[-2:].tolist() == [IGNORE, IGNORE]
    part = sampled_cloze_loss(hidden, weight[rows], bias[rows], row_targets, kind=kind,
                              n_items=28, item_log_q=log_q[rows], negatives=row_negatives)
    assert part.item() == pytest.approx(whole.item(), rel=1e-6)


def test_in_batch_needs_frequencies():
    hidden, weight, bias, targets = toy()
    with pytest.raises(ValueError, match="item_log_q"):
        sampled_cloze_loss(hidden, weight, bias, targets, kind="in-batch")


def test_an_unknown_kind_is_refused():
    hidden, weight, bias, targets = toy()
    with pytest.raises(ValueError, match="unknown sampled loss 'full'"):
        sampled_cloze_loss(hidden, weight, bias, targets, kind="full")


@pytest.mark.parametrize("kind", ["uniform", "in-batch"])
def test_each_loss_learns_a_planted_mapping(kind):
    torch.manual_seed(0)
    v, h, n = 50, 16, 48
    contexts = torch.randn(n, h)
    targets = torch.randint(1, v - 1, (n,))
    weight = torch.nn.Parameter(torch.randn(v, h) * 0.1)
    bias = torch.nn.Parameter(torch.zeros(v))
    project = torch.nn.Linear(h, h)
    optimiser = torch.optim.Adam([weight, bias, *project.parameters()], lr=0.05)
    log_q = log_item_frequency(torch.bincount(targets, minlength=v))
    for _ in range(120):
        loss = sampled_cloze_loss(
            project(contexts), weight, bias, targets, kind=kind, n_negatives=20, item_log_q=log_q
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    predicted = (project(contexts) @ weight.T + bias)[:, 1 : v - 1].argmax(1) + 1
    assert (predicted == targets).float().mean() > 0.9
