"""Ranking metrics against hand-computed cases, ties included."""

import math

import pytest
import torch

from bert4rec.evaluation.metrics import (
    hit_rate,
    metric_names,
    ndcg,
    ranking_metrics,
    reciprocal_rank,
    target_ranks,
)


def test_rank_counts_strictly_higher_scores():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.7, 0.2]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [3]  # 0.9 and 0.7 beat 0.3
    assert target_ranks(scores, torch.tensor([1])).tolist() == [1]
    assert target_ranks(scores, torch.tensor([0])).tolist() == [5]


def test_tie_with_smaller_index_pushes_target_down_larger_does_not():
    scores = torch.tensor([[0.1, 0.5, 0.5, 0.9], [0.1, 0.5, 0.5, 0.9]])
    ranks = target_ranks(scores, torch.tensor([2, 1]))
    # user 0: target 2 ties with item 1 (smaller) -> rank 3; user 1: target 1 ties with 2 -> rank 2
    assert ranks.tolist() == [3, 2]


def test_constant_scorer_ranks_target_by_index_not_first():
    scores = torch.zeros(3, 6)
    assert target_ranks(scores, torch.tensor([0, 3, 5])).tolist() == [1, 4, 6]


def test_excluded_items_are_not_candidates_but_target_always_is():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.7]])
    excluded = torch.tensor([[True, False, True, False]])
    # target 2 itself is marked excluded: still ranked; only items 1 and 3 beat it
    assert target_ranks(scores, torch.tensor([2]), excluded).tolist() == [3]
    assert target_ranks(scores, torch.tensor([3]), excluded).tolist() == [2]


def test_rank_tells_float64_scores_apart_that_float32_would_tie():
    scores = torch.tensor([[1.0, 2.0 + 1e-12, 2.0]], dtype=torch.float64)
    assert target_ranks(scores, torch.tensor([2])).tolist() == [2]


def test_rank_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[float("nan"), 1.0]]), torch.tensor([1]))


def test_rank_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        target_ranks(torch.zeros(2, 3), torch.tensor([0]))


def test_per_user_metric_values():
    ranks = torch.tensor([1, 3, 12])
    assert hit_rate(ranks, 10).tolist() == [1.0, 1.0, 0.0]
    assert ndcg(ranks, 10).tolist() == [1.0, 0.5, 0.0]
    assert ndcg(ranks, 2).tolist() == [1.0, 0.0, 0.0]
    assert reciprocal_rank(torch.tensor([1, 4, 10])).tolist() == [1.0, 0.25, 0.1]


def test_ranking_metrics_keys_are_metric_names_in_order():
    result = ranking_metrics(torch.tensor([1, 3, 12]), ks=(10, 1))
    assert list(result) == ["NDCG@1", "HR@1", "NDCG@10", "HR@10", "MRR"]
    assert list(result) == list(metric_names((10, 1)))
    assert list(ranking_metrics(torch.tensor([4]))) == list(metric_names())


def test_ranking_metrics_are_means_over_users():
    result = ranking_metrics(torch.tensor([1, 3, 12]), ks=(10, 1))
    assert result["HR@1"] == pytest.approx(1 / 3)
    assert result["NDCG@10"] == pytest.approx(0.5)
    assert result["HR@10"] == pytest.approx(2 / 3)
    assert result["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)
    # rank 2 at k=5: 1/log2(3)
    assert ranking_metrics(torch.tensor([2]), ks=(5,))["NDCG@5"] == pytest.approx(1 / math.log2(3))


def test_ranking_metrics_rejects_cut_offs_below_one():
    with pytest.raises(ValueError, match="positive integers"):
        ranking_metrics(torch.tensor([1]), ks=(0,))


def test_ranking_metrics_rejects_an_empty_evaluation():
    with pytest.raises(ValueError, match="zero users"):
        ranking_metrics(torch.tensor([], dtype=torch.long))
