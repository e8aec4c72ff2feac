"""Inference on a trained run directory: recommendations, similar items and explanations.

    rec = Recommender.load("runs/ml-latest-small")
    rec.recommend(["The Matrix", "Alien (1979)"], k=10).to_frame()

Histories are original item ids or titles (resolved by `Catalog`, which raises with candidates
rather than guess). Scores are the model's logits for the next item; higher is better.
Explanations are leave-one-out score drops (docs/explanations.md).
"""

from __future__ import annotations

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
from bert4rec.data.users import OnUnknown, check_on_unknown, more_note
from bert4rec.data.vocab import PAD
from bert4rec.errors import ModelDirError, TitleNotFoundError, UnknownIdError
from bert4rec.inference.catalog import Catalog, CatalogItem, ItemId
from bert4rec.model import BERT4Rec
from bert4rec.rundir import load_model, read_items, why_missing_in

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


class Recommender:
    """A trained BERT4Rec plus its item table, for inference only."""

    def __init__(self, model: BERT4Rec, items: pl.DataFrame, batch_size: int = 256) -> None:
        """`items` has `index` (vocabulary index 1..n_items), `item`, `title`, `genres`."""
        items = items.sort(C.INDEX)
        n_items = model.config.vocab_size - 2
        if items[C.INDEX].to_list() != list(range(1, n_items + 1)):
            raise ModelDirError(
                f"item table has {len(items)} rows but the model has {n_items} items; the "
                f"{C.INDEX!r} column must hold 1..{n_items} exactly once each"
            )
        self.model = model.eval()
        self.batch_size = batch_size
        self._ids: list[ItemId] = items[C.ITEM].to_list()
        known = [c for c in (C.TITLE, C.GENRES)
                 if c in items.columns and items[c].null_count() < len(items)]
        self._shown = items.select(C.INDEX, C.ITEM, *known)  # what `to_frame` adds to an index
        self._index_of = {item: i + 1 for i, item in enumerate(self._ids)}
        with torch.no_grad():
            weights = model.encoder.embeddings.item.weight.detach().float()  # [V, H]
            self._unit_embeddings = torch.nn.functional.normalize(weights, dim=1)  # [V, H]
            prior = self._scores([[]])[0, 1 : n_items + 1]  # [n_items] score of an empty history
        self.catalog = Catalog(items, popularity=prior.tolist())

    @classmethod
    def load(cls, run_dir: str | Path) -> Recommender:
        """Read a run directory (config.json, model.safetensors, items.parquet) written by fit."""
        items = read_items(run_dir)
        model, _ = load_model(run_dir)
        recommender = cls(model, items)
        recommender.catalog.why_missing = why_missing_in(run_dir, "item")
        return recommender

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
                f"item {missing[0]!r} is not among the model's {self.n_items:,} items{why}{more}; "
                "pass on_unknown='skip' to leave unknown items out", missing)
        return [index for index in found if index is not None]

    def candidates(self, allowed: Iterable[ItemId] | None = None,
                   excluded: Iterable[ItemId] | None = None,
                   on_unknown: OnUnknown = "raise") -> torch.Tensor | None:
        """Which vocabulary entries may be recommended (bool [vocab_size]): the `allowed` item
        ids (every item if None) less the `excluded` ones; None when neither is given."""
        if allowed is None and excluded is None:
            return None
        mask = torch.zeros(self.model.config.vocab_size, dtype=torch.bool)
        if allowed is None:
            mask[1 : self.n_items + 1] = True
        else:
            mask[self.indices(allowed, on_unknown)] = True
        if excluded is not None:
            mask[self.indices(excluded, on_unknown)] = False
        return mask

    def recommend(
        self,
        history: Sequence[ItemId],
        k: int = 10,
        exclude_seen: bool = True,
        explain: bool = False,
        candidates: torch.Tensor | None = None,
    ) -> Recommendations:
        """The top `k` next items for one history of ids or titles (oldest first).

        `exclude_seen` leaves out items already in the history; `candidates` (from
        `candidates()`) limits what may be offered; `explain` adds, for each recommendation,
        the history items whose removal lowers its score most.
        """
        result = self.recommend_many([history], k=k, exclude_seen=exclude_seen,
                                     candidates=candidates)[0]
        return self.explain(result) if explain else result

    def recommend_many(
        self, histories: Sequence[Sequence[ItemId]], k: int = 10, exclude_seen: bool = True,
        candidates: torch.Tensor | None = None,
    ) -> list[Recommendations]:
        """`recommend` for many histories, one forward pass per `batch_size` of them."""
        return self.recommend_resolved(
            [self.resolve(history) for history in histories], k=k, exclude_seen=exclude_seen,
            candidates=candidates,
        )

    def recommend_resolved(
        self, histories: Sequence[Sequence[CatalogItem]], k: int = 10, exclude_seen: bool = True,
        candidates: torch.Tensor | None = None,
        viewed: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[Recommendations]:
        """`recommend_many` for histories already resolved by `resolve`; each answer is the
        same as for that history alone, so callers may batch unrelated requests together.
        A history gets fewer than `k` items when fewer are left to offer. `viewed`: as for
        `top_k`."""
        flat, offsets = flatten([[self._index_of[entry.item] for entry in h] for h in histories])
        items, scores = self.top_k(flat, offsets, k, exclude_seen, candidates, self.batch_size,
                                   viewed=viewed)
        results = []
        for row, history in enumerate(histories):
            n = int(np.isfinite(scores[row]).sum())
            ranked = self._ranked(items[row, :n].tolist(), scores[row, :n].tolist())
            results.append(Recommendations(ranked, tuple(history)))
        return results

    @torch.inference_mode()
    def top_k(self, flat: np.ndarray, offsets: np.ndarray, k: int, exclude_seen: bool = True,
              candidates: torch.Tensor | None = None, batch_size: int = 512,
              progress: Callable[[int], Any] | None = None,
              viewed: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The best `k` items (vocabulary indices [B, k]) and their scores ([B, k], best first)
        for B histories of vocabulary indices, `flat[offsets[b]:offsets[b + 1]]`, oldest first.
        A score is -inf where fewer than `k` items are left to offer. `candidates` (bool
        [vocab_size]) limits what may be recommended. Histories are scored in batches of
        similar length, each only as wide as its longest needs, so many users score fast;
        `progress(n)` hears of each batch of `n` histories. `viewed` (flat, offsets, one row per
        history) names further items that `exclude_seen` leaves out: those a user saw in
        events the rating filter dropped (`UserHistories.seen_subset`)."""
        _check_k(k)
        lengths = np.diff(offsets)
        order = np.argsort(np.minimum(lengths, self.model.config.max_len - 1), kind="stable")
        width = min(k, self.n_items)
        top_items = np.zeros((len(lengths), width), dtype=np.int64)
        top_scores = np.full((len(lengths), width), -np.inf, dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            scores = self._scores_of(flat, offsets, rows)  # [b, V]
            if candidates is not None:
                scores.masked_fill_(~candidates, float("-inf"))
            if exclude_seen:
                seen = flat[concatenated_ranges(offsets[rows], lengths[rows])]
                row_of = np.repeat(np.arange(len(rows)), lengths[rows])
                scores[torch.from_numpy(row_of), torch.from_numpy(seen)] = float("-inf")
                if viewed is not None:
                    exclude_rows(scores, *viewed, rows)
            top = scores.topk(width, dim=1)  # [b, width]
            top_items[rows], top_scores[rows] = top.indices.numpy(), top.values.numpy()
            if progress is not None:
                progress(len(rows))
        return top_items, top_scores

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
        _check_k(k)
        width = min(k, self.n_items - 1)
        query = torch.as_tensor(list(indices), dtype=torch.long)  # [Q]
        cosine = self._unit_embeddings[query] @ self._unit_embeddings.T  # [Q, V]
        cosine[:, [PAD, cosine.shape[1] - 1]] = float("-inf")  # padding, [MASK]
        cosine[torch.arange(len(query)), query] = float("-inf")  # the item itself
        if candidates is not None:
            cosine.masked_fill_(~candidates, float("-inf"))
        cosine[:, list(excluded)] = float("-inf")
        top = cosine.topk(width, dim=1)
        return top.indices.numpy(), top.values.numpy()

    def _scores(self, indices: Sequence[Sequence[int]]) -> torch.Tensor:
        """Next-item logits [B, V] for histories of vocabulary indices; padding and [MASK]
        get -inf."""
        flat, offsets = flatten(indices)
        return self._scores_of(flat, offsets, np.arange(len(indices)))

    def _scores_of(self, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
                   ) -> torch.Tensor:
        """`_scores` for the histories `rows` of (flat, offsets). Inputs are only as wide as
        the longest history needs (left padding is invisible to the model), which keeps
        short requests fast."""
        config = self.model.config
        longest = int((offsets[rows + 1] - offsets[rows]).max(initial=0))  # these rows only
        width = min(config.max_len, longest + 1)
        recent = torch.from_numpy(left_pad(flat, offsets, rows, width - 1))  # [B, width - 1]
        inputs = prediction_inputs(recent, width, config.mask_token)  # [B, width]
        with torch.inference_mode():  # no autograd bookkeeping; callers edit the scores inside
            return self.model(inputs).float()  # [B, V]; padding and [MASK] at -inf already

    def entries(self, indices: Iterable[int]) -> list[CatalogItem]:
        """The catalogue entries of vocabulary indices, in order."""
        return [self.catalog.entry(self._ids[index - 1]) for index in indices]

    def _ranked(self, indices: list[int], scores: list[float]) -> tuple[Recommendation, ...]:
        return tuple(Recommendation(rank, entry.item, entry.title, entry.genres, score)
                     for rank, (entry, score)
                     in enumerate(zip(self.entries(indices), scores, strict=True), start=1))

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


def exclude_rows(scores: torch.Tensor, flat: np.ndarray, offsets: np.ndarray,
                 rows: np.ndarray) -> None:
    """Set to -inf, in row b of `scores` ([B, V]), the items `flat[offsets[r]:offsets[r + 1]]`
    of history `r = rows[b]`."""
    lengths = offsets[rows + 1] - offsets[rows]
    items = flat[concatenated_ranges(offsets[rows], lengths)]
    row_of = np.repeat(np.arange(len(rows)), lengths)
    scores[torch.from_numpy(row_of), torch.from_numpy(items)] = float("-inf")


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number of items, got {k!r}")
