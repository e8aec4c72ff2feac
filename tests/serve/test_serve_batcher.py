"""MicroBatcher: concurrent requests share a forward pass yet get their own, correct answers."""

import asyncio

import pytest
from tiny_run import FILMS, make_run_dir

from bert4rec.errors import AmbiguousTitleError, TitleNotFoundError
from bert4rec.inference.recommender import Recommender
from bert4rec.serve.batcher import MicroBatcher

IDS = [film[0] for film in FILMS]
# (history, k, exclude_seen, explain): mixed lengths, k and flags, so one batch holds groups
REQUESTS = [
    ([1], 100, True, False),  # 13 items can be offered ...
    (IDS[:10], 100, True, False),  # ... but only 4 here: each row keeps its own length
    (["Alien (1979)", 1200], 3, True, True),
    (IDS, 5, False, False),
    ([260, 1196], 3, True, False),
    ([], 2, True, False),
]


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Recommender:
    return Recommender.load(make_run_dir(tmp_path_factory.mktemp("run")))


class CountingRecommender(Recommender):
    """Records the number of histories in each `recommend_resolved` call (forward pass)."""

    def __init__(self, rec: Recommender) -> None:
        self.__dict__.update(rec.__dict__)
        self.calls: list[int] = []

    def recommend_resolved(self, histories, k=10, exclude_seen=True, candidates=None):
        self.calls.append(len(histories))
        return super().recommend_resolved(histories, k=k, exclude_seen=exclude_seen,
                                          candidates=candidates)


async def gather(batcher: MicroBatcher, requests: list) -> list:
    """Send every request at once; exceptions come back in place of answers."""
    calls = (batcher.recommend(*request) for request in requests)
    return await asyncio.gather(*calls, return_exceptions=True)


def answer(result) -> list:
    """Items, scores (to float32 noise: batched matrix products may sum in another order) and
    the explaining items."""
    return [(r.item, pytest.approx(r.score, abs=1e-3), [c.item for c in r.because])
            for r in result]


def test_one_batch_gives_each_request_its_own_answer(rec):
    counting = CountingRecommender(rec)
    # a window far longer than the test: the batch closes because it is full, not on time
    batcher = MicroBatcher(counting, window_s=60, max_batch=len(REQUESTS))
    try:
        results = asyncio.run(gather(batcher, REQUESTS))
    finally:
        batcher.close()
    assert sorted(counting.calls) == [1, 1, 2, 2]  # (100, T) x2, (3, T) x2, (5, F), (2, T)
    for (history, k, exclude_seen, explain), result in zip(REQUESTS, results, strict=True):
        alone = rec.recommend(history, k=k, exclude_seen=exclude_seen, explain=explain)
        assert answer(result) == answer(alone)
        assert [h.item for h in result.history] == [h.item for h in alone.history]
    assert [len(results[0]), len(results[1])] == [13, 4]


def test_a_bad_request_fails_alone(rec):
    requests = [
        ([1, 260], 3, True, False),
        (["Alien (1980)"], 3, True, False),  # no such title
        (["Hamlet"], 3, True, True),  # ambiguous
        ([999], 3, True, False),  # no such id
        ([1196], 3, True, True),
    ]
    # bad histories fail while resolving, before the queue: the batch holds the two good ones
    batcher = MicroBatcher(rec, window_s=60, max_batch=2)
    try:
        results = asyncio.run(gather(batcher, requests))
    finally:
        batcher.close()
    assert isinstance(results[1], TitleNotFoundError) and "Alien" in str(results[1])
    assert isinstance(results[2], AmbiguousTitleError)
    assert isinstance(results[3], TitleNotFoundError) and "999" in str(results[3])
    for index in (0, 4):
        history, k, exclude_seen, explain = requests[index]
        alone = rec.recommend(history, k=k, exclude_seen=exclude_seen, explain=explain)
        assert answer(results[index]) == answer(alone)


def test_a_failing_forward_pass_fails_its_batch_and_the_worker_goes_on(rec):
    class Broken(CountingRecommender):
        def recommend_resolved(self, histories, k=10, exclude_seen=True, candidates=None):
            if k == 7:
                raise RuntimeError("model exploded")
            return super().recommend_resolved(histories, k=k, exclude_seen=exclude_seen,
                                              candidates=candidates)

    batcher = MicroBatcher(Broken(rec), window_s=60, max_batch=2)
    try:
        first = asyncio.run(gather(batcher, [([1], 7, True, False), ([1], 2, True, False)]))
        later = asyncio.run(gather(batcher, [([260], 2, True, False), ([1], 7, True, False)]))
    finally:
        batcher.close()
    assert isinstance(first[0], RuntimeError) and "exploded" in str(first[0])
    assert answer(first[1]) == answer(rec.recommend([1], k=2))
    assert answer(later[0]) == answer(rec.recommend([260], k=2))


def test_close_answers_queued_requests_then_stops(rec):
    batcher = MicroBatcher(rec, window_s=0, max_batch=1)

    async def send_then_close() -> list:
        pending = [asyncio.ensure_future(batcher.recommend([i], 2, True, False)) for i in IDS[:4]]
        await asyncio.sleep(0)  # let every request reach the queue
        await asyncio.to_thread(batcher.close)
        return await asyncio.gather(*pending)

    results = asyncio.run(send_then_close())
    assert [answer(r) for r in results] == [answer(rec.recommend([i], k=2)) for i in IDS[:4]]
    assert not batcher._thread.is_alive()


def test_requests_share_a_forward_pass_only_with_the_same_allowed_items(rec):
    """Allow and deny lists: equal lists (built separately) batch together, others apart."""
    counting = CountingRecommender(rec)
    lists = [rec.candidates([1, 260, 2571]), rec.candidates([1, 260, 2571]),
             rec.candidates(None, [260]), None]
    batcher = MicroBatcher(counting, window_s=60, max_batch=len(lists))

    async def send() -> list:
        return await asyncio.gather(*(
            batcher.recommend([1214, 1200], 3, True, False, candidates=allowed)
            for allowed in lists))

    try:
        results = asyncio.run(send())
    finally:
        batcher.close()
    assert sorted(counting.calls) == [1, 1, 2]
    for allowed, result in zip(lists, results, strict=True):
        alone = rec.recommend([1214, 1200], k=3, candidates=allowed)
        assert answer(result) == answer(alone)
    assert {r.item for r in results[0]} == {1, 260, 2571}
    assert 260 not in {r.item for r in results[2]}


def test_skip_leaves_out_unknown_history_entries(rec):
    batcher = MicroBatcher(rec, window_s=0, max_batch=1)
    try:
        result = asyncio.run(batcher.recommend([2571, "Alien (1980)", 999], 2, True, False,
                                               on_unknown="skip"))
    finally:
        batcher.close()
    assert [h.item for h in result.history] == [2571]
    assert answer(result) == answer(rec.recommend([2571], k=2))
