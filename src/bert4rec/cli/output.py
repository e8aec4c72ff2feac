"""Recommendation tables written to a file: Parquet, CSV or TSV by the file's suffix, written
to a temporary file beside it and renamed into place, so a failed or interrupted run never
leaves a half-written table behind.

Everything that can be checked is checked before any scoring (`check_output`): the format,
that the folder can be written, and that an existing file may be replaced. bert4rec replaces
a file only with `--overwrite`, and only one it wrote itself: a Parquet file carrying its
key-value metadata (`OWNER`), or a CSV/TSV file whose header is one bert4rec writes. Temporary
files that a killed run left beside the file are removed first (`files.stale_temps`). In CSV
and TSV, text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
`@`, a tab or a carriage return) get a leading `'`, as OWASP recommends; Parquet keeps every
value exactly.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import polars as pl

from bert4rec.data import columns as C
from bert4rec.errors import DataError
from bert4rec.files import check_writable, stale_temps
from bert4rec.rundir import atomic_write

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}
OWNER = {"bert4rec": "recommendations"}
"""The Parquet key-value metadata that marks a table as one bert4rec wrote."""
KEYS = (C.USER, "history")
"""The first column of a table bert4rec writes: whose recommendations each row holds."""
FORMULA = ("=", "+", "-", "@", "\t", "\r")
"""How a text cell that a spreadsheet would evaluate begins (OWASP, "CSV Injection")."""
HEADER_BYTES = 4096
logger = logging.getLogger(__name__)


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """`path` if a table may be written there; raises `DataError` otherwise, before any work:
    an unknown suffix, a folder, a folder that cannot be written, or an existing file without
    `overwrite` (or with it, one that bert4rec did not write). Clears temporary files a
    killed run left beside `path`."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: unknown output format {path.suffix or '(no suffix)'!r}; "
                        f"expected a file ending in {', '.join(FORMATS)}")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a file name")
    check_writable(path, DataError, "--output")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise DataError(f"{path}: exists; pass --overwrite to replace it (bert4rec "
                            "replaces only a table it wrote), or choose another --output")
        if not written_by_bert4rec(path):
            raise DataError(f"{path}: exists and is not a table bert4rec wrote; bert4rec "
                            "replaces only its own files: choose another --output")
    for temp in stale_temps(path.parent, path.name):
        logger.info("removing %s, left by an interrupted write", temp)
        temp.unlink(missing_ok=True)
    return path


def written_by_bert4rec(path: Path) -> bool:
    """Whether the file `path` is a recommendation table bert4rec wrote: Parquet with its
    metadata, CSV or TSV with its header."""
    if path.is_symlink() or not path.is_file():
        return False
    kind = FORMATS[path.suffix.lower()]
    try:
        if kind == "parquet":
            metadata = pl.read_parquet_metadata(path)
            return all(metadata.get(k) == v for k, v in OWNER.items())
        with open(path, "rb") as handle:
            first = handle.read(HEADER_BYTES).split(b"\n", 1)[0].rstrip(b"\r")
    except (OSError, pl.exceptions.PolarsError):
        return False
    cells = first.decode("utf-8", errors="replace").split(kind)
    return (len(cells) >= 4 and cells[0] in KEYS and cells[1:4] == [C.RANK, C.ITEM, C.SCORE]
            and set(cells[4:]) <= {C.TITLE, C.GENRES})


def write_table(frame: pl.DataFrame, path: str | Path, overwrite: bool = False) -> None:
    """Write `frame` to `path` atomically (`check_output` first). In CSV and TSV, genres are
    one "A|B" text cell and formula-like text is neutralised. Disk-full and read-only
    failures raise `DataError` naming `path`."""
    path = check_output(path, overwrite)
    kind = FORMATS[path.suffix.lower()]
    if kind == "parquet":
        _write(path, lambda temp: frame.write_parquet(temp, metadata=OWNER))
        return
    if C.GENRES in frame.columns and isinstance(frame.schema[C.GENRES], pl.List):
        frame = frame.with_columns(pl.col(C.GENRES).list.join("|"))
    frame = neutralised(frame)
    _write(path, lambda temp: frame.write_csv(temp, separator=kind))


def neutralised(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with a `'` before every text cell that begins like a spreadsheet formula."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    risky = f"^[{re.escape(''.join(FORMULA))}]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(risky)).then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name)).alias(name)
        for name in text
    )


def _write(path: Path, write) -> None:
    """`atomic_write`, its failures as one line naming `path` (not the temporary file)."""
    try:
        atomic_write(path, write)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise DataError(f"{path}: cannot write the table ({reason(err)}); free some space "
                        "or choose another --output") from err


def reason(err: BaseException) -> str:
    """Why a write failed, in the operating system's words where the error carries them."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    code = re.search(r"os error (\d+)", text)
    if code:
        return os.strerror(int(code.group(1)))
    return text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
