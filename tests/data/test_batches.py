"""Cloze masking statistics, training windows, prediction inputs and padding trims."""

from types import SimpleNamespace

import numpy as np
import torch

from bert4rec.config import MaskingSettings
from bert4rec.data.batches import (
    ClozeCollate,
    WindowDataset,
    cloze_mask,
    cut_windows,
    prediction_inputs,
    window_bounds,
)
from bert4rec.model import BERT4Rec, BERT4RecConfig

MASK = 999  # vocabulary of 1000: items 1..998


def training_windows(flat, offsets, max_len, windows_per_sequence=1, shift=None):
    """Every training window [N, max_len], left-padded: what `WindowDataset` cuts a batch at a
    time, all at once."""
    ends, sizes = window_bounds(offsets, max_len, windows_per_sequence, shift)
    return cut_windows(np.asarray(flat), ends, sizes, max_len)


def test_windows_keep_the_most_recent_items_left_padded():
    flat = np.arange(1, 21)
    offsets = np.array([0, 3, 3, 10, 20])  # lengths 3, 0, 7, 10
    np.testing.assert_array_equal(training_windows(flat, offsets, 4), [
        [0, 1, 2, 3], [7, 8, 9, 10], [17, 18, 19, 20],
    ])
    np.testing.assert_array_equal(training_windows(flat, offsets, 4, windows_per_sequence=3), [
        [0, 1, 2, 3], [7, 8, 9, 10], [17, 18, 19, 20],  # most recent window of each
        [0, 4, 5, 6], [13, 14, 15, 16],  # the window before it, where there is one
        [0, 0, 11, 12],
    ])


def test_shifted_windows_move_back_in_time_and_keep_their_count():
    flat = np.arange(1, 21)
    offsets = np.array([0, 3, 3, 10, 20])  # lengths 3, 0, 7, 10
    shifted = training_windows(flat, offsets, 4, windows_per_sequence=3,
                               shift=np.array([1, 0, 2, 5]))
    np.testing.assert_array_equal(shifted, [
        [0, 0, 1, 2], [5, 6, 7, 8], [12, 13, 14, 15],
        [0, 0, 0, 4], [0, 0, 0, 11],  # a window keeps at least the sequence's first item
        [0, 0, 0, 11],
    ])


def test_window_dataset_draws_new_offsets_each_epoch_only_where_items_are_to_spare():
    lengths = np.array([3, 12, 30])
    split = SimpleNamespace(flat=np.arange(1, lengths.sum() + 1),
                            offsets=np.concatenate([[0], np.cumsum(lengths)]))
    fixed = WindowDataset(split, 8, 2)
    every = np.arange(len(fixed))
    before = fixed.rows(every)
    fixed.set_epoch(5)
    assert torch.equal(fixed.rows(every), before)
    moving = WindowDataset(split, 8, 2, max_shift=6, seed=1)
    last_items = []
    for epoch in range(1, 41):
        moving.set_epoch(epoch)
        windows = moving.rows(every)
        assert windows.shape == before.shape
        np.testing.assert_array_equal(moving.lengths, (windows != 0).sum(dim=1))
        last_items.append(windows[:3, -1].tolist())  # the newest item of each sequence
    newest = np.array(last_items)  # [epochs, 3]; sequence ends at items 3, 15 and 45
    assert set(newest[:, 0]) == {3}, "a sequence shorter than the window never moves"
    assert set(newest[:, 1]) == set(range(11, 16)), "12 items in 8-item windows spare 4"
    assert set(newest[:, 2]) == set(range(39, 46)), "at most max_shift = 6 items back"
    again = WindowDataset(split, 8, 2, max_shift=6, seed=1)
    again.set_epoch(40)
    assert torch.equal(again.rows(every), moving.rows(every))


def test_loader_batches_are_the_windows_cut_on_demand():
    from torch.utils.data import DataLoader

    flat, offsets = np.arange(1, 61), np.array([0, 3, 3, 10, 41, 60])
    split = SimpleNamespace(flat=flat, offsets=offsets)
    dataset = WindowDataset(split, 8, 3, max_shift=5, seed=2)
    dataset.set_epoch(3)
    shift = np.random.default_rng([2, 3, 1]).integers(
        0, np.minimum(np.maximum(np.diff(offsets) - 8, 0), 5) + 1)
    every = training_windows(flat, offsets, 8, 3, shift)
    assert len(dataset) == len(every) == 8
    batches = [[4, 0, 7], [6], [1, 2, 3, 5]]
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=lambda rows: rows)
    for indices, rows in zip(batches, loader, strict=True):
        assert isinstance(rows, torch.Tensor) and rows.dtype == torch.int64
        np.testing.assert_array_equal(rows, every[indices])
    assert torch.equal(dataset[4], torch.from_numpy(every[4]))


def random_batch(rows: int = 4000, width: int = 50, shortest: int = 1) -> torch.Tensor:
    """Left-padded rows of random items with lengths shortest..width."""
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, MASK, (rows, width), generator=g)
    lengths = torch.randint(shortest, width + 1, (rows, 1), generator=g)
    return torch.where(torch.arange(width) >= width - lengths, items, 0)


def masked(items, **settings):
    g = torch.Generator().manual_seed(1)
    return cloze_mask(items, MaskingSettings(**settings), MASK, g)


def test_founding_document_masking_rates():
    items = random_batch()
    inputs, labels = masked(items, mask_prob=0.15, mask_token_share=0.8, random_token_share=0.1)
    targets, real = labels != 0, items != 0
    assert not (targets & ~real).any(), "padding is never a target"
    assert torch.equal(inputs[~real], items[~real]), "padding stays padding"
    assert targets.any(dim=1).all(), "every row has a target"
    assert torch.equal(labels[targets], items[targets])
    assert torch.equal(inputs[~targets], items[~targets])
    rate = targets.sum() / real.sum()
    assert 0.15 < rate < 0.17  # 0.15 plus the forced target of short rows that drew none
    as_mask = (inputs[targets] == MASK).float().mean()
    unchanged = (inputs[targets] == items[targets]).float().mean()
    assert abs(as_mask - 0.8) < 0.01 and abs(unchanged - 0.1) < 0.01
    randomised = inputs[targets][(inputs[targets] != MASK) & (inputs[targets] != items[targets])]
    assert ((randomised >= 1) & (randomised < MASK)).all()


def test_paper_masking_always_uses_the_mask_token():
    items = random_batch()
    inputs, labels = masked(items, mask_prob=0.2, mask_token_share=1.0, random_token_share=0.0)
    targets = labels != 0
    assert (inputs[targets] == MASK).all()
    assert abs(targets.sum() / (items != 0).sum() - 0.2) < 0.015


def test_last_item_samples_mask_only_the_final_item():
    items = random_batch(shortest=30)  # ordinary cloze rows almost never hide only the last
    inputs, labels = masked(items, mask_prob=0.15, mask_token_share=0.8, last_item_share=0.3)
    only_last = ((labels != 0).sum(dim=1) == 1) & (labels[:, -1] != 0) & (inputs[:, -1] == MASK)
    assert abs(only_last.float().mean() - 0.3) < 0.03
    rows = only_last.nonzero().squeeze(1)
    assert torch.equal(inputs[rows, :-1], items[rows, :-1])
    assert torch.equal(labels[rows, -1], items[rows, -1])


def test_last_item_prefixes_predict_the_next_item_of_a_random_prefix():
    items = random_batch(rows=2000, width=6, shortest=1)
    inputs, labels = masked(items, last_item_share=1.0, last_item_prefix=0.5)
    n = (items != 0).sum(dim=1)
    dropped = n - (inputs != 0).sum(dim=1)  # items cut from the end of each row
    assert torch.equal((labels != 0).sum(dim=1), torch.ones(len(items), dtype=torch.long))
    assert (inputs[:, -1] == MASK).all() and (dropped <= (n - 2).clamp(min=0)).all()
    for row in range(len(items)):
        kept = items[row, : items.shape[1] - int(dropped[row])]
        assert torch.equal(inputs[row, -len(kept) :][:-1], kept[:-1])  # the prefix, in place
        assert labels[row, -1] == kept[-1]  # the item right after it is the target
    full = n == 6  # half of these rows are cut, by 0..4 items with equal chance
    assert abs((dropped[full] > 0).float().mean() - 0.5 * 0.8) < 0.05
    assert set(dropped[full].tolist()) == {0, 1, 2, 3, 4}


def test_masking_is_reproducible_from_the_generator():
    items = random_batch(100)
    collate = ClozeCollate(MaskingSettings(), MASK)
    collate.generator.manual_seed(5)
    first = collate(items)
    collate.generator.manual_seed(5)
    second = collate(items)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_prediction_inputs_truncate_then_append_mask():
    out = prediction_inputs([[1, 2, 3], [], list(range(1, 10))], max_len=5, mask_token=MASK)
    assert out.tolist() == [[0, 1, 2, 3, MASK], [0, 0, 0, 0, MASK], [6, 7, 8, 9, MASK]]
    padded = torch.tensor([[0, 0, 0, 0, 1, 2, 3], [3, 4, 5, 6, 7, 8, 9]])  # [B, T]
    assert prediction_inputs(padded, 5, MASK).tolist() == [[0, 1, 2, 3, MASK], [6, 7, 8, 9, MASK]]
    assert prediction_inputs(torch.tensor([[4]]), 4, MASK).tolist() == [[0, 0, 4, MASK]]


def test_trim_padding_drops_only_all_padding_columns():
    from bert4rec.data.batches import trim_padding

    batch = torch.tensor([[0, 0, 0, 5, 6], [0, 0, 7, 8, 9]])
    assert trim_padding(batch).tolist() == [[0, 5, 6], [7, 8, 9]]
    assert trim_padding(torch.zeros(2, 4, dtype=torch.long)).shape == (2, 1)


def test_trimmed_batch_gives_the_same_predictions():
    from bert4rec.data.batches import trim_padding

    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=30, max_len=12, hidden=16, heads=2)).eval()
    batch = torch.tensor([[0] * 6 + [3, 4, 5, 6, 7, 29], [0] * 8 + [9, 10, 11, 29]])
    torch.testing.assert_close(model(batch), model(trim_padding(batch)))


LENGTHS = np.random.default_rng(0).integers(1, 200, size=1000)


def test_length_buckets_cover_each_window_once_across_ranks():
    from bert4rec.data.batches import LengthBucketSampler

    shards = [LengthBucketSampler(LENGTHS, 16, rank=r, world=2, seed=3) for r in (0, 1)]
    for sampler in shards:
        sampler.set_epoch(5)
    seen = [i for sampler in shards for batch in sampler for i in batch]
    assert sorted(seen) == list(range(1000)) and all(len(s) == len(list(s)) for s in shards)


def test_length_buckets_group_windows_of_similar_length():
    from bert4rec.data.batches import LengthBucketSampler

    spread = np.mean([np.ptp(LENGTHS[b]) for b in LengthBucketSampler(LENGTHS, 16, seed=3)])
    plain = np.mean([np.ptp(LENGTHS[b]) for b in LengthBucketSampler(LENGTHS, 16, chunk_batches=1)])
    assert spread < plain / 4


def test_collate_rounds_the_width_up_without_changing_the_masks():
    from bert4rec.data.batches import WIDTH_STEP, trim_padding

    windows = torch.zeros(3, 40, dtype=torch.long)
    windows[0, -11:], windows[1, -3:], windows[2, -7:] = (torch.arange(1, 12),
                                                          torch.arange(1, 4), torch.arange(1, 8))
    collate = ClozeCollate(MaskingSettings(), MASK)
    collate.generator.manual_seed(1)
    inputs, labels = collate(windows)
    assert inputs.shape == labels.shape == (3, 2 * WIDTH_STEP)  # 11 columns -> 16
    assert not inputs[:, :5].any() and not labels[:, :5].any()
    generator = torch.Generator().manual_seed(1)
    plain = cloze_mask(trim_padding(windows), MaskingSettings(), MASK, generator)
    assert torch.equal(inputs[:, 5:], plain[0]) and torch.equal(labels[:, 5:], plain[1])
    assert collate(windows[:, -12:])[0].shape == (3, 12)  # never wider than the windows


def test_padded_targets_keep_the_order_and_pad_with_ignored_labels():
    from bert4rec.data.batches import IGNORE, padded_targets

    labels = torch.tensor([[0, 5, 0, 7], [3, 0, 0, 9]])
    (rows, columns), targets = padded_targets(labels, step=8)
    assert rows.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert columns.tolist() == [1, 3, 0, 3, 0, 0, 0, 0]
    assert targets.tolist() == [5, 7, 3, 9] + [IGNORE] * 4
    assert len(padded_targets(labels, step=4)[1]) == 4


def test_padded_targets_give_the_loss_and_gradients_of_the_real_ones():
    from bert4rec.data.batches import padded_targets

    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(vocab_size=30, max_len=12, hidden=16, heads=2)).eval()
    items = torch.randint(1, 28, (6, 12))  # eval(): no dropout, so both passes are alike
    labels = torch.where(torch.rand(6, 12) < 0.3, items, 0)
    labels[:, -1] = items[:, -1]
    losses, grads = [], []
    for padded in (False, True):
        model.zero_grad()
        if padded:
            positions, targets = padded_targets(labels, step=64)
            loss = torch.nn.functional.cross_entropy(model(items, positions), targets)
        else:
            loss = torch.nn.functional.cross_entropy(model(items, labels != 0), labels[labels != 0])
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(losses[0], losses[1])
    for plain, padded in zip(*grads, strict=True):
        torch.testing.assert_close(plain, padded)
