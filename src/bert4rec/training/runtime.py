"""Where this training process runs: its device, and its rank among DDP processes when launched
by torchrun (the process group is joined here: gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    """Where this process runs and its place among DDP processes (rank 0 of 1 when alone)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA (this process's GPU under DDP), then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        name = "mps" if torch.backends.mps.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; pass device='cpu'")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def start_runtime(device_name: str) -> Runtime:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world == 1:
        return Runtime(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, rank, world, owns)


@contextmanager
def joined_runtime(device_name: str) -> Iterator[Runtime]:
    """`start_runtime`, leaving the process group on the way out if this process joined it:
    after a barrier when the work ended normally, so that no rank tears down its side (and
    rank 0 the store every rank talks to) while another is still writing or exiting."""
    runtime = start_runtime(device_name)
    try:
        yield runtime
        if runtime.owns_group:
            dist.barrier()
    finally:
        if runtime.owns_group:
            dist.destroy_process_group()
