"""`fit`: train BERT4Rec on a corpus and write a run directory. One path, plain PyTorch.

Setup (device, DDP when launched by torchrun, seed), data (cloze windows of the train split),
model, optimiser, a learning-rate schedule that is a pure function of the step, the epoch loop
with validation (full ranking, seen items excluded) and early stopping, then the checkpoint.
Under DDP each process trains on its shard of the windows; only rank 0 logs, evaluates and
writes, and it broadcasts the validation metrics so every process stops together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bert4rec import rundir
from bert4rec.config import OptimSettings, Settings
from bert4rec.data.batches import ClozeCollate, LengthBucketSampler, WindowDataset, model_scorer
from bert4rec.data.corpus import SequenceCorpus
from bert4rec.errors import ModelDirError
from bert4rec.evaluate import evaluate, train_item_counts
from bert4rec.losses import cloze_loss, log_item_frequency
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.runtime import Runtime, start_runtime
from bert4rec.train_state import Progress, restore_state, save_state

logger = logging.getLogger(__name__)

POSTFIX_EVERY = 50  # steps between progress-bar loss updates; each one syncs with the device


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
    selected_test: dict[str, Any] | None = None
    """With `loop.refit`: test figures of the selected weights before the refit replaced them."""


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


def validate(model: BERT4Rec, corpus: SequenceCorpus, device: torch.device, batch_size: int,
             split: str = "valid") -> dict[str, Any]:
    """Full-ranking metrics (seen items excluded) of `model` on a split, labelled."""
    report = evaluate(model_scorer(model, device), corpus, split, protocol="full",
                      exclude_seen=True, batch_size=batch_size)
    return report.to_dict()


def make_optimizer(model: BERT4Rec, optim: OptimSettings) -> torch.optim.Optimizer:
    """Adam or AdamW; weight decay only on matrices (not biases or LayerNorm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    kind = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2))


def weight_average(model: BERT4Rec, optim: OptimSettings) -> AveragedModel | None:
    """The exponential moving average of `model`'s weights asked for by `optim.ema_decay`."""
    if optim.ema_decay == 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(optim.ema_decay))


def make_loader(corpus: SequenceCorpus, settings: Settings, runtime: Runtime,
                split: str = "train") -> DataLoader:
    """Shuffled, masked training batches of this process's shard of the windows of `split`."""
    windows = WindowDataset(corpus.split(split), settings.model.max_len,
                            settings.masking.windows_per_sequence,
                            max_shift=settings.masking.window_shift, seed=settings.loop.seed)
    chunk_batches = 32 if settings.loop.batching == "bucket" else 1
    sampler = LengthBucketSampler(windows.lengths, settings.loop.batch_size, rank=runtime.rank,
                                  world=runtime.world, seed=settings.loop.seed,
                                  chunk_batches=chunk_batches)
    collate = ClozeCollate(settings.masking, corpus.mask_token)
    collate.generator.manual_seed(settings.loop.seed * 1000 + runtime.rank)
    return DataLoader(windows, batch_sampler=sampler, collate_fn=collate)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               labels: torch.Tensor, lr: float, optim: OptimSettings, device: torch.device,
               item_log_q: torch.Tensor | None = None) -> torch.Tensor:
    """One optimiser step on a cloze batch (`labels` 0 where nothing is to be predicted) with
    the loss `optim.loss`; bf16 autocast on CUDA. Returns the detached loss.

    `item_log_q` (log item frequency) is needed by the in-batch sampled softmax only.
    """
    inputs, labels = inputs.to(device), labels.to(device)
    targets = labels != 0  # [B, T]
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"):
        if optim.loss == "full":
            loss = F.cross_entropy(model(inputs, targets).float(), labels[targets])
        else:
            core = getattr(model, "module", model)  # the BERT4Rec inside DDP
            hidden = model(inputs, targets, project=False)  # [N, H]
            loss = cloze_loss(hidden, core.output_weight, core.output_bias, labels[targets],
                              kind=optim.loss, n_negatives=optim.negatives,
                              n_items=core.config.vocab_size - 2, item_log_q=item_log_q)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if optim.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip_norm)
    optimizer.step()
    return loss.detach()


def train_epoch(model: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                settings: Settings, progress: Progress, runtime: Runtime, bar: tqdm,
                item_log_q: torch.Tensor | None = None,
                average: AveragedModel | None = None) -> float:
    """One pass over the loader; returns the mean loss. Sets the rate before every step and
    updates the weight average `average`, if any, after it.

    The bar's loss is read back every POSTFIX_EVERY steps only: `.item()` waits for the device.
    """
    model.train()
    total_steps = settings.loop.epochs * len(loader)
    losses = []
    for inputs, labels in loader:
        lr = learning_rate(settings.optim, progress.step, len(loader), total_steps)
        loss = train_step(model, optimizer, inputs, labels, lr, settings.optim, runtime.device,
                          item_log_q)
        progress.step += 1
        if average is not None:
            average.update_parameters(model)
        losses.append(loss)
        bar.update(1)
        if len(losses) % POSTFIX_EVERY == 0:
            recent = torch.stack(losses[-POSTFIX_EVERY:]).mean().item()
            bar.set_postfix(loss=f"{recent:.3f}", refresh=False)
    return torch.stack(losses).mean().item() if losses else float("nan")


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
) -> FitResult:
    """Train on `corpus.split("train")`, pick the epoch with the best validation metric, write
    the run directory `out_dir` and return the model with those best weights.

    `data` describes how to rebuild the corpus (stored in config.json). `resume` continues
    from `out_dir/checkpoints/last.pt` (or starts afresh in `out_dir` if no epoch finished).
    `stop_after_epoch` ends this call after that epoch (the schedule still spans
    `settings.loop.epochs`), so a later `resume=True` carries on.
    With `settings.loop.refit`, a second model then trains on everything but the test items for
    the chosen number of epochs (`_refit`); its weights and test figures are the run's.
    `callback(model, record)` runs on rank 0 after each epoch with that epoch's record (loss,
    rate, validation metrics, seconds of this call so far); time spent in callbacks counts
    neither there nor against `loop.time_budget`.
    """
    settings = settings.validated()
    out_dir = Path(out_dir)
    data = rundir.check_start(out_dir, corpus, data or {}, resume)
    runtime = start_runtime(settings.loop.device)
    try:
        with rundir.removed_on_failed_start(out_dir, active=runtime.main):
            result = _fit(corpus, settings, out_dir, data, resume, stop_after_epoch,
                          progress, runtime, callback)
        if result.finished and settings.loop.refit:
            result = _refit(corpus, settings, out_dir, result, progress, runtime)
        return result
    finally:
        if runtime.owns_group:
            dist.destroy_process_group()


@dataclass
class _Start:
    """A fresh training run of one split, initialised from the seed: its loader, the model
    (output bias at that split's item popularity), optimiser, weight average and, for the
    in-batch sampled softmax, the log item frequencies."""

    loader: DataLoader
    model: BERT4Rec
    optimizer: torch.optim.Optimizer
    average: AveragedModel | None
    item_log_q: torch.Tensor | None

    @property
    def scored(self) -> BERT4Rec:
        """The weights that are validated and kept: the average where there is one."""
        return self.model if self.average is None else self.average.module


def _start(corpus: SequenceCorpus, settings: Settings, runtime: Runtime, split: str) -> _Start:
    torch.manual_seed(settings.loop.seed)
    loader = make_loader(corpus, settings, runtime, split)
    config = BERT4RecConfig(vocab_size=corpus.vocab_size, **settings.to_dict()["model"])
    model = BERT4Rec(config).to(runtime.device)
    log_frequency = log_item_frequency(torch.from_numpy(train_item_counts(corpus, split)))
    log_frequency = log_frequency.to(runtime.device)
    model.start_at_popularity(log_frequency)
    return _Start(loader, model, make_optimizer(model, settings.optim),
                  weight_average(model, settings.optim),
                  log_frequency if settings.optim.loss == "in-batch" else None)


def _run_epoch(trained: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
               settings: Settings, state: Progress, runtime: Runtime, show: bool, label: str,
               item_log_q: torch.Tensor | None, average: AveragedModel | None) -> float:
    """Re-cut the windows and batches for epoch `state.epoch`, then train one epoch under a bar."""
    loader.dataset.set_epoch(state.epoch)
    loader.batch_sampler.set_epoch(state.epoch, loader.dataset.lengths)
    with tqdm(total=len(loader), desc=f"{label} {state.epoch}", unit="batch", leave=False,
              disable=not (show and runtime.main)) as bar:
        return train_epoch(trained, loader, optimizer, settings, state, runtime, bar,
                           item_log_q, average)


def _fit(corpus: SequenceCorpus, settings: Settings, out_dir: Path, data: dict[str, Any],
         resume: bool, stop_after_epoch: int | None, show: bool, runtime: Runtime,
         callback: Callable[[BERT4Rec, dict[str, float]], None] | None) -> FitResult:
    start = _start(corpus, settings, runtime, "train")
    loader, model, optimizer, average = start.loader, start.model, start.optimizer, start.average
    scored, item_log_q = start.scored, start.item_log_q
    state = Progress()
    if resume and (out_dir / rundir.CHECKPOINT).is_file():
        state = restore_state(out_dir, model, optimizer, loader, settings, average)
    elif runtime.main:  # a run stopped before its first checkpoint starts again
        _start_run_dir(out_dir, corpus, model, data, settings, replace=resume)
    trained = DistributedDataParallel(model) if runtime.world > 1 else model
    writer = _tensorboard(out_dir, state.step) if runtime.main else None
    epochs_end = min(settings.loop.epochs, stop_after_epoch or settings.loop.epochs)
    started, paused, out_of_time = time.monotonic(), 0.0, False  # paused: in callbacks
    while state.epoch < epochs_end and not _out_of_patience(state, settings) and not out_of_time:
        state.epoch += 1
        loss = _run_epoch(trained, loader, optimizer, settings, state, runtime, show, "epoch",
                          item_log_q, average)
        metrics, out_of_time = _validate_everywhere(scored, corpus, settings, runtime,
                                                    started + paused)
        train = {"loss": loss, "lr": optimizer.param_groups[0]["lr"]}
        _record_epoch(state, train, metrics, settings, scored, out_dir, runtime, writer)
        if callback is not None and runtime.main:
            entered = time.monotonic()
            callback(scored, {**state.history[-1], "seconds": entered - started - paused})
            paused += time.monotonic() - entered
        if runtime.main:
            save_state(out_dir, model, optimizer, loader, settings, state, average)
    if writer is not None:
        writer.close()
    finished = (state.epoch >= settings.loop.epochs or _out_of_patience(state, settings)
                or out_of_time)
    return _finish(out_dir, model, corpus, settings, state, runtime, finished)


def _out_of_patience(state: Progress, settings: Settings) -> bool:
    return settings.loop.patience > 0 and state.bad_epochs >= settings.loop.patience


def _start_run_dir(out_dir: Path, corpus: SequenceCorpus, model: BERT4Rec,
                   data: dict[str, Any], settings: Settings, replace: bool) -> None:
    """Write config.json and items.parquet; an earlier run is only replaced if `replace`."""
    if (out_dir / rundir.CONFIG).exists() and not replace:
        raise ModelDirError(f"{out_dir}: already holds a run; pass --resume or choose a new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_config(out_dir, model.config, data, settings.to_dict())
    rundir.atomic_write(out_dir / rundir.ITEMS, lambda t: corpus.item_table.write_parquet(t))
    logger.info("run %s: %s", out_dir, json.dumps(settings.to_dict()))
    logger.info("model: %s, %d parameters", json.dumps(model.config.to_dict()),
                model.num_parameters())


def _tensorboard(out_dir: Path, step: int):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=step or None)


def _validate_everywhere(model: BERT4Rec, corpus: SequenceCorpus, settings: Settings,
                         runtime: Runtime, started: float) -> tuple[dict[str, Any], bool]:
    """Rank 0 evaluates the valid split and checks the time budget; both are broadcast so all
    ranks decide alike."""
    box: list[Any] = [None]
    if runtime.main:
        metrics = validate(model, corpus, runtime.device, settings.loop.eval_batch_size)
        budget = settings.loop.time_budget
        box = [(metrics, budget > 0 and time.monotonic() - started >= budget)]
    if runtime.world > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _record_epoch(state: Progress, train: dict[str, float], metrics: dict[str, Any],
                  settings: Settings, model: BERT4Rec, out_dir: Path, runtime: Runtime,
                  writer) -> None:
    """Log the epoch, update early stopping and (rank 0) keep the best weights on disk."""
    value = metrics[settings.loop.metric]
    improved = value > state.best
    if improved:
        state.best, state.best_epoch, state.bad_epochs = value, state.epoch, 0
    else:
        state.bad_epochs += 1
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    state.history.append({"epoch": state.epoch, **train, **numbers})
    if not runtime.main:
        return
    if improved:
        rundir.save_weights(model, out_dir / _selected_weights(settings))
    for key, number in train.items():
        writer.add_scalar(f"train/{key}", number, state.step)
    for key, number in numbers.items():
        writer.add_scalar(f"valid/{key}", number, state.step)
    logger.info("epoch %d: loss %.4f, valid %s %.4f%s", state.epoch, train["loss"],
                settings.loop.metric, value, " (best)" if improved else "")


def _finish(out_dir: Path, model: BERT4Rec, corpus: SequenceCorpus, settings: Settings,
            state: Progress, runtime: Runtime, finished: bool) -> FitResult:
    """Reload the best weights; once training is over, rank 0 scores test, writes metrics.json."""
    if runtime.world > 1:
        dist.barrier()  # rank 0 has written the best weights
    weights = out_dir / _selected_weights(settings)
    model.load_state_dict(load_file(str(weights), device=str(runtime.device)))
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
    test = None
    if finished and runtime.main:
        test = validate(model, corpus, runtime.device, settings.loop.eval_batch_size, "test")
        metrics = {"best_epoch": state.best_epoch, "epochs_run": state.epoch,
                   "selected_by": f"valid {settings.loop.metric} (full ranking, seen excluded)",
                   "valid": best, "test": test, "history": state.history}
        rundir.write_json(out_dir / rundir.METRICS, metrics)
        logger.info("best epoch %d: valid %s, test %s", state.best_epoch, best, test)
    return FitResult(out_dir, model.eval(), state.best_epoch, best, test, state.history, finished)


def _selected_weights(settings: Settings) -> Path:
    """Where the weights chosen on validation live: the run's model, unless a refit follows."""
    return rundir.SELECTED if settings.loop.refit else Path(rundir.WEIGHTS)


def _refit(corpus: SequenceCorpus, settings: Settings, out_dir: Path, selected: FitResult,
           show: bool, runtime: Runtime) -> FitResult:
    """Train afresh on the training and validation items for the selected number of epochs,
    on the schedule that was validated (`loop.epochs` long), and keep those weights: the run's
    model and test figures become the refit's. Nothing is validated: the validation items are
    now training data. The selected model's test figures stay in `metrics.json` for comparison.
    """
    start = _start(corpus, settings, runtime, "train+valid")
    loader, model, optimizer, average = start.loader, start.model, start.optimizer, start.average
    trained = DistributedDataParallel(model) if runtime.world > 1 else model
    state, started, losses = Progress(), time.monotonic(), []
    while state.epoch < selected.best_epoch:
        state.epoch += 1
        losses.append(_run_epoch(trained, loader, optimizer, settings, state, runtime, show,
                                 "refit", start.item_log_q, average))
        logger.info("refit epoch %d of %d: loss %.4f", state.epoch, selected.best_epoch,
                    losses[-1])
    scored = start.scored.eval()
    if not runtime.main:
        return replace(selected, model=scored, test=None)
    rundir.save_weights(scored, out_dir / rundir.WEIGHTS)
    test = validate(scored, corpus, runtime.device, settings.loop.eval_batch_size, "test")
    metrics = json.loads((out_dir / rundir.METRICS).read_text())
    metrics["test"] = test
    metrics["refit"] = {"epochs": state.epoch, "seconds": time.monotonic() - started,
                        "losses": losses, "selected_test": selected.test}
    rundir.write_json(out_dir / rundir.METRICS, metrics)
    logger.info("refit for %d epochs: test %s", state.epoch, test)
    return replace(selected, model=scored, test=test, selected_test=selected.test)
