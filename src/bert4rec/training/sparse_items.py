"""Sparse gradients for the item table of a large catalogue trained with a sampled loss.

A sampled-softmax step reads only the rows of its batch's items, targets and negatives, yet with
a dense gradient autograd materialises a [V, H] gradient and Adam reads and writes every row of
the table and of its two moments: at 10 million items x 64 that is 640M values three times a
step and 2.6 GB more memory. From `SPARSE_ITEMS_FROM` items on (docs/performance.md has the
measurement behind it) the table gets sparse gradients and "lazy Adam": `torch.optim.SparseAdam`
plus weight decay on the rows it touches, so a row absent from a step neither moves nor decays
its moments. The rest of the network keeps its dense Adam(W); `OptimizerPair` steps both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

SPARSE_ITEMS_FROM = 100_000
"""Items from which a sampled loss trains the item table with sparse gradients: the smallest
catalogue measured where they were faster (at 100k, 0.068 s a step against 0.093 s with
uniform negatives; at 27k, the size of ML-20M, 0.076 s against 0.055 s), so MovieLens-sized
catalogues keep plain Adam(W)."""


def sparse_items(loss: str, n_items: int, device: torch.device, world: int) -> bool:
    """Whether the item table trains with sparse gradients: a sampled `loss`, at least
    SPARSE_ITEMS_FROM items, on the CPU or one GPU (NCCL cannot all-reduce sparse gradients
    and MPS has no sparse kernels; those keep the dense table)."""
    where = device.type == "cpu" or (device.type == "cuda" and world == 1)
    return loss != "full" and n_items >= SPARSE_ITEMS_FROM and where


class LazyAdam(torch.optim.SparseAdam):
    """`torch.optim.SparseAdam` with weight decay on the rows of each step's sparse gradient:
    L2 added to the gradient (`decoupled=False`, as `torch.optim.Adam`) or the rows shrunk by
    lr * weight_decay before the update (`decoupled=True`, as `torch.optim.AdamW`). Each
    group's `weight_decay` is read at every step."""

    def __init__(self, groups: list[dict[str, Any]], lr: float,
                 betas: tuple[float, float], decoupled: bool) -> None:
        super().__init__(groups, lr=lr, betas=betas)
        self.decoupled = decoupled

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            decay = group.get("weight_decay", 0.0)
            for p in group["params"]:
                if p.grad is None or decay == 0:
                    continue
                p.grad = p.grad.coalesce()
                rows = p.grad.indices()[0]
                if self.decoupled:
                    p.index_copy_(0, rows, p[rows] * (1 - group["lr"] * decay))
                else:
                    p.grad = torch.sparse_coo_tensor(
                        p.grad.indices(), p.grad.values() + decay * p[rows], p.grad.shape,
                        is_coalesced=True, check_invariants=False)
        super().step()


class OptimizerPair:
    """Two optimisers stepped as one: `dense` for the network, `items` for the item table.
    The training loop sets rates through `param_groups` (both lists, dense first) and
    checkpoints `state_dict()` (`{"dense": ..., "items": ...}`)."""

    def __init__(self, dense: torch.optim.Optimizer, items: LazyAdam) -> None:
        self.dense, self.items = dense, items

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.dense.param_groups + self.items.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.items.zero_grad(set_to_none)

    def step(self) -> None:
        self.dense.step()
        self.items.step()

    def state_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.state_dict(), "items": self.items.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load what `state_dict()` gave; a dense-only optimiser's state is refused by name."""
        if set(state) != {"dense", "items"}:
            raise ValueError("the checkpoint's optimiser state is for a dense item table, "
                             "not for sparse item gradients")
        self.dense.load_state_dict(state["dense"])
        self.items.load_state_dict(state["items"])


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` for gradients dense or sparse: torch's own when all
    are dense (the usual step), else the same norm with sparse gradients coalesced, since
    torch's cannot take the norm of a sparse tensor. Returns the total norm."""
    params = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in params):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = []
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
        grads.append(p.grad)
    norm = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g.values() if g.is_sparse else g) for g in grads]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)
    return norm
