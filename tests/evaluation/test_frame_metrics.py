"""bert4rec.metrics on recommendation frames: hand-computed values, the built-in evaluator's
figures for one held-out item per user, pandas frames, and mix-ups named."""

import math

import polars as pl
import pytest
import torch

import bert4rec
from bert4rec.errors import DataError
from bert4rec.evaluation.metrics import ranking_metrics

M = bert4rec.metrics
RECS = pl.DataFrame({"user": [1, 1, 1, 2, 2, 2], "item": [10, 11, 12, 10, 13, 14],
                     "rank": [1, 2, 3, 1, 2, 3]})
# user 1 wants 11 (hit at 2) and 99 (never offered); user 2 wants 14 (hit at 3); user 3 has
# no recommendations and wants 10: a miss, counted
TEST = pl.DataFrame({"user": [1, 1, 2, 3], "item": [11, 99, 14, 10]})


def g(rank: int) -> float:
    return 1 / math.log2(rank + 1)


def test_accuracy_by_hand():
    assert M.ndcg(RECS, TEST, k=3) == pytest.approx((g(2) / (g(1) + g(2)) + g(3)) / 3)
    assert M.hit_rate(RECS, TEST, k=3) == pytest.approx(2 / 3)
    assert M.recall(RECS, TEST, k=3) == pytest.approx((1 / 2 + 1) / 3)
    assert M.mrr(RECS, TEST, k=3) == pytest.approx((1 / 2 + 1 / 3) / 3)
    assert M.hit_rate(RECS, TEST, k=2) == pytest.approx(1 / 3)  # rank 3 is past k
    assert M.ndcg(RECS, TEST, k=1) == 0.0


def test_beyond_accuracy_by_hand():
    assert M.coverage(RECS, 10, k=1) == 0.1  # item 10 only
    assert M.coverage(RECS, [10, 11, 12, 13, 14, 15], k=3) == pytest.approx(5 / 6)
    train = pl.DataFrame({"item": [10, 10, 10, 11, 12, 13]})
    # catalogue of 6: counts 10:3, 11:1, 12:1, 13:1, and two items never in train (0)
    # item 10 beats the 5 others and ties itself: 5.5 of 6; each of 11-13 beats the two
    # unseen and ties three (itself counted): 3.5 of 6; unseen 14 ties two: 1 of 6
    assert M.popularity(RECS, train, k=1, catalog=6) == pytest.approx(100 * 5.5 / 6)
    expected = 100 * (2 * 5.5 + 3 * 3.5 + 1) / 6 / 6  # six recommendations at ranks 1-3
    with_14 = [10, 11, 12, 13, 14, 15]
    assert M.popularity(RECS, train, k=3, catalog=with_14) == pytest.approx(expected)
    assert M.popularity(RECS, train, k=3, catalog=6) == pytest.approx(expected)


def test_compute_names_every_metric_at_every_k():
    train = pl.DataFrame({"item": [10, 11]})
    result = M.compute(RECS, TEST, ks=(3, 1), train=train, catalog=20)
    assert list(result) == ["NDCG@1", "HR@1", "Recall@1", "NDCG@3", "HR@3", "Recall@3", "MRR@3",
                            "Coverage@1", "Popularity@1", "Coverage@3", "Popularity@3"]
    assert result["MRR@3"] == M.mrr(RECS, TEST, k=3)


def test_one_held_out_item_per_user_gives_the_built_in_metrics():
    """With one target per user the frame metrics are `ranking_metrics` of the target ranks
    (MRR cut at k), whatever the ranks."""
    ranks = torch.tensor([1, 3, 12, 7, 2, 40])
    users = range(len(ranks))
    recs = pl.DataFrame({"user": [u for u in users for _ in range(20)],
                         "item": [1000 + r for _ in users for r in range(1, 21)],
                         "rank": [r for _ in users for r in range(1, 21)]})
    test = pl.DataFrame({"user": list(users), "item": [1000 + int(r) for r in ranks]})
    built_in = ranking_metrics(ranks, ks=(1, 5, 10, 20))
    frame = M.compute(recs, test, ks=(1, 5, 10, 20))
    for k in (1, 5, 10, 20):
        assert frame[f"NDCG@{k}"] == pytest.approx(built_in[f"NDCG@{k}"])
        assert frame[f"HR@{k}"] == frame[f"Recall@{k}"] == pytest.approx(built_in[f"HR@{k}"])
    cut = (1.0 / ranks.double()).where(ranks <= 20, torch.tensor(0.0, dtype=torch.float64))
    assert frame["MRR@20"] == pytest.approx(cut.mean().item())


def test_pandas_frames_and_other_column_names():
    pytest.importorskip("pandas")
    recs = RECS.rename({"user": "uid", "item": "sku", "rank": "pos"}).to_pandas()
    test = TEST.rename({"user": "uid", "item": "sku"}).to_pandas()
    assert M.ndcg(recs, test, k=3, user="uid", item="sku", rank="pos") == M.ndcg(RECS, TEST, 3)


def test_an_item_listed_twice_counts_once_and_int_widths_match():
    again = RECS.filter(pl.col("item") == 11).with_columns(rank=pl.lit(3, pl.Int64))
    twice = pl.concat([RECS, again])
    assert M.recall(twice, TEST, k=3) == M.recall(RECS, TEST, k=3)
    narrow = RECS.with_columns(pl.col("user", "item").cast(pl.Int32))
    assert M.ndcg(narrow, TEST, k=3) == M.ndcg(RECS, TEST, k=3)


def test_mix_ups_are_named():
    with pytest.raises(DataError, match=r"recs: no column\(s\) 'rank'"):
        M.ndcg(RECS.drop("rank"), TEST)
    with pytest.raises(DataError, match=r"'item'.*Int64 in recs.*String in test"):
        M.ndcg(RECS, TEST.with_columns(pl.col("item").cast(pl.String)))
    with pytest.raises(ValueError, match="k must be a positive whole number"):
        M.ndcg(RECS, TEST, k=0)
    with pytest.raises(ValueError, match="test holds no events"):
        M.ndcg(RECS, TEST.clear())
