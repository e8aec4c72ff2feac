"""Model inputs, one builder per phase: cloze batches for training, history + [MASK] for prediction.

Everything is **left-padded** with 0: the most recent item sits in the last column. Sequences
longer than the model's `max_len` keep their most recent items. Masking is vectorised (torch),
with an explicit generator so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from bert4rec.config import MaskingSettings
from bert4rec.data.corpus import flatten, left_pad_ranges
from bert4rec.data.corpus import left_pad as corpus_left_pad
from bert4rec.data.vocab import PAD

WIDTH_STEP = 8
"""Training batches are as wide as their longest window, rounded up to a multiple of this
(at most max_len), so that only a few tensor widths recur."""
TARGET_STEP = 128
"""The masked targets of a training batch are padded to a multiple of this many (ignored)."""
IGNORE = -100
"""The label of a padding target: `F.cross_entropy` skips it (its default `ignore_index`)."""


def window_bounds(
    offsets: np.ndarray, max_len: int, windows_per_sequence: int = 1,
    shift: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the training windows of ragged sequences lie in their flat array: `(ends, sizes)`,
    each [N] int64, the exclusive end of each window and its number of real items (<= max_len).

    The first window of a sequence holds its `max_len` most recent items; further windows
    (up to `windows_per_sequence`) hold the `max_len` items before that, and so on. `shift`
    ([U], optional) moves every window of a sequence that many items back in time, but never
    so far that a window loses its last item. Empty sequences give no window. Windows are
    grouped by window number, then by sequence. Two numbers per window, whatever `max_len`:
    the rows themselves are cut when a batch asks for them (`cut_windows`).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)  # [U]
    shift = np.zeros_like(lengths) if shift is None else np.asarray(shift, dtype=np.int64)
    ends, sizes = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for w in range(windows_per_sequence):
        end = lengths - w * max_len  # [U] exclusive end within each sequence
        keep = end > 0
        end = end[keep] - np.minimum(shift[keep], end[keep] - 1)  # moved back, >= 1 item kept
        ends.append(offsets[:-1][keep] + end)
        sizes.append(np.minimum(end, max_len))
    return np.concatenate(ends), np.concatenate(sizes)


def cut_windows(flat: np.ndarray, ends: np.ndarray, sizes: np.ndarray,
                max_len: int) -> np.ndarray:
    """The windows ending at flat positions `ends` [B] with `sizes` [B] real items, as rows
    [B, max_len] int64 left-padded with 0."""
    return left_pad_ranges(flat, ends - sizes, ends, max_len)


class WindowDataset(Dataset):
    """The training windows of a `Split` (flat items + offsets), cut a batch at a time.

    It holds the split's flat array and two numbers per window (`window_bounds`); a batch of
    indices becomes a LongTensor [B, max_len] in `__getitems__`, which the DataLoader calls
    with each batch, so no copy of every sequence is ever made. With `max_shift > 0` each
    epoch moves its windows afresh (`set_epoch`): the windows of a sequence longer than
    `max_len` move back in time by a number of items drawn uniformly from 0 to `max_shift`
    (never past the sequence's first item; seeded by seed and epoch), so the model does not
    see the same windows every epoch. The number of windows stays fixed.
    """

    def __init__(self, split, max_len: int, windows_per_sequence: int = 1, *,
                 max_shift: int = 0, seed: int = 0, min_items: int = 1) -> None:
        self.flat, self.offsets = np.asarray(split.flat), split.offsets
        self.max_len, self.per_sequence = max_len, windows_per_sequence
        self.max_shift, self.seed, self.min_items = max_shift, seed, min_items
        self._place(None)

    def set_epoch(self, epoch: int) -> None:
        """Place this epoch's windows; nothing changes when `max_shift` is 0."""
        if self.max_shift > 0:
            room = np.maximum(np.diff(self.offsets) - self.max_len, 0)  # [U] items to spare
            rng = np.random.default_rng([self.seed, epoch, 1])  # 1: not the sampler's stream
            self._place(rng.integers(0, np.minimum(room, self.max_shift) + 1))

    def _place(self, shift: np.ndarray | None) -> None:
        ends, lengths = window_bounds(self.offsets, self.max_len, self.per_sequence, shift)
        kept = lengths >= self.min_items  # a next-item window needs two items
        self.ends, self.lengths = ends[kept], lengths[kept]  # [N] each; lengths: real items

    def rows(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Windows `indices` as a LongTensor [len(indices), max_len], left-padded."""
        indices = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(cut_windows(self.flat, self.ends[indices],
                                            self.lengths[indices], self.max_len))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.rows([index])[0]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        """A whole batch at once (the DataLoader's batched fetch): [B, max_len]."""
        return self.rows(indices)


def cloze_mask(
    items: torch.Tensor, masking: MaskingSettings, mask_token: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide training targets in a left-padded batch; returns `(inputs, labels)`, both [B, T].

    Each non-padding position is a target with probability `mask_prob` (at least one per row);
    a target becomes [MASK] (share `mask_token_share`), a random item (`random_token_share`) or
    stays. A share `last_item_share` of rows instead hide only their final item, always as
    [MASK]; a share `last_item_prefix` of those first drop their newest 0..n-2 items (uniform),
    so they predict the next item of a random prefix. `labels` holds the true item at targets
    and 0 elsewhere.
    """
    real = items != PAD  # [B, T]
    b, t = items.shape

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=items.device)

    targets = real & (uniform(b, t) < masking.mask_prob)  # [B, T]
    empty = ~targets.any(dim=1)  # rows that drew no target get one real position at random
    pick = torch.where(real, uniform(b, t), -1.0).argmax(dim=1)  # [B]
    targets[empty, pick[empty]] = True
    last_only = uniform(b) < masking.last_item_share  # [B]
    if masking.last_item_prefix > 0:
        cut = last_only & (uniform(b) < masking.last_item_prefix)
        items = _drop_newest(items, real.sum(dim=1), cut, uniform(b))
    targets[last_only] = False
    targets[last_only, -1] = True

    how = uniform(b, t)  # [B, T] decides [MASK] / random / unchanged per target
    to_mask = targets & ((how < masking.mask_token_share) | last_only[:, None])
    to_random = targets & ~to_mask & (how < masking.mask_token_share + masking.random_token_share)
    random_items = torch.randint(1, mask_token, (b, t), generator=generator, device=items.device)
    inputs = torch.where(to_mask, mask_token, torch.where(to_random, random_items, items))
    labels = torch.where(targets, items, PAD)
    return inputs, labels


def _drop_newest(items: torch.Tensor, n: torch.Tensor, rows: torch.Tensor,
                 draw: torch.Tensor) -> torch.Tensor:
    """Shift the chosen `rows` of a left-padded batch [B, T] right by a uniform number of items
    in 0..n-2 (`draw` in [0, 1) per row; `n` [B] real items), padding on the left: the row ends
    on the item before the dropped ones and keeps at least two."""
    drop = torch.where(rows, (draw * (n - 1).clamp(min=1)).long(), 0)  # [B]
    source = torch.arange(items.shape[1], device=items.device) - drop[:, None]  # [B, T]
    return torch.where(source >= 0, items.gather(1, source.clamp(min=0)), PAD)


class ClozeCollate:
    """`collate_fn` for a DataLoader over `WindowDataset`: masks a batch of windows [B, T]
    (what `WindowDataset.__getitems__` returns) with `cloze_mask`, trimmed of its all-padding
    columns and then left-padded to a multiple of WIDTH_STEP columns (`round_width`).

    Owns the generator: the training loader seeds it once per run (`.generator.manual_seed`),
    so each epoch's masks follow from the previous epoch's draws; a checkpoint stores its
    state, so a resumed run masks exactly as an uninterrupted one.
    """

    def __init__(self, masking: MaskingSettings, mask_token: int) -> None:
        self.masking = masking
        self.mask_token = mask_token
        self.generator = torch.Generator()

    def __call__(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = cloze_mask(trim_padding(windows), self.masking, self.mask_token,
                                    self.generator)
        width = min(-(-inputs.shape[1] // WIDTH_STEP) * WIDTH_STEP, windows.shape[1])
        return round_width(inputs, width), round_width(labels, width)


class NextItemCollate:
    """`collate_fn` for a causal model: each window [T] becomes its first T - 1 items as input
    and, at every real input position, the item that follows as the label (SASRec's training:
    a target at every position, where the cloze task has one in five). Trimmed and rounded
    in width as `ClozeCollate` does; its generator is unused but checkpointed alike."""

    def __init__(self) -> None:
        self.generator = torch.Generator()

    def __call__(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trimmed = trim_padding(windows)
        inputs = trimmed[:, :-1]
        labels = torch.where(inputs != PAD, trimmed[:, 1:], PAD)
        width = min(-(-inputs.shape[1] // WIDTH_STEP) * WIDTH_STEP, windows.shape[1] - 1)
        return round_width(inputs, width), round_width(labels, width)


def round_width(batch: torch.Tensor, width: int) -> torch.Tensor:
    """A left-padded batch [B, T] left-padded further to [B, width] (width >= T).

    Masking draws its random numbers on the trimmed batch, so the masks do not depend on
    this; padding columns change no output (positions count back from the end) but keep
    the set of tensor shapes small: glibc's malloc then reuses freed blocks instead of
    fragmenting its heap with a new size every step (docs/performance.md, "Memory").
    """
    return F.pad(batch, (width - batch.shape[1], 0), value=PAD)


def padded_targets(labels: torch.Tensor, step: int = TARGET_STEP
                   ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The targets of a cloze batch (`labels` [B, T], 0 where nothing is predicted) as
    `((rows, columns), target_labels)`, each [N'] with N' the number of targets rounded up
    to a multiple of `step`, in the order of `labels != 0`.

    The padding entries point at position (0, 0) with label IGNORE, which the cross-entropy
    skips: the loss and its gradients are those of the N real targets, but the output
    layer's [N', V] logits take few distinct sizes, which the C allocator reuses.
    """
    rows, columns = (labels != PAD).nonzero(as_tuple=True)  # [N] each, row-major
    extra = -len(rows) % step
    target_labels = F.pad(labels[rows, columns], (0, extra), value=IGNORE)
    return (F.pad(rows, (0, extra)), F.pad(columns, (0, extra))), target_labels


def target_inputs(inputs: torch.Tensor, positions: tuple[torch.Tensor, torch.Tensor],
                  causal: bool) -> torch.Tensor:
    """Each target's own input items [N', T] (`optim.exclude_history`): the whole input row
    of a cloze target (a random item the masking put there included), or the items up to its
    position for a causal one (what it has seen); padding and later positions are PAD."""
    rows, columns = positions
    items = inputs[rows]
    if causal:
        later = torch.arange(inputs.shape[1], device=inputs.device)[None, :] > columns[:, None]
        items = items.masked_fill(later, PAD)
    return items


def trim_padding(batch: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are padding in every row of a left-padded batch.

    Positions count back from the last column, so every real item keeps its position and the
    model's outputs are unchanged; the work on all-padding columns is simply not done.
    """
    real_columns = (batch != PAD).any(dim=0)  # [T]
    first = int(real_columns.int().argmax()) if bool(real_columns.any()) else batch.shape[1] - 1
    return batch[:, first:]


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of windows of similar length, so that trimmed batches carry little padding.

    Each epoch: shuffle (seeded by seed and epoch), keep this process's shard (every
    `world`-th window from `rank`), sort chunks of `batch_size * chunk_batches` windows by
    length, cut them into batches and shuffle the batch order. With `chunk_batches=1` this is
    plain shuffled batching.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, *, rank: int = 0, world: int = 1,
                 seed: int = 0, chunk_batches: int = 32) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.seed, self.chunk = seed, batch_size * chunk_batches
        self.epoch = 0

    def set_epoch(self, epoch: int, lengths: np.ndarray | None = None) -> None:
        """Batch `epoch`; `lengths` gives the windows' new lengths where they changed."""
        self.epoch = epoch
        if lengths is not None:
            self.lengths = np.asarray(lengths)

    def _shard_size(self) -> int:
        return -(-len(self.lengths) // self.world)  # ceil: every rank gets as many windows

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        padded = np.resize(order, self._shard_size() * self.world)  # repeat to divide evenly
        mine = padded[self.rank :: self.world]
        batches = []
        for start in range(0, len(mine), self.chunk):
            chunk = mine[start : start + self.chunk]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            cuts = range(0, len(chunk), self.batch_size)
            batches += [chunk[i : i + self.batch_size] for i in cuts]
        for index in rng.permutation(len(batches)):
            yield batches[index].tolist()


def left_pad(sequences: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    """Ragged item lists -> LongTensor [B, width], left-padded with 0, keeping the most recent."""
    flat, offsets = flatten(sequences)
    return torch.from_numpy(corpus_left_pad(flat, offsets, np.arange(len(sequences)), width))


def prediction_inputs(
    histories: torch.Tensor | Sequence[Sequence[int]], max_len: int, mask_token: int
) -> torch.Tensor:
    """Inputs [B, max_len] to predict each history's next item (evaluation and serving).

    `histories` is a left-padded LongTensor [B, T] (or ragged lists of item indices). Each row
    keeps its `max_len - 1` most recent items, gets [MASK] appended in the last column, and is
    left-padded with 0. An empty history gives padding followed by [MASK].
    """
    if not isinstance(histories, torch.Tensor):
        histories = left_pad(histories, max_len - 1)
    recent = histories[:, -(max_len - 1):]  # [B, <= max_len - 1]
    b, t = recent.shape
    out = torch.zeros((b, max_len), dtype=torch.long, device=histories.device)
    out[:, max_len - 1 - t: max_len - 1] = recent
    out[:, -1] = mask_token
    return out

