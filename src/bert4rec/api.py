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
import warnings
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
from bert4rec.data.frames import handed_out, interactions_from_frames, is_pandas
from bert4rec.data.interactions import LogColumns
from bert4rec.data.users import OnUnknown, UserHistories
from bert4rec.errors import DataError, ModelDirError, NotFittedError, SettingsError
from bert4rec.evaluation.metrics import DEFAULT_KS
from bert4rec.evaluation.protocols import EVAL_DEVICE, Protocol, evaluate, model_scorer
from bert4rec.files import temp_dir
from bert4rec.inference.catalog import ItemId
from bert4rec.inference.held_out import evaluate_frame, histories_from, recent_from
from bert4rec.inference.recommender import Recommender
from bert4rec.inference.requests import FILTER_VIEWED, RecommendRequest, unknown_events
from bert4rec.training.loop import fit
from bert4rec.training.runtime import pick_device
from bert4rec.training.threads import governed
from bert4rec.training.warm_start import WarmStart

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
        A model fitted on a pandas frame answers in pandas frames.
        """
        columns = LogColumns(user, item, timestamp, rating)
        settings = PrepareSettings(min_rating, min_item_interactions, min_user_interactions)
        corpus = prepare(interactions_from_frames(events, columns, items, title, genres),
                         settings)
        kind = {"frames": "pandas"} if is_pandas(events) else {}
        return cls(corpus, {"source": None, **asdict(settings), "columns": asdict(columns),
                            **kind})

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
    def items(self) -> Any:
        """Every item kept: item, title, genres (null where unknown), then any other columns
        of the item table (pandas when the data came as pandas)."""
        return handed_out(self.corpus.item_table.drop(C.INDEX),
                          self.description.get("frames") == "pandas")

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
        """`preset` is one of "auto" (short, small, causal or large by the data's shape),
        "short", "small", "causal", "large", "fast", "seed" or "paper"; `settings` override
        it by name (`epochs=30`, `hidden=128`, `lr=3e-3`; docs/configuration.md). Both are
        checked now. `threads` fixes the torch threads of `fit`, `recommend` and `evaluate`;
        by default they follow the free cores (`bert4rec.training.threads`)."""
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
        self._pandas = False  # answer in pandas: the model was fitted on a pandas frame

    def fit(self, data: Dataset, out: str | Path | None = None, progress: bool = True, *,
            final: bool = False, holdout: str = "last-two",
            init_from: Model | str | Path | None = None) -> Model:
        """Train on `data` (validation picks the epoch, test is scored once) and return this
        model, ready to recommend. `out` is the run directory to write (it must not hold a run
        yet); without it the run goes to a temporary directory removed with the model, which
        `save` keeps. `progress` shows a bar over the epochs.

        `final=True` then trains the model afresh on every interaction, each user's last two
        included, for the epoch count validation chose: the newest behaviour is learnt too.
        `metrics` keeps the selection model's validation and test figures, labelled so.
        `holdout="none"` holds nothing out: it trains `epochs` epochs on everything (you give
        the count) and has no figures. `init_from`, a fitted `Model` or its run directory,
        warm-starts: items it knew keep their vectors and the encoder its weights, new items
        start from co-occurrence with known ones, and new users need nothing; its settings
        are the start (the model's shape stays), `Model(...)`'s overrides apply on top."""
        start = None if init_from is None else WarmStart.load(
            init_from._fitted()[0] if isinstance(init_from, Model) else Path(init_from))
        settings, name = self._settings_for(data, start)
        if out is not None:
            _check_out(Path(out), "fit into")
        temporary = None if out is not None else tempfile.TemporaryDirectory(prefix="bert4rec-")
        run_dir = Path(out) if out is not None else Path(temporary.name) / "run"
        metric = settings.loop.metric
        phase = ["selection"]
        with governed(self.threads), tqdm(total=settings.loop.epochs, desc=f"fit ({name})",
                                          unit="epoch", disable=not progress) as bar:
            def advance(_: Any, record: dict[str, float]) -> None:
                if record.get("final") and phase[0] != "final":
                    phase[0] = "final"
                    bar.reset(total=record["final_epochs"])
                    bar.set_description(f"final fit ({name})", refresh=False)
                if metric in record:
                    bar.set_postfix({f"valid {metric}": f"{record[metric]:.4f}"}, refresh=False)
                else:
                    bar.set_postfix({"loss": f"{record['loss']:.4f}"}, refresh=False)
                bar.update(1)

            fit(data.corpus, settings, run_dir, data=data.description, progress=progress,
                callback=advance, final=final, holdout=holdout, start=start)
        self._open(run_dir, temporary)
        return self

    def _settings_for(self, data: Dataset, start: WarmStart | None) -> tuple[Settings, str]:
        """The settings `fit` trains with, and their name for the progress bar: the preset
        (auto picks by size) with this model's overrides; for a warm start with the auto
        preset, the starting run's settings with the overrides. A warm start keeps the model's
        shape (`WarmStart.check_shape`)."""
        stored = None
        if start is not None:
            stored = rundir.read_config(start.source).get("train")
        if stored and self.preset == AUTO:
            settings, name = Settings.from_dict(stored).override(self.overrides), "warm start"
        else:
            name = (auto_preset(data.n_interactions, data.n_users, data.n_items)
                    if self.preset == AUTO else self.preset)
            settings = named_preset(name).override(self.overrides)
        if start is not None:
            start.check_shape(settings.model)
        return settings, name

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
        _check_out(path, "save into")
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
    def items(self) -> Any:
        """Every item the model can recommend: item, and title and genres where known."""
        return self._out(self._fitted()[1].items)

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
        interactions: Any = None,
    ) -> Any:
        """The top `k` items for each of `users` (ids the model was trained with; each one's
        whole history is used) or for each of `histories` (item ids or titles, oldest first),
        as one long frame: `user` (or `history`, the position in the list), `rank` (1 first),
        `item`, `score`, then `title` and `genres` where the items have them. A pandas frame
        when the model was fitted on pandas, else polars.

        `score` is the model's logit for the item coming next: a softmax over every item's
        score gives the probability, so only differences within one list mean something.

        `filter_viewed` leaves out items the user interacted with: the history, and for
        `users` also the items the rating filter dropped (a film rated 2 was seen too).
        `items` allows only these item ids, `exclude` never offers these. An unknown user,
        item or title raises an error naming it and why, or with `on_unknown="skip"` is left
        out (an unknown user gets no rows). `progress` shows a bar over the users.
        `Recommender.answer` answers: the command line and the HTTP API ask it the same way.

        `interactions`, an events frame of what `users` did since training (columns named as
        in the data the model was fitted on; oldest first by its time column, or by row),
        extends their stored histories without retraining; a user the model never saw is
        answered from these events alone. Events of items the model does not know are left
        out, and a warning says how many.
        """
        recommender = self._fitted()[1]
        recent = None
        if interactions is not None:
            columns = self._columns()
            recent = recent_from(interactions, user=columns["user"], item=columns["item"],
                                 timestamp=columns["timestamp"])
        request = RecommendRequest(
            users=None if users is None else _as_list(users),
            histories=None if histories is None else list(histories), k=k,
            filter_viewed=filter_viewed, items=items, exclude=exclude, on_unknown=on_unknown,
            recent=recent)
        known = self._histories() if request.users is not None else None
        with governed(self.threads), tqdm(total=len(request), desc="recommend", unit="user",
                                          disable=not progress) as bar:
            ranking = recommender.answer(request, known, progress=bar.update)
        if ranking.query.recent_unknown:
            warnings.warn(unknown_events(ranking.query), UserWarning, stacklevel=2)
        return self._out(recommender.frame(ranking))

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

    def similar_items(self, query: Iterable[ItemId] | ItemId, k: int = 10, *,
                      items: Iterable[ItemId] | None = None,
                      exclude: Iterable[ItemId] | None = None, filter_viewed: bool = False,
                      on_unknown: OnUnknown = "raise") -> Any:
        """The `k` items whose embeddings are closest (cosine) to each item of `query` (ids or
        titles), as one long frame: `query` (the item's id), `rank`, `item`, `score` (the
        cosine, -1 to 1), then title and genres where known. An item is never its own
        neighbour; `items` allows only these item ids, `exclude` never offers these, and
        `filter_viewed` leaves every item of `query` out of every list (a watch history as
        `query`: items like it that are not in it). Unknown items raise, or are skipped with
        `on_unknown="skip"`."""
        return self._out(_similar(self._fitted()[1], _as_list(query), k, items=items,
                                  exclude=exclude, filter_viewed=filter_viewed,
                                  on_unknown=on_unknown))

    def evaluate(self, data: Dataset | None = None, split: str = "test", protocol: str = "full",
                 *, test: Any = None, history: Any = None, ks: Sequence[int] = DEFAULT_KS,
                 user: str | None = None, item: str | None = None, timestamp: str | None = None,
                 device: str = EVAL_DEVICE, **options: Any) -> dict[str, Any]:
        """Rank each user's held-out item of `data` (the data the model was trained on, or
        data over the same items) and return the labelled metrics, as `bert4rec evaluate`
        does: `protocol` "full" (default) or "sampled", `ks`, and the other fields of
        `evaluation.protocols.Protocol` by name (`filter_viewed`, `n_negatives`, ...).
        `device` is where the model scores (by default CUDA, then MPS, then the CPU).

        Or score a held-out frame of your own, `test` (one row per held-out event, such as
        the test part of `bert4rec.split.by_time`): each of its users gets the top max(`ks`)
        items after their history, viewed items left out, measured by `bert4rec.metrics`
        (NDCG, HR, Recall, MRR, Coverage and Popularity at each k). The history is what the
        model keeps of each user (the data it was fitted on), or `history`, an events frame
        (or a `Dataset`) over the model's items. Columns are named as in the data the model
        was fitted on, unless `user=`, `item=` and `timestamp=` say otherwise."""
        if test is not None:
            if data is not None or options or protocol != "full":
                raise ValueError("evaluate(test=...) takes history=, ks=, user=, item= and "
                                 "timestamp=; the built-in split's options go with data")
            with governed(self.threads):
                return self._evaluate_frame(test, history, ks, user, item, timestamp)
        if data is None:
            raise ValueError("evaluate takes data (the built-in split) or test=frame")
        run_dir, recommender = self._fitted()
        if not np.array_equal(data.corpus.item_ids, np.asarray(recommender.item_ids)):
            raise DataError(
                f"the data has {data.n_items:,} items and the model {recommender.n_items:,}, "
                "or other ids: evaluate on the data the model was trained on (the same items)"
            )
        where = pick_device(device)
        scorer = model_scorer(rundir.load_model(run_dir, where)[0], where)
        with governed(self.threads):
            return evaluate(scorer, data.corpus, split,
                            Protocol(protocol, ks=tuple(ks), **options)).to_dict()

    def _evaluate_frame(self, test: Any, history: Any, ks: Sequence[int], user: str | None,
                        item: str | None, timestamp: str | None) -> dict[str, Any]:
        """`evaluate(test=...)`: the model's recommendations for `test`'s users, measured."""
        recommender = self._fitted()[1]
        columns = self._columns()
        user, item = user or columns["user"], item or columns["item"]
        ids = recommender.items[C.ITEM]
        histories = self._histories()
        if history is not None:
            histories, _ = histories_from(history, ids, user=user, item=item,
                                          timestamp=timestamp or columns["timestamp"])
        return evaluate_frame(recommender, histories, test, ks=ks, user=user, item=item)

    def __repr__(self) -> str:
        if self._recommender is None:
            return f"Model(preset={self.preset!r}, {self.overrides}, not fitted)"
        return f"Model({self.run_dir}, {self._recommender.n_items:,} items)"

    def _open(self, run_dir: Path, temporary: tempfile.TemporaryDirectory | None) -> None:
        """Point this model at a run directory (keeping `temporary` alive while it does)."""
        recommender = Recommender.load(run_dir)
        config = rundir.read_config(run_dir)
        train = config.get("train") or {}
        self.settings = Settings.from_dict(train) if train else None
        self._pandas = (config.get("data") or {}).get("frames") == "pandas"
        self.run_dir, self._temporary = run_dir, temporary
        self._recommender, self._users = recommender, None

    def _fitted(self) -> tuple[Path, Recommender]:
        if self._recommender is None or self.run_dir is None:
            raise NotFittedError("this model is not trained yet: call fit(data) or "
                                 "Model.load(path) first")
        return self.run_dir, self._recommender

    def _columns(self) -> dict[str, str | None]:
        """The user, item and timestamp columns of the data the model was fitted on."""
        recorded = (rundir.read_config(self._fitted()[0]).get("data") or {}).get("columns") or {}
        return {"user": recorded.get("user") or C.USER, "item": recorded.get("item") or C.ITEM,
                "timestamp": recorded.get("timestamp", C.TIMESTAMP)}

    def _out(self, frame: pl.DataFrame) -> Any:
        """A result frame as pandas when the model was fitted on pandas, else as it is."""
        return handed_out(frame, self._pandas)

    def _histories(self) -> UserHistories:
        if self._users is None:
            run_dir, recommender = self._fitted()
            self._users = rundir.read_users(run_dir, recommender.n_items)
        return self._users


def _check_out(path: Path, verb: str) -> None:
    """Refuse a folder that cannot take a new run, in Python's words (`rundir.check_out_dir`
    speaks the command line's: --out, --resume)."""
    if path.exists() and not path.is_dir():
        raise ModelDirError(f"{path}: exists and is not a folder; {verb} another one")
    rundir.check_run_folder(path, "folder")
    if (path / rundir.CONFIG).exists():
        raise ModelDirError(f"{path}: already holds a run; {verb} another folder, or "
                            f"bert4rec.Model.load({str(path)!r}) to use that run")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ModelDirError(f"{path}: cannot write there ({existing} is not a writable "
                            f"folder); {verb} another one")


def _similar(recommender: Recommender, query: list[ItemId], k: int, *,
             items: Iterable[ItemId] | None, exclude: Iterable[ItemId] | None,
             filter_viewed: bool, on_unknown: OnUnknown) -> pl.DataFrame:
    """`similar_items` as a polars frame."""
    queries = recommender.resolve(query, on_unknown)
    indices = [recommender.index_of(q.item) for q in queries]
    allowed = recommender.candidates(items, exclude, on_unknown)
    top = recommender.nearest(indices, k, allowed, indices if filter_viewed else ())
    return recommender.to_frame(QUERY_KEY, [q.item for q in queries], *top)


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
