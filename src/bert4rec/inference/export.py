"""A trained run as a file that serves without bert4rec: ONNX (for onnxruntime and friends) or
a `torch.export` program (`.pt2`), plus the item id table and a signature file.

The graph takes a batch of histories of vocabulary indices and returns every item's score and
the top `k`, as `Recommender.top_k` ranks them (docs/export.md):

    history  int64 [batch, max_len - 1]  left-padded with 0, most recent item last
    exclude  int64 [batch, n]            indices never to offer (0 pads); the seen items
    scores     float32 [batch, vocab_size]  the next-item logits; columns 0 and the last: -inf
    top_items  int64   [batch, k]           vocabulary indices, best first
    top_scores float32 [batch, k]           their scores; -inf where fewer than k are left

The graph appends [MASK] itself. An export is one unit: its files (and the marker that makes
the folder bert4rec's, `files.MARKER`) are written into a temporary folder beside `out`, the
model file is checked against PyTorch, and only then is the folder renamed into place, so the
model, its signature and its item table always come from one run. `out` must be new, empty,
or (with `overwrite`) an export of bert4rec's that holds nothing else.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from bert4rec import __version__
from bert4rec.data import columns as C
from bert4rec.data.vocab import PAD
from bert4rec.errors import Bert4RecError
from bert4rec.files import (
    MARKER,
    check_folder,
    check_writable,
    foreign,
    named,
    read_marker,
    remove_if_empty,
    remove_owned,
    temp_dir,
    write_marker,
)
from bert4rec.model import BERT4Rec
from bert4rec.rundir import (
    WEIGHTS,
    file_sha256,
    load_model,
    read_config,
    read_items,
    write_json,
)

logger = logging.getLogger(__name__)
FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
"""Each export format and the file it writes."""
ITEM_TABLE = "items.csv"
"""Vocabulary index -> original item id (and title, genres), for mapping `top_items` back."""
INPUTS = ("history", "exclude")
OUTPUTS = ("scores", "top_items", "top_scores")
Runner = Callable[[torch.Tensor, torch.Tensor], Sequence[np.ndarray]]
"""An exported file, loaded: (history, exclude) -> its outputs as arrays."""
CHECK_HISTORIES = 64
"""How many seeded random histories each written file is checked on against PyTorch."""
CHECK_TOLERANCE = 1e-3
"""Largest difference in any score, relative to the largest score, that the check accepts."""
EXPORT = "export"
"""The kind of folder an export is, as its marker names it."""
STAGING, REPLACED = ".export", ".replaced"
"""Suffixes of the temporary folders beside `out`: the export being written, and the export
it replaces on its way out."""


class ExportError(Bert4RecError):
    """An export could not be written: a missing extra, or a file that disagrees with PyTorch."""


class Scorer(nn.Module):
    """BERT4Rec as a serving graph: histories (without [MASK]) and indices to leave out in,
    all scores and the top `k` out (the signature in the module docstring)."""

    def __init__(self, model: BERT4Rec, k: int) -> None:
        super().__init__()
        self.model = model.eval()
        self.k = min(k, model.config.vocab.n_items)
        self.eval()

    def forward(self, history: torch.Tensor, exclude: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = torch.full((history.shape[0], 1), self.model.config.mask_token,
                          dtype=history.dtype)
        scores = self.model(torch.cat([history, mask], dim=1))  # [B, V]
        offered = scores.scatter(1, exclude, float("-inf"))  # index 0 is -inf already
        top_scores, top_items = offered.topk(self.k, dim=1)  # [B, k]
        return scores, top_items, top_scores


def export(run_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None,
           k: int = 10, overwrite: bool = False) -> Path:
    """Write `run_dir`'s model in format `fmt` ("onnx" or "pt2") into the folder `out`
    (default `run_dir/export`), with `items.csv` and a signature `<model file>.json`, as one
    unit (the module docstring). `out` must be new or empty; an earlier export there is
    replaced only with `overwrite`. Returns the model file's path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ExportError(f"k must be a positive whole number of items, got {k!r}")
    run_dir = Path(run_dir)
    out = run_dir / "export" if out is None else Path(out)
    read_config(run_dir)  # a missing run directory is named before `out` is
    check_out(out, overwrite)
    model, _ = load_model(run_dir)
    items = read_items(run_dir)
    scorer = Scorer(model, k)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    staging = temp_dir(out.absolute().parent, prefix=f".{out.name}.", suffix=STAGING)
    try:
        name = FORMATS[fmt]
        files = [name, name + ".json", ITEM_TABLE]
        write_marker(staging, EXPORT, files)  # first: a leftover staging folder is ours
        (_write_onnx if fmt == "onnx" else _write_pt2)(scorer, staging / name)
        item_table(items).write_csv(staging / ITEM_TABLE)
        write_json(staging / files[1], signature(scorer, fmt, run_dir / WEIGHTS))
        _put_in_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a folder this call made, all of it ours
        raise
    return out / name


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an `out` that an export may not become: not a folder, a
    folder of the user's (anything in it without bert4rec's marker), an earlier export
    without `overwrite`, or one that holds files bert4rec did not write (an export is
    replaced as a whole, and those would go with it)."""
    marker = check_folder(out, EXPORT, ExportError, "--out")
    if marker is not None:
        theirs = foreign(out, marker)
        if theirs:
            raise ExportError(f"{out}: holds files bert4rec did not write ({named(theirs)}) "
                              "beside an earlier export, which is replaced as a whole: move "
                              "them out or choose another --out")
        if not overwrite:
            raise ExportError(f"{out}: already holds an export; pass --overwrite "
                              "(overwrite=True) to replace it, or choose another --out")
    check_writable(out, ExportError, "--out")


def _put_in_place(staging: Path, out: Path) -> None:
    """Rename the finished `staging` folder to `out`: straight onto a new or empty folder;
    over an earlier export by moving that one aside first, then deleting its files by name."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(staging, out)
        return
    check_out(out, overwrite=True)  # still an export of ours and nothing else
    aside = temp_dir(out.absolute().parent, prefix=f".{out.name}.", suffix=REPLACED)
    os.replace(out, aside / "old")
    os.replace(staging, out)
    _remove_export(aside / "old")
    remove_if_empty(aside)


def remove_leftovers(out: Path) -> None:
    """Delete what an export into `out` killed midway left beside it: its staging folder or
    the export it was replacing, each recognised by its name and bert4rec's marker."""
    parent = out.absolute().parent
    pattern = re.compile(re.escape(f".{out.name}.") + r"[a-z0-9_]{8}"
                         + f"({re.escape(STAGING)}|{re.escape(REPLACED)})")
    for path in parent.iterdir() if parent.is_dir() else ():
        if not pattern.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        logger.info("removing %s, left by an interrupted export", path)
        for folder in (path / "old", path):
            _remove_export(folder)


def _remove_export(folder: Path) -> None:
    """Delete an export folder's own files (its marker's) and the folder once empty."""
    marker = read_marker(folder)
    if marker is not None and marker.kind == EXPORT:
        remove_owned(folder, [*marker.files, MARKER])
    remove_if_empty(folder)


def signature(scorer: Scorer, fmt: str, weights: Path) -> dict[str, Any]:
    """What a serving program needs to know of an exported file: its inputs and outputs, the
    vocabulary's layout and where the ids are, and what it was made from."""
    config = scorer.model.config
    window = config.max_len - 1
    return {
        "format": fmt,
        "inputs": {
            "history": {"dtype": "int64", "shape": ["batch", window],
                        "meaning": "vocabulary indices, left-padded with 0, most recent last"},
            "exclude": {"dtype": "int64", "shape": ["batch", "n"],
                        "meaning": "vocabulary indices never to offer (the seen items); 0 pads"},
        },
        "outputs": {
            "scores": {"dtype": "float32", "shape": ["batch", config.vocab_size],
                       "meaning": "next-item logits by vocabulary index; 0 and mask are -inf"},
            "top_items": {"dtype": "int64", "shape": ["batch", scorer.k],
                          "meaning": "vocabulary indices of the best items, best first"},
            "top_scores": {"dtype": "float32", "shape": ["batch", scorer.k],
                           "meaning": "their scores; -inf where fewer items are on offer"},
        },
        "padding_index": PAD,
        "mask_index": config.mask_token,
        "n_items": config.vocab.n_items,
        "window": window,
        "item_features": config.item_features,
        "k": scorer.k,
        "item_table": ITEM_TABLE,
        "made_from": {"run": weights.parent.absolute().name, "weights_sha256": file_sha256(weights),
                      "bert4rec": __version__, "torch": torch.__version__,
                      "python": platform.python_version()},
    }


def item_table(items: pl.DataFrame) -> pl.DataFrame:
    """items.parquet as CSV columns: index, item, then title and genres ("A|B") when known."""
    table = items.sort(C.INDEX)
    if C.GENRES in table.columns:
        table = table.with_columns(pl.col(C.GENRES).list.join("|"))
    return table.select(C.INDEX, C.ITEM, *[c for c in (C.TITLE, C.GENRES) if c in table.columns])


def example_inputs(scorer: Scorer, batch: int = 4, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random histories (some left-padded, one empty) and the same items to exclude:
    what the export traces with and what the written file is checked on."""
    config = scorer.model.config
    window, vocab = config.max_len - 1, config.vocab
    generator = torch.Generator().manual_seed(seed)
    history = torch.randint(vocab.items.start, vocab.items.stop, (batch, window),
                            generator=generator)
    lengths = torch.randint(0, window + 1, (batch,), generator=generator)
    lengths[0] = 0
    history[torch.arange(window)[None, :] < (window - lengths)[:, None]] = PAD
    return history, history.clone()


def _write_onnx(scorer: Scorer, path: Path) -> None:
    """The ONNX graph (dynamic batch and exclude width), one file, checked in onnxruntime."""
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the onnx extra ({err.name} is missing): "
            "pip install 'bert4rec[onnx]'"
        ) from err
    batch, width = torch.export.Dim("batch"), torch.export.Dim("n")
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            scorer, example_inputs(scorer), None, input_names=list(INPUTS),
            output_names=list(OUTPUTS), dynamo=True, verbose=False,
            dynamic_shapes={"history": {0: batch}, "exclude": {0: batch, 1: width}},
        )
    program.save(str(path), external_data=False)
    _check(scorer, _onnx_runner(path), path)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The ONNX exporter's progress lines (its optimiser's INFO log, missing-torchvision
    notices) are for its developers: hold them back while it runs."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*", category=UserWarning)
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _onnx_runner(path: Path) -> Runner | None:
    """`run(history, exclude) -> outputs` through onnxruntime; None when it is not installed
    (the file is then written unchecked)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda h, e: session.run(None, {"history": h.numpy(), "exclude": e.numpy()})


def _write_pt2(scorer: Scorer, path: Path) -> None:
    """The `torch.export` program (dynamic batch and exclude width), checked after reloading.
    Its weights are raw tensors beside a JSON graph, no pickle."""
    batch, width = torch.export.Dim("batch"), torch.export.Dim("n")
    with torch.no_grad():
        program = torch.export.export(
            scorer, example_inputs(scorer),
            dynamic_shapes={"history": {0: batch}, "exclude": {0: batch, 1: width}},
        )
    with open(path, "wb") as handle:
        torch.export.save(program, handle)
    with open(path, "rb") as handle:
        module = torch.export.load(handle).module()

    def run(history: torch.Tensor, exclude: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(history, exclude)]

    _check(scorer, run, path)


def _check(scorer: Scorer, run: Runner | None, path: Path) -> None:
    """Refuse a written file whose scores or top scores differ from PyTorch's on seeded random
    histories (a batch size other than the traced one, to exercise the dynamic axis). Top
    items are not compared: near-ties may swap places without anything being wrong."""
    if run is None:
        return
    history, exclude = example_inputs(scorer, batch=CHECK_HISTORIES, seed=1)
    with torch.no_grad():
        expected = [t.numpy() for t in scorer(history, exclude)]
    got = run(history, exclude)
    pairs = [(np.asarray(got[i]), expected[i]) for i in (0, 2)]  # scores, top scores
    scale = float(np.abs(expected[0][np.isfinite(expected[0])]).max(initial=1.0))
    same_layout = all(g.shape == e.shape and np.array_equal(np.isfinite(g), np.isfinite(e))
                      for g, e in pairs)
    errors = [float(np.abs(g[np.isfinite(e)] - e[np.isfinite(e)]).max(initial=0.0)) / scale
              if same_layout else np.inf for g, e in pairs]
    if max(errors) > CHECK_TOLERANCE or not same_layout:
        raise ExportError(
            f"{path}: the exported model disagrees with PyTorch (largest relative score "
            f"difference {max(errors):.2g}, same shapes and -inf entries: {same_layout}); "
            "please report it"
        )
