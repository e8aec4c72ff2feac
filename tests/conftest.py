"""Shared fixtures: an isolated corpus cache, and the real-data directory, which is the one way
real-data tests reach MovieLens (they carry the `realdata` marker and are skipped, with the
reason, when the copies are absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

RELEASES_READ = ("ml-100k", "ml-1m", "ml-latest-small")
"""The folders under $BERT4REC_DATA_DIR that the real-data tests read."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-data tests take the `data_dir` fixture and carry the `realdata` marker: both or
    neither, so `-m "not realdata"` deselects exactly the tests that read real data."""
    for item in items:
        reads = "data_dir" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("realdata") is not None
        if reads != marked:
            raise pytest.UsageError(
                f"{item.nodeid}: a test that reads real data takes the data_dir fixture and "
                "carries @pytest.mark.realdata (both or neither)"
            )


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own corpus cache, never the user's."""
    monkeypatch.setenv("BERT4REC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True, scope="session")
def _fixed_threads():
    """One torch thread for the whole session unless the environment sets BERT4REC_THREADS:
    fitted counts follow the load, and runs repeat bit for bit only at a fixed count
    (training/threads.py). One, because the suite's tensors are tiny: at two threads each
    operation waits for a second core, which a shared 2-core machine has often lent to other
    work (the fast lane at load average 5.6: 43 s at one thread, 74-138 s at two). Tests of
    the fitting remove it."""
    import torch

    if "BERT4REC_THREADS" in os.environ:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ["BERT4REC_THREADS"] = "1"
    yield
    del os.environ["BERT4REC_THREADS"]
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared MovieLens copies, found through BERT4REC_DATA_DIR."""
    value = os.environ.get("BERT4REC_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("real data absent: set BERT4REC_DATA_DIR to the folder holding ml-1m/ etc.")
    missing = [name for name in RELEASES_READ if not (Path(value) / name).is_dir()]
    if missing:
        pytest.skip(f"real data incomplete: {value} lacks {', '.join(missing)}")
    return Path(value)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's training runs: the CI machine has 2 shared cores, where one
    thread per process is faster and steadier, and module-wide so shared runs compute alike."""
    import torch

    before, asked = torch.get_num_threads(), os.environ.get("BERT4REC_THREADS")
    torch.set_num_threads(1)
    os.environ["BERT4REC_THREADS"] = "1"  # Model and the CLI keep it (training/threads.py)
    yield
    torch.set_num_threads(before)
    if asked is None:
        del os.environ["BERT4REC_THREADS"]
    else:
        os.environ["BERT4REC_THREADS"] = asked
