"""Download a MovieLens release: stream, verify, rename into place, extract safely.

The zip is streamed into a temporary name beside its destination with a progress bar, its
digests are checked against the release table, and only then is it renamed and extracted
(into a staging folder, renamed into place at the end). An interrupted or failed download
therefore never leaves anything that looks complete. Only https is used, redirects included;
plain http is accepted for a loopback mirror alone (redirecting only to loopback), so tests can
serve archives from 127.0.0.1. A release folder is bert4rec's when its marker
(`files.MARKER`, kind "download", naming the release's files and the archive's digests; or the
`.bert4rec-download.json` of earlier versions) says so: a download replaces only the files the
release brings there, and a folder in the way that is not bert4rec's is refused by name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from bert4rec.data import movielens
from bert4rec.errors import ChecksumError, DataError
from bert4rec.files import (
    MARKER,
    foreign,
    named,
    read_marker,
    remove_if_empty,
    remove_owned,
    temp_dir,
    temp_file,
    write_marker,
)

BASE_URL_ENV = "BERT4REC_MOVIELENS_URL"
DOWNLOAD = "download"
"""The kind of folder a release is, as its marker names it."""
LEGACY_MARKER = ".bert4rec-download.json"
"""What marked a release folder before `files.MARKER`: still read as bert4rec's."""
CHUNK = 1 << 20
LOOPBACK = ("127.0.0.1", "localhost", "::1")
logger = logging.getLogger(__name__)


def target_root(data_dir: str | Path | None = None) -> Path:
    """Where downloads go: --data-dir, else $BERT4REC_DATA_DIR, else the user cache."""
    return movielens.data_roots(data_dir)[0]


def download(
    name: str,
    data_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Make release `name` present as `<root>/<name>/`; returns at once if it already is."""
    entry = movielens.release(name)
    root = target_root(data_dir)
    final = root / name
    if final.is_dir() and movielens.find(name, root) == final:
        logger.info("%s already present at %s", name, final)
        return final
    url = entry.url(base_url or os.environ.get(BASE_URL_ENV))
    _check_scheme(url)
    _check_replaceable(final)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / f".{name}.write-test").touch()
        (root / f".{name}.write-test").unlink()
    except OSError as err:
        raise DataError(
            f"{root}: cannot write there ({err.strerror}); pass --data-dir with a writable folder"
        ) from err
    archive = _fetch(url, root / entry.filename, progress, timeout)
    try:
        digests = _verify(entry, url, archive, root / entry.filename)
        _extract(archive, final, entry, url, digests)
    finally:
        archive.unlink(missing_ok=True)
    return final


def _check_scheme(url: str) -> None:
    parsed = urllib.parse.urlparse(url)
    loopback = parsed.hostname in LOOPBACK
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise DataError(
            f"{url}: refusing to download over {parsed.scheme or 'no scheme'}; "
            f"use an https URL (set {BASE_URL_ENV} or --base-url)"
        )


def _check_replaceable(final: Path) -> None:
    """Refuse to go on when `final` is in the way and was not made by a download: the user's
    files are never deleted. An empty folder, or one with a download's marker, may be
    written into (only the release's own files are replaced there)."""
    if not final.exists() and not final.is_symlink():
        return
    folder = final.is_dir() and not final.is_symlink()
    if folder and (_ours(final) or not any(final.iterdir())):
        return
    raise DataError(
        f"{final}: already exists and is not a release that bert4rec downloaded (no {MARKER} "
        "in it); bert4rec does not delete what it did not create: move or rename it, or pass "
        "--data-dir with another folder"
    )


def _ours(folder: Path) -> bool:
    """Whether `folder` is a release bert4rec downloaded: its marker says so."""
    marker = read_marker(folder)
    return (marker is not None and marker.kind == DOWNLOAD) or (folder / LEGACY_MARKER).is_file()


class _HttpsRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to https, or from a loopback http mirror to loopback http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urlparse(newurl)
        loopback = urllib.parse.urlparse(req.full_url).hostname in LOOPBACK
        if target.scheme != "https" and not (
            loopback and target.scheme == "http" and target.hostname in LOOPBACK
        ):
            raise DataError(
                f"{req.full_url}: redirected to {newurl}; refusing to follow a redirect that "
                "leaves https. Use a mirror that serves the file over https"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, destination: Path, progress: bool, timeout: float) -> Path:
    """Stream `url` into a temporary file next to `destination`; return that file."""
    partial = temp_file(destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with (
            open(partial, "wb") as handle,
            urllib.request.build_opener(_HttpsRedirects).open(url, timeout=timeout) as response,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=destination.name, disable=not progress
            ) as bar:
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(
                f"{url}: download interrupted after {received:,} of {total:,} bytes; "
                "run the same command again"
            )
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{url}: download failed ({err}); check the network (or {BASE_URL_ENV}) and run "
            "the same command again"
        ) from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def file_digests(path: Path) -> dict[str, str | int]:
    """sha256, md5 and size of a file, read in chunks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest(), "size": size}


def _verify(
    entry: movielens.Release, url: str, path: Path, destination: Path
) -> dict[str, str | int]:
    """Check every recorded digest; warn (never pass silently) when none is recorded."""
    actual = file_digests(path)
    for kind in ("sha256", "md5"):
        expected = getattr(entry, kind)
        if expected and actual[kind] != expected:
            raise ChecksumError(
                f"{url}: checksum mismatch for {destination}: expected {kind} {expected}, got "
                f"{actual[kind]} ({actual['size']:,} bytes). The file was deleted; run "
                f"`bert4rec data download {entry.name}` again, and if it keeps failing the "
                "server copy changed: report it"
            )
    if not entry.verifiable:
        logger.warning("%s: the file could not be verified (no published checksum is recorded "
                       "for it; sha256 %s)", entry.name, actual["sha256"])
    return actual


def safe_members(archive: zipfile.ZipFile, where: Path | str) -> list[zipfile.ZipInfo]:
    """The members of a zip, refusing absolute paths, '..', drive letters and symlinks."""
    members = archive.infolist()
    for info in members:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        unsafe = (
            info.filename.startswith(("/", "\\"))
            or ".." in parts
            or (parts and ":" in parts[0])
            or stat.S_ISLNK(info.external_attr >> 16)
        )
        if unsafe:
            raise DataError(
                f"{where}: refusing to extract unsafe member {info.filename!r} (absolute path, "
                "'..', drive or symlink); the archive is not a GroupLens release"
            )
    return members


def _extract(path: Path, final: Path, entry: movielens.Release, url: str,
             digests: dict[str, str | int]) -> None:
    """Extract into a staging folder, then rename the release folder to `final` (or, where
    an earlier download left `final`, move the release's files into it: `_replace_files`).
    Errors name the URL: `path` is a temporary file, deleted when the download fails."""
    staging = temp_dir(final.parent, prefix=f".{final.name}.", suffix=".extract")
    again = f"the download was deleted: run `bert4rec data download {entry.name}` again"
    try:
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(staging, members=safe_members(archive, url))
        except (zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise DataError(f"{url}: the archive is damaged ({err}); {again}") from err
        inner = staging / entry.folder
        if not inner.is_dir():
            raise DataError(
                f"{url}: expected the folder {entry.folder}/ inside the archive, found "
                f"{sorted(p.name for p in staging.iterdir())}; {again}"
            )
        try:
            movielens.detect(inner)
        except (DataError, FileNotFoundError) as err:
            raise DataError(f"{url}: not a MovieLens release ({err}); {again}") from err
        files = sorted(str(p.relative_to(inner)) for p in inner.rglob("*") if p.is_file())
        write_marker(inner, DOWNLOAD, files, url=url, **digests)
        _check_replaceable(final)
        if final.exists() and any(final.iterdir()):
            _replace_files(inner, final, files)
        else:
            os.replace(inner, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_files(inner: Path, final: Path, files: list[str]) -> None:
    """Move the release's `files` (and its marker, last) from `inner` into the earlier
    download `final`, replacing its copies; delete the files the earlier marker names that
    this release no longer has. Anything else in `final` is the user's and stays."""
    earlier = read_marker(final)
    if foreign(final, earlier):
        logger.info("%s: keeping %s, which the release does not bring", final,
                    named(foreign(final, earlier)))
    for name in files:
        target = final / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            raise DataError(f"{target}: a folder where the release has a file; move it out "
                            "and download again")
        os.replace(inner / name, target)
    gone = [] if earlier is None else sorted(set(earlier.files) - set(files))
    remove_owned(final, gone)
    os.replace(inner / MARKER, final / MARKER)
    (final / LEGACY_MARKER).unlink(missing_ok=True)
    remove_if_empty(inner)
