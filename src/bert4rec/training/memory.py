"""Whether a model fits the machine, checked before anything is allocated.

Each setting has its own upper bound (`config.py`), but a model's size comes from the product
of several (width, depth, catalogue size), and its catalogue from the data: `check_fits`
runs where the settings meet the data, at the start of `fit`. It counts, in float32, the
parameters with their gradients and Adam's two moments, and a
lower bound on one step's activations: what training certainly allocates. A model whose
count exceeds the device's memory (the machine's RAM, or its cgroup limit, for the CPU; the
GPU's own memory for CUDA) is refused with the figures, instead of being allocated until
the machine swaps or the allocation fails.

`fix_mmap_threshold` bounds the other side: what glibc's allocator keeps after a step frees.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import torch

from bert4rec.config import Settings
from bert4rec.errors import SettingsError
from bert4rec.model import BERT4RecConfig

FLOAT = 4
"""Bytes of a float32."""
MMAP_THRESHOLD = 8 << 20
"""Blocks of this many bytes and more get mappings of their own (`fix_mmap_threshold`)."""
M_MMAP_THRESHOLD = -3
"""glibc's `mallopt` parameter number for it (malloc.h)."""
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                 Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def parameter_count(config: BERT4RecConfig) -> int:
    """The number of parameters `BERT4Rec(config)` has, from the shape alone: the item and
    position embeddings, each block's attention and feed-forward, LayerNorms, the transform
    head, the output bias and, with item features, each value's embedding and bias."""
    h, f = config.hidden, config.ff_mult
    block = (4 + 2 * f) * h * h + (9 + f) * h
    return (config.vocab_size * h + config.max_len * h + config.vocab_size
            + config.layers * block + h * h + 7 * h + config.feature_vocab_size * (h + 1))


def training_bytes(settings: Settings, vocab_size: int) -> tuple[int, int]:
    """(bytes for the parameters, their gradients and Adam's moments; a lower bound on the
    bytes of one training step's activations)."""
    config = BERT4RecConfig.from_shape(settings.model, vocab_size)
    weights = parameter_count(config) * 4 * FLOAT  # weights, gradients, Adam's 2 moments
    rows = settings.loop.batch_size * config.max_len  # positions of one batch
    per_layer = (10 + 2 * config.ff_mult) * rows * config.hidden  # kept for the backward
    logits = 2 * settings.loop.batch_size * vocab_size if settings.optim.loss == "full" else 0
    return weights, (config.layers * per_layer + logits) * FLOAT


def device_memory(device: torch.device) -> tuple[int, str]:
    """The memory a model on `device` can use, in bytes, and its name in words."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return total, f"the GPU's memory ({torch.cuda.get_device_name(device)})"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            limit = int(path.read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if limit < total:
            return limit, "this process's memory limit (cgroup)"
    return total, "this machine's memory"


def check_fits(settings: Settings, vocab_size: int, device: torch.device) -> None:
    """Refuse, with the figures and the settings to lower, a model that cannot train on
    `device`: its parameter and activation memory exceeds the device's memory."""
    weights, activations = training_bytes(settings, vocab_size)
    total, where = device_memory(device)
    if weights + activations <= total:
        return
    config = BERT4RecConfig.from_shape(settings.model, vocab_size)
    raise SettingsError(
        f"this model cannot train here: its {parameter_count(config):,} parameters need "
        f"{gib(weights)} with their gradients and Adam's moments, and one batch's activations "
        f"at least {gib(activations)}, {gib(weights + activations)} in all; {where} is "
        f"{gib(total)}. Lower model.hidden ({settings.model.hidden}), model.layers "
        f"({settings.model.layers}), model.max_len ({settings.model.max_len}) or "
        f"loop.batch_size ({settings.loop.batch_size}); the catalogue has {vocab_size - 2:,} "
        "items"
    )


def gib(size: int) -> str:
    """Bytes in GiB (or TiB), as the messages say them."""
    if size >= 1 << 40:
        return f"{size / (1 << 40):,.1f} TiB"
    return f"{size / (1 << 30):,.1f} GiB"


def fix_mmap_threshold(env: dict[str, str] | None = None) -> bool:
    """On glibc, give every block of MMAP_THRESHOLD bytes or more a mapping of its own, which
    goes back to the system when freed. By default glibc raises that threshold to the largest
    block freed so far (up to 32 MiB), after which a training step's tens-of-MiB temporaries
    come from the heap and stay there: `short` on Amazon Beauty held 1.9 GiB after 3 epochs,
    and 0.74 GiB with the fixed threshold, at the same speed (docs/performance.md). Leaves a
    threshold the user set (`MALLOC_MMAP_THRESHOLD_`) alone; returns whether it set one."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in env:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc; musl and others have no such file
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    return mallopt is not None and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
