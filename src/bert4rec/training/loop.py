"""`fit`: train BERT4Rec on a corpus and write a run directory. One path, plain PyTorch.

Building blocks first (the rate schedule, the loader, the model, the optimiser), then
`TrainingRun`, which holds one run's loader, model, optimiser and progress and
trains it an epoch at a time, then `fit`: set up (device, DDP when launched by torchrun), select
the epoch on validation (`evaluation.validation`) with early stopping, score test
with the selected weights and, for a final fit, train a second run on every interaction (each
user's last two included) for that many epochs (`_final`). With nothing held out
(`holdout="none"`) the one run trains on everything for `loop.epochs` (`_fit_everything`). A
run may start from a trained model (`WarmStart`, training/warm_start.py) instead of the seed's
random weights. Under DDP each process trains on its shard of the windows; only rank 0
evaluates, logs and writes, and it broadcasts what it measured so every process stops
together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bert4rec import rundir
from bert4rec.config import OptimSettings, Settings
from bert4rec.data.batches import (
    IGNORE,
    ClozeCollate,
    LengthBucketSampler,
    NextItemCollate,
    WindowDataset,
    padded_targets,
    target_inputs,
)
from bert4rec.data.cooccurrence import ppmi_embeddings
from bert4rec.data.corpus import SequenceCorpus, Split
from bert4rec.data.features import ItemFeatures
from bert4rec.data.vocab import PAD, Vocabulary
from bert4rec.errors import SettingsError
from bert4rec.evaluation.protocols import item_counts
from bert4rec.evaluation.validation import (
    score_test,
    validate,
    validation_label,
    validation_sample,
)
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.training.checkpoint import Progress, masking_states, restore_state, save_state
from bert4rec.training.full_softmax import exclude_from_logits, fused_cross_entropy
from bert4rec.training.losses import (
    PairLogits,
    candidate_rows,
    draw_negatives,
    fixed_pair_logits,
    log_item_frequency,
    sampled_cloze_loss,
)
from bert4rec.training.memory import check_fits, fix_mmap_threshold
from bert4rec.training.runtime import Runtime, joined_runtime
from bert4rec.training.sparse_items import LazyAdam, OptimizerPair, clip_gradients, sparse_items
from bert4rec.training.threads import tick as fit_threads
from bert4rec.training.warm_start import WarmStart, start_from

logger = logging.getLogger(__name__)

POSTFIX_EVERY = 50  # steps between progress-bar loss updates; each one syncs with the device
HOLDOUTS = ("last-two", "none")
"""What a run holds out of each user's sequence: the last two items (validation picks the
epoch, test scores the result), or nothing (`loop.epochs` on everything, no figures)."""


def summed(parts: list[PairLogits | None]) -> PairLogits | None:
    """The sum of the extra logits `parts` (None: none), or None where there are none."""
    kept = [part for part in parts if part is not None]
    if len(kept) < 2:
        return kept[0] if kept else None
    return lambda candidates: sum(part(candidates) for part in kept)


def learning_rate(optim: OptimSettings, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The rate for optimiser step `step` (0-based): constant, step decay by epoch, or warm-up
    then linear decay to zero at `total_steps`."""
    if optim.schedule == "step":
        return optim.lr * optim.step_gamma ** ((step // steps_per_epoch) // optim.step_epochs)
    if optim.schedule == "warmup_linear":
        warmup = max(1, round(optim.warmup_fraction * total_steps))
        if step < warmup:
            return optim.lr * (step + 1) / warmup
        return optim.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    return optim.lr


def make_loader(data: Split, vocab: Vocabulary, settings: Settings,
                runtime: Runtime) -> DataLoader:
    """Shuffled, masked training batches of this process's shard of the windows of `data`.
    The masking generator is seeded once, here: each epoch's masks follow from the last's."""
    causal = settings.model.causal  # windows one item longer: inputs max_len, labels shifted
    windows = WindowDataset(data, settings.model.max_len + causal,
                            settings.masking.windows_per_sequence,
                            max_shift=settings.masking.window_shift, seed=settings.loop.seed,
                            min_items=1 + causal)
    sampler = LengthBucketSampler(windows.lengths, settings.loop.batch_size, rank=runtime.rank,
                                  world=runtime.world, seed=settings.loop.seed)
    collate = NextItemCollate() if causal else ClozeCollate(settings.masking, vocab.mask)
    collate.generator.manual_seed(settings.loop.seed * 1000 + runtime.rank)
    return DataLoader(windows, batch_sampler=sampler, collate_fn=collate)


def build_model(data: Split, vocab: Vocabulary, settings: Settings, runtime: Runtime,
                log_frequency: torch.Tensor, *, features: ItemFeatures | None = None,
                start: WarmStart | None = None, item_ids: np.ndarray | None = None
                ) -> BERT4Rec:
    """A fresh BERT4Rec of `settings.model`'s shape on the runtime's device, started where
    training goes fastest: its output bias at the training items' `log_frequency` [V], and with
    `optim.item_init=cooccurrence` its item embeddings at the co-occurrence of `data`'s items.
    With item `features`, an item absent from `data` has features only. With `start`, a
    trained model over other items, it begins from that model's weights instead
    (`warm_start.start_from`; `item_ids`, the original ids in vocabulary order, map the items).
    The item table is frozen at `optim.item_lr` 0, and has sparse gradients where the loss and
    the device allow (`sparse_items`; not with features), set before any DDP wrapper sees it."""
    optim = settings.optim
    pairs = transition_keys(data, vocab.size) if settings.model.transitions else None
    config = BERT4RecConfig.from_shape(settings.model, vocab.size, features,
                                       *transition_shape(pairs, vocab.size))
    model = BERT4Rec(config).to(runtime.device)
    if features is not None:
        trained = torch.from_numpy(item_counts(data, vocab) > 0)
        model.set_item_features(torch.from_numpy(features.item_values), trained)
    model.start_at_popularity(log_frequency)
    if model.transitions is not None:
        model.transitions.start_at(*(t.to(runtime.device) for t in pairs))
    if start is not None:
        counts = start_from(model, start, item_ids, data, optim.item_window)
        logger.info("warm start from %s: %s", start.source, counts)
    elif optim.item_init == "cooccurrence":
        model.start_items_at(ppmi_embeddings(data, vocab.size, config.hidden, optim.item_window))
    items = model.encoder.embeddings.item
    items.weight.requires_grad_(optim.item_lr > 0)  # frozen: no gradient, none to clip either
    items.sparse = (sparse_items(optim.loss, vocab.n_items, runtime.device, runtime.world)
                    and features is None)
    return model


def transition_keys(data: Split, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of consecutive items in `data`'s sequences, once, as previous * vocab_size +
    next, ascending (the pairs `model.transitions` learns a logit for), and how often each
    occurs."""
    flat = np.asarray(data.flat, dtype=np.int64)
    begins = np.zeros(len(flat), dtype=bool)  # position i starts a sequence
    begins[np.asarray(data.offsets[:-1])[np.diff(data.offsets) > 0]] = True
    keys = flat[:-1] * vocab_size + flat[1:]  # the pair (i, i + 1) ...
    keys, counts = np.unique(keys[~begins[1:]], return_counts=True)  # ... within a sequence
    return torch.from_numpy(keys), torch.from_numpy(counts)


def transition_shape(pairs: tuple[torch.Tensor, torch.Tensor] | None,
                     vocab_size: int) -> tuple[int, int]:
    """How many `transition_keys` pairs there are, and the most that start at one item."""
    if pairs is None or not len(pairs[0]):
        return 0, 0
    return len(pairs[0]), int(torch.bincount(pairs[0] // vocab_size).max())


FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Where Adam(W) steps every parameter in one fused kernel: on the CPU 4.8 times faster than
its default loop over parameters (`short`'s parameters, one thread: 0.58 ms against 2.78 ms;
docs/performance.md), the same update to float rounding."""


def build_optimizer(model: BERT4Rec, optim: OptimSettings) -> torch.optim.Optimizer | OptimizerPair:
    """Adam or AdamW; weight decay only on matrices (not biases or LayerNorm gains). The item
    embeddings, unless frozen, have a group of their own whose `lr_scale` (`optim.item_lr`)
    multiplies the scheduled rate; where the item table has sparse gradients (`build_model`)
    that group is a `LazyAdam`'s (sparse_items.py), paired with the dense optimiser."""
    items = model.encoder.embeddings.item.weight
    sparse = model.encoder.embeddings.item.sparse
    params = [p for p in model.parameters() if p.requires_grad and p is not items]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    item_group = {"params": [items], "weight_decay": optim.weight_decay,
                  "lr_scale": optim.item_lr}
    if items.requires_grad and not sparse:
        groups.append(item_group)
    kind = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    fused = items.device.type in FUSED_ADAM_DEVICES
    dense = kind(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), fused=fused or None)
    if not (items.requires_grad and sparse):
        return dense
    return OptimizerPair(dense, LazyAdam([item_group], lr=optim.lr,
                                         betas=(optim.beta1, optim.beta2),
                                         decoupled=optim.optimizer == "adamw"))


class TrainingRun:
    """One training run on one split, started from the seed.

    Holds the loader of cloze batches, the model twice (`model`, the plain module that is
    saved and evaluated; `wrapped`, the DDP wrapper under torchrun that steps run through),
    the optimiser, the progress (epoch, step, history) and, for the in-batch sampled softmax,
    the log item frequencies. `run_epoch()` trains one more epoch.
    """

    def __init__(self, corpus: SequenceCorpus, settings: Settings, runtime: Runtime,
                 split: str = "train", show_progress: bool = True, *,
                 start: WarmStart | None = None) -> None:
        torch.manual_seed(settings.loop.seed)
        fix_mmap_threshold()  # freed step temporaries go back to the system (glibc)
        self.settings, self.runtime, self.show_progress = settings, runtime, show_progress
        data, vocab = corpus.split(split), corpus.vocab  # the split, computed once per run
        self.loader = make_loader(data, vocab, settings, runtime)
        counts = torch.from_numpy(item_counts(data, vocab))
        log_frequency = log_item_frequency(counts).to(runtime.device)  # [V]
        self.features = ItemFeatures.from_items(corpus.item_table, settings.model.item_features,
                                                vocab.size)
        self.model = build_model(data, vocab, settings, runtime, log_frequency,
                                 features=self.features, start=start, item_ids=corpus.item_ids)
        self.sparse_items = self.model.encoder.embeddings.item.sparse
        self.item_log_q = log_frequency if settings.optim.loss == "in-batch" else None
        self.optimizer = build_optimizer(self.model, settings.optim)
        self.wrapped = DistributedDataParallel(self.model) if runtime.world > 1 else self.model
        self.progress = Progress()
        self.kept = Path(rundir.WEIGHTS)
        """Where in the run directory the weights chosen on validation go."""

    @property
    def lr(self) -> float:
        """The rate of the latest step."""
        return self.optimizer.param_groups[0]["lr"]

    def run_epoch(self, label: str = "epoch") -> float:
        """Train epoch `progress.epoch + 1`: cut its windows and batches, then take one step
        per batch under a progress bar. Returns the mean loss.

        The bar's loss is read back every POSTFIX_EVERY steps only: `.item()` waits for the device.
        """
        self.progress.epoch += 1
        epoch, loader = self.progress.epoch, self.loader
        loader.dataset.set_epoch(epoch)
        loader.batch_sampler.set_epoch(epoch, loader.dataset.lengths)
        self.wrapped.train()
        show = self.show_progress and self.runtime.main
        total = torch.zeros((), device=self.runtime.device)  # summed in place: no tensor per step
        recent = torch.zeros((), device=self.runtime.device)
        steps = 0
        with tqdm(total=len(loader), desc=f"{label} {epoch}", unit="batch", leave=False,
                  disable=not show) as bar:
            for inputs, labels in loader:
                loss = self.step(inputs, labels)
                total += loss
                recent += loss
                steps += 1
                fit_threads()  # to the other work now on the cores, every few seconds
                bar.update(1)
                if steps % POSTFIX_EVERY == 0:
                    bar.set_postfix(loss=f"{recent.item() / POSTFIX_EVERY:.3f}", refresh=False)
                    recent.zero_()
        return total.item() / steps if steps else float("nan")

    def step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a cloze batch (`inputs`, `labels` [B, T]; labels 0 where
        nothing is predicted) at the scheduled rate. Returns the detached loss."""
        optim, per_epoch = self.settings.optim, len(self.loader)
        total = self.settings.loop.epochs * per_epoch
        lr = learning_rate(optim, self.progress.step, per_epoch, total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss = self.loss(inputs.to(self.runtime.device), labels.to(self.runtime.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optim.clip_norm > 0:
            clip_gradients(self.model.parameters(), optim.clip_norm)
        self.optimizer.step()
        self.progress.step += 1
        return loss.detach()

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The cloze loss `optim.loss` at the labelled positions, plus `optim.feature_loss`
        times the same loss over every item's features-only vector (`alone`: what a new item
        has, so that features alone learn to rank; Beauty's cold items: HR@10 0.148 against
        0.115). Both take the same negatives and feature matches. bf16 autocast on CUDA. On
        the CPU the full softmax runs fused with the output layer (full_softmax.py), except
        with transition logits or feature matches, which add to each row's logits."""
        optim = self.settings.optim
        before = self.previous_items(inputs, labels)  # [B, T] or None
        positions, target_labels = padded_targets(labels)  # few sizes: a flat heap
        previous = None if before is None else before[positions]
        model = self.model
        exclude = (target_inputs(inputs, positions, model.config.causal)
                   if optim.exclude_history and optim.loss == "full" else None)  # [N', T]
        match = (model.match_logits(inputs, positions)
                 if model.feature_match is not None and optim.loss != "full" else None)
        features = model.encoder.embeddings.features
        alone = optim.feature_loss > 0 and features is not None
        with torch.autocast("cuda", torch.bfloat16, enabled=self.runtime.device.type == "cuda"):
            hidden = self.wrapped(inputs, positions, project=False)  # [N', H]
            if optim.loss == "full":
                widen, matches = self.full_matches(inputs, positions, hidden)
                loss = self.full_loss(*widen(hidden, model.output_weight),
                                      model.output_layer_bias(), target_labels, exclude,
                                      previous=previous, matches=matches)
                if alone:
                    vectors, bias = features.alone()
                    bias = bias.index_fill(0, model.not_items, float("-inf"))
                    loss = loss + optim.feature_loss * self.full_loss(
                        *widen(hidden, vectors), bias, target_labels, exclude, previous=None,
                        matches=matches)
                return loss
            return self.sampled_losses(hidden, target_labels, previous, match, alone)

    def sampled_losses(self, hidden: torch.Tensor, targets: torch.Tensor,
                       previous: torch.Tensor | None, match: PairLogits | None, alone: bool
                       ) -> torch.Tensor:
        """The sampled loss of `hidden` [N', H] at `targets` [N'], plus with `alone` the same
        over the items' features alone, on one draw of negatives; `previous` [N'] (the item
        before each target) adds the transition logits and `match` the feature matches. With
        item features only the candidates' rows of the item table are computed."""
        optim, model = self.settings.optim, self.model
        features = model.encoder.embeddings.features
        negatives = draw_negatives(optim.loss, targets, model.config.vocab, optim.negatives)
        if match is not None:  # computed once for both losses
            match = fixed_pair_logits(match, targets, negatives)
        extra, rows = [match], None
        if features is not None:  # only the candidates' rows: pooling all values costs more
            rows, targets, negatives = candidate_rows(targets, negatives)
        if previous is not None:
            transitions = model.transitions

            def transition_logits(candidates: torch.Tensor) -> torch.Tensor:
                items = candidates if rows is None else rows[candidates]
                if items.dim() == 1:  # the targets
                    return transitions.pairs(previous, items)
                return transitions.shared(previous, items[:, 0])  # the negatives, [S, 1]

            extra.append(transition_logits)
        pooled = None if rows is None else features.alone(rows)
        weight, bias = ((model.output_weight, model.item_bias) if rows is None
                        else model.output_rows(rows, pooled))
        loss = self.sampled_loss(hidden, weight, bias, targets, negatives,
                                 pair_logits=summed(extra), sparse_grad=self.sparse_items,
                                 rows=rows)
        if alone:  # every item scored as a new item is: by its features (and matches)
            loss = loss + optim.feature_loss * self.sampled_loss(
                hidden, *pooled, targets, negatives, pair_logits=match, rows=rows)
        return loss

    def full_matches(self, inputs: torch.Tensor, positions: tuple[torch.Tensor, torch.Tensor],
                     hidden: torch.Tensor) -> tuple[Callable, torch.Tensor | None]:
        """The feature matches of the full softmax: `widen(hidden, weight)`, which appends
        the targets' profile to `hidden` [N', H] and every item's value columns to `weight`
        [V, H] where the batch holds few values (the loss stays fused), and otherwise the
        match logits [N', V] to add (None without feature matches)."""
        model = self.model
        if model.feature_match is None:
            return (lambda h, w: (h, w)), None
        profile = model.feature_profile(inputs, positions)
        columns = model.match_columns(profile)
        if columns is None:
            return (lambda h, w: (h, w)), model.profile_logits(profile)(model.all_items[None, :])
        weighted = profile[0].to(hidden.dtype)
        return (lambda h, w: (torch.cat([h, weighted], 1),
                              torch.cat([w, columns.to(w.dtype)], 1))), None

    def sampled_loss(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     targets: torch.Tensor, negatives: torch.Tensor, *,
                     pair_logits: PairLogits | None, sparse_grad: bool = False,
                     rows: torch.Tensor | None = None) -> torch.Tensor:
        """`optim.loss`, a sampled softmax, of `hidden @ weight.T + bias` (+ `pair_logits`)
        over the targets and `negatives`: item indices, or with `rows` (`candidate_rows`)
        indices into those items, which `weight` and `bias` then hold alone."""
        log_q = self.item_log_q
        if log_q is not None and rows is not None:
            log_q = log_q[rows]
        return sampled_cloze_loss(hidden, weight, bias, targets, kind=self.settings.optim.loss,
                                  n_items=self.model.config.vocab.n_items,
                                  item_log_q=log_q, sparse_grad=sparse_grad,
                                  pair_logits=pair_logits, negatives=negatives)

    def full_loss(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  targets: torch.Tensor, exclude: torch.Tensor | None, *,
                  previous: torch.Tensor | None, matches: torch.Tensor | None) -> torch.Tensor:
        """The full softmax of `hidden @ weight.T + bias`, plus the transition logits of the
        items `previous` and the feature `matches` [N', V] where given, less each row's
        `exclude` items: fused with the output layer on the CPU where nothing is added."""
        if previous is None and matches is None:
            return self.full_softmax_loss(hidden, weight, bias, targets, exclude)
        logits = F.linear(hidden, weight, bias)
        if previous is not None:
            logits = self.model.transitions.add_rows(logits, previous)
        logits = logits.float() if matches is None else logits.float() + matches
        if exclude is not None:
            logits = exclude_from_logits(logits, targets, exclude)
        return F.cross_entropy(logits, targets, ignore_index=IGNORE)

    def full_softmax_loss(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                          targets: torch.Tensor, exclude: torch.Tensor | None = None
                          ) -> torch.Tensor:
        """Cross-entropy of `hidden @ weight.T + bias` over every item, less each row's
        `exclude` items: fused with the output layer on the CPU (full_softmax.py), the
        unfused form on CUDA and MPS."""
        if self.runtime.device.type == "cpu":
            return fused_cross_entropy(hidden, weight, bias, targets, exclude)
        logits = F.linear(hidden, weight, bias).float()
        if exclude is not None:
            logits = exclude_from_logits(logits, targets, exclude)
        return F.cross_entropy(logits, targets, ignore_index=IGNORE)

    def previous_items(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """For the transition logits: the item before each position [B, T] (a causal model's
        input is that item; in a cloze batch, the true item one column left, masked or not),
        or None for a model without them."""
        if self.model.transitions is None:
            return None
        if self.model.config.causal:
            return inputs
        true_items = torch.where(labels != PAD, labels, inputs)
        return F.pad(true_items[:, :-1], (1, 0), value=PAD)

    def save(self, out_dir: Path, masking: list[torch.Tensor]) -> None:
        """Write `checkpoints/last.pt`: everything a resumed run needs to go on exactly;
        `masking` is every rank's masking-generator state (`masking_states`)."""
        save_state(out_dir, self.model, self.optimizer, masking, self.settings, self.progress)

    def restore(self, out_dir: Path) -> None:
        """Continue from `checkpoints/last.pt` (written with the same settings)."""
        self.progress = restore_state(out_dir, self.model, self.optimizer, self.loader,
                                      self.settings, self.runtime)


@dataclass
class FitResult:
    """What `fit` leaves behind: the model with its best weights and the figures that chose them."""

    run_dir: Path
    model: BERT4Rec
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, Any] | None
    history: list[dict[str, float]] = field(default_factory=list)
    finished: bool = True
    final: dict[str, Any] | None = None
    """For a final fit: how the model was trained on everything (epochs, interactions,
    seconds); `valid` and `test` are then the selection model's, `model` the final one."""


def fit(
    corpus: SequenceCorpus,
    settings: Settings,
    out_dir: str | Path,
    *,
    data: dict[str, Any] | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    progress: bool = True,
    callback: Callable[[BERT4Rec, dict[str, float]], None] | None = None,
    final: bool = False,
    holdout: str = "last-two",
    start: WarmStart | None = None,
) -> FitResult:
    """Train on `corpus.split("train")`, pick the epoch with the best validation metric, write
    the run directory `out_dir` and return the model with those best weights.

    `data` describes how to rebuild the corpus (stored in config.json). `resume` continues
    from `out_dir/checkpoints/last.pt` (or starts afresh in `out_dir` if no epoch finished).
    `stop_after_epoch` ends this call after that epoch (the schedule still spans
    `settings.loop.epochs`), so a later `resume=True` carries on.
    With `final`, a second model then trains on every interaction for the chosen number of
    epochs (`_final`): it is the run's model, and metrics.json keeps the selection model's
    validation and test figures, labelled so. With `holdout="none"` nothing is held out: one
    model trains on every interaction for `loop.epochs` (`_fit_everything`), with no figures.
    `start` begins from a trained model's weights (a warm start) instead of the seed's.
    `callback(model, record)` runs on rank 0 after each epoch with that epoch's record (loss,
    rate, validation metrics, seconds of this call so far; in the final model's epochs
    `"final": True` and `"final_epochs"`, how many it trains); time spent in callbacks counts
    neither there nor against `loop.time_budget`.
    """
    if holdout not in HOLDOUTS:
        raise SettingsError(f"holdout must be one of {', '.join(HOLDOUTS)}, got {holdout!r}")
    out_dir = Path(out_dir)
    plan = {"final": final or holdout == "none", "holdout": holdout,
            "init_from": None if start is None else start.source}
    if holdout == "none":
        return _fit_everything(corpus, settings, out_dir, data or {}, plan,
                               progress=progress, callback=callback, start=start)
    data = rundir.check_start(out_dir, corpus, data or {}, resume)
    if resume:
        _check_plan(out_dir, plan)
    with joined_runtime(settings.loop.device) as runtime:
        check_fits(settings, corpus.vocab_size, runtime.device)  # before anything is allocated
        with rundir.removed_on_failed_start(out_dir, active=runtime.main):
            run = TrainingRun(corpus, settings, runtime, "train", progress, start=start)
            if final:
                run.kept = rundir.SELECTED
            if resume and (out_dir / rundir.CHECKPOINT).is_file():
                run.restore(out_dir)
            elif runtime.main:  # a run stopped before its first checkpoint starts again
                _start_run_dir(out_dir, corpus, run, data, plan)
            if runtime.main:
                rundir.record_provenance(out_dir, data["corpus"]["fingerprint"])
            finished = _select(run, corpus, out_dir, stop_after_epoch, callback)
            result = _finish(run, corpus, out_dir, finished)
        if finished and final:
            result = _final(corpus, settings, runtime, out_dir, result,
                            show=progress, callback=callback, start=start)
        return result


def _check_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """Refuse to resume a run with another plan (final fit or not, warm start or not) than
    config.json records of its start."""
    if not (out_dir / rundir.CONFIG).is_file():
        return
    recorded = rundir.read_config(out_dir).get("fit") or {"final": False,
                                                           "holdout": "last-two",
                                                           "init_from": None}
    changed = [f"{key} {recorded.get(key)!r} -> {value!r}" for key, value in plan.items()
               if recorded.get(key) != value]
    if changed:
        raise SettingsError(f"{out_dir}: started with another plan than this resume "
                            f"({'; '.join(changed)}); resume it as it was started")


def _select(run: TrainingRun, corpus: SequenceCorpus, out_dir: Path,
            stop_after_epoch: int | None,
            callback: Callable[[BERT4Rec, dict[str, float]], None] | None) -> bool:
    """The selection loop: train epoch after epoch, validating each; rank 0 keeps the best
    weights and a checkpoint. Returns whether the run is over (all epochs, out of patience or
    out of time) rather than paused after `stop_after_epoch`."""
    settings, runtime, progress = run.settings, run.runtime, run.progress
    loop = settings.loop
    board = _tensorboard(out_dir, progress.step) if runtime.main else None
    clock = _Stopwatch()
    last_epoch = min(loop.epochs, stop_after_epoch or loop.epochs)
    out_of_time = False
    sample = validation_sample(loop, corpus)
    valid_name = "valid" if sample is None else f"valid ({sample['users']:,}-user sample)"
    if runtime.main:
        logger.info("the epoch is selected on %s", validation_label(loop, corpus))
    while (progress.epoch < last_epoch and not out_of_time
           and not progress.out_of_patience(loop.patience)):
        loss = run.run_epoch("epoch")
        metrics, out_of_time = _validate_everywhere(run, corpus, clock)
        record = {"epoch": progress.epoch, "loss": loss, "lr": run.lr, **metrics}
        improved = progress.record(record, metrics[loop.metric])
        masking = masking_states(run.loader, runtime.rank, runtime.world)  # every rank's
        if runtime.main:
            _write_epoch(run, record, improved, out_dir, board, valid_name)
            if callback is not None:
                seconds = clock.seconds()
                with clock.paused():
                    callback(run.model, {**record, "seconds": seconds})
            run.save(out_dir, masking)
    if board is not None:
        board.close()
    return (progress.epoch >= loop.epochs or out_of_time
            or progress.out_of_patience(loop.patience))


class _Stopwatch:
    """Seconds since it started, not counting the time spent inside `paused()`."""

    def __init__(self) -> None:
        self.started, self.excluded = time.monotonic(), 0.0

    def seconds(self) -> float:
        return time.monotonic() - self.started - self.excluded

    @contextmanager
    def paused(self) -> Iterator[None]:
        entered = time.monotonic()
        try:
            yield
        finally:
            self.excluded += time.monotonic() - entered


def _validate_everywhere(run: TrainingRun, corpus: SequenceCorpus,
                         clock: _Stopwatch) -> tuple[dict[str, float], bool]:
    """Rank 0 scores the valid split and checks the time budget; both are broadcast so all
    ranks decide alike. Returns the numeric metrics and whether the time is up."""
    loop, runtime = run.settings.loop, run.runtime
    box: list[Any] = [None]
    if runtime.main:
        metrics = validate(run.model, corpus, loop, runtime.device)
        box = [(metrics, loop.time_budget > 0 and clock.seconds() >= loop.time_budget)]
    if runtime.world > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _write_epoch(run: TrainingRun, record: dict[str, float], improved: bool, out_dir: Path,
                 board, valid_name: str) -> None:
    """Rank 0's record of an epoch: the weights when they improved, TensorBoard, a log line
    (`valid_name` says whether validation scored a sample of users)."""
    metric = run.settings.loop.metric
    if improved:
        rundir.save_weights(run.model, out_dir / run.kept)
    for key, number in record.items():
        if key != "epoch":
            group = "train" if key in ("loss", "lr") else "valid"
            board.add_scalar(f"{group}/{key}", number, run.progress.step)
    logger.info("epoch %d: loss %.4f, %s %s %.4f%s", record["epoch"], record["loss"],
                valid_name, metric, record[metric], " (best)" if improved else "")


def _finish(run: TrainingRun, corpus: SequenceCorpus, out_dir: Path,
            finished: bool) -> FitResult:
    """Load the selected weights into the model (rank 0 reads them and sends them to the
    other ranks); once training is over, rank 0 scores test and writes metrics.json."""
    settings, runtime, progress = run.settings, run.runtime, run.progress
    if runtime.main:
        weights = out_dir / run.kept
        run.model.load_state_dict(load_file(str(weights), device=str(runtime.device)))
    if runtime.world > 1:  # from rank 0's memory: other nodes need not see its disk
        for tensor in run.model.state_dict().values():
            dist.broadcast(tensor, src=0)
    best = next((h for h in progress.history if h["epoch"] == progress.best_epoch), {})
    test = None
    if finished and runtime.main:
        test = score_test(run.model, corpus, settings.loop, runtime.device)
        metrics = {"best_epoch": progress.best_epoch, "epochs_run": progress.epoch,
                   "selected_by": validation_label(settings.loop, corpus)}
        sample = validation_sample(settings.loop, corpus)
        if sample is not None:
            metrics["valid_sample"] = sample
        metrics.update(valid=best, test=test, history=progress.history)
        rundir.write_json(out_dir / rundir.METRICS, metrics)
        logger.info("best epoch %d: valid %s, test %s", progress.best_epoch, best, test)
    return FitResult(out_dir, run.model.eval(), progress.best_epoch, best, test,
                     progress.history, finished)


def _final(corpus: SequenceCorpus, settings: Settings, runtime: Runtime, out_dir: Path,
           selected: FitResult, *, show: bool,
           callback: Callable[[BERT4Rec, dict[str, float]], None] | None,
           start: WarmStart | None) -> FitResult:
    """The final fit: train afresh (from `start` again, for a warm start) on every
    interaction, each user's last two included, for the selected number of epochs on the
    schedule that was validated (`loop.epochs` long), and keep those weights as the run's
    model. Nothing is validated or tested: nothing is held out. metrics.json keeps the
    selection model's figures (its weights stay in `checkpoints/selected.safetensors`) and
    says so."""
    trained = _train_all(corpus, settings, runtime, selected.best_epoch,
                         show=show, callback=callback, start=start)
    model = trained.pop("model")
    if not runtime.main:
        return replace(selected, model=model, final=trained)
    rundir.save_weights(model, out_dir / rundir.WEIGHTS)
    metrics = json.loads((out_dir / rundir.METRICS).read_text())
    metrics["figures_of"] = ("the selection model (trained without each user's last two "
                             "items: checkpoints/selected.safetensors); model.safetensors is "
                             "the final model, trained on every interaction")
    metrics["final"] = trained
    rundir.write_json(out_dir / rundir.METRICS, metrics)
    logger.info("final fit for %d epochs on all %d interactions", trained["epochs"],
                corpus.n_interactions)
    return replace(selected, model=model, final=trained)


def _fit_everything(corpus: SequenceCorpus, settings: Settings, out_dir: Path,
                    data: dict[str, Any], plan: dict[str, Any], *, progress: bool,
                    callback: Callable[[BERT4Rec, dict[str, float]], None] | None,
                    start: WarmStart | None) -> FitResult:
    """`fit` with nothing held out: train on every interaction for `loop.epochs`, the count
    the caller chose, and write the run directory. There is nothing to validate or test, so
    metrics.json has no figures, and nothing to resume from: a failed run leaves nothing."""
    rundir.check_out_dir(out_dir, resume=False)
    data = {**data, "corpus": rundir.corpus_record(corpus)}
    rundir.remove_orphans(out_dir)

    def ready(run: TrainingRun) -> None:
        _start_run_dir(out_dir, corpus, run, data, plan)
        rundir.record_provenance(out_dir, data["corpus"]["fingerprint"])

    with joined_runtime(settings.loop.device) as runtime:
        check_fits(settings, corpus.vocab_size, runtime.device)  # before anything is allocated
        with rundir.removed_on_failed_start(out_dir, active=runtime.main):
            trained = _train_all(corpus, settings, runtime, settings.loop.epochs,
                                 show=progress, callback=callback, start=start, ready=ready)
            model = trained.pop("model")
            if runtime.main:
                rundir.save_weights(model, out_dir / rundir.WEIGHTS)
                rundir.write_json(out_dir / rundir.METRICS, {
                    "holdout": "none", "valid": None, "test": None, "final": trained,
                    "figures_of": "nothing: no interaction was held out"})
        return FitResult(out_dir, model, 0, {}, None, trained["history"], True, trained)


def _train_all(corpus: SequenceCorpus, settings: Settings, runtime: Runtime, epochs: int, *,
               show: bool, callback: Callable[[BERT4Rec, dict[str, float]], None] | None,
               start: WarmStart | None,
               ready: Callable[[TrainingRun], None] | None = None) -> dict[str, Any]:
    """A run on every interaction (`corpus.split("all")`) for `epochs` epochs of the
    `loop.epochs` schedule, without validation. Returns the trained `model` with what
    metrics.json records of it: epochs, interactions, seconds and each epoch's loss and rate.
    `ready(run)` runs on rank 0 once the run is built, before the first epoch."""
    run = TrainingRun(corpus, settings, runtime, "all", show, start=start)
    if ready is not None and runtime.main:
        ready(run)
    clock, history = _Stopwatch(), []
    while run.progress.epoch < epochs:
        loss = run.run_epoch("final")
        record = {"epoch": run.progress.epoch, "loss": loss, "lr": run.lr}
        history.append(record)
        logger.info("final epoch %d of %d: loss %.4f", run.progress.epoch, epochs, loss)
        if callback is not None and runtime.main:
            seconds = clock.seconds()
            with clock.paused():
                callback(run.model, {**record, "seconds": seconds, "final": True,
                                     "final_epochs": epochs})
    return {"model": run.model.eval(), "epochs": run.progress.epoch,
            "interactions": corpus.n_interactions, "seconds": clock.seconds(),
            "history": history}


def _start_run_dir(out_dir: Path, corpus: SequenceCorpus, run: TrainingRun,
                   data: dict[str, Any], plan: dict[str, Any]) -> None:
    """Claim `out_dir` and write config.json (with the `plan`: final fit, holdout, warm
    start), items.parquet, users.parquet and, with item features, features.parquet
    (`rundir.check_start` has refused an `out_dir` that holds a run, unless resuming one
    stopped before its first checkpoint)."""
    model, settings, features = run.model, run.settings, run.features
    rundir.claim_run_dir(out_dir)
    rundir.write_config(out_dir, model.config, data, settings.to_dict(), fit=plan)
    rundir.atomic_write(out_dir / rundir.ITEMS, lambda t: corpus.item_table.write_parquet(t))
    rundir.write_users(out_dir, corpus)
    if features is not None:
        rundir.write_features(out_dir, features)
        logger.info("item features (%s): %s", settings.model.item_features,
                    features.describe())
    elif settings.model.item_features:
        logger.info("item features (%s): the item table has none", settings.model.item_features)
    logger.info("run %s: %s", out_dir, json.dumps(settings.to_dict()))
    logger.info("model: %s, %d parameters", json.dumps(model.config.to_dict()),
                model.num_parameters())


def _tensorboard(out_dir: Path, step: int):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=step or None)
