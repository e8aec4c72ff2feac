"""Sampled-softmax cloze losses, for catalogues too large for the full softmax.

The full softmax (`optim.loss = "full"`, train.py: cross-entropy of the model's logits) scores
all V items per masked position: N * V floats, which for a million-item catalogue no longer
fits. These losses take the transformed encoder output at the masked positions only
(`hidden [N, H]`), the output item embeddings (`weight [V, H]`, tied to the input embeddings)
and bias (`[V]`), and the true items (`targets [N]`); they score each target against a shared
set of sampled negatives and subtract log Q (the sampling log-probability) from every logit,
the correction that keeps the estimate consistent (Bengio & Senecal 2008; Yi et al., RecSys
2019, for in-batch negatives).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bert4rec.data.batches import IGNORE
from bert4rec.data.vocab import PAD, Vocabulary

SAMPLED_LOSSES = ("uniform", "in-batch")

PairLogits = Callable[[torch.Tensor], torch.Tensor]
"""Extra logits for candidate items, per row: [N] targets -> [N], [S, 1] negatives -> [S, N]."""

def sampled_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    log_q_negatives: torch.Tensor,
    log_q_targets: torch.Tensor,
    sparse_grad: bool = False,
    pair_logits: PairLogits | None = None,
) -> torch.Tensor:
    """Cross-entropy of each target against shared `negatives [S]`, with logQ correction.

    A negative equal to a row's own target (an "accidental hit") is removed from that row, and
    a row whose target is IGNORE (padding, so that batches take few shapes) adds nothing.
    With `sparse_grad` the rows of `weight` are gathered with a sparse gradient (only the
    rows used), for an item table trained by a sparse optimiser (sparse_items.py).
    `pair_logits(candidates)` adds each row's transition logits (`TransitionBias.pairs`) to
    the targets [N] and to the negatives [S, 1] -> [S, N]. The negatives' logits are laid out
    [S, N], so that what is added per negative (its bias, its feature matches: a bag of
    profile columns) is written in place rather than transposed (docs/performance.md).
    """
    real = targets != IGNORE
    targets = torch.where(real, targets, PAD)  # padding rows look up row 0 and are left out
    target_rows = F.embedding(targets, weight, sparse=sparse_grad)  # [N, H]
    negative_rows = F.embedding(negatives, weight, sparse=sparse_grad)  # [S, H]
    positive = (hidden * target_rows).sum(-1) + bias[targets] - log_q_targets  # [N]
    negative = torch.addmm((bias[negatives] - log_q_negatives)[:, None], negative_rows,
                           hidden.T).float()  # [S, N], this function's own: changed in place
    if pair_logits is not None:
        positive = positive + pair_logits(targets)
        negative.add_(pair_logits(negatives[:, None]))
    negative.masked_fill_(negatives[:, None] == targets[None, :], float("-inf"))
    positive = positive.float()  # the cross-entropy of [positive, negative] at index 0:
    total = torch.logaddexp(positive, negative.logsumexp(0))  # no [1 + S, N] copy
    return ((total - positive) * real).sum() / real.sum()


def sampled_cloze_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    *,
    kind: str,
    n_negatives: int = 1024,
    n_items: int | None = None,
    item_log_q: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    sparse_grad: bool = False,
    pair_logits: PairLogits | None = None,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """The sampled-softmax training loss at masked positions.

    `kind`: "uniform" (`n_negatives` items drawn uniformly from 1..n_items, shared by the
    batch) or "in-batch" (the batch's own targets are the negatives; `item_log_q [V]`, the log
    of each item's share of training interactions, corrects for their popularity bias).
    `negatives`: drawn so beforehand (`draw_negatives`), for losses that share them.
    `sparse_grad`, `pair_logits`: see `sampled_cross_entropy`.
    """
    if kind not in SAMPLED_LOSSES:
        raise ValueError(f"unknown sampled loss {kind!r}; expected one of "
                         f"{', '.join(SAMPLED_LOSSES)}")
    vocab = Vocabulary(n_items) if n_items is not None else Vocabulary.of_size(weight.shape[0])
    if negatives is None:
        negatives = draw_negatives(kind, targets, vocab, n_negatives, generator)
    if kind == "uniform":
        log_q = torch.full((), -math.log(vocab.n_items), device=hidden.device)
        return sampled_cross_entropy(
            hidden, weight, bias, targets, negatives, log_q_negatives=log_q,
            log_q_targets=log_q.expand_as(targets), sparse_grad=sparse_grad,
            pair_logits=pair_logits,
        )
    if item_log_q is None:
        raise ValueError("in-batch negatives need item_log_q (log item frequency)")
    return sampled_cross_entropy(
        hidden, weight, bias, targets, negatives, log_q_negatives=item_log_q[negatives],
        log_q_targets=item_log_q[targets.clamp(min=PAD)], sparse_grad=sparse_grad,
        pair_logits=pair_logits,
    )


def fixed_pair_logits(pair_logits: PairLogits, targets: torch.Tensor, negatives: torch.Tensor
                      ) -> PairLogits:
    """`pair_logits` of the `targets` [N] (IGNORE as padding) and of the `negatives` [S],
    computed here once, for the losses that share them."""
    at_targets = pair_logits(targets.clamp(min=PAD))
    at_negatives = pair_logits(negatives[:, None])
    return lambda candidates: at_negatives if candidates.dim() == 2 else at_targets


def candidate_rows(targets: torch.Tensor, negatives: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct items among `targets` [N] (IGNORE aside) and `negatives` [S], and both
    as indices into them (IGNORE kept): for a loss that computes only those items' rows."""
    items, inverse = torch.unique(torch.cat([targets.clamp(min=PAD), negatives]),
                                  return_inverse=True)
    n = len(targets)
    return items, torch.where(targets == IGNORE, IGNORE, inverse[:n]), inverse[n:]


def draw_negatives(kind: str, targets: torch.Tensor, vocab: Vocabulary, n_negatives: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The negatives [S] of a sampled loss `kind`: `n_negatives` items drawn uniformly from
    the vocabulary's, or the distinct `targets` [N] of the batch (IGNORE aside)."""
    if kind == "in-batch":
        return torch.unique(targets[targets != IGNORE])
    return torch.randint(vocab.items.start, vocab.items.stop, (n_negatives,),
                         device=targets.device, generator=generator)


def log_item_frequency(counts: torch.Tensor) -> torch.Tensor:
    """log of each vocab entry's share of training interactions (zero counts floored at 1)."""
    counts = counts.to(torch.float64).clamp_min(1.0)
    return (counts / counts.sum()).log().to(torch.float32)
