"""BERT4Rec: next-item recommendation from who-watched-what-when logs.

    import bert4rec
    data = bert4rec.Dataset.from_frame(ratings, user="userId", item="movieId", items=movies)
    model = bert4rec.Model().fit(data)
    model.recommend(users=[1, 2], k=10)

The public names are imported when first used, so `import bert4rec` (and `bert4rec --help`)
stays quick: torch loads only with `Model`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Dataset", "Model", "Recommender", "__version__"]

_WHERE = {"Dataset": "bert4rec.api", "Model": "bert4rec.api",
          "Recommender": "bert4rec.inference.recommender"}

if TYPE_CHECKING:
    from bert4rec.api import Dataset, Model
    from bert4rec.inference.recommender import Recommender


def __getattr__(name: str) -> Any:
    """`bert4rec.Dataset`, `bert4rec.Model` and `bert4rec.Recommender`, imported on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bert4rec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
