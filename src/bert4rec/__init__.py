"""BERT4Rec: next-item recommendation from who-watched-what-when logs.

    import bert4rec
    data = bert4rec.Dataset.from_frame(ratings, user="userId", item="movieId", items=movies)
    model = bert4rec.Model().fit(data)
    model.recommend(users=[1, 2], k=10)

    train, test = bert4rec.split.by_time(ratings, fraction=0.1)      # your own evaluation
    bert4rec.metrics.ndcg(recs, test, k=10)                           # on any recommendations
    bert4rec.Baseline("itemknn").fit(data).evaluate(test=test)       # the same calls

The public names are imported when first used, so `import bert4rec` (and `bert4rec --help`)
stays quick: torch loads only with `Model` and `Baseline`; `split` and `metrics` need polars
alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Baseline", "Dataset", "Model", "Recommender", "__version__", "metrics", "split"]

_WHERE = {"Dataset": "bert4rec.api", "Model": "bert4rec.api",
          "Baseline": "bert4rec.inference.baseline",
          "Recommender": "bert4rec.inference.recommender"}
_MODULES = {"split": "bert4rec.evaluation.split", "metrics": "bert4rec.evaluation.frame_metrics"}
"""Modules under a short name: `bert4rec.split.by_time`, `bert4rec.metrics.ndcg`."""

if TYPE_CHECKING:
    from bert4rec.api import Dataset, Model
    from bert4rec.evaluation import frame_metrics as metrics
    from bert4rec.evaluation import split
    from bert4rec.inference.baseline import Baseline
    from bert4rec.inference.recommender import Recommender


def __getattr__(name: str) -> Any:
    """`bert4rec.Dataset`, `Model`, `Baseline` and `Recommender`, and the modules `split` and
    `metrics`, imported on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'bert4rec' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE, *_MODULES])
