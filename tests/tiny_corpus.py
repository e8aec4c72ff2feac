"""Tiny hand-made corpora for the evaluation tests: item id i is vocab index i when ids are 1..n."""

from __future__ import annotations

import polars as pl

from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.interactions import Interactions


def tiny_corpus(sequences: list[list[int]], name: str = "tiny") -> SequenceCorpus:
    """A corpus whose user u (0-based) watched `sequences[u]` in that order, nothing filtered."""
    rows = [(user, item, t) for user, seq in enumerate(sequences) for t, item in enumerate(seq)]
    events = pl.DataFrame(
        rows, schema={"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}, orient="row"
    )
    settings = PrepareSettings(min_rating=None, min_user_interactions=0)
    return prepare(Interactions(events, None, name), settings)
