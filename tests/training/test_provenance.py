"""A run directory records how it was made (issue 16): versions, the command line, the git commit
where there is one and a content hash of the prepared data; its files get the modes the umask
allows, not 0600."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from importlib import metadata

import pytest
import torch
from test_run_dir import TINY, write_log

from bert4rec import rundir
from bert4rec.cli import main
from bert4rec.data.cache import load_corpus
from bert4rec.data.corpus import PrepareSettings
from bert4rec.files import temp_dir, temp_file
from bert4rec.training.provenance import git_state, versions


@pytest.fixture()
def umask():
    """Set the process umask for one test, then put the old one back."""
    before = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_records_its_making_and_its_files_follow_the_umask(tmp_path, monkeypatch, umask):
    log = write_log(tmp_path / "log.csv")
    out = tmp_path / "run"
    argv = ["bert4rec", "train", str(log), "--out", str(out), *TINY]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(tmp_path)  # not inside a git repository
    umask(0o027)
    assert main(argv[1:]) == 0

    sessions = json.loads((out / rundir.PROVENANCE).read_text())["sessions"]
    assert len(sessions) == 1
    made = sessions[0]
    assert made["argv"] == argv
    assert made["packages"]["torch"] == torch.__version__
    assert made["packages"]["bert4rec"]
    assert made["git"] is None
    # the content of the prepared arrays, whatever the file's name or age
    moved = tmp_path / "elsewhere" / "renamed.csv"
    moved.parent.mkdir()
    shutil.copy(log, moved)
    os.utime(moved, (0, 0))
    settings = PrepareSettings(min_rating=None, min_user_interactions=3)
    again = load_corpus(moved, settings, use_cache=False)
    assert made["data_fingerprint"] == again.fingerprint()
    config = json.loads((out / rundir.CONFIG).read_text())
    assert made["data_fingerprint"] == config["data"]["corpus"]["fingerprint"]

    written = [out / rundir.CONFIG, out / rundir.WEIGHTS, out / rundir.ITEMS, out / rundir.USERS,
               out / rundir.METRICS, out / rundir.PROVENANCE, out / rundir.CHECKPOINT]
    assert {p.name: oct(mode(p)) for p in written} == {p.name: "0o640" for p in written}
    assert oct(mode(out)) == oct(mode(out / "checkpoints")) == "0o750"

    assert main(["train", str(log), "--out", str(out), "--resume", *TINY]) == 0
    sessions = json.loads((out / rundir.PROVENANCE).read_text())["sessions"]
    assert len(sessions) == 2 and sessions[1]["data_fingerprint"] == made["data_fingerprint"]


def test_torch_is_recorded_with_its_build_suffix(monkeypatch):
    """pip's metadata of a PyPI torch wheel says 2.14.1 while the build says 2.14.1+cu130: the
    record names the build (a fresh machine's CUDA wheel failed the equality above)."""
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "2.14.1" if name == "torch" else real(name))
    monkeypatch.setattr(torch, "__version__", "2.14.1+cu130")
    assert versions()["torch"] == "2.14.1+cu130"


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "train.py").write_text("print('v1')\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-qm", "v1"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert git_state(repo / "sub") == {"commit": head, "dirty": False}
    (repo / "train.py").write_text("print('v2')\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    assert git_state(tmp_path) is None  # outside any repository
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git_state(repo) is None  # git missing: unknown, not a failure


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_temporary_files_and_folders_get_the_umask_modes(tmp_path, umask, mask):
    umask(mask)
    assert mode(temp_file(tmp_path, ".x.")) == 0o666 & ~mask
    assert mode(temp_dir(tmp_path, ".d.")) == 0o777 & ~mask
    rundir.write_json(tmp_path / "metrics.json", {"a": 1})
    assert mode(tmp_path / "metrics.json") == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".metrics")] == []
