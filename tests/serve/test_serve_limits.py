"""No request can stall the service (issue 14): titles have a length limit, fuzzy matching
scores a bounded candidate set, and titles are resolved outside the one batch worker, so a
hostile request and a normal one sent together leave the normal one answering at once."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import polars as pl
import pytest
from live_server import live_server
from rapidfuzz import process
from tiny_run import make_run_dir

from bert4rec.errors import TitleNotFoundError
from bert4rec.inference import catalog as catalog_module
from bert4rec.inference.catalog import FUZZY_CANDIDATES, MAX_TITLE, Catalog
from bert4rec.serve import create_app

N_TITLES = 3000
WORDS = ["night", "river", "love", "return", "king", "stone", "dark", "city", "last", "summer",
         "ghost", "war", "blue", "house", "secret", "road", "star", "island", "winter", "dream"]


def many_films() -> pl.DataFrame:
    """An item table of N_TITLES distinct made-up titles, enough for a whole-catalogue fuzzy
    scan of a long title to take many seconds (it did before issue 14)."""
    rng = np.random.default_rng(0)
    titles = [f"{' '.join(rng.choice(WORDS, 3)).title()} {n} ({1950 + n % 70})"
              for n in range(N_TITLES)]
    return pl.DataFrame(
        {"index": range(1, N_TITLES + 1), "item": range(1, N_TITLES + 1), "title": titles,
         "genres": [["Drama"]] * N_TITLES},
        schema={"index": pl.Int64, "item": pl.Int64, "title": pl.String,
                "genres": pl.List(pl.String)},
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app under uvicorn in a thread on 127.0.0.1: (base URL, the app)."""
    app = create_app(make_run_dir(tmp_path_factory.mktemp("run"), items=many_films()))
    with live_server(app) as base:
        yield base, app


def together(base: str, hostile: dict, normal: dict,
             release: threading.Event | None = None) -> tuple[httpx.Response, float]:
    """Send `hostile`, then `normal` while it is in flight, then set `release`; the hostile
    answer and the normal request's time."""
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{base}/recommend", json=hostile, timeout=120)))
    sender.start()
    time.sleep(0.2)  # the hostile request is in the server
    started = time.monotonic()
    answer = httpx.post(f"{base}/recommend", json=normal, timeout=120)
    elapsed = time.monotonic() - started
    if release is not None:
        release.set()
    sender.join()
    assert answer.status_code == 200, answer.text
    return answers[0], elapsed


def test_a_huge_title_is_422_and_holds_up_no_one(served):
    base, _ = served
    hostile = {"history": ["x" * 60_000]}  # 11-57 s of fuzzy matching before issue 14
    refused, elapsed = together(base, hostile, {"history": [1, 2, 3], "k": 5})
    assert refused.status_code == 422
    assert f"at most {MAX_TITLE} characters" in refused.text
    assert elapsed < 1.0  # generous: the normal request alone takes milliseconds


def test_slow_title_resolution_does_not_block_the_batch_worker(served, monkeypatch):
    """Resolution runs outside the worker: even a title that took seconds to resolve would
    delay only its own request, whether the others send ids or titles."""
    base, app = served
    recommender = app.state.recommender
    find = recommender.catalog.find
    release = threading.Event()

    def slow_find(title: str):
        if title == "slow":  # takes 5 s, or until the normal request has been answered
            release.wait(timeout=5)
            raise TitleNotFoundError("no item matches title 'slow'", title, [])
        return find(title)

    monkeypatch.setattr(recommender.catalog, "find", slow_find)
    title = recommender.catalog.title(7)
    for normal in ({"history": [7, 8]}, {"history": [title, 8]}):
        release.clear()
        refused, elapsed = together(base, {"history": ["slow"]}, normal, release)
        assert refused.status_code == 422 and elapsed < 1.0


def test_fuzzy_matching_scores_a_bounded_candidate_set(monkeypatch):
    catalog = Catalog(many_films())
    scored: list[int] = []
    extract = process.extract

    def counting(query, choices, **kwargs):
        scored.append(len(choices))
        return extract(query, choices, **kwargs)

    monkeypatch.setattr(catalog_module.process, "extract", counting)
    for query in ("Night River Lvoe 12 (1962)", "q" * MAX_TITLE, "Stone " * 50):
        with pytest.raises(TitleNotFoundError):
            catalog.find(query)
    assert scored and max(scored) <= FUZZY_CANDIDATES < N_TITLES
    near_miss = catalog.title(13).replace(" 12 (", " 12x (")  # item 13 is film number 12
    assert catalog.find(near_miss) == 13  # the right film is among the candidates
    with pytest.raises(TitleNotFoundError, match="is 301 characters long; titles have at most"):
        catalog.find("q" * (MAX_TITLE + 1))
