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

ROWS = 128
"""Rows per block: fastest of 32-1,024 on 3,418 and 26,744 items (one thread, width 64)."""


def fused_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `hidden [N, H] @ weight.T [H, V] + bias [V]` against
    `targets [N]` over the rows whose target is not IGNORE (`F.cross_entropy`'s mean).

    A bias of -inf (padding, [MASK]) gives that item probability 0 and no gradient.
    """
    return _FusedCrossEntropy.apply(hidden, weight, bias, targets)


class _FusedCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, block by block, its gradients; backward scales them."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
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
        return grad_hidden * scale, grad_weight * scale, grad_bias * scale, None
