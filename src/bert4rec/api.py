"""The public Python face: `bert4rec.Dataset` and `bert4rec.Model`.

`Dataset` is interactions prepared for training, from a DataFrame, a log file or a MovieLens
release: a `SequenceCorpus` (filtered, time-ordered sequences over an item vocabulary) plus the
record of how it was made, which a run's config.json keeps. `Model` is a preset plus overrides
that fits on a `Dataset`, is saved and loaded as a run directory, and answers recommendations as
one long DataFrame: a thin face over `training.loop.fit` (training), `Recommender` (inference)
and `UserHistories` (users by id).

    data = bert4rec.Dataset.from_frame(ratings, user="userId", item="movieId", items=movies)
    model = bert4rec.Model(epochs=30).fit(data)        # the preset "auto" picks by data size
    model.recommend(users=[1, 2], k=10)                # user, rank, item, score, title, genres
    model.save("runs/mine");  model = bert4rec.Model.load("runs/mine")
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from bert4rec import rundir
from bert4rec.config import AUTO, AUTO_CHOICES, PRESETS, SECTIONS, Settings, auto_preset
from bert4rec.config import preset as named_preset
from bert4rec.data import columns as C
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.features import new_item_table
from bert4rec.data.frames import interactions_from_frames
from bert4rec.data.interactions import LogColumns
from bert4rec.data.users import OnUnknown, UserHistories
from bert4rec.errors import DataError, ModelDirError, NotFittedError, SettingsError
from bert4rec.evaluation.protocols import EVAL_DEVICE, Protocol, evaluate, model_scorer
from bert4rec.files import temp_dir
from bert4rec.inference.catalog import ItemId
from bert4rec.inference.recommender import Recommender
from bert4rec.inference.requests import FILTER_VIEWED, RecommendRequest
from bert4rec.training.loop import fit
from bert4rec.training.runtime import pick_device
from bert4rec.training.threads import governed

PREPARE = PrepareSettings()
"""The data settings' defaults (`data.corpus.PrepareSettings`), as the command line has them."""
COLUMNS = LogColumns()
"""The log's column names by default (`data.interactions.LogColumns`), as on the command line."""


@dataclass(frozen=True)
class Dataset:
    """Prepared interactions (`corpus`) and how to rebuild them (`description`: the source and
    the prepare settings, recorded as `data` in a run's config.json)."""

    corpus: SequenceCorpus
    description: dict[str, Any]

    @classmethod
    def from_frame(
        cls,
        events: Any,
        *,
        user: str = COLUMNS.user,
        item: str = COLUMNS.item,
        timestamp: str | None = COLUMNS.timestamp,
        rating: str | None = COLUMNS.rating,
        items: Any = None,
        title: str = C.TITLE,
        genres: str = C.GENRES,
        min_rating: float | None = PREPARE.min_rating,
        min_user_interactions: int = PREPARE.min_user_interactions,
        min_item_interactions: int = PREPARE.min_item_interactions,
    ) -> Dataset:
        """Interactions from a pandas or polars DataFrame with one row per event.

        `user` and `item` name the id columns (whole numbers or text), `timestamp` the time
        (numbers, dates or datetimes; None: the rows are already in time order) and `rating`
        the rating column, kept when at least `min_rating` (None keeps all; a frame without
        a column of the default name "rating" has no ratings, as a log file). `items`
        is an optional item table (such as MovieLens's movies) with the same `item` column and
        a `title` and/or `genres` column ("A|B" text or lists), shown with recommendations;
        its other columns are kept too (in the run directory's items.parquet).
        Users with fewer than `min_user_interactions` events and items with fewer than
        `min_item_interactions` are left out. Errors name the column and row at fault.
        """
        columns = LogColumns(user, item, timestamp, rating)
        settings = PrepareSettings(min_rating, min_item_interactions, min_user_interactions)
        corpus = prepare(interactions_from_frames(events, columns, items, title, genres),
                         settings)
        return cls(corpus, {"source": None, **asdict(settings), "columns": asdict(columns)})

    @classmethod
    def from_source(
        cls,
        source: str | Path,
        *,
        data_dir: str | Path | None = None,
        user: str = COLUMNS.user,
        item: str = COLUMNS.item,
        timestamp: str = COLUMNS.timestamp,
        rating: str | None = COLUMNS.rating,
        min_rating: float | None = PREPARE.min_rating,
        min_user_interactions: int = PREPARE.min_user_interactions,
        min_item_interactions: int = PREPARE.min_item_interactions,
    ) -> Dataset:
        """Interactions from what `bert4rec train SOURCE` reads: a MovieLens release name
        ("ml-1m", looked up in `data_dir`, $BERT4REC_DATA_DIR, then the user cache), a
        release folder or zip, or a CSV, TSV, Parquet or "user item" text log (columns named
        as for `from_frame`). Prepared corpora are cached, as on the command line."""
        columns = LogColumns(user, item, timestamp, rating)
        settings = PrepareSettings(min_rating, min_item_interactions, min_user_interactions)
        corpus = load_corpus(source, settings, data_dir=data_dir, columns=columns)
        path = Path(source)
        recorded = str(path.resolve()) if path.exists() else str(source)
        return cls(corpus, {"source": recorded, **asdict(settings), "columns": asdict(columns)})

    @property
    def n_users(self) -> int:
        return self.corpus.n_users

    @property
    def n_items(self) -> int:
        return self.corpus.n_items

    @property
    def n_interactions(self) -> int:
        return self.corpus.n_interactions

    @property
    def users(self) -> np.ndarray:
        """Every user id kept, ascending."""
        return self.corpus.user_ids

    @property
    def items(self) -> pl.DataFrame:
        """Every item kept: item, title, genres (null where unknown), then any other columns
        of the item table."""
        return self.corpus.item_table.drop(C.INDEX)

    def statistics(self) -> dict[str, float | int | str]:
        """Users, items, interactions, sequence-length quantiles and density."""
        return self.corpus.statistics()

    def __repr__(self) -> str:
        return (f"Dataset({self.n_users:,} users, {self.n_items:,} items, "
                f"{self.n_interactions:,} interactions)")


QUERY_KEY = "query"
"""The first column of `similar_items`: the item asked about."""
SETTING_NAMES = {f.name: f"{section}.{f.name}" for section, kind in SECTIONS.items()
                 for f in fields(kind)}
"""Every training setting by its own name (`epochs` -> `loop.epochs`), as the CLI's flags."""


class Model:
    """BERT4Rec as a Python object: `Model(preset, **settings)`, then `fit`, or `Model.load`."""

    def __init__(self, preset: str = AUTO, *, threads: int | None = None,
                 **settings: Any) -> None:
        """`preset` is one of "auto" (small or large by the number of interactions), "small",
        "large", "fast", "seed" or "paper"; `settings` override it by name (`epochs=30`,
        `hidden=128`, `lr=3e-3`; docs/configuration.md). Both are checked now. `threads` fixes
        the torch threads of `fit`, `recommend` and `evaluate`; by default they follow the
        free cores (`bert4rec.training.threads`)."""
        if preset != AUTO and preset not in PRESETS:
            raise SettingsError(f"unknown preset {preset!r}; choose {AUTO!r} or one of "
                                f"{sorted(PRESETS)}")
        self.preset, self.threads = preset, threads
        self.overrides = {_setting_key(name): value for name, value in settings.items()}
        for name in AUTO_CHOICES if preset == AUTO else [preset]:
            named_preset(name).override(self.overrides)
        self.run_dir: Path | None = None
        self.settings: Settings | None = None
        self._temporary: tempfile.TemporaryDirectory | None = None
        self._recommender: Recommender | None = None
        self._users: UserHistories | None = None

    def fit(self, data: Dataset, out: str | Path | None = None, progress: bool = True) -> Model:
        """Train on `data` (validation picks the epoch, test is scored once) and return this
        model, ready to recommend. `out` is the run directory to write (it must not hold a run
        yet); without it the run goes to a temporary directory removed with the model, which
        `save` keeps. `progress` shows a bar over the epochs."""
        name = (auto_preset(data.n_interactions, data.n_users) if self.preset == AUTO
                else self.preset)
        settings = named_preset(name).override(self.overrides)
        temporary = None if out is not None else tempfile.TemporaryDirectory(prefix="bert4rec-")
        run_dir = Path(out) if out is not None else Path(temporary.name) / "run"
        metric = settings.loop.metric
        with governed(self.threads), tqdm(total=settings.loop.epochs, desc=f"fit ({name})",
                                          unit="epoch", disable=not progress) as bar:
            def advance(_: Any, record: dict[str, float]) -> None:
                bar.set_postfix({f"valid {metric}": f"{record[metric]:.4f}"}, refresh=False)
                bar.update(1)

            fit(data.corpus, settings, run_dir, data=data.description, progress=progress,
                callback=advance)
        self._open(run_dir, temporary)
        return self

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> Model:
        """A model from a run directory (written by `save`, `fit(out=...)` or `bert4rec
        train`); `threads` as for `Model()`."""
        model = cls(threads=threads)
        model._open(Path(path), None)
        return model

    def save(self, path: str | Path) -> Model:
        """Copy the run directory (config.json, model.safetensors, items.parquet,
        users.parquet, metrics.json, tensorboard/; not the resume checkpoints) to `path`,
        which must not exist or be an empty folder. The model then lives there."""
        run_dir = self._fitted()[0]
        path = Path(path)
        if path.absolute() == run_dir.absolute():
            return self
        rundir.check_out_dir(path, resume=False)
        if path.is_dir() and any(path.iterdir()):
            raise ModelDirError(f"{path}: exists and is not empty; save into a new folder")
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
        staging = temp_dir(path.absolute().parent, prefix=f".{path.name}.")
        try:
            shutil.copytree(run_dir, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(rundir.CHECKPOINT.parent.name))
            rundir.claim_run_dir(staging)  # marked as a run, even if the original was not
            os.replace(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.run_dir, self._temporary = path, None
        return self

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json of the run: best epoch, validation and test figures, history."""
        path = self._fitted()[0] / rundir.METRICS
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def users(self) -> np.ndarray:
        """Every user id the model can recommend for by id, ascending."""
        return self._histories().ids

    @property
    def items(self) -> pl.DataFrame:
        """Every item the model can recommend: item, and title and genres where known."""
        return self._fitted()[1].items

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
        progress: bool = False,
    ) -> pl.DataFrame:
        """The top `k` items for each of `users` (ids the model was trained with; each one's
        whole history is used) or for each of `histories` (item ids or titles, oldest first),
        as one long frame: `user` (or `history`, the position in the list), `rank`, `item`,
        `score`, then `title` and `genres` where the items have them.

        `filter_viewed` leaves out items already in the history; `items` allows only these
        item ids, `exclude` never offers these. An unknown user, item or title raises an error
        naming it, or with `on_unknown="skip"` is left out (an unknown user gets no rows).
        `progress` shows a bar over the users. `Recommender.answer` answers: the command
        line and the HTTP API ask it the same way.
        """
        recommender = self._fitted()[1]
        request = RecommendRequest(
            users=None if users is None else _as_list(users),
            histories=None if histories is None else list(histories), k=k,
            filter_viewed=filter_viewed, items=items, exclude=exclude, on_unknown=on_unknown)
        known = self._histories() if request.users is not None else None
        with governed(self.threads), tqdm(total=len(request), desc="recommend", unit="user",
                                          disable=not progress) as bar:
            ranking = recommender.answer(request, known, progress=bar.update)
        return recommender.frame(ranking)

    def add_items(self, items: Any, *, item: str = C.ITEM, title: str = C.TITLE,
                  genres: str = C.GENRES) -> Model:
        """Offer new items without retraining: each row of `items` (a pandas or polars item
        table, ids in the `item` column) that the model does not know becomes an item scored
        by its features alone. The model must have been trained with `item_features`, and the
        table needs the columns they came from; values it never saw are left out. Known ids
        keep their trained vectors. The items live in this object: `save` and the run
        directory keep the catalogue as trained. Returns this model."""
        recommender = self._fitted()[1]
        table = new_item_table(items, item, title, genres, name="add_items(items)")
        self._recommender = recommender.add_items(table)
        return self

    def similar_items(self, items: Iterable[ItemId] | ItemId, k: int = 10,
                      on_unknown: OnUnknown = "raise") -> pl.DataFrame:
        """The `k` items whose embeddings are closest (cosine) to each of `items` (ids or
        titles), as one long frame: `query` (the item's id), `rank`, `item`, `score`, then
        title and genres where known. Unknown items raise, or are skipped with
        `on_unknown="skip"`."""
        recommender = self._fitted()[1]
        queries = recommender.resolve(_as_list(items), on_unknown)
        top = recommender.nearest([recommender.index_of(q.item) for q in queries], k)
        return recommender.to_frame(QUERY_KEY, [q.item for q in queries], *top)

    def evaluate(self, data: Dataset, split: str = "test", protocol: str = "full", *,
                 device: str = EVAL_DEVICE, **options: Any) -> dict[str, Any]:
        """Rank each user's held-out item of `data` (the data the model was trained on, or
        data over the same items) and return the labelled metrics, as `bert4rec evaluate`
        does: `protocol` "full" (default) or "sampled", and the other fields of
        `evaluation.protocols.Protocol` by name (`filter_viewed`, `ks`, `n_negatives`, ...).
        `device` is where the model scores (by default CUDA, then MPS, then the CPU)."""
        run_dir, recommender = self._fitted()
        if not np.array_equal(data.corpus.item_ids, np.asarray(recommender.item_ids)):
            raise DataError(
                f"the data has {data.n_items:,} items and the model {recommender.n_items:,}, "
                "or other ids: evaluate on the data the model was trained on (the same items)"
            )
        where = pick_device(device)
        scorer = model_scorer(rundir.load_model(run_dir, where)[0], where)
        with governed(self.threads):
            return evaluate(scorer, data.corpus, split, Protocol(protocol, **options)).to_dict()

    def __repr__(self) -> str:
        if self._recommender is None:
            return f"Model(preset={self.preset!r}, {self.overrides}, not fitted)"
        return f"Model({self.run_dir}, {self._recommender.n_items:,} items)"

    def _open(self, run_dir: Path, temporary: tempfile.TemporaryDirectory | None) -> None:
        """Point this model at a run directory (keeping `temporary` alive while it does)."""
        recommender = Recommender.load(run_dir)
        train = rundir.read_config(run_dir).get("train") or {}
        self.settings = Settings.from_dict(train) if train else None
        self.run_dir, self._temporary = run_dir, temporary
        self._recommender, self._users = recommender, None

    def _fitted(self) -> tuple[Path, Recommender]:
        if self._recommender is None or self.run_dir is None:
            raise NotFittedError("this model is not trained yet: call fit(data) or "
                                 "Model.load(path) first")
        return self.run_dir, self._recommender

    def _histories(self) -> UserHistories:
        if self._users is None:
            run_dir, recommender = self._fitted()
            self._users = rundir.read_users(run_dir, recommender.n_items)
        return self._users


def _setting_key(name: str) -> str:
    """`section.field` for a setting's own name; unknown names fail with the closest ones."""
    if name in SETTING_NAMES:
        return SETTING_NAMES[name]
    close = difflib.get_close_matches(name, SETTING_NAMES, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise SettingsError(f"unknown setting {name!r}{hint} (docs/configuration.md lists them)")


def _as_list(values: Iterable[Any] | Any) -> list[Any]:
    """One id (a number or a string) or many, as a list."""
    if isinstance(values, str | bytes | int | np.integer):
        return [values]
    return list(values)
