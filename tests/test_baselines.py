"""Baselines on a tiny corpus against hand-computed scores and ranks, and on real ML-1M."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_corpus import tiny_corpus

from bert4rec.baselines import ItemKNN, Markov, Popularity, fit_baseline
from bert4rec.evaluate import evaluate
from bert4rec.metrics import target_ranks

# Training part (all but the last two): [1,2,3], [2,3,1], [1,2,5], and user 3's whole [2,3].
# Item counts: 1:3, 2:4, 3:3, 4:0, 5:1. Transitions: 1->2 x2, 2->3 x3, 2->5, 3->1.
SEQUENCES = [[1, 2, 3, 1, 2], [2, 3, 1, 4, 3], [1, 2, 5, 3, 4], [2, 3]]


def ranks(scorer, corpus, split, exclude_seen):
    """Target ranks per user, computed independently of evaluate() with a per-user loop."""
    data = corpus.split(split)
    out = []
    for row in range(len(data)):
        history = data.history(row)
        scores = scorer(torch.from_numpy(history)[None, :])
        excluded = torch.zeros_like(scores, dtype=torch.bool)
        excluded[0, [0, corpus.vocab_size - 1]] = True
        if exclude_seen:
            excluded[0, torch.from_numpy(history)] = True
        out += target_ranks(scores, torch.tensor(data.targets[row : row + 1]), excluded).tolist()
    return out


def test_popularity_scores_are_training_counts_and_rank_ties_by_index():
    corpus = tiny_corpus(SEQUENCES)
    scorer = Popularity.fit(corpus)
    assert scorer(torch.zeros(2, 3, dtype=torch.long)).tolist() == [[0, 3, 4, 3, 0, 1, 0]] * 2
    # order 2, 1, 3 (ties 1 with 3: smaller index first), 5, 4; test targets 2, 3, 4
    assert ranks(scorer, corpus, "test", exclude_seen=False) == [1, 3, 5]
    assert ranks(scorer, corpus, "test", exclude_seen=True) == [1, 1, 1]
    report = evaluate(scorer, corpus, "test", exclude_seen=False, ks=(1, 3))
    assert report.metrics["HR@3"] == pytest.approx(2 / 3)
    assert report.metrics["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 5) / 3)


def test_markov_scores_follow_the_last_item_with_popularity_tie_break():
    corpus = tiny_corpus(SEQUENCES)
    scorer = Markov.fit(corpus)
    # last item 1: 1->2 twice, plus popularity / (max 4 + 1)
    expected = [0, 0.6, 2 + 0.8, 0.6, 0, 0.2, 0]
    assert scorer(torch.tensor([[0, 3, 1]])).tolist() == [pytest.approx(expected)]
    # empty history: pure popularity
    assert scorer(torch.tensor([[0, 0]])).tolist() == [pytest.approx([0, 0.6, 0.8, 0.6, 0, 0.2, 0])]
    # valid: last items 3, 1, 5 -> targets 1 (3->1), 4 (after 2, 1, 3, 5), 3 (popularity)
    assert ranks(scorer, corpus, "valid", exclude_seen=False) == [1, 5, 3]
    assert ranks(scorer, corpus, "valid", exclude_seen=True) == [1, 2, 1]
    report = evaluate(scorer, corpus, "valid", ks=(1,))
    assert report.metrics == pytest.approx({"NDCG@1": 2 / 3, "HR@1": 2 / 3, "MRR": 2.5 / 3})


def test_item_knn_sums_cooccurrence_of_recent_items():
    corpus = tiny_corpus(SEQUENCES)
    scorer = ItemKNN.fit(corpus, window=2)
    # pairs within 2 positions, unordered: {1,2} x3, {2,3} x3, {1,3} x2, {1,5} x1, {2,5} x1.
    # history [.., 5, 3]: row 5 = {1: 1, 2: 1} plus row 3 = {1: 2, 2: 3}
    scores = scorer(torch.tensor([[0, 5, 3]]))[0] - torch.tensor(
        [0, 0.6, 0.8, 0.6, 0, 0.2, 0], dtype=torch.float64
    )
    assert scores.tolist() == pytest.approx([0, 3, 4, 0, 0, 0, 0])


def test_fit_baseline_names():
    corpus = tiny_corpus(SEQUENCES)
    assert isinstance(fit_baseline("markov", corpus), Markov)
    with pytest.raises(ValueError, match="unknown baseline 'pop'; expected one of popular"):
        fit_baseline("pop", corpus)


def test_evaluate_agrees_with_a_per_user_loop_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    corpus = tiny_corpus([list(rng.integers(1, 30, rng.integers(3, 12))) for _ in range(80)])
    table = torch.from_numpy(rng.integers(0, 6, (1000, corpus.vocab_size)).astype(np.float32))

    def scorer(histories):  # deterministic in the history, many ties
        return table[histories.sum(dim=1) % 1000]

    for exclude_seen in (True, False):
        expected = ranks(scorer, corpus, "test", exclude_seen)
        report = evaluate(scorer, corpus, "test", exclude_seen=exclude_seen, batch_size=7)
        assert report.metrics["MRR"] == pytest.approx(np.mean([1 / r for r in expected]))
        assert report.metrics["HR@5"] == pytest.approx(np.mean([r <= 5 for r in expected]))


def ml1m_corpus():
    root = os.environ.get("BERT4REC_DATA_DIR")
    path = Path(root or "") / "ml-1m" / "ml-1m.txt"
    if not root or not path.is_file():
        pytest.skip("real data absent: set BERT4REC_DATA_DIR to the folder holding ml-1m/")
    from bert4rec.data.cache import load_corpus
    from bert4rec.data.corpus import PrepareSettings

    settings = PrepareSettings(min_rating=None, min_user_interactions=0)  # no filtering
    return load_corpus(path, settings, use_cache=False)


@pytest.fixture(scope="module")
def ml1m():
    return ml1m_corpus()


def test_ml1m_popularity_full_ranking_test_metrics(ml1m):
    """Popularity on ml-1m.txt, full ranking over 3416 items, test split, seen items excluded."""
    assert (ml1m.n_users, ml1m.n_items, ml1m.n_interactions) == (6040, 3416, 999611)
    report = evaluate(Popularity.fit(ml1m), ml1m, "test", protocol="full", exclude_seen=True)
    assert report.users == 6040
    got = {key: round(value, 4) for key, value in report.metrics.items()}
    assert got == {
        "NDCG@1": 0.0058,
        "HR@1": 0.0058,
        "NDCG@5": 0.0126,
        "HR@5": 0.0200,
        "NDCG@10": 0.0180,
        "HR@10": 0.0369,
        "NDCG@20": 0.0258,
        "HR@20": 0.0682,
        "MRR": 0.0199,
    }


def test_ml1m_popularity_sampled_matches_the_bert4rec_paper(ml1m):
    """100 popularity-sampled negatives (seed 0), test split: the BERT4Rec paper's Table 2 POP
    row on ML-1m is HR@1 .0141, HR@5 .0715, HR@10 .1358, NDCG@5 .0416, NDCG@10 .0621, MRR .0627."""
    report = evaluate(
        Popularity.fit(ml1m),
        ml1m,
        "test",
        protocol="sampled",
        negatives="popular",
        n_negatives=100,
        seed=0,
        ks=(1, 5, 10),
    )
    got = {key: round(value, 4) for key, value in report.metrics.items()}
    assert got == {
        "NDCG@1": 0.0137,
        "HR@1": 0.0137,
        "NDCG@5": 0.0416,
        "HR@5": 0.0709,
        "NDCG@10": 0.0620,
        "HR@10": 0.1343,
        "MRR": 0.0632,
    }
    paper = {
        "HR@1": 0.0141,
        "HR@5": 0.0715,
        "HR@10": 0.1358,
        "NDCG@5": 0.0416,
        "NDCG@10": 0.0621,
        "MRR": 0.0627,
    }
    assert all(abs(got[key] - value) < 0.003 for key, value in paper.items())


def test_ml1m_markov_full_ranking_test_metrics(ml1m):
    """First-order Markov on ml-1m.txt, full ranking, test split, seen items excluded."""
    report = evaluate(Markov.fit(ml1m), ml1m, "test", ks=(10,))
    got = {key: round(value, 4) for key, value in report.metrics.items()}
    assert got == {"NDCG@10": 0.1259, "HR@10": 0.2144, "MRR": 0.1097}
