"""Item titles and genres, and title search that never silently picks the wrong item.

`Catalog.find(title)` tries, in order: the exact title; the same names compared without case,
accents and punctuation (MovieLens "a.k.a." and original-language alternatives and "Matrix,
The" inversions all count as names); the same without leading articles; the start of a name
("Harry Potter and the Goblet" is Goblet of Fire; "Harry Potter" starts eight names and is
ambiguous); then a fuzzy match (rapidfuzz) that is accepted only when it is close and clearly
better than the runner-up. A year in parentheses narrows every step. Anything else raises
`TitleNotFoundError` or `AmbiguousTitleError` carrying the closest candidates; a bare number
that is no title says that ids are written `id:2571`.

The work per query is bounded, so that no request can stall a server: titles longer than
`MAX_TITLE` are refused at once, and fuzzy scoring runs over at most `FUZZY_CANDIDATES` names
that share the most character trigrams with the query (`TrigramIndex`), with a score cutoff.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from bert4rec.data import columns as C
from bert4rec.errors import AmbiguousTitleError, DataError, TitleNotFoundError
from bert4rec.inference.titles import normalize, parse_title, title_keys
from bert4rec.inference.trigrams import TrigramIndex

ItemId = int | str

# A fuzzy match is taken only at this rapidfuzz ratio (0-100) or above ...
FUZZY_ACCEPT = 90.0
# ... and only if the best other item scores at least this much lower.
FUZZY_MARGIN = 5.0
# Names scored by rapidfuzz per fuzzy lookup: those sharing the most trigrams with the query.
FUZZY_CANDIDATES = 200
# Autocomplete offers a look-alike (no name contains the query) only at this score (0-100) or
# above: typos pass ("godfathr" 94, "hary poter" 76), nonsense finds nothing ("zzqqxx" scores
# 44 against "xXx", where WRatio gave "Z (1969)" 90). `typed_ratio` is the score.
SUGGEST_MIN = 75.0
# How much a match against the start of a name counts against one with the whole name.
PREFIX_WEIGHT = 0.95
# Longest title or search text accepted (characters); MovieLens titles stay under 200.
MAX_TITLE = 300
# Text that names an item by id rather than by title: "id:2571".
ID_PREFIX = "id:"
# Candidates an ambiguous title lists at most (the error says how many more there are).
MAX_LISTED = 10


@dataclass(frozen=True)
class CatalogItem:
    """One item as shown to people: original id, title and genres."""

    item: ItemId
    title: str
    genres: tuple[str, ...]


class Catalog:
    """Titles and genres by original item id, with title resolution and autocomplete search."""

    def __init__(self, items: pl.DataFrame, popularity: Sequence[float] | None = None) -> None:
        """`items` has `item` and optionally `title` and `genres`; `popularity` (one number
        per row, higher first) orders autocomplete results that match equally well."""
        if C.ITEM not in items.columns:
            raise DataError(
                f"item table has columns {items.columns}; it needs an {C.ITEM!r} column "
                f"(and optionally {C.TITLE!r} and {C.GENRES!r})"
            )
        self._ids: list[ItemId] = items[C.ITEM].to_list()
        titles = items[C.TITLE].to_list() if C.TITLE in items.columns else [None] * len(items)
        genres = items[C.GENRES].to_list() if C.GENRES in items.columns else [None] * len(items)
        self._titles = [t if t else str(i) for t, i in zip(titles, self._ids, strict=True)]
        self._genres = [tuple(g) if g else () for g in genres]
        self._position = {item: pos for pos, item in enumerate(self._ids)}
        if len(self._position) != len(self._ids):
            raise DataError("item table lists some item ids more than once; ids must be unique")
        self.rank_by(popularity if popularity is not None else [0.0] * len(self._ids))
        self._build_index()
        self.why_missing: Callable[[ItemId], str] = lambda item: ""
        """Why an item id is not in the catalogue (a clause for the error; "" if unknown):
        `Recommender.load` sets it from the run's record of the items preparing left out."""

    def rank_by(self, popularity: Sequence[float]) -> None:
        """Order equally good autocomplete matches by `popularity` (one number per item-table
        row, higher first), such as how often each item was watched."""
        if len(popularity) != len(self._ids):
            raise DataError(
                f"popularity has {len(popularity)} values for {len(self._ids)} items; "
                "give one per item-table row"
            )
        self._popularity = np.asarray(popularity, dtype=float).tolist()

    def _build_index(self) -> None:
        """Precompute every normalised name of every item for the lookups below."""
        self._by_title: dict[str, list[int]] = defaultdict(list)
        self._by_key: dict[str, list[int]] = defaultdict(list)
        self._by_bare_key: dict[str, list[int]] = defaultdict(list)
        self._years: list[int | None] = []
        self._keys: list[str] = []
        self._key_owner: list[int] = []
        for pos, title in enumerate(self._titles):
            keys, bare_keys, year = title_keys(title)
            self._years.append(year)
            self._by_title[title].append(pos)
            for key in keys:
                self._by_key[key].append(pos)
            for key in bare_keys:
                self._by_bare_key[key].append(pos)
            for key in keys | bare_keys:
                self._keys.append(key)
                self._key_owner.append(pos)
        self._trigrams = TrigramIndex(self._keys)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._position

    @property
    def item_ids(self) -> list[ItemId]:
        """Every original item id, in table order."""
        return list(self._ids)

    def entry(self, item: ItemId) -> CatalogItem:
        """Id, title and genres of one item; `TitleNotFoundError` if the id is unknown."""
        pos = self._position.get(item)
        if pos is None:
            raise TitleNotFoundError(f"item id {item!r} is not in the catalogue"
                                     f"{self.why_missing(item)}", str(item), [])
        return self._entry(pos)

    def title(self, item: ItemId) -> str:
        """The item's title (its id as text when the source had no titles)."""
        return self.entry(item).title

    def genres(self, item: ItemId) -> tuple[str, ...]:
        """The item's genres (empty when the source had none)."""
        return self.entry(item).genres

    def _entry(self, pos: int) -> CatalogItem:
        return CatalogItem(self._ids[pos], self._titles[pos], self._genres[pos])

    def resolve(self, ref: ItemId) -> ItemId:
        """An original item id for `ref`: an id of this catalogue as given, an id written
        `id:2571` (how the command line and text fields name ids), else a title."""
        if not isinstance(ref, bool) and ref in self._position:
            return ref
        if isinstance(ref, str) and ref.lstrip().startswith(ID_PREFIX):
            text = ref.lstrip()[len(ID_PREFIX) :].strip()
            item = int(text) if text.isascii() and text.isdigit() else text
            if item in self._position:
                return item
            raise TitleNotFoundError(f"item id {item!r} is not in the catalogue"
                                     f"{self.why_missing(item)}", ref, [])
        if isinstance(ref, str):
            return self.find(ref)
        raise TitleNotFoundError(
            f"item id {ref!r} is not in the catalogue{self.why_missing(ref)}; pass an id from "
            "the item table or a title",
            str(ref),
            [],
        )

    def find(self, title: str) -> ItemId:
        """The one item whose title matches `title`; raises with candidates otherwise."""
        query = title.strip()
        if not query:
            raise TitleNotFoundError("empty title: give one such as 'The Matrix (1999)'", "", [])
        if len(query) > MAX_TITLE:
            raise TitleNotFoundError(
                f"title {query[:40]!r}... is {len(query):,} characters long; titles have at "
                f"most {MAX_TITLE}", query[:MAX_TITLE], [],
            )
        if query in self._by_title:
            return self._one(query, self._by_title[query])
        keys, bare_keys, year = title_keys(query)
        for index, wanted in ((self._by_key, keys), (self._by_bare_key, bare_keys)):
            hits = {pos for key in wanted for pos in index.get(key, ())}
            hits = sorted(pos for pos in hits if year is None or self._years[pos] == year)
            if hits:
                return self._one(query, hits)
        if query.isdigit():
            self._not_an_id(query)
        starting = self._starting(keys | bare_keys, year)
        if starting:
            return self._one(query, starting, "starts")
        return self._fuzzy(query)

    def _one(self, query: str, positions: list[int], how: str = "matches") -> ItemId:
        """The item at the one position; several raise `AmbiguousTitleError` listing the
        first `MAX_LISTED`."""
        if len(positions) == 1:
            return self._ids[positions[0]]
        candidates = [(self._ids[pos], self._titles[pos]) for pos in positions[:MAX_LISTED]]
        more = len(positions) - len(candidates)
        listed = _listing(candidates) + (f"; and {more:,} more" if more else "")
        what = "begins" if how == "starts" else "matches"
        raise AmbiguousTitleError(
            f"title {query!r} {what} {len(positions):,} titles: {listed}; "
            "write more of the title, add the year in parentheses or pass the item id",
            query,
            candidates,
        )

    def _starting(self, keys: set[str], year: int | None) -> list[int]:
        """Positions of the items with a name starting with one of `keys` (normalised), of
        `year` when given: the most popular first, then the shortest title."""
        keys = {key for key in keys if key}
        if not keys:
            return []
        found = {pos for name, pos in zip(self._keys, self._key_owner, strict=True)
                 if name.startswith(tuple(keys))
                 and (year is None or self._years[pos] == year)}
        return sorted(found, key=lambda pos: (-self._popularity[pos], len(self._titles[pos]),
                                              self._titles[pos]))

    def _not_an_id(self, query: str) -> None:
        """A bare number that is no title: raise, saying how an item id is written (and the
        item with that id first among the candidates, if there is one)."""
        number = int(query)
        if number in self._position:
            entry = self.entry(number)
            hint = (f"to name the item with id {number} ({entry.title}), write "
                    f"'{ID_PREFIX}{number}'")
            candidates = [(entry.item, entry.title)]
        else:
            hint = f"item ids are written '{ID_PREFIX}ID', and no item has id {number}"
            candidates = []
        candidates += [(c.item, c.title) for c in self.closest(query)
                       if c.item != number]
        raise TitleNotFoundError(f"no item is titled {query!r}; {hint}", query,
                                 candidates[:5])

    def _fuzzy(self, query: str) -> ItemId:
        """Accept a close fuzzy match only when no other item comes near it."""
        parsed = parse_title(query)
        key = normalize(parsed.names[0]) if parsed.names else ""
        best = self._best_per_item(key, fuzz.ratio, limit=50, year=parsed.year,
                                   cutoff=FUZZY_ACCEPT - FUZZY_MARGIN)  # a runner-up below
        # the cutoff cannot come within the margin of an accepted match
        if best:
            (top_pos, top_score), *others = best
            runner_up = others[0][1] if others else 0.0
            if top_score >= FUZZY_ACCEPT and top_score - runner_up >= FUZZY_MARGIN:
                return self._ids[top_pos]
        candidates = [(c.item, c.title) for c in self.closest(query)]
        hint = f"; closest: {_listing(candidates)}" if candidates else ""
        raise TitleNotFoundError(f"no item matches title {query!r}{hint}", query, candidates)

    def _best_per_item(
        self, key: str, scorer, limit: int, year: int | None, cutoff: float = 0.0
    ) -> list[tuple[int, float]]:
        """(position, score) of the best-scoring name of each item, best first, among the
        names that share the most trigrams with `key`; scores under `cutoff` are skipped."""
        if not key:
            return []
        names = {k: self._keys[k] for k in self._trigrams.candidates(key, FUZZY_CANDIDATES)}
        best: dict[int, float] = {}
        found = process.extract(key, names, scorer=scorer, limit=limit, score_cutoff=cutoff)
        for _, score, k in found:
            pos = self._key_owner[k]
            if year is None or self._years[pos] == year:
                best[pos] = max(best.get(pos, 0.0), score)
        return sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))

    def closest(self, query: str, limit: int = 5) -> list[CatalogItem]:
        """The items most like `query` (the candidates an error names): names containing it
        first, then look-alikes as `search` finds them; none for a query like no item."""
        parsed = parse_title(query[:MAX_TITLE])
        key = normalize(parsed.names[0]) if parsed.names else ""
        chosen = self._containing(key, parsed.year)[:limit]
        if len(chosen) < limit:
            more = [pos for pos in self._look_alikes(key, parsed.year, limit) if pos not in chosen]
            chosen += more[: limit - len(chosen)]
        return [self._entry(pos) for pos in chosen]

    def search(self, query: str, limit: int = 10) -> list[CatalogItem]:
        """Autocomplete, best match first: items with a name equal to, starting with, with a
        word starting with, or containing `query` (case, accents and punctuation ignored);
        if none, look-alikes scoring `SUGGEST_MIN` or more; else nothing. Popularity orders
        only items that match equally well; a year in parentheses puts that year's first."""
        parsed = parse_title(query[:MAX_TITLE])
        key = normalize(parsed.names[0]) if parsed.names else ""
        hits = self._containing(key, parsed.year) or self._look_alikes(key, parsed.year, limit)
        return [self._entry(pos) for pos in hits[:limit]]

    def _look_alikes(self, key: str, year: int | None, limit: int) -> list[int]:
        """Positions of up to `limit` items with a name scoring `SUGGEST_MIN` or more by
        `typed_ratio`: the year given first, then the best score, then the most popular."""
        scored = self._best_per_item(key, typed_ratio, limit=limit * 8, year=None,
                                     cutoff=SUGGEST_MIN)
        scored.sort(key=lambda pair: (year is not None and self._years[pair[0]] != year,
                                      -pair[1], -self._popularity[pair[0]], pair[0]))
        return [pos for pos, _ in scored[:limit]]

    def _containing(self, key: str, year: int | None) -> list[int]:
        """Positions of items with a name containing `key`, best tier first; within a tier
        the year given, then higher popularity, then shorter titles come first."""
        if not key:
            return []
        tier: dict[int, int] = {}
        padded = f" {key}"
        for name, pos in zip(self._keys, self._key_owner, strict=True):
            if key not in name:
                continue
            rank = 0 if name == key else 1 if name.startswith(key) else 2 if padded in name else 3
            tier[pos] = min(tier.get(pos, rank), rank)
        return sorted(
            tier,
            key=lambda pos: (
                tier[pos],
                year is not None and self._years[pos] != year,
                -self._popularity[pos],
                len(self._titles[pos]),
                self._titles[pos],
            ),
        )


def typed_ratio(query: str, name: str, *, score_cutoff: float | None = None,
                **_: object) -> float:
    """How well `query` matches `name` as typed so far (0-100): the better of the rapidfuzz
    ratio against the whole name and, scaled by `PREFIX_WEIGHT`, against its first
    `len(query)` characters, so a half-typed title with a typo still scores high, yet a name
    the query matches whole ("matirx": The Matrix) beats one it only starts (The Matrix
    Reloaded). Unlike `fuzz.partial_ratio`, a name shorter than the query never scores 100 by
    sitting inside it."""
    prefix = fuzz.ratio(query, name[: len(query)]) * PREFIX_WEIGHT
    score = max(fuzz.ratio(query, name), prefix)
    return score if score_cutoff is None or score >= score_cutoff else 0.0


def _listing(candidates: list[tuple[ItemId, str]]) -> str:
    return "; ".join(f"{title} [id {item}]" for item, title in candidates)
