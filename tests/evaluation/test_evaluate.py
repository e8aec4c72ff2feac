"""evaluate(): masking, filter_viewed, both protocols, seeded sampling, the report."""

import json

import numpy as np
import pytest
import torch
from tiny_corpus import tiny_corpus

from bert4rec.data.batches import prediction_inputs
from bert4rec.evaluation.protocols import (
    Protocol,
    evaluate,
    model_scorer,
    sample_negatives,
    train_item_counts,
    user_sample,
)
from bert4rec.model import BERT4Rec, BERT4RecConfig

# users 0 and 1 are evaluable; user 2 (two items) is training data only. Items 1..5, vocab 7.
SEQUENCES = [[1, 2, 3, 4, 2], [2, 3, 5, 1, 1], [5, 4]]


def descending(histories: torch.Tensor) -> torch.Tensor:
    """Score -index: padding (0) would win everything if the evaluator did not mask it."""
    return -torch.arange(7, dtype=torch.float32).expand(len(histories), -1)


def ranks_of(report) -> float:
    return report.metrics["MRR"]


def test_corpus_layout_is_what_the_tests_assume():
    corpus = tiny_corpus(SEQUENCES)
    assert corpus.vocab_size == 7
    test = corpus.split("test")
    assert test.targets.tolist() == [2, 1]
    assert corpus.split("valid").targets.tolist() == [4, 1]


def test_full_protocol_masks_padding_mask_and_seen_items_but_never_the_target():
    corpus = tiny_corpus(SEQUENCES)
    # test: user 0 history [1,2,3,4] target 2 (seen, still ranked): candidates 2, 5 -> rank 1.
    # user 1 history [2,3,5,1] target 1 (seen): candidates 1, 4 -> rank 1.
    report = evaluate(descending, corpus, "test", Protocol(ks=(1,)))
    assert report.metrics == {"NDCG@1": 1.0, "HR@1": 1.0, "MRR": 1.0}


def test_full_protocol_keeping_seen_items_ranks_them_and_says_so():
    corpus = tiny_corpus(SEQUENCES)
    # keeping seen items: user 0: item 1 beats 2 -> rank 2; user 1: target 1 is best -> rank 1
    kept = evaluate(descending, corpus, "test", Protocol(filter_viewed=False, ks=(1,)))
    assert kept.metrics["MRR"] == pytest.approx((1 / 2 + 1) / 2)
    assert kept.to_dict()["filter_viewed"] is False


def test_valid_split_uses_the_second_last_item_and_shorter_history():
    corpus = tiny_corpus(SEQUENCES)
    # valid: user 0 history [1,2,3] target 4: candidates 4, 5 -> rank 1;
    # user 1 history [2,3,5] target 1 -> rank 1. Keeping seen: user 0 -> 1,2,3 beat 4 -> rank 4.
    assert evaluate(descending, corpus, "valid").metrics["MRR"] == 1.0
    kept = evaluate(descending, corpus, "valid", Protocol(filter_viewed=False))
    assert kept.metrics["MRR"] == pytest.approx((1 / 4 + 1) / 2)
    assert kept.metrics["HR@1"] == pytest.approx(0.5)


def recorded_histories(corpus, split: str) -> torch.Tensor:
    """The histories `evaluate` hands its scorer in the first batch of `split`."""
    seen = []

    def recorder(histories):
        seen.append(histories.clone())
        return torch.zeros(len(histories), corpus.vocab_size)

    evaluate(recorder, corpus, split)
    return seen[0]


def test_scorer_gets_left_padded_histories_with_the_valid_item_in_test():
    corpus = tiny_corpus([[1, 2, 3, 4, 5], [3, 1, 2]])
    # as wide as the power of two at or above the longest, at least 8: few shapes
    assert recorded_histories(corpus, "test").tolist() == [
        [0, 0, 0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 0, 3, 1]]
    assert recorded_histories(corpus, "valid").tolist() == [
        [0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 3]]
    longer = recorded_histories(tiny_corpus([list(range(1, 12)), [3, 1, 2]]), "test")
    assert longer.shape == (2, 16) and longer[0].tolist() == [0] * 6 + list(range(1, 11))


def test_constant_scorer_is_not_flattered_by_ties():
    corpus = tiny_corpus(SEQUENCES)
    flat = evaluate(lambda h: torch.zeros(len(h), 7), corpus, "test",
                    Protocol(filter_viewed=False))
    # ties rank by index: user 0 target 2 -> rank 2 (item 1 first); user 1 target 1 -> rank 1
    assert flat.metrics["MRR"] == pytest.approx((1 / 2 + 1) / 2)


def test_scorer_with_wrong_shape_is_rejected_with_the_expected_shape():
    corpus = tiny_corpus(SEQUENCES)
    with pytest.raises(ValueError, match=r"expected floating scores of shape \[2, 7\]"):
        evaluate(lambda h: torch.zeros(len(h), 6), corpus)


@pytest.mark.parametrize(("options", "message"), [
    ({"name": "sample"},
     r"protocol must be one of \('full', 'sampled', 'cold'\), got 'sample'"),
    ({"name": "cold"}, "the cold protocol, and only it, takes cold_items"),
    ({"cold_items": (3, 4)}, "the cold protocol, and only it, takes cold_items"),
    ({"name": "sampled", "negatives": "pop"}, "negatives must be one of .*, got 'pop'"),
    ({"n_negatives": 0}, "n_negatives must be >= 1, got 0"),
    ({"ks": (10, 0)}, r"ks must be cut-offs >= 1, got \(10, 0\)"),
])
def test_a_bad_protocol_is_refused_when_made_naming_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**options)


@pytest.mark.parametrize(("options", "message"), [
    ({"split": "train"}, "split must be 'valid' or 'test', got 'train'"),
    ({"batch_size": 0}, "batch_size must be >= 1 and users >= 0 .*, got 0 and 0"),
])
def test_a_bad_option_is_rejected_naming_it(options, message):
    with pytest.raises(ValueError, match=message):
        evaluate(descending, tiny_corpus(SEQUENCES), **options)


def random_corpus(n_users=300, n_items=60, seed=1):
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)  # item 1 most popular
    p = popularity / popularity.sum()
    return tiny_corpus(
        [
            list(rng.choice(np.arange(1, n_items + 1), size=rng.integers(3, 20), p=p))
            for _ in range(n_users)
        ],
        name="random",
    )


@pytest.mark.parametrize("negatives", ["popular", "uniform"])
def test_sampled_negatives_never_target_or_history_and_exactly_n(negatives):
    corpus = random_corpus()
    data = corpus.split("test")
    rows = np.arange(len(data))
    counts = train_item_counts(corpus)
    weights = torch.ones(corpus.vocab_size, dtype=torch.float64)
    if negatives == "popular":
        weights = torch.from_numpy(counts).double()
    weights[[0, corpus.vocab_size - 1]] = 0
    allowed = sample_negatives(data, rows, weights, 20, (0, 0))
    assert allowed.sum(dim=1).tolist() == [20] * len(rows)
    assert not allowed[:, [0, corpus.vocab_size - 1]].any()
    for row in rows:
        drawn = set(torch.nonzero(allowed[row]).flatten().tolist())
        assert int(data.targets[row]) not in drawn
        assert not drawn & set(data.history(row).tolist())
        if negatives == "popular":
            assert all(counts[i] > 0 for i in drawn)


def test_popular_sampling_favours_popular_items():
    corpus = random_corpus()
    data = corpus.split("test")
    counts = torch.from_numpy(train_item_counts(corpus)).double()
    counts[[0, corpus.vocab_size - 1]] = 0
    rows = np.arange(len(data))
    drawn = sample_negatives(data, rows, counts, 10, (3, 0)).sum(dim=0)
    # how often each item could have been drawn: users without it in history or target
    seen = torch.zeros(len(rows), corpus.vocab_size, dtype=torch.bool)
    seen.scatter_(1, torch.from_numpy(data.padded(rows)), True)
    seen.scatter_(1, torch.from_numpy(data.targets)[:, None], True)
    rate = drawn / (~seen).sum(dim=0).clamp_min(1)
    top, rare = counts.argmax(), torch.where(counts > 0, counts, np.inf).argmin()
    assert counts[top] > 20 * counts[rare]
    assert rate[top] > 5 * rate[rare]


def test_sampled_protocol_reproducible_from_seed_and_independent_of_batch_size():
    corpus = random_corpus()
    scorer = lambda h: torch.from_numpy(  # noqa: E731 - a fixed random scorer
        np.random.default_rng(7).random(corpus.vocab_size)
    ).expand(len(h), -1)
    def run(seed, batch_size):
        return evaluate(scorer, corpus, "test", Protocol("sampled", n_negatives=20, seed=seed),
                        batch_size=batch_size)

    first = run(seed=5, batch_size=64)
    assert run(seed=5, batch_size=7).metrics == first.metrics
    assert run(seed=6, batch_size=64).metrics != first.metrics
    assert first.candidates == 21 and first.to_dict()["n_negatives"] == 20


def test_batches_hold_at_most_scores_per_batch_scores_and_the_metrics_stay(monkeypatch):
    corpus = random_corpus()  # vocab 62
    table = torch.from_numpy(np.random.default_rng(3).random(corpus.vocab_size))
    sizes = []

    def scorer(histories):
        sizes.append(len(histories))
        return table.expand(len(histories), -1)

    whole = evaluate(scorer, corpus, batch_size=512)
    assert max(sizes) > 100
    sizes.clear()
    monkeypatch.setattr("bert4rec.evaluation.protocols.SCORES_PER_BATCH", 62 * 10 + 61)
    capped = evaluate(scorer, corpus, batch_size=512)
    assert max(sizes) == 10 and capped.metrics == whole.metrics


def test_sampled_with_every_eligible_item_equals_full_ranking():
    corpus = tiny_corpus([[1, 2, 3, 4, 5], [2, 4, 6, 8, 1], [7, 6, 5, 3, 2]])
    scorer = lambda h: torch.tensor(  # noqa: E731
        [0.0, 0.3, 0.9, 0.1, 0.5, 0.5, 0.2, 0.8, 0.4, 0.0]
    ).expand(len(h), -1)
    # every user has 8 items, 4 in history + target: exactly 3 items left to sample
    full = evaluate(scorer, corpus)
    sampled = evaluate(scorer, corpus, "test", Protocol("sampled", "uniform", n_negatives=3))
    assert sampled.metrics == full.metrics
    with pytest.raises(ValueError, match="fewer than 4 items left to sample"):
        evaluate(scorer, corpus, "test", Protocol("sampled", "uniform", n_negatives=4))


def test_sampled_keeping_seen_items_draws_them_too_and_says_so():
    corpus = tiny_corpus([[1, 2, 3, 4, 5], [2, 4, 6, 8, 1], [7, 6, 5, 3, 2]])
    scorer = lambda h: torch.tensor(  # noqa: E731
        [0.0, 0.3, 0.9, 0.1, 0.5, 0.5, 0.2, 0.8, 0.4, 0.0]
    ).expand(len(h), -1)
    # seen items kept: every item but the target (8 - 1 = 7) can be drawn, so drawing all 7
    # ranks like the full protocol with seen items kept, and differently from excluding them
    full_kept = evaluate(scorer, corpus, "test", Protocol(filter_viewed=False))
    kept = evaluate(scorer, corpus, "test",
                    Protocol("sampled", "uniform", n_negatives=7, filter_viewed=False))
    assert kept.metrics == full_kept.metrics != evaluate(scorer, corpus).metrics
    assert kept.to_dict()["filter_viewed"] is False
    data = corpus.split("test")
    rows = np.arange(len(data))
    weights = torch.ones(corpus.vocab_size, dtype=torch.float64)
    weights[[0, corpus.vocab_size - 1]] = 0  # padding and [MASK]
    drawn = sample_negatives(data, rows, weights, 3, (0, 0), filter_viewed=False)
    history = torch.zeros_like(drawn).scatter_(1, torch.from_numpy(data.padded(rows)), True)
    assert (drawn & history)[:, 1:].any()  # some history item was drawn as a negative


def test_report_labels_protocol_and_serialises_flat():
    corpus = tiny_corpus(SEQUENCES)
    report = evaluate(descending, corpus, "valid", Protocol(ks=(5, 10)))
    record = json.loads(json.dumps(report.to_dict()))
    assert list(record) == [
        "protocol",
        "split",
        "filter_viewed",
        "users",
        "candidates",
        "NDCG@5",
        "HR@5",
        "NDCG@10",
        "HR@10",
        "MRR",
    ]
    assert record["protocol"] == "full" and record["filter_viewed"] is True
    assert record["users"] == 2 and record["candidates"] == 5
    assert report.label() == ("full ranking over 5 items, valid split, 2 users, viewed items "
                              "filtered")
    sampled = evaluate(descending, corpus, "test", Protocol("sampled", n_negatives=1, seed=3))
    assert sampled.label().startswith("sampled (1 popular negatives, seed 3), test split")


def test_test_split_excludes_the_validation_item_from_the_candidates():
    # user 0: valid target 1, test target 2; descending scores put item 1 above item 2.
    # user 1: test target 3 below its history 1, 2. User 2 (target 6) is never top.
    corpus = tiny_corpus([[3, 1, 2], [1, 2, 3], [4, 5, 6]])
    scorer = lambda h: -torch.arange(8.0).expand(len(h), -1)  # noqa: E731
    assert evaluate(scorer, corpus, "test", Protocol(ks=(1,))).metrics["HR@1"] == pytest.approx(
        2 / 3)
    kept = Protocol(filter_viewed=False, ks=(1,))
    assert evaluate(scorer, corpus, "test", kept).metrics["HR@1"] == 0.0


@pytest.mark.parametrize("width", [3, 40])
def test_model_scorer_scores_every_vocabulary_entry(width):
    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=50, max_len=10, hidden=8, heads=2))
    histories = torch.randint(1, 49, (6, width))
    scores = model_scorer(model, "cpu")(histories)
    assert scores.shape == (6, 50) and scores.dtype == torch.float32
    expected = model.eval()(prediction_inputs(histories, 10, 49))
    torch.testing.assert_close(scores, expected)


def thirty_items(n_users: int = 60) -> tuple:
    """Users of 6 distinct random items among 1..30 (vocab index = id) and a scorer that
    ranks lower indices first."""
    rng = np.random.default_rng(11)
    corpus = tiny_corpus([rng.choice(np.arange(1, 31), 6, replace=False).tolist()
                          for _ in range(n_users)])
    assert corpus.n_items == 30

    def lowest_first(histories):
        return -torch.arange(32, dtype=torch.float32).expand(len(histories), -1)

    return corpus, lowest_first


def test_a_user_sample_scores_only_the_sampled_users_and_says_so():
    corpus, scorer = thirty_items()
    report = evaluate(scorer, corpus, "valid", users=12, users_seed=4)
    data = corpus.split("valid")
    expected = []  # reciprocal ranks by hand: the target behind every unseen lower item
    for row in user_sample(60, 12, 4):
        history, target = set(data.history(row).tolist()), int(data.targets[row])
        expected.append(1 / (1 + sum(1 for i in range(1, target) if i not in history)))
    assert report.metrics["MRR"] == pytest.approx(np.mean(expected))
    record = report.to_dict()
    assert (record["users"], record["split_users"], record["users_seed"]) == (12, 60, 4)
    assert "valid split, 12 of 60 users (sample, seed 4)" in report.label()


def test_a_sample_as_large_as_the_split_is_the_full_evaluation():
    corpus, scorer = thirty_items()
    full = evaluate(scorer, corpus, "valid")
    assert "split_users" not in full.to_dict()
    assert evaluate(scorer, corpus, "valid", users=60, users_seed=4).to_dict() == full.to_dict()
    with pytest.raises(ValueError, match="users >= 0"):
        evaluate(scorer, corpus, "valid", users=-1)


def test_user_samples_are_fixed_by_their_seed():
    first = user_sample(1000, 100, 0)
    assert np.array_equal(first, user_sample(1000, 100, 0))
    assert len(np.unique(first)) == 100 and np.array_equal(first, np.sort(first))
    assert first.min() >= 0 and first.max() < 1000
    assert not np.array_equal(first, user_sample(1000, 100, 1))
    for size in (0, 50, 80):
        assert np.array_equal(user_sample(50, size, 3), np.arange(50))
