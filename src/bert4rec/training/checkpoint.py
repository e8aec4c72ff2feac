"""The state of a training run between epochs: `Progress`, and `checkpoints/last.pt`, which
carries it with the weights, optimiser and RNG states so a resumed run goes on
exactly as an uninterrupted one would. Saved and loaded without pickling (`rundir`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bert4rec import rundir
from bert4rec.config import Settings
from bert4rec.errors import ModelDirError
from bert4rec.model import BERT4Rec
from bert4rec.training.runtime import Runtime
from bert4rec.training.sparse_items import OptimizerPair

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """The training state that a checkpoint carries beyond the weights and optimiser."""

    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, entry: dict[str, float], value: float) -> bool:
        """Add this epoch's `entry` to the history and count it for early stopping by its
        selection metric `value`; returns whether it is the best epoch so far."""
        improved = value > self.best
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.history.append(entry)
        return improved

    def out_of_patience(self, patience: int) -> bool:
        """Whether `patience` epochs (0: never) passed without a better validation metric."""
        return patience > 0 and self.bad_epochs >= patience


def save_state(out_dir: Path, model: BERT4Rec, optimizer: torch.optim.Optimizer | OptimizerPair,
               masking: list[torch.Tensor], settings: Settings, state: Progress) -> None:
    """Everything needed to carry on exactly: weights, optimiser, progress, RNG states, settings.
    `masking` holds every rank's masking-generator state, in rank order (`masking_states`)."""
    checkpoint = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "progress": {k: v for k, v in vars(state).items()},
        "rng": {"torch": torch.get_rng_state(), "masking": masking,
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "settings": settings.to_dict(),
    }
    rundir.save_checkpoint(out_dir / rundir.CHECKPOINT, checkpoint)


def masking_states(loader: DataLoader, rank: int, world: int) -> list[torch.Tensor]:
    """Every rank's masking-generator state, in rank order; a collective call under DDP, so
    every rank makes it. Each rank masks with its own generator, and a resumed run needs all."""
    state = loader.collate_fn.generator.get_state()
    if world == 1:
        return [state]
    states: list[bytes | None] = [None] * world
    torch.distributed.all_gather_object(states, state.numpy().tobytes())
    return [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in states]


def restore_state(out_dir: Path, model: BERT4Rec,
                  optimizer: torch.optim.Optimizer | OptimizerPair,
                  loader: DataLoader, settings: Settings, runtime: Runtime) -> Progress:
    """Load `checkpoints/last.pt` into the model, optimiser and RNGs; the settings, and the
    number of processes that wrote it, must match."""
    checkpoint = rundir.load_checkpoint(out_dir / rundir.CHECKPOINT)
    saved = Settings.from_dict(checkpoint["settings"]).to_dict()  # less retired settings
    now = settings.to_dict()
    saved["loop"] = {**saved["loop"], "device": now["loop"]["device"]}
    if saved != now:
        changed = sorted(f"{s}.{k}" for s in now for k in now[s] if saved[s].get(k) != now[s][k])
        raise ModelDirError(f"{out_dir}: cannot resume with changed settings {changed}")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    masking = checkpoint["rng"]["masking"]
    if isinstance(masking, torch.Tensor):  # one rank's state, as written before 92f232a
        masking = [masking]
    rank, world = runtime.rank, runtime.world
    if len(masking) != world:
        raise ModelDirError(
            f"{out_dir}: the checkpoint was written by {len(masking)} training process(es); "
            f"resume with the same number (this run has {world}) so every rank masks as it would "
            "have")
    loader.collate_fn.generator.set_state(masking[rank])
    if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    logger.info("resuming %s after epoch %d", out_dir, checkpoint["progress"]["epoch"])
    return Progress(**checkpoint["progress"])
