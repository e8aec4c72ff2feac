"""Temporary files and folders beside their destination, with the permissions the umask gives.

`tempfile.mkstemp` and `mkdtemp` create 0600 files and 0700 folders whatever the umask, and a
rename keeps those modes: a run directory written through them could be read by its owner
alone. These create the same unique names with the modes `open` and `mkdir` would give.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


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
    """A new empty file `directory/prefix<random>suffix`, mode 0666 less the umask."""
    while True:
        path = directory / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def temp_dir(directory: Path, prefix: str, suffix: str = "") -> Path:
    """A new empty folder `directory/prefix<random>suffix`, mode 0777 less the umask."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=directory))
    path.chmod(0o777 & ~umask())
    return path
