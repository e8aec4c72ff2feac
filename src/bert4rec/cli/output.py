"""Recommendation tables written to a file: Parquet, CSV or TSV by the file's suffix, written
to a temporary file beside it and renamed into place, so a failed or interrupted run never
leaves a half-written table behind."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bert4rec.data import columns as C
from bert4rec.errors import DataError
from bert4rec.rundir import atomic_write

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}


def check_output(path: str | Path) -> Path:
    """`path` if its suffix names a format this module writes; raises `DataError` otherwise
    (checked before any work, not after it)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: unknown output format {path.suffix or '(no suffix)'!r}; "
                        f"expected a file ending in {', '.join(FORMATS)}")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a file name")
    return path


def write_table(frame: pl.DataFrame, path: str | Path) -> None:
    """Write `frame` to `path` atomically. In CSV and TSV, genres are one "A|B" text cell."""
    path = check_output(path)
    kind = FORMATS[path.suffix.lower()]
    if kind == "parquet":
        atomic_write(path, frame.write_parquet)
        return
    if C.GENRES in frame.columns and isinstance(frame.schema[C.GENRES], pl.List):
        frame = frame.with_columns(pl.col(C.GENRES).list.join("|"))
    atomic_write(path, lambda temp: frame.write_csv(temp, separator=kind))
