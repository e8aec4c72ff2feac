"""The full-softmax cross-entropy fused with the output layer, a few rows at a time.

Unfused, the output layer writes the logits of every target row over the whole catalogue
(`[N, V]`), the cross-entropy writes their log-softmax, and its backward writes a zero
gradient of the same size, scatters into it and writes one more: five passes over N * V
floats, each far larger than the CPU's caches. Here each block of `ROWS` rows is scored,
turned into its gradient (softmax minus one-hot) while it is still in cache, and multiplied
straight into the gradients of the hidden states, the item matrix and the bias; no `[N, V]`
tensor exists. The loss and the gradients equal the unfused ones to float rounding
(tests/training/test_full_softmax.py); on the CPU the layer takes half the time (ML-1M's
3,418 items and 26,744 items alike, docs/performance.md).

The gradient is computed in the forward pass, so the loss supports one plain `backward()`
(what training does), not double backward.
"""

from __future__ import annotations

import torch

from bert4rec.data.batches import IGNORE
from bert4rec.data.vocab import PAD

ROWS = 128
"""Rows per block: fastest of 32-1,024 on 3,418 and 26,744 items (one thread, width 64)."""


def fused_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        targets: torch.Tensor, exclude: torch.Tensor | None = None
                        ) -> torch.Tensor:
    """Mean cross-entropy of `hidden [N, H] @ weight.T [H, V] + bias [V]` against
    `targets [N]` over the rows whose target is not IGNORE (`F.cross_entropy`'s mean).

    A bias of -inf (padding, [MASK]) gives that item probability 0 and no gradient, and so
    does each item of `exclude [N, K]` in its row (`optim.exclude_history`; PAD entries
    exclude nothing more): `exclude_from_logits` of the logits, without them.
    """
    if exclude is not None:
        exclude = _without_targets(exclude, targets)
    return _FusedCrossEntropy.apply(hidden, weight, bias, targets, exclude)


def exclude_from_logits(logits: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor
                        ) -> torch.Tensor:
    """`logits [N, V]` with each row's `exclude [N, K]` items at -inf, except its own target:
    what the unfused full softmax (CUDA, MPS, transition logits) applies."""
    return logits.scatter(1, _without_targets(exclude, targets), float("-inf"))


def _without_targets(exclude: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`exclude` with PAD for each row's own target and for the whole of an IGNORE row, so
    that a row always keeps a finite logit."""
    column = targets[:, None]
    return torch.where((exclude == column) | (column == IGNORE), PAD, exclude)


class _FusedCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, block by block, its gradients; backward scales them."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                targets: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        real = targets != IGNORE
        count = real.sum().clamp_min(1)
        safe = torch.where(real, targets, 0)[:, None]  # [N, 1]: a valid index on every row
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        grad_bias = torch.zeros_like(bias)
        total = hidden.new_zeros(())
        for start in range(0, hidden.shape[0], ROWS):
            rows = slice(start, start + ROWS)
            h, target, keep = hidden[rows], safe[rows], real[rows, None]
            block = torch.addmm(bias, h, weight.t())  # [n, V] logits
            if exclude is not None:
                block.scatter_(1, exclude[rows], float("-inf"))
            log_norm = torch.logsumexp(block, dim=1, keepdim=True)
            total += torch.where(keep, log_norm - block.gather(1, target), 0).sum()
            block.sub_(log_norm).exp_()  # softmax, in place
            block.scatter_add_(1, target, torch.full_like(log_norm, -1.0))
            block.mul_(keep)  # a padding row adds nothing
            torch.mm(block, weight, out=grad_hidden[rows])
            grad_weight.addmm_(block.t(), h)
            grad_bias += block.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias, count)
        return total / count

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight, grad_bias, count = ctx.saved_tensors
        scale = grad_loss / count
        return grad_hidden * scale, grad_weight * scale, grad_bias * scale, None, None
