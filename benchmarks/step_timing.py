"""Training steps timed side by side for the benchmark scripts: variants of one run alternate
on the same batches, so the machine's drift touches each alike.

    from step_timing import best_step_seconds   # benchmarks/ is the script's folder
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bert4rec.training.loop import TrainingRun


def best_step_seconds(run: TrainingRun, batches: list, variants: dict[str, Callable[[], None]],
                      rounds: int) -> dict[str, float]:
    """Best seconds per step of each variant on the same `batches` (the first a warm-up):
    `variants[name]()` switches `run` to it; the variants alternate, `rounds` times."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, switch in variants.items():
            switch()
            run.step(*batches[0])  # warm-up
            start = time.perf_counter()
            for inputs, labels in batches[1:]:
                run.step(inputs, labels)
            best[name] = min(best[name], (time.perf_counter() - start) / (len(batches) - 1))
    return best
