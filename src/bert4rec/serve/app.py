"""The FastAPI app: `create_app(run_dir)` loads the Recommender once (lifespan) and serves the
JSON API plus the web page in `static/`.

Handlers get the Recommender through the `recommender` dependency rather than a global. The
light ones are plain `def` (FastAPI runs them in its thread pool); `/recommend` is `async` and
awaits the `MicroBatcher`, whose one worker thread scores concurrent requests in one forward
pass (docs/performance.md, "Serving"). `/docs` (Swagger UI) loads its scripts from the
fastapi-offline package, not a CDN, so it works on a machine without internet.

Around the routes, from the outside in: security headers (and a 500 for a bug), the Host
allow-list (Starlette's TrustedHostMiddleware), the bearer token when the settings have one,
and the body-size limit. Every error body is a `Problem` of at most `MAX_PROBLEM` characters:
an invalid request names its first few errors and never echoes what it sent
(docs/serving.md says what each endpoint reveals).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import State
from starlette.middleware.trustedhost import TrustedHostMiddleware

from bert4rec import __version__, rundir
from bert4rec.data.users import UserHistories
from bert4rec.errors import ModelDirError, TitleError, TitleNotFoundError, UnknownIdError
from bert4rec.inference.catalog import CatalogItem
from bert4rec.inference.recommender import Recommendations, Recommender
from bert4rec.inference.requests import RecommendRequest
from bert4rec.serve import schemas as S
from bert4rec.serve.auth import BearerToken
from bert4rec.serve.batcher import MicroBatcher
from bert4rec.serve.headers import SecurityHeaders
from bert4rec.serve.limits import BodySizeLimit
from bert4rec.serve.links import ItemLinks
from bert4rec.serve.settings import ServeSettings
from bert4rec.training.threads import governed

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI scripts are served from (fastapi-offline's files)."""
MAX_PROBLEM = 2000
"""Most characters of an error body's `detail`; ids and candidates are capped as well."""
SHOWN_ERRORS = 3
"""How many validation errors an invalid request's answer names."""
SHOWN_IDS = 50
"""How many unknown ids an answer lists."""
PLAIN_ID = re.compile(r"-?(0|[1-9][0-9]*)")
"""A whole-number item id as a path segment: ASCII digits, nothing else."""


def create_app(
    run_dir: str | Path, settings: ServeSettings | None = None,
    recommender: Recommender | None = None,
) -> FastAPI:
    """The app for one run directory; the model is loaded when the app starts, not here,
    unless it is given already loaded as `recommender` (the CLI loads it first, so that a
    broken run directory fails with one line before any server starts)."""
    settings = settings or ServeSettings()
    settings.check_exposure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with governed(settings.torch_threads):  # the batcher's thread starts at this count
            rec = app.state.recommender = recommender or Recommender.load(run_dir)
            app.state.links = ItemLinks(rundir.read_items(run_dir))
            app.state.users, app.state.no_users = _read_users(run_dir, rec.n_items)
            app.state.by_user = settings.by_user
            if app.state.users is not None:  # autocomplete: most watched first among equals
                rec.catalog.rank_by(app.state.users.item_counts(rec.n_items))
            app.state.batcher = MicroBatcher(rec, settings.batch_window_ms / 1000,
                                             settings.max_batch)
            log.info("serving %s (%d items, %s users, links for %d)", run_dir, rec.n_items,
                     f"{len(app.state.users):,}" if app.state.users else "no",
                     len(app.state.links))
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
    _add_guards(app, settings)
    app.add_exception_handler(TitleError, _title_problem)
    app.add_exception_handler(UnknownIdError, _unknown_ids)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(_routes())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_guards(app: FastAPI, settings: ServeSettings) -> None:
    """The middleware around the routes (the last added is the outermost): the body-size
    limit, the bearer token (when set), the Host allow-list, then the security headers, so
    that every answer carries them, refusals included."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.token is not None:
        app.add_middleware(BearerToken, token=settings.token.get_secret_value())
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.hosts(),
                       www_redirect=False)
    app.add_middleware(SecurityHeaders)


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
        if body.user is not None:
            _check_by_user(state, body.user)
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
            history = _shown_history(state, history[-(batch.rec.model.config.max_len - 1) :])
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
    """A path segment as the catalogue's id type: the exact text, or a whole number written
    in plain ASCII digits (not `+1`, ` 1`, `1_0` or other scripts' digits); unknown ids are
    a 404."""
    if raw in rec.catalog:
        return raw
    if PLAIN_ID.fullmatch(raw) and int(raw) in rec.catalog:
        return int(raw)
    raise HTTPException(404, detail=f"item id {_clip(raw, 40)!r} is not in the catalogue")


def _shown_history(state: State, history: list[CatalogItem]) -> list[CatalogItem]:
    """A user's stored history as the answer shows it: not at all under by_user
    'no-history'."""
    return [] if state.by_user == "no-history" else history


def _check_by_user(state: State, user: int | str) -> None:
    """Refuse to recommend by user id when the settings switch it off (403) or the run has no
    users.parquet (422, naming why)."""
    if state.by_user == "off":
        raise HTTPException(403, detail="this service does not recommend by user id "
                            "(by_user 'off'); send a history instead")
    if state.users is None:
        raise UnknownIdError(f"this model cannot recommend by user id: {state.no_users}",
                             [user])


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
        detail=_clip(str(err), MAX_PROBLEM),
        query=_clip(err.query, S.MAX_ID),
        candidates=[_item(state.recommender.catalog.entry(item), state.links)
                    for item, _ in err.candidates[:SHOWN_IDS]],
    )
    return JSONResponse(problem.model_dump(), status_code=422)


def _unknown_ids(request: Request, err: Exception) -> JSONResponse:
    """Users or item ids the model does not know (with on_unknown="raise"): 422 naming them
    (the first SHOWN_IDS, as the request sent them)."""
    assert isinstance(err, UnknownIdError)
    problem = S.Problem(detail=_clip(str(err), MAX_PROBLEM), ids=list(err.ids[:SHOWN_IDS]))
    return JSONResponse(problem.model_dump(), status_code=422)


def _invalid_request(request: Request, err: Exception) -> JSONResponse:
    """A body or query that fails validation: 422 naming where and why for the first
    SHOWN_ERRORS errors, without echoing any of the input (which may be megabytes, or NaN,
    which JSON cannot carry)."""
    assert isinstance(err, RequestValidationError)
    errors = err.errors()
    named = "; ".join(f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', '')}"
                      for e in errors[:SHOWN_ERRORS])
    more = f" (and {len(errors) - SHOWN_ERRORS:,} more)" if len(errors) > SHOWN_ERRORS else ""
    problem = S.Problem(detail=_clip(f"invalid request: {named}{more}", MAX_PROBLEM))
    return JSONResponse(problem.model_dump(), status_code=422)


def _clip(text: str, most: int) -> str:
    """`text` cut to `most` characters, marked where it was cut."""
    return text if len(text) <= most else text[: most - 1] + "…"
