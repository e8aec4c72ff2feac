"""Item co-occurrence: the pairs behind itemknn, and the PPMI embeddings BERT4Rec can start from."""

import numpy as np
import pytest
import torch
from planted import planted_corpus, tiny_settings

from bert4rec.data.cooccurrence import item_pairs, pair_counts, ppmi_embeddings
from bert4rec.data.corpus import Split
from bert4rec.model import ITEM_START_STD, BERT4Rec, BERT4RecConfig
from bert4rec.training.loop import TrainingRun
from bert4rec.training.runtime import Runtime


def split_of(*sequences: list[int]) -> Split:
    flat = np.array([i for seq in sequences for i in seq], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    return Split("train", np.arange(len(sequences)), flat, offsets, None)


def test_pairs_are_within_the_window_and_never_cross_users():
    earlier, later = item_pairs(split_of([1, 2, 3], [4, 5]), window=2)
    assert sorted(zip(earlier.tolist(), later.tolist(), strict=True)) == [
        (1, 2), (1, 3), (2, 3), (4, 5)]


def two_groups(n_users: int = 40) -> Split:
    """Users who watch items 1-3 together and users who watch items 4-7 together; item 8 is
    only ever alone. Vocabulary: 10 (8 items, padding, [MASK])."""
    rng = np.random.default_rng(0)
    groups = [[1, 2, 3], [4, 5, 6, 7]]
    return split_of(*[rng.permutation(groups[u % 2]).tolist() for u in range(n_users)], [8])


def cosine(vectors: torch.Tensor, a: int, b: int) -> float:
    return float(torch.nn.functional.cosine_similarity(vectors[a], vectors[b], dim=0))


def test_items_watched_together_get_nearby_vectors():
    vectors = ppmi_embeddings(two_groups(), vocab_size=10, dim=2)  # the two leading directions
    assert vectors.shape == (10, 2)
    within = [cosine(vectors, 1, 2), cosine(vectors, 2, 3), cosine(vectors, 4, 7)]
    across = [cosine(vectors, 1, 4), cosine(vectors, 3, 5)]
    assert min(within) > 0.99 and max(abs(c) for c in across) < 0.01


def test_items_never_seen_together_padding_and_mask_get_zero_rows():
    vectors = ppmi_embeddings(two_groups(), vocab_size=10, dim=4)
    assert not vectors[[0, 8, 9]].any()


def test_embeddings_are_deterministic_and_leave_the_callers_generator_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = ppmi_embeddings(two_groups(), vocab_size=10, dim=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first, ppmi_embeddings(two_groups(), vocab_size=10, dim=4))


def test_start_items_at_rescales_known_rows_and_keeps_the_others_random():
    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=10, max_len=4, hidden=4, heads=2))
    random_start = model.encoder.embeddings.item.weight.detach().clone()
    vectors = ppmi_embeddings(two_groups(), vocab_size=10, dim=4)
    model.start_items_at(vectors)
    weight = model.encoder.embeddings.item.weight.detach()
    assert torch.equal(weight[[0, 8, 9]], random_start[[0, 8, 9]])
    assert weight[1:8].std().item() == pytest.approx(ITEM_START_STD, rel=1e-4)
    assert cosine(weight, 1, 2) == pytest.approx(cosine(vectors, 1, 2), abs=1e-5)


@pytest.mark.parametrize(("item_lr", "moved"), [(0.0, False), (1.0, True)])
def test_item_lr_scales_the_item_embeddings_rate_only(item_lr, moved):
    settings = tiny_settings(**{"optim.item_init": "cooccurrence", "optim.item_lr": item_lr})
    run = TrainingRun(planted_corpus(n_users=50), settings, Runtime(torch.device("cpu")),
                      show_progress=False)
    items = run.model.encoder.embeddings.item.weight
    before_items, before_bias = items.detach().clone(), run.model.output_bias.detach().clone()
    inputs, labels = next(iter(run.loader))
    run.step(inputs, labels)
    assert torch.equal(items, before_items) is not moved
    assert not torch.equal(run.model.output_bias, before_bias)


def reference_counts(split: Split, vocab_size: int, window: int):
    """The cells and counts as they were computed before `pair_counts`: every pair at once."""
    earlier, later = item_pairs(split, window)
    rows, cols = np.concatenate([earlier, later]), np.concatenate([later, earlier])
    return np.unique(rows * vocab_size + cols, return_counts=True)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_pair_counts_merged_chunk_by_chunk_equal_counting_all_pairs_at_once(chunk):
    rng = np.random.default_rng(3)
    split = split_of(*[rng.integers(1, 9, size=n).tolist() for n in rng.integers(0, 12, 30)])
    codes, counts = pair_counts(split, 10, window=4, chunk=chunk)
    expected_codes, expected_counts = reference_counts(split, 10, 4)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(counts, expected_counts)
    assert counts.sum() == 2 * len(item_pairs(split, 4)[0])  # each pair once in each direction

