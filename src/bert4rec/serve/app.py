"""The FastAPI app: `create_app(run_dir)` loads the Recommender once (lifespan) and serves the
JSON API plus the web page in `static/`.

Handlers get the Recommender through the `recommender` dependency rather than a global. The
light ones are plain `def` (FastAPI runs them in its thread pool); `/recommend` is `async` and
awaits the `MicroBatcher`, whose one worker thread scores concurrent requests in one forward
pass (docs/performance.md, "Serving").
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

from bert4rec import __version__
from bert4rec.catalog import CatalogItem
from bert4rec.errors import TitleError, TitleNotFoundError
from bert4rec.recommender import Recommendations, Recommender
from bert4rec.serve import schemas as S
from bert4rec.serve.batcher import MicroBatcher
from bert4rec.serve.headers import SecurityHeaders
from bert4rec.serve.limits import BodySizeLimit
from bert4rec.serve.settings import ServeSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


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
        app.state.recommender = recommender or Recommender.load(run_dir)
        app.state.batcher = MicroBatcher(
            app.state.recommender, settings.batch_window_ms / 1000, settings.max_batch
        )
        log.info("serving %s (%d items)", run_dir, app.state.recommender.n_items)
        yield
        app.state.batcher.close()

    app = FastAPI(
        title="bert4rec",
        version=__version__,
        description="Next-item recommendations from a trained BERT4Rec run directory.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, 413s included
    app.add_exception_handler(TitleError, _title_problem)
    app.include_router(_routes())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def recommender(request: Request) -> Recommender:
    """Dependency: the Recommender the lifespan loaded."""
    return request.app.state.recommender


async def batcher(request: Request) -> MicroBatcher:
    """Dependency: the micro-batcher in front of the Recommender (async: no thread hop)."""
    return request.app.state.batcher


Model = Annotated[Recommender, Depends(recommender)]
Batcher = Annotated[MicroBatcher, Depends(batcher)]
PROBLEMS = {404: {"model": S.Problem}, 413: {"model": S.Problem}, 422: {"model": S.Problem}}


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
    async def recommend(body: S.RecommendRequest, batch: Batcher) -> S.RecommendResponse:
        """The top `k` next items for a history of item ids or titles (oldest first)."""
        result = await batch.recommend(body.history, body.k, body.exclude_seen, body.explain)
        return S.RecommendResponse(
            history=[_item(entry) for entry in result.history],
            items=_ranked(result),
            exclude_seen=body.exclude_seen,
        )

    @router.get("/items", response_model=S.SearchResponse)
    def search(
        rec: Model,
        q: Annotated[str, Query(min_length=1, max_length=S.MAX_QUERY, description="title text")],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> S.SearchResponse:
        """Title search for autocomplete: prefix and substring matches, fuzzy if none."""
        return S.SearchResponse(query=q, items=[_item(e) for e in rec.catalog.search(q, limit)])

    @router.get("/items/{item}/similar", response_model=S.SimilarResponse, responses=PROBLEMS)
    def similar(
        item: str, rec: Model, k: Annotated[int, Query(ge=1, le=S.MAX_K)] = 10
    ) -> S.SimilarResponse:
        """The items whose embeddings are closest (cosine) to this item id."""
        try:
            result = rec.similar_items(_item_id(rec, item), k)
        except TitleNotFoundError as err:
            raise HTTPException(404, detail=str(err)) from err
        return S.SimilarResponse(item=_item(result.history[0]), items=_ranked(result))

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


def _item(entry: CatalogItem) -> S.Item:
    return S.Item(item=entry.item, title=entry.title, genres=list(entry.genres))


def _ranked(result: Recommendations) -> list[S.Recommendation]:
    return [
        S.Recommendation(
            rank=r.rank, item=r.item, title=r.title, genres=list(r.genres), score=r.score,
            because=[S.Contribution(**c.__dict__) for c in r.because],
        )
        for r in result
    ]


def _title_problem(request: Request, err: Exception) -> JSONResponse:
    """Unknown or ambiguous titles in a history: 422 with the closest catalogue items."""
    assert isinstance(err, TitleError)
    catalog = request.app.state.recommender.catalog
    problem = S.Problem(
        detail=str(err),
        query=err.query,
        candidates=[_item(catalog.entry(item)) for item, _ in err.candidates],
    )
    return JSONResponse(problem.model_dump(), status_code=422)
