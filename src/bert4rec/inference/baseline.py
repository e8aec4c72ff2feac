"""`bert4rec.Baseline`: the baselines (popular, markov, itemknn) behind the calls a `Model`
answers, so that every comparison is one line:

    knn = bert4rec.Baseline("itemknn").fit(data)
    knn.evaluate(data)                   # the built-in leave-one-out split, as Model.evaluate
    knn.evaluate(test=test)              # a held-out frame of your own
    knn.recommend(users=[1, 2], k=10)    # user, rank, item, score, title, genres

A baseline counts what it learns on the part of `data` a `Model` trains on (each user's
sequence less its last two items, held out for validation and test), so the two compare on
equal terms; it recommends after a user's whole history, as a `Model` does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bert4rec.data import columns as C
from bert4rec.data.corpus import SequenceCorpus, left_pad
from bert4rec.data.frames import handed_out
from bert4rec.data.users import OnUnknown, UserHistories
from bert4rec.errors import DataError, NotFittedError, SettingsError
from bert4rec.evaluation.baselines import BASELINES, train_item_counts
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.protocols import Protocol, evaluate
from bert4rec.inference.catalog import ItemId
from bert4rec.inference.held_out import evaluate_frame, histories_from
from bert4rec.inference.recommender import Ranker
from bert4rec.inference.requests import FILTER_VIEWED, RecommendRequest

if TYPE_CHECKING:
    from bert4rec.api import Dataset


class Baseline:
    """A fitted baseline scorer with the item table and user histories of its data."""

    def __init__(self, name: str = "itemknn", **options: Any) -> None:
        """`name` is "popular" (most often watched), "markov" (what followed the last item
        most often) or "itemknn" (what occurred near the last `window` items most often;
        `window=5`). Checked now."""
        if name not in BASELINES:
            raise SettingsError(f"unknown baseline {name!r}; choose one of "
                                f"{', '.join(BASELINES)}")
        known = [p for p in inspect.signature(BASELINES[name]).parameters if p != "corpus"]
        unknown = sorted(set(options) - set(known))
        if unknown:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise SettingsError(f"baseline {name!r} has no setting {unknown[0]!r}; {takes}")
        self.name, self.options = name, options
        self._fitted: dict[str, Any] | None = None

    def fit(self, data: Dataset) -> Baseline:
        """Count what the baseline needs in `data` (a `bert4rec.Dataset`) and return it."""
        corpus = data.corpus
        scorer = BASELINES[self.name](corpus, **self.options)
        self._fitted = {
            "corpus": corpus,
            "scorer": scorer,
            "ranker": BaselineRanker(scorer, corpus),
            "users": UserHistories.from_corpus(corpus),
            "pandas": data.description.get("frames") == "pandas",
            "columns": data.description.get("columns") or {},
        }
        return self

    @property
    def users(self) -> np.ndarray:
        """Every user id the baseline can recommend for by id, ascending."""
        return self._state()["users"].ids

    @property
    def items(self) -> Any:
        """Every item it can recommend: item, and title and genres where known."""
        state = self._state()
        return handed_out(state["ranker"].items, state["pandas"])

    def recommend(
        self,
        users: Iterable[Any] | Any = None,
        *,
        histories: Sequence[Sequence[ItemId]] | None = None,
        k: int = 10,
        filter_viewed: bool = FILTER_VIEWED,
        items: Iterable[ItemId] | None = None,
        exclude: Iterable[ItemId] | None = None,
        on_unknown: OnUnknown = "raise",
    ) -> Any:
        """As `Model.recommend`, through the same path (`Ranker.answer`): one long frame of
        `user` (or `history`), `rank`, `item`, `score` (the baseline's count: watches,
        transitions or co-occurrences, plus a popularity tie-break below 1), then `title` and
        `genres` where known."""
        state = self._state()
        request = RecommendRequest(
            users=None if users is None else _as_list(users),
            histories=None if histories is None else list(histories), k=k,
            filter_viewed=filter_viewed, items=None if items is None else list(items),
            exclude=None if exclude is None else list(exclude), on_unknown=on_unknown)
        ranking = state["ranker"].answer(request, state["users"])
        return handed_out(state["ranker"].frame(ranking), state["pandas"])

    def evaluate(self, data: Dataset | None = None, split: str = "test", protocol: str = "full",
                 *, test: Any = None, history: Any = None, ks: Sequence[int] = DEFAULT_KS,
                 user: str | None = None, item: str | None = None, timestamp: str | None = None,
                 **options: Any) -> dict[str, Any]:
        """As `Model.evaluate`: the built-in leave-one-out split of `data` (the data it was
        fitted on, or data over the same items) with any protocol option, or a held-out
        frame `test` (`history` as there; columns named as in the data it was fitted on)."""
        state = self._state()
        corpus = state["corpus"]
        if test is None:
            if data is None:
                raise ValueError("evaluate takes data (the built-in split) or test=frame")
            if not np.array_equal(data.corpus.item_ids, corpus.item_ids):
                raise DataError("the data has other items than the baseline was fitted on: "
                                "evaluate on the data it was fitted on")
            return evaluate(state["scorer"], data.corpus, split,
                            Protocol(protocol, ks=tuple(ks), **options)).to_dict()
        if data is not None or options or protocol != "full":
            raise ValueError("evaluate(test=...) takes history=, ks=, user=, item= and "
                             "timestamp=; the built-in split's options go with data")
        columns = state["columns"]
        user, item = user or columns.get("user", C.USER), item or columns.get("item", C.ITEM)
        timestamp = timestamp or columns.get("timestamp")
        histories = state["users"]
        if history is not None:
            histories, _ = histories_from(history, state["ranker"].items[C.ITEM], user=user,
                                          item=item, timestamp=timestamp)
        return evaluate_frame(state["ranker"], histories, test, ks=ks, user=user, item=item)

    def __repr__(self) -> str:
        fitted = "fitted" if self._fitted is not None else "not fitted"
        return f"Baseline({self.name!r}, {self.options}, {fitted})"

    def _state(self) -> dict[str, Any]:
        if self._fitted is None:
            raise NotFittedError(f"this {self.name} baseline is not fitted yet: call fit(data)")
        return self._fitted


class BaselineRanker(Ranker):
    """The recommend path (`Ranker`) scored by a baseline's counts over a corpus's items:
    the whole history is read, and ties go to the smaller index (`top_by_index`)."""

    score_dtype = np.float64  # counts plus a fractional tie-break
    whose = "the baseline's"

    def __init__(self, scorer: Callable[[torch.Tensor], torch.Tensor],
                 corpus: SequenceCorpus) -> None:
        self.scorer = scorer
        super().__init__(corpus.vocab, corpus.item_table,
                         train_item_counts(corpus)[corpus.vocab.item_columns].tolist())

    def _scores_of(self, flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
                   ) -> torch.Tensor:
        longest = int((offsets[rows + 1] - offsets[rows]).max(initial=0))
        padded = left_pad(flat, offsets, rows, max(1, longest))  # [b, longest]
        scores = self.scorer(torch.from_numpy(padded)).clone()  # [b, V]
        scores[:, list(self.vocab.not_items)] = float("-inf")
        return scores

    def _best(self, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return top_by_index(scores, k)


def top_by_index(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` best columns of each row of `scores` [B, V] and their scores, best first, ties
    going to the smaller index as the evaluator breaks them (`evaluation/metrics.py`), so a
    baseline's lists give the figures its evaluation does: counts tie often."""
    kth = scores.topk(k, dim=1).values[:, -1:]  # [B, 1]
    above = scores > kth
    level = scores == kth
    room = k - above.sum(dim=1, keepdim=True)  # [B, 1] places left for the tied
    chosen = above | (level & (level.cumsum(dim=1) <= room))  # [B, V], k per row
    index = chosen.nonzero()[:, 1].view(len(scores), k)  # ascending index
    values = scores.gather(1, index)
    order = values.sort(dim=1, descending=True, stable=True).indices
    return index.gather(1, order), values.gather(1, order)


def _as_list(values: Iterable[Any] | Any) -> list[Any]:
    if isinstance(values, str | bytes | int | np.integer):
        return [values]
    return list(values)
