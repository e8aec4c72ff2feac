"""The prepared-corpus cache: one folder per (source files, settings), so a second load is instant.

The key hashes each source file's resolved path, size, modification time, inode and status
change time together with the prepare settings; a changed file or setting therefore makes a new
entry. The status change time (ctime) moves on every write and cannot be set back, so an edit
in place that keeps the size and restores the modification time is noticed too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import asdict
from pathlib import Path

import polars as pl

from bert4rec.data.corpus import FORMAT_VERSION, PrepareSettings, SequenceCorpus, prepare
from bert4rec.data.interactions import LogColumns
from bert4rec.data.sources import load_source, resolve

CACHE_DIR_ENV = "BERT4REC_CACHE_DIR"
# What a damaged cache entry raises on reading: the entry is then rebuilt.
UNREADABLE = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile,
              pl.exceptions.PolarsError)
logger = logging.getLogger(__name__)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """--cache-dir, else $BERT4REC_CACHE_DIR, else the user cache directory."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bert4rec")) / "corpora"


def cache_key(path: Path, settings: PrepareSettings, columns: LogColumns) -> str:
    """A short hash of the source files' identity and the settings."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [(str(p.resolve()), s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns)
             for p, s in ((p, p.stat()) for p in files)]
    payload = json.dumps([FORMAT_VERSION, stats, asdict(settings), asdict(columns)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def load_corpus(
    source: str | Path,
    settings: PrepareSettings = PrepareSettings(),
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    columns: LogColumns = LogColumns(),
    use_cache: bool = True,
) -> SequenceCorpus:
    """Prepare SOURCE with `settings`, reusing the cached corpus when source and settings match.

    The cache is optional: an entry that cannot be read is prepared afresh, and a cache that
    cannot be written is skipped, each with a warning.
    """
    path = resolve(source, data_dir)
    entry = cache_root(cache_dir) / f"{path.name}-{cache_key(path, settings, columns)}"
    if use_cache and (entry / "meta.json").is_file():
        try:
            corpus = SequenceCorpus.load(entry)
            logger.debug("corpus cache hit: %s", entry)
            return corpus
        except UNREADABLE as err:
            logger.warning("corpus cache entry %s is unreadable (%s); preparing afresh", entry,
                           str(err).splitlines()[0] if str(err) else type(err).__name__)
    corpus = prepare(load_source(path, data_dir, columns), settings)
    if use_cache:
        try:
            corpus.save(entry)
            logger.debug("corpus cached at %s", entry)
        except OSError as err:
            logger.warning("cannot write the corpus cache %s (%s); carrying on without it "
                           "(--cache-dir or $%s moves it)", entry, err.strerror or err,
                           CACHE_DIR_ENV)
    return corpus
