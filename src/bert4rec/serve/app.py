"""The FastAPI app: `create_app(run_dir)` loads the Recommender once (lifespan) and serves the
JSON API plus the web page in `static/`.

Handlers get the Recommender through the `recommender` dependency rather than a global. The
light ones are plain `def` (FastAPI runs them in its thread pool); `/recommend` is `async` and
awaits the `MicroBatcher`, whose one worker thread scores concurrent requests in one forward
pass (docs/performance.md, "Serving"). `/docs` (Swagger UI) loads its scripts from the
fastapi-offline package, not a CDN, so it works on a machine without internet.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from bert4rec import __version__, rundir
from bert4rec.data.users import UserHistories
from bert4rec.errors import ModelDirError, TitleError, TitleNotFoundError, UnknownIdError
from bert4rec.inference.catalog import CatalogItem
from bert4rec.inference.recommender import Recommendations, Recommender
from bert4rec.inference.requests import RecommendRequest
from bert4rec.serve import schemas as S
from bert4rec.serve.batcher import MicroBatcher
from bert4rec.serve.headers import SecurityHeaders
from bert4rec.serve.limits import BodySizeLimit
from bert4rec.serve.links import ItemLinks
from bert4rec.serve.settings import ServeSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI scripts are served from (fastapi-offline's files)."""


def create_app(
    run_dir: str | Path, settings: ServeSettings | None = None,
    recommender: Recommender | None = None,
) -> FastAPI:
    """The app for one run directory; the model is loaded when the app starts, not here,
    unless it is given already loaded as `recommender` (the CLI loads it first, so that a
    broken run directory fails with one line before any server starts)."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        rec = app.state.recommender = recommender or Recommender.load(run_dir)
        app.state.links = ItemLinks(rundir.read_items(run_dir))
        app.state.users, app.state.no_users = _read_users(run_dir, rec.n_items)
        if app.state.users is not None:  # autocomplete: most watched first among equals
            rec.catalog.rank_by(app.state.users.item_counts(rec.n_items))
        app.state.batcher = MicroBatcher(rec, settings.batch_window_ms / 1000, settings.max_batch)
        log.info("serving %s (%d items, %s users, links for %d)", run_dir, rec.n_items,
                 f"{len(app.state.users):,}" if app.state.users else "no", len(app.state.links))
        yield
        app.state.batcher.close()

    app = FastAPIOffline(
        title="bert4rec",
        version=__version__,
        description="Next-item recommendations from a trained BERT4Rec run directory.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        redoc_url=None,  # ReDoc would fetch its logo from a CDN; Swagger UI needs nothing
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, 413s included
    app.add_exception_handler(TitleError, _title_problem)
    app.add_exception_handler(UnknownIdError, _unknown_ids)
    app.include_router(_routes())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def recommender(request: Request) -> Recommender:
    """Dependency: the Recommender the lifespan loaded."""
    return request.app.state.recommender


def links(request: Request) -> ItemLinks:
    """Dependency: each item's links out."""
    return request.app.state.links


async def batcher(request: Request) -> MicroBatcher:
    """Dependency: the micro-batcher in front of the Recommender (async: no thread hop)."""
    return request.app.state.batcher


Model = Annotated[Recommender, Depends(recommender)]
Batcher = Annotated[MicroBatcher, Depends(batcher)]
Links = Annotated[ItemLinks, Depends(links)]
PROBLEMS = {404: {"model": S.Problem}, 413: {"model": S.Problem}, 422: {"model": S.Problem}}


def _read_users(run_dir: str | Path, n_items: int) -> tuple[UserHistories | None, str]:
    """users.parquet, or None and why not: a run without it still answers histories."""
    try:
        return rundir.read_users(run_dir, n_items), ""
    except ModelDirError as err:
        log.warning("recommending by user id is off: %s", err)
        return None, str(err)


def _routes() -> APIRouter:
    """Every endpoint; the page at `/` is left out of the OpenAPI schema."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @router.get("/health", response_model=S.Health)
    def health(rec: Model) -> S.Health:
        """The service is up and its model is loaded."""
        return S.Health(status="ok", items=rec.n_items, max_len=rec.model.config.max_len)

    @router.post("/recommend", response_model=S.RecommendResponse, responses=PROBLEMS)
    async def recommend(
        body: S.RecommendRequest, batch: Batcher, request: Request
    ) -> S.RecommendResponse:
        """The top `k` next items for a known user or a history of item ids or titles (oldest
        first), from the allowed `items` (all by default) less the `exclude`d ones."""
        state = request.app.state
        if body.user is not None and state.users is None:
            raise UnknownIdError(f"this model cannot recommend by user id: {state.no_users}",
                                 [body.user])
        ask = RecommendRequest(
            users=None if body.user is None else [body.user],
            histories=None if body.user is not None else [body.history],
            k=body.k, filter_viewed=body.filter_viewed, items=body.items, exclude=body.exclude,
            on_unknown=body.on_unknown,
            recent=None if body.recent is None else {body.user: body.recent})
        results, query = await batch.answer(ask, state.users, body.explain)
        if not results:  # an unknown user, skipped
            return S.RecommendResponse(user=body.user, history=[], items=[],
                                       filter_viewed=body.filter_viewed,
                                       recent_unknown=query.recent_unknown)
        history = results[0].history
        if body.user is not None:  # what the model read of a user's whole history
            history = history[-(batch.rec.model.config.max_len - 1) :]
        return S.RecommendResponse(
            user=body.user,
            history=[_item(entry, state.links) for entry in history],
            items=_ranked(results[0], state.links),
            filter_viewed=body.filter_viewed,
            recent_unknown=query.recent_unknown,
        )

    @router.get("/items", response_model=S.SearchResponse)
    def search(
        rec: Model,
        link: Links,
        q: Annotated[str, Query(min_length=1, max_length=S.MAX_QUERY, description="title text")],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> S.SearchResponse:
        """Title search for autocomplete, best match first: exact, prefix, word-prefix and
        substring matches, then close look-alikes (typos); none for a query like nothing
        in the catalogue. Popularity orders equally good matches."""
        found = rec.catalog.search(q, limit)
        return S.SearchResponse(query=q, items=[_item(e, link) for e in found])

    @router.get("/items/{item}/similar", response_model=S.SimilarResponse, responses=PROBLEMS)
    def similar(
        item: str, rec: Model, link: Links, k: Annotated[int, Query(ge=1, le=S.MAX_K)] = 10
    ) -> S.SimilarResponse:
        """The items whose embeddings are closest (cosine) to this item id."""
        try:
            result = rec.similar_items(_item_id(rec, item), k)
        except TitleNotFoundError as err:
            raise HTTPException(404, detail=str(err)) from err
        return S.SimilarResponse(item=_item(result.history[0], link), items=_ranked(result, link))

    return router


def _item_id(rec: Recommender, raw: str) -> int | str:
    """A path segment as the catalogue's id type; unknown ids are left for a 404."""
    if raw in rec.catalog:
        return raw
    try:
        number = int(raw)
    except ValueError:
        raise HTTPException(404, detail=f"item id {raw!r} is not in the catalogue") from None
    if number not in rec.catalog:
        raise HTTPException(404, detail=f"item id {number} is not in the catalogue")
    return number


def _item(entry: CatalogItem, links: ItemLinks) -> S.Item:
    return S.Item(item=entry.item, title=entry.title, genres=list(entry.genres),
                  links=links(entry.item))


def _ranked(result: Recommendations, links: ItemLinks) -> list[S.Recommendation]:
    return [
        S.Recommendation(
            rank=r.rank, item=r.item, title=r.title, genres=list(r.genres), score=r.score,
            links=links(r.item), because=[S.Contribution(**c.__dict__) for c in r.because],
        )
        for r in result
    ]


def _title_problem(request: Request, err: Exception) -> JSONResponse:
    """Unknown or ambiguous titles in a history: 422 with the closest catalogue items."""
    assert isinstance(err, TitleError)
    state = request.app.state
    problem = S.Problem(
        detail=str(err),
        query=err.query,
        candidates=[_item(state.recommender.catalog.entry(item), state.links)
                    for item, _ in err.candidates],
    )
    return JSONResponse(problem.model_dump(), status_code=422)


def _unknown_ids(request: Request, err: Exception) -> JSONResponse:
    """Users or item ids the model does not know (with on_unknown="raise"): 422 naming them."""
    assert isinstance(err, UnknownIdError)
    problem = S.Problem(detail=str(err), ids=list(err.ids))  # as the request sent them
    return JSONResponse(problem.model_dump(), status_code=422)

