"""Training steps timed side by side for the benchmark scripts: variants of one run alternate
on the same batches, so the machine's drift touches each alike.

    from step_timing import best_step_seconds   # benchmarks/ is the script's folder
    from step_timing import best_run_seconds    # separate runs instead of switches
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bert4rec.training.loop import TrainingRun


def best_step_seconds(run: TrainingRun, batches: list, variants: dict[str, Callable[[], None]],
                      rounds: int) -> dict[str, float]:
    """Best seconds per step of each variant on the same `batches` (the first a warm-up):
    `variants[name]()` switches `run` to it; the variants alternate, `rounds` times."""

    def switched(switch: Callable[[], None]) -> Callable[[], TrainingRun]:
        return lambda: switch() or run

    return best_run_seconds({name: switched(s) for name, s in variants.items()}, batches, rounds)


def best_run_seconds(variants: dict[str, Callable[[], TrainingRun]], batches: list,
                     rounds: int) -> dict[str, float]:
    """`best_step_seconds` where `variants[name]()` gives the training run that takes the
    variant's steps (runs of different models, on batches all of them can take)."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, ready in variants.items():
            run = ready()
            run.step(*batches[0])  # warm-up
            start = time.perf_counter()
            for inputs, labels in batches[1:]:
                run.step(inputs, labels)
            best[name] = min(best[name], (time.perf_counter() - start) / (len(batches) - 1))
    return best
