"""Dynamic micro-batching: concurrent `/recommend` requests share one forward pass.

Each request is resolved to a `Query` (`Recommender.query`: vocabulary indices and the
allowed items) before it is queued, and outside the worker: a history of known item ids in
place (dictionary lookups), anything else (titles, users, allow and deny lists) in a thread of
the event loop's pool, since matching a title can take milliseconds. A bad request fails only
itself, and no request's titles hold up the others. Handlers then put a job on a queue and
await its future. One worker thread takes the first job, gathers whatever else arrives within
`window_s` (or until `max_batch` jobs), ranks them with `Recommender.rank` (the second half of
`Recommender.answer`, the one recommend path) — one forward pass per (k, filter_viewed,
allowed items) group: requests without allow or deny lists share one, and so do requests
whose lists allow the same items — and hands each answer back to the event loop. Under light
load a request waits at most `window_s`; under heavy load the queue fills while the model runs,
so batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass

from bert4rec.data.users import UserHistories
from bert4rec.inference.catalog import Catalog
from bert4rec.inference.recommender import Recommendations, Recommender
from bert4rec.inference.requests import Query, RecommendRequest

log = logging.getLogger(__name__)

Group = tuple[int, bool, bytes | None]
"""Jobs of one group share a forward pass: the same k, filter_viewed and allowed items."""


@dataclass(eq=False)
class _Job:
    """One request, resolved, waiting for its answers (or exception) on `future`."""

    query: Query
    explain: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    group: Group


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

    async def recommend(self, request: RecommendRequest, users: UserHistories | None = None,
                        explain: bool = False) -> list[Recommendations]:
        """`Recommender.answer(request, users)` as one `Recommendations` per history answered
        (none for an unknown user skipped), batched with whatever other requests arrive
        meanwhile; `explain` adds each recommendation's explanation."""
        return (await self.answer(request, users, explain))[0]

    async def answer(self, request: RecommendRequest, users: UserHistories | None = None,
                     explain: bool = False) -> tuple[list[Recommendations], Query]:
        """`recommend`, with the `Query` the request resolved to (what it counted of its
        recent events, for one)."""
        if _ids_only(request, self.rec.catalog):
            query = self.rec.query(request)  # lookups, no matching
        else:
            query = await asyncio.to_thread(self.rec.query, request, users)
        if not len(query):
            return [], query
        loop = asyncio.get_running_loop()
        allowed = None  # digested here, not in the one worker thread
        if query.candidates is not None:
            allowed = hashlib.blake2b(query.candidates.numpy().tobytes()).digest()
        job = _Job(query, explain, loop, loop.create_future(),
                   (query.k, query.filter_viewed, allowed))
        self._queue.put(job)
        return await job.future, query

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
        groups: dict[Group, list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.group, []).append(job)
        for jobs in groups.values():
            try:
                ranking = self.rec.rank(Query.concat([job.query for job in jobs]))
                results = self.rec.results(ranking)
            except Exception as err:  # fails this group only
                for job in jobs:
                    _settle(job, error=err)
                continue
            start = 0
            for job in jobs:
                mine, start = results[start : start + len(job.query)], start + len(job.query)
                try:
                    _settle(job, result=[self.rec.explain(r) for r in mine] if job.explain
                            else mine)
                except Exception as err:
                    _settle(job, error=err)


def _ids_only(request: RecommendRequest, catalog: Catalog) -> bool:
    """Whether `request` is histories of known item ids and nothing else to look up: quick
    enough to resolve on the event loop."""
    if request.histories is None or request.items is not None or request.exclude is not None:
        return False
    return all(not isinstance(ref, bool) and ref in catalog
               for history in request.histories for ref in history)


def _settle(
    job: _Job, result: list[Recommendations] | None = None, error: BaseException | None = None
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
