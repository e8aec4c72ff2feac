"""The run directory: the one hand-off from training to serving, written and read safely.

Layout (docs/architecture.md): `config.json` ({"format_version", "model", "data", "train"}),
`model.safetensors` (best weights, no pickle), `items.parquet`, `metrics.json`, `tensorboard/`
and `checkpoints/last.pt` (resume state, read with `torch.load(weights_only=True)`).
Every file is written to a temporary name and renamed, so a crash leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bert4rec.errors import ModelDirError
from bert4rec.model import BERT4Rec, BERT4RecConfig

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ITEMS = "items.parquet"
METRICS = "metrics.json"
CHECKPOINT = Path("checkpoints") / "last.pt"
SELECTED = Path("checkpoints") / "selected.safetensors"
"""With `loop.refit`: the weights chosen on validation, before the refit writes WEIGHTS."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)` for a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Pretty JSON, atomically."""
    atomic_write(path, lambda temp: temp.write_text(json.dumps(values, indent=2) + "\n"))


def write_config(
    run_dir: Path, model: BERT4RecConfig, data: dict[str, Any], train: dict[str, Any]
) -> None:
    """The run's config.json: model shape, how to rebuild the corpus, and the training settings."""
    values = {"format_version": FORMAT_VERSION, "model": model.to_dict(), "data": data,
              "train": train}
    write_json(run_dir / CONFIG, values)


def save_weights(model: BERT4Rec, path: Path) -> None:
    """The module's weights as safetensors (contiguous CPU copies), atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda temp: save_file(tensors, str(temp), metadata={"format": "pt"}))


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run directory, with its format version checked."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; is {run_dir} a run directory of `bert4rec train`?")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{path}: not valid JSON ({err}); retrain or restore the file") from err
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format_version {version!r}, this bert4rec reads {FORMAT_VERSION}; "
            "retrain with this version or use the bert4rec that wrote it"
        )
    if not isinstance(config.get("model"), dict):
        raise ModelDirError(f"{path}: no 'model' section")
    return config


def load_model(
    run_dir: str | Path, device: torch.device | str = "cpu"
) -> tuple[BERT4Rec, dict[str, Any]]:
    """The trained model of a run directory (eval mode) and its full config dict.

    Refuses anything but safetensors weights, and weights whose names or shapes differ from
    the config, with a `ModelDirError` that says which.
    """
    config = read_config(run_dir)
    try:
        model_config = BERT4RecConfig.from_dict(config["model"])
    except (TypeError, ValueError) as err:
        raise ModelDirError(f"{Path(run_dir) / CONFIG}: bad model section: {err}") from err
    model = BERT4Rec(model_config)
    model.load_state_dict(_read_weights(Path(run_dir) / WEIGHTS, model.state_dict()))
    return model.to(device).eval(), config


def _read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, checked name by name and shape by shape."""
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; the run may not have finished an epoch")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ModelDirError(
            f"{path}: not a safetensors file ({err}); pickled weights are refused because "
            "loading them can run arbitrary code"
        ) from err
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or extra or wrong:
        raise ModelDirError(
            f"{path}: weights do not match config.json (missing {missing}, unexpected {extra}, "
            f"shape mismatches {wrong}); the two files come from different runs"
        )
    return tensors


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Resume state (tensors, numbers, strings, nested dicts/lists only), atomically."""
    atomic_write(path, lambda temp: torch.save(state, temp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Resume state written by `save_checkpoint`; refuses files that need unpickling code."""
    if not path.is_file():
        raise ModelDirError(f"{path}: no checkpoint to resume from; start without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ModelDirError(
            f"{path}: not a loadable checkpoint ({str(err).splitlines()[0]}); objects that need "
            "unpickling code are refused; start a fresh run without --resume"
        ) from err
