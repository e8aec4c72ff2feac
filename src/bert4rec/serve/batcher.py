"""Dynamic micro-batching: concurrent `/recommend` requests share one forward pass.

Each request's history is resolved to catalogue items before it is queued, and outside the
worker: item ids in place (dictionary lookups), titles in a thread of the event loop's pool,
since matching a title can take milliseconds. A bad title fails only its own request, and no
request's titles hold up the others. Handlers then put a job on a queue and await its future.
One worker thread takes the first job, gathers whatever else arrives within `window_s` (or
until `max_batch` jobs), scores them with `Recommender.recommend_resolved` — one forward pass
per (k, exclude_seen, allowed items) group: requests without allow or deny lists share one, and
so do requests whose lists allow the same items — and hands each answer back to the event
loop. Under light load
a request waits at most `window_s`; under heavy load the queue fills while the model runs, so
batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bert4rec.data.users import OnUnknown
from bert4rec.inference.catalog import CatalogItem, ItemId
from bert4rec.inference.recommender import Recommendations, Recommender

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    """One request, its history resolved, waiting for its answer (or exception) on `future`."""

    resolved: list[CatalogItem]
    k: int
    exclude_seen: bool
    explain: bool
    candidates: torch.Tensor | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    group: tuple[int, bool, bytes | None]
    """Jobs of one group share a forward pass: the same k, flag and allowed items."""


_STOP = None  # queue sentinel: the worker finishes its batch and exits


class MicroBatcher:
    """Serves `recommend` calls from any event loop through one worker thread."""

    def __init__(self, rec: Recommender, window_s: float = 0.001, max_batch: int = 64) -> None:
        self.rec = rec
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bert4rec-batcher", daemon=True)
        self._thread.start()

    async def recommend(
        self, history: Sequence[ItemId], k: int, exclude_seen: bool, explain: bool,
        candidates: torch.Tensor | None = None, on_unknown: OnUnknown = "raise",
    ) -> Recommendations:
        """`Recommender.recommend`, batched with whatever other requests arrive meanwhile;
        `on_unknown="skip"` leaves out history entries that match no item."""
        catalog = self.rec.catalog
        if all(not isinstance(ref, bool) and ref in catalog for ref in history):
            resolved = self.rec.resolve(history)  # ids only: lookups, no matching
        else:
            resolved = await asyncio.to_thread(self.rec.resolve, history, on_unknown)
        return await self.recommend_resolved(resolved, k, exclude_seen, explain, candidates)

    async def recommend_resolved(
        self, resolved: list[CatalogItem], k: int, exclude_seen: bool, explain: bool,
        candidates: torch.Tensor | None = None,
    ) -> Recommendations:
        """`recommend` for a history already resolved (a known user's), batched likewise;
        `candidates` (from `Recommender.candidates`) limits what may be offered."""
        loop = asyncio.get_running_loop()
        allowed = None  # digested here, not in the one worker thread
        if candidates is not None:
            allowed = hashlib.blake2b(candidates.numpy().tobytes()).digest()
        job = _Job(resolved, k, exclude_seen, explain, candidates, loop, loop.create_future(),
                   (k, exclude_seen, allowed))
        self._queue.put(job)
        return await job.future

    def close(self) -> None:
        """Let queued jobs finish, then stop the worker thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            try:
                self._serve(batch)
            except Exception as err:  # a bug here must not kill the worker or hang clients
                log.exception("micro-batch of %d requests failed", len(batch))
                for job in batch:
                    _settle(job, error=err)
            if stop:
                return

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` plus the jobs that arrive within the window; True if asked to stop."""
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)
        return batch, False

    def _serve(self, batch: list[_Job]) -> None:
        """One forward pass per group of jobs (`_Job.group`)."""
        groups: dict[tuple[int, bool, bytes | None], list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.group, []).append(job)
        for (k, exclude_seen, _), jobs in groups.items():
            try:
                results = self.rec.recommend_resolved(
                    [job.resolved for job in jobs], k=k, exclude_seen=exclude_seen,
                    candidates=jobs[0].candidates,
                )
            except Exception as err:  # fails this group only
                for job in jobs:
                    _settle(job, error=err)
                continue
            for job, result in zip(jobs, results, strict=True):
                try:
                    _settle(job, result=self.rec.explain(result) if job.explain else result)
                except Exception as err:
                    _settle(job, error=err)


def _settle(
    job: _Job, result: Recommendations | None = None, error: BaseException | None = None
) -> None:
    """Complete the job's future on its own event loop (futures are not thread-safe)."""

    def finish() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    try:
        job.loop.call_soon_threadsafe(finish)
    except RuntimeError:  # the loop has closed: nobody is waiting any more
        log.debug("dropped an answer for a closed event loop")
