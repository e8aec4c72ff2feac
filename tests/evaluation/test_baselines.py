"""Baselines on a tiny corpus against hand-computed scores and ranks, and on real ML-1M."""

import itertools
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from tiny_corpus import tiny_corpus

from bert4rec.evaluation.baselines import ItemKNN, Markov, Popularity, fit_baseline
from bert4rec.evaluation.metrics import target_ranks
from bert4rec.evaluation.protocols import Protocol, evaluate

# Training part (all but the last two): [1,2,3], [2,3,1], [1,2,5], and user 3's whole [2,3].
# Item counts: 1:3, 2:4, 3:3, 4:0, 5:1. Transitions: 1->2 x2, 2->3 x3, 2->5, 3->1.
SEQUENCES = [[1, 2, 3, 1, 2], [2, 3, 1, 4, 3], [1, 2, 5, 3, 4], [2, 3]]


def ranks(scorer, corpus, split, filter_viewed):
    """Target ranks per user, computed independently of evaluate() with a per-user loop."""
    data = corpus.split(split)
    out = []
    for row in range(len(data)):
        history = data.history(row)
        scores = scorer(torch.from_numpy(history)[None, :])
        excluded = torch.zeros_like(scores, dtype=torch.bool)
        excluded[0, [0, corpus.vocab_size - 1]] = True
        if filter_viewed:
            excluded[0, torch.from_numpy(history)] = True
        out += target_ranks(scores, torch.tensor(data.targets[row : row + 1]), excluded).tolist()
    return out


def test_popularity_scores_are_training_counts_and_rank_ties_by_index():
    corpus = tiny_corpus(SEQUENCES)
    scorer = Popularity.fit(corpus)
    assert scorer(torch.zeros(2, 3, dtype=torch.long)).tolist() == [[0, 3, 4, 3, 0, 1, 0]] * 2
    # order 2, 1, 3 (ties 1 with 3: smaller index first), 5, 4; test targets 2, 3, 4
    assert ranks(scorer, corpus, "test", filter_viewed=False) == [1, 3, 5]
    assert ranks(scorer, corpus, "test", filter_viewed=True) == [1, 1, 1]
    report = evaluate(scorer, corpus, "test", Protocol(filter_viewed=False, ks=(1, 3)))
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
    assert ranks(scorer, corpus, "valid", filter_viewed=False) == [1, 5, 3]
    assert ranks(scorer, corpus, "valid", filter_viewed=True) == [1, 2, 1]
    report = evaluate(scorer, corpus, "valid", Protocol(ks=(1,)))
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

    for filter_viewed in (True, False):
        expected = ranks(scorer, corpus, "test", filter_viewed)
        report = evaluate(scorer, corpus, "test", Protocol(filter_viewed=filter_viewed),
                          batch_size=7)
        assert report.metrics["MRR"] == pytest.approx(np.mean([1 / r for r in expected]))
        assert report.metrics["HR@5"] == pytest.approx(np.mean([r <= 5 for r in expected]))


def ml1m_sequences(data_dir) -> dict[int, list[int]]:
    """Each user's items in file order, read from ml-1m.txt ("user item" lines) by plain Python."""
    sequences: dict[int, list[int]] = defaultdict(list)
    with open(data_dir / "ml-1m" / "ml-1m.txt") as handle:
        for line in handle:
            user, item = line.split()
            sequences[int(user)].append(int(item))
    return sequences


@pytest.fixture(scope="module")
def ml1m(data_dir):
    from bert4rec.data.cache import load_corpus
    from bert4rec.data.corpus import PrepareSettings

    settings = PrepareSettings(min_rating=None, min_user_interactions=0)  # no filtering
    return load_corpus(data_dir / "ml-1m" / "ml-1m.txt", settings, use_cache=False)


def independent_test_metrics(sequences: dict[int, list[int]], score_of) -> dict[str, float]:
    """NDCG@10, HR@10 and MRR of the test item (the last), seen items excluded, ties broken by
    smaller item id, from a per-user numpy loop that shares no code with evaluate().
    `score_of(history, counts)` gives each item id's score (an array indexed by id)."""
    ids = np.array(sorted({i for seq in sequences.values() for i in seq}))
    counts = np.zeros(ids.max() + 1)
    for seq in sequences.values():
        np.add.at(counts, seq[:-2], 1)  # the training part: all but the last two items
    ndcg, hits, reciprocal = [], [], []
    for seq in sequences.values():
        history, target = seq[:-1], seq[-1]
        scores = score_of(history, counts)
        candidates = ids[~np.isin(ids, history) | (ids == target)]
        higher = (scores[candidates] > scores[target]) | (
            (scores[candidates] == scores[target]) & (candidates < target))
        rank = 1 + int(higher.sum())
        ndcg.append(1 / np.log2(rank + 1) if rank <= 10 else 0.0)
        hits.append(rank <= 10)
        reciprocal.append(1 / rank)
    return {"NDCG@10": np.mean(ndcg), "HR@10": np.mean(hits), "MRR": np.mean(reciprocal)}


@pytest.mark.slow
@pytest.mark.realdata
def test_ml1m_popularity_full_ranking_equals_an_independent_count(ml1m, data_dir):
    """Popularity on ml-1m.txt, full ranking over 3416 items, test split, seen items excluded."""
    sequences = ml1m_sequences(data_dir)
    assert (ml1m.n_users, ml1m.n_items) == (len(sequences), 3416)
    report = evaluate(Popularity.fit(ml1m), ml1m, "test", Protocol("full", ks=(10,)))
    expected = independent_test_metrics(sequences, lambda history, counts: counts)
    assert report.users == 6040
    assert report.metrics == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
@pytest.mark.realdata
def test_ml1m_markov_full_ranking_equals_an_independent_count(ml1m, data_dir):
    """First-order Markov on ml-1m.txt: transitions out of the last item, popularity to break
    ties, full ranking, test split, seen items excluded."""
    sequences = ml1m_sequences(data_dir)
    following: dict[int, Counter] = defaultdict(Counter)
    for seq in sequences.values():
        for before, after in itertools.pairwise(seq[:-2]):
            following[before][after] += 1

    def markov(history, counts):
        scores = counts / (counts.max() + 1)
        for item, count in following[history[-1]].items():
            scores[item] += count
        return scores

    report = evaluate(Markov.fit(ml1m), ml1m, "test", Protocol(ks=(10,)))
    assert report.metrics == pytest.approx(independent_test_metrics(sequences, markov),
                                           abs=1e-9)


PAPER_POP_ML1M = {"HR@1": 0.0141, "HR@5": 0.0715, "HR@10": 0.1358, "NDCG@5": 0.0416,
                  "NDCG@10": 0.0621, "MRR": 0.0627}
"""The BERT4Rec paper's Table 2, POP on ML-1m (100 negatives sampled by popularity)."""


@pytest.mark.slow
@pytest.mark.realdata
def test_ml1m_popularity_sampled_matches_the_bert4rec_paper(ml1m):
    """100 popularity-sampled negatives, test split: each figure within three standard errors
    of the paper's. A metric averaged over n users with values in [0, 1] and mean m has a
    standard error of at most sqrt(m / n) (0.0047 for HR@10 = .1358 over 6040 users); the
    negatives are a random draw, so the paper's own figures carry that much noise."""
    report = evaluate(Popularity.fit(ml1m), ml1m, "test",
                      Protocol("sampled", "popular", n_negatives=100, seed=0, ks=(1, 5, 10)))
    for key, published in PAPER_POP_ML1M.items():
        tolerance = 3 * np.sqrt(published / report.users)
        assert abs(report.metrics[key] - published) < tolerance, key
