"""Files and folders bert4rec writes: temporary names beside their destination, with the
permissions the umask gives, and the marker that says which folders and files are its own.

`tempfile.mkstemp` and `mkdtemp` create 0600 files and 0700 folders whatever the umask, and a
rename keeps those modes: a run directory written through them could be read by its owner
alone. These create the same unique names with the modes `open` and `mkdir` would give.

Ownership: bert4rec writes only into a folder that is new, empty, or marked as its own by a
`.bert4rec.json` (`MARKER`) that names what made the folder (`kind`: a run, an export, a
download) and the files it writes there. Every other entry of a marked folder is the user's
and is never replaced or deleted; a folder that holds anything but is not marked is refused
by name before any work starts (`check_folder`). Temporary files are held under an advisory
lock while they are written, so that a later run can tell one a crash left behind
(`stale_temps`) from one another process is writing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; temporary files are then never cleaned up
    fcntl = None

MARKER = ".bert4rec.json"
"""The file that marks a folder as bert4rec's own."""
MARKER_BYTES = 1 << 20
"""A marker larger than this is not one bert4rec wrote: it is not read."""
SHOWN = 3
"""How many of the user's entries an error names."""


def umask() -> int:
    """The process's umask (read from /proc where it can be, so nothing is changed)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(current)
    return current


def temp_file(directory: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty file `directory/prefix<8 hex digits>suffix`, mode 0666 less the umask."""
    while True:
        path = directory / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def temp_dir(directory: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty folder `directory/prefix<8 characters>suffix`, mode 0777 less the umask."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=directory))
    path.chmod(0o777 & ~umask())
    return path


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an advisory lock on the file `path` while the block writes it: `stale_temps`
    leaves it alone until the block ends (or the process dies)."""
    if fcntl is None:
        yield
        return
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def stale_temps(directory: Path, name: str) -> list[Path]:
    """The temporary files `temp_file(directory, f".{name}.")` made that no live process holds
    (`held`): what a crash or a kill left behind while writing `directory/name`."""
    if fcntl is None or not directory.is_dir():
        return []
    pattern = re.compile(re.escape(f".{name}.") + r"[0-9a-z_]{8}")  # mkstemp's names too
    stale = []
    for path in directory.iterdir():
        if not pattern.fullmatch(path.name) or path.is_symlink() or not path.is_file():
            continue
        try:
            handle = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.append(path)
        except OSError:
            pass  # a live writer holds it
        finally:
            os.close(handle)
    return stale


@dataclass(frozen=True)
class Marker:
    """What a `.bert4rec.json` says: the kind of folder and the files bert4rec writes there
    (paths relative to the folder; a folder name covers what is inside it)."""

    kind: str
    files: tuple[str, ...]

    def owns(self, name: str) -> bool:
        """Whether the top-level entry `name` is bert4rec's (the marker included)."""
        return name == MARKER or any(Path(f).parts[0] == name for f in self.files)


def read_marker(folder: Path) -> Marker | None:
    """The folder's marker, or None when it has none (or one bert4rec did not write)."""
    path = folder / MARKER
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MARKER_BYTES:
            return None
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(values, dict):
        return None
    kind, files = values.get("kind"), values.get("files")
    if not isinstance(kind, str) or not isinstance(files, list):
        return None
    if not all(isinstance(f, str) and f and _relative(f) for f in files):
        return None
    return Marker(kind, tuple(files))


def _relative(name: str) -> bool:
    """A plain relative path inside the folder: no absolute path, no '..'."""
    path = Path(name)
    return not path.is_absolute() and ".." not in path.parts


def write_marker(folder: Path, kind: str, files: Iterable[str], **extra: Any) -> None:
    """Mark `folder` as bert4rec's `kind` folder owning `files` (written to a temporary name
    and renamed, like every file bert4rec writes)."""
    from bert4rec import __version__

    values = {"made_by": f"bert4rec {__version__}", "kind": kind,
              "files": sorted(set(files)), **extra}
    temp = temp_file(folder, prefix=f"{MARKER}.")
    try:
        temp.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, folder / MARKER)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def foreign(folder: Path, marker: Marker | None) -> list[str]:
    """The entries of `folder` that are not bert4rec's (all of them without a marker),
    sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if marker is None or not marker.owns(p.name))


def named(entries: list[str]) -> str:
    """The first few entries of a list, quoted, and how many more there are."""
    shown = ", ".join(repr(e) for e in entries[:SHOWN])
    return shown + (f" and {len(entries) - SHOWN:,} more" if len(entries) > SHOWN else "")


def check_folder(folder: Path, kind: str, error: type[Exception], flag: str) -> Marker | None:
    """Refuse, with `error` naming `folder` and `flag` (the option that chose it), a folder
    bert4rec may not write `kind` into: something that is not a folder, a folder that holds
    anything without a marker, or a folder marked as another kind. Returns the marker of a
    marked folder, None for a new or empty one."""
    if folder.is_symlink() and not folder.exists():
        raise error(f"{folder}: a broken symbolic link; choose another {flag}")
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder}: exists and is not a folder; choose another {flag}")
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is None:
        theirs = foreign(folder, None)
        if theirs:
            raise error(
                f"{folder}: holds files bert4rec did not write ({named(theirs)}); bert4rec "
                f"writes only into a new or empty folder or one it made: choose another {flag}"
            )
        return None
    if marker.kind != kind:
        raise error(f"{folder}: is a bert4rec {marker.kind} folder, not a(n) {kind} folder; "
                    f"choose another {flag}")
    return marker


def check_writable(path: Path, error: type[Exception], flag: str) -> None:
    """Refuse a `path` (a file or folder to be written, through a temporary name beside it)
    whose folder cannot be written: the nearest existing folder above it must be a folder in
    which a temporary file can be created and removed, so permissions, read-only file systems
    and a full inode table all show now, before any work."""
    path = path.absolute()
    existing = next(p for p in path.parents if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise error(f"{existing}: is not a folder, so {path} cannot be written; choose "
                    f"another {flag}")
    try:
        temp_file(existing, prefix=".bert4rec-write-test.").unlink()
    except OSError as err:
        raise error(f"{existing}: cannot write there ({err.strerror or err}); choose another "
                    f"{flag}") from err


def remove_owned(folder: Path, names: Iterable[str]) -> None:
    """Delete the files `names` (paths relative to `folder`) by name, then the folders that
    held them once they are empty: nothing else in them is touched."""
    parents: set[Path] = set()
    for name in names:
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
        parents.update(p for p in path.parents if p != folder and folder in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        remove_if_empty(parent)


def remove_if_empty(path: Path) -> None:
    """Remove the folder `path` if nothing is in it."""
    with suppress(OSError):  # not empty (something in it is not ours) or already gone
        path.rmdir()
