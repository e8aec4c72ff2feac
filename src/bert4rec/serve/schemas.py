"""Request and response bodies of the HTTP API, kept apart from the library's own types.

A history entry is an original item id (a JSON number, or a string for catalogues with string
ids) or a title (a string, resolved like `Catalog.find`).

Requests are validated strictly and cheaply: numbers are whole JSON numbers (no `true` for 1,
no `1.0`, no text), booleans are `true` or `false`, and a list stops at its first bad entry
(`fail_fast`), so a body of ten thousand bad entries costs one error, not ten thousand.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from bert4rec.inference.catalog import MAX_TITLE

MAX_HISTORY = 500  # entries per history; the model reads at most its max_len - 1 most recent
MAX_K = 100  # recommendations or similar items per request
MAX_QUERY = 200  # characters of a title search
MAX_FILTER = 10_000  # item ids in an allow or deny list
MAX_ID = 300  # characters of a user or item id sent as text

ItemRef = int | str
HistoryRef = StrictInt | Annotated[str, Field(strict=True, max_length=MAX_TITLE)]
"""A history entry: an id, or a title of at most MAX_TITLE characters (longer ones are 422)."""
IdRef = StrictInt | Annotated[str, Field(strict=True, max_length=MAX_ID)]
"""A user or item id as the data has it: a JSON number, or a string for ids that are text
(matched exactly: `"1"` is not the number 1)."""


class RecommendRequest(BaseModel):
    """Whose next items: a known `user` (their whole history as trained on, plus any `recent`
    events since) or a `history`; how many; and which items may be offered."""

    model_config = ConfigDict(extra="forbid")

    user: IdRef | None = Field(
        None, description="a user id the model was trained with (instead of a history)",
        examples=[1],
    )
    history: list[HistoryRef] | None = Field(
        None,
        max_length=MAX_HISTORY,
        fail_fast=True,
        description="item ids (numbers) or titles (strings), oldest first (instead of a user)",
        examples=[["Harry Potter and the Chamber of Secrets (2002)", 8368]],
    )
    recent: list[HistoryRef] | None = Field(
        None,
        max_length=MAX_HISTORY,
        fail_fast=True,
        description="with 'user': item ids or titles the user interacted with since training, "
        "oldest first, added to their history without retraining (a user the model never saw "
        "is answered from these alone); unknown items are left out and counted",
        examples=[[2571, 1196]],
    )
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="number of recommendations")
    filter_viewed: StrictBool = Field(True, description="leave out items already in the history")
    items: list[IdRef] | None = Field(
        None, max_length=MAX_FILTER, fail_fast=True,
        description="allow list: offer only these item ids",
    )
    exclude: list[IdRef] | None = Field(
        None, max_length=MAX_FILTER, fail_fast=True,
        description="deny list: never offer these item ids",
    )
    on_unknown: Literal["raise", "skip"] = Field(
        "raise", description="an unknown user, item id or title: 'raise' answers 422 naming "
        "it, 'skip' leaves it out (an unknown user then gets no recommendations)",
    )
    explain: StrictBool = Field(
        False, description="add the history items each recommendation owes most to"
    )

    @model_validator(mode="after")
    def _user_or_history(self) -> RecommendRequest:
        if (self.user is None) == (self.history is None):
            raise ValueError("give either 'user' (a user id) or 'history' (item ids or "
                             "titles), not both and not neither")
        if self.recent is not None and self.user is None:
            raise ValueError("'recent' adds events to a user's history: give it with 'user' "
                             "(a 'history' holds only what it lists)")
        return self


class Item(BaseModel):
    """An item as shown to people; `links` go to its pages elsewhere (MovieLens links.csv's
    IMDb and TMDB ids, where the data had them)."""

    item: ItemRef
    title: str
    genres: list[str]
    links: dict[str, str] = Field(
        default_factory=dict, examples=[{"imdb": "https://www.imdb.com/title/tt0133093/"}]
    )


class Contribution(BaseModel):
    """A history item and how much the recommendation's score drops without it."""

    item: ItemRef
    title: str
    score_drop: float


class Recommendation(Item):
    """One ranked item; `score` is the model's logit (higher is better; only the order and
    the differences mean anything: exp(score - first score) is the item's probability
    relative to the first one's)."""

    rank: int
    score: float
    because: list[Contribution] = Field(
        default_factory=list, description="leave-one-out explanation, largest drop first"
    )


class RecommendResponse(BaseModel):
    """The history as resolved and the ranked recommendations. For a `user`, `history` holds
    the most recent items the model reads (at most its max_len - 1); `filter_viewed` left out
    everything they watched."""

    user: ItemRef | None = None
    history: list[Item]
    items: list[Recommendation]
    filter_viewed: bool
    recent_unknown: int = Field(
        0, description="how many of the request's 'recent' events named items the model does "
        "not know (left out)")


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
    """An error: what went wrong; for titles, the closest catalogue items; for unknown user or
    item ids, every one of them."""

    detail: str
    query: str | None = None
    candidates: list[Item] = Field(default_factory=list)
    ids: list[ItemRef] = Field(default_factory=list)
