"""How a run was made: versions, the command line, the git commit and the data's fingerprint.

What `provenance.json` in a run directory records for each training session (the first and
every resume), so that a result can be traced back to the code and data that made it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("bert4rec", "torch", "numpy", "polars", "safetensors")
"""The packages whose installed versions are recorded."""
GIT_TIMEOUT = 5.0
"""Seconds a `git` query may take before the commit is recorded as unknown."""


def session(data_fingerprint: str, directory: str | Path | None = None) -> dict[str, Any]:
    """One training session's record: when (UTC), the command line (`sys.argv`), Python and
    package versions, the git commit of `directory` (default: the working directory) and the
    fingerprint of the prepared data (a hash of its arrays, `SequenceCorpus.fingerprint`)."""
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions(),
        "git": git_state(Path.cwd() if directory is None else Path(directory)),
        "data_fingerprint": data_fingerprint,
    }


def versions() -> dict[str, str | None]:
    """Installed version of each of `PACKAGES` (None for one that is not installed); torch's
    with its local build suffix (`+cpu`, `+cu130`) once it is imported, which pip's metadata
    leaves out for the wheels on PyPI."""
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    if found["bert4rec"] is None:  # run from a source tree without installing it
        from bert4rec import __version__

        found["bert4rec"] = __version__
    torch = sys.modules.get("torch")
    if torch is not None:  # the build itself: "2.14.1+cu130" where pip's record says "2.14.1"
        found["torch"] = torch.__version__
    return found


def git_state(directory: Path) -> dict[str, Any] | None:
    """The commit checked out in the git repository holding `directory`, and whether tracked
    files differ from it; None outside a repository or where git is missing or slow."""
    commit = _git(directory, "rev-parse", "HEAD")
    if commit is None:
        return None
    changes = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


def _git(directory: Path, *args: str) -> str | None:
    """`git -C directory ARGS`'s output, or None when it fails for any reason."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True,
            timeout=GIT_TIMEOUT, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
