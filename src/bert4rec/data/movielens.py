"""MovieLens releases as data (URL, checksum, layout), and finding and reading them on disk.

A release is found as a folder or a zip, recognised by its files (lkpy's rule), under, in
order: --data-dir, $BERT4REC_DATA_DIR, the user cache directory. Downloading lives in
`bert4rec.data.download`.

Checksums: GroupLens publishes an md5 next to each zip (`<name>.zip.md5`). Where a sha256 was
found it is recorded too; every digest recorded is verified.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bert4rec.data import mlformats
from bert4rec.data.interactions import Interactions
from bert4rec.errors import DataError

DATA_DIR_ENV = "BERT4REC_DATA_DIR"
BASE_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class Layout:
    """A release layout: the ratings file that identifies it, its text encoding, its reader."""

    ratings: str
    encoding: str
    reader: Callable[[mlformats.ReleaseFiles, str], Interactions]

    def read(self, files: mlformats.ReleaseFiles) -> Interactions:
        return self.reader(files, self.encoding)


U_DATA = Layout("u.data", "latin-1", mlformats.read_100k)
DAT = Layout("ratings.dat", "latin-1", mlformats.read_dat)
CSV = Layout("ratings.csv", "utf-8", mlformats.read_csv)
LAYOUTS = (CSV, U_DATA, DAT)


@dataclass(frozen=True)
class Release:
    """One published MovieLens archive."""

    name: str
    folder: str
    """The top-level folder inside the zip (ml-10m unpacks to ml-10M100K/)."""
    layout: Layout
    size: int | None
    sha256: str | None
    md5: str | None
    checksum_source: str
    """Where the digests were taken from."""

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"

    def url(self, base_url: str | None = None) -> str:
        return (base_url or BASE_URL).rstrip("/") + "/" + self.filename

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.md5)


_TFDS = "sha256 and size: tensorflow/datasets url_checksums/movielens.txt"
_MD5 = "md5: GroupLens <name>.zip.md5, as quoted in eli-osherovich/papers_with_code dl_config.py"
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            "ml-100k", "ml-100k", U_DATA, 4_924_029,
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            "0e33842e24a9c977be4e0107933c0723", f"{_TFDS}; {_MD5}",
        ),
        Release(
            "ml-1m", "ml-1m", DAT, 5_917_549,
            "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            "c4d9eecfca2ab87c1945afe126590906", f"{_TFDS}; {_MD5}",
        ),
        Release(
            "ml-10m", "ml-10M100K", DAT, 65_566_137,
            "813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
            "ce571fd55effeba0271552578f2648bd",
            "sha256 and size: one public project that pins the archive together with the "
            f"GroupLens md5 (ARCHIVE_SHA256/ARCHIVE_MD5); {_MD5}",
        ),
        Release(
            "ml-20m", "ml-20m", CSV, 198_702_078,
            "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            "cd245b17a1ae2cc31bb14903e1204af3", f"{_TFDS}; {_MD5}",
        ),
        Release(
            "ml-25m", "ml-25m", CSV, 261_978_986,
            "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            "6b51fb2759a8657d3bfcbfc42b592ada", f"{_TFDS}; {_MD5}",
        ),
        Release(
            "ml-32m", "ml-32m", CSV, 238_950_008,
            "e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
            "d472be332d4daa821edc399621853b57",
            "md5: GroupLens ml-32m.zip.md5 as quoted by several projects (pooch known_hash); "
            "sha256 and size: pinned identically by several independent projects",
        ),
        Release(
            "ml-latest-small", "ml-latest-small", CSV, 978_202,
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", None,
            f"{_TFDS} (the 2018-09-26 snapshot; 'latest' releases can be regenerated)",
        ),
        Release(
            "ml-latest", "ml-latest", CSV, None, None, None,
            "none: ml-latest is regenerated over time, so no fixed digest exists",
        ),
    )
}  # fmt: skip


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Where releases are looked for, in order: --data-dir, $BERT4REC_DATA_DIR, the user cache."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_DIR_ENV):
        roots.append(Path(os.environ[DATA_DIR_ENV]))
    roots.append(default_root())
    return roots


def default_root() -> Path:
    """The user cache directory for releases (downloads go here without --data-dir)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bert4rec")) / "data"


def release(name: str) -> Release:
    """The table entry for `name`, or a DataError listing the known names."""
    if name not in RELEASES:
        raise DataError(f"unknown MovieLens release {name!r}; known: {', '.join(RELEASES)}")
    return RELEASES[name]


def candidates(name: str, root: Path) -> list[Path]:
    """The places release `name` may sit in one root: its folder (either name) or its zip."""
    entry = release(name)
    return list(dict.fromkeys([root / name, root / entry.folder, root / entry.filename]))


def find(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first folder or zip that holds release `name`, or None."""
    for root in data_roots(data_dir):
        for candidate in candidates(name, root):
            if candidate.exists() and _holds_release(candidate):
                return candidate
    return None


def locate(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder or zip of release `name`, or FileNotFoundError saying where it was looked for."""
    found = find(name, data_dir)
    if found is None:
        tried = [str(c) for root in data_roots(data_dir) for c in candidates(name, root)]
        raise FileNotFoundError(
            f"MovieLens release {name} not found (looked for {', '.join(tried)}); "
            f"run `bert4rec data download {name}` or pass data_dir="
        )
    return found


def _holds_release(path: Path) -> bool:
    try:
        detect(path)
    except (DataError, FileNotFoundError):
        return False
    return True


def detect(path: str | Path) -> tuple[Layout, mlformats.ReleaseFiles]:
    """Recognise a release folder or zip by its files; the zip may nest them in one folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        files = mlformats.ReleaseFiles(path)
        if not any(files.has(layout.ratings) for layout in LAYOUTS):
            inner = [child for child in sorted(path.iterdir()) if child.is_dir()]
            if len(inner) == 1:
                return detect(inner[0])
    else:
        files = _zip_files(path)
    for layout in LAYOUTS:
        if files.has(layout.ratings):
            return layout, files
    raise DataError(
        f"{path}: not a MovieLens release (expected ratings.csv, ratings.dat or u.data, "
        "possibly inside one folder or a zip)"
    )


def _zip_files(path: Path) -> mlformats.ReleaseFiles:
    """Open a zip and find the folder that holds a ratings file (lkpy reads the first entry)."""
    files = mlformats.ReleaseFiles(path)
    names = sorted(files.names(), key=lambda n: (n.count("/"), n))
    for member in names:
        folder, _, base = member.rpartition("/")
        if base.removesuffix(".gz") in {layout.ratings for layout in LAYOUTS}:
            files.prefix = folder + "/" if folder else ""
            return files
    return files


def release_name(path: Path) -> str:
    """The release a folder or zip holds, by its name (ml-10M100K -> ml-10m), else its stem."""
    stem = path.name.removesuffix(".zip")
    for entry in RELEASES.values():
        if stem in (entry.name, entry.folder):
            return entry.name
    return stem


def load_release(path: str | Path) -> Interactions:
    """Read a release folder or zip, whichever of the three layouts it has."""
    path = Path(path)
    layout, files = detect(path)
    interactions = layout.read(files)
    return Interactions(interactions.events, interactions.items, release_name(path))
