"""Request and response bodies of the HTTP API, kept apart from the library's own types.

A history entry is an original item id (a JSON number, or a string for catalogues with string
ids) or a title (a string, resolved like `Catalog.find`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from bert4rec.catalog import MAX_TITLE

MAX_HISTORY = 500  # entries per history; the model reads at most its max_len - 1 most recent
MAX_K = 100  # recommendations or similar items per request
MAX_QUERY = 200  # characters of a title search

ItemRef = int | str
HistoryRef = int | Annotated[str, Field(max_length=MAX_TITLE)]
"""A history entry: an id, or a title of at most MAX_TITLE characters (longer ones are 422)."""


class RecommendRequest(BaseModel):
    """What the user watched, oldest first, and how many recommendations to return."""

    model_config = ConfigDict(extra="forbid")

    history: list[HistoryRef] = Field(
        max_length=MAX_HISTORY,
        description="item ids (numbers) or titles (strings), oldest first",
        examples=[["Harry Potter and the Chamber of Secrets (2002)", 8368]],
    )
    k: int = Field(10, ge=1, le=MAX_K, description="number of recommendations")
    exclude_seen: bool = Field(True, description="leave out items already in the history")
    explain: bool = Field(
        False, description="add the history items each recommendation owes most to"
    )


class Item(BaseModel):
    """An item as shown to people."""

    item: ItemRef
    title: str
    genres: list[str]


class Contribution(BaseModel):
    """A history item and how much the recommendation's score drops without it."""

    item: ItemRef
    title: str
    score_drop: float


class Recommendation(Item):
    """One ranked item; `score` is the model's logit (higher is better)."""

    rank: int
    score: float
    because: list[Contribution] = Field(
        default_factory=list, description="leave-one-out explanation, largest drop first"
    )


class RecommendResponse(BaseModel):
    """The history as resolved and the ranked recommendations."""

    history: list[Item]
    items: list[Recommendation]
    exclude_seen: bool


class SimilarResponse(BaseModel):
    """Items whose embeddings are closest (cosine) to `item`; `score` is the cosine."""

    item: Item
    items: list[Recommendation]


class SearchResponse(BaseModel):
    """Title search results for autocomplete, best first."""

    query: str
    items: list[Item]


class Health(BaseModel):
    """The service is up and its model loaded."""

    status: Literal["ok"]
    items: int
    max_len: int


class Problem(BaseModel):
    """An error: what went wrong and, for titles, the closest catalogue items."""

    detail: str
    query: str | None = None
    candidates: list[Item] = Field(default_factory=list)
