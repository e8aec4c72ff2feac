"""Resolve a SOURCE (a release name, a release folder or zip, or a log file) to `Interactions`."""

from __future__ import annotations

from pathlib import Path

from bert4rec.data import movielens
from bert4rec.data.interactions import Interactions, LogColumns, read_log


def resolve(source: str | Path, data_dir: str | Path | None = None) -> Path:
    """The path a SOURCE names: an existing file or directory, else a release in the data roots."""
    path = Path(source)
    if path.exists():
        return path
    if str(source) in movielens.RELEASES:
        return movielens.locate(str(source), data_dir)
    raise FileNotFoundError(
        f"{source}: no such file or directory, and not a MovieLens release name "
        f"({', '.join(movielens.RELEASES)})"
    )


def load_source(
    source: str | Path, data_dir: str | Path | None = None, columns: LogColumns = LogColumns()
) -> Interactions:
    """Read whatever SOURCE names: a MovieLens release (by name, folder or zip) or a log file."""
    path = resolve(source, data_dir)
    if path.is_dir() or path.suffix.lower() == ".zip":
        return movielens.load_release(path)
    return read_log(path, columns)
