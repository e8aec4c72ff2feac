"""The run directory: the one hand-off from training to serving, written and read safely.

Layout (docs/architecture.md): `config.json` ({"format_version", "model", "data", "train"}),
`model.safetensors` (best weights, no pickle), `items.parquet`, `features.parquet` (with item
features: the vocabulary of feature values and the items of each), `metrics.json`,
`provenance.json` (versions, command line, git commit, data fingerprint), `tensorboard/`,
`checkpoints/last.pt` (resume state, read with `torch.load(weights_only=True)`) and
`.bert4rec.json`, the marker that makes the folder bert4rec's (`files.MARKER`; `RUN_FILES`).
Every file is written to a temporary name and renamed, so a crash leaves no half-written file.
A run writes only into a new or empty folder or a run directory of its own, and there only
its own files: anything else in the folder is the user's. A directory never contradicts
itself: a run checks everything before it writes (`check_start`: the corpus, --out, on resume
the same data), a failed start removes the files it wrote, by name
(`removed_on_failed_start`), and config.json must fit the weights' header (`model_config`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import polars as pl
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from bert4rec.config import Interval
from bert4rec.data import columns as C
from bert4rec.data.corpus import PrepareSettings, SequenceCorpus
from bert4rec.data.features import ItemFeatures
from bert4rec.data.leftout import why_missing
from bert4rec.data.users import UserHistories
from bert4rec.errors import DataError, ModelDirError
from bert4rec.files import (
    MARKER,
    check_folder,
    held,
    read_marker,
    remove_if_empty,
    stale_temps,
    temp_file,
    umask,
    write_marker,
)
from bert4rec.model import BERT4Rec, BERT4RecConfig
from bert4rec.training.provenance import session

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ITEMS = "items.parquet"
USERS = "users.parquet"
"""Each user's history (`data/users.py`): what recommending for a known user by id reads."""
LEFT_OUT = "left_out.parquet"
"""The users and items of the log that preparing left out, with their event counts
(`data/leftout.py`): what an error reads to say why an id is unknown. Runs written before
2026-12-04 lack it and say less."""
FEATURES = "features.parquet"
"""With item features: each feature value's index, column and name, and the items that have it."""
METRICS = "metrics.json"
PROVENANCE = "provenance.json"
"""How the run was made, one record per training session (`provenance.py`)."""
CHECKPOINT = Path("checkpoints") / "last.pt"
SELECTED = Path("checkpoints") / "selected.safetensors"
"""For a final fit: the weights chosen on validation, before the final model writes WEIGHTS."""
WRITTEN = (Path(CONFIG), Path(WEIGHTS), Path(ITEMS), Path(USERS), Path(LEFT_OUT),
           Path(FEATURES), Path(METRICS), Path(PROVENANCE), CHECKPOINT, SELECTED)
"""Every file a run writes through `atomic_write` (whose temporary names are `.NAME.*`)."""
TENSORBOARD = "tensorboard"
RUN = "run"
"""The kind of folder a run directory is, as its marker names it."""
RUN_FILES = (*(str(p) for p in WRITTEN), TENSORBOARD)
"""What a run owns in its directory (`files.MARKER` lists them): every other entry there is
the user's."""
CHECKPOINT_KEYS = ("model", "optimizer", "progress", "rng", "settings")
MODEL_METADATA = "bert4rec_model"
"""safetensors metadata key: the model config the weights were trained with (heads included,
which no weight shape reveals)."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temp_path)` for a temporary file beside `path`, then rename it into place.
    The file gets the mode a plain `open` would give (0666 less the umask), not 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_file(path.parent, prefix=f".{path.name}.")
    try:
        with held(temp):  # a later run's `stale_temps` leaves it alone while it is written
            write(temp)
            temp.chmod(0o666 & ~umask())  # some writers (safetensors) replace it: 0600
            os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Pretty JSON, atomically."""
    atomic_write(path, lambda temp: temp.write_text(json.dumps(values, indent=2) + "\n"))


def record_provenance(run_dir: Path, data_fingerprint: str) -> None:
    """Add this training session (versions, command line, git commit, data fingerprint) to
    the run's provenance.json, after the sessions that started or resumed it before."""
    path = run_dir / PROVENANCE
    try:
        earlier = json.loads(path.read_text()).get("sessions", []) if path.is_file() else []
    except (json.JSONDecodeError, AttributeError, OSError):
        logger.warning("%s: unreadable; starting it afresh", path)
        earlier = []
    write_json(path, {"sessions": [*earlier, session(data_fingerprint)]})


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_config(
    run_dir: Path, model: BERT4RecConfig, data: dict[str, Any], train: dict[str, Any], *,
    fit: dict[str, Any] | None = None,
) -> None:
    """The run's config.json: model shape, how to rebuild the corpus, the training settings
    and, where given, how `fit` trained (`final`, `holdout`, `init_from`)."""
    values = {"format_version": FORMAT_VERSION, "model": model.to_dict(), "data": data,
              "train": train, **({"fit": fit} if fit is not None else {})}
    write_json(run_dir / CONFIG, values)


def save_weights(model: BERT4Rec, path: Path) -> None:
    """The module's weights as safetensors (contiguous CPU copies), atomically; the header's
    metadata records the model config. Equal weights give equal bytes (`canonical_header`)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", MODEL_METADATA: json.dumps(model.config.to_dict())}
    data = canonical_header(safetensors_bytes(tensors, metadata=metadata))
    atomic_write(path, lambda temp: temp.write_bytes(data))


def canonical_header(data: bytes) -> bytes:
    """safetensors bytes whose header metadata is in sorted key order: the library writes it
    from a hash map, in an order that changes from one process to the next. Same length, same
    tensor offsets; only the order of the metadata's keys changes."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # not expected: the library writes compact JSON too
        return data
    return data[:8] + text.ljust(size) + data[8 + size:]


def check_is_run_dir(run_dir: str | Path) -> None:
    """Refuse, naming it, a `run_dir` that is no folder at all: a missing run directory is
    said to be missing, not to lack one of its files."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ModelDirError(f"{run_dir}: no such folder; expected a run directory written by "
                            "`bert4rec train`, fit(out=...) or Model.save")
    if not run_dir.is_dir():
        raise ModelDirError(f"{run_dir}: is a file, not a run directory (a folder written by "
                            "`bert4rec train`, fit(out=...) or Model.save)")


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run directory, with its format version checked."""
    check_is_run_dir(run_dir)
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; is {run_dir} a run directory of `bert4rec train`?")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{path}: not valid JSON ({err}); retrain or restore the file") from err
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(
            f"{path}: format_version {version!r}, this bert4rec reads {FORMAT_VERSION}; "
            "retrain with this version or use the bert4rec that wrote it"
        )
    if not isinstance(config.get("model"), dict):
        raise ModelDirError(f"{path}: no 'model' section")
    return config


def load_model(
    run_dir: str | Path, device: torch.device | str = "cpu"
) -> tuple[BERT4Rec, dict[str, Any]]:
    """The trained model of a run directory (eval mode) and its full config dict.

    The config's model section is checked against the weights' header (shapes, and the config
    recorded at training) before the model is built, so a tampered or mismatched config.json
    fails with a one-line `ModelDirError` instead of allocating or mis-scoring. Only
    safetensors weights are read.
    """
    config = read_config(run_dir)
    path = Path(run_dir) / WEIGHTS
    model = BERT4Rec(model_config(config, Path(run_dir) / CONFIG, path))
    model.load_state_dict(_read_weights(path, model.state_dict()))
    read_features(run_dir, model)
    return model.to(device).eval(), config


def write_features(run_dir: Path, features: ItemFeatures) -> None:
    """features.parquet (`ItemFeatures.to_frame`), atomically."""
    atomic_write(run_dir / FEATURES, features.to_frame().write_parquet)


def read_features(run_dir: str | Path, model: BERT4Rec) -> ItemFeatures | None:
    """features.parquet of a run whose `model` has item features (None for one without),
    checked against the model: the same number of values and each item's the same."""
    config, path = model.config, Path(run_dir) / FEATURES
    if not config.has_features:
        return None
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; the model was trained with item features "
                            f"({config.item_features}) and needs their vocabulary")
    try:
        frame = pl.read_parquet(path)
        features = ItemFeatures.from_frame(frame, tuple(config.item_features.split(",")),
                                           config.vocab_size, config.feature_slots, str(path))
    except (pl.exceptions.PolarsError, OSError, DataError) as err:
        raise ModelDirError(f"{path}: unreadable ({str(err).splitlines()[0]})") from err
    stored = model.encoder.embeddings.features.item_values.cpu().numpy()
    if features.size != config.feature_vocab_size or not (features.item_values == stored).all():
        raise ModelDirError(f"{path}: does not match {WEIGHTS} (other feature values or other "
                            "items per value); the two files come from different runs")
    return features


def model_config(config: dict[str, Any], config_path: Path, weights: Path) -> BERT4RecConfig:
    """config.json's model section, checked value by value and against the weights' header:
    the shapes fix the sizes, and the config recorded at training fixes the other whole-number
    settings (heads); dropouts, which inference does not use, may differ."""
    values = config["model"]
    for f in fields(BERT4RecConfig):
        value = values.get(f.name)
        if f.name not in values:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        allowed = f.metadata.get("allowed") or Interval(1)
        if f.type == "int" and not (number and isinstance(value, int) and value in allowed):
            raise ModelDirError(
                f"{config_path}: model.{f.name} must be a whole number {allowed}, got {value!r}"
            )
        if f.type == "float" and not (number and 0 <= value <= 1):
            raise ModelDirError(f"{config_path}: model.{f.name} must be in [0, 1], got {value!r}")
    try:
        model = BERT4RecConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise ModelDirError(f"{config_path}: bad model section: {err}") from err
    shapes, recorded = read_header(weights)
    found = {**{k: v for k, v in recorded.items() if isinstance(v, int)},
             **_shape_facts(shapes, weights)}
    wrong = [f"model.{name} {getattr(model, name)!r} (the weights have {found[name]!r})"
             for name in model.to_dict() if name in found and found[name] != getattr(model, name)]
    if wrong:
        raise ModelDirError(
            f"{config_path}: does not match {weights.name}: {', '.join(wrong)}; the two files "
            "come from different runs, or one was edited"
        )
    return model


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """Tensor shapes by name, and the model config recorded at training (empty for weights
    written before it was recorded), from a safetensors header alone: no tensor is loaded."""
    if not path.is_file():
        raise ModelDirError(f"{path}: missing; the run may not have finished an epoch")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
            metadata = handle.metadata() or {}
        recorded = json.loads(metadata.get(MODEL_METADATA, "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelDirError(
            f"{path}: not a safetensors file ({err}); pickled weights are refused because "
            "loading them can run arbitrary code"
        ) from err
    return shapes, recorded if isinstance(recorded, dict) else {}


def _shape_facts(shapes: dict[str, tuple[int, ...]], path: Path) -> dict[str, int]:
    """The model settings that the weight shapes fix: vocabulary, width, length, depth,
    feed-forward multiple and the item features' table (0 and 0 without them); the number of
    heads leaves no trace in any shape."""
    item, position = "encoder.embeddings.item.weight", "encoder.embeddings.position.weight"
    if len(shapes.get(item, ())) != 2 or len(shapes.get(position, ())) != 2:
        raise ModelDirError(f"{path}: no 2-d {item} and {position}; not BERT4Rec weights")
    (vocab_size, hidden), (max_len, _) = shapes[item], shapes[position]
    blocks = {int(m[1]) for k in shapes if (m := re.match(r"encoder\.blocks\.(\d+)\.", k))}
    facts = {"vocab_size": vocab_size, "hidden": hidden, "max_len": max_len,
             "layers": len(blocks)}
    inner = shapes.get("encoder.blocks.0.ff.0.weight")
    if inner and hidden:
        facts["ff_mult"] = inner[0] // hidden
    facts["transition_pairs"] = shapes.get("transitions.values", (0,))[0]
    values = shapes.get("encoder.embeddings.features.item_values", (0, 0))
    facts["feature_vocab_size"] = shapes.get("encoder.embeddings.features.value_bias", (0,))[0]
    facts["feature_slots"] = values[1] if len(values) == 2 else 0
    return facts


def read_items(run_dir: str | Path) -> pl.DataFrame:
    """items.parquet of a run directory, with its columns checked."""
    check_is_run_dir(run_dir)
    path = Path(run_dir) / ITEMS
    if not path.is_file():
        raise ModelDirError(f"{path} is missing; a run directory written by fit has it")
    try:
        items = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelDirError(f"{path}: not a readable Parquet file ({first})") from err
    wanted = {C.INDEX: "integers", C.ITEM: "integers or text", C.TITLE: "text",
              C.GENRES: "lists of text"}
    for name, kind in wanted.items():
        if name not in items.columns:
            if name in (C.TITLE, C.GENRES):
                continue
            raise ModelDirError(f"{path}: no {name!r} column; the file has {items.columns}")
        dtype = items[name].dtype
        fits = {C.INDEX: dtype.is_integer(), C.ITEM: dtype.is_integer() or dtype == pl.String,
                C.TITLE: dtype == pl.String, C.GENRES: dtype == pl.List(pl.String)}[name]
        if not fits:
            raise ModelDirError(f"{path}: column {name!r} holds {dtype}; expected {kind}")
    return items


def write_users(run_dir: Path, corpus: SequenceCorpus) -> None:
    """users.parquet (every user of `corpus`, their whole history and the further items they
    saw) and left_out.parquet (the users and items the filters left out), atomically."""
    atomic_write(run_dir / USERS, UserHistories.from_corpus(corpus).write)
    if corpus.left_out is not None:
        left = pl.concat([corpus.left_out.users, corpus.left_out.items], how="diagonal")
        atomic_write(run_dir / LEFT_OUT, left.select(C.USER, C.ITEM, pl.exclude(C.USER, C.ITEM))
                     .write_parquet)


def read_users(run_dir: str | Path, n_items: int) -> UserHistories:
    """users.parquet of a run directory, checked against a model of `n_items` items; an
    unknown user's error says why, where left_out.parquet knows."""
    path = Path(run_dir) / USERS
    if not path.is_file():
        raise ModelDirError(
            f"{path} is missing: the run was written before bert4rec kept user histories; "
            "recommend from histories instead, or train it again"
        )
    try:
        users = UserHistories.read(path, n_items)
    except DataError as err:
        raise ModelDirError(str(err)) from err
    return replace(users, why_missing=why_missing_in(run_dir, "user"))


def why_missing_in(run_dir: str | Path, kind: str) -> Callable[[Any], str]:
    """A function saying why a user or item (`kind`) is not in the run's model, from
    left_out.parquet and the prepare settings in config.json ("" for runs without them).
    The files are read when it is called: only an error pays for them."""
    path = Path(run_dir) / LEFT_OUT

    def why(value: Any) -> str:
        try:
            left = pl.read_parquet(path) if path.is_file() else None
            data = read_config(run_dir).get("data") or {}
            settings = PrepareSettings(**{f.name: data[f.name] for f in fields(PrepareSettings)})
        except (pl.exceptions.PolarsError, OSError, KeyError, TypeError, ValueError,
                ModelDirError):
            return ""
        return why_missing(kind, value, left, settings)

    return why


def _read_weights(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, checked name by name and shape by shape."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ModelDirError(
            f"{path}: not a safetensors file ({err}); pickled weights are refused because "
            "loading them can run arbitrary code"
        ) from err
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or extra or wrong:
        raise ModelDirError(
            f"{path}: weights do not match config.json (missing {missing}, unexpected {extra}, "
            f"shape mismatches {wrong}); the two files come from different runs"
        )
    return tensors


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Resume state (tensors, numbers, strings, nested dicts/lists only), atomically."""
    atomic_write(path, lambda temp: torch.save(state, temp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Resume state written by `save_checkpoint`; refuses files that need unpickling code and
    files that lack any part of the state."""
    if not path.is_file():
        raise ModelDirError(f"{path}: no checkpoint to resume from; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ModelDirError(
            f"{path}: not a loadable checkpoint ({str(err).splitlines()[0]}); objects that need "
            "unpickling code are refused; start a fresh run without --resume"
        ) from err
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ModelDirError(
            f"{path}: not a complete checkpoint (no {', '.join(missing)}); it was not written "
            "by this bert4rec: start a fresh run without --resume"
        )
    return state


def remove_orphans(run_dir: Path) -> None:
    """Delete temporary files that a crash in the middle of `atomic_write` left behind (those
    no live process is writing: `files.stale_temps`)."""
    for written in WRITTEN:
        for orphan in stale_temps(run_dir / written.parent, written.name):
            logger.info("removing %s, left by an interrupted write", orphan)
            orphan.unlink(missing_ok=True)


def check_start(run_dir: Path, corpus: SequenceCorpus, data: dict[str, Any],
                resume: bool) -> dict[str, Any]:
    """What a run checks before it writes anything to `run_dir`: the corpus can be trained
    on, `run_dir` can be written (`check_out_dir`) and, on `resume`, holds a run on the same
    data (`check_resume`). Then clears temporary files a crash left there. Returns `data`
    with the corpus record that config.json keeps."""
    corpus.check_trainable()
    check_out_dir(run_dir, resume)
    data = {**data, "corpus": corpus_record(corpus)}
    if resume:
        check_resume(run_dir, data)
    remove_orphans(run_dir)
    return data


def check_out_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before any work, an --out that cannot become this run's directory: a file, a
    folder that cannot be written, a folder that holds files bert4rec did not write there
    (unless it is a run directory of bert4rec's), or (without `resume`) a run directory."""
    check_run_folder(run_dir, "--out")
    if (run_dir / CONFIG).exists() and not resume:
        raise ModelDirError(f"{run_dir}: already holds a run; pass --resume or choose a new --out")
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ModelDirError(
            f"{run_dir}: cannot write there ({existing} is not a writable folder); choose "
            "another --out"
        )


def check_run_folder(run_dir: Path, flag: str) -> None:
    """Refuse a folder bert4rec may not write a run into (`files.check_folder`: a file, or a
    folder holding what bert4rec did not write, or marked as another kind), naming `flag`,
    the option or argument that chose it. A run written before runs were marked is a run's."""
    if not _legacy_run(run_dir):
        check_folder(run_dir, RUN, ModelDirError, flag)


def _legacy_run(run_dir: Path) -> bool:
    """Whether `run_dir` is a run directory written before runs were marked: no marker, and
    a config.json that this bert4rec reads as a run's. Such a run owns `RUN_FILES` too."""
    if not run_dir.is_dir() or read_marker(run_dir) is not None:
        return False
    try:
        read_config(run_dir)
    except ModelDirError:
        return False
    return True


def claim_run_dir(run_dir: Path) -> None:
    """Create `run_dir` (a new or empty folder, or a run's) and mark it as a run directory,
    checked once more now that the run starts writing (`check_out_dir` ran before the data
    was prepared)."""
    check_run_folder(run_dir, "--out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if read_marker(run_dir) is None:
        write_marker(run_dir, RUN, RUN_FILES)


def corpus_record(corpus: SequenceCorpus) -> dict[str, Any]:
    """What config.json records of the prepared corpus (`data.corpus`): its size and a
    fingerprint of its contents, so a resumed run can tell that it trains on the same data."""
    return {"fingerprint": corpus.fingerprint(), "users": corpus.n_users,
            "items": corpus.n_items, "interactions": corpus.n_interactions}


def check_resume(run_dir: Path, data: dict[str, Any]) -> None:
    """Refuse to resume `run_dir` on other data: the data settings recorded in its config.json
    must equal `data`'s, and the prepared corpus must have the recorded fingerprint. Either
    mismatch is named. A run without config.json has nothing to contradict."""
    if not (run_dir / CONFIG).is_file():
        return
    recorded = read_config(run_dir).get("data") or {}
    keys = sorted((set(recorded) & set(data)) - {"source", "corpus"})
    changed = [f"{key} {recorded.get(key)!r} -> {data.get(key)!r}" for key in keys
               if recorded.get(key) != data.get(key)]
    before, now = recorded.get("corpus") or {}, data.get("corpus") or {}
    if before.get("fingerprint") and before.get("fingerprint") != now.get("fingerprint"):
        sizes = ("users", "items", "interactions")
        changed.append("the prepared corpus ("
                       + ", ".join(f"{before.get(k)} -> {now.get(k)} {k}" for k in sizes) + ")")
    if changed:
        raise ModelDirError(
            f"{run_dir}: cannot resume on other data than the run was trained on: "
            f"{'; '.join(changed)}. Resume with the run's data settings and source "
            f"({recorded.get('source')!r}), or train into a new --out"
        )


@contextmanager
def removed_on_failed_start(run_dir: Path, active: bool = True) -> Iterator[None]:
    """Remove what the block wrote to `run_dir` if it fails before the run's first checkpoint
    exists, so that a failed start leaves nothing to contradict a rerun; from the first
    checkpoint on, the run is resumable and is kept. Only the run's own files that the block
    created are removed, by name (`RUN_FILES`, the marker, TensorBoard's event files), then
    the folders it created once they are empty: a file the user saved there meanwhile stays.
    """
    run_dir = run_dir.absolute()
    created = [p for p in (*reversed(run_dir.parents), run_dir) if not p.exists()]
    names = (*(str(p) for p in WRITTEN), MARKER)
    before = {name for name in names if (run_dir / name).exists()}
    board = run_dir / TENSORBOARD
    events_before = set(board.glob(EVENTS)) if board.is_dir() else set()
    folders = [p for p in (board, run_dir / CHECKPOINT.parent) if not p.exists()]
    try:
        yield
    except BaseException:
        if active and not (run_dir / CHECKPOINT).exists():
            written = [name for name in names if name not in before
                       and (run_dir / name).is_file()]
            events = set(board.glob(EVENTS)) - events_before if board.is_dir() else set()
            for path in [*(run_dir / name for name in written), *sorted(events)]:
                logger.info("removing %s, written by a run that failed to start", path)
                path.unlink(missing_ok=True)
            for folder in [*folders, *reversed(created)]:
                remove_if_empty(folder)
        raise


EVENTS = "events.out.tfevents.*"
"""The names of the files TensorBoard's SummaryWriter writes."""
