"""Ranking metrics for next-item prediction with one target per user, vectorised over users.

Everything starts from the target's rank among the candidates, computed by comparing every
candidate's score with the target's score (no sort of the catalogue):

    rank = 1 + #{candidates scored strictly higher}
             + #{candidates scored equally whose item index is smaller than the target's}

so ties are broken by item index, smaller index first. A tie with a smaller-index item pushes
the target down; a tie with a larger-index item does not. This is deterministic and never
flatters a model that gives every item the same score (its target ranks by index, not 1st).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)


def target_ranks(
    scores: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor | None = None
) -> torch.Tensor:
    """1-based rank of each user's target among the items not excluded.

    `scores` is [B, N] (any float dtype), `targets` is [B] item indices into the last axis,
    `excluded` an optional [B, N] bool mask of items that are not candidates. The target is
    always a candidate, even when `excluded` marks it. Returns a LongTensor [B].

    Example: scores [[0.1, 0.5, 0.5, 0.9]], target 2 -> item 3 is higher and item 1 ties with a
    smaller index, so the rank is 3; with target 1 the tie is with item 2 (larger), rank 2.
    """
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be [B, N] and targets [B]; got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a NaN cannot be ranked (check the scorer)")
    targets = targets.to(torch.long)
    target_scores = scores.gather(1, targets[:, None])  # [B, 1]
    index = torch.arange(scores.shape[1], device=scores.device)  # [N]
    smaller = index[None, :] < targets[:, None]  # [B, N]
    beats = (scores > target_scores) | ((scores == target_scores) & smaller)  # [B, N]
    if excluded is not None:
        beats &= ~excluded  # the target never beats itself, so its own mask bit is irrelevant
    return 1 + beats.sum(dim=1)


def hit_rate(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """HR@k per user: 1 if the target is in the top k, else 0 (= Recall@k with one target).

    HR@k = [rank <= k]. Example: ranks [1, 3, 12] give HR@10 = [1, 1, 0], mean 2/3.
    """
    return (ranks <= k).to(torch.float64)


def ndcg(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k per user with one relevant item: 1 / log2(rank + 1) if rank <= k, else 0.

    The ideal DCG is 1 (the target at rank 1), so NDCG = DCG. Example: ranks [1, 3, 12] give
    NDCG@10 = [1/log2(2), 1/log2(4), 0] = [1.0, 0.5, 0.0], mean 0.5.
    """
    gains = 1.0 / torch.log2(ranks.to(torch.float64) + 1.0)
    return torch.where(ranks <= k, gains, torch.zeros_like(gains))


def reciprocal_rank(ranks: torch.Tensor) -> torch.Tensor:
    """Reciprocal rank per user: 1 / rank, uncut (MRR is its mean).

    Example: ranks [1, 4, 10] give [1.0, 0.25, 0.1], MRR = 1.35 / 3 = 0.45.
    """
    return 1.0 / ranks.to(torch.float64)


def metric_names(ks: Iterable[int] = DEFAULT_KS) -> tuple[str, ...]:
    """The keys of `ranking_metrics(ranks, ks)`, in its order: NDCG@k and HR@k per k, then MRR."""
    return (*(f"{name}@{k}" for k in sorted(set(ks)) for name in ("NDCG", "HR")), "MRR")


def ranking_metrics(ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean NDCG@k and HR@k for every k, and MRR, over users: {"NDCG@10": ..., "MRR": ...}.

    Example: ranks [1, 3, 12] with ks (10,) give
    {"NDCG@10": 0.5, "HR@10": 0.6667, "MRR": (1 + 1/3 + 1/12) / 3 = 0.4722}.
    """
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    if ranks.numel() == 0:
        raise ValueError("no ranks to average: the evaluation covered zero users")
    result: dict[str, float] = {}
    for k in sorted(set(ks)):
        result[f"NDCG@{k}"] = ndcg(ranks, k).mean().item()
        result[f"HR@{k}"] = hit_rate(ranks, k).mean().item()
    result["MRR"] = reciprocal_rank(ranks).mean().item()
    assert all(math.isfinite(v) for v in result.values())
    return result
