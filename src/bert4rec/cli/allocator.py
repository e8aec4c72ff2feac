"""Run long commands under jemalloc when it is installed: leaner and flatter than glibc's malloc.

PyTorch's CPU tensors come from the C allocator. When batches changed width and their number of
masked targets every step, glibc's heap fragmented: on ML-100k (`fast` at 200-item windows, one
thread) the process grew from 0.7 to 1.4 GiB in 25 epochs and to 3.1 GiB in 190, while under
jemalloc it stayed flat. Training batches now come in few shapes (`data/batches.py`), which
keeps glibc flat too (+7% from epoch 5 to 25, peak 0.87 GiB); jemalloc stays a little leaner
(+2%, 0.75 GiB). `malloc_trim` had not cured it; a 1 MiB mmap threshold did, at a cost in
speed, and training now fixes it at 8 MiB on glibc (`training/memory.py`;
docs/performance.md). jemalloc can only be chosen before the process starts, so the command
line restarts itself once with `LD_PRELOAD` set, as PyTorch's own CPU launcher
(`torch.backends.xeon.run_cpu`) does. `BERT4REC_MALLOC=system` keeps the C library's allocator.

Training keeps freed pages (`TRAINING_CONF`): a training step reuses the same sizes, so handing
them back only to fault them in again made epochs 1.4x slower than glibc's, while keeping them
made epochs 9% faster than glibc's with a flat resident size (0.79 GiB on the run above).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping

ENV = "BERT4REC_MALLOC"
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")  # an allocator the user chose already
TRAINING_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"  # never return freed pages to the system


def jemalloc_preload(env: Mapping[str, str], platform: str, library: str | None) -> str | None:
    """The `LD_PRELOAD` value to restart with, or None to keep this process as it is.

    `library` is what `ctypes.util.find_library("jemalloc")` found (None if not installed).
    """
    preload = env.get("LD_PRELOAD", "")
    if (not platform.startswith("linux") or library is None or env.get(ENV)
            or any(name in preload for name in PRELOADED)):
        return None
    return f"{library}:{preload}" if preload else library


def restart_under_jemalloc(conf: str = "") -> None:
    """Replace this process by the same command under jemalloc, if installed; else return.

    `conf` becomes `MALLOC_CONF` unless the user set one. Call this first thing in a program's
    entry point, before any work: `os.execve` does not return.
    """
    preload = jemalloc_preload(os.environ, sys.platform, ctypes.util.find_library("jemalloc"))
    if preload is None:
        return
    env = {**os.environ, "LD_PRELOAD": preload, ENV: "jemalloc"}
    if conf and "MALLOC_CONF" not in env:
        env["MALLOC_CONF"] = conf
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
