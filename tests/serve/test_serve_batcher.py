"""MicroBatcher: concurrent requests share a forward pass yet get their own, correct answers."""

import asyncio

import pytest
from tiny_run import FILMS, USERS, make_run_dir

from bert4rec import rundir
from bert4rec.errors import AmbiguousTitleError, TitleNotFoundError, UnknownIdError
from bert4rec.inference.recommender import Recommender
from bert4rec.inference.requests import RecommendRequest
from bert4rec.serve.batcher import MicroBatcher

IDS = [film[0] for film in FILMS]
# (history, k, filter_viewed, explain): mixed lengths, k and flags, so one batch holds groups
REQUESTS = [
    ([1], 100, True, False),  # 13 items can be offered ...
    (IDS[:10], 100, True, False),  # ... but only 4 here: each row keeps its own length
    (["Alien (1979)", 1200], 3, True, True),
    (IDS, 5, False, False),
    ([260, 1196], 3, True, False),
    ([], 2, True, False),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"), users=USERS)


@pytest.fixture(scope="module")
def rec(run) -> Recommender:
    return Recommender.load(run)


class CountingRecommender(Recommender):
    """Records the number of histories in each `rank` call (forward pass)."""

    def __init__(self, rec: Recommender) -> None:
        self.__dict__.update(rec.__dict__)
        self.calls: list[int] = []

    def rank(self, query, **options):
        self.calls.append(len(query))
        return super().rank(query, **options)


def ask(history, k=3, filter_viewed=True, explain=False, **more):
    """One history's request and its explain flag, as the HTTP route makes them."""
    return RecommendRequest(histories=[history], k=k, filter_viewed=filter_viewed, **more), explain


async def gather(batcher: MicroBatcher, requests: list) -> list:
    """Send every request at once; exceptions come back in place of answers."""
    calls = (batcher.recommend(request, None, explain) for request, explain in requests)
    answers = await asyncio.gather(*calls, return_exceptions=True)
    return [a[0] if isinstance(a, list) else a for a in answers]  # one history each


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
        results = asyncio.run(gather(batcher, [ask(*r) for r in REQUESTS]))
    finally:
        batcher.close()
    assert sorted(counting.calls) == [1, 1, 2, 2]  # (100, T) x2, (3, T) x2, (5, F), (2, T)
    for (history, k, filter_viewed, explain), result in zip(REQUESTS, results, strict=True):
        alone = rec.recommend(history, k=k, filter_viewed=filter_viewed, explain=explain)
        assert answer(result) == answer(alone)
        assert [h.item for h in result.history] == [h.item for h in alone.history]
    assert [len(results[0]), len(results[1])] == [13, 4]


def test_a_bad_request_fails_alone(rec):
    requests = [
        ask([1, 260]),
        ask(["Alien (1980)"]),  # no such title
        ask(["Hamlet"], explain=True),  # ambiguous
        ask([999]),  # no such id
        ask([1196], explain=True),
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
    assert answer(results[0]) == answer(rec.recommend([1, 260], k=3))
    assert answer(results[4]) == answer(rec.recommend([1196], k=3, explain=True))


def test_a_failing_forward_pass_fails_its_batch_and_the_worker_goes_on(rec):
    class Broken(CountingRecommender):
        def rank(self, query, **options):
            if query.k == 7:
                raise RuntimeError("model exploded")
            return super().rank(query, **options)

    batcher = MicroBatcher(Broken(rec), window_s=60, max_batch=2)
    try:
        first = asyncio.run(gather(batcher, [ask([1], k=7), ask([1], k=2)]))
        later = asyncio.run(gather(batcher, [ask([260], k=2), ask([1], k=7)]))
    finally:
        batcher.close()
    assert isinstance(first[0], RuntimeError) and "exploded" in str(first[0])
    assert answer(first[1]) == answer(rec.recommend([1], k=2))
    assert answer(later[0]) == answer(rec.recommend([260], k=2))


def test_close_answers_queued_requests_then_stops(rec):
    batcher = MicroBatcher(rec, window_s=0, max_batch=1)

    async def send_then_close() -> list:
        pending = [asyncio.ensure_future(batcher.recommend(ask([i], k=2)[0])) for i in IDS[:4]]
        await asyncio.sleep(0)  # let every request reach the queue
        await asyncio.to_thread(batcher.close)
        return await asyncio.gather(*pending)

    results = asyncio.run(send_then_close())
    assert [answer(r[0]) for r in results] == [answer(rec.recommend([i], k=2)) for i in IDS[:4]]
    assert not batcher._thread.is_alive()


def test_requests_share_a_forward_pass_only_with_the_same_allowed_items(rec):
    """Allow and deny lists: equal lists (sent separately) batch together, others apart."""
    counting = CountingRecommender(rec)
    lists = [{"items": [1, 260, 2571]}, {"items": [2571, 260, 1]}, {"exclude": [260]}, {}]
    batcher = MicroBatcher(counting, window_s=60, max_batch=len(lists))
    try:
        results = asyncio.run(gather(batcher, [ask([1214, 1200], **more) for more in lists]))
    finally:
        batcher.close()
    assert sorted(counting.calls) == [1, 1, 2]
    for more, result in zip(lists, results, strict=True):
        assert answer(result) == answer(rec.recommend([1214, 1200], k=3, **more))
    assert {r.item for r in results[0]} == {1, 260, 2571}
    assert 260 not in {r.item for r in results[2]}


def test_skip_leaves_out_unknown_history_entries(rec):
    batcher = MicroBatcher(rec, window_s=0, max_batch=1)
    try:
        [result] = asyncio.run(batcher.recommend(ask([2571, "Alien (1980)", 999], k=2,
                                                     on_unknown="skip")[0]))
    finally:
        batcher.close()
    assert [h.item for h in result.history] == [2571]
    assert answer(result) == answer(rec.recommend([2571], k=2))


def test_users_batch_with_histories_and_an_unknown_user_skipped_gets_nothing(run, rec):
    counting = CountingRecommender(rec)
    users = rundir.read_users(run, rec.n_items)
    batcher = MicroBatcher(counting, window_s=60, max_batch=2)

    async def send() -> list:
        return await asyncio.gather(
            batcher.recommend(RecommendRequest(users=[7], k=3), users),
            batcher.recommend(RecommendRequest(histories=[USERS[8]], k=3)),
            batcher.recommend(RecommendRequest(users=[99], k=3, on_unknown="skip"), users))

    try:
        user, history, unknown = asyncio.run(send())
    finally:
        batcher.close()
    assert counting.calls == [2] and unknown == []
    assert answer(user[0]) == answer(rec.recommend(USERS[7], k=3))
    assert answer(history[0]) == answer(rec.recommend(USERS[8], k=3))
    with pytest.raises(UnknownIdError, match="user 99"):
        rec.answer(RecommendRequest(users=[99]), users)
