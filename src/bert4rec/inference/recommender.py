"""Inference on a trained run directory: recommendations, similar items and explanations.

    rec = Recommender.load("runs/ml-latest-small")
    rec.recommend(["The Matrix", "Alien (1979)"], k=10).to_frame()

`Recommender.answer(request)` is the one recommend path: the Python API, the command line and
the HTTP API each turn their input into a `RecommendRequest` (inference/requests.py) and format
the `Ranking` it returns; `recommend` and `recommend_many` here go through it too. The path
lives in `Ranker`, which says nothing of how histories are scored: `Recommender` scores them
with the model, a baseline (inference/baseline.py) with its counts, through the same code.
What may be offered is decided in one function, `apply_filters`. Histories are original item
ids or titles (resolved by `Catalog`, which raises with candidates rather than guess). Scores
are the model's logits for the next item; higher is better. Explanations are leave-one-out
score drops (docs/explanations.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from bert4rec.data import columns as C
from bert4rec.data.batches import prediction_inputs
from bert4rec.data.corpus import concatenated_ranges, flatten, left_pad
from bert4rec.data.features import ItemFeatures
from bert4rec.data.users import OnUnknown, UserHistories, check_on_unknown, more_note
from bert4rec.data.vocab import Vocabulary
from bert4rec.errors import DataError, ModelDirError, TitleNotFoundError, UnknownIdError
from bert4rec.inference.catalog import Catalog, CatalogItem, ItemId
from bert4rec.inference.requests import (
    BATCH_SIZE,
    FILTER_VIEWED,
    HISTORY_KEY,
    USER_KEY,
    Query,
    Ranking,
    RecommendRequest,
    append_rows,
    check_k,
)
from bert4rec.inference.scoring import scoring_model
from bert4rec.model import BERT4Rec
from bert4rec.rundir import load_model, read_features, read_items, why_missing_in
from bert4rec.training.threads import tick as fit_threads

# Most contributing history items reported per recommendation when explaining ...
EXPLAIN_TOP = 3
# ... counting only drops of at least this many logits (smaller ones are noise, not reasons).
EXPLAIN_MIN_DROP = 0.05


@dataclass(frozen=True)
class Contribution:
    """A history item and how much the recommended item's score drops without it."""

    item: ItemId
    title: str
    score_drop: float


@dataclass(frozen=True)
class Recommendation:
    """One ranked item: original id, title, genres, score and (if asked) its explanation."""

    rank: int
    item: ItemId
    title: str
    genres: tuple[str, ...]
    score: float
    because: tuple[Contribution, ...] = ()


@dataclass(frozen=True)
class Recommendations:
    """Ranked items for one history, with the history as resolved from ids or titles."""

    items: tuple[Recommendation, ...]
    history: tuple[CatalogItem, ...]

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Recommendation:
        return self.items[position]

    def to_frame(self) -> pl.DataFrame:
        """Columns rank, item, title, genres, score (names from `bert4rec.data.columns`)."""
        return pl.DataFrame(
            {
                C.RANK: [r.rank for r in self.items],
                C.ITEM: [r.item for r in self.items],
                C.TITLE: [r.title for r in self.items],
                C.GENRES: [list(r.genres) for r in self.items],
                C.SCORE: [r.score for r in self.items],
            },
            schema_overrides={C.GENRES: pl.List(pl.String)},
        )


class Ranker:
    """The recommend path, whatever scores the histories: a `RecommendRequest` resolved
    against the item table and the users' histories (`query`), ranked a batch at a time
    (`rank`: `_scores_of`, then `apply_filters`, then `_best`) and formatted (`results`,
    `frame`). A subclass says how a batch of histories is scored."""

    score_dtype: type = np.float32
    """The type of the scores `rank` hands back."""
    history_limit: int | None = None
    """The most recent items of a history the scorer reads (None: all); histories are
    batched by length up to it."""
    whose: str = "the model's"
    """Whose items an error names ("item 5 is not among the model's 40 items")."""

    def __init__(self, vocab: Vocabulary, items: pl.DataFrame, popularity: Sequence[float]
                 ) -> None:
        """`items` has `index` (vocabulary index 1..n_items), `item`, `title`, `genres`;
        `popularity` orders the catalogue's title candidates (vocabulary order)."""
        items = items.sort(C.INDEX)
        self.vocab = vocab
        n_items = vocab.n_items
        if items[C.INDEX].to_list() != list(vocab.items):
            raise ModelDirError(
                f"item table has {len(items)} rows but the model has {n_items} items; the "
                f"{C.INDEX!r} column must hold 1..{n_items} exactly once each"
            )
        self._ids: list[ItemId] = items[C.ITEM].to_list()
        known = [c for c in (C.TITLE, C.GENRES)
                 if c in items.columns and items[c].null_count() < len(items)]
        self._shown = items.select(C.INDEX, C.ITEM, *known)  # what `to_frame` adds to an index
        self._index_of = {item: i + 1 for i, item in enumerate(self._ids)}
        self.catalog = Catalog(items, popularity=list(popularity))

    @property
    def n_items(self) -> int:
        return len(self._ids)

    @property
    def item_ids(self) -> list[ItemId]:
        """Every item's original id, in vocabulary order (index 1 first)."""
        return list(self._ids)

    @property
    def items(self) -> pl.DataFrame:
        """Every item: `item`, then `title` and `genres` where the item table has them."""
        return self._shown.drop(C.INDEX)

    def index_of(self, item: ItemId) -> int:
        """The vocabulary index of a known item id."""
        return self._index_of[item]

    def resolve(self, history: Sequence[ItemId], on_unknown: OnUnknown = "raise"
                ) -> list[CatalogItem]:
        """History entries (ids or titles) as catalogue items, in order; raises `TitleError`,
        or with `on_unknown="skip"` leaves out the entries that match no item (an ambiguous
        title still raises: it names items the caller meant)."""
        check_on_unknown(on_unknown)
        entries = []
        for ref in history:
            try:
                entries.append(self.catalog.entry(self.catalog.resolve(ref)))
            except TitleNotFoundError:
                if on_unknown == "raise":
                    raise
        return entries

    def indices(self, items: Iterable[ItemId], on_unknown: OnUnknown = "raise") -> list[int]:
        """Vocabulary indices of item ids (not titles), in order. An id the model does not know
        raises `UnknownIdError` naming it, or with `on_unknown="skip"` is left out."""
        check_on_unknown(on_unknown)
        wanted = list(items)
        found = [self._index_of.get(item) for item in wanted]
        missing = [item for item, index in zip(wanted, found, strict=True) if index is None]
        if missing and on_unknown == "raise":
            why, more = self.catalog.why_missing(missing[0]), more_note(missing, ";")
            raise UnknownIdError(
                f"item {missing[0]!r} is not among {self.whose} {self.n_items:,} items{why}{more}; "
                "pass on_unknown='skip' to leave unknown items out", missing)
        return [index for index in found if index is not None]

    def candidates(self, allowed: Iterable[ItemId] | None = None,
                   excluded: Iterable[ItemId] | None = None,
                   on_unknown: OnUnknown = "raise") -> torch.Tensor | None:
        """Which vocabulary entries may be recommended (bool [vocab_size]): the `allowed` item
        ids (every item if None) less the `excluded` ones; None when neither is given."""
        if allowed is None and excluded is None:
            return None
        mask = torch.zeros(self.vocab.size, dtype=torch.bool)
        if allowed is None:
            mask[self.vocab.item_columns] = True
        else:
            mask[self.indices(allowed, on_unknown)] = True
        if excluded is not None:
            mask[self.indices(excluded, on_unknown)] = False
        return mask

    def answer(self, request: RecommendRequest, users: UserHistories | None = None, *,
               batch_size: int = BATCH_SIZE, progress: Callable[[int], Any] | None = None
               ) -> Ranking:
        """The one recommend path: `request` resolved (`query`; `users` holds the histories of
        the users a request may name) and ranked (`rank`). Every face calls it, the server in
        its two halves so that concurrent requests share one `rank`."""
        return self.rank(self.query(request, users), batch_size=batch_size, progress=progress)

    def query(self, request: RecommendRequest, users: UserHistories | None = None) -> Query:
        """`request` in vocabulary indices: its allow and deny lists as candidates, then its
        users' whole histories (looked up in `users`, with the further items each one saw)
        or its histories' ids and titles. An unknown user, id or title raises naming it, or is
        left out (`request.on_unknown`)."""
        on_unknown = request.on_unknown
        candidates = self.candidates(request.items, request.exclude, on_unknown)
        counts = (0, 0)
        if request.users is not None:
            if users is None:
                raise ModelDirError("recommending by user id needs the users' histories "
                                    "(users.parquet); recommend for histories instead")
            if request.recent is None:
                positions, keys = users.positions(request.users, on_unknown)
                (flat, offsets), viewed = users.subset(positions), users.seen_subset(positions)
            else:
                keys, (flat, offsets), viewed, counts = self._with_recent(request, users)
            key = USER_KEY
        else:
            flat, offsets = flatten([[self._index_of[entry.item]
                                      for entry in self.resolve(history, on_unknown)]
                                     for history in request.histories])
            key, keys, viewed = HISTORY_KEY, list(range(len(request.histories))), None
        return Query(key, keys, flat, offsets, request.k, request.filter_viewed, candidates,
                     viewed, *counts)

    def _with_recent(self, request: RecommendRequest, users: UserHistories
                     ) -> tuple[list[Any], tuple[np.ndarray, np.ndarray],
                                tuple[np.ndarray, np.ndarray] | None, tuple[int, int]]:
        """The users of `request` with their `recent` events after their stored histories:
        (keys, (flat, offsets), viewed, (recent events, of which unknown)). A user the model
        never saw but with recent events has those alone; one with neither is unknown."""
        recent, wanted = request.recent, list(request.users)
        positions, found = users.positions(wanted, "skip")
        stored = dict(zip(found, positions.tolist(), strict=True))
        missing = [user for user in wanted if user not in stored and user not in recent]
        if missing:
            users.positions(missing, request.on_unknown)  # raises naming one, unless skipping
        keys = [user for user in wanted if user in stored or user in recent]
        at = np.array([stored.get(user, -1) for user in keys], dtype=np.int64)
        known = np.flatnonzero(at >= 0)
        histories = _spread(users.subset(at[known]), known, len(keys))
        added, events, unknown = [], 0, 0
        for user in keys:
            indices = self._event_indices(recent.get(user, ()))
            events += len(indices[0]) + indices[1]
            unknown += indices[1]
            added.append(indices[0])
        seen = users.seen_subset(at[known])
        viewed = None if seen is None else _spread(seen, known, len(keys))
        return keys, append_rows(histories, flatten(added)), viewed, (events, unknown)

    def _event_indices(self, events: Sequence[ItemId]) -> tuple[list[int], int]:
        """Vocabulary indices of the items of `events` (ids, or titles) the model knows, and
        how many events named none."""
        indices, unknown = [], 0
        for ref in events:
            index = self._index_of.get(ref)
            if index is None and isinstance(ref, str):
                try:
                    index = self._index_of[self.catalog.resolve(ref)]
                except TitleNotFoundError:
                    index = None
            if index is None:
                unknown += 1
            else:
                indices.append(index)
        return indices, unknown

    def rank(self, query: Query, *, batch_size: int = BATCH_SIZE,
             progress: Callable[[int], Any] | None = None) -> Ranking:
        """The best `query.k` items of each of the query's histories (vocabulary indices [B, k],
        best first) and their scores ([B, k]; -inf where fewer than `k` are left to offer).
        Histories are scored in batches of similar length, each only as wide as its longest
        needs, so many users score fast; `apply_filters` decides what may be offered;
        `progress(n)` hears of each batch of `n` histories."""
        check_k(query.k)
        lengths = np.diff(query.offsets)
        read = lengths if self.history_limit is None else np.minimum(lengths, self.history_limit)
        order = np.argsort(read, kind="stable")
        width = min(query.k, self.n_items)
        top_items = np.zeros((len(lengths), width), dtype=np.int64)
        top_scores = np.full((len(lengths), width), -np.inf, dtype=self.score_dtype)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            with torch.inference_mode():
                scores = self._scores_of(query.flat, query.offsets, rows)  # [b, V]
                apply_filters(scores, query, rows)
                items, values = self._best(scores, width)  # [b, width] each
            top_items[rows], top_scores[rows] = items.cpu().numpy(), values.cpu().numpy()
            fit_threads()  # to the other work now on the cores, every few seconds
            if progress is not None:
                progress(len(rows))
        return Ranking(query, top_items, top_scores)

    def results(self, ranking: Ranking) -> list[Recommendations]:
        """A ranking as one `Recommendations` per history (its items with titles, genres and
        scores, and the history as catalogue entries); fewer than `k` items where fewer were
        on offer."""
        flat, results = ranking.query.flat, []
        for row, (start, end) in enumerate(itertools.pairwise(ranking.query.offsets)):
            n = int(np.isfinite(ranking.scores[row]).sum())
            ranked = self._ranked(ranking.items[row, :n].tolist(), ranking.scores[row, :n].tolist())
            results.append(Recommendations(ranked, tuple(self.entries(flat[start:end].tolist()))))
        return results

    def frame(self, ranking: Ranking) -> pl.DataFrame:
        """A ranking as one long frame (`to_frame`): user or history, rank, item, score, ..."""
        return self.to_frame(ranking.query.key, ranking.query.keys, ranking.items,
                             ranking.scores)

    def top_k(self, flat: np.ndarray, offsets: np.ndarray, k: int,
              filter_viewed: bool = FILTER_VIEWED, candidates: torch.Tensor | None = None, *,
              batch_size: int = BATCH_SIZE, progress: Callable[[int], Any] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """`rank` for B histories of vocabulary indices, `flat[offsets[b]:offsets[b + 1]]`,
        oldest first: the best `k` items ([B, k]) and their scores ([B, k]). `candidates`
        (bool [vocab_size]) limits what may be recommended."""
        query = Query(HISTORY_KEY, list(range(len(offsets) - 1)), flat, offsets, k,
                      filter_viewed, candidates)
        ranking = self.rank(query, batch_size=batch_size, progress=progress)
        return ranking.items, ranking.scores

    def to_frame(self, key: str, keys: Sequence[Any] | np.ndarray, items: np.ndarray,
                 scores: np.ndarray) -> pl.DataFrame:
        """`top_k`'s answer as one long frame: `key` (one of `keys` per history), rank, item,
        score, then title and genres where the item table has them. Entries scored -inf (not
        on offer) are left out."""
        finite = np.isfinite(scores)  # [B, k]; -inf only ever trails the finite scores
        rows, cols = np.nonzero(finite)
        keys = np.asarray(keys)
        frame = pl.DataFrame({
            key: pl.Series(key, keys[rows] if len(keys) else keys),
            C.RANK: pl.Series(C.RANK, cols + 1, dtype=pl.Int32),
            C.INDEX: items[rows, cols],
            C.SCORE: scores[rows, cols],
        })
        frame = frame.join(self._shown, on=C.INDEX, how="left", maintain_order="left")
        return frame.select(key, C.RANK, C.ITEM, C.SCORE, *self._shown.columns[2:])

    def entries(self, indices: Iterable[int]) -> list[CatalogItem]:
        """The catalogue entries of vocabulary indices, in order."""
        return [self.catalog.entry(self._ids[index - 1]) for index in indices]

    def _ranked(self, indices: list[int], scores: list[float]) -> tuple[Recommendation, ...]:
        return tuple(Recommendation(rank, entry.item, entry.title, entry.genres, score)
                     for rank, (entry, score)
                     in enumerate(zip(self.entries(indices), scores, strict=True), start=1))

    def _scores_of(self, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
                   ) -> torch.Tensor:
        """Next-item scores [b, V] for the histories `rows` of (flat, offsets); padding and
        [MASK] at -inf. What a subclass provides."""
        raise NotImplementedError

    def _best(self, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` best columns of each row of `scores` [b, V] and their scores, best first."""
        top = scores.topk(k, dim=1)
        return top.indices, top.values


class Recommender(Ranker):
    """A trained BERT4Rec plus its item table, for inference only."""

    def __init__(self, model: BERT4Rec, items: pl.DataFrame, *, window: int | None = None,
                 features: ItemFeatures | None = None) -> None:
        """`items` has `index` (vocabulary index 1..n_items), `item`, `title`, `genres`.
        `window` reads at most that many of each history's most recent items (the model
        reads `max_len - 1`): faster, and approximate (top-10 agreement with the whole window
        in docs/performance.md), so only where asked. `features`, for a model with item
        features, their vocabulary (`add_items` needs it)."""
        if window is not None and (isinstance(window, bool) or window < 1):
            raise ValueError(f"window must be a whole number of items, at least 1, got "
                             f"{window!r}")
        self.model = model.eval()
        self.window = window
        self.history_limit = min(model.config.max_len - 1, window or model.config.max_len)
        self._scorer = scoring_model(model)  # the model, on faster kernels (scoring.py)
        self._device = next(model.parameters()).device
        self.features = features
        vocab = model.config.vocab
        with torch.no_grad():
            weights = model.output_weight.detach().float()  # [V, H]
            self._unit_embeddings = torch.nn.functional.normalize(weights, dim=1)  # [V, H]
            prior = self._scores([[]])[0, vocab.item_columns]  # [n_items], empty history
        super().__init__(vocab, items, prior.tolist())

    @classmethod
    def load(cls, run_dir: str | Path, *, window: int | None = None,
             device: str | torch.device = "cpu") -> Recommender:
        """Read a run directory (config.json, model.safetensors, items.parquet) written by fit;
        the model scores on `device`; `window` as for `Recommender`."""
        items = read_items(run_dir)
        model, _ = load_model(run_dir, torch.device(device))
        recommender = cls(model, items, window=window, features=read_features(run_dir, model))
        recommender.catalog.why_missing = why_missing_in(run_dir, "item")
        return recommender

    def add_items(self, table: pl.DataFrame) -> Recommender:
        """This recommender with the items of `table` (an item table as `items_from_frame`
        gives it, with the columns the model's features come from) that it does not know
        yet, each scored by its features alone: no retraining. Known ids keep their trained
        vectors; feature values the model never saw are left out."""
        if self.features is None:
            raise ModelDirError("this model was trained without item features, so it cannot "
                                "score new items; train with --item-features (or "
                                "Model(item_features=...)) to add items later")
        ids = self._shown[C.ITEM]
        if table[C.ITEM].dtype != ids.dtype:
            cast = table[C.ITEM].cast(ids.dtype, strict=False)
            if cast.null_count():
                raise DataError(f"the new items' ids are {table[C.ITEM].dtype}, the model's "
                                f"{ids.dtype}: {table[C.ITEM][cast.is_null().arg_max()]!r} "
                                "does not convert")
            table = table.with_columns(cast)
        new = table.unique(C.ITEM, keep="first", maintain_order=True).filter(
            ~pl.col(C.ITEM).is_in(ids.implode()))
        if new.height == 0:
            return self
        model = self.model.with_new_items(torch.from_numpy(self.features.encode(new)))
        rows = new.with_columns(pl.int_range(self.n_items + 1, self.n_items + 1 + new.height,
                                             dtype=self._shown[C.INDEX].dtype).alias(C.INDEX))
        shown = [c for c in (C.INDEX, C.ITEM, C.TITLE, C.GENRES) if c in rows.columns]
        items = pl.concat([self._shown, rows.select(shown)], how="diagonal_relaxed")
        added = Recommender(model, items, window=self.window, features=self.features)
        added.catalog.why_missing = self.catalog.why_missing
        return added

    def recommend(
        self, history: Sequence[ItemId], k: int = 10, *, filter_viewed: bool = FILTER_VIEWED,
        items: Sequence[ItemId] | None = None, exclude: Sequence[ItemId] | None = None,
        explain: bool = False,
    ) -> Recommendations:
        """The top `k` next items for one history of ids or titles (oldest first), through
        `answer`: `filter_viewed` leaves out items already in the history, `items` allows only
        these item ids, `exclude` never offers these; `explain` adds, for each recommendation,
        the history items whose removal lowers its score most."""
        return self.recommend_many([history], k, filter_viewed=filter_viewed, items=items,
                                   exclude=exclude, explain=explain)[0]

    def recommend_many(
        self, histories: Sequence[Sequence[ItemId]], k: int = 10, *,
        filter_viewed: bool = FILTER_VIEWED, items: Sequence[ItemId] | None = None,
        exclude: Sequence[ItemId] | None = None, explain: bool = False,
    ) -> list[Recommendations]:
        """`recommend` for many histories, one forward pass per BATCH_SIZE of them."""
        request = RecommendRequest(histories=histories, k=k, filter_viewed=filter_viewed,
                                   items=items, exclude=exclude)
        results = self.results(self.answer(request))
        return [self.explain(result) for result in results] if explain else results

    def similar_items(self, item: ItemId, k: int = 10) -> Recommendations:
        """The `k` items whose embeddings are closest (cosine) to `item` (an id or a title)."""
        entry = self.catalog.entry(self.catalog.resolve(item))
        items, cosines = self.nearest([self._index_of[entry.item]], k)  # [1, k] each
        return Recommendations(self._ranked(items[0].tolist(), cosines[0].tolist()), (entry,))

    def nearest(self, indices: Sequence[int], k: int, candidates: torch.Tensor | None = None,
                excluded: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """For each item (vocabulary index), the `k` other items whose embeddings are closest
        by cosine: indices [Q, k] and cosines [Q, k], as `top_k` gives them (-inf where
        fewer are on offer). `candidates` (bool [vocab_size]) limits what may be offered;
        the items `excluded` (vocabulary indices) never are."""
        check_k(k)
        width = min(k, self.n_items - 1)
        query = torch.as_tensor(list(indices), dtype=torch.long)  # [Q]
        cosine = self._unit_embeddings[query] @ self._unit_embeddings.T  # [Q, V]
        cosine[:, list(self.vocab.not_items)] = float("-inf")
        cosine[torch.arange(len(query)), query] = float("-inf")  # the item itself
        if candidates is not None:
            cosine.masked_fill_(~candidates.to(cosine.device), float("-inf"))
        cosine[:, list(excluded)] = float("-inf")
        top = cosine.topk(width, dim=1)
        return top.indices.cpu().numpy(), top.values.cpu().numpy()

    def _scores(self, indices: Sequence[Sequence[int]]) -> torch.Tensor:
        """Next-item logits [B, V] for histories of vocabulary indices; padding and [MASK]
        get -inf."""
        flat, offsets = flatten(indices)
        return self._scores_of(flat, offsets, np.arange(len(indices)))

    def _scores_of(self, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
                   ) -> torch.Tensor:
        """`_scores` for the histories `rows` of (flat, offsets). Inputs are only as wide as
        the longest history needs (left padding is invisible to the model), which keeps
        short requests fast, and no wider than `window` allows."""
        config, window = self.model.config, self.window
        longest = int((offsets[rows + 1] - offsets[rows]).max(initial=0))  # these rows only
        width = min(config.max_len, longest + 1, config.max_len if window is None else window + 1)
        recent = torch.from_numpy(left_pad(flat, offsets, rows, width - 1))  # [B, width - 1]
        inputs = prediction_inputs(recent, width, config.mask_token).to(self._device)
        with torch.inference_mode():  # no autograd bookkeeping; callers edit the scores inside
            return self._scorer(inputs).float()  # [B, V]; padding and [MASK] at -inf already

    def explain(self, result: Recommendations) -> Recommendations:
        """`result` with each recommendation's `because` filled in. Leave-one-out: re-score the
        history without each distinct item, in one batch, and report the largest positive
        drops of each recommended item's score."""
        history = [self._index_of[entry.item] for entry in result.history]
        used = history[-(self.model.config.max_len - 1) :]  # what the model actually sees
        distinct = list(dict.fromkeys(used))
        if not distinct or not result.items:
            return result
        variants = [used, *([i for i in used if i != drop] for drop in distinct)]
        scores = self._scores(variants)  # [1 + D, V]
        targets = [self._index_of[r.item] for r in result.items]
        drops = scores[:1, targets] - scores[1:, targets]  # [D, K]
        explained = []
        for col, rec in enumerate(result.items):
            order = drops[:, col].argsort(descending=True)[:EXPLAIN_TOP].tolist()
            because = tuple(
                self._contribution(distinct[d], float(drops[d, col]))
                for d in order
                if drops[d, col] >= EXPLAIN_MIN_DROP
            )
            explained.append(replace(rec, because=because))
        return Recommendations(tuple(explained), result.history)

    def _contribution(self, index: int, score_drop: float) -> Contribution:
        item = self._ids[index - 1]
        return Contribution(item, self.catalog.title(item), score_drop)


def _spread(rows: tuple[np.ndarray, np.ndarray], at: np.ndarray, n: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows (flat, offsets) placed at rows `at` of `n` rows, the others empty."""
    flat, offsets = rows
    lengths = np.zeros(n, dtype=np.int64)
    lengths[at] = np.diff(offsets)
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def apply_filters(scores: torch.Tensor, query: Query, rows: np.ndarray) -> None:
    """Set to -inf, in place, the scores [b, V] of what may not be offered: every entry
    outside `query.candidates` (bool [V]; None: every item may be) and, with
    `query.filter_viewed`, each history's own items and the further items its user saw
    (`query.viewed`). Row i of `scores` belongs to the query's history `rows[i]`. Padding and
    [MASK] are -inf already (the scorer's). Every face's filters are these, here only."""
    if query.candidates is not None:
        scores.masked_fill_(~query.candidates.to(scores.device), float("-inf"))
    if query.filter_viewed:
        _leave_out(scores, query.flat, query.offsets, rows)
        if query.viewed is not None:
            _leave_out(scores, *query.viewed, rows)


def _leave_out(scores: torch.Tensor, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
               ) -> None:
    """Set to -inf, in row i of `scores`, the items `flat[offsets[r]:offsets[r + 1]]` of
    row `r = rows[i]`."""
    lengths = offsets[rows + 1] - offsets[rows]
    items = flat[concatenated_ranges(offsets[rows], lengths)]
    row_of = torch.from_numpy(np.repeat(np.arange(len(rows)), lengths))
    scores[row_of.to(scores.device), torch.from_numpy(items).to(scores.device)] = float("-inf")
