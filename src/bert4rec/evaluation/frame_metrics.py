"""Metrics on a recommendations frame against a held-out frame, whatever made the
recommendations: this package's `recommend`, a baseline, or another library.

`recs` has one row per recommended item: `user`, `item` and `rank` (1 = first). `test` has
one row per held-out event: `user` and `item`; every distinct (user, item) pair of it is one
relevant item. Both may be pandas or polars frames; `user=`, `item=` and `rank=` name the
columns when they are called otherwise (the same names in both frames).

Per user of `test`, with R its relevant items and the hits the relevant items ranked k or
better (a user without recommendations has no hits):

    NDCG@k   = sum over hits of 1 / log2(rank + 1), divided by the same sum for an ideal
               list (min(|R|, k) hits at ranks 1, 2, ...)
    HR@k     = 1 if there is a hit, else 0
    Recall@k = hits / |R|
    MRR@k    = 1 / the best rank of a hit (0 without one)

and each is averaged over the users of `test`. With one held-out item per user these are
the built-in evaluator's NDCG@k and HR@k (Recall@k = HR@k), and MRR@k is its MRR counting
ranks past k as 0. Beyond accuracy, over the recommendations ranked k or better:

    Coverage@k   = distinct items recommended / items in the catalogue
    Popularity@k = mean popularity percentile of the items recommended: the share of the
                   catalogue's items less often in `train` than it, ties counted as half,
                   times 100 (50: as popular as the typical item; near 100: the hits)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from bert4rec.data.columns import ITEM, RANK, USER
from bert4rec.data.frames import to_polars
from bert4rec.errors import DataError

DEFAULT_KS: tuple[int, ...] = (10,)


def ndcg(recs: Any, test: Any, k: int = 10, *, user: str = USER, item: str = ITEM,
         rank: str = RANK) -> float:
    """Mean NDCG@k over the users of `test` (binary relevance)."""
    return _mean(_per_user(recs, test, k, user, item, rank), "ndcg")


def hit_rate(recs: Any, test: Any, k: int = 10, *, user: str = USER, item: str = ITEM,
             rank: str = RANK) -> float:
    """Mean HR@k: the share of `test`'s users with a relevant item ranked k or better."""
    return _mean(_per_user(recs, test, k, user, item, rank), "hit")


def recall(recs: Any, test: Any, k: int = 10, *, user: str = USER, item: str = ITEM,
           rank: str = RANK) -> float:
    """Mean Recall@k: the share of each user's relevant items ranked k or better."""
    return _mean(_per_user(recs, test, k, user, item, rank), "recall")


def mrr(recs: Any, test: Any, k: int = 10, *, user: str = USER, item: str = ITEM,
        rank: str = RANK) -> float:
    """Mean reciprocal rank of each user's best-ranked relevant item, 0 past rank k."""
    return _mean(_per_user(recs, test, k, user, item, rank), "rr")


def coverage(recs: Any, catalog: int | Iterable[Any], k: int = 10, *, item: str = ITEM,
             rank: str = RANK) -> float:
    """The share of the catalogue (`catalog`: its size, or its item ids) recommended to
    someone at rank k or better."""
    size = catalog if isinstance(catalog, int) else len(set(catalog))
    if size < 1:
        raise ValueError(f"the catalogue must hold at least one item, got {catalog!r}")
    top = _top(_frame(recs, "recs", [item, rank]), k, rank)
    return top[item].n_unique() / size


def popularity(recs: Any, train: Any, k: int = 10, *, catalog: int | Iterable[Any] | None = None,
               item: str = ITEM, rank: str = RANK) -> float:
    """Mean popularity percentile (0-100) of the items recommended at rank k or better, by
    how often each occurs in `train` among the items of `catalog` (its size, or its item
    ids; by default the items of `train`). Items absent from `train` count 0 times."""
    top = _top(_frame(recs, "recs", [item, rank]), k, rank)
    if top.height == 0:
        raise ValueError("no recommendations at rank k or better to measure")
    counts = _frame(train, "train", [item]).group_by(item).agg(pl.len().alias("count"))
    if catalog is not None and not isinstance(catalog, int):
        ids = pl.Series(item, list(dict.fromkeys(catalog)))
        counts = ids.to_frame().join(counts, on=item, how="left").fill_null(0)
    size = counts.height if catalog is None or not isinstance(catalog, int) else catalog
    if size < counts.height:
        raise ValueError(f"catalog={catalog} items, but train holds {counts.height:,} distinct "
                         "items; give the catalogue's size or its item ids")
    known = np.sort(counts["count"].to_numpy())
    wanted = top.join(counts, on=item, how="left")["count"].fill_null(0).to_numpy()
    unseen = size - len(known)  # catalogue items absent from train: count 0
    below = np.searchsorted(known, wanted, "left") + np.where(wanted > 0, unseen, 0)
    ties = np.searchsorted(known, wanted, "right") - np.searchsorted(known, wanted, "left")
    ties = ties + np.where(wanted == 0, unseen, 0)
    return float(np.mean(100.0 * (below + ties / 2) / size))


def compute(recs: Any, test: Any, ks: Sequence[int] = DEFAULT_KS, *, train: Any = None,
            catalog: int | Iterable[Any] | None = None, user: str = USER, item: str = ITEM,
            rank: str = RANK) -> dict[str, float]:
    """Every metric at every k in `ks`: {"NDCG@10": ..., "HR@10": ..., "Recall@10": ...,
    "MRR@K" (K the largest k), "Coverage@10" (with `catalog`), "Popularity@10" (with
    `train`; over `catalog` when given)}."""
    ks = _check_ks(ks)
    result: dict[str, float] = {}
    for k in ks:
        scores = _per_user(recs, test, k, user, item, rank)
        result.update({f"NDCG@{k}": _mean(scores, "ndcg"), f"HR@{k}": _mean(scores, "hit"),
                       f"Recall@{k}": _mean(scores, "recall")})
    result[f"MRR@{ks[-1]}"] = _mean(_per_user(recs, test, ks[-1], user, item, rank), "rr")
    for k in ks:
        if catalog is not None:
            result[f"Coverage@{k}"] = coverage(recs, catalog, k, item=item, rank=rank)
        if train is not None:
            result[f"Popularity@{k}"] = popularity(recs, train, k, catalog=catalog, item=item,
                                                   rank=rank)
    return result


def _per_user(recs: Any, test: Any, k: int, user: str, item: str, rank: str) -> pl.DataFrame:
    """One row per user of `test`: ndcg, hit, recall and rr (reciprocal rank) at k."""
    _check_ks([k])
    held = _frame(test, "test", [user, item]).select(user, item).unique()
    if held.height == 0:
        raise ValueError("test holds no events: nothing to measure against")
    top = _top(_frame(recs, "recs", [user, item, rank]), k, rank).select(user, item, rank)
    top = _same_types(top, held, [user, item])
    top = top.group_by(user, item).agg(pl.col(rank).min())  # an item listed twice counts once
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])  # [k + 1]
    hits = held.join(top, on=[user, item]).group_by(user).agg(
        pl.len().alias("hits"),
        (1.0 / (pl.col(rank).cast(pl.Float64) + 1.0).log(2)).sum().alias("dcg"),
        pl.col(rank).min().alias("best"))
    relevant = held.group_by(user).agg(pl.len().alias("relevant")).sort(user)  # sums in one order
    scores = relevant.join(hits, on=user, how="left", maintain_order="left").with_columns(
        pl.col("hits", "dcg").fill_null(0))
    best_possible = ideal[np.minimum(scores["relevant"].to_numpy(), k)]
    return scores.select(
        user,
        (pl.col("dcg") / pl.Series(best_possible)).alias("ndcg"),
        (pl.col("hits") > 0).cast(pl.Float64).alias("hit"),
        (pl.col("hits") / pl.col("relevant")).alias("recall"),
        (1.0 / pl.col("best").cast(pl.Float64)).fill_null(0.0).alias("rr"),
    )


def _mean(scores: pl.DataFrame, name: str) -> float:
    return float(scores[name].mean())


def _top(recs: pl.DataFrame, k: int, rank: str) -> pl.DataFrame:
    if not recs[rank].dtype.is_numeric():
        raise DataError(f"recs: column {rank!r} holds {recs[rank].dtype}; expected ranks "
                        "(1 = first)")
    return recs.filter(pl.col(rank) <= k)


def _frame(frame: Any, name: str, columns: list[str]) -> pl.DataFrame:
    table = to_polars(frame, name)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{name}: no column(s) {', '.join(map(repr, missing))}; it has "
                        f"{table.columns}. Name the right ones with user=, item= and rank=")
    return table


def _same_types(recs: pl.DataFrame, test: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`recs` with its id columns cast to `test`'s types: whole numbers of any width match,
    numbers and text do not (that is a mix-up, not a miss)."""
    for column in columns:
        mine, theirs = recs[column].dtype, test[column].dtype
        if mine == theirs:
            continue
        if mine.is_integer() and theirs.is_integer():
            recs = recs.with_columns(pl.col(column).cast(theirs))
        else:
            raise DataError(f"column {column!r} holds {mine} in recs and {theirs} in test; "
                            "the ids of both must be of one kind (numbers or text)")
    return recs


def _check_ks(ks: Iterable[int]) -> list[int]:
    ks = sorted(set(ks))
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"k must be a positive whole number, got {ks!r}")
    return ks
