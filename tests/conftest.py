"""Shared fixtures: the real-data directory (skipped with a reason when absent) and a tiny log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own corpus cache, never the user's."""
    monkeypatch.setenv("BERT4REC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared MovieLens copies, found through BERT4REC_DATA_DIR."""
    value = os.environ.get("BERT4REC_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("real data absent: set BERT4REC_DATA_DIR to the folder holding ml-1m/ etc.")
    return Path(value)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path
